//! The serial console transcript: recognising the hypervisor's lifecycle lines
//! and deciding the outcome of a run. Pure code.

use std::collections::BTreeMap;

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
    if let Some(rest) = text.strip_prefix("domain ") {
        if let Some((name, rest)) = rest.split_once(' ') {
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
    /// crash is not an end).
    pub fn ends(&self) -> &BTreeMap<String, DomainEnd> {
        &self.ends
    }

    /// The crashes after which a domain was restarted, in order.
    pub fn restarts(&self) -> &[Restart] {
        &self.restarts
    }

    /// Domains of the scenario that never reported an end, in scenario order.
    pub fn still_running(&self) -> Vec<&str> {
        self.domains
            .iter()
            .filter(|d| !self.ends.contains_key(*d))
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

    /// Decides the outcome once QEMU has ended.
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
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        ["driver", "guest-a", "guest-b"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    fn feed(lines: &str) -> Transcript {
        let mut t = Transcript::new(names());
        for l in lines.lines() {
            t.feed(l);
        }
        t
    }

    #[test]
    fn classify_lines() {
        assert_eq!(
            classify("[guest-a] abi: negotiated 1.0"),
            Event::Output {
                source: "guest-a".into()
            }
        );
        assert_eq!(
            classify("[hv] domain guest-a exited: poweroff (code 0)"),
            Event::Exited {
                domain: "guest-a".into(),
                reason: "poweroff".into(),
                code: Some(0)
            }
        );
        assert_eq!(
            classify("[hv] domain faulty crashed: stage-2 data abort at FAR 0x1234"),
            Event::Crashed {
                domain: "faulty".into(),
                reason: "stage-2 data abort at FAR 0x1234".into()
            }
        );
        assert_eq!(
            classify("[hv] all domains stopped: 2 ok, 1 failed"),
            Event::AllStopped {
                ok: 2,
                failed: 1,
                restarted: 0
            }
        );
        assert_eq!(
            classify("[hv] all domains stopped: 3 ok, 0 failed, 2 restarted"),
            Event::AllStopped {
                ok: 3,
                failed: 0,
                restarted: 2
            }
        );
        assert_eq!(
            classify("[hv] domain driver restarted (1 of 5)"),
            Event::Restarted {
                domain: "driver".into(),
                nth: 1,
                max: 5
            }
        );
        // Not the lifecycle lines, only look alike.
        for other in [
            "[hv] all domains stopped: 3 ok, 0 failed, 2 rebooted",
            "[hv] domain driver restarted (soon)",
            "[hv] domain driver not restarted: it crashed again after 5 restarts (at most 5)",
        ] {
            assert_eq!(
                classify(other),
                Event::Output {
                    source: "hv".into()
                },
                "{other}"
            );
        }
        assert_eq!(
            classify("[hv] PANIC: oops at x.rs:3"),
            Event::Panic("oops at x.rs:3".into())
        );
        assert_eq!(
            classify("[hv] booting"),
            Event::Output {
                source: "hv".into()
            }
        );
        assert_eq!(classify("garbage"), Event::Other);
        assert_eq!(classify("[no close"), Event::Other);
    }

    #[test]
    fn success() {
        let t = feed(
            "[hv] boot\n[driver] up\n[guest-a] demo: done\n\
             [hv] domain guest-a exited: poweroff (code 0)\n\
             [hv] domain guest-b exited: poweroff (code 0)\n\
             [hv] domain driver exited: poweroff (code 0)\n\
             [hv] all domains stopped: 3 ok, 0 failed\n",
        );
        assert!(t.finished());
        let o = t.outcome(QemuEnd::Exited(0));
        assert_eq!(o.exit_code, EXIT_OK, "{o:?}");
    }

    #[test]
    fn crash_is_failure() {
        let t = feed(
            "[hv] domain guest-b crashed: stage-2 data abort, FAR 0x9000_0000\n\
             [hv] domain guest-a exited: poweroff (code 0)\n\
             [hv] domain driver exited: poweroff (code 0)\n\
             [hv] all domains stopped: 2 ok, 1 failed\n",
        );
        let o = t.outcome(QemuEnd::Exited(0));
        assert_eq!(o.exit_code, EXIT_DOMAIN_FAILED);
        assert_eq!(
            o.summary,
            ["domain 'guest-b' crashed: stage-2 data abort, FAR 0x9000_0000"]
        );
    }

    #[test]
    fn restarted_crash_is_not_a_failure_but_is_reported() {
        let t = feed(
            "[hv] domain driver crashed: stage-2 data abort (read) at IPA 0x1\n\
             [hv] domain driver stats: 9 hypercalls\n\
             [hv] domain driver restarted (1 of 5)\n\
             [hv] domain driver (id 0, driver domain): 64 MiB\n\
             [hv] domain guest-a exited: poweroff (code 0)\n\
             [hv] domain guest-b exited: poweroff (code 0)\n\
             [hv] domain driver exited: poweroff (code 0)\n\
             [hv] all domains stopped: 3 ok, 0 failed, 1 restarted\n",
        );
        assert_eq!(t.restarts().len(), 1);
        assert_eq!(
            t.restarts()[0].reason,
            "stage-2 data abort (read) at IPA 0x1"
        );
        let o = t.outcome(QemuEnd::Exited(0));
        assert_eq!(o.exit_code, EXIT_OK, "{o:?}");
        assert_eq!(
            o.summary,
            [
                "domain 'driver' crashed and was restarted (1 of 5): stage-2 data abort (read) at IPA 0x1",
                "all domains stopped: 3 ok, 0 failed, 1 restarted"
            ]
        );
    }

    #[test]
    fn a_crash_after_the_last_restart_is_a_failure() {
        let t = feed(
            "[hv] domain driver crashed: x\n\
             [hv] domain driver restarted (1 of 1)\n\
             [hv] domain driver crashed: y\n\
             [hv] domain driver not restarted: it crashed again after 1 restarts (at most 1)\n\
             [hv] domain guest-a exited: poweroff (code 0)\n\
             [hv] domain guest-b exited: poweroff (code 0)\n\
             [hv] all domains stopped: 2 ok, 1 failed, 1 restarted\n",
        );
        let o = t.outcome(QemuEnd::Exited(0));
        assert_eq!(o.exit_code, EXIT_DOMAIN_FAILED, "{o:?}");
        assert_eq!(
            o.summary,
            [
                "domain 'driver' crashed and was restarted (1 of 1): x",
                "domain 'driver' crashed: y"
            ]
        );
        assert_eq!(
            t.ends().get("driver"),
            Some(&DomainEnd::Crashed("y".into()))
        );
    }

    #[test]
    fn a_restarted_domain_that_never_ends_is_still_running() {
        let t = feed(
            "[hv] domain driver crashed: x\n\
             [hv] domain driver restarted (1 of 5)\n\
             [hv] domain guest-a exited: poweroff (code 0)\n",
        );
        assert_eq!(t.still_running(), ["driver", "guest-b"]);
        let o = t.outcome(QemuEnd::TimedOut { secs: 9 });
        assert_eq!(o.exit_code, EXIT_TIMEOUT);
    }

    #[test]
    fn nonzero_exit_is_failure() {
        let t = feed(
            "[hv] domain guest-a exited: poweroff (code 3)\n\
             [hv] all domains stopped: 2 ok, 1 failed\n",
        );
        let o = t.outcome(QemuEnd::Exited(0));
        assert_eq!(o.exit_code, EXIT_DOMAIN_FAILED);
        assert_eq!(o.summary[0], "domain 'guest-a' exited with code 3");
    }

    #[test]
    fn failed_count_without_line_is_failure() {
        let t = feed("[hv] all domains stopped: 2 ok, 1 failed\n");
        assert_eq!(t.outcome(QemuEnd::Exited(0)).exit_code, EXIT_DOMAIN_FAILED);
    }

    #[test]
    fn panic() {
        let t = feed("[hv] domain guest-a exited: poweroff (code 0)\n[hv] PANIC: bad thing\n");
        assert!(t.finished());
        let o = t.outcome(QemuEnd::Hung);
        assert_eq!(o.exit_code, EXIT_PLATFORM);
        assert_eq!(o.summary[0], "hypervisor panic: bad thing");
        assert!(
            o.summary.iter().any(|s| s.contains("driver, guest-b")),
            "{o:?}"
        );
    }

    #[test]
    fn timeout_names_running_domains() {
        let t = feed("[hv] domain guest-b exited: poweroff (code 0)\n");
        assert!(!t.finished());
        let o = t.outcome(QemuEnd::TimedOut { secs: 60 });
        assert_eq!(o.exit_code, EXIT_TIMEOUT);
        assert_eq!(
            o.summary,
            ["timeout after 60 s; still running: driver, guest-a"]
        );
    }

    #[test]
    fn silent_domain_is_named() {
        let t = feed(
            "[hv] domain guest-a exited: poweroff (code 0)\n\
             [hv] domain driver exited: poweroff (code 0)\n\
             [hv] all domains stopped: 2 ok, 0 failed\n",
        );
        let o = t.outcome(QemuEnd::Exited(0));
        assert!(
            o.summary
                .iter()
                .any(|s| s == "no end reported for: guest-b"),
            "{o:?}"
        );
    }

    #[test]
    fn timeout_beats_domain_failure() {
        let t = feed("[hv] domain guest-b crashed: x\n");
        let o = t.outcome(QemuEnd::TimedOut { secs: 5 });
        assert_eq!(o.exit_code, EXIT_TIMEOUT);
        assert_eq!(o.summary.len(), 2);
    }

    #[test]
    fn a_stopped_service_ends_well_unless_a_domain_failed() {
        let t = feed("[guest-a] serving\n");
        let o = t.outcome(QemuEnd::Stopped {
            secs: 30,
            why: "--timeout",
        });
        assert_eq!(o.exit_code, EXIT_OK, "{o:?}");
        assert_eq!(
            o.summary,
            [
                "stopped after 30 s (--timeout)",
                "still running: driver, guest-a, guest-b"
            ]
        );
        let t = feed("[hv] domain guest-b crashed: x\n");
        let o = t.outcome(QemuEnd::Stopped {
            secs: 30,
            why: "--timeout",
        });
        assert_eq!(o.exit_code, EXIT_DOMAIN_FAILED, "{o:?}");
        assert_eq!(o.summary[2], "domain 'guest-b' crashed: x");
        let t = feed("[hv] PANIC: boom\n");
        let o = t.outcome(QemuEnd::Stopped { secs: 1, why: "x" });
        assert_eq!(o.exit_code, EXIT_PLATFORM, "{o:?}");
    }

    #[test]
    fn ctrl_c_gives_130_and_the_summary() {
        let t = feed("[hv] domain guest-b crashed: x\n");
        let o = t.outcome(QemuEnd::Interrupted { secs: 7 });
        assert_eq!(o.exit_code, EXIT_INTERRUPTED);
        assert_eq!(
            o.summary,
            [
                "interrupted (Ctrl-C) after 7 s",
                "still running: driver, guest-a",
                "domain 'guest-b' crashed: x"
            ]
        );
    }

    #[test]
    fn qemu_error_and_missing_all_stopped() {
        let t = feed("[hv] all domains stopped: 3 ok, 0 failed\n");
        assert_eq!(t.outcome(QemuEnd::Exited(1)).exit_code, EXIT_PLATFORM);
        assert_eq!(t.outcome(QemuEnd::Signalled).exit_code, EXIT_PLATFORM);
        let t = feed("[guest-a] hello\n");
        let o = t.outcome(QemuEnd::Exited(0));
        assert_eq!(o.exit_code, EXIT_PLATFORM);
        assert!(o.summary[0].contains("driver, guest-a, guest-b"), "{o:?}");
    }

    #[test]
    fn render_colours_prefix_only() {
        let n = names();
        assert_eq!(render("[guest-a] hi", &n, false), "[guest-a] hi");
        assert_eq!(
            render("[guest-a] hi", &n, true),
            "\x1b[32m[guest-a]\x1b[0m hi"
        );
        assert_eq!(render("[hv] x", &n, true), "\x1b[1m[hv]\x1b[0m x");
        assert_eq!(render("plain", &n, true), "plain");
    }
}
