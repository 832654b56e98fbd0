//! Running QEMU: streaming its console into the transcript, forwarding the
//! user's typing and the control channel's requests to its serial input,
//! and deciding when a run has ended.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use parapet_abi::control::REQUEST_MARKER;

use super::{QemuError, EXIT_GRACE};
use crate::control::server::{LineUse, Server};
use crate::transcript::{self, Outcome, QemuEnd, Transcript};

enum Msg {
    Line(String),
    Eof,
    Err(std::io::Error),
}

fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// How a run may end besides QEMU exiting by itself.
#[derive(Debug, Clone, Default)]
pub struct Stops {
    /// Kill QEMU after this long (`None`: never).
    pub timeout: Option<Duration>,
    /// The scenario is a service: reaching `timeout` is a normal end
    /// ([`QemuEnd::Stopped`]) rather than a failure.
    pub service: bool,
    /// Set by the caller to stop QEMU; a normal end too.
    pub stop: Option<Arc<AtomicBool>>,
    /// Drains the trace buffers, when the boot is traced: it sees every
    /// console line and reads the buffers a last time before QEMU is killed.
    pub trace: Option<Arc<crate::trace::record::Recorder>>,
}

/// How often the run loop looks at [`interrupt`] and [`Stops::stop`].
const POLL: Duration = Duration::from_millis(50);

/// Runs in progress, and whether [`interrupt`] was called during them.
static RUNNING: AtomicUsize = AtomicUsize::new(0);
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// For a Ctrl-C (SIGINT) handler: asks the runs in progress to kill QEMU
/// and end with [`QemuEnd::Interrupted`]. Returns false when none is in
/// progress (the caller should then exit as SIGINT would).
pub fn interrupt() -> bool {
    INTERRUPTED.store(true, Ordering::SeqCst);
    RUNNING.load(Ordering::SeqCst) > 0
}

struct RunGuard;

impl RunGuard {
    fn new() -> Self {
        if RUNNING.fetch_add(1, Ordering::SeqCst) == 0 {
            INTERRUPTED.store(false, Ordering::SeqCst);
        }
        RunGuard
    }
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        RUNNING.fetch_sub(1, Ordering::SeqCst);
    }
}

/// One piece of QEMU's serial input. Everything goes through one writer
/// thread ([`write_serial`]), so a control request never lands inside a line
/// the user is typing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SerialInput {
    /// A line typed on (or piped into) our standard input (the last one
    /// may lack its newline).
    Typed(Vec<u8>),
    /// A control request line, `ID VERB [NAME]`, without the marker and the
    /// newline.
    Control(String),
}

/// Writes serial input to `sink` (QEMU's standard input) until every sender
/// is gone or a write fails. A control request starts a line of its own
/// (after a newline if a typed line was left unfinished), marked with
/// [`REQUEST_MARKER`]; a marker at the start of a typed line is dropped,
/// so that typing cannot forge a control request.
pub fn write_serial(mut sink: impl Write, input: mpsc::Receiver<SerialInput>) {
    let mut at_line_start = true;
    for piece in input {
        let bytes = match piece {
            SerialInput::Typed(line) => {
                let mut out = Vec::with_capacity(line.len());
                let mut start = at_line_start;
                for b in line {
                    if start && b == REQUEST_MARKER {
                        continue;
                    }
                    start = b == b'\n' || b == b'\r';
                    out.push(b);
                }
                out
            }
            SerialInput::Control(request) => {
                let mut out = Vec::with_capacity(request.len() + 3);
                if !at_line_start {
                    out.push(b'\n');
                }
                out.push(REQUEST_MARKER);
                out.extend_from_slice(request.as_bytes());
                out.push(b'\n');
                out
            }
        };
        let Some(&last) = bytes.last() else {
            continue;
        };
        if sink.write_all(&bytes).and_then(|()| sink.flush()).is_err() {
            return;
        }
        at_line_start = last == b'\n' || last == b'\r';
    }
}

/// Where the console goes, and what comes in.
struct Io<'a> {
    out: &'a mut dyn Write,
    colour: bool,
    forward_stdin: bool,
    control: Option<&'a Server>,
}

