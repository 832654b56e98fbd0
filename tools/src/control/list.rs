//! `parapet list`: the control domain's answer to `list` as a table.
//!
//! The answer (written by the guest SDK's control service) has one data
//! line per domain,
//!
//! `NAME id=N state=S vcpus=N cpus=C,C mem_kib=N tables=N grants=N ports=N
//! uptime_ms=N crashes=N restarts=N creates=N`
//!
//! and an `ok` line with the totals,
//!
//! `N domains; frames free=N total=N at_start=N; grants=N ports=N`.
//!
//! Keys it does not know are skipped (a newer control domain may say
//! more); a missing or malformed one is an error naming the line.

use std::collections::HashMap;

use super::client::Answer;

/// One domain, as `list` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainRow {
    /// Its name.
    pub name: String,
    /// Its id (its slot in the hypervisor's table).
    pub id: u32,
    /// `running`, `paused`, `off`, `exited` or `crashed`.
    pub state: String,
    /// Its vCPUs.
    pub vcpus: u32,
    /// The physical CPU of each vCPU.
    pub cpus: Vec<u32>,
    /// Its RAM, in KiB.
    pub mem_kib: u64,
    /// Stage-2 table frames it uses.
    pub tables: u64,
    /// Grant mappings it holds.
    pub grants: u64,
    /// Event-channel ports it has bound.
    pub ports: u64,
    /// Milliseconds since it (last) started; 0 when it does not run.
    pub uptime_ms: u64,
    /// Crashes in this run.
    pub crashes: u64,
    /// Restarts after a crash (`on_crash = "restart"`).
    pub restarts: u64,
    /// Times the control domain created it.
    pub creates: u64,
}

/// The totals of the `ok` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    /// Domains listed.
    pub domains: usize,
    /// Free frames of the hypervisor's pool (4 KiB each).
    pub frames_free: u64,
    /// Frames in the pool.
    pub frames_total: u64,
    /// Frames free once the hypervisor was up, before any domain.
    pub frames_at_start: u64,
    /// Grant mappings of all domains.
    pub grants: u64,
    /// Ports bound by all domains.
    pub ports: u64,
}

/// The answer to `list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    /// One per domain, by id.
    pub domains: Vec<DomainRow>,
    /// The totals.
    pub totals: Totals,
}

/// `key=value` words, by key.
fn fields<'a>(words: impl Iterator<Item = &'a str>) -> Result<HashMap<&'a str, &'a str>, String> {
    let mut map = HashMap::new();
    for w in words {
        let (k, v) = w
            .split_once('=')
            .ok_or_else(|| format!("`{w}` is not key=value"))?;
        map.insert(k, v);
    }
    Ok(map)
}

fn get<'a>(map: &HashMap<&str, &'a str>, key: &str) -> Result<&'a str, String> {
    map.get(key).copied().ok_or_else(|| format!("no {key}="))
}

fn num<T: std::str::FromStr>(map: &HashMap<&str, &str>, key: &str) -> Result<T, String> {
    let v = get(map, key)?;
    v.parse().map_err(|_| format!("{key}={v} is not a number"))
}

impl DomainRow {
    /// Parses one data line's text.
    pub fn parse(text: &str) -> Result<DomainRow, String> {
        let mut words = text.split_ascii_whitespace();
        let name = words.next().ok_or("an empty line")?;
        if !parapet_abi::control::is_domain_name(name) {
            return Err(format!("`{name}` is not a domain name"));
        }
        let f = fields(words)?;
        let cpus = get(&f, "cpus")?;
        let cpus = if cpus.is_empty() {
            Vec::new()
        } else {
            cpus.split(',')
                .map(|c| {
                    c.parse()
                        .map_err(|_| format!("cpus={cpus} is not a CPU list"))
                })
                .collect::<Result<_, _>>()?
        };
        let state = get(&f, "state")?;
        if state.is_empty() {
            return Err("an empty state=".into());
        }
        Ok(DomainRow {
            name: name.to_owned(),
            id: num(&f, "id")?,
            state: state.to_owned(),
            vcpus: num(&f, "vcpus")?,
            cpus,
            mem_kib: num(&f, "mem_kib")?,
            tables: num(&f, "tables")?,
            grants: num(&f, "grants")?,
            ports: num(&f, "ports")?,
            uptime_ms: num(&f, "uptime_ms")?,
            crashes: num(&f, "crashes")?,
            restarts: num(&f, "restarts")?,
            creates: num(&f, "creates")?,
        })
    }
}

