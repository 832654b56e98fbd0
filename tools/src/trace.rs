//! `parapet up --trace FILE`: the hypervisor records what it does, per
//! physical CPU, into buffers in its own memory (see `parapet_abi::trace`);
//! [`record`] drains them through QEMU's monitor while the system runs;
//! [`chrome`] writes the Chrome trace event format that Perfetto UI and
//! `chrome://tracing` open; [`summary`] prints per-domain totals of a trace
//! file (`parapet trace summarize FILE`).

pub mod chrome;
pub mod qmp;
pub mod record;
pub mod summary;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use parapet_abi::trace::{TraceEvent, TraceRecord};

use crate::qemu::TraceArgs;

/// The records read from one CPU's buffer.
#[derive(Clone, Debug, Default)]
pub struct CpuTrace {
    /// Physical CPU.
    pub cpu: u32,
    /// Timestamp frequency, Hz.
    pub freq: u64,
    /// Records the ring holds.
    pub capacity: u64,
    /// Records overwritten before they could be read.
    pub lost: u64,
    /// The records, oldest first.
    pub records: Vec<TraceRecord>,
}

/// A recorded trace.
#[derive(Clone, Debug, Default)]
pub struct Trace {
    /// One entry per CPU.
    pub cpus: Vec<CpuTrace>,
    /// Domain names by id, from the hypervisor's console.
    pub names: BTreeMap<u8, String>,
    /// Why draining stopped early, if it did.
    pub error: Option<String>,
}

impl Trace {
    /// Records read, all CPUs.
    pub fn records(&self) -> usize {
        self.cpus.iter().map(|c| c.records.len()).sum()
    }

    /// Records lost, all CPUs.
    pub fn lost(&self) -> u64 {
        self.cpus.iter().map(|c| c.lost).sum()
    }

    /// The name of domain `id`: from the console, else the prefix its start
    /// record carries, else `dom<id>`.
    pub fn domain_name(&self, id: u8) -> String {
        if let Some(n) = self.names.get(&id) {
            return n.clone();
        }
        for c in &self.cpus {
            for r in &c.records {
                if let Ok(TraceEvent::DomainStart { domain, name }) = TraceEvent::decode(r) {
                    if domain == id {
                        return name.to_str_lossy().to_string();
                    }
                }
            }
        }
        format!("dom{id}")
    }
}

/// What went wrong writing or reading a trace file.
#[derive(Debug, thiserror::Error)]
pub enum TraceFileError {
    /// Reading or writing the file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a trace `parapet` wrote.
    #[error("{path}: not a Parapet trace: {why}")]
    Format {
        /// The file.
        path: PathBuf,
        /// Why.
        why: String,
    },
}

/// Writes `trace` to `path` in the Chrome trace event format; returns the
/// bytes written.
pub fn write_file(trace: &Trace, path: &Path) -> Result<u64, TraceFileError> {
    let json = chrome::to_json(trace);
    let text = serde_json::to_string(&json).unwrap_or_default();
    std::fs::write(path, &text).map_err(|source| TraceFileError::Io {
        path: path.to_owned(),
        source,
    })?;
    Ok(text.len() as u64)
}

/// Reads a trace file written by [`write_file`].
pub fn read_file(path: &Path) -> Result<serde_json::Value, TraceFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| TraceFileError::Io {
        path: path.to_owned(),
        source,
    })?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| TraceFileError::Format {
        path: path.to_owned(),
        why: e.to_string(),
    })?;
    if v.get("traceEvents").and_then(|e| e.as_array()).is_none() {
        return Err(TraceFileError::Format {
            path: path.to_owned(),
            why: "no `traceEvents` array".into(),
        });
    }
    Ok(v)
}

/// The trace file of run `i` of `count`: `file` itself for a single run,
/// else `file` with `-<i+1>` before its extension.
pub fn numbered(file: &Path, i: usize, count: usize) -> PathBuf {
    if count <= 1 {
        return file.to_owned();
    }
    let stem = file
        .file_stem()
        .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
    let name = match file.extension() {
        Some(ext) => format!("{stem}-{}.{}", i + 1, ext.to_string_lossy()),
        None => format!("{stem}-{}", i + 1),
    };
    file.with_file_name(name)
}

/// A traced boot: where the trace goes, and the monitor socket and scratch
/// file used to read it.
#[derive(Clone, Debug)]
pub struct Setup {
    /// The JSON file to write.
    pub json: PathBuf,
    /// Buffer per CPU, KiB.
    pub kib: u64,
    qmp: PathBuf,
    scratch: PathBuf,
}

impl Setup {
    /// A setup writing `json`, with buffers of `kib` KiB per CPU. The
    /// socket and scratch file are unique to this process and boot, in the
    /// temporary directory (a Unix socket path must be short).
    pub fn new(json: &Path, kib: u64) -> Self {
        static BOOTS: AtomicU32 = AtomicU32::new(0);
        let n = BOOTS.fetch_add(1, Ordering::Relaxed);
        let base = format!("parapet-trace-{}-{n}", std::process::id());
        let tmp = std::env::temp_dir();
        Self {
            json: json.to_owned(),
            kib,
            qmp: tmp.join(format!("{base}.sock")),
            scratch: tmp.join(format!("{base}.bin")),
        }
    }

    /// What QEMU's command line needs.
    pub fn qemu_args(&self) -> TraceArgs {
        TraceArgs {
            kib: self.kib,
            qmp: self.qmp.clone(),
        }
    }

    /// Starts draining (QEMU is about to start).
    pub fn start(&self) -> record::Recorder {
        let _ = std::fs::remove_file(&self.qmp);
        record::Recorder::start(self.qmp.clone(), self.scratch.clone())
    }

    /// Writes what `recorder` drained to the JSON file and says so on
    /// stderr, with the records lost (never hidden).
    pub fn write(&self, recorder: &record::Recorder) -> Result<(), TraceFileError> {
        let result = recorder.take();
        let _ = std::fs::remove_file(&self.qmp);
        let trace = match result {
            Ok(t) => t,
            Err(why) => {
                return Err(TraceFileError::Format {
                    path: self.json.clone(),
                    why: format!("no trace was recorded: {why}"),
                })
            }
        };
        let bytes = write_file(&trace, &self.json)?;
        eprintln!(
            "parapet: trace: {} records from {} CPU(s), {} lost, {} KiB buffers: {} ({} KiB); open it in https://ui.perfetto.dev",
            trace.records(),
            trace.cpus.len(),
            trace.lost(),
            self.kib,
            self.json.display(),
            bytes.div_ceil(1024)
        );
        if let Some(e) = &trace.error {
            eprintln!("parapet: trace: reading stopped early: {e}");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_files_are_numbered_only_when_there_are_several() {
        assert_eq!(numbered(Path::new("t.json"), 0, 1), Path::new("t.json"));
        assert_eq!(
            numbered(Path::new("/x/t.json"), 1, 3),
            Path::new("/x/t-2.json")
        );
        assert_eq!(numbered(Path::new("t"), 0, 2), Path::new("t-1"));
    }
}
