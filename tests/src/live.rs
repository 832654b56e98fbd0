//! A `cargo parapet …` run the test talks to while it runs: wait for a line,
//! reach a forwarded port, then stop it with Ctrl-C (SIGINT to its process
//! group, as a terminal does) and collect what it printed.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::{workspace_root, Run, WATCHDOG};

/// A running `cargo parapet` in its own process group.
pub struct Live {
    child: Child,
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
            .stdin(Stdio::null())
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
        let start = Instant::now();
        loop {
            if self.transcript().contains(needle) {
                return true;
            }
            let ended = self.child.try_wait().ok().flatten().is_some();
            if ended || start.elapsed() > timeout {
                // One last look: the readers may have lagged behind the exit.
                std::thread::sleep(Duration::from_millis(200));
                return self.transcript().contains(needle);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
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
            "--- cargo parapet {} (interrupted) -> {}\n--- stdout\n{}\n--- stderr\n{}",
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
