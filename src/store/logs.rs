//! Step logs: per step, an append-only file of lines, a sparse line index, and the
//! times and streams of those lines.
//!
//! - `STEP.log` holds the lines as the step printed them (masked), each ending in `\n`.
//! - `STEP.idx` holds the byte offset (u64, little endian) of every [`INDEX_EVERY`]th
//!   line, so any line range reads in O(range).
//! - `STEP.meta` holds 16-byte entries, one each time the time (ms) or the stream
//!   changes: the first line it covers (u64 LE), then the unix millis in the low 56
//!   bits and the stream byte (`o`, `e`, `p`) in the top 8 (u64 LE). A step that
//!   floods writes one entry per read of its pipe, so the lines cost nothing extra.
//!
//! Logs written before the `.meta` file existed carry a 16-byte prefix on every line
//! (`<unix millis, 13 digits> <stream> `): they are read, and continued, as they are.
//!
//! A torn last line (no trailing newline) is trimmed on repair, never misread; so are
//! entries for lines that never made it. The `.meta` entry for new lines is written
//! before them, so a line never lacks its time.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Lines between index entries.
pub const INDEX_EVERY: u64 = 4096;
/// Bytes of the `<millis> <stream> ` prefix of the older format.
pub const PREFIX_LEN: usize = 16;
/// Bytes of one `.meta` entry.
const META_LEN: usize = 16;

/// Where step logs live.
#[derive(Debug, Clone)]
pub struct LogStore {
    root: PathBuf,
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
struct Paths {
    log: PathBuf,
    idx: PathBuf,
    meta: PathBuf,
}

impl Paths {
    /// Whether the log is in the older, prefixed format (it has lines, and no `.meta`).
    fn prefixed(&self) -> bool {
        !self.meta.exists() && std::fs::metadata(&self.log).is_ok_and(|m| m.len() > 0)
    }
}

impl LogStore {
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    fn paths(&self, run_id: i64, step_id: i64) -> Paths {
        let dir = self.root.join(run_id.to_string());
        Paths {
            log: dir.join(format!("{step_id}.log")),
            idx: dir.join(format!("{step_id}.idx")),
            meta: dir.join(format!("{step_id}.meta")),
        }
    }

    /// A step's log, for appending. Nothing is touched until the first line: then the
    /// files are opened (created, or repaired first if a crash tore them), so a step
    /// that prints nothing costs no file and no lookup.
    pub fn writer(&self, run_id: i64, step_id: i64) -> io::Result<LogWriter> {
        Ok(LogWriter {
            paths: self.paths(run_id, step_id),
            files: None,
            prefixed: false,
            last_meta: None,
            lines: 0,
            bytes: 0,
            reserved: 0,
        })
    }

    /// Repairs a step's log after a crash; returns its line count.
    pub fn repair(&self, run_id: i64, step_id: i64) -> io::Result<u64> {
        repair(&self.paths(run_id, step_id))
    }

    /// Number of complete lines stored for a step.
    pub fn line_count(&self, run_id: i64, step_id: i64) -> io::Result<u64> {
        let p = self.paths(run_id, step_id);
        let (entries, _) = read_index(&p.idx)?;
        let Some(&last) = entries.last() else {
            return Ok(0);
        };
        let mut f = match File::open(&p.log) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e),
        };
        f.seek(SeekFrom::Start(last))?;
        let mut rest = Vec::new();
        f.read_to_end(&mut rest)?;
        let tail = memchr::memchr_iter(b'\n', &rest).count() as u64;
        Ok((entries.len() as u64 - 1) * INDEX_EVERY + tail)
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
        let (entries, _) = read_index(&p.idx)?;
        let k = (from / INDEX_EVERY) as usize;
        let Some(&offset) = entries.get(k) else {
            return Ok(Vec::new());
        };
        // No `.meta` file: a log of the older, prefixed format.
        let mut stamps = Stamps::open(&p.meta, from, limit)?;
        let mut r = BufReader::with_capacity(64 * 1024, File::open(&p.log)?);
        r.seek(SeekFrom::Start(offset))?;
        let mut n = k as u64 * INDEX_EVERY;
        let mut buf = Vec::new();
        let mut out = Vec::new();
        while out.len() < limit {
            buf.clear();
            if r.read_until(b'\n', &mut buf)? == 0 || buf.last() != Some(&b'\n') {
                break; // end, or a line still being written
            }
            if n >= from {
                let line = &buf[..buf.len() - 1];
                out.push(match stamps.as_mut() {
                    Some(st) => {
                        let (ts, stream) = st.at(n);
                        LogLine {
                            n,
                            ts,
                            stream: stream as char,
                            text: String::from_utf8_lossy(line).into_owned(),
                        }
                    }
                    None => parse_record(n, line),
                });
            }
            n += 1;
        }
        Ok(out)
    }
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
    /// every entry starts a line of its own); None when the log has no `.meta` file.
    fn open(meta: &Path, from: u64, limit: usize) -> io::Result<Option<Self>> {
        let f = match File::open(meta) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
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
        Ok(Some(Self {
            entries: bytes.chunks_exact(META_LEN).map(decode_meta).collect(),
            at: 0,
        }))
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

/// A line of the older format: its prefix, then the text.
fn parse_record(n: u64, rec: &[u8]) -> LogLine {
    let ts = std::str::from_utf8(rec.get(..13).unwrap_or_default())
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let stream = rec.get(14).map(|&b| b as char).unwrap_or('o');
    let text = String::from_utf8_lossy(rec.get(PREFIX_LEN..).unwrap_or_default()).into_owned();
    LogLine {
        n,
        ts,
        stream,
        text,
    }
}

fn read_index(idx: &Path) -> io::Result<(Vec<u64>, u64)> {
    let bytes = match std::fs::read(idx) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    let whole = bytes.len() / 8 * 8;
    let entries = bytes[..whole]
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap_or_default()))
        .collect();
    Ok((entries, bytes.len() as u64))
}

