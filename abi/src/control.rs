//! The control channel's text protocol, between the host tool (`parapet
//! list/create/destroy/pause/unpause`, through the running `parapet up`) and
//! the control domain, which serves requests with domain-control
//! hypercalls ([`crate::domctl`]).
//!
//! - **Requests** travel on the serial input: a line that starts with
//!   [`REQUEST_MARKER`] (DLE, which a keyboard does not type) is a control
//!   request; the hypervisor queues it apart from console input and raises
//!   `Virq::Control` in the control domain, which reads it with
//!   `ControlRead`. After the marker: `ID VERB [NAME]`, e.g. `7 destroy guest-a`.
//! - **Replies** are console lines of the control domain: any number of
//!   `ctl:ID | TEXT` data lines, then one `ctl:ID ok TEXT` or `ctl:ID err
//!   TEXT`. The host only believes replies prefixed with the control domain's
//!   name.
//!
//! Parsing never trusts its input: every malformed line is a typed error.

use core::fmt;

/// First byte of a control request line on the serial input.
pub const REQUEST_MARKER: u8 = 0x10;

/// Longest request line (after the marker), in bytes.
pub const REQUEST_MAX: usize = 64;

/// What the host asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command<'a> {
    /// Every domain, with totals.
    List,
    /// Create the named domain.
    Create(&'a str),
    /// Destroy the named domain.
    Destroy(&'a str),
    /// Pause the named domain.
    Pause(&'a str),
    /// Unpause the named domain.
    Unpause(&'a str),
}

impl<'a> Command<'a> {
    /// The verb, as written.
    pub const fn verb(&self) -> &'static str {
        match self {
            Command::List => "list",
            Command::Create(_) => "create",
            Command::Destroy(_) => "destroy",
            Command::Pause(_) => "pause",
            Command::Unpause(_) => "unpause",
        }
    }

    /// The domain it names, if any.
    pub const fn name(&self) -> Option<&'a str> {
        match *self {
            Command::List => None,
            Command::Create(n) | Command::Destroy(n) | Command::Pause(n) | Command::Unpause(n) => {
                Some(n)
            }
        }
    }
}

/// One request: an id (to match its replies) and a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request<'a> {
    /// Chosen by the host, echoed in every reply line.
    pub id: u32,
    /// What to do.
    pub command: Command<'a>,
}

/// A malformed request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ControlError<'a> {
    /// Nothing but blanks.
    Empty,
    /// The id is not a number.
    BadId(&'a str),
    /// Not one of the verbs.
    UnknownVerb(&'a str),
    /// The verb needs a domain name.
    MissingName(&'static str),
    /// Words after the request.
    TrailingWords(&'a str),
    /// Not a domain name (`[a-z0-9_-]{1,31}`).
    BadName(&'a str),
    /// Longer than [`REQUEST_MAX`].
    TooLong,
}

impl fmt::Display for ControlError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ControlError::Empty => f.write_str("empty request"),
            ControlError::BadId(w) => write!(f, "bad request id `{w}`"),
            ControlError::UnknownVerb(w) => write!(
                f,
                "unknown command `{w}` (list, create, destroy, pause, unpause)"
            ),
            ControlError::MissingName(v) => write!(f, "`{v}` needs a domain name"),
            ControlError::TrailingWords(w) => write!(f, "unexpected `{w}`"),
            ControlError::BadName(w) => write!(f, "`{w}` is not a domain name"),
            ControlError::TooLong => write!(f, "request longer than {REQUEST_MAX} bytes"),
        }
    }
}

/// Whether `name` is a valid domain name (as scenarios allow).
pub fn is_domain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() < crate::start_info::NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// Parses a request line (without the marker and the newline).
pub fn parse_request(line: &str) -> Result<Request<'_>, ControlError<'_>> {
    if line.len() > REQUEST_MAX {
        return Err(ControlError::TooLong);
    }
    let mut words = line.split_ascii_whitespace();
    let id_word = words.next().ok_or(ControlError::Empty)?;
    let id = id_word
        .parse::<u32>()
        .map_err(|_| ControlError::BadId(id_word))?;
    let verb = words.next().ok_or(ControlError::UnknownVerb(""))?;
    let mut name = |verb: &'static str| -> Result<&str, ControlError<'_>> {
        let n = words.next().ok_or(ControlError::MissingName(verb))?;
        if is_domain_name(n) {
            Ok(n)
        } else {
            Err(ControlError::BadName(n))
        }
    };
    let command = match verb {
        "list" => Command::List,
        "create" => Command::Create(name("create")?),
        "destroy" => Command::Destroy(name("destroy")?),
        "pause" => Command::Pause(name("pause")?),
        "unpause" => Command::Unpause(name("unpause")?),
        other => return Err(ControlError::UnknownVerb(other)),
    };
    match words.next() {
        Some(extra) => Err(ControlError::TrailingWords(extra)),
        None => Ok(Request { id, command }),
    }
}

impl fmt::Display for Request<'_> {
    /// The request line, without the marker.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.id, self.command.verb())?;
        match self.command.name() {
            Some(n) => write!(f, " {n}"),
            None => Ok(()),
        }
    }
}

