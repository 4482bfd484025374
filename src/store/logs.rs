//! Step logs: per step, an append-only file of lines, a sparse line index, and the
//! times and streams of those lines. One format:
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
//! Repair streams the files (bounded memory, whatever the log's size).
//!
//! Logs of an older format (a 16-byte `<millis> <stream> ` prefix on every line, no
//! `.meta`) are converted once, when a store is opened ([`LogStore::new`]) or a log
//! is repaired; nothing reads that format any more.
//!
//! Writing goes through one thread per store ([`super::log_writer`]): it owns the
//! open files, batches appends and fsyncs each dirty log within [`SYNC_EVERY`].

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use super::log_writer::{Batch, LogStream, OnDurable, SYNC_EVERY};

/// Lines between index entries.
pub const INDEX_EVERY: u64 = 4096;
/// Bytes of the `<millis> <stream> ` prefix of the older format (converted on open).
pub const PREFIX_LEN: usize = 16;
/// Bytes of one `.meta` entry.
const META_LEN: usize = 16;
/// Bytes of one index entry.
const IDX_LEN: u64 = 8;
/// What a streaming scan (repair, conversion) reads at a time.
const SCAN_CHUNK: usize = 64 * 1024;
/// Written in the store's root once every log in it is in the current format.
const FORMAT_MARK: &str = "FORMAT";

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
        let Some(mut f) = open_if_exists(&p.log)? else {
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
        let mut r = BufReader::with_capacity(64 * 1024, File::open(&p.log)?);
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

fn remove_if_exists(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
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
        let take = (count - first).min(limit as u64 + 1) as usize;
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

/// The offset just past the last `\n` in the first `len` bytes of `f`, scanning back
/// from the end a chunk at a time.
fn end_of_last_line(f: &File, len: u64) -> io::Result<u64> {
    let mut buf = vec![0u8; SCAN_CHUNK];
    let mut end = len;
    while end > 0 {
        let start = end.saturating_sub(SCAN_CHUNK as u64);
        let chunk = &mut buf[..(end - start) as usize];
        f.read_exact_at(chunk, start)?;
        if let Some(i) = memchr::memrchr(b'\n', chunk) {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

/// Trims a torn last line, makes the index and the `.meta` entries agree with the
/// log, returns the line count. Reads the log in chunks from the last index entry
/// that still holds (all of it only when the index is gone): memory stays bounded.
pub(crate) fn repair(p: &Paths) -> io::Result<u64> {
    convert_legacy(p)?;
    let log = match OpenOptions::new().read(true).write(true).open(&p.log) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            remove_if_exists(&p.idx)?;
            return Ok(0);
        }
        Err(e) => return Err(e),
    };
    let len = log.metadata()?.len();
    let keep = end_of_last_line(&log, len)?;
    if keep != len {
        log.set_len(keep)?;
    }
    let lines = repair_index(&log, keep, &p.idx)?;
    // Entries for lines that never made it (and a torn entry) go; scanned from the end.
    if let Some(meta) = open_if_exists(&p.meta)? {
        let len = meta.metadata()?.len();
        let mut valid = len / META_LEN as u64;
        let mut b = [0u8; META_LEN];
        while valid > 0 {
            meta.read_exact_at(&mut b, (valid - 1) * META_LEN as u64)?;
            if decode_meta(&b).0 < lines {
                break;
            }
            valid -= 1;
        }
        if valid * META_LEN as u64 != len {
            OpenOptions::new()
                .write(true)
                .open(&p.meta)?
                .set_len(valid * META_LEN as u64)?;
        }
    }
    Ok(lines)
}

/// Keeps the index entries that point at a line start within the log's first `keep`
/// bytes, adds the missing ones from the last of them on, returns the line count.
fn repair_index(log: &File, keep: u64, idx_path: &Path) -> io::Result<u64> {
    let idx = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(idx_path)?;
    let mut entries = idx.metadata()?.len() / IDX_LEN;
    // The last entry that holds: increasing, within the log, just after a `\n`.
    let mut start = 0u64;
    while entries > 0 {
        let e = read_u64_at(&idx, (entries - 1) * IDX_LEN)?;
        let ok = if entries == 1 {
            e == 0 && keep > 0
        } else {
            let mut before = [0u8; 1];
            e < keep
                && e > read_u64_at(&idx, (entries - 2) * IDX_LEN)?
                && log.read_exact_at(&mut before, e - 1).is_ok()
                && before[0] == b'\n'
        };
        if ok {
            start = e;
            break;
        }
        entries -= 1;
    }
    idx.set_len(entries * IDX_LEN)?;
    let mut lines = entries.saturating_sub(1) * INDEX_EVERY;
    let mut out = Vec::with_capacity(4096);
    if entries == 0 && keep > 0 {
        out.extend_from_slice(&0u64.to_le_bytes());
        entries = 1;
    }
    let mut buf = vec![0u8; SCAN_CHUNK];
    let mut pos = start;
    let mut written = entries * IDX_LEN - out.len() as u64;
    while pos < keep {
        let chunk = &mut buf[..(keep - pos).min(SCAN_CHUNK as u64) as usize];
        log.read_exact_at(chunk, pos)?;
        for nl in memchr::memchr_iter(b'\n', chunk) {
            lines += 1;
            let next = pos + nl as u64 + 1;
            if lines.is_multiple_of(INDEX_EVERY) && next < keep {
                out.extend_from_slice(&next.to_le_bytes());
            }
        }
        pos += chunk.len() as u64;
        if out.len() >= 4096 {
            idx.write_all_at(&out, written)?;
            written += out.len() as u64;
            out.clear();
        }
    }
    idx.write_all_at(&out, written)?;
    Ok(lines)
}

/// Converts every log of the older, prefixed format under `root`, then marks the
/// store as converted.
fn convert_store(root: &Path) -> io::Result<()> {
    if !root.is_dir() || root.join(FORMAT_MARK).exists() {
        return Ok(());
    }
    for run in std::fs::read_dir(root)? {
        let run = run?;
        let Some(run_id) = run.file_name().to_str().and_then(|s| s.parse::<i64>().ok()) else {
            continue;
        };
        if !run.file_type()?.is_dir() {
            continue;
        }
        for f in std::fs::read_dir(run.path())? {
            let name = f?.file_name();
            let step = name.to_str().and_then(|n| n.split_once('.'));
            if let Some((step, "log" | "log.v1" | "log.new")) = step
                && let Ok(step_id) = step.parse::<i64>()
            {
                convert_legacy(&paths(root, run_id, step_id))?;
            }
        }
    }
    std::fs::write(root.join(FORMAT_MARK), "2\n")
}

/// Converts one log of the older format (lines prefixed `<13-digit millis> <stream> `,
/// no `.meta`) to the current one, streaming; a no-op for a current log. Crash-safe:
/// the old log is kept as `.log.v1` until the new files are in place, and a
/// conversion a crash interrupted is finished or started again.
fn convert_legacy(p: &Paths) -> io::Result<()> {
    let old = p.log.with_extension("log.v1");
    let new_log = p.log.with_extension("log.new");
    let new_meta = p.meta.with_extension("meta.new");
    if p.meta.exists() {
        // Current format; finish a conversion stopped after its `.meta` was in place.
        if new_log.exists() {
            std::fs::rename(&new_log, &p.log)?;
        }
        return remove_if_exists(&old);
    }
    if old.exists() && !p.log.exists() {
        std::fs::rename(&old, &p.log)?;
    }
    if std::fs::metadata(&p.log).map_or(true, |m| m.len() == 0) {
        return Ok(());
    }
    let mut r = BufReader::with_capacity(SCAN_CHUNK, File::open(&p.log)?);
    let mut log = BufWriter::with_capacity(SCAN_CHUNK, File::create(&new_log)?);
    let mut meta = BufWriter::new(File::create(&new_meta)?);
    let (mut n, mut last) = (0u64, None);
    let mut rec = Vec::new();
    loop {
        rec.clear();
        // Old lines were capped at 1 MiB too; a longer "line" is cut, not loaded whole.
        let got = r
            .by_ref()
            .take(PREFIX_LEN as u64 + (1 << 20) + 1)
            .read_until(b'\n', &mut rec)?;
        if got == 0 || rec.last() != Some(&b'\n') {
            break; // the end, or a torn last line
        }
        let ts = std::str::from_utf8(rec.get(..13).unwrap_or_default())
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let stream = rec.get(14).copied().unwrap_or(b'o');
        if last != Some((ts, stream)) {
            meta.write_all(&encode_meta(n, ts, stream))?;
            last = Some((ts, stream));
        }
        log.write_all(rec.get(PREFIX_LEN..).unwrap_or(b"\n"))?;
        n += 1;
    }
    let (log, meta) = (log.into_inner()?, meta.into_inner()?);
    log.sync_all()?;
    meta.sync_all()?;
    std::fs::rename(&p.log, &old)?;
    std::fs::rename(&new_meta, &p.meta)?;
    std::fs::rename(&new_log, &p.log)?;
    remove_if_exists(&old)?;
    // The old index counted the same lines at other offsets.
    remove_if_exists(&p.idx)?;
    let log = File::open(&p.log)?;
    repair_index(&log, log.metadata()?.len(), &p.idx)?;
    if let Some(dir) = p.log.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// A step log's open files.
struct Files {
    log: File,
    idx: File,
    meta: File,
}

/// A log's open files, for fsyncing them on another thread while lines are appended.
#[derive(Clone)]
pub(crate) struct SyncHandle(Arc<Files>);

impl SyncHandle {
    /// Makes everything written before the call durable: the log, then its index and
    /// `.meta`.
    pub(crate) fn sync(&self) -> io::Result<()> {
        self.0.log.sync_data()?;
        self.0.idx.sync_data()?;
        self.0.meta.sync_data()
    }
}

/// Appends lines to one step's log and keeps its index and `.meta` entries. Only
/// one writer may have a log open at a time: the engine's is the log-writer thread.
pub struct LogWriter {
    paths: Paths,
    /// Opened on the first append (shared with the sync thread's [`SyncHandle`]).
    files: Option<Arc<Files>>,
    /// The time and stream of the last `.meta` entry.
    last_meta: Option<(i64, u8)>,
    lines: u64,
    bytes: u64,
    /// Bytes of the log whose writeback has been started.
    written_back: u64,
}

/// Writeback of a log is started every this many bytes appended.
const WRITEBACK_EVERY: u64 = 8 << 20;

impl LogWriter {
    pub(crate) fn new(paths: Paths) -> Self {
        Self {
            paths,
            files: None,
            last_meta: None,
            lines: 0,
            bytes: 0,
            written_back: 0,
        }
    }

    fn files(&mut self) -> io::Result<&Files> {
        if self.files.is_none() {
            let p = &self.paths;
            // A log already there (lines written before) is repaired and continued.
            if p.log.exists() {
                self.lines = repair(p)?;
                self.bytes = std::fs::metadata(&p.log)?.len();
                self.written_back = self.bytes;
            } else if let Some(dir) = p.log.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let open = |p: &Path| OpenOptions::new().create(true).append(true).open(p);
            // The `.meta` file first: a log that has one is never taken for the older
            // format.
            let meta = open(&p.meta)?;
            let (log, idx) = (open(&p.log)?, open(&p.idx)?);
            self.files = Some(Arc::new(Files { log, idx, meta }));
        }
        self.files
            .as_deref()
            .ok_or_else(|| io::Error::other("log files not open"))
    }

    /// Lines in the log, once something was appended through this writer (0 before).
    pub fn lines(&self) -> u64 {
        self.lines
    }

    /// Bytes in the log, once something was appended through this writer (0 before).
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Whether anything was appended through this writer.
    pub fn wrote(&self) -> bool {
        self.files.is_some()
    }

    /// Appends `count` complete lines (each ending in `\n`), read at `ts` (unix ms)
    /// from `stream` (`o`, `e`, or `p` for pipedeck's own).
    pub fn append(&mut self, lines: &[u8], count: u64, ts: i64, stream: u8) -> io::Result<()> {
        if count == 0 {
            return Ok(());
        }
        self.files()?;
        if self.last_meta != Some((ts, stream)) {
            let entry = encode_meta(self.lines, ts, stream);
            (&self.files()?.meta).write_all(&entry)?;
            self.last_meta = Some((ts, stream));
        }
        // Index entries for every multiple of INDEX_EVERY in [lines, lines + count).
        let first = self.lines;
        let mut next_mark = first.div_ceil(INDEX_EVERY) * INDEX_EVERY;
        let mut idx = Vec::new();
        if next_mark < first + count {
            let mut line = first;
            let mut offset = 0usize;
            let mut nls = memchr::memchr_iter(b'\n', lines);
            while next_mark < first + count {
                while line < next_mark {
                    offset = nls.next().map(|i| i + 1).unwrap_or(lines.len());
                    line += 1;
                }
                idx.extend_from_slice(&(self.bytes + offset as u64).to_le_bytes());
                next_mark += INDEX_EVERY;
            }
        }
        let f = self.files()?;
        (&f.log).write_all(lines)?;
        if !idx.is_empty() {
            (&f.idx).write_all(&idx)?;
        }
        self.lines += count;
        self.bytes += lines.len() as u64;
        if self.bytes - self.written_back >= WRITEBACK_EVERY {
            self.start_writeback()?;
        }
        Ok(())
    }

    /// Starts writing the log's bytes not yet on their way to disk, without waiting
    /// (`sync_file_range(SYNC_FILE_RANGE_WRITE)`): the disk works while lines come
    /// in, and the next fsync waits only for what is still in flight.
    ///
    /// Measured (1 GiB of 100-byte lines through `pipedeck run --wait`, fsync every
    /// 250 ms on the writer thread), in 8 interleaved rounds: 1.72/1.77/2.09/1.76/
    /// 1.96 s without, 1.28/1.65/1.43/1.19/1.48 s with (median 1.77 -> 1.43 s), and
    /// 1.85/1.53/2.12 -> 1.66/1.25/2.02 s in three more: it won every round.
    /// Measured again once the fsyncs moved to the sync thread (and the reader
    /// gathered larger chunks): `scripts/bench.sh --capture`, 5 pairs a round, 3
    /// rounds interleaved: median of the per-pair ratios 1.24/1.28/1.65 without,
    /// 1.15/1.12/1.38 with (step medians 0.95/1.03/1.06 s without, 0.69/0.97/1.09 s
    /// with): still lower in every round by the ratio, so it stays.
    fn start_writeback(&mut self) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        let Some(f) = &self.files else {
            return Ok(());
        };
        let (from, len) = (self.written_back, self.bytes - self.written_back);
        // SAFETY: sync_file_range on a descriptor this writer owns; it reads no memory
        // of ours.
        let r = unsafe {
            libc::sync_file_range(
                f.log.as_raw_fd(),
                from as libc::off64_t,
                len as libc::off64_t,
                libc::SYNC_FILE_RANGE_WRITE,
            )
        };
        if r == -1 {
            return Err(io::Error::last_os_error());
        }
        self.written_back = self.bytes;
        Ok(())
    }

    /// Appends one line of pipedeck's own (stream `p`).
    pub fn note(&mut self, text: &str) -> io::Result<()> {
        let mut line = text.replace('\n', " ").into_bytes();
        line.push(b'\n');
        self.append(&line, 1, crate::domain::now_ms(), b'p')
    }

    /// Makes everything written so far durable: the log, then its index and `.meta`.
    pub fn sync(&mut self) -> io::Result<()> {
        self.sync_handle().map_or(Ok(()), |h| h.sync())
    }

    /// The open files, for syncing elsewhere (none before the first append).
    pub(crate) fn sync_handle(&self) -> Option<SyncHandle> {
        self.files.clone().map(SyncHandle)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn lines(from: u64, n: u64) -> Vec<u8> {
        let mut v = Vec::new();
        for i in from..from + n {
            v.extend_from_slice(format!("line {i}\n").as_bytes());
        }
        v
    }

    const T0: i64 = 1_700_000_000_000;

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

    #[test]
    fn torn_last_line_and_its_entries_are_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::new(dir.path().to_path_buf());
        let mut w = store.writer(1, 1).unwrap();
        w.append(&lines(0, 5000), 5000, T0, b'o').unwrap();
        drop(w);
        // A crash after the entry for the next lines, amid their first line; the
        // index got an entry ahead of lines that never made it, and half of another.
        let path = |ext: &str| dir.path().join(format!("1/1.{ext}"));
        let mut meta = OpenOptions::new().append(true).open(path("meta")).unwrap();
        meta.write_all(&encode_meta(5000, T0 + 9, b'e')).unwrap();
        meta.write_all(&[1, 2, 3]).unwrap();
        let mut idx = OpenOptions::new().append(true).open(path("idx")).unwrap();
        let len = std::fs::metadata(path("log")).unwrap().len();
        idx.write_all(&(len + 10).to_le_bytes()).unwrap();
        idx.write_all(&[7, 7]).unwrap();
        let mut log = OpenOptions::new().append(true).open(path("log")).unwrap();
        log.write_all(b"half a li").unwrap();
        assert_eq!(store.repair(1, 1).unwrap(), 5000);
        assert_eq!(std::fs::read(path("meta")).unwrap().len(), META_LEN);
        assert_eq!(
            std::fs::read(path("idx")).unwrap().len(),
            2 * IDX_LEN as usize
        );
        assert_eq!(std::fs::metadata(path("log")).unwrap().len(), len);
        // A writer continues the repaired log: its next line is line 5000.
        let mut w = store.writer(1, 1).unwrap();
        w.append(&lines(5000, 1), 1, T0 + 5, b'e').unwrap();
        assert_eq!(w.lines(), 5001);
        let got = store.read(1, 1, 4999, 10).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!((got[0].ts, got[0].stream), (T0, 'o'));
        assert_eq!(
            (got[1].text.as_str(), got[1].ts, got[1].stream),
            ("line 5000", T0 + 5, 'e')
        );
    }

    /// The process's peak resident memory (bytes), after resetting it to the current.
    fn reset_peak_rss() {
        std::fs::write("/proc/self/clear_refs", "5").unwrap();
    }

    fn peak_rss() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap();
        kib * 1024
    }

    #[test]
    fn repair_streams_a_large_log_in_bounded_memory() {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::new(dir.path().to_path_buf());
        let mut w = store.writer(3, 1).unwrap();
        // 300,000 lines (about 3.5 MiB), then a 256 MiB hole of zeros (one long line,
        // the file stays sparse), then two lines and a torn third.
        w.append(&lines(0, 300_000), 300_000, T0, b'o').unwrap();
        drop(w);
        let path = dir.path().join("3/1.log");
        let f = OpenOptions::new().append(true).open(&path).unwrap();
        f.set_len(f.metadata().unwrap().len() + (256 << 20))
            .unwrap();
        (&f).write_all(b"\nafter\nlast\ntorn").unwrap();
        // The index is lost as well: everything is rebuilt from the log.
        std::fs::remove_file(dir.path().join("3/1.idx")).unwrap();
        reset_peak_rss();
        let before = peak_rss();
        assert_eq!(store.repair(3, 1).unwrap(), 300_003);
        let grew = peak_rss().saturating_sub(before);
        assert!(grew < 16 << 20, "repair grew the peak RSS by {grew} bytes");
        assert!(!std::fs::read(&path).unwrap().ends_with(b"torn"));
        assert_eq!(store.line_count(3, 1).unwrap(), 300_003);
        let got = store.read(3, 1, 300_001, 5).unwrap();
        let texts: Vec<&str> = got.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(texts, ["after", "last"]);
        assert_eq!(store.read(3, 1, 299_999, 1).unwrap()[0].text, "line 299999");
    }

    /// `lines` in the older format: each with the prefix `<13-digit millis> <stream> `.
    fn prefix_lines(lines: &[u8], ts: i64, stream: u8) -> Vec<u8> {
        let prefix = format!("{ts:013} {} ", stream as char);
        let mut out = Vec::new();
        for l in lines.split_inclusive(|&b| b == b'\n') {
            out.extend_from_slice(prefix.as_bytes());
            out.extend_from_slice(l);
        }
        out
    }

    #[test]
    fn logs_of_the_older_prefixed_format_are_converted_once() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("4")).unwrap();
        let mut old = prefix_lines(&lines(0, 5000), T0, b'e');
        old.extend_from_slice(&prefix_lines(&lines(5000, 2), T0 + 7, b'o'));
        assert!(old.starts_with(b"1700000000000 e line 0\n"));
        old.extend_from_slice(b"1700000000009 o torn");
        std::fs::write(dir.path().join("4/7.log"), &old).unwrap();
        // A conversion a crash interrupted, after the old log was moved aside.
        std::fs::write(
            dir.path().join("4/8.log.v1"),
            prefix_lines(b"a\n", T0, b'o'),
        )
        .unwrap();
        let store = LogStore::new(dir.path().to_path_buf());
        assert!(dir.path().join(FORMAT_MARK).exists());
        assert!(!dir.path().join("4/8.log.v1").exists());
        assert_eq!(store.repair(4, 8).unwrap(), 1);
        assert_eq!(store.read(4, 8, 0, 1).unwrap()[0].text, "a");
        // Read through the one reader, as written.
        assert_eq!(store.line_count(4, 7).unwrap(), 5002);
        let got = store.read(4, 7, 4999, 5).unwrap();
        let got: Vec<_> = got
            .iter()
            .map(|l| (l.text.as_str(), l.ts, l.stream))
            .collect();
        assert_eq!(
            got,
            [
                ("line 4999", T0, 'e'),
                ("line 5000", T0 + 7, 'o'),
                ("line 5001", T0 + 7, 'o')
            ]
        );
        // And it goes on in the current format.
        let mut w = store.writer(4, 7).unwrap();
        w.note("restarted").unwrap();
        assert_eq!(w.lines(), 5003);
        let last = &store.read(4, 7, 5002, 1).unwrap()[0];
        assert_eq!((last.text.as_str(), last.stream), ("restarted", 'p'));
    }
}
