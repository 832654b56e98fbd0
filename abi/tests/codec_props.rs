//! Property tests of the text codecs the host tool writes and the hypervisor
//! and the driver domain read: a domain's bootargs, the driver domain's device
//! wiring, MAC addresses. Whatever is written parses back to the same value,
//! and no input makes a parser panic.

use parapet_abi::bootargs::{parse_domain, DomainConfig, OnCrash, Role, GUEST_MAX_SIZE};
use parapet_abi::layout::DRIVER_DOMAIN_MAX_SIZE;
use parapet_abi::wiring::{Name, VbdWiring, VifWiring, WiringEntry};
use parapet_abi::MacAddr;
use proptest::prelude::*;

const MIB: u64 = 1 << 20;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 1024,
        ..ProptestConfig::default()
    }
}

/// A domain's own command line: printable ASCII (what scenarios use) or any
/// non-control text, shorter than the start-info page's 256 bytes.
fn cmdline() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "[ -~]{0,255}",
        "\\PC{0,60}".prop_filter("fits", |s| s.len() < 256),
        Just(" -- name=x role=driver --".to_owned()),
    ]
}

fn role() -> impl Strategy<Value = Role> {
    prop_oneof![Just(Role::Driver), Just(Role::Guest)]
}

fn on_crash() -> impl Strategy<Value = OnCrash> {
    prop_oneof![Just(OnCrash::Destroy), Just(OnCrash::Restart)]
}

/// Every field of a valid entry: `(name, role, MiB, vcpus, cpu, console,
/// on_crash, cmdline)`.
/// `console_input`, `control`, `autostart`.
type Flags = (bool, bool, bool);
type Fields = (String, Role, u64, u32, Option<u32>, Flags, OnCrash, String);

fn domain() -> impl Strategy<Value = Fields> {
    (
        "[a-z0-9_-]{1,31}",
        role(),
        any::<u64>(),
        1u32..=8,
        proptest::option::of(any::<u32>()),
        (any::<bool>(), any::<bool>(), any::<bool>()),
        on_crash(),
        cmdline(),
    )
        .prop_map(
            |(name, role, mem, vcpus, cpu, console, on_crash, cmdline)| {
                let max = match role {
                    Role::Driver => DRIVER_DOMAIN_MAX_SIZE,
                    Role::Guest => GUEST_MAX_SIZE,
                } / MIB;
                let mem_mib = 2 + mem % (max - 1);
                (name, role, mem_mib, vcpus, cpu, console, on_crash, cmdline)
            },
        )
}

fn name() -> impl Strategy<Value = Name> {
    "[A-Za-z0-9_-]{1,32}".prop_map(|s| Name::new(&s).unwrap())
}

fn mac() -> impl Strategy<Value = MacAddr> {
    any::<[u8; 6]>().prop_map(MacAddr)
}

fn vbd() -> impl Strategy<Value = VbdWiring> {
    (
        name(),
        name(),
        name(),
        any::<u64>(),
        any::<u64>(),
        any::<bool>(),
    )
        .prop_map(|(frontend, dev, serial, start, sectors, readonly)| {
            // Non-empty and ending at or below 2^64 - 1.
            let sectors = 1 + sectors % (u64::MAX - start).max(1);
            let start = start.min(u64::MAX - sectors);
            VbdWiring {
                frontend,
                dev,
                serial,
                start,
                sectors,
                readonly,
            }
        })
}

fn vif() -> impl Strategy<Value = VifWiring> {
    (name(), name(), mac()).prop_map(|(frontend, dev, mac)| VifWiring { frontend, dev, mac })
}

