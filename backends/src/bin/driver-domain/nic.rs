//! The uplink: QEMU's virtio-net device, driven with `virtio-drivers`' raw,
//! non-blocking API over a fixed pool of DMA buffers (no allocation per
//! packet), its interrupt delivered as an event (`EvtchnBindPirq`) and ended
//! with `IrqEoi`.
//!
//! Every receive buffer is posted to the device at start and re-posted as soon
//! as its frame has been handed on; a transmit buffer is taken from the free
//! pool, and returns to it when the device has used it. When none is free the
//! frame is dropped and counted (the guests' TCP retransmits), never queued
//! without bound.

use core::ptr::NonNull;

use parapet_abi::event::Port;
use parapet_abi::netif::FRAME_MAX;
use parapet_backends::switch::MacAddr;
use parapet_guest::abi::start_info::MmioDevice;
use parapet_guest::{event, println};
use virtio_drivers::device::net::VirtIONetRaw;
use virtio_drivers::transport::mmio::{MmioTransport, VirtIOHeader};
use virtio_drivers::transport::{DeviceType, Transport};

use crate::hal::{leak_pages, DriverHal};

/// Descriptors per virtqueue.
const QUEUE: usize = 64;
/// Receive buffers posted to the device.
const RX_BUFS: usize = 32;
/// Transmit buffers.
const TX_BUFS: usize = 32;
/// Bytes per buffer: the virtio-net header and a whole frame.
const BUF: usize = 2048;

const _: () = assert!(RX_BUFS <= QUEUE && TX_BUFS <= QUEUE);
const _: () = assert!(BUF >= FRAME_MAX + 12);

/// Counters of the uplink.
#[derive(Clone, Copy, Debug, Default)]
pub struct NicStats {
    /// Frames received from the device.
    pub rx_frames: u64,
    /// Frames handed to the device.
    pub tx_frames: u64,
    /// Frames dropped because no transmit buffer was free.
    pub tx_dropped: u64,
    /// Device interrupts taken.
    pub irqs: u64,
    /// Device errors (a buffer the device gave back malformed).
    pub errors: u64,
}

/// The virtio-net device and its buffers.
pub struct Nic {
    dev: VirtIONetRaw<DriverHal, MmioTransport<'static>, QUEUE>,
    bufs: buffers::Pool,
    intid: u32,
    port: Option<Port>,
    /// The device's own MAC.
    pub mac: [u8; 6],
    /// Counters.
    pub stats: NicStats,
}

impl Nic {
    /// Starts the virtio-net driver on `dev` (if it is one), posts every
    /// receive buffer and binds the device interrupt to an event whose handler
    /// is `on_irq`.
    pub fn start(dev: &MmioDevice, on_irq: fn(Port)) -> Option<Self> {
        let header = NonNull::new(dev.base as *mut VirtIOHeader)?;
        // SAFETY: the hypervisor mapped this virtio-mmio window 1:1 into the
        // driver domain only, for the domain's life; this transport is its
        // only user.
        let transport = unsafe { MmioTransport::new(header, dev.size as usize) }.ok()?;
        if transport.device_type() != DeviceType::Network {
            return None;
        }
        let net = match VirtIONetRaw::<DriverHal, _, QUEUE>::new(transport) {
            Ok(n) => n,
            Err(e) => {
                println!("virtio-net@{:#010x}: {e:?}", dev.base);
                return None;
            }
        };
        let mac = net.mac_address();
        let mut nic = Nic {
            dev: net,
            bufs: buffers::Pool::new(
                leak_pages(RX_BUFS * BUF / 4096),
                leak_pages(TX_BUFS * BUF / 4096),
            ),
            intid: dev.intid,
            port: None,
            mac,
            stats: NicStats::default(),
        };
        for i in 0..RX_BUFS {
            if let Err(e) = nic.bufs.post_rx(&mut nic.dev, i) {
                println!("virtio-net: cannot post receive buffer {i}: {e:?}");
                return None;
            }
        }
        match event::bind_pirq(dev.intid) {
            Ok(port) => {
                if event::set_handler(port, on_irq).is_ok() {
                    nic.port = Some(port);
                }
            }
            Err(e) => println!(
                "virtio-net: interrupt {} not bound ({e}): polling",
                dev.intid
            ),
        }
        nic.dev.enable_interrupts();
        println!(
            "virtio-net@{:#010x}: MAC {}, {RX_BUFS} receive and {TX_BUFS} transmit buffers, irq {}",
            dev.base,
            MacAddr(mac),
            dev.intid
        );
        Some(nic)
    }

