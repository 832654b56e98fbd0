//! A minimal QMP client (QEMU's JSON monitor protocol over a Unix socket):
//! enough to read guest-physical memory (`pmemsave`), notice the machine's
//! `SHUTDOWN` event, and `quit`.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// How long a command may take to answer.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// What went wrong talking to QEMU's monitor.
#[derive(Debug, thiserror::Error)]
pub enum QmpError {
    /// The socket never appeared or refused us.
    #[error("cannot connect to QEMU's monitor at {path}: {source}")]
    Connect {
        /// The socket.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Reading or writing the socket, or the memory file, failed.
    #[error("QEMU's monitor: {0}")]
    Io(#[from] std::io::Error),
    /// QEMU answered something that is not QMP.
    #[error("QEMU's monitor sent `{0}`")]
    Protocol(String),
    /// QEMU refused a command.
    #[error("QEMU refused `{command}`: {message}")]
    Refused {
        /// The command.
        command: String,
        /// QEMU's description.
        message: String,
    },
    /// The monitor closed (QEMU exited).
    #[error("QEMU's monitor closed")]
    Closed,
}

/// A connected, negotiated QMP session.
pub struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    /// Whether a `SHUTDOWN` event was seen.
    pub shutdown: bool,
    scratch: PathBuf,
    /// A message read in part when a read timed out.
    partial: String,
}

impl Qmp {
    /// Connects to `path` (retrying until `patience` runs out: QEMU makes
    /// the socket as it starts) and negotiates capabilities. `scratch` is
    /// the file `pmemsave` writes memory into.
    pub fn connect(path: &Path, patience: Duration, scratch: PathBuf) -> Result<Self, QmpError> {
        let start = Instant::now();
        let stream = loop {
            match UnixStream::connect(path) {
                Ok(s) => break s,
                Err(e) if start.elapsed() >= patience => {
                    return Err(QmpError::Connect {
                        path: path.to_owned(),
                        source: e,
                    })
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        };
        stream.set_read_timeout(Some(REPLY_TIMEOUT))?;
        let writer = stream.try_clone()?;
        let mut q = Qmp {
            reader: BufReader::new(stream),
            writer,
            shutdown: false,
            scratch,
            partial: String::new(),
        };
        let greeting = q.read_message()?;
        if greeting.get("QMP").is_none() {
            return Err(QmpError::Protocol(greeting.to_string()));
        }
        q.execute("qmp_capabilities", json!({}))?;
        Ok(q)
    }

    fn read_message(&mut self) -> Result<Value, QmpError> {
        // A read that times out keeps what it got in `partial`, for the
        // next call to complete.
        if self.reader.read_line(&mut self.partial)? == 0 {
            return Err(QmpError::Closed);
        }
        if !self.partial.ends_with('\n') {
            return Err(QmpError::Io(std::io::ErrorKind::WouldBlock.into()));
        }
        let line = std::mem::take(&mut self.partial);
        let v: Value =
            serde_json::from_str(&line).map_err(|_| QmpError::Protocol(line.trim().to_owned()))?;
        if v.get("event").and_then(Value::as_str) == Some("SHUTDOWN") {
            self.shutdown = true;
        }
        Ok(v)
    }

    /// Runs `command` and returns its `return` value; events that arrive
    /// meanwhile are noted.
    pub fn execute(&mut self, command: &str, arguments: Value) -> Result<Value, QmpError> {
        let msg = json!({ "execute": command, "arguments": arguments });
        writeln!(self.writer, "{msg}")?;
        loop {
            let v = self.read_message()?;
            if let Some(r) = v.get("return") {
                return Ok(r.clone());
            }
            if let Some(e) = v.get("error") {
                return Err(QmpError::Refused {
                    command: command.to_owned(),
                    message: e
                        .get("desc")
                        .and_then(Value::as_str)
                        .unwrap_or("no description")
                        .to_owned(),
                });
            }
        }
    }

    /// Reads `len` bytes of guest-physical memory at `pa`.
    pub fn read_phys(&mut self, pa: u64, len: u64) -> Result<Vec<u8>, QmpError> {
        let file = self
            .scratch
            .to_str()
            .ok_or_else(|| QmpError::Protocol("scratch path is not UTF-8".into()))?
            .to_owned();
        self.execute(
            "pmemsave",
            json!({ "val": pa, "size": len, "filename": file }),
        )?;
        let bytes = std::fs::read(&self.scratch)?;
        if bytes.len() as u64 != len {
            return Err(QmpError::Protocol(format!(
                "pmemsave wrote {} bytes, asked for {len}",
                bytes.len()
            )));
        }
        Ok(bytes)
    }

    /// Waits up to `wait` for a `SHUTDOWN` event (returns whether one came).
    pub fn wait_shutdown(&mut self, wait: Duration) -> bool {
        if self.shutdown {
            return true;
        }
        let _ = self
            .reader
            .get_ref()
            .set_read_timeout(Some(wait.max(Duration::from_millis(1))));
        let deadline = Instant::now() + wait;
        while !self.shutdown && Instant::now() < deadline {
            if self.read_message().is_err() {
                break;
            }
        }
        let _ = self.reader.get_ref().set_read_timeout(Some(REPLY_TIMEOUT));
        self.shutdown
    }

    /// Looks for events already sent without waiting for them.
    pub fn poll_events(&mut self) {
        self.wait_shutdown(Duration::from_millis(1));
    }

    /// Asks QEMU to exit, and waits for it to answer or close the socket
    /// (a command still unread when we hang up could be dropped).
    pub fn quit(&mut self) {
        let _ = self.execute("quit", json!({}));
    }
}

impl Drop for Qmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.scratch);
    }
}
