//! Loom model of the ring protocol's publish / notify / final-check handshake.
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test -p parapet-abi --test loom --release`.
//! Under `cfg(loom)` the rings' index atomics and fences are loom's, so loom explores
//! the interleavings and the weak-memory outcomes the orderings allow.
//!
//! Each ring end sleeps like a real driver: it drains its ring, runs the final check
//! (`final_check_for_*` / `request_*_notification`) and, only if that says nothing is
//! there, blocks on an event channel until the peer notifies it. The peer notifies only
//! when `*_check_notify` / `publish` says so. A lost wake-up (the sleeper's re-check
//! misses the data *and* the producer's check misses the event index) leaves a thread
//! blocked forever, which loom reports as a deadlock.
#![cfg(loom)]

use loom::sync::{Arc, Condvar, Mutex};
use loom::thread;
use parapet_abi::ring::RingBuffer;

/// An event channel: a pending bit, and a way to block until it is set. (A mutex and
/// condition variable: loom 0.7.2's `Notify` misses wake-ups of its own.)
struct Evtchn {
    pending: Mutex<bool>,
    cv: Condvar,
}

impl Evtchn {
    fn new() -> Arc<Self> {
        Arc::new(Evtchn {
            pending: Mutex::new(false),
            cv: Condvar::new(),
        })
    }

    fn send(&self) {
        *self.pending.lock().unwrap() = true;
        self.cv.notify_one();
    }

    /// Blocks until a send; consumes it.
    fn wait(&self) {
        let mut pending = self.pending.lock().unwrap();
        while !*pending {
            pending = self.cv.wait(pending).unwrap();
        }
        *pending = false;
    }
}

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(3);
    }
    b.check(f);
}

/// A region that lives for the whole model run (threads need `'static`).
fn leak(pages: usize) -> &'static mut RingBuffer {
    Box::leak(Box::new(RingBuffer::new(pages)))
}

/// Frontend sends requests (one publish each), backend answers each; both sleep when
/// idle. Covers both directions of the request/response ring.
#[test]
fn request_ring_never_loses_a_wake_up() {
    const N: u64 = 2;
    model(|| {
        let (mut front, mut back) = leak(1).split_req::<u64, u64>().unwrap();
        let to_back = Evtchn::new();
        let to_front = Evtchn::new();

        let (tb, tf) = (to_back.clone(), to_front.clone());
        let backend = thread::spawn(move || {
            let mut handled = 0;
            loop {
                while let Some(r) = back.poll_request().unwrap() {
                    back.push_response(&(r + 100)).unwrap();
                    handled += 1;
                }
                if back.push_responses_and_check_notify() {
                    tf.send();
                }
                if handled == N {
                    break;
                }
                if !back.final_check_for_requests().unwrap() {
                    tb.wait();
                }
            }
        });

        for i in 0..N {
            front.push_request(&i).unwrap();
            if front.push_requests_and_check_notify() {
                to_back.send();
            }
        }
        let mut got = 0;
        loop {
            while let Some(r) = front.poll_response().unwrap() {
                assert_eq!(r, got + 100);
                got += 1;
            }
            if got == N {
                break;
            }
            if !front.final_check_for_responses().unwrap() {
                to_front.wait();
            }
        }
        backend.join().unwrap();
    });
}

/// A request ring of 2 slots with 3 requests: the frontend must also wait for
/// responses to free a slot (it sleeps on `final_check_for_responses`).
#[test]
fn request_ring_full_waits_for_responses() {
    const N: u64 = 3;
    model(|| {
        // 1024-byte slots: 2 fit in one page.
        let (mut front, mut back) = leak(1).split_req::<[u64; 128], u64>().unwrap();
        assert_eq!(front.size(), 2);
        let to_back = Evtchn::new();
        let to_front = Evtchn::new();

        let (tb, tf) = (to_back.clone(), to_front.clone());
        let backend = thread::spawn(move || {
            let mut handled = 0;
            loop {
                while let Some(r) = back.poll_request().unwrap() {
                    back.push_response(&r[0]).unwrap();
                    if back.push_responses_and_check_notify() {
                        tf.send();
                    }
                    handled += 1;
                }
                if handled == N {
                    break;
                }
                if !back.final_check_for_requests().unwrap() {
                    tb.wait();
                }
            }
        });

        let (mut sent, mut got) = (0, 0);
        while got < N {
            while sent < N && front.free_slots() > 0 {
                front.push_request(&[sent; 128]).unwrap();
                sent += 1;
            }
            if front.push_requests_and_check_notify() {
                to_back.send();
            }
            while let Some(r) = front.poll_response().unwrap() {
                assert_eq!(r, got);
                got += 1;
            }
            if got < N
                && (sent == N || front.free_slots() == 0)
                && !front.final_check_for_responses().unwrap()
            {
                to_front.wait();
            }
        }
        backend.join().unwrap();
    });
}

/// A byte stream larger than the ring: the writer sleeps for space, the reader for
/// data.
#[test]
fn byte_ring_never_loses_a_wake_up() {
    const TOTAL: usize = 3000; // > 2048, the data area of one page
    model(|| {
        let (mut w, mut r) = leak(1).split_bytes().unwrap();
        let data_evt = Evtchn::new();
        let space_evt = Evtchn::new();

        let (de, se) = (data_evt.clone(), space_evt.clone());
        let reader = thread::spawn(move || {
            let mut buf = vec![0u8; TOTAL];
            let mut got = 0;
            loop {
                loop {
                    let n = r.read(&mut buf[got..]).unwrap();
                    if n == 0 {
                        break;
                    }
                    got += n;
                }
                if r.publish() {
                    se.send();
                }
                if got == TOTAL {
                    break;
                }
                if !r.request_data_notification(1).unwrap() {
                    de.wait();
                }
            }
            for (i, b) in buf.iter().enumerate() {
                assert_eq!(*b, i as u8);
            }
        });

        let src: Vec<u8> = (0..TOTAL).map(|i| i as u8).collect();
        let mut sent = 0;
        loop {
            sent += w.write(&src[sent..]).unwrap();
            if w.publish() {
                data_evt.send();
            }
            if sent == TOTAL {
                break;
            }
            let want = (TOTAL - sent) as u32;
            if !w.request_space_notification(want).unwrap() {
                space_evt.wait();
            }
        }
        reader.join().unwrap();
    });
}
