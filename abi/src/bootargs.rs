//! The domain table's text form, one codec for both ends: the `parapet` tool
//! writes each domain's entry (the `bootargs` of its `/chosen/module@…` node)
//! with [`DomainConfig`]'s `Display`, and the hypervisor reads it back with
//! [`parse_domain`]:
//!
//! `name=NAME role=driver|guest mem_mib=M vcpus=V [cpu=C] [console=in]
//! [on_crash=destroy|restart] [control=1] [autostart=0] [-- CMDLINE]`
//!
//! Everything after ` -- ` is the domain's own command line, free text passed
//! through untouched. The hypervisor's own command line (`timeslice_ms=…`) is
//! read by [`parse_options`]. No allocation: a parsed config borrows the text.

use crate::layout::{DRIVER_DOMAIN_MAX_SIZE, MAX_VCPUS, MIN_DOMAIN_RAM};
use crate::start_info::{CMDLINE_LEN, NAME_LEN};

/// Largest RAM of a guest other than the driver domain (whose limit is
/// [`DRIVER_DOMAIN_MAX_SIZE`]).
pub const GUEST_MAX_SIZE: u64 = 1 << 30;

/// What a domain is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Owns the devices; mapped 1:1.
    Driver,
    /// An ordinary guest.
    Guest,
}

impl Role {
    /// The value of `role=` (and of a scenario's `role`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Role::Driver => "driver",
            Role::Guest => "guest",
        }
    }

    /// The role a value of `role=` names, if any.
    pub fn from_name(s: &str) -> Option<Self> {
        match s {
            "driver" => Some(Role::Driver),
            "guest" => Some(Role::Guest),
            _ => None,
        }
    }
}

/// What happens when a domain crashes (Xen's `on_crash`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnCrash {
    /// The domain is torn down; the others go on (the default).
    #[default]
    Destroy,
    /// The domain is torn down and started again from its image, in place.
    Restart,
}

impl OnCrash {
    /// The value of `on_crash=` (and of a scenario's `on_crash`).
    pub const fn as_str(self) -> &'static str {
        match self {
            OnCrash::Destroy => "destroy",
            OnCrash::Restart => "restart",
        }
    }

    /// The policy a value of `on_crash=` names, if any.
    pub fn from_name(s: &str) -> Option<Self> {
        match s {
            "destroy" => Some(OnCrash::Destroy),
            "restart" => Some(OnCrash::Restart),
            _ => None,
        }
    }
}

/// One domain's configuration: what [`parse_domain`] reads, and what
/// `Display` writes (`to_string()` in the tool) in the form it reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DomainConfig<'a> {
    /// Name used as console prefix.
    pub name: &'a str,
    /// Role.
    pub role: Role,
    /// RAM in bytes; written as `mem_mib=`, so a whole number of MiB.
    pub memory: u64,
    /// Number of vCPUs.
    pub vcpus: u32,
    /// Physical CPU the domain is pinned to, if any.
    pub cpu: Option<u32>,
    /// Whether console input goes to this domain (`console=in`) rather than
    /// to the driver domain.
    pub console_input: bool,
    /// The crash policy (`on_crash=`).
    pub on_crash: OnCrash,
    /// Whether it is the control domain (`control=1`), rather than the
    /// driver domain.
    pub control: bool,
    /// Whether it starts at boot (`autostart=0` loads it without starting:
    /// the control domain creates it later).
    pub autostart: bool,
    /// The domain's own command line (empty: none, and no ` -- `).
    pub cmdline: &'a str,
}

/// One MiB, the unit of `mem_mib=`.
const MIB: u64 = 1 << 20;

