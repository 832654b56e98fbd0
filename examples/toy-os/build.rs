//! Links toy-os with the SDK's guest linker script (bare metal only), as
//! `examples/build.rs` does for the other example guests.

fn main() {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("none") {
        println!("cargo:rustc-link-arg-bins=-Tparapet-guest.ld");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
