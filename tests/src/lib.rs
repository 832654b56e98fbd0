//! Helpers for Parapet's integration tests: run `cargo parapet up …` exactly
//! as a user types it, with a watchdog, and capture what it prints.
#![deny(unsafe_code)]

pub mod check;

use std::io::{BufRead, BufReader, Read, Write};
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

/// Console input to type once every one of `after` has appeared in the
/// console transcript (each somewhere in a line of stdout, in any order).
#[derive(Clone, Debug)]
pub struct Cue {
    /// The texts to wait for.
    pub after: Vec<String>,
    /// What to type then.
    pub input: Vec<u8>,
}

impl Cue {
    /// Types `input` once all of `after` have been printed.
    pub fn new(after: &[&str], input: &[u8]) -> Self {
        Cue {
            after: after.iter().map(|s| s.to_string()).collect(),
            input: input.to_vec(),
        }
    }
}

/// What goes to parapet's standard input.
enum Input {
    Nothing,
    Now(Vec<u8>),
    OnCue(Vec<Cue>),
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
    run_with(
        args,
        input.map_or(Input::Nothing, |i| Input::Now(i.to_vec())),
    )
    .0
}

/// As [`run_parapet`], typing each cue's input on the console (parapet's
/// standard input) once its lines have appeared, in order. Also returns how
/// many cues were typed: all of them, unless a cue's lines never appeared,
/// in which case the run ends (or the watchdog kills it) as it would have
/// without the input.
pub fn run_parapet_with_cues(args: &[&str], cues: Vec<Cue>) -> (Run, usize) {
    run_with(args, Input::OnCue(cues))
}

fn run_with(args: &[&str], input: Input) -> (Run, usize) {
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
        .stdin(if matches!(input, Input::Nothing) {
            Stdio::null()
        } else {
            Stdio::piped()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot run cargo");
    let mut sink = child.stdin.take();
    let mut cues = Vec::new();
    match input {
        Input::Nothing => {}
        Input::Now(bytes) => {
            if let Some(mut sink) = sink.take() {
                std::thread::spawn(move || {
                    let _ = sink.write_all(&bytes);
                });
            }
        }
        Input::OnCue(c) => cues = c,
    }
    let out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    // Reads stdout line by line and types each cue's input when its lines
    // have appeared; returns stdout and how many cues were typed.
    let t_out = std::thread::spawn(move || {
        let mut text = String::new();
        let mut sent = 0;
        let mut seen: Vec<Vec<bool>> = cues.iter().map(|c| vec![false; c.after.len()]).collect();
        let mut reader = BufReader::new(out);
        let mut line = Vec::new();
        while matches!(reader.read_until(b'\n', &mut line), Ok(n) if n > 0) {
            let l = String::from_utf8_lossy(&line);
            for (cue, seen) in cues.iter().zip(seen.iter_mut()) {
                for (a, s) in cue.after.iter().zip(seen.iter_mut()) {
                    *s |= l.contains(a.as_str());
                }
            }
            text.push_str(&l);
            line.clear();
            while let Some(cue) = cues.get(sent) {
                if !seen[sent].iter().all(|&s| s) {
                    break;
                }
                if let Some(s) = sink.as_mut() {
                    if s.write_all(&cue.input).and_then(|()| s.flush()).is_err() {
                        sink = None;
                    }
                }
                sent += 1;
            }
        }
        (text, sent)
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
    let (stdout, cues_sent) = t_out.join().unwrap_or_default();
    let run = Run {
        status,
        stdout,
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
    (run, cues_sent)
}

/// `cargo parapet up SCENARIO --timeout SECS`: returns (exit status, stdout + stderr).
pub fn run_up(scenario: &str, timeout_secs: u64) -> (ExitStatus, String) {
    let t = timeout_secs.to_string();
    let r = run_parapet(&["up", scenario, "--timeout", &t]);
    let transcript = r.transcript();
    (r.status, transcript)
}

pub mod live;
