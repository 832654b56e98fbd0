//! The `hostile` role: malformed TX requests, a flood, a corrupted ring;
//! netback must disconnect it each time.

use parapet_frontends::vif::{Vif, VifError};
use parapet_guest::abi::netif::{TxRequest, NET_BUFS};
use parapet_guest::abi::xenbus::XenbusState;
use parapet_guest::{println, time};

/// Waits (up to 10 s) for netback to drop us.
fn dropped(vif: &Vif) -> bool {
    let limit = time::deadline_after(time::Duration::from_secs(10));
    while time::now() < limit {
        if vif.backend_state() != XenbusState::Connected {
            return true;
        }
        time::sleep(time::Duration::from_millis(20)).ok();
    }
    false
}

pub(crate) fn hostile(vif: Vif, backend: u32) -> Result<bool, VifError> {
    let mut vif = vif;
    let req = |id: u16, len: u16, flags: u16| TxRequest {
        id,
        len,
        flags,
        _pad: 0,
    };
    let cases = [
        ("a buffer id out of range", req(NET_BUFS as u16, 60, 0)),
        ("a frame shorter than a header", req(0, 3, 0)),
        ("a frame longer than a page", req(1, 9000, 0)),
        ("unknown flags", req(2, 60, 0x8000)),
    ];
    // netback runs on another CPU and may drop us mid-flood: then the
    // notification fails (our port is no longer connected), which is
    // the expected end, not an error.
    for (what, r) in cases {
        if vif.push_raw_tx(&r).is_err() {
            break;
        }
        println!("net: hostile: sent {what}");
    }
    let mut flood = 0;
    while flood < 100
        && vif
            .push_raw_tx(&req(NET_BUFS as u16 + flood, 60, 0))
            .is_ok()
    {
        flood += 1;
    }
    println!("net: hostile: sent a flood of {flood} malformed requests");
    let first = dropped(&vif);
    println!(
        "net: hostile: disconnected by netback after malformed requests: {}",
        if first { "ok" } else { "NO" }
    );
    drop(vif);
    let mut vif = Vif::connect(backend, "vif0")?;
    println!("net: hostile: connected again");
    vif.corrupt_tx_ring(0x7fff_0000)?;
    let second = dropped(&vif);
    println!(
        "net: hostile: disconnected by netback after corrupting the ring: {}",
        if second { "ok" } else { "NO" }
    );
    Ok(first && second)
}