    /// Whether the device interrupt is bound (else the caller polls).
    pub fn has_irq(&self) -> bool {
        self.port.is_some()
    }

    /// After the device interrupt: acknowledges it at the device, then ends it
    /// at the interrupt controller (the hypervisor masked it when it fired).
    /// Call before draining the queues, so a completion after the drain
    /// raises a new interrupt.
    pub fn ack_irq(&mut self) {
        self.stats.irqs += 1;
        let _ = self.dev.ack_interrupt();
        let _ = event::irq_eoi(self.intid);
    }

    /// Hands each received frame to `deliver` and re-posts its buffer; returns
    /// how many.
    /// Whether a received frame is waiting.
    pub fn has_rx(&self) -> bool {
        self.dev.poll_receive().is_some()
    }

    /// Hands the oldest received frame to `f` (an empty slice for a frame
    /// the device got wrong, counted) and re-posts its buffer; `None` if no
    /// frame was waiting.
    pub fn receive_one<R>(&mut self, f: impl FnOnce(&[u8]) -> R) -> Option<R> {
        let token = self.dev.poll_receive()?;
        let r = match self.bufs.complete_rx(&mut self.dev, token) {
            Ok(Some(frame)) => {
                self.stats.rx_frames += 1;
                f(frame)
            }
            Ok(None) | Err(_) => {
                self.stats.errors += 1;
                f(&[])
            }
        };
        if let Some(i) = self.bufs.last_rx() {
            if self.bufs.post_rx(&mut self.dev, i).is_err() {
                self.stats.errors += 1;
            }
        }
        Some(r)
    }

    pub fn receive(&mut self, mut deliver: impl FnMut(&[u8])) -> usize {
        let mut n = 0;
        while let Some(token) = self.dev.poll_receive() {
            match self.bufs.complete_rx(&mut self.dev, token) {
                Ok(Some(frame)) => {
                    self.stats.rx_frames += 1;
                    deliver(frame);
                }
                Ok(None) => self.stats.errors += 1,
                Err(e) => {
                    println!("virtio-net: receive failed: {e:?}");
                    self.stats.errors += 1;
                    return n;
                }
            }
            if let Some(i) = self.bufs.last_rx() {
                if self.bufs.post_rx(&mut self.dev, i).is_err() {
                    self.stats.errors += 1;
                }
            }
            n += 1;
        }
        n
    }

    /// Queues `frame` for transmission; false (and counted) if no buffer is
    /// free.
    /// Sends a frame of `len` bytes (at most `FRAME_MAX`) that `fill` writes
    /// straight into a transmit buffer (netback copies a guest's frame there
    /// once, from its granted buffer).
    pub fn send_with(&mut self, len: usize, fill: impl FnOnce(&mut [u8])) -> bool {
        self.reclaim_tx();
        match self.bufs.send(&mut self.dev, len, fill) {
            Ok(true) => {
                self.stats.tx_frames += 1;
                true
            }
            Ok(false) => {
                self.stats.tx_dropped += 1;
                false
            }
            Err(_) => {
                self.stats.errors += 1;
                false
            }
        }
    }

    /// Takes back the transmit buffers the device is done with.
    pub fn reclaim_tx(&mut self) {
        while let Some(token) = self.dev.poll_transmit() {
            if self.bufs.complete_tx(&mut self.dev, token).is_err() {
                self.stats.errors += 1;
                break;
            }
        }
    }
}

/// The unsafe part: lending buffers to the device. Each buffer is either
/// owned by the device (between `*_begin` and `*_complete`, never touched
/// here) or by the pool.
mod buffers {
    use super::*;
    use virtio_drivers::Error;

    type Dev = VirtIONetRaw<DriverHal, MmioTransport<'static>, QUEUE>;