/// Trims a torn last line, makes the index and the `.meta` entries agree with the
/// log, returns the line count.
fn repair(p: &Paths) -> io::Result<u64> {
    let mut data = match std::fs::read(&p.log) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let _ = std::fs::remove_file(&p.idx);
            return Ok(0);
        }
        Err(e) => return Err(e),
    };
    let keep = data
        .iter()
        .rposition(|&b| b == b'\n')
        .map(|i| i + 1)
        .unwrap_or(0);
    // Always set: besides a torn line, this drops blocks reserved past the end by a
    // writer that did not get to release them (see `LogWriter::reserve`).
    OpenOptions::new()
        .write(true)
        .open(&p.log)?
        .set_len(keep as u64)?;
    data.truncate(keep);
    // Rebuild the index from scratch: cheap next to what was written, and always right.
    let mut entries = Vec::new();
    let mut lines = 0u64;
    let mut start = 0usize;
    for nl in memchr::memchr_iter(b'\n', &data) {
        if lines.is_multiple_of(INDEX_EVERY) {
            entries.extend_from_slice(&(start as u64).to_le_bytes());
        }
        lines += 1;
        start = nl + 1;
    }
    std::fs::write(&p.idx, &entries)?;
    // Entries for lines that never made it (and a torn entry) go.
    if let Ok(meta) = std::fs::read(&p.meta) {
        let valid = meta
            .chunks_exact(META_LEN)
            .take_while(|e| decode_meta(e).0 < lines)
            .count();
        if valid * META_LEN != meta.len() {
            OpenOptions::new()
                .write(true)
                .open(&p.meta)?
                .set_len((valid * META_LEN) as u64)?;
        }
    }
    Ok(lines)
}

/// A step log's open files.
struct Files {
    log: File,
    idx: File,
    /// None for a log of the older format.
    meta: Option<File>,
}

/// Appends lines to one step's log and keeps its index and `.meta` entries.
pub struct LogWriter {
    paths: Paths,
    /// Opened on the first append.
    files: Option<Files>,
    /// Continuing a log of the older, prefixed format.
    prefixed: bool,
    /// The time and stream of the last `.meta` entry.
    last_meta: Option<(i64, u8)>,
    lines: u64,
    bytes: u64,
    /// The log file has disk blocks reserved up to this offset (past its end).
    reserved: u64,
}

/// A log that reaches this size gets disk blocks reserved ahead of its end.
const RESERVE_FROM: u64 = 4 << 20;
/// How far ahead: as much again as the log holds, within these bounds.
const RESERVE_AHEAD: (u64, u64) = (64 << 20, 256 << 20);

