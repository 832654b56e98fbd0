//! The domain table (`name=… role=… mem_mib=… vcpus=… [-- CMDLINE]`, one entry
//! per `/chosen/module@…` node) and the hypervisor's own command line
//! (`timeslice_ms=…`). The format, its parser and its writer live in
//! [`parapet_abi::bootargs`], shared with the `parapet` tool that writes it;
//! this module keeps the names the hypervisor uses.

pub use parapet_abi::bootargs::*;
