//! Guests' network interfaces: the driver domain's `vif=` wiring, each
//! guest's `ip=` words, and QEMU's user network with the host ports
//! forwarded to guests.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};

use parapet_abi::wiring::{Name, VifWiring};

use crate::scenario::{NetIp, Role, Scenario, MAX_CMDLINE_BYTES, NIC_MAC, USER_NET};

/// The host address forwarded ports listen on.
pub const FORWARD_HOST: Ipv4Addr = Ipv4Addr::LOCALHOST;

/// The device name of a guest's interface in the wiring (`vif0`).
const VIF_DEV: Name = match Name::new("vif0") {
    Some(n) => n,
    None => panic!("not a wiring name"),
};

/// A TCP port forwarded from the host to a guest, as resolved for one boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forward {
    /// The guest.
    pub domain: String,
    /// The port on [`FORWARD_HOST`] (the one asked for, or a free one).
    pub host_port: u16,
    /// The guest's static address.
    pub guest_ip: Ipv4Addr,
    /// The guest's port.
    pub guest_port: u16,
}

impl Forward {
    /// Where to connect on the host: `127.0.0.1:host_port`.
    pub fn host_addr(&self) -> SocketAddr {
        SocketAddr::from((FORWARD_HOST, self.host_port))
    }

    /// `http://127.0.0.1:PORT/` when the guest port is 80 or 8080, else
    /// `127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        if matches!(self.guest_port, 80 | 8080) {
            format!("http://{}/", self.host_addr())
        } else {
            self.host_addr().to_string()
        }
    }

    /// `guest-a:80 is reachable at http://127.0.0.1:8080/`.
    pub fn reachable(&self) -> String {
        format!(
            "{}:{} is reachable at {}",
            self.domain,
            self.guest_port,
            self.url()
        )
    }

    /// QEMU's `hostfwd=tcp:127.0.0.1:HOST-GUESTIP:GUESTPORT`.
    pub fn hostfwd(&self) -> String {
        format!(
            "hostfwd=tcp:{}:{}-{}:{}",
            FORWARD_HOST, self.host_port, self.guest_ip, self.guest_port
        )
    }
}

/// What the network interfaces add to a boot.
#[derive(Debug, Default)]
pub struct NetPlan {
    /// `vif=GUEST,vif0,MAC` words for the driver domain's command line.
    pub driver_wiring: String,
    /// Per guest with an interface: its name and the words to append to its
    /// command line (`ip=A.B.C.D/N [gw=G]` or `ip=dhcp`).
    pub guest_wiring: Vec<(String, String)>,
    /// The forwarded ports, in scenario order.
    pub forwards: Vec<Forward>,
    /// Listeners holding the chosen host ports; drop them right before QEMU
    /// starts, so that nothing else takes a port in between.
    pub reserved: Vec<TcpListener>,
}

/// A network interface that cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The interface does not fit the scenario.
    #[error("{location}: {message}")]
    Invalid {
        /// Scenario location.
        location: String,
        /// What is wrong.
        message: String,
    },
    /// No free host port could be had.
    #[error("{location}: cannot get a free port on {FORWARD_HOST}: {source}")]
    Port {
        /// Scenario location.
        location: String,
        /// Why.
        #[source]
        source: io::Error,
    },
}

/// Whether the scenario is a service: it forwards at least one port, so it
/// runs until stopped rather than until its domains finish.
pub fn is_service(s: &Scenario) -> bool {
    s.domains
        .iter()
        .any(|d| d.net.as_ref().is_some_and(|n| !n.forward.is_empty()))
}

/// The words a guest's command line gets for its interface.
pub fn guest_words(ip: &NetIp) -> String {
    match ip {
        NetIp::Dhcp => "ip=dhcp".to_owned(),
        NetIp::Static {
            addr,
            prefix,
            gateway: Some(g),
        } => format!("ip={addr}/{prefix} gw={g}"),
        NetIp::Static {
            addr,
            prefix,
            gateway: None,
        } => format!("ip={addr}/{prefix}"),
    }
}

/// QEMU's `-netdev` value: the user network `10.0.2.0/24` with one
/// `hostfwd` per forward.
pub fn netdev(forwards: &[Forward]) -> String {
    let mut s = format!("user,id=net0,net={}/{}", USER_NET.0, USER_NET.1);
    for f in forwards {
        s.push(',');
        s += &f.hostfwd();
    }
    s
}

/// QEMU's `-device` value for the NIC, with its fixed MAC address.
pub fn nic_device() -> String {
    format!("virtio-net-device,netdev=net0,mac={NIC_MAC}")
}

