//! The out-of-tree workflow, end to end: `parapet new` makes a guest crate in
//! a fresh directory outside the checkout, and `parapet up` with no argument
//! in that directory builds the crate and boots it beside the driver domain.
#![deny(unsafe_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use parapet_tests::{serial, workspace_root, WATCHDOG};

/// What one `parapet` run printed.
struct Out {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Out {
    fn transcript(&self) -> String {
        format!(
            "--- status {}\n--- stdout\n{}\n--- stderr\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// Runs `parapet ARGS` in `dir`, as a user runs an installed `parapet`
/// there: `cargo run --manifest-path <checkout>/tools/Cargo.toml` with `dir`
/// as the current directory, killed (and failing) after [`WATCHDOG`].
fn parapet(args: &[&str], dir: &Path) -> Out {
    let manifest = workspace_root().join("tools/Cargo.toml");
    let mut child = Command::new(env!("CARGO"))
        .args(["run", "--quiet", "--manifest-path"])
        .arg(&manifest)
        .args(["--bin", "parapet", "--"])
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot run cargo");
    let read_all = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = r.read_to_end(&mut v);
            String::from_utf8_lossy(&v).into_owned()
        })
    };
    let out = read_all(Box::new(child.stdout.take().expect("stdout")));
    let err = read_all(Box::new(child.stderr.take().expect("stderr")));
    let start = Instant::now();
    let status = loop {
        match child.try_wait().expect("wait") {
            Some(st) => break st,
            None if start.elapsed() > WATCHDOG => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "watchdog: `parapet {}` in {} still running after {} s; killed it",
                    args.join(" "),
                    dir.display(),
                    WATCHDOG.as_secs()
                );
            }
            None => std::thread::sleep(Duration::from_millis(100)),
        }
    };
    let r = Out {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    };
    // Shown when the test fails (the harness captures it otherwise).
    println!(
        "=== parapet {} (in {})\n{}",
        args.join(" "),
        dir.display(),
        r.transcript()
    );
    r
}

/// A fresh directory under the system's temporary directory, removed at the end.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn assert_has(transcript: &str, needle: &str, all: &Out) {
    assert!(
        transcript.contains(needle),
        "the transcript should contain {needle:?}:\n{}",
        all.transcript()
    );
}

#[test]
fn a_guest_crate_made_outside_the_checkout_boots_with_parapet_up() {
    let _g = serial();
    let base = std::env::temp_dir().join(format!("parapet-newguest-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&base).unwrap();
    let scratch = Scratch(base.canonicalize().unwrap());
    let checkout = workspace_root().canonicalize().unwrap();
    assert!(
        !scratch.0.starts_with(&checkout),
        "{} should be outside the checkout",
        scratch.0.display()
    );

    // `parapet new hello`: the crate, with its scenario.
    let r = parapet(&["new", "hello"], &scratch.0);
    assert!(r.status.success(), "{}", r.transcript());
    assert_has(&r.stderr, "created the guest crate 'hello' in hello", &r);
    let dir = scratch.0.join("hello");
    for f in ["Cargo.toml", "build.rs", "src/main.rs", "scenario.toml"] {
        assert!(dir.join(f).is_file(), "{f} missing:\n{}", r.transcript());
    }
    let main_rs = std::fs::read_to_string(dir.join("src/main.rs")).unwrap();

    // A second time to the same path: refused, nothing overwritten.
    let again = parapet(&["new", "hello"], &scratch.0);
    assert!(!again.status.success(), "{}", again.transcript());
    assert_has(
        &again.stderr,
        "parapet: error: hello already exists: `parapet new` only creates a new directory",
        &again,
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("src/main.rs")).unwrap(),
        main_rs
    );

    // `parapet up` with no argument in the crate: builds it, boots its
    // scenario.toml beside the driver domain.
    let r = parapet(&["up", "--timeout", "90"], &dir);
    assert!(r.status.success(), "{}", r.transcript());
    assert_has(
        &r.stderr,
        "parapet: cargo build --release --target aarch64-unknown-none --bin hello (in ",
        &r,
    );
    assert_has(&r.stdout, "[hello] hello from hello", &r);
    assert_has(&r.stdout, "[driver] driver domain up", &r);
    assert_has(&r.stdout, "[hv] domain hello exited: poweroff (code 0)", &r);
    assert_has(&r.stdout, "[hv] all domains stopped: 2 ok, 0 failed", &r);
    // It was built in its own target directory, not the checkout's.
    assert!(
        dir.join("target/aarch64-unknown-none/release/hello")
            .is_file(),
        "{}",
        r.transcript()
    );
    drop(scratch);
}
