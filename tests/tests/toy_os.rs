//! toy-os (examples/toy-os) on QEMU: boot scenarios/toy-os.toml and drive
//! its shell through the console, as a user typing into `parapet up` would.
#![deny(unsafe_code)]

use parapet_tests::check::assert_has;
use parapet_tests::{run_parapet_with_cues, serial, Cue};

/// The `ps` row of thread `name` in the first `ps` output after `from`:
/// (state, progress). Other domains' lines may land between the rows (the
/// consoles interleave), so only toy-os's own lines are read.
fn ps_row<'a>(transcript: &'a str, from: &str, name: &str) -> (&'a str, u64) {
    let start = transcript
        .find(from)
        .unwrap_or_else(|| panic!("no {from:?} in:\n{transcript}"));
    let row = transcript[start..]
        .lines()
        .filter(|l| l.starts_with("[toy-os]"))
        .skip_while(|l| !l.contains("TID  NAME"))
        .skip(1)
        .take_while(|l| l.starts_with("[toy-os]   "))
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        // [toy-os] TID NAME STATE CPU SWITCHES PROGRESS STACK...
        .find(|w| w.get(2) == Some(&name))
        .unwrap_or_else(|| panic!("no {name} row in the ps after {from:?}:\n{transcript}"));
    let progress = row[6]
        .parse()
        .unwrap_or_else(|_| panic!("bad progress in {row:?}"));
    (row[3], progress)
}

#[test]
fn toy_os_shell_threads_network_disk_and_channel() {
    let _g = serial();
    let url = "http://10.0.2.21/";
    let cues = vec![
        // Once the shell is up and the byte channel connected: start the
        // CPU-bound thread, then a fetch in a thread of its own, and `ps`
        // at once (the shell does not wait for the fetch).
        Cue::new(
            &[
                "[toy-os] toy-os: shell ready",
                "[toy-os] chan: connected to toy-peer",
                "[toy-peer] httpd: serving on port 80",
            ],
            format!("help\nspin\nnet get {url}\nps\n").as_bytes(),
        ),
        // The page came: `ps` again, then the disk.
        Cue::new(
            &[&format!("[toy-os] net get {url}: HTTP/1.0 200 OK")],
            b"ps\ndisk write hello\n",
        ),
        Cue::new(&["[toy-os] disk: wrote 5 bytes"], b"disk read\n"),
        Cue::new(
            &["[toy-os] disk: read \"hello\""],
            b"chan send ping-42\nchan recv\n",
        ),
        Cue::new(&["[toy-os] chan: received"], b"sleep 100\n"),
        Cue::new(&["[toy-os] sleep: slept"], b"mem\nuptime\n"),
        Cue::new(&["[toy-os] uptime: byte channel"], b"halt\n"),
    ];
    let ncues = cues.len();
    let (r, typed) =
        run_parapet_with_cues(&["up", "scenarios/toy-os.toml", "--timeout", "150"], cues);
    let t = r.transcript();
    assert_eq!(typed, ncues, "not every command was typed:\n{t}");
    assert_eq!(r.status.code(), Some(0), "exit status {}:\n{t}", r.status);

    // help lists the commands.
    assert_has(&t, "[toy-os] toy-os:1$ help");
    for cmd in [
        "ps",
        "uptime",
        "mem",
        "sleep MS",
        "spin",
        "net ping IP",
        "net get URL",
        "disk write TEXT",
        "disk read",
        "chan send TEXT",
        "chan recv",
        "bench",
        "halt",
    ] {
        assert_has(&t, &format!("[toy-os]   {cmd:<16} "));
    }

    // The fetch ran in its own thread while `spin` kept counting: the first
    // ps (typed right after `net get`) lists the fetching thread not done
    // yet, the second (after the page) shows spin's counter further on.
    assert_has(&t, "[toy-peer] httpd: request 1 answered");
    assert_has(&t, "[toy-os]   | hello from toy-peer");
    let (fetch_state, _) = ps_row(&t, "toy-os:4$ ps", "net-get");
    assert_ne!(
        fetch_state, "exited",
        "the shell waited for the fetch:\n{t}"
    );
    let (_, before) = ps_row(&t, "toy-os:4$ ps", "spin");
    let (spin_state, after) = ps_row(&t, "toy-os:5$ ps", "spin");
    assert!(
        matches!(spin_state, "ready" | "running"),
        "spin is {spin_state}:\n{t}"
    );
    assert!(
        after > before,
        "spin made no progress while the fetch ran ({before} -> {after}):\n{t}"
    );
    let page = t
        .find("net get http://10.0.2.21/: HTTP/1.0 200 OK")
        .unwrap();
    assert!(
        t.find("toy-os:4$ ps").unwrap() < page && page < t.find("toy-os:5$ ps").unwrap(),
        "the page should come between the two ps:\n{t}"
    );

    // The disk, the byte channel, sleep and mem.
    assert_has(&t, "[toy-os] disk: read \"hello\" from vbd0 sector 0");
    assert_has(&t, "[toy-peer] echod: echoing 7 bytes");
    assert_has(&t, "[toy-os] chan: received \"echo: ping-42\"");
    assert_has(&t, "[toy-os] sleep: slept 1");
    for region in ["RAM", "image", "boot stacks", "heap", "reserved"] {
        assert_has(&t, &format!("[toy-os] mem: {region:<12} 0x"));
    }
    assert_has(&t, "guard pages on");
    assert_has(&t, "[toy-os] mem: stack of spin");

    // halt: toy-os powers off, its peer follows, the run ends cleanly.
    assert_has(&t, "[toy-os] halt: powering off");
    assert_has(&t, "[hv] domain toy-os exited: poweroff (code 0)");
    assert_has(&t, "[toy-peer] echod: the client went away; powering off");
    assert_has(&t, "[hv] all domains stopped: 3 ok, 0 failed");
    // The driver domain is not the console-input domain here: it stays quiet.
    assert!(!t.contains("[driver] console:"), "{t}");
}
