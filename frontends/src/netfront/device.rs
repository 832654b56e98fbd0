//! The netfront as smoltcp's [`Device`]: its receive and transmit tokens.

extern crate alloc;

use alloc::vec;

use parapet_abi::netif::{
    rx_page, tx_page, Chain, FramePages, TxRequest, FRAME_MAX, FRAME_MIN, MTU_SG, NET_BUFS,
    TXF_MORE,
};
use parapet_abi::ring::PAGE_SIZE;
use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::time::Instant;

use super::paths::TxPath;
use super::{NetStats, Netfront};

/// A received frame, already copied into private memory.
#[derive(Debug)]
pub struct NetRxToken<'t> {
    frame: &'t [u8],
}

impl phy::RxToken for NetRxToken<'_> {
    fn consume<R, F>(self, f: F) -> R
    where
        F: FnOnce(&[u8]) -> R,
    {
        f(self.frame)
    }
}

/// The right to send one frame.
pub struct NetTxToken<'t, 'a, P: FramePages> {
    tx: &'t mut TxPath<'a>,
    pages: &'t mut P,
    stats: &'t mut NetStats,
}

impl<P: FramePages> core::fmt::Debug for NetTxToken<'_, '_, P> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("NetTxToken")
            .field("tx_free", &self.tx.free.len())
            .finish()
    }
}

impl<P: FramePages> phy::TxToken for NetTxToken<'_, '_, P> {
    fn consume<R, F>(self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        let tx = self.tx;
        if len > tx.frame_max {
            // smoltcp respects the MTU; should it not, the frame is built and dropped.
            let mut big = vec![0u8; len];
            let r = f(&mut big);
            self.stats.tx_dropped += 1;
            return r;
        }
        let r = f(tx.scratch.frame_mut(len));
        let frags = Chain::frags(len);
        if len < FRAME_MIN || tx.free.len() < frags || tx.ring.free_slots() < frags as u32 {
            self.stats.tx_dropped += 1;
            return r;
        }
        let frame = tx.scratch.frame(len);
        for i in 0..frags {
            // `free.len() >= frags`: there is one.
            let Some(id) = tx.free.pop_first() else { break };
            let n = Chain::frag_len(len, i);
            self.pages
                .write(tx_page(id), 0, &frame[i * PAGE_SIZE..i * PAGE_SIZE + n]);
            let req = TxRequest {
                id: id as u16,
                len: n as u16,
                flags: if i + 1 < frags { TXF_MORE } else { 0 },
                _pad: 0,
            };
            // Room was checked above: the whole frame goes in.
            if tx.ring.push_request(&req).is_ok() {
                tx.in_flight.insert(id);
            } else {
                tx.free.insert(id);
            }
        }
        self.stats.tx_frames += 1;
        self.stats.tx_bytes += len as u64;
        r
    }
}

impl<'a, P: FramePages> Device for Netfront<'a, P> {
    type RxToken<'t>
        = NetRxToken<'t>
    where
        Self: 't;
    type TxToken<'t>
        = NetTxToken<'t, 'a, P>
    where
        Self: 't;

    fn receive(&mut self, _timestamp: Instant) -> Option<(NetRxToken<'_>, NetTxToken<'_, 'a, P>)> {
        // The queue holds whole frames only; lengths were checked (`Chain`) when the
        // responses were accepted. The copy is private: the backend may rewrite the
        // pages, not our frame.
        let mut len = 0;
        loop {
            let (id, n, more) = self.rx.queue.pop()?;
            let out = self.rx.scratch.frame_mut(len + n);
            self.pages.read(rx_page(id), 0, &mut out[len..]);
            self.rx.post(id);
            len += n;
            if !more {
                break;
            }
        }
        self.stats.rx_frames += 1;
        self.stats.rx_bytes += len as u64;
        Some((
            NetRxToken {
                frame: self.rx.scratch.frame(len),
            },
            NetTxToken {
                tx: &mut self.tx,
                pages: &mut self.pages,
                stats: &mut self.stats,
            },
        ))
    }

    fn transmit(&mut self, _timestamp: Instant) -> Option<NetTxToken<'_, 'a, P>> {
        // Room for the largest frame: smoltcp asks before it knows the length.
        if self.tx.free.len() < Chain::frags(self.tx.frame_max) {
            return None;
        }
        Some(NetTxToken {
            tx: &mut self.tx,
            pages: &mut self.pages,
            stats: &mut self.stats,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        // smoltcp's Ethernet MTU counts the 14-byte header.
        caps.max_transmission_unit = if self.tx.frame_max > FRAME_MAX {
            MTU_SG + 14
        } else {
            FRAME_MAX
        };
        caps.max_burst_size = Some(NET_BUFS / Chain::frags(self.tx.frame_max));
        caps
    }
}
