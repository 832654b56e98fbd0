//! Helpers for Parapet's integration tests: run `cargo parapet up …` exactly
//! as a user types it, with a watchdog, and capture what it prints.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How long any single `cargo parapet` run may take before the test kills it.
pub const WATCHDOG: Duration = Duration::from_secs(400);

static SERIAL: Mutex<()> = Mutex::new(());

/// Serialises tests that build and boot images, so that two cargo builds do
/// not fight over the target directory. Hold the guard for the whole test.
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).to_owned()
}

/// What one run printed.
#[derive(Debug)]
pub struct Run {
    /// Exit status of `cargo run … parapet …`.
    pub status: ExitStatus,
    /// Standard output: the console transcript.
    pub stdout: String,
    /// Standard error: cargo's and parapet's messages, QEMU's stderr.
    pub stderr: String,
}

impl Run {
    /// Stdout followed by stderr.
    pub fn transcript(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }

    /// Lines of stdout that start with `prefix`.
    pub fn lines_starting(&self, prefix: &str) -> Vec<&str> {
        self.stdout
            .lines()
            .filter(|l| l.starts_with(prefix))
            .collect()
    }
}

/// Runs `cargo run --quiet -p parapet-tools --bin parapet -- ARGS` in the
/// workspace root, killing it (and failing) after [`WATCHDOG`].
pub fn run_parapet(args: &[&str]) -> Run {
    run_parapet_with_input(args, None)
}

/// As [`run_parapet`], with `input` written to parapet's standard input (as
/// if typed on the console) and then closed.
pub fn run_parapet_with_input(args: &[&str], input: Option<&[u8]>) -> Run {
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
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot run cargo");
    if let (Some(mut sink), Some(input)) = (child.stdin.take(), input) {
        let input = input.to_vec();
        std::thread::spawn(move || {
            use std::io::Write;
            let _ = sink.write_all(&input);
        });
    }
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let t_out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        String::from_utf8_lossy(&v).into_owned()
    });
    let t_err = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        String::from_utf8_lossy(&v).into_owned()
    });
    let start = Instant::now();
    let status = loop {
        match child.try_wait().expect("wait") {
            Some(st) => break st,
            None if start.elapsed() > WATCHDOG => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "watchdog: `cargo parapet {}` still running after {} s; killed it",
                    args.join(" "),
                    WATCHDOG.as_secs()
                );
            }
            None => std::thread::sleep(Duration::from_millis(100)),
        }
    };
    let run = Run {
        status,
        stdout: t_out.join().unwrap_or_default(),
        stderr: t_err.join().unwrap_or_default(),
    };
    // Shown when a test fails (the harness captures it otherwise).
    println!(
        "--- cargo parapet {} -> {}\n--- stdout\n{}\n--- stderr\n{}",
        args.join(" "),
        run.status,
        run.stdout,
        run.stderr
    );
    run
}

/// `cargo parapet up SCENARIO --timeout SECS`: returns (exit status, stdout + stderr).
pub fn run_up(scenario: &str, timeout_secs: u64) -> (ExitStatus, String) {
    let t = timeout_secs.to_string();
    let r = run_parapet(&["up", scenario, "--timeout", &t]);
    let transcript = r.transcript();
    (r.status, transcript)
}
