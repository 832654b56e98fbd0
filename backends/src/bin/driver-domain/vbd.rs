//! blkback glue: one [`Vbd`] per virtual disk of the scenario. It runs the
//! backend side of the handshake through the store, maps the frontend's ring,
//! and serves requests with the portable [`parapet_backends::blkback`] logic
//! over the virtio-blk device ([`Storage`]) and grant copies ([`Grants`]).

use core::sync::atomic::{AtomicBool, Ordering};
use parapet_abi::blkif::{BlkRequest, BlkResponse, BlkStatus};
use parapet_abi::event::Port;
use parapet_abi::grant::{CopySide, GrantCopy, COPY_GREF, DOMID_SELF};
use parapet_abi::ring::BackRing;
use parapet_abi::xenbus::{backend_key, backend_step, frontend_key, BackAction, XenbusState};
use parapet_abi::HvError;
use parapet_backends::blkback::{self, Disk, Grants, IoFailed, Storage, REQUEST_BYTES_MAX};
use parapet_backends::config::{Name, VbdWiring};
use parapet_guest::event::{self, DomId};
use parapet_guest::grant::{self, Mapped};
use parapet_guest::{println, store};

use parapet_guest::time;
use virtio_drivers::device::blk::{BlkReq, BlkResp, VirtIOBlk};
use virtio_drivers::transport::mmio::MmioTransport;

use crate::hal::DriverHal;

const PAGE: usize = 4096;

/// A virtio-blk device and the serial that names it in the scenario.
pub struct BlockDevice {
    /// Its serial (`-device virtio-blk-device,serial=…`).
    pub serial: Name,
    /// The driver.
    pub blk: VirtIOBlk<DriverHal, MmioTransport<'static>>,
    /// Capacity in sectors.
    pub sectors: u64,
    /// Its interrupt, once bound to an event ([`BlockDevice::bind_irq`]);
    /// without it requests are completed by polling.
    irq: Option<u32>,
    /// Device interrupts taken.
    pub irqs: u64,
}

/// Set by the event handler of any virtio-blk interrupt.
static BLK_IRQ: AtomicBool = AtomicBool::new(false);

fn on_blk_irq(_: Port) {
    BLK_IRQ.store(true, Ordering::SeqCst);
}

/// How long a wait for the device sleeps before looking at the used ring
/// again, should an interrupt not come.
const IRQ_FALLBACK: time::Duration = time::Duration::from_millis(20);

impl BlockDevice {
    /// A device whose requests are completed by polling until
    /// [`BlockDevice::bind_irq`].
    pub fn new(serial: Name, blk: VirtIOBlk<DriverHal, MmioTransport<'static>>) -> Self {
        let sectors = blk.capacity();
        Self {
            serial,
            blk,
            sectors,
            irq: None,
            irqs: 0,
        }
    }

    /// Binds the device's interrupt to an event: from then on the driver
    /// domain sleeps while the device works instead of spinning on its used
    /// ring.
    pub fn bind_irq(&mut self, intid: u32) -> Result<(), HvError> {
        let port = event::bind_pirq(intid)?;
        event::set_handler(port, on_blk_irq)?;
        self.blk.enable_interrupts();
        self.irq = Some(intid);
        Ok(())
    }

    /// Sleeps until the request of `token` is in the used ring, then
    /// acknowledges the interrupt at the device and ends it (`IrqEoi`).
    fn wait_for(&mut self, token: u16) {
        let Some(intid) = self.irq else {
            while self.blk.peek_used() != Some(token) {
                core::hint::spin_loop();
            }
            return;
        };
        let blk = &mut self.blk;
        loop {
            // The fallback is a deadline of the SDK's timer queue; a timeout
            // only means "look again".
            let _ = event::wait_until_deadline(time::deadline_after(IRQ_FALLBACK), || {
                BLK_IRQ.swap(false, Ordering::SeqCst) || blk.peek_used() == Some(token)
            });
            if blk.peek_used() == Some(token) {
                break;
            }
        }
        let _ = blk.ack_interrupt();
        let _ = event::irq_eoi(intid);
        self.irqs += 1;
    }
}

impl Storage for BlockDevice {
    fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), IoFailed> {
        let (mut req, mut resp) = (BlkReq::default(), BlkResp::default());
        // SAFETY: `req`, `buf` and `resp` stay borrowed by this call and are not
        // touched until `complete_read_blocks` below takes them back with the
        // same token (`wait_for` only looks at the used ring).
        let token = unsafe {
            self.blk
                .read_blocks_nb(sector as usize, &mut req, buf, &mut resp)
        }
        .map_err(|_| IoFailed)?;
        self.wait_for(token);
        // SAFETY: the same buffers as passed to `read_blocks_nb` for `token`.
        unsafe { self.blk.complete_read_blocks(token, &req, buf, &mut resp) }.map_err(|_| IoFailed)
    }
    fn write(&mut self, sector: u64, buf: &[u8]) -> Result<(), IoFailed> {
        let (mut req, mut resp) = (BlkReq::default(), BlkResp::default());
        // SAFETY: as in `read`.
        let token = unsafe {
            self.blk
                .write_blocks_nb(sector as usize, &mut req, buf, &mut resp)
        }
        .map_err(|_| IoFailed)?;
        self.wait_for(token);
        // SAFETY: the same buffers as passed to `write_blocks_nb` for `token`.
        unsafe { self.blk.complete_write_blocks(token, &req, buf, &mut resp) }.map_err(|_| IoFailed)
    }
    fn flush(&mut self) -> Result<(), IoFailed> {
        // Rare, and virtio-drivers has no non-blocking flush: polled.
        self.blk.flush().map_err(|_| IoFailed)
    }
}