impl Totals {
    /// Parses the `ok` line's text.
    pub fn parse(text: &str) -> Result<Totals, String> {
        let parts: Vec<&str> = text.split(';').map(str::trim).collect();
        let [count, frames, shared] = parts[..] else {
            return Err("not `N domains; frames …; grants=N ports=N`".into());
        };
        let domains = count
            .strip_suffix(" domains")
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| format!("`{count}` is not `N domains`"))?;
        let frames = fields(
            frames
                .strip_prefix("frames ")
                .ok_or_else(|| format!("`{frames}` is not `frames free=…`"))?
                .split_ascii_whitespace(),
        )?;
        let shared = fields(shared.split_ascii_whitespace())?;
        Ok(Totals {
            domains,
            frames_free: num(&frames, "free")?,
            frames_total: num(&frames, "total")?,
            frames_at_start: num(&frames, "at_start")?,
            grants: num(&shared, "grants")?,
            ports: num(&shared, "ports")?,
        })
    }
}

impl Listing {
    /// Reads an `ok` answer to `list`.
    pub fn parse(answer: &Answer) -> Result<Listing, String> {
        let domains = answer
            .data
            .iter()
            .map(|line| DomainRow::parse(line).map_err(|e| format!("{e} in `{line}`")))
            .collect::<Result<Vec<_>, _>>()?;
        let totals = Totals::parse(&answer.text)
            .map_err(|e| format!("{e} in the summary `{}`", answer.text))?;
        if totals.domains != domains.len() {
            return Err(format!(
                "the summary counts {} domains but {} were listed",
                totals.domains,
                domains.len()
            ));
        }
        Ok(Listing { domains, totals })
    }