impl LogWriter {
    /// Reserves disk blocks past the log's end (`fallocate`, the size unchanged) once
    /// `upto` passes what is reserved, for logs that grow large.
    ///
    /// Otherwise each fsync's writeback allocates the blocks it writes, holding the
    /// file's block map locked while it reads block bitmaps from disk, and the next
    /// append waits: 13 waits, 198 ms over one 1 GiB capture (none with reservations).
    /// A 1 GiB capture took 0.89 s instead of 1.02 s, and 0.84 s instead of 0.86 s, in
    /// two series of 9-10 rotated runs: the gain depends on how many bitmaps are cold.
    /// What is not used is given back by [`release`](Self::release), or by the
    /// repair after a crash.
    fn reserve(&mut self, upto: u64) {
        if upto <= self.reserved || upto < RESERVE_FROM {
            return;
        }
        let start = self.reserved.max(self.bytes);
        let end = upto + upto.clamp(RESERVE_AHEAD.0, RESERVE_AHEAD.1);
        if let Some(f) = &self.files {
            use std::os::fd::AsRawFd;
            // SAFETY: fallocate on a descriptor this writer owns. Failing (a file
            // system without it, a full disk) leaves the blocks to writeback as before.
            unsafe {
                libc::fallocate(
                    f.log.as_raw_fd(),
                    libc::FALLOC_FL_KEEP_SIZE,
                    start as libc::off_t,
                    (end - start) as libc::off_t,
                );
            }
        }
        self.reserved = end;
    }

    /// Gives back the blocks reserved past the log's end (when the step is done).
    pub fn release(&mut self) -> io::Result<()> {
        if self.reserved > self.bytes
            && let Some(f) = &self.files
        {
            f.log.set_len(self.bytes)?;
        }
        self.reserved = 0;
        Ok(())
    }

    fn files(&mut self) -> io::Result<&mut Files> {
        if self.files.is_none() {
            let p = &self.paths;
            // A log already there (lines written before a restart) is continued.
            if p.log.exists() {
                self.prefixed = p.prefixed();
                self.lines = repair(p)?;
                self.bytes = std::fs::metadata(&p.log)?.len();
            } else if let Some(dir) = p.log.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let open = |p: &Path| OpenOptions::new().create(true).append(true).open(p);
            // The `.meta` file first: a log that has one is never taken for the older
            // format.
            let meta = if self.prefixed {
                None
            } else {
                Some(open(&p.meta)?)
            };
            let (log, idx) = (open(&p.log)?, open(&p.idx)?);
            self.files = Some(Files { log, idx, meta });
        }
        self.files
            .as_mut()
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
        if self.prefixed {
            let records = prefix_lines(lines, ts, stream);
            return self.write(&records, count);
        }
        if self.last_meta != Some((ts, stream)) {
            let entry = encode_meta(self.lines, ts, stream);
            if let Some(meta) = &mut self.files()?.meta {
                meta.write_all(&entry)?;
            }
            self.last_meta = Some((ts, stream));
        }
        self.write(lines, count)
    }

    /// Writes lines to the log, and index entries for every multiple of INDEX_EVERY
    /// in [lines, lines + count).
    fn write(&mut self, data: &[u8], count: u64) -> io::Result<()> {
        let first = self.lines;
        let mut next_mark = first.div_ceil(INDEX_EVERY) * INDEX_EVERY;
        let mut idx = Vec::new();
        if next_mark < first + count {
            let mut line = first;
            let mut offset = 0usize;
            let mut nls = memchr::memchr_iter(b'\n', data);
            while next_mark < first + count {
                while line < next_mark {
                    offset = nls.next().map(|i| i + 1).unwrap_or(data.len());
                    line += 1;
                }
                idx.extend_from_slice(&(self.bytes + offset as u64).to_le_bytes());
                next_mark += INDEX_EVERY;
            }
        }
        self.files()?;
        self.reserve(self.bytes + data.len() as u64);
        let f = self.files()?;
        f.log.write_all(data)?;
        if !idx.is_empty() {
            f.idx.write_all(&idx)?;
        }
        self.lines += count;
        self.bytes += data.len() as u64;
        Ok(())
    }

    /// Appends one line of pipedeck's own (stream `p`).
    pub fn note(&mut self, text: &str) -> io::Result<()> {
        let mut line = text.replace('\n', " ").into_bytes();
        line.push(b'\n');
        self.append(&line, 1, crate::domain::now_ms(), b'p')
    }

    /// Handles on the log, then its index and `.meta` entries, for an fsync on another
    /// thread (so that making lines durable never holds up capturing new ones). Empty
    /// before the first append.
    pub fn sync_handles(&self) -> io::Result<Vec<File>> {
        self.open_files().map(File::try_clone).collect()
    }

    /// Makes everything written so far durable.
    pub fn sync(&mut self) -> io::Result<()> {
        self.open_files().try_for_each(File::sync_data)
    }

