//! Validation of the `[machine]` table and the `[[domain]]` tables.

use std::path::Path;

use parapet_abi::layout::{GUEST_POOL_BASE, MAX_DOMAINS, RAM_BASE};

use super::error::{Cx, ScenarioError};
use super::net::{check_dhcp_pool, parse_net};
use super::raw::RawScenario;
use super::*;

/// Parses and validates scenario text; `path` is only used in messages, `dir`
/// and `workspace_root` to resolve relative image paths.
pub fn parse(
    src: &str,
    path: &Path,
    dir: &Path,
    workspace_root: &Path,
) -> Result<Scenario, ScenarioError> {
    let cx = Cx { src, path };
    let raw: RawScenario = toml::from_str(src).map_err(|e| cx.toml_error(&e))?;

    let mut machine = Machine::default();
    if let Some(m) = &raw.machine {
        if let Some(v) = &m.cpus {
            machine.cpus = cx.int_in(v, "machine.cpus", 1, 8)? as u32;
        }
        if let Some(v) = &m.memory_mib {
            machine.memory_mib = cx.int_in(v, "machine.memory_mib", 512, 3072)? as u64;
        }
        if let Some(v) = &m.timeslice_ms {
            machine.timeslice_ms = cx.int_in(v, "machine.timeslice_ms", 1, 1000)? as u32;
        }
        machine.icount = m.icount.unwrap_or(false);
    }

    if raw.domain.is_empty() {
        return Err(cx.err(
            None,
            None,
            "no [[domain]] table: a scenario needs at least one domain".into(),
        ));
    }
    if let Some(over) = raw.domain.get(MAX_DOMAINS) {
        return Err(cx.err(
            Some(cx.line(over.span().start)),
            Some(format!("domain[{MAX_DOMAINS}]")),
            format!(
                "too many domains: the hypervisor runs at most {MAX_DOMAINS} (driver domain included) and this file has {}; this is the first one over the limit",
                raw.domain.len()
            ),
        ));
    }

    let mut domains: Vec<Domain> = Vec::new();
    let mut driver_seen: Option<usize> = None;
    for (i, sd) in raw.domain.iter().enumerate() {
        let d = sd.get_ref();
        let dline = cx.line(sd.span().start);
        let f = |name: &str| format!("domain[{i}].{name}");

        let name = match &d.name {
            None => return Err(cx.err(Some(dline), Some(f("name")), "missing (required)".into())),
            Some(n) => {
                let s = n.get_ref();
                let ok = !s.is_empty()
                    && s.len() <= MAX_NAME_LEN
                    && s.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'
                    });
                if !ok {
                    return Err(cx.at(
                        n,
                        f("name"),
                        format!("{s:?} is not a valid name: use 1 to {MAX_NAME_LEN} characters from [a-z0-9_-]"),
                    ));
                }
                if let Some(prev) = domains.iter().find(|p| p.name == *s) {
                    return Err(cx.at(
                        n,
                        f("name"),
                        format!(
                            "duplicate domain name {s:?} (already used by domain[{}])",
                            prev.index
                        ),
                    ));
                }
                s.clone()
            }
        };

        let role = match &d.role {
            None => Role::Guest,
            Some(r) => match Role::from_name(r.get_ref()) {
                Some(Role::Driver) => {
                    if let Some(prev) = driver_seen {
                        return Err(cx.at(
                            r,
                            f("role"),
                            format!("a second driver domain: domain[{prev}] is already the driver (at most one is allowed)"),
                        ));
                    }
                    driver_seen = Some(i);
                    Role::Driver
                }
                Some(Role::Guest) => Role::Guest,
                None => {
                    return Err(cx.at(
                        r,
                        f("role"),
                        format!(
                            "unknown role {:?}: expected \"driver\" or \"guest\"",
                            r.get_ref()
                        ),
                    ))
                }
            },
        };

        let (image, image_line, source) = match &d.image {
            None => {
                return Err(cx.err(
                    Some(dline),
                    Some(f("image")),
                    "missing (required): a crate directory, a Cargo.toml, an ELF file path or a workspace binary name".into(),
                ))
            }
            Some(img) => {
                let s = img.get_ref();
                let source = crate::image::resolve(s, dir, workspace_root)
                    .map_err(|msg| cx.at(img, f("image"), msg))?;
                (s.clone(), cx.line(img.span().start), source)
            }
        };

        let memory_mib = match &d.memory_mib {
            None => DEFAULT_DOMAIN_MEMORY_MIB,
            Some(v) => {
                let max = if role == Role::Driver { 128 } else { 512 };
                cx.int_in(v, &f("memory_mib"), 2, max)? as u64
            }
        };
        let vcpus = match &d.vcpus {
            None => 1,
            Some(v) => cx.int_in(v, &f("vcpus"), 1, 8)? as u32,
        };
        let cpu = match &d.cpu {
            None => None,
            Some(v) => {
                let c = *v.get_ref();
                if c < 0 || c >= i64::from(machine.cpus) {
                    return Err(cx.at(
                        v,
                        f("cpu"),
                        format!(
                            "{c} is not a physical CPU: the machine has {} (machine.cpus), so use 0..={}",
                            machine.cpus,
                            machine.cpus - 1
                        ),
                    ));
                }
                Some(c as u32)
            }
        };
        let cmdline = match &d.cmdline {
            None => None,
            Some(c) => {
                let s = c.get_ref();
                if s.len() > MAX_CMDLINE_BYTES {
                    return Err(cx.at(
                        c,
                        f("cmdline"),
                        format!(
                            "{} bytes long, at most {MAX_CMDLINE_BYTES} allowed",
                            s.len()
                        ),
                    ));
                }
                if s.contains('\0') {
                    return Err(cx.at(c, f("cmdline"), "contains a NUL character".into()));
                }
                Some(s.clone())
            }
        };
        let on_crash = match &d.on_crash {
            None => OnCrash::Destroy,
            Some(o) => OnCrash::from_name(o.get_ref()).ok_or_else(|| {
                cx.at(
                    o,
                    f("on_crash"),
                    format!(
                        "unknown policy {:?}: \"destroy\" or \"restart\"",
                        o.get_ref()
                    ),
                )
            })?,
        };

        let console_input = match &d.console_input {
            Some(c) if *c.get_ref() => {
                if let Some(prev) = domains.iter().find(|p| p.console_input) {
                    return Err(cx.at(
                        c,
                        f("console_input"),
                        format!(
                            "domain {:?} already takes the console input: only one domain may",
                            prev.name
                        ),
                    ));
                }
                true
            }
            _ => false,
        };

        let (control, autostart) = runtime::keys(&cx, d, i, role, &domains)?;

        let disk = match &d.disk {
            None => None,
            Some(sd) if role == Role::Driver => {
                return Err(cx.at(
                    sd,
                    f("disk"),
                    "the driver domain serves disks; give the disk to a guest".into(),
                ))
            }
            Some(sd) => {
                let raw = sd.get_ref();
                if raw.image.is_empty() || raw.image.contains('\0') || raw.image.contains(',') {
                    return Err(cx.at(
                        sd,
                        f("disk.image"),
                        "needs a file path (without commas)".into(),
                    ));
                }
                let image = Path::new(&raw.image);
                let image = if image.is_absolute() {
                    image.to_owned()
                } else {
                    workspace_root.join(image)
                };
                let size_mib = match &raw.size_mib {
                    None => DEFAULT_DISK_MIB,
                    Some(v) => cx.int_in(v, &f("disk.size_mib"), 1, 4096)? as u64,
                };
                let start_sector = match &raw.start_sector {
                    None => 0,
                    Some(v) => cx.int_in(v, &f("disk.start_sector"), 0, i64::MAX / 1024)? as u64,
                };
                let sectors = match &raw.sectors {
                    None => None,
                    Some(v) => Some(cx.int_in(v, &f("disk.sectors"), 1, i64::MAX / 1024)? as u64),
                };
                Some(DiskSpec {
                    image,
                    size_mib,
                    start_sector,
                    sectors,
                    readonly: raw.readonly.unwrap_or(false),
                    location: format!(
                        "{}:{}: domain[{i}].disk",
                        path.display(),
                        cx.line(sd.span().start)
                    ),
                })
            }
        };

        let net = match &d.net {
            None => None,
            // The driver domain's own address on the uplink (its NIC's MAC), for
            // its `uplink_sink` mode (bench net): static only, it runs no DHCP.
            Some(sn) if role == Role::Driver => {
                let n = parse_net(&cx, sn, i, &domains)?;
                if !matches!(n.ip, NetIp::Static { .. }) {
                    return Err(cx.at(
                        sn,
                        f("net"),
                        "the driver domain runs the network backend: its own `net` is only a static address on the uplink (for `uplink_sink`); give a guest its interface"
                            .into(),
                    ));
                }
                Some(n)
            }
            Some(sn) => Some(parse_net(&cx, sn, i, &domains)?),
        };

        domains.push(Domain {
            name,
            role,
            image,
            source,
            memory_mib,
            vcpus,
            cpu,
            cmdline,
            on_crash,
            console_input,
            control,
            autostart,
            disk,
            net,
            index: i,
            image_line,
        });
    }

    check_dhcp_pool(&cx, &domains, &raw.domain)?;
    runtime::check(&cx, &domains, &raw.domain)?;

    // Total guest memory must fit in the guest pool.
    let reserved_mib = (GUEST_POOL_BASE - RAM_BASE) / MIB;
    let pool_mib = machine.memory_mib.saturating_sub(reserved_mib);
    let mut total = 0;
    for (d, sd) in domains.iter().zip(&raw.domain) {
        if d.role == Role::Driver {
            continue;
        }
        total += d.memory_mib;
        if total > pool_mib {
            let (line, field) = match &sd.get_ref().memory_mib {
                Some(v) => (
                    cx.line(v.span().start),
                    format!("domain[{}].memory_mib", d.index),
                ),
                None => (cx.line(sd.span().start), format!("domain[{}]", d.index)),
            };
            return Err(cx.err(
                Some(line),
                Some(field),
                format!(
                    "guest memory does not fit: the guests need {total} MiB so far, but the guest pool has only {pool_mib} MiB \
                     (machine.memory_mib {} minus {reserved_mib} MiB for the hypervisor, images and driver domain)",
                    machine.memory_mib
                ),
            ));
        }
    }

    // The driver domain goes first: the hypervisor gives it domain id 0.
    domains.sort_by_key(|d| (d.role != Role::Driver, d.index));

    Ok(Scenario {
        path: path.to_owned(),
        machine,
        domains,
    })
}
