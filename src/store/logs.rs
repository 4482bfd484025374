//! Step logs: per step, an append-only file of lines, a sparse line index, and the
//! times and streams of those lines; the store, its lines, and reading them. One
//! format:
//!
//! - `STEP.log` holds the lines as the step printed them (masked), each ending in `\n`.
//! - `STEP.idx` holds the byte offset (u64, little endian) of every [`INDEX_EVERY`]th
//!   line, so any line range reads in O(range).
//! - `STEP.meta` holds 16-byte entries, one each time the time (ms) or the stream
//!   changes: the first line it covers (u64 LE), then the unix millis in the low 56
//!   bits and the stream byte (`o`, `e`, `p`) in the top 8 (u64 LE). A step that
//!   floods writes one entry per batch, so the lines cost nothing extra.
//!
//! A `.meta` file is created before its `.log`, and an entry is written before the
//! lines it covers. A torn last line (no trailing newline) is trimmed on repair,
//! never misread; so are index and `.meta` entries for lines that never made it.
//! Repair streams the files (bounded memory, whatever the log's size): see the
//! `repair` submodule.
//!
//! Logs of an older format (a 16-byte `<millis> <stream> ` prefix on every line, no
//! `.meta`) are converted once, when a store is opened ([`LogStore::new`]) or a log
//! is repaired (also in `repair`); nothing reads that format any more.
//!
//! Appending to one log is [`LogWriter`] (the `file` submodule). Writing goes
//! through one thread per store ([`super::log_writer`]): it owns the open files,
//! batches appends and fsyncs each dirty log within [`SYNC_EVERY`].

mod aging;
mod file;
mod repair;
#[cfg(test)]
mod repair_tests;
mod search;

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use super::log_writer::{Batch, LogStream, OnDurable, SYNC_EVERY};
pub use aging::AgedLogs;
pub(crate) use aging::open_log;
pub use file::LogWriter;
pub(crate) use file::SyncHandle;
pub use repair::PREFIX_LEN;
use repair::{convert_store, repair};
pub use search::Direction;

/// Lines between index entries.
pub const INDEX_EVERY: u64 = 4096;
/// Bytes of one `.meta` entry.
const META_LEN: usize = 16;
/// Bytes of one index entry.
const IDX_LEN: u64 = 8;

/// Where step logs live. Clones share one log-writer thread.
#[derive(Debug, Clone)]
pub struct LogStore {
    root: PathBuf,
    writer: super::log_writer::Writer,
}

/// One stored log line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogLine {
    /// 0-based line number within the step's log.
    pub n: u64,
    pub ts: i64,
    /// `o` for stdout, `e` for stderr, `p` for pipedeck's own notes.
    pub stream: char,
    pub text: String,
}

/// The three files of one step's log.
#[derive(Debug, Clone)]
pub(crate) struct Paths {
    log: PathBuf,
    /// The log compressed by retention (`compress = "zstd"`), once `log` is gone.
    zst: PathBuf,
    idx: PathBuf,
    meta: PathBuf,
}

impl LogStore {
    /// The store at `root`. Logs of the older format found there are converted first
    /// (once: a mark in `root` records that none are left); a failure is logged, and
    /// the logs concerned are converted when they are next repaired.
    pub fn new(root: PathBuf) -> Self {
        if let Err(e) = convert_store(&root) {
            tracing::error!(root = %root.display(), "converting old step logs failed: {e}");
        }
        Self {
            root,
            writer: Default::default(),
        }
    }

    pub(crate) fn paths(&self, run_id: i64, step_id: i64) -> Paths {
        paths(&self.root, run_id, step_id)
    }

    /// A step's log, for appending on this thread. Nothing is touched until the first
    /// line: then the files are opened (created, or repaired first if a crash tore
    /// them). The engine appends through [`stream`](Self::stream) instead; this is for
    /// tools and tests that own the log alone.
    pub fn writer(&self, run_id: i64, step_id: i64) -> io::Result<LogWriter> {
        Ok(LogWriter::new(self.paths(run_id, step_id)))
    }

    /// A step's log, appended to by the store's log-writer thread: batches are written
    /// in order, fsynced within [`SYNC_EVERY`], and `on_durable(total_lines)` is called
    /// (on the writer thread) once lines are durable.
    pub fn stream(
        &self,
        run_id: i64,
        step_id: i64,
        on_durable: OnDurable,
    ) -> io::Result<LogStream> {
        self.writer
            .stream(self.paths(run_id, step_id), run_id, step_id, on_durable)
    }

    /// Bytes of log the engine's streams appended since this store was opened.
    pub fn bytes_written(&self) -> u64 {
        self.writer.written()
    }

