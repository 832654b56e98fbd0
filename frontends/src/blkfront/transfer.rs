//! Transfers: cutting a read or write into requests, keeping several in
//! flight, collecting every answer; and the raw requests and ring
//! corruption a conformance test sends as a hostile frontend.

extern crate alloc;

use parapet_abi::blkif::{
    BlkOp, BlkRequest, BlkResponse, BlkSegment, BlkStatus, SECTORS_PER_PAGE, SECTOR_SIZE,
    SEGMENTS_MAX,
};
use parapet_abi::event::PortStatus;
use parapet_guest::event::{self};
use parapet_guest::grant::SharedBytes;

use super::{BlkError, Blkfront, Buf, Inflight, CHUNK, PAGE};

impl Blkfront {
    /// Cuts the transfer into requests, keeps up to `MAX_INFLIGHT` in flight,
    /// and collects every answer (also after a failure, so that no request is
    /// left behind). If the backend goes away, the transfer fails with
    /// `Disconnected` and the connection is torn down.
    pub(super) fn transfer(
        &mut self,
        op: BlkOp,
        sector: u64,
        buf: Buf<'_>,
    ) -> Result<(), BlkError> {
        let result = self.transfer_on(op, sector, buf);
        if let Err(BlkError::Disconnected | BlkError::Ring(_)) = result {
            // Gone, or its ring cannot be trusted any more.
            self.disconnect();
        }
        result
    }

    pub(super) fn transfer_on(
        &mut self,
        op: BlkOp,
        sector: u64,
        mut buf: Buf<'_>,
    ) -> Result<(), BlkError> {
        let total = buf.len();
        let mut next = 0usize;
        let mut first_error = None;
        let mut submitted_any = false;
        loop {
            // Submit while there is room.
            let mut pushed = false;
            while first_error.is_none() && (next < total || (op == BlkOp::Flush && !submitted_any))
            {
                let Some(slot) = self.inflight.iter().position(Option::is_none) else {
                    break;
                };
                let len = (total - next).min(CHUNK);
                let req = self.build(op, sector + (next / SECTOR_SIZE) as u64, slot, len);
                if let Buf::Out(data) = &buf {
                    self.fill_pages(slot, &data[next..next + len])?;
                }
                let conn = self.conn.as_mut().ok_or(BlkError::Disconnected)?;
                conn.ring.push_request(&req).map_err(BlkError::Ring)?;
                self.inflight[slot] = Some(Inflight {
                    op,
                    at: next,
                    len,
                    first_page: slot * SEGMENTS_MAX,
                });
                next += len;
                submitted_any = true;
                pushed = true;
            }
            let conn = self.conn.as_mut().ok_or(BlkError::Disconnected)?;
            if pushed {
                let n = self.inflight.iter().flatten().count() as u32;
                self.stats.max_inflight = self.stats.max_inflight.max(n);
                if conn.ring.push_requests_and_check_notify() {
                    self.stats.notifications += 1;
                    if event::send(conn.port).is_err() {
                        return self.fail_all(first_error);
                    }
                }
            }
            if self.inflight.iter().all(Option::is_none) {
                return first_error.map_or(Ok(()), Err);
            }
            // Collect answers.
            match conn.ring.poll_response().map_err(BlkError::Ring)? {
                Some(rsp) => {
                    if let Err(e) = self.complete(&rsp, &mut buf) {
                        first_error.get_or_insert(e);
                    }
                }
                None => {
                    if !self.wait_for_answers()? {
                        return self.fail_all(first_error);
                    }
                }
            }
        }
    }

    /// Sleeps until the backend answers (`true`) or goes away with nothing
    /// left to answer (`false`): its port is no longer connected.
    pub(super) fn wait_for_answers(&mut self) -> Result<bool, BlkError> {
        let Some(conn) = self.conn.as_mut() else {
            return Ok(false);
        };
        let mut gone = false;
        let (ring, port) = (&mut conn.ring, conn.port);
        event::wait_until(|| {
            if ring.final_check_for_responses().unwrap_or(true) {
                return true;
            }
            gone = !matches!(event::status(port), Ok(PortStatus::Interdomain { .. }));
            gone
        })?;
        Ok(!gone || conn.ring.final_check_for_responses().unwrap_or(false))
    }

    /// The backend went away: every request in flight fails (a failure seen
    /// before stands; otherwise `Disconnected`), and the connection is torn
    /// down.
    pub(super) fn fail_all(&mut self, first_error: Option<BlkError>) -> Result<(), BlkError> {
        self.disconnect();
        Err(first_error.unwrap_or(BlkError::Disconnected))
    }

