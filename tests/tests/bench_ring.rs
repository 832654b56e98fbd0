//! The 2-CPU ring benchmark's cross-CPU copy reference on QEMU: the
//! receiver's second vCPU (on the other CPU) writes, the receiver copies out,
//! and every window is printed; then the byte channel's stream runs with the
//! writer blocked, and its checksums match. Short windows (50 ms, one size):
//! what is checked is that the reference runs and ends, not its speed.
#![deny(unsafe_code)]

use parapet_tests::{run_up, serial, workspace_root};

#[test]
fn the_cross_cpu_reference_runs_on_the_second_vcpu_then_the_stream() {
    let _g = serial();
    let scenario = std::fs::read_to_string(workspace_root().join("scenarios/bench-ring-2cpu.toml"))
        .expect("the 2-CPU ring scenario");
    let scenario = scenario
        .replace("cmdline = \"tx\"", "cmdline = \"tx sizes=4096\"")
        .replace("cmdline = \"rx\"", "cmdline = \"rx window-ms=50\"");
    assert!(scenario.contains("tx sizes=4096") && scenario.contains("rx window-ms=50"));
    let dir = std::env::temp_dir().join(format!("parapet-xcopy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("xcopy.toml");
    std::fs::write(&path, scenario).unwrap();
    let (status, t) = run_up(path.to_str().unwrap(), 180);
    std::fs::remove_dir_all(&dir).ok();
    assert!(status.success(), "{t}");
    assert!(
        t.lines()
            .any(|l| l.starts_with("[hv] domain ring-rx ") && l.contains("2 vCPU(s)")),
        "the receiver has two vCPUs:\n{t}"
    );
    for n in 0..5 {
        let prefix = format!("[ring-rx] bench ring xcopy size=4096 n={n} bytes=");
        let line = t
            .lines()
            .find(|l| l.starts_with(&prefix))
            .unwrap_or_else(|| panic!("no `{prefix}` line:\n{t}"));
        let bytes: u64 = line[prefix.len()..]
            .split(' ')
            .next()
            .and_then(|b| b.parse().ok())
            .unwrap_or_else(|| panic!("{line}"));
        assert!(bytes >= 4096, "the reference moved nothing: {line}");
    }
    assert!(
        t.lines()
            .any(|l| l.starts_with("[ring-rx] bench ring rx size=4096 ")
                && l.ends_with("checksum=ok")),
        "the stream after the reference:\n{t}"
    );
    assert!(
        t.contains("[ring-rx] rx: received") && t.contains("all checksums verified"),
        "{t}"
    );
}