/// Detaches the control server when the run ends, however it ends.
struct Detach<'a>(Option<&'a Server>);

impl Drop for Detach<'_> {
    fn drop(&mut self) {
        if let Some(s) = self.0 {
            s.detach();
        }
    }
}

/// Runs QEMU, printing each console line to `out` as it arrives (coloured
/// prefixes when `colour`), and decides the outcome. `timeout` of `None` means
/// no limit. QEMU is killed on timeout, on a console error, and when it does
/// not exit within [`EXIT_GRACE`] after the hypervisor said it is done.
///
/// With `forward_stdin`, what is typed on (or piped into) our standard input
/// goes to the serial port, where the hypervisor hands it to the
/// console-input domain.
pub fn run(
    program: &Path,
    args: &[OsString],
    domains: Vec<String>,
    timeout: Option<Duration>,
    out: &mut dyn Write,
    colour: bool,
    forward_stdin: bool,
) -> Result<(Outcome, Transcript), QemuError> {
    let stops = Stops {
        timeout,
        ..Stops::default()
    };
    run_until(program, args, domains, &stops, out, colour, forward_stdin)
}

/// [`run`], which also ends (killing QEMU) when [`Stops::stop`] is set or on
/// [`interrupt`], and for which a service's timeout is a normal end.
pub fn run_until(
    program: &Path,
    args: &[OsString],
    domains: Vec<String>,
    stops: &Stops,
    out: &mut dyn Write,
    colour: bool,
    forward_stdin: bool,
) -> Result<(Outcome, Transcript), QemuError> {
    let io = Io {
        out,
        colour,
        forward_stdin,
        control: None,
    };
    run_io(program, args, domains, stops, io)
}

/// [`run_until`] with our standard input forwarded and `control` serving
/// the control socket meanwhile: its requests go to the serial input, and
/// the control domain's replies to them go back to it instead of `out`
/// (the line that ends an answer becomes a `parapet: control: …` note on
/// stderr).
pub fn run_controlled(
    program: &Path,
    args: &[OsString],
    domains: Vec<String>,
    stops: &Stops,
    out: &mut dyn Write,
    colour: bool,
    control: &Server,
) -> Result<(Outcome, Transcript), QemuError> {
    let io = Io {
        out,
        colour,
        forward_stdin: true,
        control: Some(control),
    };
    run_io(program, args, domains, stops, io)
}

/// Lets the trace recorder read the buffers a last time (QEMU still runs).
fn finish_trace(stops: &Stops) {
    if let Some(r) = &stops.trace {
        r.finish();
    }
}