    pub(super) fn build(&mut self, op: BlkOp, sector: u64, slot: usize, len: usize) -> BlkRequest {
        self.next_id = self.next_id.wrapping_add(1);
        let mut req = BlkRequest {
            // The slot in the low bits identifies the answer; the counter
            // catches a stale or duplicated one.
            id: (self.next_id << 8) | slot as u64,
            sector,
            op: op.to_raw(),
            ..Default::default()
        };
        let refs = self.pool.refs();
        let mut left = len / SECTOR_SIZE;
        let mut n = 0;
        while left > 0 {
            let sectors = left.min(SECTORS_PER_PAGE as usize);
            req.segs[n] = BlkSegment {
                gref: refs.get(slot * SEGMENTS_MAX + n).map_or(0, |&r| r as u32),
                first_sect: 0,
                last_sect: sectors as u8 - 1,
                _pad: 0,
            };
            left -= sectors;
            n += 1;
        }
        req.nr_segments = n as u8;
        req
    }

    pub(super) fn fill_pages(&self, slot: usize, data: &[u8]) -> Result<(), BlkError> {
        self.pool.write_at(slot * SEGMENTS_MAX * PAGE, data)?;
        Ok(())
    }

    pub(super) fn complete(
        &mut self,
        rsp: &BlkResponse,
        buf: &mut Buf<'_>,
    ) -> Result<(), BlkError> {
        let slot = (rsp.id & 0xff) as usize;
        let Some(inflight) = self.inflight.get(slot).copied().flatten() else {
            return Err(BlkError::Protocol("an answer to no request"));
        };
        if BlkOp::from_raw(rsp.op) != inflight.op {
            return Err(BlkError::Protocol("an answer for another operation"));
        }
        self.inflight[slot] = None;
        self.stats.requests += 1;
        match BlkStatus::from_raw(rsp.status) {
            BlkStatus::Okay => {}
            s => return Err(BlkError::Io(s)),
        }
        if let Buf::In(out) = buf {
            self.pool.read_at(
                inflight.first_page * PAGE,
                &mut out[inflight.at..inflight.at + inflight.len],
            )?;
        }
        Ok(())
    }

    /// The grant reference of pool page `i` (granted to the backend).
    pub fn pool_ref(&self, i: usize) -> Option<u32> {
        self.pool.refs().get(i).map(|&r| r as u32)
    }

    /// Sends `req` as given — only its `id` is replaced, to match the answer —
    /// and waits for the answer. For conformance tests of backends: this is
    /// how a test plays a hostile frontend.
    pub fn raw_request(&mut self, req: &BlkRequest) -> Result<BlkStatus, BlkError> {
        self.ensure_connected()?;
        if self.inflight.iter().any(Option::is_some) {
            return Err(BlkError::Protocol("requests in flight"));
        }
        let mut req = *req;
        self.next_id = self.next_id.wrapping_add(1);
        req.id = self.next_id << 8 | 0xff;
        let result = self.raw_exchange(&req);
        if result == Err(BlkError::Disconnected) {
            self.disconnect();
        }
        result
    }

    pub(super) fn raw_exchange(&mut self, req: &BlkRequest) -> Result<BlkStatus, BlkError> {
        let conn = self.conn.as_mut().ok_or(BlkError::Disconnected)?;
        conn.ring.push_request(req).map_err(BlkError::Ring)?;
        if conn.ring.push_requests_and_check_notify() {
            event::send(conn.port).map_err(|_| BlkError::Disconnected)?;
        }
        loop {
            let conn = self.conn.as_mut().ok_or(BlkError::Disconnected)?;
            if let Some(rsp) = conn.ring.poll_response().map_err(BlkError::Ring)? {
                if rsp.id != req.id {
                    return Err(BlkError::Protocol("an answer to another request"));
                }
                return Ok(BlkStatus::from_raw(rsp.status));
            }
            if !self.wait_for_answers()? {
                return Err(BlkError::Disconnected);
            }
        }
    }

    /// Overwrites the shared request producer index with `req_prod` and
    /// notifies the backend: a frontend that corrupts its ring (for tests).
    /// Returns once the backend has disconnected us; the next call
    /// reconnects.
    pub fn corrupt_ring(&mut self, req_prod: u32) -> Result<(), BlkError> {
        self.ensure_connected()?;
        let conn = self.conn.as_mut().ok_or(BlkError::Disconnected)?;
        conn.ring_page.write_at(0, &req_prod.to_le_bytes())?;
        event::send(conn.port).map_err(|_| BlkError::Disconnected)?;
        let port = conn.port;
        event::wait_until(|| !matches!(event::status(port), Ok(PortStatus::Interdomain { .. })))?;
        self.disconnect();
        Ok(())
    }
}