    /// Most bytes one step's log keeps from now on (`None`: no cap); output past it is
    /// discarded, and a note in the log says so.
    pub fn set_max_bytes(&self, cap: Option<u64>) {
        self.writer.set_max_bytes(cap);
    }

    /// Repairs a step's log after a crash; returns its line count.
    pub fn repair(&self, run_id: i64, step_id: i64) -> io::Result<u64> {
        repair(&self.paths(run_id, step_id))
    }

    /// Number of complete lines stored for a step.
    pub fn line_count(&self, run_id: i64, step_id: i64) -> io::Result<u64> {
        let p = self.paths(run_id, step_id);
        let Some(idx) = open_if_exists(&p.idx)? else {
            return Ok(0);
        };
        let entries = idx.metadata()?.len() / IDX_LEN;
        if entries == 0 {
            return Ok(0);
        }
        let last = read_u64_at(&idx, (entries - 1) * IDX_LEN)?;
        let Some(mut f) = open_log(&p)? else {
            return Ok(0);
        };
        f.seek(SeekFrom::Start(last))?;
        // At most INDEX_EVERY lines (and a line still being written) past the entry.
        let mut rest = Vec::new();
        f.read_to_end(&mut rest)?;
        let tail = memchr::memchr_iter(b'\n', &rest).count() as u64;
        Ok((entries - 1) * INDEX_EVERY + tail)
    }

    /// Reads up to `limit` lines starting at line `from`.
    pub fn read(
        &self,
        run_id: i64,
        step_id: i64,
        from: u64,
        limit: usize,
    ) -> io::Result<Vec<LogLine>> {
        let p = self.paths(run_id, step_id);
        let k = from / INDEX_EVERY;
        let Some(idx) = open_if_exists(&p.idx)? else {
            return Ok(Vec::new());
        };
        if (k + 1) * IDX_LEN > idx.metadata()?.len() {
            return Ok(Vec::new());
        }
        let offset = read_u64_at(&idx, k * IDX_LEN)?;
        let mut stamps = Stamps::open(&p.meta, from, limit)?;
        let Some(log) = open_log(&p)? else {
            return Ok(Vec::new());
        };
        let mut r = BufReader::with_capacity(64 * 1024, log);
        r.seek(SeekFrom::Start(offset))?;
        let mut n = k * INDEX_EVERY;
        let mut buf = Vec::new();
        let mut out = Vec::new();
        while out.len() < limit {
            buf.clear();
            if r.read_until(b'\n', &mut buf)? == 0 || buf.last() != Some(&b'\n') {
                break; // end, or a line still being written
            }
            if n >= from {
                let (ts, stream) = stamps.at(n);
                out.push(LogLine {
                    n,
                    ts,
                    stream: stream as char,
                    text: String::from_utf8_lossy(&buf[..buf.len() - 1]).into_owned(),
                });
            }
            n += 1;
        }
        Ok(out)
    }
}

fn paths(root: &Path, run_id: i64, step_id: i64) -> Paths {
    let dir = root.join(run_id.to_string());
    Paths {
        log: dir.join(format!("{step_id}.log")),
        zst: dir.join(format!("{step_id}.log.zst")),
        idx: dir.join(format!("{step_id}.idx")),
        meta: dir.join(format!("{step_id}.meta")),
    }
}