/// Grant copies between a frontend's pages and our (1:1) memory.
struct CopyGrants {
    frontend: DomId,
}

impl CopyGrants {
    /// Copies `len` bytes between grant `gref` at `offset` and our buffer at
    /// `ours`, split where our buffer crosses a page (each side of one grant
    /// copy stays in one page).
    fn copy(
        &self,
        gref: u32,
        offset: usize,
        ours: u64,
        len: usize,
        to_grant: bool,
    ) -> Result<(), IoFailed> {
        let mut done = 0;
        while done < len {
            let addr = ours + done as u64;
            let n = (len - done).min(PAGE - (addr as usize % PAGE));
            let granted = CopySide {
                gref_or_gfn: gref.into(),
                offset: (offset + done) as u32,
                domid: self.frontend as u16,
                flags: COPY_GREF,
            };
            let own = CopySide {
                gref_or_gfn: addr / PAGE as u64,
                offset: (addr % PAGE as u64) as u32,
                domid: DOMID_SELF,
                flags: 0,
            };
            let (source, dest) = if to_grant {
                (own, granted)
            } else {
                (granted, own)
            };
            let op = GrantCopy {
                source,
                dest,
                len: n as u32,
                _reserved: 0,
            };
            grant::copy(&op).map_err(|_| IoFailed)?;
            done += n;
        }
        Ok(())
    }
}

impl Grants for CopyGrants {
    fn copy_from(&mut self, gref: u32, offset: usize, out: &mut [u8]) -> Result<(), IoFailed> {
        self.copy(gref, offset, out.as_mut_ptr() as u64, out.len(), false)
    }
    fn copy_to(&mut self, gref: u32, offset: usize, data: &[u8]) -> Result<(), IoFailed> {
        self.copy(gref, offset, data.as_ptr() as u64, data.len(), true)
    }
}

struct Connection {
    ring: BackRing<'static, BlkRequest, BlkResponse>,
    mapping: Mapped,
    port: Port,
}

/// One virtual disk: its wiring, handshake state and connection.
pub struct Vbd {
    /// The scenario's entry.
    pub cfg: VbdWiring,
    /// The frontend's domain id.
    pub frontend: DomId,
    /// Index of the device that holds it.
    pub device: usize,
    state: XenbusState,
    conn: Option<Connection>,
    /// Requests answered.
    pub served: u64,
    /// Requests refused or failed.
    pub failed: u64,
}

/// The frontend's state for device `dev` (`Unknown` when it published none
/// or is gone): what the backends' handshakes decide on.
pub fn frontend_state(frontend: DomId, dev: &str) -> XenbusState {
    frontend_key(dev, "state")
        .and_then(|k| store::read_u64(frontend, k.as_str()).ok())
        .map_or(XenbusState::Unknown, XenbusState::from_raw)
}

impl Vbd {
    /// A disconnected disk.
    pub fn new(cfg: VbdWiring, frontend: DomId, device: usize) -> Self {
        Self {
            cfg,
            frontend,
            device,
            state: XenbusState::Unknown,
            conn: None,
            served: 0,
            failed: 0,
        }
    }

    fn key(&self, field: &str) -> Result<parapet_abi::xenbus::Key, HvError> {
        backend_key(self.frontend, self.cfg.dev.as_str(), field).ok_or(HvError::Inval)
    }

    fn set_state(&mut self, s: XenbusState) -> Result<(), HvError> {
        store::write_u64(self.key("state")?.as_str(), s.to_raw())?;
        self.state = s;
        Ok(())
    }

    /// Re-runs the handshake after a store change (or at start).
    pub fn handshake(&mut self, on_event: fn(Port)) {
        let theirs = frontend_state(self.frontend, self.cfg.dev.as_str());
        let result = match backend_step(self.state, theirs) {
            BackAction::Wait => Ok(()),
            BackAction::Advertise => self.advertise(),
            BackAction::Attach => self.attach(on_event),
            BackAction::Detach => {
                self.detach();
                println!(
                    "blkback: {}/{} disconnected",
                    self.cfg.frontend, self.cfg.dev
                );
                self.advertise()
            }
        };
        if let Err(e) = result {
            println!(
                "blkback: {}/{}: handshake failed: {e}",
                self.cfg.frontend, self.cfg.dev
            );
            self.detach();
            let _ = self.set_state(XenbusState::Closed);
        }
    }

