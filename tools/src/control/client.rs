//! `parapet list`, `create`, `destroy`, `pause` and `unpause`: one request
//! to the control socket of the running `parapet up`, its answer printed.
//!
//! Exit status: [`EXIT_OK`] when the control domain answered `ok`,
//! [`EXIT_REFUSED`] when the request failed (`err`: the control domain
//! refused it, or `parapet up` could not get an answer), [`EXIT_NO_SYSTEM`]
//! when no system runs, the name is not a domain name, or the answer is
//! malformed.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use parapet_abi::control::{self, Command, Reply};

use super::ANSWER_TIMEOUT;

/// Exit status: the control domain answered `ok`.
pub const EXIT_OK: i32 = 0;
/// Exit status: the request failed (`err`).
pub const EXIT_REFUSED: i32 = 1;
/// Exit status: no system runs (or a bad name, or a broken answer).
pub const EXIT_NO_SYSTEM: i32 = 2;

/// What a subcommand prints when no system runs.
pub const NOT_RUNNING: &str = "no Parapet system is running: start one with `parapet up`";

/// How long the client waits for the whole answer (`parapet up` gives up
/// after [`ANSWER_TIMEOUT`] and says so).
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(ANSWER_TIMEOUT.as_secs() + 15);

/// A request could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No socket, or nobody answers on it.
    #[error("{NOT_RUNNING}")]
    NotRunning,
    /// Talking to `parapet up` failed.
    #[error("the control socket {path}: {source}")]
    Io {
        /// The socket.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// No whole answer within [`CLIENT_TIMEOUT`].
    #[error("no answer from `parapet up` within {} s", CLIENT_TIMEOUT.as_secs())]
    Timeout,
    /// The answer is not what the protocol says.
    #[error("malformed answer: {0}")]
    Malformed(String),
}

/// The answer to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The request's id (given by `parapet up`).
    pub id: u32,
    /// The data lines (`ctl:ID | TEXT`), their text.
    pub data: Vec<String>,
    /// `ok` (else `err`).
    pub ok: bool,
    /// The text of the `ok` or `err` line.
    pub text: String,
}

/// The request line sent on the socket: `VERB [NAME]`.
pub fn request_line(command: &Command<'_>) -> String {
    match command.name() {
        Some(name) => format!("{} {name}", command.verb()),
        None => command.verb().to_owned(),
    }
}

/// Reads an answer's lines: data lines then one `ok` or `err` line, all
/// for the same request, nothing after.
pub fn parse_answer<S: AsRef<str>>(lines: &[S]) -> Result<Answer, String> {
    let mut id = None;
    let mut data = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let line = line.as_ref();
        let reply = control::parse_reply(line).ok_or_else(|| {
            format!("`{line}` is not a reply line (ctl:ID | TEXT, ok TEXT or err TEXT)")
        })?;
        let want = *id.get_or_insert(reply.id());
        if reply.id() != want {
            return Err(format!(
                "`{line}` answers request {}, not request {want}",
                reply.id()
            ));
        }
        let (ok, text) = match reply {
            Reply::Data { text, .. } => {
                data.push(text.to_owned());
                continue;
            }
            Reply::Ok { text, .. } => (true, text),
            Reply::Err { text, .. } => (false, text),
        };
        if let Some(extra) = lines.get(i + 1) {
            return Err(format!(
                "lines after the end of the answer: `{}`",
                extra.as_ref()
            ));
        }
        return Ok(Answer {
            id: want,
            data,
            ok,
            text: text.to_owned(),
        });
    }
    Err(if lines.is_empty() {
        "no answer (the connection closed)".to_owned()
    } else {
        "the answer ended without an ok or err line".to_owned()
    })
}

/// Sends `command` to the control socket at `path` and reads the answer.
pub fn request(path: &Path, command: &Command<'_>) -> Result<Answer, ClientError> {
    let io = |source| ClientError::Io {
        path: path.display().to_string(),
        source,
    };
    let stream = match UnixStream::connect(path) {
        Ok(s) => s,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Err(ClientError::NotRunning)
        }
        Err(e) => return Err(io(e)),
    };
    stream.set_read_timeout(Some(CLIENT_TIMEOUT)).map_err(io)?;
    let mut w = &stream;
    w.write_all(format!("{}\n", request_line(command)).as_bytes())
        .and_then(|()| w.flush())
        .map_err(io)?;
    let mut lines = Vec::new();
    for line in BufReader::new(&stream).lines() {
        let line = line.map_err(|e| {
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) {
                ClientError::Timeout
            } else {
                io(e)
            }
        })?;
        let last = control::parse_reply(&line).is_some_and(|r| r.is_last());
        lines.push(line);
        if last {
            break;
        }
    }
    parse_answer(&lines).map_err(ClientError::Malformed)
}

/// What a subcommand prints, and its exit status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Printed {
    /// The exit status.
    pub exit_code: i32,
    /// Lines for stdout.
    pub stdout: Vec<String>,
    /// Lines for stderr (each already prefixed `parapet: `).
    pub stderr: Vec<String>,
}

impl Printed {
    fn error(exit_code: i32, message: String) -> Self {
        Printed {
            exit_code,
            stdout: Vec::new(),
            stderr: vec![format!("parapet: {message}")],
        }
    }
}

