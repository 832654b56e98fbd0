//! The serial console transcript: recognising the hypervisor's lifecycle lines
//! and deciding the outcome of a run. Pure code.

use std::collections::{BTreeMap, BTreeSet};

/// Exit status: every domain finished cleanly.
pub const EXIT_OK: i32 = 0;
/// Exit status: a domain crashed or exited with a non-zero code.
pub const EXIT_DOMAIN_FAILED: i32 = 1;
/// Exit status: hypervisor panic, QEMU error, or any other failure of the platform.
pub const EXIT_PLATFORM: i32 = 2;
/// Exit status: the run timed out.
pub const EXIT_TIMEOUT: i32 = 3;
/// Exit status: stopped by Ctrl-C (SIGINT), as a shell reports it.
pub const EXIT_INTERRUPTED: i32 = 130;

/// A line recognised on the console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// `[NAME] text` from a domain, or an unrecognised `[hv]` line.
    Output {
        /// The prefix inside the brackets.
        source: String,
    },
    /// `[hv] domain NAME (id N, …`: the hypervisor created the domain (or
    /// created it again, after a restart).
    Started {
        /// The domain.
        domain: String,
    },
    /// `[hv] domain NAME loaded as id N, not started (autostart = false)`:
    /// the domain is loaded but waits for the control domain to create it;
    /// until it is, it is expected neither to start nor to end.
    Loaded {
        /// The domain.
        domain: String,
    },
    /// `[hv] domain NAME destroyed by the control domain`: an end, not a
    /// failure.
    Destroyed {
        /// The domain.
        domain: String,
    },
    /// `[hv] domain image at ADDR not started: WHY (bootargs `…`)`: a module
    /// the hypervisor refused.
    NotStarted {
        /// The domain, when its bootargs still name it.
        domain: Option<String>,
        /// Where the image is (`0x44020000`).
        addr: String,
        /// Why, with the bootargs as printed.
        reason: String,
    },
    /// `[hv] domain NAME exited: REASON (code N)`.
    Exited {
        /// The domain.
        domain: String,
        /// `poweroff`, …
        reason: String,
        /// The exit code, when given.
        code: Option<i64>,
    },
    /// `[hv] domain NAME crashed: REASON`.
    Crashed {
        /// The domain.
        domain: String,
        /// Why.
        reason: String,
    },
    /// `[hv] domain NAME restarted (N of M)`: the crash just before was
    /// handled by the domain's `on_crash = "restart"` policy.
    Restarted {
        /// The domain.
        domain: String,
        /// Which restart this is (1 for the first).
        nth: u32,
        /// Most restarts allowed.
        max: u32,
    },
    /// `[hv] all domains stopped: N ok, M failed[, R restarted]`.
    AllStopped {
        /// Domains that ended well.
        ok: u32,
        /// Domains that failed.
        failed: u32,
        /// Crashes after which the domain was restarted.
        restarted: u32,
    },
    /// `[hv] PANIC: ...`.
    Panic(String),
    /// Anything else (not prefixed).
    Other,
}

/// Splits `[prefix] rest` into `(prefix, rest)`.
pub fn split_prefix(line: &str) -> Option<(&str, &str)> {
    let rest = line.strip_prefix('[')?;
    let (prefix, rest) = rest.split_once(']')?;
    if prefix.is_empty() || prefix.contains(char::is_whitespace) {
        return None;
    }
    Some((prefix, rest.strip_prefix(' ').unwrap_or(rest)))
}

