//! The control socket of a running `parapet up`.
//!
//! [`Server::open`] binds the socket (refusing while another `parapet up`
//! answers on it, removing a stale socket file) and accepts connections on a
//! thread of its own, one thread per connection. While QEMU runs
//! ([`Server::attach`] to [`Server::detach`]) a request becomes a control
//! request line on QEMU's serial input, sent through the run's one serial
//! writer (so it never lands inside a line the user is typing); the run
//! loop hands every console line to [`Server::on_line`], which routes the
//! control domain's reply lines to the connection waiting for them and
//! keeps them off the console. Dropping the server answers what is still
//! waiting and removes the socket file.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parapet_abi::control::{self, Reply};

use super::{SocketError, ANSWER_TIMEOUT};
use crate::qemu::SerialInput;
use crate::transcript::split_prefix;

/// How long a client may take to send its request line.
const REQUEST_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest request line read from a client (longer ones are cut, then
/// refused by the request parser).
const REQUEST_LINE_MAX: u64 = 256;
/// How often the accept loop looks for a stop.
const POLL: Duration = Duration::from_millis(50);

/// What the run loop does with a console line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineUse {
    /// Print it, as any console line.
    Show,
    /// Do not print it: a reply line a client asked for.
    Hide,
    /// Do not print it; print this note (for stderr, after `parapet: `)
    /// instead: how a request ended.
    Note(String),
}

/// `parapet up`'s control socket.
#[derive(Debug)]
pub struct Server {
    path: PathBuf,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

#[derive(Debug)]
struct Shared {
    /// Whose console lines are replies.
    control_domain: Option<String>,
    /// How long to wait for an answer.
    timeout: Duration,
    stop: AtomicBool,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
enum Phase {
    /// Before QEMU runs (building, starting).
    #[default]
    Starting,
    /// QEMU runs: requests go to its serial input through this.
    Running(mpsc::Sender<SerialInput>),
    /// QEMU has ended.
    Stopped,
}

#[derive(Debug, Default)]
struct State {
    phase: Phase,
    /// The last id given to a request (ids start at 1).
    last_id: u32,
    pending: HashMap<u32, Pending>,
}

#[derive(Debug)]
struct Pending {
    /// `VERB [NAME]`, for the note.
    request: String,
    /// Where its reply lines go.
    tx: mpsc::Sender<Answer>,
}

/// One reply line for a waiting connection.
#[derive(Debug)]
struct Answer {
    line: String,
    last: bool,
}

impl Server {
    /// Opens the control socket at `path` (creating its directory) for a
    /// system whose control domain is `control_domain` (`None`: there is
    /// none, and every request gets an error at once).
    ///
    /// A socket that answers there belongs to another `parapet up`:
    /// [`SocketError::Running`]. A socket file nobody answers on is left
    /// over from a run that did not clean up (killed): it is removed.
    pub fn open(path: &Path, control_domain: Option<String>) -> Result<Server, SocketError> {
        Server::open_with(path, control_domain, ANSWER_TIMEOUT)
    }