/// Plans every guest's interface: checks there is a driver domain and that
/// the command lines stay short enough, and picks the host ports (a free one
/// when the one asked for is 0 or busy, saying so on stderr).
pub fn prepare(s: &Scenario) -> Result<NetPlan, NetError> {
    let mut plan = NetPlan::default();
    let has_driver = s.domains.iter().any(|d| d.role == Role::Driver);
    for d in &s.domains {
        let Some(net) = &d.net else { continue };
        let invalid = |message: String| NetError::Invalid {
            location: net.location.clone(),
            message,
        };
        if !has_driver {
            return Err(invalid(
                "a network interface needs a driver domain to switch it (add a domain with role = \"driver\")"
                    .into(),
            ));
        }
        let words = guest_words(&net.ip);
        let len = d.cmdline.as_ref().map_or(0, |c| c.len() + 1) + words.len();
        if len > MAX_CMDLINE_BYTES {
            return Err(invalid(format!(
                "the guest's command line with `{words}` is {len} bytes (at most {MAX_CMDLINE_BYTES}): shorten its cmdline"
            )));
        }
        plan.guest_wiring.push((d.name.clone(), words));
        // The driver domain's own `net` is its address on the uplink (its
        // `uplink_sink` mode), not a vif: only the words and the forwards.
        if d.role != Role::Driver {
            if !plan.driver_wiring.is_empty() {
                plan.driver_wiring.push(' ');
            }
            let vif = VifWiring {
                frontend: Name::new(&d.name)
                    .ok_or_else(|| invalid(format!("{:?} cannot name a vif's frontend", d.name)))?,
                dev: VIF_DEV,
                mac: net.mac,
            };
            plan.driver_wiring += &vif.to_string();
        }
        for fw in &net.forward {
            let NetIp::Static { addr, .. } = net.ip else {
                // The scenario parser refuses forwards without a static address.
                return Err(invalid("forwarding needs a static net.ip".into()));
            };
            let (host_port, refused) =
                reserve(fw.host, &mut plan.reserved).map_err(|source| NetError::Port {
                    location: net.location.clone(),
                    source,
                })?;
            if let Some(e) = refused {
                eprintln!("parapet: {}", busy_note(fw.host, host_port, &e));
            }
            plan.forwards.push(Forward {
                domain: d.name.clone(),
                host_port,
                guest_ip: addr,
                guest_port: fw.guest,
            });
        }
    }
    Ok(plan)
}

/// Takes `port` on [`FORWARD_HOST`], or a free port when it is 0 or cannot
/// be bound; the listener goes into `held`. Returns the port and, when
/// `port` was refused, why.
pub fn reserve(port: u16, held: &mut Vec<TcpListener>) -> io::Result<(u16, Option<io::Error>)> {
    let mut refused = None;
    if port != 0 {
        match TcpListener::bind((FORWARD_HOST, port)) {
            Ok(l) => {
                held.push(l);
                return Ok((port, None));
            }
            Err(e) => refused = Some(e),
        }
    }
    let l = TcpListener::bind((FORWARD_HOST, 0))?;
    let free = l.local_addr()?.port();
    held.push(l);
    Ok((free, refused))
}