/// Classifies one console line (without its line terminator).
pub fn classify(line: &str) -> Event {
    let Some((prefix, text)) = split_prefix(line) else {
        return Event::Other;
    };
    if prefix != "hv" {
        return Event::Output {
            source: prefix.to_owned(),
        };
    }
    if let Some(p) = text.strip_prefix("PANIC:") {
        return Event::Panic(p.trim().to_owned());
    }
    if let Some(rest) = text.strip_prefix("all domains stopped:") {
        if let Some((ok, failed, restarted)) = parse_counts(rest) {
            return Event::AllStopped {
                ok,
                failed,
                restarted,
            };
        }
    }
    if let Some(rest) = text.strip_prefix("domain image at ") {
        if let Some((addr, reason)) = rest.split_once(" not started: ") {
            return Event::NotStarted {
                domain: refused_name(reason),
                addr: addr.to_owned(),
                reason: reason.to_owned(),
            };
        }
    }
    if let Some(rest) = text.strip_prefix("domain ") {
        if let Some((name, rest)) = rest.split_once(' ') {
            if rest.starts_with("(id ") {
                return Event::Started {
                    domain: name.to_owned(),
                };
            }
            if rest.starts_with("loaded as id ") && rest.contains(", not started") {
                return Event::Loaded {
                    domain: name.to_owned(),
                };
            }
            if rest == "destroyed by the control domain" {
                return Event::Destroyed {
                    domain: name.to_owned(),
                };
            }
            if let Some((nth, max)) = rest
                .strip_prefix("restarted (")
                .and_then(|r| r.strip_suffix(')'))
                .and_then(|r| r.split_once(" of "))
                .and_then(|(n, m)| Some((n.parse().ok()?, m.parse().ok()?)))
            {
                return Event::Restarted {
                    domain: name.to_owned(),
                    nth,
                    max,
                };
            }
            if let Some(reason) = rest.strip_prefix("crashed:") {
                return Event::Crashed {
                    domain: name.to_owned(),
                    reason: reason.trim().to_owned(),
                };
            }
            if let Some(what) = rest.strip_prefix("exited:") {
                let what = what.trim();
                let (reason, code) = match what.split_once("(code ") {
                    Some((r, c)) => (
                        r.trim().to_owned(),
                        c.trim_end_matches(')').trim().parse().ok(),
                    ),
                    None => (what.to_owned(), None),
                };
                return Event::Exited {
                    domain: name.to_owned(),
                    reason,
                    code,
                };
            }
        }
    }
    Event::Output {
        source: "hv".to_owned(),
    }
}

/// The domain named by the bootargs quoted at the end of a "not started"
/// line (`… (bootargs `name=… …`)`), read with the hypervisor's own parser;
/// `None` when they do not parse (often why the domain was refused).
fn refused_name(reason: &str) -> Option<String> {
    let (_, quoted) = reason.rsplit_once("(bootargs `")?;
    let args = quoted.strip_suffix("`)")?;
    parapet_abi::bootargs::parse_domain(args)
        .ok()
        .map(|c| c.name.to_owned())
}

fn parse_counts(s: &str) -> Option<(u32, u32, u32)> {
    let mut parts = s.split(',');
    let count = |part: Option<&str>, what: &str| -> Option<u32> {
        part?.trim().strip_suffix(what)?.trim().parse().ok()
    };
    let ok = count(parts.next(), "ok")?;
    let failed = count(parts.next(), "failed")?;
    let restarted = match parts.next() {
        Some(p) => count(Some(p), "restarted")?,
        None => 0,
    };
    if parts.next().is_some() {
        return None;
    }
    Some((ok, failed, restarted))
}

/// How a domain ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DomainEnd {
    /// Exited with this reason and code.
    Exited {
        /// `poweroff`, …
        reason: String,
        /// Exit code.
        code: Option<i64>,
    },
    /// Crashed.
    Crashed(String),
    /// Destroyed by the control domain (`parapet destroy`).
    Destroyed,
}

/// How the QEMU process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QemuEnd {
    /// Exited with this status code.
    Exited(i32),
    /// Killed by a signal (or no code available).
    Signalled,
    /// Killed by us because the timeout passed.
    TimedOut {
        /// The timeout, in seconds.
        secs: u64,
    },
    /// Killed by us because it did not exit after the hypervisor was done.
    Hung,
    /// Stopped on purpose, a normal end: a service's `--timeout`, or the
    /// caller.
    Stopped {
        /// How long it ran, in seconds.
        secs: u64,
        /// Why, e.g. `--timeout`.
        why: &'static str,
    },
    /// Stopped by Ctrl-C.
    Interrupted {
        /// How long it ran, in seconds.
        secs: u64,
    },
}