    fn open_with(
        path: &Path,
        control_domain: Option<String>,
        timeout: Duration,
    ) -> Result<Server, SocketError> {
        let io = |source| SocketError::Io {
            path: path.to_owned(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        match UnixStream::connect(path) {
            Ok(_) => return Err(SocketError::Running(path.to_owned())),
            Err(_) if path.symlink_metadata().is_ok() => match std::fs::remove_file(path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(e)),
                _ => {}
            },
            Err(_) => {}
        }
        let listener = UnixListener::bind(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AddrInUse {
                SocketError::Running(path.to_owned())
            } else {
                io(e)
            }
        })?;
        listener.set_nonblocking(true).map_err(io)?;
        let shared = Arc::new(Shared {
            control_domain,
            timeout,
            stop: AtomicBool::new(false),
            state: Mutex::new(State::default()),
        });
        let accept = {
            let shared = Arc::clone(&shared);
            std::thread::spawn(move || accept_loop(&listener, &shared))
        };
        Ok(Server {
            path: path.to_owned(),
            shared,
            accept: Some(accept),
        })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The domain whose reply lines this server reads, if any.
    pub fn control_domain(&self) -> Option<&str> {
        self.shared.control_domain.as_deref()
    }

    /// QEMU runs: requests go to its serial input through `input`.
    pub fn attach(&self, input: mpsc::Sender<SerialInput>) {
        self.shared.lock().phase = Phase::Running(input);
    }

    /// QEMU has ended: requests still waiting get an error, new ones too.
    pub fn detach(&self) {
        let mut st = self.shared.lock();
        st.phase = Phase::Stopped;
        for (id, p) in st.pending.drain() {
            let _ = p.tx.send(Answer {
                line: Reply::Err {
                    id,
                    text: "the system stopped before the control domain answered",
                }
                .to_string(),
                last: true,
            });
        }
    }

    /// Looks at one console line (as QEMU printed it, `[name] text`): a
    /// reply line of the control domain to a request of ours goes to the
    /// connection that waits for it and is not shown ([`LineUse::Hide`],
    /// or [`LineUse::Note`] for the last line of an answer); so is the
    /// hypervisor's note that it dropped one of our requests. Any other
    /// line is shown.
    pub fn on_line(&self, line: &str) -> LineUse {
        let Some((prefix, text)) = split_prefix(line) else {
            return LineUse::Show;
        };
        if prefix == "hv" {
            return match dropped_request(text) {
                Some((id, why)) => {
                    let text = format!("the hypervisor dropped the request: {why}");
                    self.shared.route(id, &Reply::Err { id, text: &text })
                }
                None => LineUse::Show,
            };
        }
        if self.shared.control_domain.as_deref() != Some(prefix) {
            return LineUse::Show;
        }
        match control::parse_reply(text) {
            Some(reply) => self.shared.route(reply.id(), &reply),
            None => LineUse::Show,
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
        self.detach();
        let _ = std::fs::remove_file(&self.path);
    }
}

/// `control request `ID …` dropped: WHY`, as the hypervisor prints it when
/// no control domain runs: the id and why.
fn dropped_request(text: &str) -> Option<(u32, &str)> {
    let (request, why) = text
        .strip_prefix("control request `")?
        .split_once("` dropped: ")?;
    let id = request.split_ascii_whitespace().next()?.parse().ok()?;
    Some((id, why))
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hands a reply line to request `id`'s connection; hides the line if
    /// the id is one of ours (late answers included).
    fn route(&self, id: u32, reply: &Reply<'_>) -> LineUse {
        let mut st = self.lock();
        if id == 0 || id > st.last_id {
            // Not one of ours (typed by hand?): leave it on the console.
            return LineUse::Show;
        }
        let last = reply.is_last();
        let Some(p) = st.pending.get(&id) else {
            return LineUse::Hide;
        };
        let _ = p.tx.send(Answer {
            line: reply.to_string(),
            last,
        });
        if !last {
            return LineUse::Hide;
        }
        let request = st
            .pending
            .remove(&id)
            .map(|p| p.request)
            .unwrap_or_default();
        let outcome = match reply {
            Reply::Ok { text, .. } => format!("ok {text}"),
            Reply::Err { text, .. } => format!("err {text}"),
            Reply::Data { text, .. } => text.to_string(),
        };
        LineUse::Note(format!("control: {request}: {}", outcome.trim_end()))
    }

    /// Gives `text` (`VERB [NAME]`) an id and sends it to the control
    /// domain; its id and where its answer comes, or its id and why not.
    fn submit(&self, text: &str) -> Result<(u32, mpsc::Receiver<Answer>), (u32, String)> {
        let mut st = self.lock();
        st.last_id = st.last_id.saturating_add(1);
        let id = st.last_id;
        let line = format!("{id} {text}");
        let request =
            control::parse_request(&line).map_err(|e| (id, format!("bad request: {e}")))?;
        let mut shown = request.command.verb().to_owned();
        if let Some(name) = request.command.name() {
            shown = format!("{shown} {name}");
        }
        if self.control_domain.is_none() {
            return Err((
                id,
                "this scenario has no control domain: give it a driver domain, or give one domain control = true".into(),
            ));
        }
        let input = match &st.phase {
            Phase::Starting => return Err((
                id,
                "the system is still starting (building or booting QEMU): try again in a moment"
                    .into(),
            )),
            Phase::Stopped => return Err((id, "the system has stopped".into())),
            Phase::Running(input) => input.clone(),
        };
        let (tx, rx) = mpsc::channel();
        st.pending.insert(id, Pending { request: shown, tx });
        // Registered first: the answer cannot overtake it.
        if input
            .send(SerialInput::Control(request.to_string()))
            .is_err()
        {
            st.pending.remove(&id);
            return Err((id, "the system has stopped".into()));
        }
        Ok((id, rx))
    }

    /// Answers one request (`VERB [NAME]`): emits each reply line, the last
    /// one an `ok` or `err`.
    fn answer(&self, text: &str, emit: &mut dyn FnMut(&str)) {
        let (id, rx) = match self.submit(text) {
            Ok(x) => x,
            Err((id, why)) => return emit(&Reply::Err { id, text: &why }.to_string()),
        };
        let deadline = Instant::now() + self.timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(a) => {
                    emit(&a.line);
                    if a.last {
                        return;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    self.lock().pending.remove(&id);
                    let why = format!(
                        "the control domain did not answer within {} s (does it run, and serve control requests?)",
                        self.timeout.as_secs()
                    );
                    return emit(&Reply::Err { id, text: &why }.to_string());
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let why = "the system stopped before the control domain answered";
                    return emit(&Reply::Err { id, text: why }.to_string());
                }
            }
        }
    }
}

fn accept_loop(listener: &UnixListener, shared: &Arc<Shared>) {
    while !shared.stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                let shared = Arc::clone(shared);
                std::thread::spawn(move || serve(&shared, &stream));
            }
            // WouldBlock, or a failed accept: look again shortly.
            Err(_) => std::thread::sleep(POLL),
        }
    }
}