fn run_io(
    program: &Path,
    args: &[OsString],
    domains: Vec<String>,
    stops: &Stops,
    io: Io<'_>,
) -> Result<(Outcome, Transcript), QemuError> {
    let Io {
        out,
        colour,
        forward_stdin,
        control,
    } = io;
    let _running = RunGuard::new();
    let timeout = stops.timeout;
    let stop_asked = || {
        INTERRUPTED.load(Ordering::SeqCst)
            || stops
                .stop
                .as_ref()
                .is_some_and(|s| s.load(Ordering::SeqCst))
    };
    let stopped_end = |start: Instant| {
        let secs = start.elapsed().as_secs();
        if INTERRUPTED.load(Ordering::SeqCst) {
            QemuEnd::Interrupted { secs }
        } else {
            QemuEnd::Stopped {
                secs,
                why: "stopped by the caller",
            }
        }
    };
    let mut child = Command::new(program)
        .args(args)
        .stdin(if forward_stdin || control.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| QemuError::Spawn {
            program: program.display().to_string(),
            source,
        })?;
    let _detach = Detach(control);
    if let Some(sink) = child.stdin.take() {
        // One writer; typed input line by line, so a terminal in cooked
        // mode works as expected. The writer ends with our input (unless
        // the control server holds a sender until the run ends) or with
        // QEMU (a write then fails).
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || write_serial(sink, rx));
        if let Some(c) = control {
            c.attach(tx.clone());
        }
        if forward_stdin {
            std::thread::spawn(move || {
                let mut line = Vec::new();
                let mut input = std::io::stdin().lock();
                while matches!(input.read_until(b'\n', &mut line), Ok(n) if n > 0) {
                    if tx
                        .send(SerialInput::Typed(std::mem::take(&mut line)))
                        .is_err()
                    {
                        break;
                    }
                }
            });
        }
    }
    let (tx, rx) = mpsc::channel::<Msg>();
    if let Some(stdout) = child.stdout.take() {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match r.read_until(b'\n', &mut buf) {
                    Ok(0) => {
                        let _ = tx.send(Msg::Eof);
                        break;
                    }
                    Ok(_) => {
                        let s = String::from_utf8_lossy(&buf);
                        let s = s.trim_end_matches(['\n', '\r']).to_owned();
                        if tx.send(Msg::Line(s)).is_err() {
                            break;
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Msg::Err(e));
                        break;
                    }
                }
            }
        });
    }
    drop(tx);
    let stderr_thread = child.stderr.take().map(|stderr| {
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).split(b'\n').map_while(Result::ok) {
                let s = String::from_utf8_lossy(&line);
                eprintln!("[qemu] {}", s.trim_end_matches('\r'));
            }
        })
    });

    let start = Instant::now();
    let deadline = timeout.map(|t| start + t);
    let mut t = Transcript::new(domains);
    let mut grace_deadline: Option<Instant> = None;
    let mut end: Option<QemuEnd> = None;
    let mut eof = false;
    while !eof {
        let now = Instant::now();
        if stop_asked() {
            finish_trace(stops);
            kill(&mut child);
            end = Some(stopped_end(start));
            break;
        }
        let mut wake = deadline;
        if let Some(g) = grace_deadline {
            wake = Some(wake.map_or(g, |w| w.min(g)));
        }
        let msg = match wake {
            Some(w) if w <= now => None,
            _ => {
                let poll = wake.map_or(POLL, |w| (w - now).min(POLL));
                match rx.recv_timeout(poll) {
                    Ok(m) => Some(m),
                    Err(mpsc::RecvTimeoutError::Timeout)
                        if wake.is_some_and(|w| w <= Instant::now()) =>
                    {
                        None
                    }
                    Err(mpsc::RecvTimeoutError::Timeout) => continue,
                    Err(mpsc::RecvTimeoutError::Disconnected) => Some(Msg::Eof),
                }
            }
        };
        match msg {
            Some(Msg::Line(line)) => {
                let was_finished = t.finished();
                if let Some(r) = &stops.trace {
                    r.on_line(&line);
                }
                t.feed(&line);
                let shown = match control.map_or(LineUse::Show, |c| c.on_line(&line)) {
                    LineUse::Show => Some(transcript::render(&line, t.domain_names(), colour)),
                    LineUse::Hide => None,
                    LineUse::Note(note) => {
                        eprintln!("parapet: {note}");
                        None
                    }
                };
                let written = match shown {
                    Some(shown) => writeln!(out, "{shown}").and_then(|()| out.flush()),
                    None => Ok(()),
                };
                if let Err(e) = written {
                    finish_trace(stops);
                    kill(&mut child);
                    return Err(QemuError::Io(e));
                }
                if !was_finished && t.finished() {
                    grace_deadline = Some(Instant::now() + EXIT_GRACE);
                    if let Some(r) = &stops.trace {
                        r.end_of_run();
                    }
                }
            }
            Some(Msg::Eof) => eof = true,
            Some(Msg::Err(e)) => {
                finish_trace(stops);
                kill(&mut child);
                return Err(QemuError::Io(e));
            }
            None => {
                // A deadline passed.
                finish_trace(stops);
                kill(&mut child);
                let secs = timeout.map_or(0, |d| d.as_secs());
                end = Some(match (grace_deadline, deadline) {
                    (Some(g), _) if Instant::now() >= g => QemuEnd::Hung,
                    _ if stops.service => QemuEnd::Stopped {
                        secs,
                        why: "--timeout",
                    },
                    _ => QemuEnd::TimedOut { secs },
                });
                break;
            }
        }
    }
    let end = match end {
        Some(e) => e,
        None => {
            // Stdout closed: QEMU is exiting. Still bounded by the deadline.
            let status = wait_until(&mut child, deadline)?;
            match status {
                // A Ctrl-C reaches QEMU too, which then exits by itself.
                Some(_) if stop_asked() && !t.finished() => stopped_end(start),
                Some(st) => st.code().map_or(QemuEnd::Signalled, QemuEnd::Exited),
                None => {
                    finish_trace(stops);
                    kill(&mut child);
                    QemuEnd::TimedOut {
                        secs: timeout.map_or(0, |d| d.as_secs()),
                    }
                }
            }
        }
    };
    // QEMU ended by itself: the recorder quit it after a power-off, or
    // it failed.
    finish_trace(stops);
    if let Some(h) = stderr_thread {
        let _ = h.join();
    }
    Ok((t.outcome(end), t))
}