/// The decision of a run: exit status and summary lines for stderr.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Process exit status for `parapet up`.
    pub exit_code: i32,
    /// Summary lines (without the `parapet: ` prefix).
    pub summary: Vec<String>,
}

/// One reason the run failed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Failure {
    domain: String,
    text: String,
    /// A crash, which a restart that follows turns into a restart.
    crash: bool,
}

/// A crash after which the domain was started again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restart {
    /// The domain.
    pub domain: String,
    /// Why it crashed.
    pub reason: String,
    /// Which restart it was (1 for the first).
    pub nth: u32,
    /// Most restarts allowed.
    pub max: u32,
}

/// The state gathered from the console of one run.
#[derive(Debug, Clone, Default)]
pub struct Transcript {
    domains: Vec<String>,
    started: BTreeSet<String>,
    /// Loaded with `autostart = false` and not started since.
    waiting: BTreeSet<String>,
    ends: BTreeMap<String, DomainEnd>,
    failures: Vec<Failure>,
    restarts: Vec<Restart>,
    all_stopped: Option<(u32, u32, u32)>,
    panic: Option<String>,
}

impl Transcript {
    /// A transcript for a scenario with these domains (driver first).
    pub fn new(domains: Vec<String>) -> Self {
        Transcript {
            domains,
            ..Default::default()
        }
    }

    /// Takes one console line into account and returns what it was.
    pub fn feed(&mut self, line: &str) -> Event {
        let ev = classify(line);
        match &ev {
            Event::Exited {
                domain,
                reason,
                code,
            } => {
                let text = match code {
                    Some(0) => None,
                    Some(c) => Some(format!("domain '{domain}' exited with code {c}")),
                    None if reason == "poweroff" => None,
                    None => Some(format!("domain '{domain}' exited: {reason}")),
                };
                if let Some(text) = text {
                    self.failures.push(Failure {
                        domain: domain.clone(),
                        text,
                        crash: false,
                    });
                }
                self.ends.insert(
                    domain.clone(),
                    DomainEnd::Exited {
                        reason: reason.clone(),
                        code: *code,
                    },
                );
            }
            Event::Crashed { domain, reason } => {
                self.failures.push(Failure {
                    domain: domain.clone(),
                    text: format!("domain '{domain}' crashed: {reason}"),
                    crash: true,
                });
                self.ends
                    .insert(domain.clone(), DomainEnd::Crashed(reason.clone()));
            }
            Event::Restarted { domain, nth, max } => {
                // The domain's last crash is not a failure: it runs again.
                if let Some(i) = self
                    .failures
                    .iter()
                    .rposition(|f| f.crash && f.domain == *domain)
                {
                    self.failures.remove(i);
                }
                let reason = match self.ends.remove(domain) {
                    Some(DomainEnd::Crashed(r)) => r,
                    _ => "?".to_owned(),
                };
                self.restarts.push(Restart {
                    domain: domain.clone(),
                    reason,
                    nth: *nth,
                    max: *max,
                });
            }
            Event::Started { domain } => {
                // Started at boot, restarted, or created by the control
                // domain (perhaps again): it runs, and must end again.
                self.started.insert(domain.clone());
                self.waiting.remove(domain);
                self.ends.remove(domain);
            }
            Event::Loaded { domain } => {
                self.waiting.insert(domain.clone());
            }
            Event::Destroyed { domain } => {
                self.ends.insert(domain.clone(), DomainEnd::Destroyed);
            }
            Event::NotStarted {
                domain,
                addr,
                reason,
            } => self.failures.push(Failure {
                domain: domain.clone().unwrap_or_default(),
                text: match domain {
                    Some(d) => format!("domain '{d}' (image at {addr}) was not started: {reason}"),
                    None => format!("the domain image at {addr} was not started: {reason}"),
                },
                crash: false,
            }),
            Event::AllStopped {
                ok,
                failed,
                restarted,
            } => self.all_stopped = Some((*ok, *failed, *restarted)),
            Event::Panic(msg) => {
                if self.panic.is_none() {
                    self.panic = Some(msg.clone());
                }
            }
            Event::Output { .. } | Event::Other => {}
        }
        ev
    }