impl core::fmt::Display for DomainConfig<'_> {
    /// `name=N role=R mem_mib=M vcpus=V`, then `cpu=C`, `console=in` and
    /// `on_crash=restart` when they differ from the defaults, then ` -- CMDLINE`
    /// when there is one.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "name={} role={} mem_mib={} vcpus={}",
            self.name,
            self.role.as_str(),
            self.memory / MIB,
            self.vcpus
        )?;
        if let Some(c) = self.cpu {
            write!(f, " cpu={c}")?;
        }
        if self.console_input {
            f.write_str(" console=in")?;
        }
        if self.on_crash != OnCrash::Destroy {
            write!(f, " on_crash={}", self.on_crash.as_str())?;
        }
        if self.control {
            f.write_str(" control=1")?;
        }
        if !self.autostart {
            f.write_str(" autostart=0")?;
        }
        if !self.cmdline.is_empty() {
            write!(f, " -- {}", self.cmdline)?;
        }
        Ok(())
    }
}

/// A malformed domain entry; the `&str` names the offending key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootargsError<'a> {
    /// A required key is missing.
    Missing(&'a str),
    /// A key has a bad value.
    Invalid(&'a str),
    /// A key that is not known.
    Unknown(&'a str),
}

impl core::fmt::Display for BootargsError<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            BootargsError::Missing(k) => write!(f, "missing `{k}`"),
            BootargsError::Invalid(k) => write!(f, "invalid value for `{k}`"),
            BootargsError::Unknown(k) => write!(f, "unknown key `{k}`"),
        }
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() < NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// Parses one module's `bootargs`.
pub fn parse_domain(args: &str) -> Result<DomainConfig<'_>, BootargsError<'_>> {
    let (head, cmdline) = match args.split_once(" -- ") {
        Some((h, c)) => (h, c),
        None => (args.strip_suffix(" --").unwrap_or(args), ""),
    };
    let (mut name, mut role, mut mem, mut vcpus, mut cpu) = (None, Role::Guest, None, 1, None);
    let mut console_input = false;
    let mut on_crash = OnCrash::Destroy;
    let (mut control, mut autostart) = (false, true);
    let flag = |key, value| match value {
        "0" => Ok(false),
        "1" => Ok(true),
        _ => Err(BootargsError::Invalid(key)),
    };
    for word in head.split_ascii_whitespace() {
        let (key, value) = word.split_once('=').ok_or(BootargsError::Invalid(word))?;
        match key {
            "name" if valid_name(value) => name = Some(value),
            "role" => role = Role::from_name(value).ok_or(BootargsError::Invalid("role"))?,
            "mem_mib" => {
                mem = Some(
                    value
                        .parse::<u64>()
                        .map_err(|_| BootargsError::Invalid("mem_mib"))?,
                )
            }
            "vcpus" => vcpus = value.parse().map_err(|_| BootargsError::Invalid("vcpus"))?,
            "cpu" => cpu = Some(value.parse().map_err(|_| BootargsError::Invalid("cpu"))?),
            "console" if value == "in" => console_input = true,
            "console" => return Err(BootargsError::Invalid("console")),
            "on_crash" => {
                on_crash = OnCrash::from_name(value).ok_or(BootargsError::Invalid("on_crash"))?
            }
            "control" => control = flag("control", value)?,
            "autostart" => autostart = flag("autostart", value)?,
            "name" => return Err(BootargsError::Invalid("name")),
            _ => return Err(BootargsError::Unknown(key)),
        }
    }
    let name = name.ok_or(BootargsError::Missing("name"))?;
    let memory = mem
        .ok_or(BootargsError::Missing("mem_mib"))?
        .checked_mul(MIB)
        .ok_or(BootargsError::Invalid("mem_mib"))?;
    let max = if role == Role::Driver {
        DRIVER_DOMAIN_MAX_SIZE
    } else {
        GUEST_MAX_SIZE
    };
    if memory < MIN_DOMAIN_RAM || memory > max {
        return Err(BootargsError::Invalid("mem_mib"));
    }
    if vcpus == 0 || u64::from(vcpus) > MAX_VCPUS {
        return Err(BootargsError::Invalid("vcpus"));
    }
    if cmdline.len() >= CMDLINE_LEN {
        return Err(BootargsError::Invalid("cmdline"));
    }
    Ok(DomainConfig {
        name,
        role,
        memory,
        vcpus,
        cpu,
        console_input,
        on_crash,
        control,
        autostart,
        cmdline,
    })
}

/// Options of the hypervisor itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HvOptions {
    /// Scheduling time slice in milliseconds.
    pub timeslice_ms: u64,
    /// Trace buffer per CPU in KiB (`trace_kib=`), 0 when tracing is off.
    pub trace_kib: u64,
}