/// One connection: one request line in, its answer out, then close.
fn serve(shared: &Shared, stream: &UnixStream) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(REQUEST_READ_TIMEOUT));
    let _ = stream.set_write_timeout(Some(REQUEST_READ_TIMEOUT));
    let mut line = Vec::new();
    let mut reader = BufReader::new(stream.take(REQUEST_LINE_MAX));
    match reader.read_until(b'\n', &mut line) {
        // A probe (another `parapet up` checking the socket), or nothing.
        Ok(0) | Err(_) => return,
        Ok(_) => {}
    }
    let text = String::from_utf8_lossy(&line);
    let mut out = stream;
    shared.answer(text.trim(), &mut |reply| {
        let _ = out
            .write_all(reply.as_bytes())
            .and_then(|()| out.write_all(b"\n"));
    });
    let _ = out.flush();
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::control::client;
    use parapet_abi::control::Command;

    /// A fresh directory for a socket.
    pub(crate) fn scratch(tag: &str) -> PathBuf {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::SeqCst);
        let dir =
            std::env::temp_dir().join(format!("parapet-ctl-{}-{tag}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    /// A server for control domain `driver` attached to a fake QEMU: a
    /// thread that plays the control domain, answering each request with
    /// `answer(id, request)` (console lines) through `on_line`.
    fn fake_system(
        tag: &str,
        timeout: Duration,
        answer: impl Fn(u32, &str) -> Vec<String> + Send + 'static,
    ) -> (Arc<Server>, Arc<Mutex<Vec<LineUse>>>) {
        let path = scratch(tag).join("parapet").join("control.sock");
        let server = Arc::new(Server::open_with(&path, Some("driver".into()), timeout).unwrap());
        let (tx, rx) = mpsc::channel::<SerialInput>();
        server.attach(tx);
        let uses = Arc::new(Mutex::new(Vec::new()));
        let (s, u) = (Arc::clone(&server), Arc::clone(&uses));
        std::thread::spawn(move || {
            for input in rx {
                let SerialInput::Control(req) = input else {
                    continue;
                };
                let (id, rest) = req.split_once(' ').unwrap();
                for line in answer(id.parse().unwrap(), rest) {
                    let used = s.on_line(&line);
                    u.lock().unwrap().push(used);
                }
            }
        });
        (server, uses)
    }

    #[test]
    fn a_request_round_trip_through_the_socket() {
        let (server, uses) = fake_system("rt", Duration::from_secs(10), |id, req| {
            assert_eq!(req, "destroy guest-a");
            vec![
                format!("[guest-a] ctl:{id} ok not me: another domain's line"),
                format!("[driver] ctl:{id} | destroying"),
                format!("[driver] ctl:{id} ok destroyed guest-a"),
            ]
        });
        let answer = client::request(server.path(), &Command::Destroy("guest-a")).unwrap();
        assert_eq!(answer.data, ["destroying"]);
        assert!(answer.ok, "{answer:?}");
        assert_eq!(answer.text, "destroyed guest-a");
        // Only the control domain's lines are replies; they are kept off
        // the console, the last one becomes a note.
        assert_eq!(
            *uses.lock().unwrap(),
            [
                LineUse::Show,
                LineUse::Hide,
                LineUse::Note("control: destroy guest-a: ok destroyed guest-a".into())
            ]
        );
        // Ids count up; an error answer is an error.
        let (server, _) = fake_system("err", Duration::from_secs(10), |id, _| {
            vec![format!(
                "[driver] ctl:{id} err no domain `x`; known: driver"
            )]
        });
        let a = client::request(server.path(), &Command::Pause("x")).unwrap();
        assert!(!a.ok);
        assert_eq!(a.text, "no domain `x`; known: driver");
        let b = client::request(server.path(), &Command::Pause("x")).unwrap();
        assert_eq!(b.id, a.id + 1);
    }

    #[test]
    fn no_answer_times_out() {
        let (server, _) = fake_system("slow", Duration::from_millis(300), |_, _| Vec::new());
        let start = Instant::now();
        let a = client::request(server.path(), &Command::List).unwrap();
        assert!(start.elapsed() < Duration::from_secs(5));
        assert!(!a.ok);
        assert!(
            a.text
                .starts_with("the control domain did not answer within 0 s"),
            "{a:?}"
        );
        // A late answer stays off the console.
        assert_eq!(
            server.on_line(&format!("[driver] ctl:{} ok 3 domains", a.id)),
            LineUse::Hide
        );
        // Replies to ids we never gave are someone else's.
        assert_eq!(server.on_line("[driver] ctl:99 ok x"), LineUse::Show);
        assert_eq!(server.on_line("[driver] hello"), LineUse::Show);
        assert_eq!(server.on_line("no prefix"), LineUse::Show);
    }

    #[test]
    fn before_after_and_without_a_control_domain() {
        let path = scratch("phases").join("control.sock");
        let server = Server::open(&path, Some("driver".into())).unwrap();
        let a = client::request(&path, &Command::List).unwrap();
        assert!(!a.ok && a.text.contains("still starting"), "{a:?}");
        let (tx, rx) = mpsc::channel();
        server.attach(tx);
        // The hypervisor drops a request nobody can serve: answered at once.
        let waiter = {
            let path = path.clone();
            std::thread::spawn(move || client::request(&path, &Command::Create("b")))
        };
        let SerialInput::Control(req) = rx.recv().unwrap() else {
            panic!("not a control request")
        };
        let id: u32 = req.split(' ').next().unwrap().parse().unwrap();
        assert_eq!(req, format!("{id} create b"));
        let used = server.on_line(&format!(
            "[hv] control request `{req}` dropped: no control domain runs"
        ));
        assert!(matches!(used, LineUse::Note(_)), "{used:?}");
        let a = waiter.join().unwrap().unwrap();
        assert_eq!(
            a.text,
            "the hypervisor dropped the request: no control domain runs"
        );
        // A request in flight when QEMU ends gets an answer too.
        let waiter = {
            let path = path.clone();
            std::thread::spawn(move || client::request(&path, &Command::List))
        };
        let _ = rx.recv().unwrap();
        server.detach();
        let a = waiter.join().unwrap().unwrap();
        assert!(!a.ok && a.text.contains("stopped"), "{a:?}");
        drop(server);
        assert!(!path.exists(), "the socket is removed");

        let path = scratch("none").join("control.sock");
        let server = Server::open(&path, None).unwrap();
        let a = client::request(&path, &Command::List).unwrap();
        assert!(!a.ok && a.text.contains("no control domain"), "{a:?}");
        assert_eq!(server.control_domain(), None);
    }

    #[test]
    fn one_live_socket_and_stale_ones_are_replaced() {
        let path = scratch("twice").join("control.sock");
        let first = Server::open(&path, Some("driver".into())).unwrap();
        let e = Server::open(&path, Some("driver".into())).unwrap_err();
        assert!(matches!(e, SocketError::Running(_)), "{e}");
        assert!(
            e.to_string().contains("another `parapet up` is running"),
            "{e}"
        );
        // The probe did not disturb the first one.
        let a = client::request(&path, &Command::List).unwrap();
        assert!(a.text.contains("still starting"), "{a:?}");
        drop(first);
        // A socket file left by a killed run: nobody answers, it goes.
        let stale = UnixListener::bind(&path).unwrap();
        drop(stale);
        assert!(path.exists());
        let again = Server::open(&path, None).unwrap();
        assert!(client::request(&path, &Command::List).is_ok());
        drop(again);
    }

    #[test]
    fn the_dropped_line_is_parsed() {
        assert_eq!(
            dropped_request("control request `7 destroy a` dropped: no control domain runs"),
            Some((7, "no control domain runs"))
        );
        assert_eq!(dropped_request("control request `x` dropped: y"), None);
        assert_eq!(dropped_request("domain a exited"), None);
    }
}
