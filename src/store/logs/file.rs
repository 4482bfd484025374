//! Appending to one step's log: [`LogWriter`] keeps its index and `.meta` entries,
//! starts writeback as it goes, and hands its open files to the sync thread
//! ([`SyncHandle`]).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::sync::Arc;

use super::repair::repair;
use super::{INDEX_EVERY, Paths, encode_meta};

/// A step log's open files.
struct Files {
    log: File,
    idx: File,
    meta: File,
    /// The directories whose entries for new files (and a new run directory) are
    /// not yet durable: fsynced with the first sync, then dropped.
    dirs: std::sync::Mutex<Vec<File>>,
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
        self.0.meta.sync_data()?;
        let mut dirs = self.0.dirs.lock().unwrap_or_else(|p| p.into_inner());
        for d in dirs.iter() {
            d.sync_all()?;
        }
        dirs.clear();
        Ok(())
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
            let mut dirs = Vec::new();
            if p.log.exists() {
                self.lines = repair(p)?;
                self.bytes = std::fs::metadata(&p.log)?.len();
                self.written_back = self.bytes;
            } else if let Some(dir) = p.log.parent() {
                // New files: their directory's entries must be made durable too (and
                // the run directory's own entry, when it is new).
                if !dir.exists() {
                    std::os::unix::fs::DirBuilderExt::mode(
                        std::fs::DirBuilder::new().recursive(true),
                        0o700,
                    )
                    .create(dir)?;
                    if let Some(root) = dir.parent() {
                        dirs.push(File::open(root)?);
                    }
                }
                dirs.push(File::open(dir)?);
            }
            let open = |p: &Path| {
                use std::os::unix::fs::OpenOptionsExt;
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .mode(0o600)
                    .open(p)
            };
            // The `.meta` file first: a log that has one is never taken for the older
            // format.
            let meta = open(&p.meta)?;
            let (log, idx) = (open(&p.log)?, open(&p.idx)?);
            self.files = Some(Arc::new(Files {
                log,
                idx,
                meta,
                dirs: std::sync::Mutex::new(dirs),
            }));
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
