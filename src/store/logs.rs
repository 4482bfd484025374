//! Step logs: one append-only file a step plus a sparse line index.
//!
//! A record is one line: `<unix millis, 13 digits> <o|e> <text>\n`. The index file
//! holds the byte offset (u64, little endian) of every [`INDEX_EVERY`]th line, so any
//! line range reads in O(range). A torn last record (no trailing newline) is trimmed
//! on repair, never misread.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Lines between index entries.
pub const INDEX_EVERY: u64 = 4096;
/// Bytes of the `<millis> <stream> ` prefix.
pub const PREFIX_LEN: usize = 16;

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

impl LogStore {
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    fn paths(&self, run_id: i64, step_id: i64) -> (PathBuf, PathBuf) {
        let dir = self.root.join(run_id.to_string());
        (
            dir.join(format!("{step_id}.log")),
            dir.join(format!("{step_id}.idx")),
        )
    }

    /// A step's log, for appending. Nothing is touched until the first line: then the
    /// files are opened (created, or repaired first if a crash tore them), so a step
    /// that prints nothing costs no file and no lookup.
    pub fn writer(&self, run_id: i64, step_id: i64) -> io::Result<LogWriter> {
        let (log, idx) = self.paths(run_id, step_id);
        Ok(LogWriter {
            log_path: log,
            idx_path: idx,
            files: None,
            lines: 0,
            bytes: 0,
        })
    }

    /// Repairs a step's log after a crash; returns its line count.
    pub fn repair(&self, run_id: i64, step_id: i64) -> io::Result<u64> {
        let (log, idx) = self.paths(run_id, step_id);
        repair(&log, &idx)
    }

    /// Number of complete lines stored for a step.
    pub fn line_count(&self, run_id: i64, step_id: i64) -> io::Result<u64> {
        let (log, idx) = self.paths(run_id, step_id);
        let (entries, _) = read_index(&idx)?;
        let Some(&last) = entries.last() else {
            return Ok(0);
        };
        let mut f = match File::open(&log) {
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
        let (log, idx) = self.paths(run_id, step_id);
        let (entries, _) = read_index(&idx)?;
        let k = (from / INDEX_EVERY) as usize;
        let Some(&offset) = entries.get(k) else {
            return Ok(Vec::new());
        };
        let mut r = BufReader::with_capacity(64 * 1024, File::open(&log)?);
        r.seek(SeekFrom::Start(offset))?;
        let mut n = k as u64 * INDEX_EVERY;
        let mut buf = Vec::new();
        let mut out = Vec::new();
        while out.len() < limit {
            buf.clear();
            if r.read_until(b'\n', &mut buf)? == 0 || buf.last() != Some(&b'\n') {
                break; // end, or a record still being written
            }
            if n >= from {
                out.push(parse_record(n, &buf[..buf.len() - 1]));
            }
            n += 1;
        }
        Ok(out)
    }
}

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

/// Trims a torn last record, makes the index agree with the log, returns the line count.
fn repair(log: &Path, idx: &Path) -> io::Result<u64> {
    let mut data = match std::fs::read(log) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let _ = std::fs::remove_file(idx);
            return Ok(0);
        }
        Err(e) => return Err(e),
    };
    let keep = data
        .iter()
        .rposition(|&b| b == b'\n')
        .map(|i| i + 1)
        .unwrap_or(0);
    if keep != data.len() {
        OpenOptions::new()
            .write(true)
            .open(log)?
            .set_len(keep as u64)?;
        data.truncate(keep);
    }
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
    std::fs::write(idx, &entries)?;
    Ok(lines)
}

/// Appends formatted records to one step's log and keeps its index.
pub struct LogWriter {
    log_path: PathBuf,
    idx_path: PathBuf,
    /// The log and its index, opened on the first append.
    files: Option<(File, File)>,
    lines: u64,
    bytes: u64,
}