impl Default for HvOptions {
    fn default() -> Self {
        Self {
            timeslice_ms: 10,
            trace_kib: 0,
        }
    }
}

/// The hypervisor's command line as [`parse_options`] reads it.
impl core::fmt::Display for HvOptions {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "timeslice_ms={}", self.timeslice_ms)?;
        if self.trace_kib > 0 {
            write!(f, " trace_kib={}", self.trace_kib)?;
        }
        Ok(())
    }
}

/// Parses the hypervisor's command line; unknown or bad words are returned in
/// `ignored` order through `on_ignored` so they can be reported.
pub fn parse_options(line: &str, mut on_ignored: impl FnMut(&str)) -> HvOptions {
    let mut opts = HvOptions::default();
    for word in line.split_ascii_whitespace() {
        match word.split_once('=') {
            Some(("timeslice_ms", v)) => match v.parse::<u64>() {
                Ok(ms @ 1..=1000) => opts.timeslice_ms = ms,
                _ => on_ignored(word),
            },
            Some(("trace_kib", v)) => match v.parse::<u64>() {
                Ok(kib @ 0..=crate::trace::MAX_TRACE_KIB) => opts.trace_kib = kib,
                _ => on_ignored(word),
            },
            _ => on_ignored(word),
        }
    }
    opts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_full_entry() {
        let d =
            parse_domain("name=guest-a role=guest mem_mib=32 vcpus=2 cpu=1 -- mode=x y").unwrap();
        assert_eq!(d.name, "guest-a");
        assert_eq!(d.role, Role::Guest);
        assert_eq!(d.memory, 32 << 20);
        assert_eq!((d.vcpus, d.cpu), (2, Some(1)));
        assert_eq!(d.cmdline, "mode=x y");
        let d = parse_domain("name=drv role=driver mem_mib=64").unwrap();
        assert_eq!(
            (d.role, d.cpu, d.cmdline, d.vcpus),
            (Role::Driver, None, "", 1)
        );
        assert!(!d.console_input);
        assert!(
            parse_domain("name=a mem_mib=4 console=in")
                .unwrap()
                .console_input
        );
        assert_eq!(
            parse_domain("name=a mem_mib=4 console=out"),
            Err(BootargsError::Invalid("console"))
        );
    }

    #[test]
    fn crash_policy() {
        assert_eq!(
            parse_domain("name=a mem_mib=4").unwrap().on_crash,
            OnCrash::Destroy
        );
        let d = parse_domain("name=drv role=driver mem_mib=64 on_crash=restart -- vbd=x").unwrap();
        assert_eq!((d.on_crash, d.cmdline), (OnCrash::Restart, "vbd=x"));
        assert_eq!(
            parse_domain("name=a mem_mib=4 on_crash=destroy")
                .unwrap()
                .on_crash,
            OnCrash::Destroy
        );
        assert_eq!(
            parse_domain("name=a mem_mib=4 on_crash=reboot"),
            Err(BootargsError::Invalid("on_crash"))
        );
        // After `--` it belongs to the domain's own command line.
        let d = parse_domain("name=a mem_mib=4 -- on_crash=restart").unwrap();
        assert_eq!(
            (d.on_crash, d.cmdline),
            (OnCrash::Destroy, "on_crash=restart")
        );
    }

    #[test]
    fn names_the_bad_key() {
        assert_eq!(
            parse_domain("role=guest mem_mib=32"),
            Err(BootargsError::Missing("name"))
        );
        assert_eq!(
            parse_domain("name=a"),
            Err(BootargsError::Missing("mem_mib"))
        );
        assert_eq!(
            parse_domain("name=A mem_mib=32"),
            Err(BootargsError::Invalid("name"))
        );
        assert_eq!(
            parse_domain("name=a mem_mib=1"),
            Err(BootargsError::Invalid("mem_mib"))
        );
        assert_eq!(
            parse_domain("name=a mem_mib=999999999999999999"),
            Err(BootargsError::Invalid("mem_mib"))
        );
        assert_eq!(
            parse_domain("name=a role=driver mem_mib=256"),
            Err(BootargsError::Invalid("mem_mib"))
        );
        assert_eq!(
            parse_domain("name=a mem_mib=4 vcpus=0"),
            Err(BootargsError::Invalid("vcpus"))
        );
        assert_eq!(
            parse_domain("name=a mem_mib=4 vcpus=9"),
            Err(BootargsError::Invalid("vcpus"))
        );
        assert_eq!(
            parse_domain("name=a mem_mib=4 colour=red"),
            Err(BootargsError::Unknown("colour"))
        );
        assert_eq!(
            parse_domain("name=a mem_mib=4 junk"),
            Err(BootargsError::Invalid("junk"))
        );
        let long = format!("name=a mem_mib=4 -- {}", "x".repeat(300));
        assert_eq!(parse_domain(&long), Err(BootargsError::Invalid("cmdline")));
    }

    #[test]
    fn writes_what_it_reads() {
        let mut d = DomainConfig {
            name: "driver",
            role: Role::Driver,
            memory: 64 << 20,
            vcpus: 2,
            cpu: None,
            console_input: false,
            on_crash: OnCrash::Destroy,
            control: false,
            autostart: true,
            cmdline: "",
        };
        assert_eq!(d.to_string(), "name=driver role=driver mem_mib=64 vcpus=2");
        d.control = true;
        d.autostart = false;
        assert_eq!(
            d.to_string(),
            "name=driver role=driver mem_mib=64 vcpus=2 control=1 autostart=0"
        );
        assert_eq!(parse_domain(&d.to_string()), Ok(d));
        assert_eq!(
            parse_domain("name=a mem_mib=4 control=yes"),
            Err(BootargsError::Invalid("control"))
        );
        assert_eq!(
            parse_domain("name=a mem_mib=4 autostart=2"),
            Err(BootargsError::Invalid("autostart"))
        );
        d.control = false;
        d.autostart = true;
        d.on_crash = OnCrash::Restart;
        d.console_input = true;
        d.cpu = Some(1);
        d.cmdline = "vbd=a,vbd0,disk0,0,16,rw x=1,y=2";
        let text = d.to_string();
        assert_eq!(
            text,
            "name=driver role=driver mem_mib=64 vcpus=2 cpu=1 console=in on_crash=restart -- vbd=a,vbd0,disk0,0,16,rw x=1,y=2"
        );
        assert_eq!(parse_domain(&text), Ok(d));
        // A command line that looks like options, or has the separator in it,
        // stays the domain's.
        d.cmdline = " -- name=x --";
        assert_eq!(parse_domain(&d.to_string()), Ok(d));
    }

    #[test]
    fn options() {
        let o = HvOptions {
            timeslice_ms: 7,
            trace_kib: 1024,
        };
        assert_eq!(parse_options(&o.to_string(), |w| panic!("{w}")), o);
        let o = HvOptions::default();
        assert_eq!(o.to_string(), "timeslice_ms=10");
        assert_eq!(parse_options(&o.to_string(), |w| panic!("{w}")), o);
        let mut bad: Vec<String> = Vec::new();
        let o = parse_options("trace_kib=99999999 trace_kib=x trace_kib=64", |w| {
            bad.push(w.to_owned())
        });
        assert_eq!(o.trace_kib, 64);
        assert_eq!(bad, ["trace_kib=99999999", "trace_kib=x"]);
        bad.clear();
        let o = parse_options("timeslice_ms=5 foo timeslice_ms=0", |w| {
            bad.push(w.to_string())
        });
        assert_eq!(o.timeslice_ms, 5);
        assert_eq!(bad, ["foo", "timeslice_ms=0"]);
    }
}
