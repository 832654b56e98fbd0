//! Console hypercalls: `ConsoleWrite` (line-buffered, prefixed with the
//! domain's name) and `ConsoleRead` (input for the console-input domain).

use parapet_abi::hypercall::CONSOLE_WRITE_MAX;
use parapet_abi::start_info;
use parapet_abi::HvError;

use crate::convert::usize_from;
use crate::hv::{print_line, Hypervisor};

impl Hypervisor {
    /// `ConsoleRead`: hands queued console input to the console-input domain.
    /// Bytes leave the queue only once they are in the guest's buffer.
    #[inline(never)]
    pub(super) fn console_read(&mut self, d: usize, ipa: u64, len: u64) -> Result<u64, HvError> {
        if d != self.console_domain {
            return Err(HvError::Perm);
        }
        let mut buf = [0u8; crate::console::INPUT_MAX];
        let want = usize_from(len).min(buf.len());
        let n = self.console_in.peek_into(&mut buf[..want]);
        self.copy_to_guest(d, ipa, &buf[..n])?;
        self.console_in.consume(n);
        Ok(n as u64)
    }

    /// `ConsoleWrite`: copies the guest's buffer through its stage-2 view
    /// (read once, into a private buffer) and line-buffers it.
    pub(super) fn console_write(&mut self, d: usize, ipa: u64, len: u64) -> Result<u64, HvError> {
        if len > CONSOLE_WRITE_MAX {
            return Err(HvError::Inval);
        }
        let n = usize::try_from(len).map_err(|_| HvError::Inval)?;
        let mut buf = [0u8; usize_from(CONSOLE_WRITE_MAX)];
        self.copy_from_guest(d, ipa, &mut buf[..n])?;
        let dom = &mut self.domains[d];
        let name = start_info::c_str(&dom.name).unwrap_or("?");
        dom.console
            .push(&buf[..n], |line| print_line(name, format_args!("{line}")));
        Ok(len)
    }
}
