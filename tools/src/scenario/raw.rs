//! The scenario file as deserialized, before validation: every value keeps
//! its span so errors can name its line.

use serde::Deserialize;
use toml::Spanned;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawScenario {
    pub(super) machine: Option<RawMachine>,
    #[serde(default)]
    pub(super) domain: Vec<Spanned<RawDomain>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMachine {
    pub(super) cpus: Option<Spanned<i64>>,
    pub(super) memory_mib: Option<Spanned<i64>>,
    pub(super) timeslice_ms: Option<Spanned<i64>>,
    pub(super) icount: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDomain {
    pub(super) name: Option<Spanned<String>>,
    pub(super) role: Option<Spanned<String>>,
    pub(super) image: Option<Spanned<String>>,
    pub(super) memory_mib: Option<Spanned<i64>>,
    pub(super) vcpus: Option<Spanned<i64>>,
    pub(super) cpu: Option<Spanned<i64>>,
    pub(super) cmdline: Option<Spanned<String>>,
    pub(super) on_crash: Option<Spanned<String>>,
    pub(super) console_input: Option<Spanned<bool>>,
    pub(super) control: Option<Spanned<bool>>,
    pub(super) autostart: Option<Spanned<bool>>,
    pub(super) disk: Option<Spanned<RawDisk>>,
    pub(super) net: Option<Spanned<RawNet>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNet {
    pub(super) mac: Option<Spanned<String>>,
    pub(super) ip: Option<Spanned<String>>,
    pub(super) gateway: Option<Spanned<String>>,
    pub(super) forward: Option<Vec<Spanned<RawForward>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawForward {
    pub(super) host: Spanned<i64>,
    pub(super) guest: Spanned<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDisk {
    pub(super) image: String,
    pub(super) size_mib: Option<Spanned<i64>>,
    pub(super) start_sector: Option<Spanned<i64>>,
    pub(super) sectors: Option<Spanned<i64>>,
    pub(super) readonly: Option<bool>,
}