fn open_if_exists(path: &Path) -> io::Result<Option<File>> {
    match File::open(path) {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn read_u64_at(f: &File, at: u64) -> io::Result<u64> {
    let mut b = [0u8; 8];
    f.read_exact_at(&mut b, at)?;
    Ok(u64::from_le_bytes(b))
}

/// The times and streams of a range of lines, from the `.meta` entries that cover it.
struct Stamps {
    /// (first line, ts, stream), ascending; the first covers the range's first line.
    entries: Vec<(u64, i64, u8)>,
    /// The entry in use.
    at: usize,
}

impl Stamps {
    /// The entries for lines `from..from + limit` (at most `limit + 1` of them, as
    /// every entry starts a line of its own); none when the log has no `.meta` file.
    fn open(meta: &Path, from: u64, limit: usize) -> io::Result<Self> {
        let mut st = Self {
            entries: Vec::new(),
            at: 0,
        };
        let Some(f) = open_if_exists(meta)? else {
            return Ok(st);
        };
        let count = f.metadata()?.len() / META_LEN as u64;
        let entry = |i: u64| -> io::Result<(u64, i64, u8)> {
            let mut b = [0u8; META_LEN];
            f.read_exact_at(&mut b, i * META_LEN as u64)?;
            Ok(decode_meta(&b))
        };
        // The last entry starting at or before `from`.
        let (mut lo, mut hi) = (0u64, count);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if entry(mid)?.0 <= from {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        let first = lo.saturating_sub(1);
        let take = (count - first).min((limit as u64).saturating_add(1)) as usize;
        let mut bytes = vec![0u8; take * META_LEN];
        f.read_exact_at(&mut bytes, first * META_LEN as u64)?;
        st.entries = bytes.chunks_exact(META_LEN).map(decode_meta).collect();
        Ok(st)
    }

    /// Time and stream of line `n` (asked for in ascending order).
    fn at(&mut self, n: u64) -> (i64, u8) {
        while self.entries.get(self.at + 1).is_some_and(|e| e.0 <= n) {
            self.at += 1;
        }
        self.entries.get(self.at).map_or((0, b'o'), |e| (e.1, e.2))
    }
}

fn encode_meta(first_line: u64, ts: i64, stream: u8) -> [u8; META_LEN] {
    let mut b = [0u8; META_LEN];
    b[..8].copy_from_slice(&first_line.to_le_bytes());
    let packed = (ts.max(0) as u64 & ((1 << 56) - 1)) | (u64::from(stream) << 56);
    b[8..].copy_from_slice(&packed.to_le_bytes());
    b
}

fn decode_meta(b: &[u8]) -> (u64, i64, u8) {
    let word = |r: std::ops::Range<usize>| {
        u64::from_le_bytes(b.get(r).and_then(|s| s.try_into().ok()).unwrap_or_default())
    };
    let packed = word(8..16);
    (
        word(0..8),
        (packed & ((1 << 56) - 1)) as i64,
        (packed >> 56) as u8,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn lines(from: u64, n: u64) -> Vec<u8> {
        let mut v = Vec::new();
        for i in from..from + n {
            v.extend_from_slice(format!("line {i}\n").as_bytes());
        }
        v
    }

    pub(super) const T0: i64 = 1_700_000_000_000;

    #[test]
    fn ranges_read_through_the_index_with_their_times_and_streams() {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::new(dir.path().to_path_buf());
        let mut w = store.writer(1, 2).unwrap();
        // Uneven batches that straddle index marks; the time changes with each batch
        // but the third, the stream with each second one.
        let mut at = 0;
        let mut batches = Vec::new();
        for (k, n) in [1u64, 4094, 2, 10_000, 3, 5_000].into_iter().enumerate() {
            let ts = T0 + if k == 2 { 1 } else { k as i64 };
            let stream = if k % 2 == 0 { b'o' } else { b'e' };
            w.append(&lines(at, n), n, ts, stream).unwrap();
            batches.push((at, at + n, ts, stream));
            at += n;
        }
        w.sync().unwrap();
        assert_eq!(store.line_count(1, 2).unwrap(), at);
        // One entry a change of time or stream: six batches, six entries.
        let meta = std::fs::read(dir.path().join("1/2.meta")).unwrap();
        assert_eq!(meta.len(), 6 * META_LEN);
        // The log holds the lines as printed, nothing more.
        let log = std::fs::read(dir.path().join("1/2.log")).unwrap();
        assert_eq!(log, lines(0, at));
        for from in [
            0,
            1,
            4094,
            4095,
            4096,
            4097,
            8191,
            12_345,
            14_099,
            14_100,
            at - 1,
        ] {
            let got = store.read(1, 2, from, 3).unwrap();
            for (i, l) in got.iter().enumerate() {
                let n = from + i as u64;
                let &(_, _, ts, stream) = batches.iter().find(|b| b.0 <= n && n < b.1).unwrap();
                assert_eq!(l.n, n);
                assert_eq!(l.text, format!("line {n}"));
                assert_eq!((l.ts, l.stream), (ts, stream as char), "line {n}");
            }
            assert_eq!(got.len() as u64, 3.min(at - from));
        }
        assert!(store.read(1, 2, at, 10).unwrap().is_empty());
        // A long range crosses many entries in order.
        let all = store.read(1, 2, 0, at as usize).unwrap();
        assert_eq!(all.len() as u64, at);
        assert!(all.iter().all(|l| l.text == format!("line {}", l.n)));
        // The index is what a repair would rebuild from the log alone.
        let idx = std::fs::read(dir.path().join("1/2.idx")).unwrap();
        std::fs::remove_file(dir.path().join("1/2.idx")).unwrap();
        assert_eq!(store.repair(1, 2).unwrap(), at);
        assert_eq!(std::fs::read(dir.path().join("1/2.idx")).unwrap(), idx);
    }
}
