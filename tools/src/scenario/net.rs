//! A guest's `net = { … }` keys: MAC, static address or DHCP, gateway,
//! port forwards, checked against QEMU's user network and the other guests.

use std::net::Ipv4Addr;

use parapet_abi::MacAddr;
use toml::Spanned;

use super::error::{Cx, ScenarioError};
use super::raw::{RawDomain, RawNet};
use super::Domain;

/// A guest's network interface (`net = { … }`): the driver domain switches
/// it onto QEMU's user network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetSpec {
    /// Its MAC address (default `02:00:00:00:00:NN`, NN = position in the file).
    pub mac: MacAddr,
    /// How it gets its IPv4 address.
    pub ip: NetIp,
    /// TCP ports forwarded from the host to it.
    pub forward: Vec<PortForward>,
    /// `path:line: domain[N].net`, for errors found later.
    pub location: String,
}

/// How a guest gets its IPv4 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetIp {
    /// From QEMU's DHCP server (the default).
    Dhcp,
    /// A static address.
    Static {
        /// The address.
        addr: Ipv4Addr,
        /// Its prefix length (1..=30).
        prefix: u8,
        /// The default gateway, if any.
        gateway: Option<Ipv4Addr>,
    },
}

/// A TCP port forwarded from the host (`127.0.0.1`) to a guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortForward {
    /// The host port (0: any free port).
    pub host: u16,
    /// The guest's port.
    pub guest: u16,
}

/// QEMU's user network (`-netdev user,net=…`): its address and prefix.
pub const USER_NET: (Ipv4Addr, u8) = (Ipv4Addr::new(10, 0, 2, 0), 24);
/// The user network's gateway (QEMU's host side).
pub const USER_NET_GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);
/// The user network's DNS server.
pub const USER_NET_DNS: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 3);
/// The addresses QEMU's DHCP server hands out (16 from `.15`).
pub const USER_NET_DHCP: (Ipv4Addr, Ipv4Addr) =
    (Ipv4Addr::new(10, 0, 2, 15), Ipv4Addr::new(10, 0, 2, 30));
