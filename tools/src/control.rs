//! Domains at run time from the host: `parapet list`, `create`, `destroy`,
//! `pause` and `unpause` reach the control domain of the running `parapet
//! up` through a Unix socket, [`socket_path`].
//!
//! - [`server`]: `parapet up` listens on the socket. For each connection it
//!   reads one request line (`VERB [NAME]`), gives it an id, writes it to
//!   QEMU's serial input as a control request (`parapet_abi::control`), and
//!   sends back the control domain's reply lines for that id, which it keeps
//!   off the user's console.
//! - [`client`]: the subcommands: connect, send the request, print the
//!   answer ([`list`] turns the answer of `list` into a table).
//!
//! On the socket, the request is one line, `VERB [NAME]\n`; the answer is
//! the control domain's reply lines as it printed them (`ctl:ID | TEXT`
//! data lines, then one `ctl:ID ok TEXT` or `ctl:ID err TEXT`), after which
//! the server closes the connection. `parapet up`'s own errors (no control
//! domain, no answer in time, the system stopped) come as `ctl:ID err …`
//! lines too.
#![deny(unsafe_code)]

pub mod client;
pub mod list;
pub mod server;

use std::path::{Path, PathBuf};
use std::time::Duration;

/// The socket's file name, in `<target dir>/parapet/`.
pub const SOCKET_FILE: &str = "control.sock";

/// How long `parapet up` waits for the control domain's answer to one
/// request.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(15);

/// The control socket of the checkout whose target directory is
/// `target_dir`: `<target_dir>/parapet/control.sock`.
pub fn socket_path(target_dir: &Path) -> PathBuf {
    target_dir.join("parapet").join(SOCKET_FILE)
}

/// The checkout's target directory, as `cargo metadata` reports it (the
/// one `parapet` builds into).
pub fn target_dir(root: &Path) -> Result<PathBuf, crate::build::BuildError> {
    Ok(crate::build::metadata(root)?.target_dir)
}

/// The socket could not be opened by `parapet up`.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    /// Another `parapet up` answers on the socket.
    #[error(
        "another `parapet up` is running: its control socket {} answers; stop it (Ctrl-C) \
         or wait for it to end before starting another",
        .0.display()
    )]
    Running(PathBuf),
    /// The socket could not be created.
    #[error("cannot open the control socket {path}: {source}")]
    Io {
        /// The socket.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}