    /// The table: a header, one line per domain, then the totals.
    pub fn render(&self) -> Vec<String> {
        const HEAD: [&str; 13] = [
            "NAME", "ID", "STATE", "VCPUS", "CPUS", "MEMORY", "TABLES", "GRANTS", "PORTS",
            "UPTIME", "CRASHES", "RESTARTS", "CREATES",
        ];
        // Left-aligned: name, state, CPUs; the rest are numbers.
        const LEFT: [bool; 13] = [
            true, false, true, false, true, false, false, false, false, false, false, false, false,
        ];
        let mut rows: Vec<[String; 13]> = vec![HEAD.map(str::to_owned)];
        for d in &self.domains {
            let cpus = if d.cpus.is_empty() {
                "-".to_owned()
            } else {
                d.cpus
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            };
            let live = matches!(d.state.as_str(), "running" | "paused");
            rows.push([
                d.name.clone(),
                d.id.to_string(),
                d.state.clone(),
                d.vcpus.to_string(),
                cpus,
                memory(d.mem_kib),
                d.tables.to_string(),
                d.grants.to_string(),
                d.ports.to_string(),
                if live {
                    uptime(d.uptime_ms)
                } else {
                    "-".into()
                },
                d.crashes.to_string(),
                d.restarts.to_string(),
                d.creates.to_string(),
            ]);
        }
        let mut widths = [0usize; 13];
        for r in &rows {
            for (w, cell) in widths.iter_mut().zip(r) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out: Vec<String> = rows
            .iter()
            .map(|r| {
                let cells: Vec<String> = r
                    .iter()
                    .zip(widths)
                    .zip(LEFT)
                    .map(|((c, w), left)| {
                        if left {
                            format!("{c:<w$}")
                        } else {
                            format!("{c:>w$}")
                        }
                    })
                    .collect();
                cells.join("  ").trim_end().to_owned()
            })
            .collect();
        let t = &self.totals;
        out.push(format!(
            "{} domain{}, {} grant{} mapped, {} port{} bound; frames: {} of {} free ({} free at start)",
            t.domains,
            plural(t.domains as u64),
            t.grants,
            plural(t.grants),
            t.ports,
            plural(t.ports),
            t.frames_free,
            t.frames_total,
            t.frames_at_start
        ));
        out
    }
}

fn plural(n: u64) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// `64 MiB`, or `1536 KiB` when not whole MiB.
fn memory(kib: u64) -> String {
    if kib.is_multiple_of(1024) {
        format!("{} MiB", kib / 1024)
    } else {
        format!("{kib} KiB")
    }
}

/// `12.3 s`, `5 min 03 s`, `2 h 05 min`.
fn uptime(ms: u64) -> String {
    let s = ms / 1000;
    if s < 60 {
        format!("{}.{} s", s, ms % 1000 / 100)
    } else if s < 3600 {
        format!("{} min {:02} s", s / 60, s % 60)
    } else {
        format!("{} h {:02} min", s / 3600, s % 3600 / 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the SDK's control service prints for three domains (its own
    /// host test's format).
    fn answer() -> Answer {
        Answer {
            id: 4,
            data: vec![
                "driver id=0 state=running vcpus=1 cpus=0 mem_kib=65536 tables=21 grants=6 ports=7 uptime_ms=12345 crashes=0 restarts=1 creates=0".into(),
                "guest-a id=1 state=paused vcpus=2 cpus=1,0 mem_kib=32768 tables=9 grants=0 ports=3 uptime_ms=3723000 crashes=1 restarts=0 creates=2".into(),
                "spare id=2 state=off vcpus=1 cpus=0 mem_kib=1536 tables=0 grants=0 ports=0 uptime_ms=0 crashes=0 restarts=0 creates=0".into(),
            ],
            ok: true,
            text: "3 domains; frames free=100 total=200 at_start=150; grants=6 ports=10".into(),
        }
    }

    #[test]
    fn parses_the_sdk_format() {
        let l = Listing::parse(&answer()).unwrap();
        assert_eq!(l.domains.len(), 3);
        let a = &l.domains[1];
        assert_eq!(
            (
                a.name.as_str(),
                a.id,
                a.state.as_str(),
                a.vcpus,
                a.cpus.as_slice()
            ),
            ("guest-a", 1, "paused", 2, &[1, 0][..])
        );
        assert_eq!(
            (a.mem_kib, a.tables, a.grants, a.ports, a.uptime_ms),
            (32768, 9, 0, 3, 3_723_000)
        );
        assert_eq!((a.crashes, a.restarts, a.creates), (1, 0, 2));
        assert_eq!(
            l.totals,
            Totals {
                domains: 3,
                frames_free: 100,
                frames_total: 200,
                frames_at_start: 150,
                grants: 6,
                ports: 10
            }
        );
        // Unknown keys are skipped.
        let row = DomainRow::parse(&format!("{} colour=blue", answer().data[0])).unwrap();
        assert_eq!(row.name, "driver");
        // No vCPU, no CPU.
        let row = DomainRow::parse(&answer().data[2].replace("cpus=0", "cpus=")).unwrap();
        assert!(row.cpus.is_empty());
    }

    #[test]
    fn renders_a_table() {
        let lines = Listing::parse(&answer()).unwrap().render();
        assert_eq!(
            lines,
            [
                "NAME     ID  STATE    VCPUS  CPUS    MEMORY  TABLES  GRANTS  PORTS      UPTIME  CRASHES  RESTARTS  CREATES",
                "driver    0  running      1  0       64 MiB      21       6      7      12.3 s        0         1        0",
                "guest-a   1  paused       2  1,0     32 MiB       9       0      3  1 h 02 min        1         0        2",
                "spare     2  off          1  0     1536 KiB       0       0      0           -        0         0        0",
                "3 domains, 6 grants mapped, 10 ports bound; frames: 100 of 200 free (150 free at start)",
            ]
        );
        assert_eq!(uptime(61_000), "1 min 01 s");
        assert_eq!(uptime(999), "0.9 s");
    }

    #[test]
    fn malformed_answers_are_errors() {
        let with_line = |i: usize, line: &str| {
            let mut a = answer();
            a.data[i] = line.into();
            Listing::parse(&a).unwrap_err()
        };
        let good = &answer().data[0];
        for (line, why) in [
            (good.replace("id=0", "id=x"), "id=x is not a number"),
            (
                good.replace("driver", "Driver"),
                "`Driver` is not a domain name",
            ),
            (format!("{good} junk"), "`junk` is not key=value"),
            (String::new(), "an empty line"),
            (good.replace(" tables=21", ""), "no tables="),
            (good.replace("cpus=0", "cpus=a"), "cpus=a is not a CPU list"),
            (good.replace("state=running", "state="), "an empty state="),
            (
                good.replace("creates=0", "creates="),
                "creates= is not a number",
            ),
        ] {
            let e = with_line(0, &line);
            assert!(e.contains(why), "{line}: {e}");
        }
        let mut a = answer();
        a.data.pop();
        let e = Listing::parse(&a).unwrap_err();
        assert!(e.contains("counts 3 domains but 2 were listed"), "{e}");
        for summary in [
            "3 domains",
            "three domains; frames free=1 total=2 at_start=1; grants=0 ports=0",
            "3 domains; free=1 total=2 at_start=1; grants=0 ports=0",
            "3 domains; frames free=1 total=2; grants=0 ports=0",
        ] {
            let mut a = answer();
            a.text = summary.into();
            let e = Listing::parse(&a).unwrap_err();
            assert!(e.contains("in the summary"), "{summary}: {e}");
        }
    }
}