/// The MAC address of QEMU's NIC (the driver domain's uplink).
pub const NIC_MAC: MacAddr = MacAddr([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);

/// Parses `aa:bb:cc:dd:ee:ff` (hex digits in either case, [`MacAddr::parse`])
/// into a unicast, non-zero MAC address.
pub fn parse_mac(s: &str) -> Result<MacAddr, String> {
    let mac = MacAddr::parse(s).map_err(|e| {
        format!("{s:?} is not a MAC address ({e}): write six hex bytes, e.g. \"02:00:00:00:00:0a\"")
    })?;
    if mac == MacAddr::ZERO {
        return Err(format!(
            "{s:?} is all zero: use a unicast address such as \"02:00:00:00:00:0a\""
        ));
    }
    if mac.is_multicast() {
        return Err(format!(
            "{s:?} is a multicast address (lowest bit of the first byte set): use a unicast one such as \"02:00:00:00:00:0a\""
        ));
    }
    Ok(mac)
}

/// Whether `a` is inside `net/prefix`.
pub fn in_subnet(a: Ipv4Addr, net: Ipv4Addr, prefix: u8) -> bool {
    let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
    u32::from(a) & mask == u32::from(net) & mask
}

/// Parses a static `A.B.C.D/N` address (N in 1..=30) of a host: not the
/// network or broadcast address of its subnet, nor loopback, multicast or
/// unspecified.
pub fn parse_cidr(s: &str) -> Result<(Ipv4Addr, u8), String> {
    let bad = || {
        format!("{s:?} is neither \"dhcp\" nor an address with a prefix length such as \"10.0.2.15/24\"")
    };
    let (a, n) = s.split_once('/').ok_or_else(bad)?;
    let addr: Ipv4Addr = a.parse().map_err(|_| bad())?;
    let prefix: u8 = match n.parse() {
        Ok(p) if !n.starts_with('+') => p,
        _ => return Err(bad()),
    };
    if !(1..=30).contains(&prefix) {
        return Err(format!(
            "prefix length /{prefix} of {s:?} is out of range 1..=30"
        ));
    }
    if addr.is_unspecified() || addr.is_loopback() || addr.is_multicast() || addr.is_broadcast() {
        return Err(format!("{addr} cannot be a guest's address"));
    }
    let host = u32::from(addr) & (u32::MAX >> prefix);
    if host == 0 || host == u32::MAX >> prefix {
        return Err(format!(
            "{addr} is the {} address of its subnet /{prefix}",
            if host == 0 { "network" } else { "broadcast" }
        ));
    }
    Ok((addr, prefix))
}

/// Validates a guest's `net = { … }` against the domains before it (MACs,
/// static addresses and host ports are unique).
pub(super) fn parse_net(
    cx: &Cx,
    sn: &Spanned<RawNet>,
    i: usize,
    earlier: &[Domain],
) -> Result<NetSpec, ScenarioError> {
    let raw = sn.get_ref();
    let f = |name: &str| format!("domain[{i}].net.{name}");
    let others = || {
        earlier
            .iter()
            .filter_map(|d| d.net.as_ref().map(|n| (d.index, n)))
    };

    // Where a MAC error points: the field, or the table for the default.
    let (mac, mac_line, mac_field) = match &raw.mac {
        Some(m) => (
            parse_mac(m.get_ref()).map_err(|msg| cx.at(m, f("mac"), msg))?,
            cx.line(m.span().start),
            f("mac"),
        ),
        // One byte is enough: a scenario has at most MAX_DOMAINS (32) domains.
        None => (
            MacAddr([0x02, 0, 0, 0, 0, u8::try_from(i + 1).unwrap_or(0)]),
            cx.line(sn.span().start),
            format!("domain[{i}].net"),
        ),
    };
    let mac_err = |msg: String| cx.err(Some(mac_line), Some(mac_field.clone()), msg);
    let which = if raw.mac.is_some() {
        "MAC"
    } else {
        "default MAC"
    };
    if mac == NIC_MAC {
        return Err(mac_err(format!(
            "{which} {mac} is the address of QEMU's NIC (the driver domain's uplink): use another"
        )));
    }
    if let Some((j, _)) = others().find(|(_, n)| n.mac == mac) {
        return Err(mac_err(format!(
            "{which} {mac} is already used by domain[{j}]: set a unique net.mac"
        )));
    }

    let ip = match &raw.ip {
        None => NetIp::Dhcp,
        Some(v) if v.get_ref() == "dhcp" => NetIp::Dhcp,
        Some(v) => {
            let (addr, prefix) = parse_cidr(v.get_ref()).map_err(|msg| cx.at(v, f("ip"), msg))?;
            let in_user_net = in_subnet(addr, USER_NET.0, USER_NET.1);
            if in_user_net && (addr == USER_NET_GATEWAY || addr == USER_NET_DNS) {
                return Err(cx.at(
                    v,
                    f("ip"),
                    format!(
                        "{addr} belongs to QEMU's user network ({USER_NET_GATEWAY} is its gateway, {USER_NET_DNS} its DNS server): use another address"
                    ),
                ));
            }
            let dup =
                others().find(|(_, n)| matches!(n.ip, NetIp::Static { addr: a, .. } if a == addr));
            if let Some((j, _)) = dup {
                return Err(cx.at(
                    v,
                    f("ip"),
                    format!("{addr} is already the address of domain[{j}]"),
                ));
            }
            let gateway = match &raw.gateway {
                Some(g) => {
                    let gw: Ipv4Addr = g.get_ref().parse().map_err(|_| {
                        cx.at(
                            g,
                            f("gateway"),
                            format!(
                                "{:?} is not an IPv4 address such as \"10.0.2.2\"",
                                g.get_ref()
                            ),
                        )
                    })?;
                    if gw == addr || !in_subnet(gw, addr, prefix) {
                        return Err(cx.at(
                            g,
                            f("gateway"),
                            format!(
                                "{gw} is not another address of the guest's subnet {addr}/{prefix}"
                            ),
                        ));
                    }
                    Some(gw)
                }
                None if in_user_net => {
                    if !in_subnet(USER_NET_GATEWAY, addr, prefix) {
                        return Err(cx.at(
                            v,
                            f("ip"),
                            format!(
                                "the default gateway {USER_NET_GATEWAY} is outside {}: use a shorter prefix such as /24, or set net.gateway",
                                v.get_ref()
                            ),
                        ));
                    }
                    Some(USER_NET_GATEWAY)
                }
                None => None,
            };
            NetIp::Static {
                addr,
                prefix,
                gateway,
            }
        }
    };
    if let (Some(g), NetIp::Dhcp) = (&raw.gateway, ip) {
        return Err(cx.at(
            g,
            f("gateway"),
            "a gateway goes with a static address (net.ip = \"A.B.C.D/N\"); with DHCP the server gives it".into(),
        ));
    }

    let mut forward: Vec<PortForward> = Vec::new();
    for (k, sf) in raw.forward.iter().flatten().enumerate() {
        let fw = sf.get_ref();
        let ff = |name: &str| format!("domain[{i}].net.forward[{k}].{name}");
        let host = cx.int_in(&fw.host, &ff("host"), 0, 65535)? as u16;
        let guest = cx.int_in(&fw.guest, &ff("guest"), 1, 65535)? as u16;
        if !matches!(ip, NetIp::Static { addr, .. } if in_subnet(addr, USER_NET.0, USER_NET.1)) {
            return Err(cx.at(
                sf,
                format!("domain[{i}].net.forward[{k}]"),
                format!(
                    "forwarding needs a static net.ip inside QEMU's user network {}/{}, e.g. \"10.0.2.10/24\"",
                    USER_NET.0, USER_NET.1
                ),
            ));
        }
        if host != 0 {
            let mine = forward.iter().any(|p| p.host == host);
            let theirs = others().find(|(_, n)| n.forward.iter().any(|p| p.host == host));
            if mine || theirs.is_some() {
                let by = theirs.map_or(format!("domain[{i}]"), |(j, _)| format!("domain[{j}]"));
                return Err(cx.at(
                    &fw.host,
                    ff("host"),
                    format!("host port {host} is already forwarded (to {by}): each host port goes to one guest port"),
                ));
            }
        }
        forward.push(PortForward { host, guest });
    }

    Ok(NetSpec {
        mac,
        ip,
        forward,
        location: format!(
            "{}:{}: domain[{i}].net",
            cx.path.display(),
            cx.line(sn.span().start)
        ),
    })
}

/// A static address in the range QEMU's DHCP server hands out would clash
/// with a DHCP guest's.
pub(super) fn check_dhcp_pool(
    cx: &Cx,
    domains: &[Domain],
    raw: &[Spanned<RawDomain>],
) -> Result<(), ScenarioError> {
    let dhcp = domains
        .iter()
        .find(|d| matches!(&d.net, Some(n) if n.ip == NetIp::Dhcp));
    let Some(dhcp) = dhcp else { return Ok(()) };
    for d in domains {
        let Some(NetSpec {
            ip: NetIp::Static { addr, .. },
            ..
        }) = &d.net
        else {
            continue;
        };
        if (USER_NET_DHCP.0..=USER_NET_DHCP.1).contains(addr) {
            let v = raw[d.index]
                .get_ref()
                .net
                .as_ref()
                .and_then(|n| n.get_ref().ip.as_ref());
            let line = v.map(|v| cx.line(v.span().start));
            return Err(cx.err(
                line,
                Some(format!("domain[{}].net.ip", d.index)),
                format!(
                    "{addr} is in the range QEMU's DHCP server hands out ({} to {}) and domain[{}] uses DHCP: pick an address outside it, e.g. 10.0.2.10",
                    USER_NET_DHCP.0, USER_NET_DHCP.1, dhcp.index
                ),
            ));
        }
    }
    Ok(())
}