impl LogWriter {
    fn files(&mut self) -> io::Result<&mut (File, File)> {
        if self.files.is_none() {
            // A log already there (lines written before a restart) is continued.
            if self.log_path.exists() {
                self.lines = repair(&self.log_path, &self.idx_path)?;
                self.bytes = std::fs::metadata(&self.log_path)?.len();
            } else if let Some(dir) = self.log_path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let open = |p: &Path| OpenOptions::new().create(true).append(true).open(p);
            self.files = Some((open(&self.log_path)?, open(&self.idx_path)?));
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

    /// Appends complete records (each ending in `\n`), `count` of them.
    pub fn append(&mut self, records: &[u8], count: u64) -> io::Result<()> {
        if count == 0 {
            return Ok(());
        }
        self.files()?;
        // Index entries for every multiple of INDEX_EVERY in [lines, lines + count).
        let first = self.lines;
        let mut next_mark = first.div_ceil(INDEX_EVERY) * INDEX_EVERY;
        if next_mark < first + count {
            let mut idx = Vec::new();
            let mut line = first;
            let mut offset = 0usize;
            let mut nls = memchr::memchr_iter(b'\n', records);
            while next_mark < first + count {
                while line < next_mark {
                    offset = nls.next().map(|i| i + 1).unwrap_or(records.len());
                    line += 1;
                }
                idx.extend_from_slice(&(self.bytes + offset as u64).to_le_bytes());
                next_mark += INDEX_EVERY;
            }
            let (log, index) = self.files()?;
            log.write_all(records)?;
            index.write_all(&idx)?;
        } else {
            self.files()?.0.write_all(records)?;
        }
        self.lines += count;
        self.bytes += records.len() as u64;
        Ok(())
    }

    /// Appends one line of pipedeck's own (stream `p`).
    pub fn note(&mut self, text: &str) -> io::Result<()> {
        let mut rec = Vec::with_capacity(text.len() + PREFIX_LEN + 1);
        push_prefix(&mut rec, crate::domain::now_ms(), b'p');
        rec.extend_from_slice(text.replace('\n', " ").as_bytes());
        rec.push(b'\n');
        self.append(&rec, 1)
    }

    /// Handles on the log and its index, for an fsync on another thread (so that
    /// making lines durable never holds up capturing new ones).
    pub fn sync_handles(&self) -> io::Result<Option<(File, File)>> {
        match &self.files {
            Some((log, idx)) => Ok(Some((log.try_clone()?, idx.try_clone()?))),
            None => Ok(None),
        }
    }

    /// Makes everything written so far durable.
    pub fn sync(&mut self) -> io::Result<()> {
        match &self.files {
            Some((log, idx)) => {
                log.sync_data()?;
                idx.sync_data()
            }
            None => Ok(()),
        }
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

/// Writes the 16-byte record prefix `<13-digit millis> <stream> `.
pub fn push_prefix(out: &mut Vec<u8>, ts: i64, stream: u8) {
    let mut digits = [b'0'; 13];
    let mut v = ts.max(0) as u64;
    for d in digits.iter_mut().rev() {
        *d = b'0' + (v % 10) as u8;
        v /= 10;
    }
    out.extend_from_slice(&digits);
    out.push(b' ');
    out.push(stream);
    out.push(b' ');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(from: u64, n: u64) -> Vec<u8> {
        let mut v = Vec::new();
        for i in from..from + n {
            push_prefix(&mut v, 1_700_000_000_000 + i as i64, b'o');
            v.extend_from_slice(format!("line {i}\n").as_bytes());
        }
        v
    }

    #[test]
    fn ranges_read_through_the_index() {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::new(dir.path().to_path_buf());
        let mut w = store.writer(1, 2).unwrap();
        // Uneven batches that straddle index marks.
        let mut at = 0;
        for n in [1, 4094, 2, 10_000, 3, 5_000] {
            w.append(&records(at, n), n).unwrap();
            at += n;
        }
        w.sync().unwrap();
        assert_eq!(store.line_count(1, 2).unwrap(), at);
        for from in [0, 4095, 4096, 4097, 8191, 12_345, at - 1] {
            let got = store.read(1, 2, from, 3).unwrap();
            assert_eq!(got[0].n, from);
            assert_eq!(got[0].text, format!("line {from}"));
            assert_eq!(got[0].ts, 1_700_000_000_000 + from as i64);
            assert_eq!(got[0].stream, 'o');
        }
        assert!(store.read(1, 2, at, 10).unwrap().is_empty());
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
        let n = 400_000;
        w.append(&records(0, n), n).unwrap();
        w.sync().unwrap();
        let (log, _) = w.sync_handles().unwrap().unwrap();
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
        w.append(&records(n, 5), 5).unwrap();
        let got = store.read(1, 3, 0, 3).unwrap();
        assert_eq!(got[2].text, "line 2");
        assert_eq!(store.line_count(1, 3).unwrap(), n + 5);
        assert_eq!(
            store.read(1, 3, n + 4, 5).unwrap()[0].text,
            format!("line {}", n + 4)
        );
    }

    #[test]
    fn torn_last_record_is_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::new(dir.path().to_path_buf());
        let mut w = store.writer(1, 1).unwrap();
        w.append(&records(0, 5000), 5000).unwrap();
        drop(w);
        let log = dir.path().join("1/1.log");
        let mut f = OpenOptions::new().append(true).open(&log).unwrap();
        f.write_all(b"1700000000000 o half a li").unwrap();
        assert_eq!(store.repair(1, 1).unwrap(), 5000);
        // A writer continues the repaired log: its next line is line 5000.
        let mut w = store.writer(1, 1).unwrap();
        w.append(&records(5000, 1), 1).unwrap();
        assert_eq!(w.lines(), 5001);
        let got = store.read(1, 1, 4999, 10).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].text, "line 5000");
    }
}
