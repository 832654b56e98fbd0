//! The scenario keys of domains at run time: `control = true` (the domain
//! that may create, destroy, pause and unpause the others; by default the
//! driver domain) and `autostart = false` (loaded at boot but not started:
//! the control domain creates it later, `parapet create NAME`).
//!
//! Rules: at most one domain has `control = true`; the control domain and
//! the driver domain start at boot; a domain that does not start at boot
//! needs a control domain to create it.

use toml::Spanned;

use super::{Cx, Domain, RawDomain, Role, Scenario, ScenarioError};

impl Scenario {
    /// The control domain: the one with `control = true`, else the driver
    /// domain, else none (then nothing answers `parapet list` and the
    /// others).
    pub fn control_domain(&self) -> Option<&Domain> {
        self.domains
            .iter()
            .find(|d| d.control)
            .or_else(|| self.domains.iter().find(|d| d.role == Role::Driver))
    }
}

/// `control` and `autostart` of `domain[i]` (defaults `false` and `true`),
/// checked against the domains before it.
pub(super) fn keys(
    cx: &Cx<'_>,
    d: &RawDomain,
    i: usize,
    role: Role,
    earlier: &[Domain],
) -> Result<(bool, bool), ScenarioError> {
    let f = |name: &str| format!("domain[{i}].{name}");
    let control = match &d.control {
        Some(c) if *c.get_ref() => {
            if let Some(prev) = earlier.iter().find(|p| p.control) {
                return Err(cx.at(
                    c,
                    f("control"),
                    format!(
                        "domain {:?} is already the control domain: at most one domain may have control = true",
                        prev.name
                    ),
                ));
            }
            true
        }
        _ => false,
    };
    let autostart = match &d.autostart {
        Some(a) if !*a.get_ref() => {
            if control {
                return Err(cx.at(
                    a,
                    f("autostart"),
                    "the control domain must start at boot (it creates the others): remove autostart = false or control = true".into(),
                ));
            }
            if role == Role::Driver {
                return Err(cx.at(
                    a,
                    f("autostart"),
                    "the driver domain must start at boot (it serves the others' devices): remove autostart = false".into(),
                ));
            }
            false
        }
        _ => true,
    };
    Ok((control, autostart))
}

/// Once every domain is known: a domain that does not start at boot needs a
/// control domain to create it.
pub(super) fn check(
    cx: &Cx<'_>,
    domains: &[Domain],
    raw: &[Spanned<RawDomain>],
) -> Result<(), ScenarioError> {
    let has_control = domains.iter().any(|d| d.control || d.role == Role::Driver);
    if has_control {
        return Ok(());
    }
    let Some(d) = domains.iter().find(|d| !d.autostart) else {
        return Ok(());
    };
    let line = raw[d.index]
        .get_ref()
        .autostart
        .as_ref()
        .map(|a| cx.line(a.span().start));
    Err(cx.err(
        line,
        Some(format!("domain[{}].autostart", d.index)),
        "nothing could ever start this domain: the scenario has no control domain to create it \
         (add a driver domain, or give one domain control = true)"
            .into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::super::tests::{assert_err, parse_str};

    const DRIVER: &str = "[[domain]]\nname = \"driver\"\nrole = \"driver\"\nimage = \"x\"\n";

    #[test]
    fn defaults_and_the_control_domain() {
        let s = parse_str(&format!(
            "{DRIVER}[[domain]]\nname = \"a\"\nimage = \"x\"\n\
             [[domain]]\nname = \"later\"\nimage = \"x\"\nautostart = false\n"
        ))
        .unwrap();
        let flags: Vec<(&str, bool, bool)> = s
            .domains
            .iter()
            .map(|d| (d.name.as_str(), d.control, d.autostart))
            .collect();
        assert_eq!(
            flags,
            [
                ("driver", false, true),
                ("a", false, true),
                ("later", false, false)
            ]
        );
        // By default the driver domain is the control domain.
        assert_eq!(s.control_domain().map(|d| d.name.as_str()), Some("driver"));

        // control = true moves it; autostart = true is the default, written out.
        let s = parse_str(&format!(
            "{DRIVER}[[domain]]\nname = \"boss\"\nimage = \"x\"\ncontrol = true\nautostart = true\n\
             [[domain]]\nname = \"b\"\nimage = \"x\"\ncontrol = false\n"
        ))
        .unwrap();
        assert_eq!(s.control_domain().map(|d| d.name.as_str()), Some("boss"));
        assert!(s.domains.iter().all(|d| d.autostart));

        // A scenario without a driver domain has a control domain only if
        // one is marked.
        let s = parse_str("[[domain]]\nname = \"a\"\nimage = \"x\"\n").unwrap();
        assert_eq!(s.control_domain(), None);
        let s = parse_str(
            "[[domain]]\nname = \"a\"\nimage = \"x\"\ncontrol = true\n\
             [[domain]]\nname = \"b\"\nimage = \"x\"\nautostart = false\n",
        )
        .unwrap();
        assert_eq!(s.control_domain().map(|d| d.name.as_str()), Some("a"));
    }

    #[test]
    fn at_most_one_control_domain() {
        assert_err(
            &format!(
                "{DRIVER}[[domain]]\nname = \"a\"\nimage = \"x\"\ncontrol = true\n\
                 [[domain]]\nname = \"b\"\nimage = \"x\"\ncontrol = true\n"
            ),
            12,
            "domain[2].control",
            "domain \"a\" is already the control domain",
        );
    }

    #[test]
    fn the_control_domain_starts_at_boot() {
        assert_err(
            &format!(
                "{DRIVER}[[domain]]\nname = \"a\"\nimage = \"x\"\ncontrol = true\nautostart = false\n"
            ),
            9,
            "domain[1].autostart",
            "the control domain must start at boot",
        );
        // The driver domain as the control domain, explicitly.
        assert_err(
            "[[domain]]\nname = \"d\"\nrole = \"driver\"\nautostart = false\nimage = \"x\"\ncontrol = true\n",
            4,
            "domain[0].autostart",
            "the control domain must start at boot",
        );
    }

    #[test]
    fn the_driver_domain_starts_at_boot() {
        assert_err(
            "[[domain]]\nname = \"a\"\nimage = \"x\"\ncontrol = true\n\
             [[domain]]\nname = \"d\"\nrole = \"driver\"\nimage = \"x\"\nautostart = false\n",
            9,
            "domain[1].autostart",
            "the driver domain must start at boot",
        );
    }

    #[test]
    fn a_domain_not_started_needs_a_control_domain() {
        assert_err(
            "[[domain]]\nname = \"a\"\nimage = \"x\"\n\
             [[domain]]\nname = \"b\"\nimage = \"x\"\nautostart = false\n",
            7,
            "domain[1].autostart",
            "no control domain to create it",
        );
    }

    #[test]
    fn wrong_types_are_located() {
        assert_err(
            &format!("{DRIVER}[[domain]]\nname = \"a\"\nimage = \"x\"\nautostart = \"no\"\n"),
            8,
            "domain[1].autostart",
            "bool",
        );
    }
}