fn wait_until(
    child: &mut Child,
    deadline: Option<Instant>,
) -> Result<Option<std::process::ExitStatus>, QemuError> {
    loop {
        if let Some(st) = child.try_wait()? {
            return Ok(Some(st));
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str, timeout: Option<Duration>) -> (Outcome, Vec<u8>) {
        let mut out = Vec::new();
        let (o, _) = run(
            Path::new("/bin/sh"),
            &["-c".into(), script.into()],
            vec!["driver".into(), "guest-a".into()],
            timeout,
            &mut out,
            false,
            false,
        )
        .unwrap();
        (o, out)
    }

    #[test]
    fn run_success() {
        let (o, out) = sh(
            "printf '[hv] domain driver (id 0, driver domain)\\n[hv] domain guest-a (id 1, guest)\\n\
             [guest-a] hi\\r\\n[hv] domain guest-a exited: poweroff (code 0)\\n\
             [hv] domain driver exited: poweroff (code 0)\\n[hv] all domains stopped: 2 ok, 0 failed\\n'",
            Some(Duration::from_secs(20)),
        );
        assert_eq!(o.exit_code, 0, "{o:?}");
        assert!(String::from_utf8(out).unwrap().contains("\n[guest-a] hi\n"));
    }

    #[test]
    fn run_timeout_kills() {
        let start = Instant::now();
        let (o, _) = sh(
            "echo '[hv] domain driver exited: poweroff (code 0)'; exec sleep 30",
            Some(Duration::from_millis(500)),
        );
        assert!(start.elapsed() < Duration::from_secs(10));
        assert_eq!(o.exit_code, transcript::EXIT_TIMEOUT);
        assert_eq!(o.summary, ["timeout after 0 s; still running: guest-a"]);
    }

    fn sh_until(script: &str, stops: &Stops) -> Outcome {
        run_until(
            Path::new("/bin/sh"),
            &["-c".into(), script.into()],
            vec!["driver".into(), "guest-a".into()],
            stops,
            &mut Vec::new(),
            false,
            false,
        )
        .unwrap()
        .0
    }

    #[test]
    fn a_service_timeout_is_a_normal_end() {
        let stops = Stops {
            timeout: Some(Duration::from_millis(300)),
            service: true,
            stop: None,
            trace: None,
        };
        let o = sh_until("echo '[guest-a] serving'; exec sleep 30", &stops);
        assert_eq!(o.exit_code, transcript::EXIT_OK, "{o:?}");
        assert_eq!(
            o.summary,
            [
                "stopped after 0 s (--timeout)",
                "still running: driver, guest-a"
            ]
        );
        // A domain that failed before still fails the run.
        let o = sh_until(
            "echo '[hv] domain guest-a crashed: x'; exec sleep 30",
            &stops,
        );
        assert_eq!(o.exit_code, transcript::EXIT_DOMAIN_FAILED, "{o:?}");
    }

    #[test]
    fn the_caller_can_stop_a_run() {
        let stop = Arc::new(AtomicBool::new(false));
        let stops = Stops {
            timeout: Some(Duration::from_secs(20)),
            service: true,
            stop: Some(Arc::clone(&stop)),
            trace: None,
        };
        let setter = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            stop.store(true, Ordering::SeqCst);
        });
        let start = Instant::now();
        let o = sh_until("exec sleep 30", &stops);
        setter.join().unwrap();
        assert!(start.elapsed() < Duration::from_secs(10));
        assert_eq!(o.exit_code, transcript::EXIT_OK, "{o:?}");
        assert_eq!(o.summary[0], "stopped after 0 s (stopped by the caller)");
    }

    #[test]
    fn serial_input_keeps_control_lines_whole() {
        let (tx, rx) = mpsc::channel();
        for piece in [
            SerialInput::Typed(b"ps\n".to_vec()),
            SerialInput::Control("1 list".into()),
            // Typing cannot forge a request: markers at line starts go.
            SerialInput::Typed(b"\x10\x102 destroy a\n".to_vec()),
            SerialInput::Typed(b"a\r\x10b\x10\n".to_vec()),
            SerialInput::Typed(Vec::new()),
            // A last line without its newline is ended before a request.
            SerialInput::Typed(b"unfinished".to_vec()),
            SerialInput::Control("3 pause b".into()),
        ] {
            tx.send(piece).unwrap();
        }
        drop(tx);
        let mut out = Vec::new();
        write_serial(&mut out, rx);
        assert_eq!(
            out,
            b"ps\n\x101 list\n2 destroy a\na\rb\x10\nunfinished\n\x103 pause b\n"
        );
    }

    #[test]
    fn control_requests_reach_the_serial_input_and_replies_stay_off_the_console() {
        use crate::control::{client, server::tests::scratch};
        use parapet_abi::control::Command;
        // A stand-in for QEMU whose control domain answers every request
        // with a data line (the request as it arrived) and `ok`.
        let script = "echo '[hv] domain driver (id 0, driver domain)'; \
                      while IFS= read -r l; do l=${l#?}; id=${l%% *}; \
                      echo \"[driver] ctl:$id | got $l\"; echo '[driver] hello'; \
                      echo \"[driver] ctl:$id ok done\"; done";
        let path = scratch("run").join("control.sock");
        let server = Server::open(&path, Some("driver".into())).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stops = Stops {
            timeout: Some(Duration::from_secs(20)),
            service: true,
            stop: Some(Arc::clone(&stop)),
            trace: None,
        };
        let client = {
            let path = path.clone();
            std::thread::spawn(move || {
                let start = Instant::now();
                let answer = loop {
                    let a = client::request(&path, &Command::Destroy("guest-a"));
                    match a {
                        Ok(a) if a.text.contains("still starting") => {}
                        other => break other,
                    }
                    assert!(start.elapsed() < Duration::from_secs(10));
                    std::thread::sleep(Duration::from_millis(20));
                };
                stop.store(true, Ordering::SeqCst);
                answer
            })
        };
        let mut out = Vec::new();
        let io = Io {
            out: &mut out,
            colour: false,
            forward_stdin: false,
            control: Some(&server),
        };
        let (o, t) = run_io(
            Path::new("/bin/sh"),
            &["-c".into(), script.into()],
            vec!["driver".into()],
            &stops,
            io,
        )
        .unwrap();
        let a = client.join().unwrap().unwrap();
        assert!(a.ok, "{a:?}");
        assert_eq!(a.data, [format!("got {} destroy guest-a", a.id)]);
        assert_eq!(a.text, "done");
        assert_eq!(o.exit_code, transcript::EXIT_OK, "{o:?}");
        let console = String::from_utf8(out).unwrap();
        assert_eq!(
            console,
            "[hv] domain driver (id 0, driver domain)\n[driver] hello\n"
        );
        assert_eq!(t.still_running(), ["driver"]);
        // Once the run is over, requests are refused.
        let a = client::request(&path, &Command::List).unwrap();
        assert_eq!(a.text, "the system has stopped");
    }

    #[test]
    fn run_qemu_failure() {
        let (o, _) = sh("echo boom >&2; exit 1", None);
        assert_eq!(o.exit_code, transcript::EXIT_PLATFORM);
    }

    #[test]
    fn missing_program() {
        let e = run(
            Path::new("/nonexistent/qemu"),
            &[],
            vec![],
            None,
            &mut Vec::new(),
            false,
            false,
        )
        .unwrap_err();
        assert!(e.to_string().contains("/nonexistent/qemu"));
    }
}
