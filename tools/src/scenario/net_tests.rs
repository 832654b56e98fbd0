//! Tests of the `net` keys and their helpers.

use std::net::Ipv4Addr;

use parapet_abi::MacAddr;

use super::tests::{assert_err, parse_str};
use super::*;

/// A driver domain, then guest `g` (domain[1]) with `net = NET` on line 8.
fn with_net(net: &str) -> String {
    format!(
        "[[domain]]\nname = \"d\"\nrole = \"driver\"\nimage = \"x\"\n\
         [[domain]]\nname = \"g\"\nimage = \"x\"\nnet = {net}\n"
    )
}

/// [`with_net`] plus guest `h` (domain[2]) with `net = NET2` on line 12.
fn with_nets(net: &str, net2: &str) -> String {
    format!(
        "{}[[domain]]\nname = \"h\"\nimage = \"x\"\nnet = {net2}\n",
        with_net(net)
    )
}

fn net_of(s: &Scenario, name: &str) -> NetSpec {
    let d = s.domains.iter().find(|d| d.name == name).unwrap();
    d.net.clone().unwrap()
}

#[test]
fn net_fields_and_defaults() {
    let s = parse_str(&with_nets(
        r#"{ mac = "02:00:00:00:00:0A", ip = "10.0.2.10/24", gateway = "10.0.2.1", forward = [{ host = 8080, guest = 80 }, { host = 0, guest = 22 }] }"#,
        "{}",
    ))
    .unwrap();
    let g = net_of(&s, "g");
    assert_eq!(g.mac, MacAddr([2, 0, 0, 0, 0, 0x0a]));
    assert_eq!(
        g.ip,
        NetIp::Static {
            addr: Ipv4Addr::new(10, 0, 2, 10),
            prefix: 24,
            gateway: Some(Ipv4Addr::new(10, 0, 2, 1)),
        }
    );
    assert_eq!(
        g.forward,
        [
            PortForward {
                host: 8080,
                guest: 80
            },
            PortForward { host: 0, guest: 22 }
        ]
    );
    assert_eq!(g.location, "scenarios/x.toml:8: domain[1].net");
    // Every field is optional: DHCP, and a MAC from the position (3rd).
    let h = net_of(&s, "h");
    assert_eq!(h.mac.to_string(), "02:00:00:00:00:03");
    assert_eq!(h.ip, NetIp::Dhcp);
    assert!(h.forward.is_empty());
    assert_eq!(s.domains[0].net, None);
    // The default gateway inside QEMU's network; none outside it.
    let s = parse_str(&with_nets(
        r#"{ ip = "10.0.2.10/24" }"#,
        r#"{ ip = "192.168.7.9/16" }"#,
    ))
    .unwrap();
    assert!(matches!(
        net_of(&s, "g").ip,
        NetIp::Static { gateway: Some(g), .. } if g == USER_NET_GATEWAY
    ));
    assert!(matches!(
        net_of(&s, "h").ip,
        NetIp::Static {
            gateway: None,
            prefix: 16,
            ..
        }
    ));
    parse_str(&with_net(r#"{ ip = "dhcp" }"#)).unwrap();
}

#[test]
fn net_errors() {
    let n = "domain[1].net";
    assert_err(
        "[[domain]]\nname = \"d\"\nrole = \"driver\"\nimage = \"x\"\nnet = {}\n",
        5,
        "domain[0].net",
        "the driver domain runs the network backend",
    );
    // A static address is its own on the uplink (`uplink_sink`).
    parse_str(
        "[[domain]]\nname = \"d\"\nrole = \"driver\"\nimage = \"x\"\nnet = { ip = \"10.0.2.15/24\" }\n",
    )
    .unwrap();
    for (mac, what) in [
        ("02:00:00:00:0a", "not a MAC address"),
        ("02:00:00:00:00:0g", "not a MAC address"),
        ("02-00-00-00-00-0a", "not a MAC address"),
        ("2:00:00:00:00:0a0", "not a MAC address"),
        ("00:00:00:00:00:00", "all zero"),
        ("01:00:5e:00:00:01", "multicast"),
        ("ff:ff:ff:ff:ff:ff", "multicast"),
        ("52:54:00:12:34:56", "QEMU's NIC"),
    ] {
        assert_err(
            &with_net(&format!("{{ mac = \"{mac}\" }}")),
            8,
            &format!("{n}.mac"),
            what,
        );
    }
    for (ip, what) in [
        ("10.0.2/24", "neither \"dhcp\" nor"),
        ("10.0.2.10", "neither \"dhcp\" nor"),
        ("10.0.2.10/+24", "neither \"dhcp\" nor"),
        ("DHCP", "neither \"dhcp\" nor"),
        ("10.0.2.10/31", "out of range 1..=30"),
        ("10.0.2.10/0", "out of range 1..=30"),
        ("10.0.2.0/24", "network address"),
        ("10.0.2.255/24", "broadcast address"),
        ("127.0.0.5/8", "cannot be a guest's address"),
        ("224.0.0.5/8", "cannot be a guest's address"),
        ("10.0.2.2/24", "QEMU's user network"),
        ("10.0.2.3/24", "QEMU's user network"),
        ("10.0.2.100/28", "default gateway 10.0.2.2 is outside"),
    ] {
        assert_err(
            &with_net(&format!("{{ ip = \"{ip}\" }}")),
            8,
            &format!("{n}.ip"),
            what,
        );
    }
    for (net, what) in [
        (r#"{ gateway = "10.0.2.2" }"#, "goes with a static address"),
        (
            r#"{ ip = "dhcp", gateway = "10.0.2.2" }"#,
            "goes with a static address",
        ),
        (
            r#"{ ip = "10.0.2.10/24", gateway = "10.0.2" }"#,
            "not an IPv4 address",
        ),
        (
            r#"{ ip = "10.0.2.10/24", gateway = "10.0.3.1" }"#,
            "not another address of the guest's subnet 10.0.2.10/24",
        ),
        (
            r#"{ ip = "10.0.2.10/24", gateway = "10.0.2.10" }"#,
            "not another address",
        ),
    ] {
        assert_err(&with_net(net), 8, &format!("{n}.gateway"), what);
    }
    for (net, field, what) in [
        (
            "{ forward = [{ host = 8080, guest = 80 }] }",
            "forward[0]",
            "needs a static net.ip inside QEMU's user network 10.0.2.0/24",
        ),
        (
            r#"{ ip = "192.168.1.5/24", forward = [{ host = 8080, guest = 80 }] }"#,
            "forward[0]",
            "needs a static net.ip",
        ),
        (
            r#"{ ip = "10.0.2.10/24", forward = [{ host = 65536, guest = 80 }] }"#,
            "forward[0].host",
            "65536 is out of range 0..=65535",
        ),
        (
            r#"{ ip = "10.0.2.10/24", forward = [{ host = -1, guest = 80 }] }"#,
            "forward[0].host",
            "out of range 0..=65535",
        ),
        (
            r#"{ ip = "10.0.2.10/24", forward = [{ host = 1, guest = 0 }] }"#,
            "forward[0].guest",
            "0 is out of range 1..=65535",
        ),
        (
            r#"{ ip = "10.0.2.10/24", forward = [{ host = 8080, guest = 80 }, { host = 8080, guest = 81 }] }"#,
            "forward[1].host",
            "host port 8080 is already forwarded (to domain[1])",
        ),
    ] {
        assert_err(&with_net(net), 8, &format!("{n}.{field}"), what);
    }
    // Several free ports (0) are fine.
    parse_str(&with_net(
        r#"{ ip = "10.0.2.10/24", forward = [{ host = 0, guest = 80 }, { host = 0, guest = 81 }] }"#,
    ))
    .unwrap();
    // Unknown fields, missing and mistyped ones: the line and the key.
    for (net, what) in [
        ("{ mask = 24 }", "unknown field `mask`"),
        (
            r#"{ ip = "10.0.2.10/24", forward = [{ host = 1, guest = 2, proto = "udp" }] }"#,
            "unknown field `proto`",
        ),
        (
            r#"{ ip = "10.0.2.10/24", forward = [{ host = 1 }] }"#,
            "missing field `guest`",
        ),
        ("{ ip = 5 }", "invalid type"),
        (r#""dhcp""#, "invalid type"),
    ] {
        assert_err(&with_net(net), 8, n, what);
    }
}

#[test]
fn net_duplicates_across_guests() {
    let m = "domain[2].net";
    assert_err(
        &with_nets(
            r#"{ mac = "02:00:00:00:00:aa" }"#,
            r#"{ mac = "02:00:00:00:00:AA" }"#,
        ),
        12,
        &format!("{m}.mac"),
        "MAC 02:00:00:00:00:aa is already used by domain[1]",
    );
    // An explicit MAC equal to a later guest's default: named at the default.
    assert_err(
        &with_nets(r#"{ mac = "02:00:00:00:00:03" }"#, "{}"),
        12,
        m,
        "default MAC 02:00:00:00:00:03 is already used by domain[1]",
    );
    assert_err(
        &with_nets(r#"{ ip = "10.0.2.10/24" }"#, r#"{ ip = "10.0.2.10/16" }"#),
        12,
        &format!("{m}.ip"),
        "10.0.2.10 is already the address of domain[1]",
    );
    assert_err(
        &with_nets(
            r#"{ ip = "10.0.2.10/24", forward = [{ host = 8080, guest = 80 }] }"#,
            r#"{ ip = "10.0.2.11/24", forward = [{ host = 8080, guest = 80 }] }"#,
        ),
        12,
        &format!("{m}.forward[0].host"),
        "host port 8080 is already forwarded (to domain[1])",
    );
    // A static address QEMU's DHCP server may also hand out, with a DHCP
    // guest: named at the static address, whichever comes first.
    for (a, b, line, field) in [
        (r#"{ ip = "10.0.2.15/24" }"#, "{}", 8, "domain[1].net.ip"),
        ("{}", r#"{ ip = "10.0.2.30/24" }"#, 12, "domain[2].net.ip"),
    ] {
        assert_err(
            &with_nets(a, b),
            line,
            field,
            "in the range QEMU's DHCP server hands out (10.0.2.15 to 10.0.2.30)",
        );
    }
    // Without a DHCP guest, any free address will do.
    parse_str(&with_nets(
        r#"{ ip = "10.0.2.15/24" }"#,
        r#"{ ip = "10.0.2.16/24" }"#,
    ))
    .unwrap();
}

#[test]
fn mac_and_address_helpers() {
    assert_eq!(
        parse_mac("02:00:00:00:00:0A").map(|m| m.to_string()),
        Ok("02:00:00:00:00:0a".to_owned())
    );
    assert_eq!(
        parse_cidr("10.0.2.15/24"),
        Ok((Ipv4Addr::new(10, 0, 2, 15), 24))
    );
    assert!(parse_cidr("10.0.2.015/24").is_err());
    assert!(in_subnet(
        Ipv4Addr::new(10, 0, 2, 200),
        Ipv4Addr::new(10, 0, 2, 0),
        24
    ));
    assert!(!in_subnet(
        Ipv4Addr::new(10, 0, 3, 1),
        Ipv4Addr::new(10, 0, 2, 0),
        24
    ));
    assert!(in_subnet(
        Ipv4Addr::new(10, 9, 9, 9),
        Ipv4Addr::new(10, 0, 0, 0),
        8
    ));
}