/// Runs one subcommand against the control socket of the checkout (see
/// [`super::socket_path`]).
pub fn run(command: &Command<'_>) -> Printed {
    if let Some(name) = command.name() {
        if !control::is_domain_name(name) {
            return Printed::error(
                EXIT_NO_SYSTEM,
                format!(
                    "error: `{name}` is not a domain name: 1 to {} characters from [a-z0-9_-]",
                    crate::scenario::MAX_NAME_LEN
                ),
            );
        }
    }
    let path = crate::build::workspace_root()
        .map_err(|e| e.to_string())
        .and_then(|root| super::target_dir(&root).map_err(|e| e.to_string()));
    match path {
        Ok(target) => run_at(&super::socket_path(&target), command),
        Err(e) => Printed::error(EXIT_NO_SYSTEM, format!("error: {e}")),
    }
}

/// Runs one subcommand against the control socket at `path`.
pub fn run_at(path: &Path, command: &Command<'_>) -> Printed {
    let answer = match request(path, command) {
        Ok(a) => a,
        Err(ClientError::NotRunning) => return Printed::error(EXIT_NO_SYSTEM, NOT_RUNNING.into()),
        Err(e) => return Printed::error(EXIT_NO_SYSTEM, format!("error: {e}")),
    };
    print_answer(command, &answer)
}

/// What to print for `answer`.
pub fn print_answer(command: &Command<'_>, answer: &Answer) -> Printed {
    if !answer.ok {
        let mut p = Printed::error(
            EXIT_REFUSED,
            format!("{}: {}", request_line(command), answer.text),
        );
        p.stdout = answer.data.clone();
        return p;
    }
    if *command == Command::List {
        return match super::list::Listing::parse(answer) {
            Ok(listing) => Printed {
                exit_code: EXIT_OK,
                stdout: listing.render(),
                stderr: Vec::new(),
            },
            Err(e) => Printed::error(
                EXIT_NO_SYSTEM,
                format!("error: malformed answer from the control domain: {e}"),
            ),
        };
    }
    let mut stdout = answer.data.clone();
    stdout.push(answer.text.clone());
    Printed {
        exit_code: EXIT_OK,
        stdout,
        stderr: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_checked() {
        let a = parse_answer(&["ctl:3 | a", "ctl:3 | b", "ctl:3 ok done"]).unwrap();
        assert_eq!(
            a,
            Answer {
                id: 3,
                data: vec!["a".into(), "b".into()],
                ok: true,
                text: "done".into()
            }
        );
        let a = parse_answer(&["ctl:4 err no domain `x`"]).unwrap();
        assert!(!a.ok);
        assert_eq!(a.text, "no domain `x`");
        for (lines, why) in [
            (
                &["ctl:3 | a", "ctl:4 ok done"][..],
                "answers request 4, not request 3",
            ),
            (
                &["ctl:3 | a", "garbage", "ctl:3 ok"][..],
                "`garbage` is not a reply line",
            ),
            (&["ctl:3 ok", "ctl:3 | more"][..], "lines after the end"),
            (&["ctl:3 | a"][..], "without an ok or err line"),
            (&[][..], "no answer"),
        ] {
            let e = parse_answer(lines).unwrap_err();
            assert!(e.contains(why), "{lines:?}: {e}");
        }
    }

    #[test]
    fn request_lines() {
        assert_eq!(request_line(&Command::List), "list");
        assert_eq!(request_line(&Command::Unpause("g-1")), "unpause g-1");
    }

    #[test]
    fn no_system_running() {
        let dir = super::super::server::tests::scratch("none");
        let p = run_at(&dir.join("control.sock"), &Command::List);
        assert_eq!(p.exit_code, EXIT_NO_SYSTEM);
        assert_eq!(
            p.stderr,
            ["parapet: no Parapet system is running: start one with `parapet up`"]
        );
        // A socket file nobody answers on: the same.
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("control.sock");
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        let p = run_at(&path, &Command::Destroy("a"));
        assert_eq!(p.exit_code, EXIT_NO_SYSTEM, "{p:?}");
        assert!(p.stderr[0].contains("no Parapet system is running"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn names_are_checked_before_anything_is_sent() {
        let p = run(&Command::Destroy("Guest A"));
        assert_eq!(p.exit_code, EXIT_NO_SYSTEM);
        assert_eq!(
            p.stderr,
            ["parapet: error: `Guest A` is not a domain name: 1 to 31 characters from [a-z0-9_-]"]
        );
    }

    #[test]
    fn what_is_printed() {
        let ok = Answer {
            id: 1,
            data: Vec::new(),
            ok: true,
            text: "destroyed guest-a".into(),
        };
        let p = print_answer(&Command::Destroy("guest-a"), &ok);
        assert_eq!(
            (p.exit_code, p.stdout, p.stderr),
            (0, vec!["destroyed guest-a".to_string()], vec![])
        );
        let err = Answer {
            ok: false,
            text: "no domain `x`; known: driver, guest-a".into(),
            ..ok.clone()
        };
        let p = print_answer(&Command::Pause("x"), &err);
        assert_eq!(p.exit_code, EXIT_REFUSED);
        assert_eq!(
            p.stderr,
            ["parapet: pause x: no domain `x`; known: driver, guest-a"]
        );
        // A list whose lines do not parse.
        let bad = Answer {
            data: vec!["driver id=zero".into()],
            text: "1 domains; frames free=1 total=2 at_start=1; grants=0 ports=0".into(),
            ..ok
        };
        let p = print_answer(&Command::List, &bad);
        assert_eq!(p.exit_code, EXIT_NO_SYSTEM);
        assert!(p.stderr[0].contains("malformed answer"), "{p:?}");
    }
}