    fn advertise(&mut self) -> Result<(), HvError> {
        store::write_u64(self.key("sectors")?.as_str(), self.cfg.sectors)?;
        store::write_u64(self.key("readonly")?.as_str(), self.cfg.readonly.into())?;
        self.set_state(XenbusState::InitWait)
    }

    fn attach(&mut self, on_event: fn(Port)) -> Result<(), HvError> {
        let dev = self.cfg.dev.as_str();
        let read = |field| {
            let k = frontend_key(dev, field).ok_or(HvError::Inval)?;
            store::read_u64(self.frontend, k.as_str())
        };
        let (ring_ref, remote_port) = (read("ring-ref")?, read("port")?);
        let ring_ref = u32::try_from(ring_ref).map_err(|_| HvError::Inval)?;
        let remote_port = u32::try_from(remote_port).map_err(|_| HvError::Inval)?;
        let mapping = grant::map(self.frontend, &[ring_ref], false)?;
        let ring = match shared::back_ring(mapping.addr) {
            Ok(r) => r,
            Err(e) => {
                let _ = grant::unmap(mapping);
                return Err(e);
            }
        };
        let port = match event::bind_interdomain(self.frontend, remote_port) {
            Ok(p) => p,
            Err(e) => {
                let _ = grant::unmap(mapping);
                return Err(e);
            }
        };
        event::set_handler(port, on_event)?;
        self.conn = Some(Connection {
            ring,
            mapping,
            port,
        });
        self.set_state(XenbusState::Connected)?;
        println!(
            "blkback: {}/{} connected: {} sectors{} from {} at sector {}",
            self.cfg.frontend,
            self.cfg.dev,
            self.cfg.sectors,
            if self.cfg.readonly {
                " (read-only)"
            } else {
                ""
            },
            self.cfg.serial,
            self.cfg.start
        );
        Ok(())
    }

    fn detach(&mut self) {
        if let Some(c) = self.conn.take() {
            let _ = event::close(c.port);
            // The ring handle goes before the mapping under it.
            let Connection { ring, mapping, .. } = c;
            let _ = ring;
            let _ = grant::unmap(mapping);
        }
    }

    /// Serves every request on the ring; returns how many.
    pub fn serve(&mut self, dev: &mut BlockDevice, bounce: &mut [u8; REQUEST_BYTES_MAX]) -> usize {
        let disk = Disk {
            start: self.cfg.start,
            sectors: self.cfg.sectors,
            readonly: self.cfg.readonly,
        };
        let mut grants = CopyGrants {
            frontend: self.frontend,
        };
        let Some(c) = self.conn.as_mut() else {
            return 0;
        };
        let mut count = 0;
        let mut broken = None;
        loop {
            let req = match c.ring.poll_request() {
                Ok(Some(r)) => r,
                Ok(None) => {
                    if c.ring.push_responses_and_check_notify() {
                        let _ = event::send(c.port);
                    }
                    match c.ring.final_check_for_requests() {
                        Ok(true) => continue,
                        Ok(false) => break,
                        Err(e) => {
                            broken = Some(e);
                            break;
                        }
                    }
                }
                Err(e) => {
                    broken = Some(e);
                    break;
                }
            };
            let status = blkback::execute(&req, &disk, dev, &mut grants, bounce);
            if status == BlkStatus::Okay {
                self.served += 1;
            } else {
                self.failed += 1;
            }
            let rsp = BlkResponse {
                id: req.id,
                op: req.op,
                _pad: [0; 3],
                status: status.to_raw(),
            };
            if let Err(e) = c.ring.push_response(&rsp) {
                broken = Some(e);
                break;
            }
            count += 1;
            // Bounded work per call, so that one flooding frontend cannot
            // starve the others; the caller comes back (`has_work`).
            if count % 64 == 0 {
                if c.ring.push_responses_and_check_notify() {
                    let _ = event::send(c.port);
                }
                break;
            }
        }
        if let Some(e) = broken {
            // A frontend that corrupts its ring is disconnected; it may
            // reconnect through the handshake.
            println!(
                "blkback: {}/{}: ring corrupted ({e:?}): disconnecting",
                self.cfg.frontend, self.cfg.dev
            );
            self.detach();
            let _ = self.set_state(XenbusState::Closed);
        }
        count
    }

    /// Whether requests may be waiting (checked after `serve` stopped early).
    pub fn has_work(&mut self) -> bool {
        self.conn
            .as_mut()
            .is_some_and(|c| c.ring.final_check_for_requests().unwrap_or(true))
    }
}

/// The unsafe part: the ring handle over the frontend's mapped page.
mod shared {
    use super::*;

    pub fn back_ring(addr: u64) -> Result<BackRing<'static, BlkRequest, BlkResponse>, HvError> {
        // SAFETY: `addr` is the page the frontend granted, mapped into our
        // grant window until `Vbd::detach` unmaps it, which drops the ring
        // first; only the ring code touches it here. A frontend that dies
        // has its page replaced by our scratch page, so it stays mapped.
        unsafe { BackRing::from_raw(addr as *mut u8, PAGE) }.map_err(|_| HvError::Inval)
    }
}