    /// Whether the hypervisor said it is done (all stopped or panicked).
    pub fn finished(&self) -> bool {
        self.all_stopped.is_some() || self.panic.is_some()
    }

    /// The scenario's domain names, driver first.
    pub fn domain_names(&self) -> &[String] {
        &self.domains
    }

    /// How each domain that reported an end ended (a restarted domain's
    /// crash is not an end, and a domain created again has not ended until
    /// it reports an end again).
    pub fn ends(&self) -> &BTreeMap<String, DomainEnd> {
        &self.ends
    }

    /// The crashes after which a domain was restarted, in order.
    pub fn restarts(&self) -> &[Restart] {
        &self.restarts
    }

    /// Domains loaded with `autostart = false` that have not been started
    /// (created by the control domain) since, in name order.
    pub fn waiting(&self) -> impl Iterator<Item = &str> {
        self.waiting.iter().map(String::as_str)
    }

    /// Domains of the scenario that never reported an end (since they last
    /// started), in scenario order; a domain loaded with `autostart = false`
    /// and never created is not running.
    pub fn still_running(&self) -> Vec<&str> {
        self.domains
            .iter()
            .filter(|d| !self.ends.contains_key(*d) && !self.waiting.contains(*d))
            .map(String::as_str)
            .collect()
    }

    fn still_running_text(&self) -> String {
        let r = self.still_running();
        if r.is_empty() {
            "none".to_owned()
        } else {
            r.join(", ")
        }
    }

