//! Property tests of the typed hypercalls: every call survives encode then
//! decode, decoding is total, and unknown numbers and reasons get the errors
//! the hypervisor has always given.

use parapet_abi::hypercall::{Hypercall, ShutdownReason};
use parapet_abi::{AbiVersion, Call, HvError};
use proptest::prelude::*;

/// A call of number `nr` (taken modulo the number of calls) with its fields
/// drawn from `a`, built variant by variant (not through `decode`).
fn build(nr: u64, a: [u64; 6], version: AbiVersion, reason: ShutdownReason) -> Call {
    let [a1, a2, a3, a4, a5, _] = a;
    match nr % 35 {
        0 => Call::Version,
        1 => Call::VersionCheck { version },
        2 => Call::ConsoleWrite { buf: a1, len: a2 },
        3 => Call::Yield,
        4 => Call::Block,
        5 => Call::SetTimer { deadline: a1 },
        6 => Call::VcpuInfo,
        7 => Call::Shutdown { reason, code: a2 },
        8 => Call::VpsrSync,
        9 => Call::VcpuUp {
            vcpu: a1,
            entry: a2,
            arg: a3,
        },
        10 => Call::DomainCount,
        11 => Call::DomainLookup { name: a1, len: a2 },
        12 => Call::EvtchnAllocUnbound { remote: a1 },
        13 => Call::EvtchnBindInterdomain {
            remote: a1,
            remote_port: a2,
        },
        14 => Call::EvtchnBindVirq { virq: a1, vcpu: a2 },
        15 => Call::EvtchnBindIpi { vcpu: a1 },
        16 => Call::EvtchnSend { port: a1 },
        17 => Call::EvtchnClose { port: a1 },
        18 => Call::EvtchnStatus { port: a1 },
        19 => Call::EvtchnUnmask { port: a1 },
        20 => Call::GrantMap {
            granter: a1,
            gref: a2,
            ipa: a3,
            flags: a4,
        },
        21 => Call::GrantUnmap { handle: a1 },
        22 => Call::GrantCopy { op: a1 },
        23 => Call::StoreWrite {
            key: a1,
            key_len: a2,
            value: a3,
            value_len: a4,
        },
        24 => Call::StoreRead {
            domain: a1,
            key: a2,
            key_len: a3,
            buf: a4,
            buf_len: a5,
        },
        25 => Call::StoreRemove {
            key: a1,
            key_len: a2,
        },
        26 => Call::Stats,
        27 => Call::ConsoleRead { buf: a1, len: a2 },
        28 => Call::EvtchnBindPirq { intid: a1 },
        29 => Call::IrqEoi { intid: a1 },
        30 => Call::DomctlList {
            domain: a1,
            buf: a2,
            len: a3,
        },
        31 => Call::DomctlOp { op: a1, domain: a2 },
        32 => Call::DomctlTotals,
        33 => Call::ControlRead { buf: a1, len: a2 },
        _ => Call::TraceMark {
            text: [a1, a2],
            len: a3,
        },
    }
}

fn reason() -> impl Strategy<Value = ShutdownReason> {
    prop_oneof![
        Just(ShutdownReason::Poweroff),
        Just(ShutdownReason::Crash),
        Just(ShutdownReason::Reboot),
    ]
}

fn version() -> impl Strategy<Value = AbiVersion> {
    (any::<u16>(), any::<u16>()).prop_map(|(major, minor)| AbiVersion { major, minor })
}

/// Register values: often small or at the edges, where bugs hide.
fn reg() -> impl Strategy<Value = u64> {
    prop_oneof![0u64..64, Just(u64::MAX), any::<u64>()]
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 2048,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn every_call_round_trips(
        nr in 0u64..35,
        a in proptest::array::uniform6(reg()),
        v in version(),
        r in reason(),
    ) {
        let call = build(nr, a, v, r);
        let (raw, args) = call.encode();
        prop_assert_eq!(raw, nr);
        prop_assert_eq!(raw, call.number() as u64);
        prop_assert_eq!(Hypercall::from_raw(raw), Some(call.number()));
        prop_assert_eq!(Call::decode(raw, args), Ok(call));
        prop_assert_eq!(Call::from_args(call.number(), args), Ok(call));
    }

    #[test]
    fn decode_is_total_and_keeps_every_used_register(
        nr in prop_oneof![0u64..36, any::<u64>()],
        a in proptest::array::uniform6(reg()),
    ) {
        match Call::decode(nr, a) {
            Ok(call) => {
                let (raw, args) = call.encode();
                prop_assert_eq!(raw, nr);
                // What the call uses comes back unchanged (the version keeps
                // its low 32 bits); what it does not use comes back as 0.
                for (i, (&out, &inp)) in args.iter().zip(&a).enumerate() {
                    let kept = if nr == Hypercall::VersionCheck as u64 { inp & 0xffff_ffff } else { inp };
                    prop_assert!(out == 0 || out == kept, "x{}: {:#x} vs {:#x}", i + 1, out, inp);
                }
                prop_assert_eq!(Call::decode(raw, args), Ok(call));
            }
            Err(HvError::NoSys) => prop_assert_eq!(Hypercall::from_raw(nr), None),
            Err(HvError::Inval) => {
                prop_assert_eq!(nr, Hypercall::Shutdown as u64);
                prop_assert_eq!(ShutdownReason::from_raw(a[0]), None);
            }
            Err(e) => prop_assert!(false, "unexpected error {:?}", e),
        }
    }

    #[test]
    fn unknown_numbers_are_nosys(nr in 35u64.., a in any::<[u64; 6]>()) {
        prop_assert_eq!(Call::decode(nr, a), Err(HvError::NoSys));
    }

    #[test]
    fn unknown_reasons_are_inval(raw in 3u64.., code in any::<u64>()) {
        let args = [raw, code, 0, 0, 0, 0];
        prop_assert_eq!(Call::decode(Hypercall::Shutdown as u64, args), Err(HvError::Inval));
    }
}

#[test]
fn every_small_unknown_number_is_nosys() {
    for nr in 35..4096 {
        assert_eq!(Call::decode(nr, [0; 6]), Err(HvError::NoSys));
    }
    for nr in [u64::MAX, 1 << 63, 1 << 32, (1 << 32) + 1] {
        assert_eq!(Call::decode(nr, [1; 6]), Err(HvError::NoSys));
    }
}