/// `host port 8080 is busy; forwarding 127.0.0.1:NNNNN instead`.
fn busy_note(asked: u16, got: u16, why: &io::Error) -> String {
    let what = if why.kind() == io::ErrorKind::AddrInUse {
        "is busy".to_owned()
    } else {
        format!("cannot be used ({why})")
    };
    format!("host port {asked} {what}; forwarding {FORWARD_HOST}:{got} instead")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn scen(src: &str) -> Scenario {
        crate::scenario::parse(src, Path::new("t.toml"), Path::new("/"), Path::new("/")).unwrap()
    }

    const DRIVER: &str = "[[domain]]\nname = \"d\"\nrole = \"driver\"\nimage = \"/bin/true\"\n";

    #[test]
    fn wires_driver_guests_and_forwards() {
        let src = format!(
            "[[domain]]\nname = \"web\"\nimage = \"/bin/true\"\ncmdline = \"serve\"\n\
             net = {{ mac = \"02:00:00:00:00:0A\", ip = \"10.0.2.10/24\", forward = [{{ host = 0, guest = 80 }}, {{ host = 0, guest = 22 }}] }}\n\
             {DRIVER}\
             [[domain]]\nname = \"cli\"\nimage = \"/bin/true\"\nnet = {{}}\n\
             [[domain]]\nname = \"far\"\nimage = \"/bin/true\"\nnet = {{ ip = \"192.168.1.5/16\" }}\n"
        );
        let s = scen(&src);
        assert!(is_service(&s));
        let plan = prepare(&s).unwrap();
        // The default MAC of `cli` comes from its position in the file (3rd).
        assert_eq!(
            plan.driver_wiring,
            "vif=web,vif0,02:00:00:00:00:0a vif=cli,vif0,02:00:00:00:00:03 vif=far,vif0,02:00:00:00:00:04"
        );
        assert_eq!(
            plan.guest_wiring,
            [
                ("web".to_owned(), "ip=10.0.2.10/24 gw=10.0.2.2".to_owned()),
                ("cli".to_owned(), "ip=dhcp".to_owned()),
                ("far".to_owned(), "ip=192.168.1.5/16".to_owned()),
            ]
        );
        assert_eq!(plan.forwards.len(), 2);
        let (a, b) = (&plan.forwards[0], &plan.forwards[1]);
        assert_ne!(a.host_port, 0);
        assert_ne!(a.host_port, b.host_port, "two free ports, not one");
        assert_eq!(
            (a.domain.as_str(), a.guest_ip, a.guest_port),
            ("web", Ipv4Addr::new(10, 0, 2, 10), 80)
        );
        assert_eq!(plan.reserved.len(), 2, "each chosen port is held");
        assert_eq!(a.url(), format!("http://127.0.0.1:{}/", a.host_port));
        assert_eq!(b.url(), format!("127.0.0.1:{}", b.host_port));
        assert_eq!(
            a.reachable(),
            format!("web:80 is reachable at http://127.0.0.1:{}/", a.host_port)
        );
        assert_eq!(
            netdev(&plan.forwards),
            format!(
                "user,id=net0,net=10.0.2.0/24,hostfwd=tcp:127.0.0.1:{}-10.0.2.10:80,hostfwd=tcp:127.0.0.1:{}-10.0.2.10:22",
                a.host_port, b.host_port
            )
        );
        // Once the reservations are dropped, the ports are free for QEMU.
        let ports = [a.host_port, b.host_port];
        drop(plan);
        for p in ports {
            TcpListener::bind((FORWARD_HOST, p)).unwrap();
        }
    }

    #[test]
    fn no_net_no_wiring() {
        let s = scen(&format!(
            "{DRIVER}[[domain]]\nname = \"g\"\nimage = \"/bin/true\"\n"
        ));
        assert!(!is_service(&s));
        let plan = prepare(&s).unwrap();
        assert!(plan.driver_wiring.is_empty() && plan.guest_wiring.is_empty());
        assert!(plan.forwards.is_empty());
        assert_eq!(netdev(&[]), "user,id=net0,net=10.0.2.0/24");
        assert_eq!(
            nic_device(),
            "virtio-net-device,netdev=net0,mac=52:54:00:12:34:56"
        );
    }

    #[test]
    fn a_busy_port_falls_back_to_a_free_one() {
        // Take a port, then ask for it.
        let taken = TcpListener::bind((FORWARD_HOST, 0)).unwrap();
        let port = taken.local_addr().unwrap().port();
        let src = format!(
            "{DRIVER}[[domain]]\nname = \"web\"\nimage = \"/bin/true\"\n\
             net = {{ ip = \"10.0.2.10/24\", forward = [{{ host = {port}, guest = 8080 }}] }}\n"
        );
        let plan = prepare(&scen(&src)).unwrap();
        let got = plan.forwards[0].host_port;
        assert_ne!(got, port);
        assert_ne!(got, 0);
        // A free port asked for is kept.
        let mut held = Vec::new();
        let (free, refused) = reserve(0, &mut held).unwrap();
        drop(held);
        let (again, refused2) = reserve(free, &mut Vec::new()).unwrap();
        assert_eq!(again, free);
        assert!(refused.is_none() && refused2.is_none());
        // The note names both ports.
        let (other, why) = reserve(port, &mut Vec::new()).unwrap();
        let why = why.expect("the port is taken");
        assert_eq!(
            busy_note(port, other, &why),
            format!("host port {port} is busy; forwarding 127.0.0.1:{other} instead")
        );
        drop(taken);
    }

    #[test]
    fn net_needs_a_driver_domain() {
        let s = scen("[[domain]]\nname = \"g\"\nimage = \"/bin/true\"\nnet = { ip = \"dhcp\" }\n");
        let e = prepare(&s).unwrap_err().to_string();
        assert!(e.starts_with("t.toml:4: domain[0].net: "), "{e}");
        assert!(e.contains("needs a driver domain"), "{e}");
    }

    #[test]
    fn guest_cmdline_stays_short() {
        let src = format!(
            "{DRIVER}[[domain]]\nname = \"g\"\nimage = \"/bin/true\"\ncmdline = \"{}\"\nnet = {{ ip = \"10.0.2.10/24\" }}\n",
            "x".repeat(240)
        );
        let e = prepare(&scen(&src)).unwrap_err().to_string();
        assert!(
            e.contains("domain[1].net") && e.contains("at most 255"),
            "{e}"
        );
    }
}