/// Texts made of the words an entry has, right and wrong, in any order.
fn plausible_bootargs() -> impl Strategy<Value = String> {
    let word = prop_oneof![
        "name=[a-z_-]{1,4}",
        "name=[A-Z ]{0,2}",
        "mem_mib=[0-9+]{1,5}",
        "vcpus=[0-9]{1,2}",
        "cpu=[+0-9]{1,3}",
        "role=(driver|guest|x)",
        "console=(in|out)",
        "on_crash=(restart|destroy|x)",
        Just("--".to_owned()),
        "[a-z=]{1,4}",
    ];
    proptest::collection::vec(word, 0..10).prop_map(|w| w.join(" "))
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn bootargs_round_trip(f in domain()) {
        let (name, role, mem_mib, vcpus, cpu, (console_input, control, autostart), on_crash, cmdline) = &f;
        let d = DomainConfig {
            name,
            role: *role,
            memory: mem_mib * MIB,
            vcpus: *vcpus,
            cpu: *cpu,
            console_input: *console_input,
            on_crash: *on_crash,
            control: *control,
            autostart: *autostart,
            cmdline,
        };
        let text = d.to_string();
        prop_assert_eq!(parse_domain(&text), Ok(d), "{}", text);
    }

    #[test]
    fn bootargs_parse_is_total_and_canonical(s in prop_oneof!["\\PC{0,120}", plausible_bootargs()]) {
        // Whatever parses, written again, parses to the same config.
        if let Ok(d) = parse_domain(&s) {
            let text = d.to_string();
            prop_assert_eq!(parse_domain(&text), Ok(d), "{} -> {}", s, text);
        }
    }

    #[test]
    fn bootargs_words_in_any_order(f in domain(), seed in any::<u64>()) {
        // The head's words may come in any order; the writer's order is one of them.
        let (name, role, mem_mib, vcpus, cpu, ..) = &f;
        let mut words = vec![
            format!("name={name}"),
            format!("role={}", role.as_str()),
            format!("mem_mib={mem_mib}"),
            format!("vcpus={vcpus}"),
        ];
        if let Some(c) = cpu {
            words.push(format!("cpu={c}"));
        }
        let n = words.len();
        words.rotate_left((seed % n as u64) as usize);
        let text = words.join(" ");
        let d = parse_domain(&text).unwrap();
        prop_assert_eq!((d.name, d.role, d.memory, d.vcpus, d.cpu), (name.as_str(), *role, mem_mib * MIB, *vcpus, *cpu));
    }

    #[test]
    fn vbd_round_trips(v in vbd()) {
        let word = v.to_string();
        prop_assert_eq!(VbdWiring::parse(&word), Ok(v));
        prop_assert_eq!(WiringEntry::parse(&word), Some(Ok(WiringEntry::Vbd(v))));
    }

    #[test]
    fn vif_round_trips(v in vif()) {
        let word = v.to_string();
        prop_assert_eq!(VifWiring::parse(&word), Ok(v));
        prop_assert_eq!(WiringEntry::parse(&word), Some(Ok(WiringEntry::Vif(v))));
        prop_assert_eq!(VifWiring::parse(&word.to_uppercase().replacen("VIF=", "vif=", 1)).map(|w| w.mac), Ok(v.mac));
    }

    #[test]
    fn wiring_parse_is_total_and_canonical(s in prop_oneof!["\\PC{0,60}", "(vbd|vif)=[a-z0-9,:+-]{0,40}"]) {
        if let Some(Ok(e)) = WiringEntry::parse(&s) {
            prop_assert_eq!(WiringEntry::parse(&e.to_string()), Some(Ok(e)));
        }
    }

    #[test]
    fn mac_round_trips(m in mac()) {
        let text = m.to_string();
        prop_assert_eq!(text.len(), 17);
        prop_assert_eq!(MacAddr::parse(&text), Ok(m));
        prop_assert_eq!(MacAddr::parse(&text.to_uppercase()), Ok(m));
    }

    #[test]
    fn mac_parse_is_total(s in "\\PC{0,20}") {
        if let Ok(m) = MacAddr::parse(&s) {
            prop_assert_eq!(m.to_string(), s.to_lowercase());
        }
    }
}