/// One reply line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply<'a> {
    /// A line of the answer (more follow).
    Data {
        /// The request's id.
        id: u32,
        /// The text.
        text: &'a str,
    },
    /// The request succeeded (the last line).
    Ok {
        /// The request's id.
        id: u32,
        /// A summary.
        text: &'a str,
    },
    /// The request failed (the last line).
    Err {
        /// The request's id.
        id: u32,
        /// Why.
        text: &'a str,
    },
}

impl Reply<'_> {
    /// The request it answers.
    pub fn id(&self) -> u32 {
        match *self {
            Reply::Data { id, .. } | Reply::Ok { id, .. } | Reply::Err { id, .. } => id,
        }
    }

    /// Whether it ends the answer.
    pub fn is_last(&self) -> bool {
        !matches!(self, Reply::Data { .. })
    }
}

/// Parses a console line of the control domain (after its `[name] ` prefix)
/// as a reply; `None` if it is not one.
pub fn parse_reply(line: &str) -> Option<Reply<'_>> {
    let rest = line.strip_prefix("ctl:")?;
    let (id, rest) = rest.split_once(' ')?;
    let id = id.parse().ok()?;
    let (kind, text) = rest.split_once(' ').unwrap_or((rest, ""));
    match kind {
        "|" => Some(Reply::Data { id, text }),
        "ok" => Some(Reply::Ok { id, text }),
        "err" => Some(Reply::Err { id, text }),
        _ => None,
    }
}

impl fmt::Display for Reply<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reply::Data { id, text } => write!(f, "ctl:{id} | {text}"),
            Reply::Ok { id, text } => write!(f, "ctl:{id} ok {text}"),
            Reply::Err { id, text } => write!(f, "ctl:{id} err {text}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip() {
        for command in [
            Command::List,
            Command::Create("guest-a"),
            Command::Destroy("g_1"),
            Command::Pause("x"),
            Command::Unpause("driver"),
        ] {
            let r = Request { id: 42, command };
            let text = r.to_string();
            assert_eq!(parse_request(&text), Ok(r), "{text}");
        }
        assert_eq!(
            parse_request("  7   destroy   guest-a  "),
            Ok(Request {
                id: 7,
                command: Command::Destroy("guest-a")
            })
        );
    }

    #[test]
    fn bad_requests_are_typed_errors() {
        assert_eq!(parse_request(""), Err(ControlError::Empty));
        assert_eq!(parse_request("   "), Err(ControlError::Empty));
        assert_eq!(parse_request("x list"), Err(ControlError::BadId("x")));
        assert_eq!(parse_request("-1 list"), Err(ControlError::BadId("-1")));
        assert_eq!(parse_request("1"), Err(ControlError::UnknownVerb("")));
        assert_eq!(
            parse_request("1 reboot a"),
            Err(ControlError::UnknownVerb("reboot"))
        );
        assert_eq!(
            parse_request("1 create"),
            Err(ControlError::MissingName("create"))
        );
        assert_eq!(parse_request("1 pause A"), Err(ControlError::BadName("A")));
        assert_eq!(
            parse_request("1 pause a/b"),
            Err(ControlError::BadName("a/b"))
        );
        assert_eq!(
            parse_request("1 list x"),
            Err(ControlError::TrailingWords("x"))
        );
        assert_eq!(
            parse_request("1 destroy a b"),
            Err(ControlError::TrailingWords("b"))
        );
        let long = format!("1 destroy {}", "a".repeat(80));
        assert_eq!(parse_request(&long), Err(ControlError::TooLong));
        let name = "a".repeat(40);
        let line = format!("1 destroy {name}");
        assert_eq!(parse_request(&line), Err(ControlError::BadName(&name)));
        for e in [
            ControlError::Empty,
            ControlError::TooLong,
            ControlError::BadId("z"),
        ] {
            assert!(!e.to_string().is_empty());
        }
    }

    #[test]
    fn replies_round_trip_and_other_lines_are_not_replies() {
        for r in [
            Reply::Data {
                id: 3,
                text: "guest-a running",
            },
            Reply::Ok {
                id: 3,
                text: "3 domains",
            },
            Reply::Err {
                id: 9,
                text: "no domain `x`",
            },
            Reply::Ok { id: 1, text: "" },
        ] {
            let line = r.to_string();
            let back = parse_reply(&line).unwrap();
            assert_eq!(back.id(), r.id());
            assert_eq!(back.is_last(), r.is_last());
            if !line.ends_with(' ') {
                assert_eq!(back, r);
            }
        }
        for line in ["ctl:x ok", "ctl:1 maybe", "hello", "ctl:", "ctl:2"] {
            assert_eq!(parse_reply(line), None, "{line}");
        }
    }
}
