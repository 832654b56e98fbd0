//! Links the driver domain with the SDK's driver-domain linker script (bare metal
//! only).

fn main() {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("none") {
        println!("cargo:rustc-link-arg-bins=-Tparapet-driver.ld");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
