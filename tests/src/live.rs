//! A `cargo parapet …` run the test talks to while it runs: wait for a line,
//! type on its console, reach a forwarded port, then stop it with Ctrl-C
//! (SIGINT to its process group, as a terminal does) or wait for its end,
//! and collect what it printed.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::{workspace_root, Run, WATCHDOG};

/// A running `cargo parapet` in its own process group.
pub struct Live {
    child: Child,
    /// Its console input, when started with [`Live::start_with_console`].
    stdin: Option<ChildStdin>,
    args: Vec<String>,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
    started: Instant,
}

fn reader(stream: impl std::io::Read + Send + 'static, into: Arc<Mutex<String>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stream);
        let mut line = String::new();
        while lines.read_line(&mut line).is_ok_and(|n| n > 0) {
            into.lock()
                .unwrap_or_else(|e| e.into_inner())
                .push_str(&line);
            line.clear();
        }
    })
}

impl Live {
    /// Starts `cargo run --quiet -p parapet-tools --bin parapet -- ARGS`.
    pub fn start(args: &[&str]) -> Live {
        Self::spawn(args, false)
    }

    /// As [`Live::start`], with its console input open for
    /// [`Live::type_line`].
    pub fn start_with_console(args: &[&str]) -> Live {
        Self::spawn(args, true)
    }

    fn spawn(args: &[&str], console: bool) -> Live {
        let mut child = Command::new(env!("CARGO"))
            .args([
                "run",
                "--quiet",
                "-p",
                "parapet-tools",
                "--bin",
                "parapet",
                "--",
            ])
            .args(args)
            .current_dir(workspace_root())
            .env("NO_COLOR", "1")
            .stdin(if console {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .expect("cannot run cargo");
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let readers = vec![
            reader(child.stdout.take().expect("stdout"), stdout.clone()),
            reader(child.stderr.take().expect("stderr"), stderr.clone()),
        ];
        Live {
            stdin: child.stdin.take(),
            child,
            args: args.iter().map(|s| s.to_string()).collect(),
            stdout,
            stderr,
            readers,
            started: Instant::now(),
        }
    }

    /// Everything printed so far, stdout then stderr.
    pub fn transcript(&self) -> String {
        let out = self
            .stdout
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let err = self
            .stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        format!("{out}\n{err}")
    }

    /// Waits until the transcript contains `needle`; false after `timeout` or
    /// if the run ended without it.
    pub fn wait_for(&mut self, needle: &str, timeout: Duration) -> bool {
        self.wait_for_count(needle, 1, timeout)
    }

    /// Waits until the transcript contains `needle` `times` times; false
    /// after `timeout` or if the run ended first.
    pub fn wait_for_count(&mut self, needle: &str, times: usize, timeout: Duration) -> bool {
        let seen = |live: &Self| live.transcript().matches(needle).count() >= times;
        let start = Instant::now();
        loop {
            if seen(self) {
                return true;
            }
            let ended = self.child.try_wait().ok().flatten().is_some();
            if ended || start.elapsed() > timeout {
                // One last look: the readers may have lagged behind the exit.
                std::thread::sleep(Duration::from_millis(200));
                return seen(self);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Types `line` (and a newline) on the run's console.
    pub fn type_line(&mut self, line: &str) {
        let sink = self
            .stdin
            .as_mut()
            .expect("started without console input: use Live::start_with_console");
        sink.write_all(format!("{line}\n").as_bytes())
            .and_then(|()| sink.flush())
            .expect("typing on the console");
    }

    /// Waits for the run to end by itself (killing it and failing the test
    /// after `timeout`) and returns what it printed.
    pub fn finish(mut self, timeout: Duration) -> Run {
        let start = Instant::now();
        let status = loop {
            match self.child.try_wait().expect("wait") {
                Some(st) => break st,
                None if start.elapsed() > timeout => {
                    panic!(
                        "`cargo parapet {}` did not end within {} s:\n{}",
                        self.args.join(" "),
                        timeout.as_secs(),
                        self.transcript()
                    );
                }
                None => std::thread::sleep(Duration::from_millis(100)),
            }
        };
        self.collect(status, "")
    }

    /// Sends SIGINT to the run's process group (Ctrl-C), waits for it to end
    /// (killing it after [`WATCHDOG`] from its start) and returns what it
    /// printed.
    pub fn interrupt(mut self) -> Run {
        let pgid = self.child.id();
        let _ = Command::new("kill")
            .args(["-INT", "--", &format!("-{pgid}")])
            .status();
        let grace = Instant::now();
        let status = loop {
            match self.child.try_wait().expect("wait") {
                Some(st) => break st,
                None if self.started.elapsed() > WATCHDOG
                    || grace.elapsed() > Duration::from_secs(30) =>
                {
                    let _ = Command::new("kill")
                        .args(["-KILL", "--", &format!("-{pgid}")])
                        .status();
                    let _ = self.child.wait();
                    panic!(
                        "`cargo parapet {}` did not stop on Ctrl-C; killed it:\n{}",
                        self.args.join(" "),
                        self.transcript()
                    );
                }
                None => std::thread::sleep(Duration::from_millis(100)),
            }
        };
        self.collect(status, " (interrupted)")
    }

    /// Joins the readers and returns what the ended run printed (also
    /// printed, for the test's log).
    fn collect(&mut self, status: std::process::ExitStatus, how: &str) -> Run {
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        let run = Run {
            status,
            stdout: self
                .stdout
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            stderr: self
                .stderr
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        };
        println!(
            "--- cargo parapet {}{how} -> {}\n--- stdout\n{}\n--- stderr\n{}",
            self.args.join(" "),
            run.status,
            run.stdout,
            run.stderr
        );
        run
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        // A test that panicked before `interrupt` must not leave QEMU running.
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", self.child.id())])
                .status();
            let _ = self.child.wait();
        }
    }
}
