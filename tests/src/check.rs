//! What the tests read out of a transcript, shared by every test file: a
//! line, a number, a transfer's byte count and checksum, the hypervisor's
//! memory line, and a page fetched from the host.

use std::process::Command;

/// Fails the test unless `transcript` contains `needle`.
pub fn assert_has(transcript: &str, needle: &str) {
    assert!(
        transcript.contains(needle),
        "the transcript should contain {needle:?}:\n{transcript}"
    );
}

/// The first line that contains `needle`.
pub fn line_with<'a>(transcript: &'a str, needle: &str) -> &'a str {
    transcript
        .lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line contains {needle:?}:\n{transcript}"))
}

/// The number right after `prefix` in `line`.
pub fn number_after(line: &str, prefix: &str) -> u64 {
    let at = line
        .find(prefix)
        .unwrap_or_else(|| panic!("{prefix:?} in {line:?}"))
        + prefix.len();
    line[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a number after {prefix:?} in {line:?}"))
}

/// `[hv] memory: F of T frames free (S free at start)`, once every domain
/// stopped: every frame is back. Returns the line.
pub fn assert_all_memory_back(t: &str) -> String {
    let line = line_with(t, " free at start)");
    let line = line.rsplit("[hv] memory: ").next().unwrap_or(line);
    let free = number_after(line, "");
    let at_start = number_after(line, "frames free (");
    assert!(free > 0, "{line}");
    assert_eq!(free, at_start, "every frame should be back: {line}\n{t}");
    line.to_owned()
}

/// The byte count and checksum a net-guest line reports
/// (`… N bytes, checksum X …`).
pub fn bytes_and_checksum(line: &str) -> (u64, String) {
    let words: Vec<&str> = line.split_whitespace().collect();
    let at = |w: &str| words.iter().position(|x| x.trim_end_matches(',') == w);
    let bytes = at("bytes")
        .and_then(|i| words[i - 1].parse().ok())
        .unwrap_or_else(|| panic!("no byte count in {line:?}"));
    let sum = at("checksum")
        .map(|i| words[i + 1].trim_end_matches(',').to_owned())
        .unwrap_or_else(|| panic!("no checksum in {line:?}"));
    (bytes, sum)
}

/// The URL `parapet up` printed for a forwarded port (`… is reachable at
/// http://127.0.0.1:PORT/`), on the first line that contains `needle`.
pub fn forwarded_url(transcript: &str, needle: &str) -> String {
    line_with(transcript, needle)
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .expect("a URL")
        .to_owned()
}

/// A page fetched from the host.
pub struct Fetched {
    /// Whether curl succeeded.
    pub ok: bool,
    /// The body.
    pub page: String,
    /// What curl said on failure.
    pub error: String,
}

/// Fetches `url` from the host with curl (retrying while the guest comes
/// up).
pub fn fetch(url: &str) -> Fetched {
    let curl = Command::new("curl")
        .args([
            "--silent",
            "--show-error",
            "--max-time",
            "20",
            "--retry",
            "5",
        ])
        .args(["--retry-all-errors", "--retry-delay", "1"])
        .arg(url)
        .output()
        .expect("curl is needed for this test (.ci/run installs it)");
    Fetched {
        ok: curl.status.success(),
        page: String::from_utf8_lossy(&curl.stdout).into_owned(),
        error: String::from_utf8_lossy(&curl.stderr).into_owned(),
    }
}