    pub struct Pool {
        rx: &'static mut [u8],
        tx: &'static mut [u8],
        /// Device token of each receive buffer lent to the device.
        rx_token: [Option<u16>; RX_BUFS],
        /// Device token and length of each transmit buffer lent to the device.
        tx_token: [Option<(u16, usize)>; TX_BUFS],
        last_rx: Option<usize>,
    }

    impl Pool {
        pub fn new(rx: &'static mut [u8], tx: &'static mut [u8]) -> Self {
            Pool {
                rx,
                tx,
                rx_token: [None; RX_BUFS],
                tx_token: [None; TX_BUFS],
                last_rx: None,
            }
        }

        fn rx_buf(rx: &mut [u8], i: usize) -> &mut [u8] {
            &mut rx[i * BUF..(i + 1) * BUF]
        }

        /// Lends receive buffer `i` (owned by the pool) to the device.
        pub fn post_rx(&mut self, dev: &mut Dev, i: usize) -> Result<(), Error> {
            if self.rx_token[i].is_some() {
                return Err(Error::AlreadyUsed);
            }
            let buf = Self::rx_buf(self.rx, i);
            // SAFETY: buffer `i` is the pool's (no token), and the pool does not
            // touch it again until `complete_rx` returns it with this token.
            let token = unsafe { dev.receive_begin(buf)? };
            self.rx_token[i] = Some(token);
            Ok(())
        }

        /// The buffer `complete_rx` last took back.
        pub fn last_rx(&mut self) -> Option<usize> {
            self.last_rx.take()
        }

        /// Takes back the receive buffer of `token`; the frame in it, or `None`
        /// if the device's length is not a frame.
        pub fn complete_rx(&mut self, dev: &mut Dev, token: u16) -> Result<Option<&[u8]>, Error> {
            let Some(i) = self.rx_token.iter().position(|t| *t == Some(token)) else {
                return Err(Error::WrongToken);
            };
            let buf = Self::rx_buf(self.rx, i);
            // SAFETY: `buf` is the buffer lent with `token`.
            let (hdr, len) = unsafe { dev.receive_complete(token, buf)? };
            self.rx_token[i] = None;
            self.last_rx = Some(i);
            if !(14..=FRAME_MAX).contains(&len) || hdr + len > BUF {
                return Ok(None);
            }
            Ok(Some(&self.rx[i * BUF + hdr..i * BUF + hdr + len]))
        }

        /// Copies `frame` into a free transmit buffer and lends it to the
        /// device; `Ok(false)` if none is free.
        pub fn send(
            &mut self,
            dev: &mut Dev,
            frame_len: usize,
            fill: impl FnOnce(&mut [u8]),
        ) -> Result<bool, Error> {
            let Some(i) = self.tx_token.iter().position(Option::is_none) else {
                return Ok(false);
            };
            let buf = &mut self.tx[i * BUF..(i + 1) * BUF];
            let hdr = dev.fill_buffer_header(buf)?;
            if frame_len > FRAME_MAX || hdr + frame_len > BUF {
                return Err(Error::InvalidParam);
            }
            fill(&mut buf[hdr..hdr + frame_len]);
            let len = hdr + frame_len;
            // SAFETY: buffer `i` is the pool's (no token), and the pool does not
            // touch it again until `complete_tx` returns it with this token.
            let token = unsafe { dev.transmit_begin(&buf[..len])? };
            self.tx_token[i] = Some((token, len));
            Ok(true)
        }

        /// Takes back the transmit buffer of `token`.
        pub fn complete_tx(&mut self, dev: &mut Dev, token: u16) -> Result<(), Error> {
            let Some(i) = self
                .tx_token
                .iter()
                .position(|t| t.is_some_and(|(tk, _)| tk == token))
            else {
                return Err(Error::WrongToken);
            };
            let len = self.tx_token[i].map_or(0, |(_, l)| l);
            let buf = &self.tx[i * BUF..i * BUF + len];
            // SAFETY: `buf` is the buffer (and length) lent with `token`.
            unsafe { dev.transmit_complete(token, buf)? };
            self.tx_token[i] = None;
            Ok(())
        }
    }
}