    /// The open files, the log first.
    fn open_files(&self) -> impl Iterator<Item = &File> {
        self.files
            .iter()
            .flat_map(|f| [Some(&f.log), Some(&f.idx), f.meta.as_ref()])
            .flatten()
    }
}

/// Drops the log's cached pages in `[from, to)` (whole pages only); for bytes already
/// durable, so the pages are clean. A step that streams gigabytes then recycles a few
/// hundred megabytes of page cache instead of pushing the operator's cached files
/// out; and the pages it writes into next are ones just freed, which are filled
/// faster than pages untouched for a while (on a VM, up to five times faster).
pub fn release_cached(log: &File, from: u64, to: u64) {
    use std::os::fd::AsRawFd;
    const PAGE: u64 = 4096;
    let (from, to) = (from / PAGE * PAGE, to / PAGE * PAGE);
    if to > from {
        // SAFETY: fadvise on an open file; it drops clean cached pages only, and a
        // failure leaves them cached, which is harmless.
        unsafe {
            libc::posix_fadvise(
                log.as_raw_fd(),
                from as libc::off_t,
                (to - from) as libc::off_t,
                libc::POSIX_FADV_DONTNEED,
            );
        }
    }
}

/// `lines` in the older format: each with the prefix `<13-digit millis> <stream> `.
fn prefix_lines(lines: &[u8], ts: i64, stream: u8) -> Vec<u8> {
    let mut prefix = [b'0'; PREFIX_LEN];
    let mut v = ts.max(0) as u64;
    for d in prefix[..13].iter_mut().rev() {
        *d = b'0' + (v % 10) as u8;
        v /= 10;
    }
    prefix[13] = b' ';
    prefix[14] = stream;
    prefix[15] = b' ';
    let count = memchr::memchr_iter(b'\n', lines).count();
    let mut out = Vec::with_capacity(lines.len() + count * PREFIX_LEN);
    let mut start = 0;
    for nl in memchr::memchr_iter(b'\n', lines) {
        out.extend_from_slice(&prefix);
        out.extend_from_slice(&lines[start..=nl]);
        start = nl + 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(from: u64, n: u64) -> Vec<u8> {
        let mut v = Vec::new();
        for i in from..from + n {
            v.extend_from_slice(format!("line {i}\n").as_bytes());
        }
        v
    }

    const T0: i64 = 1_700_000_000_000;

    /// Bytes of disk the file holds (blocks, reserved ones included).
    fn allocated(path: &Path) -> u64 {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path).unwrap().blocks() * 512
    }

    #[test]
    fn a_large_log_reserves_blocks_ahead_and_gives_back_what_it_did_not_use() {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::new(dir.path().to_path_buf());
        let path = dir.path().join("1/2.log");
        let mut w = store.writer(1, 2).unwrap();
        // Small logs reserve nothing.
        w.append(&lines(0, 10), 10, T0, b'o').unwrap();
        w.sync().unwrap();
        assert!(allocated(&path) < 64 << 10);
        // Past RESERVE_FROM: blocks reserved ahead, the size (and the lines) unchanged.
        let mut batch = vec![b'x'; RESERVE_FROM as usize + 10];
        *batch.last_mut().unwrap() = b'\n';
        w.append(&batch, 1, T0, b'o').unwrap();
        let size = std::fs::metadata(&path).unwrap().len();
        assert_eq!(size, w.bytes());
        assert!(allocated(&path) >= size + RESERVE_AHEAD.0 - (1 << 20));
        // Released: back to about the size. A repair would do the same.
        w.release().unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), size);
        assert!(allocated(&path) < size + (1 << 20));
        assert_eq!(store.line_count(1, 2).unwrap(), 11);
        // Reserved again, then left by a "crashed" writer: the repair gives it back.
        let mut w = store.writer(1, 2).unwrap();
        w.append(&batch, 1, T0, b'o').unwrap();
        let size = w.bytes();
        assert!(allocated(&path) >= size + RESERVE_AHEAD.0 - (1 << 20));
        drop(w);
        assert_eq!(store.repair(1, 2).unwrap(), 12);
        assert!(allocated(&path) < size + (1 << 20));
    }

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
    }

    /// Which of the first `pages` pages of `f` are in the page cache.
    fn resident(f: &File, pages: usize) -> Vec<bool> {
        use std::os::fd::AsRawFd;
        let len = pages * 4096;
        // SAFETY: a read-only shared mapping of `len` bytes of a file at least that
        // long, only passed to mincore (which faults nothing in) and unmapped.
        unsafe {
            let p = libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                f.as_raw_fd(),
                0,
            );
            assert_ne!(p, libc::MAP_FAILED);
            let mut v = vec![0u8; pages];
            assert_eq!(libc::mincore(p, len, v.as_mut_ptr()), 0);
            libc::munmap(p, len);
            v.into_iter().map(|b| b & 1 == 1).collect()
        }
    }

    #[test]
    fn durable_pages_leave_the_cache_and_the_log_reads_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::new(dir.path().to_path_buf());
        let mut w = store.writer(1, 3).unwrap();
        let n = 1_000_000;
        w.append(&lines(0, n), n, T0, b'o').unwrap();
        w.sync().unwrap();
        let log = w.sync_handles().unwrap().remove(0);
        let reader = File::open(dir.path().join("1/3.log")).unwrap();
        let pages = (w.bytes() / 4096) as usize;
        assert!(pages > 2048, "the log spans more than 8 MiB");
        assert!(resident(&reader, pages).iter().all(|&r| r));
        // The first 4 MiB go (a boundary no cached folio straddles); a ragged end
        // that is no whole page counts for nothing.
        let cut = 4 << 20;
        release_cached(&log, 0, cut + 100);
        let after = resident(&reader, pages);
        // SAFETY: statfs fills the struct for an existing path.
        let tmpfs = unsafe {
            let mut st: libc::statfs = std::mem::zeroed();
            let path = std::ffi::CString::new(dir.path().as_os_str().as_encoded_bytes()).unwrap();
            libc::statfs(path.as_ptr(), &mut st) == 0 && st.f_type == libc::TMPFS_MAGIC
        };
        let first = (cut / 4096) as usize;
        if !tmpfs {
            // tmpfs keeps its pages (they are the file); a disk file system drops them.
            assert!(
                after[..first].iter().all(|&r| !r),
                "released pages stayed cached"
            );
        }
        assert!(
            after[first..].iter().all(|&r| r),
            "pages past the range were dropped"
        );
        // Nothing is lost: the lines read back from disk as they were written, and the
        // log goes on.
        w.append(&lines(n, 5), 5, T0 + 1, b'e').unwrap();
        let got = store.read(1, 3, 0, 3).unwrap();
        assert_eq!(got[2].text, "line 2");
        assert_eq!(store.line_count(1, 3).unwrap(), n + 5);
        let last = &store.read(1, 3, n + 4, 5).unwrap()[0];
        assert_eq!(
            (last.text.as_str(), last.ts, last.stream),
            ("line 1000004", T0 + 1, 'e')
        );
    }

    #[test]
    fn torn_last_line_and_its_entries_are_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::new(dir.path().to_path_buf());
        let mut w = store.writer(1, 1).unwrap();
        w.append(&lines(0, 5000), 5000, T0, b'o').unwrap();
        drop(w);
        // A crash after the entry for the next lines, amid their first line.
        let path = |ext: &str| dir.path().join(format!("1/1.{ext}"));
        let mut meta = OpenOptions::new().append(true).open(path("meta")).unwrap();
        meta.write_all(&encode_meta(5000, T0 + 9, b'e')).unwrap();
        meta.write_all(&[1, 2, 3]).unwrap();
        let mut log = OpenOptions::new().append(true).open(path("log")).unwrap();
        log.write_all(b"half a li").unwrap();
        assert_eq!(store.repair(1, 1).unwrap(), 5000);
        assert_eq!(std::fs::read(path("meta")).unwrap().len(), META_LEN);
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

    #[test]
    fn a_log_of_the_older_prefixed_format_reads_and_goes_on_as_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::new(dir.path().to_path_buf());
        std::fs::create_dir_all(dir.path().join("4")).unwrap();
        let old = prefix_lines(&lines(0, 5000), T0, b'e');
        assert!(old.starts_with(b"1700000000000 e line 0\n"));
        std::fs::write(dir.path().join("4/7.log"), &old).unwrap();
        // No index either (as after a crash): the repair on open rebuilds it.
        let mut w = store.writer(4, 7).unwrap();
        w.note("restarted").unwrap();
        assert_eq!(w.lines(), 5001);
        assert!(!dir.path().join("4/7.meta").exists());
        let got = store.read(4, 7, 4999, 5).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(
            (got[0].text.as_str(), got[0].ts, got[0].stream),
            ("line 4999", T0, 'e')
        );
        assert_eq!((got[1].text.as_str(), got[1].stream), ("restarted", 'p'));
        assert_eq!(store.line_count(4, 7).unwrap(), 5001);
    }
}