    /// Decides the outcome once QEMU has ended. A crash or a non-zero exit
    /// fails the run ([`EXIT_DOMAIN_FAILED`]), and so does, once the
    /// hypervisor has said that all domains stopped, a scenario domain it
    /// never announced (`domain NAME (id …`) nor loaded without starting
    /// (`autostart = false`), refused (`domain image at … not started:`) or
    /// that reported no end (`exited`, `crashed` or `destroyed`) since it
    /// last started.
    pub fn outcome(&self, qemu: QemuEnd) -> Outcome {
        let mut summary = Vec::new();
        let mut code = EXIT_OK;
        let raise = |c: i32, code: &mut i32| {
            // Priority: panic/platform (2) and timeout (3) over domain failure (1).
            if *code == EXIT_OK || (*code == EXIT_DOMAIN_FAILED && c != EXIT_OK) {
                *code = c;
            }
        };
        if let Some(p) = &self.panic {
            summary.push(format!("hypervisor panic: {p}"));
            raise(EXIT_PLATFORM, &mut code);
        }
        if let QemuEnd::TimedOut { secs } = qemu {
            summary.push(format!(
                "timeout after {secs} s; still running: {}",
                self.still_running_text()
            ));
            raise(EXIT_TIMEOUT, &mut code);
        }
        let stopped = matches!(qemu, QemuEnd::Stopped { .. } | QemuEnd::Interrupted { .. });
        match qemu {
            QemuEnd::Stopped { secs, why } => {
                summary.push(format!("stopped after {secs} s ({why})"))
            }
            QemuEnd::Interrupted { secs } => {
                summary.push(format!("interrupted (Ctrl-C) after {secs} s"))
            }
            _ => {}
        }
        if stopped && !self.still_running().is_empty() {
            summary.push(format!("still running: {}", self.still_running_text()));
        }
        let ended_by_us = stopped || matches!(qemu, QemuEnd::TimedOut { .. });
        for r in &self.restarts {
            // Visible, but not a failure: the domain ran again.
            summary.push(format!(
                "domain '{}' crashed and was restarted ({} of {}): {}",
                r.domain, r.nth, r.max, r.reason
            ));
        }
        for f in &self.failures {
            summary.push(f.text.clone());
            raise(EXIT_DOMAIN_FAILED, &mut code);
        }
        if let Some((_, failed, _)) = self.all_stopped {
            if failed > 0 && self.failures.is_empty() {
                summary.push(format!("the hypervisor reports {failed} failed domain(s)"));
                raise(EXIT_DOMAIN_FAILED, &mut code);
            }
        }
        match qemu {
            QemuEnd::Exited(0)
            | QemuEnd::TimedOut { .. }
            | QemuEnd::Stopped { .. }
            | QemuEnd::Interrupted { .. } => {}
            QemuEnd::Exited(s) => {
                summary.push(format!("qemu exited with status {s}"));
                raise(EXIT_PLATFORM, &mut code);
            }
            QemuEnd::Signalled => {
                summary.push("qemu was killed by a signal".to_owned());
                raise(EXIT_PLATFORM, &mut code);
            }
            QemuEnd::Hung => {
                summary
                    .push("qemu did not exit after the hypervisor finished; killed it".to_owned());
                raise(EXIT_PLATFORM, &mut code);
            }
        }
        if self.all_stopped.is_none() && self.panic.is_none() && !ended_by_us {
            summary.push(format!(
                "qemu ended before the hypervisor reported that all domains stopped; no end reported for: {}",
                self.still_running_text()
            ));
            raise(EXIT_PLATFORM, &mut code);
        } else if !ended_by_us && self.panic.is_none() {
            // The hypervisor says every domain stopped: each of the scenario's
            // must have started and ended, or the run did not do what it says.
            for d in &self.domains {
                if self.failures.iter().any(|f| f.domain == *d) {
                    continue;
                }
                let text = if self.waiting.contains(d) {
                    // autostart = false, and never created: as expected.
                    continue;
                } else if !self.started.contains(d) {
                    format!("domain '{d}' was never started (the hypervisor did not announce it)")
                } else if !self.ends.contains_key(d) {
                    format!("domain '{d}' reported no end (neither exited, crashed nor was destroyed) before all domains stopped")
                } else {
                    continue;
                };
                summary.push(text);
                raise(EXIT_DOMAIN_FAILED, &mut code);
            }
        } else if !ended_by_us && !self.still_running().is_empty() {
            summary.push(format!(
                "no end reported for: {}",
                self.still_running_text()
            ));
        }
        if let QemuEnd::Interrupted { .. } = qemu {
            code = EXIT_INTERRUPTED;
        } else if code == EXIT_OK && !stopped {
            let (ok, failed, restarted) = self.all_stopped.unwrap_or_default();
            let mut line = format!("all domains stopped: {ok} ok, {failed} failed");
            if restarted > 0 {
                line += &format!(", {restarted} restarted");
            }
            summary.push(line);
        }
        Outcome {
            exit_code: code,
            summary,
        }
    }
}

const COLOURS: [&str; 6] = ["36", "32", "33", "35", "34", "96"];

/// Renders a console line for the terminal; when `colour` is set, the
/// `[prefix]` is coloured (the hypervisor bold, domains by position).
pub fn render(line: &str, domains: &[String], colour: bool) -> String {
    if !colour {
        return line.to_owned();
    }
    match split_prefix(line) {
        Some((prefix, _)) => {
            let code = if prefix == "hv" {
                "1"
            } else {
                let i = domains.iter().position(|d| d == prefix).unwrap_or(0);
                COLOURS[i % COLOURS.len()]
            };
            let plen = prefix.len() + 2;
            format!("\x1b[{code}m{}\x1b[0m{}", &line[..plen], &line[plen..])
        }
        None => line.to_owned(),
    }
}

#[cfg(test)]
mod tests;
