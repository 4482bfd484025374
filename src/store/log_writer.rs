//! The log-writer thread: one per [`LogStore`](super::LogStore), owning every open
//! step log. Steps hand it batches of masked, timestamped lines over one bounded
//! channel; it appends them (and their index and `.meta` entries) and tells the
//! store's one sync thread which logs have new lines. The sync thread fsyncs each
//! dirty log within [`SYNC_EVERY`] of its first unsynced batch, and then tells the
//! step's `on_durable` how many lines are durable: the writer never waits for a
//! disk flush, so a step is not held up by one. When the writer falls behind
//! anyway, the channel fills and the steps' readers wait in `send`: a step slows
//! down, no line is lost, and memory stays bounded (at most [`QUEUE`] batches in
//! flight).

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::logs::{LogWriter, Paths, SyncHandle};

/// A line appended is durable (fsynced) within this long.
pub const SYNC_EVERY: Duration = Duration::from_millis(250);
/// Batches in flight between the steps and the writer (each at most a few hundred
/// KiB: the readers cut them so).
const QUEUE: usize = 32;

/// Called on the writer thread with a log's total line count once those lines are
/// durable.
pub type OnDurable = Arc<dyn Fn(u64) + Send + Sync>;
/// Called on the writer thread once a stream is closed: its log's line count, or the
/// first write or fsync error the log met.
pub type Done = Box<dyn FnOnce(io::Result<u64>) + Send>;

/// Complete lines for a log: `count` of them, each ending in `\n`, read at `ts`
/// (unix ms) from `stream` (`o`, `e`, `p`).
#[derive(Debug)]
pub struct Batch {
    pub data: Vec<u8>,
    pub count: u64,
    pub ts: i64,
    pub stream: u8,
}

type Key = (i64, i64);

enum Msg {
    /// `open` comes with a stream's first batch.
    Append {
        key: Key,
        batch: Batch,
        open: Option<(Paths, OnDurable)>,
    },
    Close {
        key: Key,
        done: Done,
    },
}

/// The store's handle on its writer thread, started with the first stream.
#[derive(Clone, Default)]
pub(crate) struct Writer {
    tx: Arc<Mutex<Option<SyncSender<Msg>>>>,
    /// Bytes of log appended since the writer started (for `/metrics`).
    written: Arc<AtomicU64>,
    /// Most bytes one step's log keeps (0: no cap).
    max_bytes: Arc<AtomicU64>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Writer")
    }
}

impl Writer {
    /// Bytes of log appended since the writer started.
    pub(crate) fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    pub(crate) fn set_max_bytes(&self, cap: Option<u64>) {
        self.max_bytes.store(cap.unwrap_or(0), Ordering::Relaxed);
    }

    pub(crate) fn stream(
        &self,
        paths: Paths,
        run_id: i64,
        step_id: i64,
        on_durable: OnDurable,
    ) -> io::Result<LogStream> {
        let mut tx = self.tx.lock().unwrap_or_else(|p| p.into_inner());
        let tx = match &*tx {
            Some(tx) => tx.clone(),
            None => {
                let (s, r) = sync_channel(QUEUE);
                let (written, max) = (self.written.clone(), self.max_bytes.clone());
                std::thread::Builder::new()
                    .name("pd-log-writer".into())
                    .spawn(move || run(r, written, max))?;
                tx.insert(s).clone()
            }
        };
        Ok(LogStream {
            tx,
            key: (run_id, step_id),
            open: Some((paths, on_durable)),
            opened: false,
            closed: false,
        })
    }
}

/// One producer's way into a step's log. Several may write to one log (a note, then
/// the step's output): their batches are appended in the order they arrive.
pub struct LogStream {
    tx: SyncSender<Msg>,
    key: Key,
    open: Option<(Paths, OnDurable)>,
    /// Whether a batch went out (the writer holds the log open for this stream).
    opened: bool,
    closed: bool,
}

fn gone() -> io::Error {
    io::Error::other("the log writer has stopped")
}

impl LogStream {
    /// Hands a batch to the writer; waits while the writer is [`QUEUE`] batches behind.
    pub fn append(&mut self, batch: Batch) -> io::Result<()> {
        if batch.count == 0 {
            return Ok(());
        }
        let open = self.open.take();
        self.opened = true;
        self.tx
            .send(Msg::Append {
                key: self.key,
                batch,
                open,
            })
            .map_err(|_| gone())
    }

    /// Appends one line of pipedeck's own (stream `p`).
    pub fn note(&mut self, text: &str) -> io::Result<()> {
        let mut data = text.replace('\n', " ").into_bytes();
        data.push(b'\n');
        self.append(Batch {
            data,
            count: 1,
            ts: crate::domain::now_ms(),
            stream: b'p',
        })
    }

    /// Ends the stream: what it sent is fsynced and announced, then `done` gets the
    /// log's line count, or the first error writing or syncing it met. A stream that
    /// sent nothing gets `Ok(0)` at once.
    pub fn close(mut self, done: Done) {
        self.closed = true;
        if !self.opened {
            return done(Ok(0));
        }
        let key = self.key;
        if let Err(e) = self.tx.send(Msg::Close { key, done })
            && let Msg::Close { done, .. } = e.0
        {
            done(Err(gone()));
        }
    }
}

impl Drop for LogStream {
    /// A stream dropped unclosed (its reader panicked) still lets the log go.
    fn drop(&mut self) {
        if self.opened && !self.closed {
            let key = self.key;
            // The writer being gone leaves nothing to release.
            self.tx
                .send(Msg::Close {
                    key,
                    done: Box::new(|_| {}),
                })
                .ok();
        }
    }
}

/// What the writer thread and the sync thread share about one open log.
struct Shared {
    key: Key,
    on_durable: OnDurable,
    /// Set once the first batch opened the files.
    files: OnceLock<SyncHandle>,
    /// Lines written (not yet necessarily durable): stored after each append.
    lines: AtomicU64,
    /// Whether the sync thread was told of lines it has not synced yet: set by the
    /// writer after an append (telling the sync thread when it was clear), cleared by
    /// the sync thread before it reads `lines` and fsyncs.
    pending: AtomicBool,
    /// The first write or sync error: later batches are dropped (the step is told).
    failed: OnceLock<String>,
    /// The line count last announced (the sync thread's alone).
    announced: AtomicU64,
}

impl Shared {
    fn fail(&self, what: &str, e: io::Error) {
        let (run, step) = self.key;
        tracing::error!(run, step, "{what} a step's log failed: {e}");
        // Only the first error is kept.
        self.failed.set(format!("{what} the log: {e}")).ok();
    }

    /// On the sync thread: fsyncs what was written, then announces it.
    fn sync(&self) {
        self.pending.store(false, Ordering::SeqCst);
        let lines = self.lines.load(Ordering::SeqCst);
        if self.failed.get().is_some() {
            return;
        }
        let Some(files) = self.files.get() else {
            return;
        };
        match files.sync() {
            Ok(()) => {
                if self.announced.swap(lines, Ordering::Relaxed) != lines {
                    (self.on_durable)(lines);
                }
            }
            Err(e) => self.fail("syncing", e),
        }
    }

    fn result(&self) -> io::Result<u64> {
        match self.failed.get() {
            Some(why) => Err(io::Error::other(why.clone())),
            None => Ok(self.lines.load(Ordering::SeqCst)),
        }
    }
}

/// An open log on the writer thread.
struct Open {
    w: LogWriter,
    /// It reached the byte cap: later batches are discarded.
    capped: bool,
    shared: Arc<Shared>,
    /// Streams that have it open.
    holders: usize,
}

/// What the writer tells the sync thread.
enum SyncMsg {
    /// Lines written since this instant wait for an fsync.
    Dirty(Arc<Shared>, Instant),
    /// A stream closed: sync now, then `done`.
    Close(Arc<Shared>, Done),
}

fn run(rx: Receiver<Msg>, written: Arc<AtomicU64>, max_bytes: Arc<AtomicU64>) {
    // The writer never waits for an fsync: the sync thread does them, and the writer
    // only tells it (over an unbounded channel, at most one `Dirty` a log between two
    // of its fsyncs, and one `Close` a stream) which logs have lines to sync.
    // Measured (`scripts/bench.sh --capture`, 1 GiB, 5 pairs a round, 3 rounds
    // interleaved with the code that fsynced on this thread, load average 4 to 10 on
    // 2 cores): median of the per-pair ratios to `cat > file` 1.32/1.82/2.71 before,
    // 0.86/1.52/2.15 with the sync thread; the step's median 2.75/2.41/2.64 s before,
    // 2.16/2.40/2.06 s with it. Lower in every round.
    let (sync_tx, sync_rx) = std::sync::mpsc::channel();
    let syncer = std::thread::Builder::new()
        .name("pd-log-sync".into())
        .spawn(move || sync_loop(sync_rx));
    if let Err(e) = &syncer {
        tracing::error!("cannot start the log sync thread: {e}");
    }
    let mut logs: HashMap<Key, Open> = HashMap::new();
    while let Ok(msg) = rx.recv() {
        match msg {
            Msg::Append { key, batch, open } => {
                let opens = open.is_some();
                let log = match (logs.entry(key), open) {
                    (Entry::Occupied(e), _) => e.into_mut(),
                    (Entry::Vacant(e), Some((paths, on_durable))) => e.insert(Open {
                        w: LogWriter::new(paths),
                        capped: false,
                        shared: Arc::new(Shared {
                            key,
                            on_durable,
                            files: OnceLock::new(),
                            lines: AtomicU64::new(0),
                            pending: AtomicBool::new(false),
                            failed: OnceLock::new(),
                            announced: AtomicU64::new(0),
                        }),
                        holders: 0,
                    }),
                    // A stream's first batch opens its log, and a log stays open
                    // until its last stream closes: this cannot happen.
                    (Entry::Vacant(_), None) => {
                        tracing::error!(run = key.0, step = key.1, "a batch for a log not open");
                        continue;
                    }
                };
                if opens {
                    log.holders += 1;
                }
                let sh = &log.shared;
                if sh.failed.get().is_some() || log.capped {
                    continue;
                }
                let cap = max_bytes.load(Ordering::Relaxed);
                let (batch, note) = fit(batch, log.w.bytes(), cap);
                log.capped = note.is_some();
                let mut failed = false;
                for b in std::iter::once(batch).chain(note) {
                    if b.count == 0 {
                        continue;
                    }
                    if let Err(e) = log.w.append(&b.data, b.count, b.ts, b.stream) {
                        sh.fail("writing", e);
                        failed = true;
                        break;
                    }
                    written.fetch_add(b.data.len() as u64, Ordering::Relaxed);
                }
                if failed {
                    continue;
                }
                if sh.files.get().is_none()
                    && let Some(h) = log.w.sync_handle()
                {
                    sh.files.set(h).ok();
                }
                sh.lines.store(log.w.lines(), Ordering::SeqCst);
                if !sh.pending.swap(true, Ordering::SeqCst)
                    && sync_tx
                        .send(SyncMsg::Dirty(sh.clone(), Instant::now()))
                        .is_err()
                {
                    sh.fail(
                        "syncing",
                        io::Error::other("the log sync thread has stopped"),
                    );
                }
            }
            Msg::Close { key, done } => match logs.get_mut(&key) {
                Some(log) => {
                    let shared = log.shared.clone();
                    log.holders = log.holders.saturating_sub(1);
                    if log.holders == 0 {
                        logs.remove(&key);
                    }
                    if let Err(e) = sync_tx.send(SyncMsg::Close(shared, done))
                        && let SyncMsg::Close(shared, done) = e.0
                    {
                        shared.fail(
                            "syncing",
                            io::Error::other("the log sync thread has stopped"),
                        );
                        done(shared.result());
                    }
                }
                None => done(Ok(0)),
            },
        }
    }
    // Every sender is gone (a stream always closes); the sync thread syncs what is
    // left and ends.
    drop(sync_tx);
    if let Ok(t) = syncer {
        t.join().ok();
    }
}

/// What of `batch` a log of `bytes` bytes keeps under a cap of `cap` bytes (0: no
/// cap): whole lines while they fit; once one does not, the rest goes and a note of
/// pipedeck's says so (the log ends a note's length past the cap).
fn fit(mut batch: Batch, bytes: u64, cap: u64) -> (Batch, Option<Batch>) {
    if cap == 0 || bytes.saturating_add(batch.data.len() as u64) <= cap {
        return (batch, None);
    }
    let room = cap.saturating_sub(bytes) as usize;
    let keep =
        memchr::memrchr(b'\n', &batch.data[..room.min(batch.data.len())]).map_or(0, |i| i + 1);
    batch.data.truncate(keep);
    batch.count = memchr::memchr_iter(b'\n', &batch.data).count() as u64;
    let note = Batch {
        data: format!(
            "pipedeck: this step's log reached max_log_bytes ({}); the rest of its output is discarded\n",
            crate::domain::bytes::format_bytes(cap)
        )
        .into_bytes(),
        count: 1,
        ts: batch.ts,
        stream: b'p',
    };
    (batch, Some(note))
}

/// The sync thread: fsyncs each log [`SYNC_EVERY`] after its first unsynced lines
/// were written (or at once when a stream closes) and announces them.
fn sync_loop(rx: Receiver<SyncMsg>) {
    // Dirty logs by address (a key may be reopened while its old files still wait).
    let mut dirty: HashMap<*const Shared, (Arc<Shared>, Instant)> = HashMap::new();
    loop {
        let due = dirty
            .values()
            .map(|(_, t)| *t)
            .min()
            .map(|t| t + SYNC_EVERY);
        let msg = match due {
            Some(due) => rx.recv_timeout(due.saturating_duration_since(Instant::now())),
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        match msg {
            Ok(SyncMsg::Dirty(sh, since)) => {
                dirty.entry(Arc::as_ptr(&sh)).or_insert((sh, since));
            }
            Ok(SyncMsg::Close(sh, done)) => {
                dirty.remove(&Arc::as_ptr(&sh));
                sh.sync();
                done(sh.result());
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        let now = Instant::now();
        dirty.retain(|_, (sh, since)| {
            let due = now >= *since + SYNC_EVERY;
            if due {
                sh.sync();
            }
            !due
        });
    }
    for (sh, _) in dirty.into_values() {
        sh.sync();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::LogStore;
    use std::sync::atomic::{AtomicU64, Ordering};

    fn lines(from: u64, n: u64) -> Vec<u8> {
        (from..from + n)
            .flat_map(|i| format!("line {i}\n").into_bytes())
            .collect()
    }

    fn close(s: LogStream) -> io::Result<u64> {
        let (tx, rx) = std::sync::mpsc::channel();
        s.close(Box::new(move |r| tx.send(r).unwrap()));
        rx.recv().unwrap()
    }

    #[test]
    fn batches_from_two_streams_land_in_order_with_their_index_and_are_announced() {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::new(dir.path().to_path_buf());
        let seen = Arc::new(AtomicU64::new(0));
        let s2 = seen.clone();
        let on: OnDurable = Arc::new(move |n| s2.store(n, Ordering::SeqCst));
        let mut note = store.stream(1, 1, on.clone()).unwrap();
        note.note("before\nthe step").unwrap();
        let mut out = store.stream(1, 1, on.clone()).unwrap();
        let mut at = 1;
        for (k, n) in [4095u64, 1, 3, 9000].into_iter().enumerate() {
            let batch = Batch {
                data: lines(at, n),
                count: n,
                ts: 1000 + k as i64,
                stream: b'o',
            };
            out.append(batch).unwrap();
            at += n;
        }
        assert_eq!(close(note).unwrap(), at);
        assert_eq!(seen.load(Ordering::SeqCst), at);
        assert_eq!(close(out).unwrap(), at);
        // Nothing sent: nothing opened, nothing announced.
        let silent = store.stream(1, 2, on).unwrap();
        assert_eq!(close(silent).unwrap(), 0);
        assert!(!dir.path().join("1/2.log").exists());
        let got = store.read(1, 1, 0, 2).unwrap();
        assert_eq!(
            (got[0].text.as_str(), got[0].stream),
            ("before the step", 'p')
        );
        assert_eq!((got[1].text.as_str(), got[1].ts), ("line 1", 1000));
        for from in [4095, 4096, 4097, 8192, at - 1] {
            let l = &store.read(1, 1, from, 1).unwrap()[0];
            assert_eq!((l.n, l.text.clone()), (from, format!("line {from}")));
        }
        assert_eq!(store.line_count(1, 1).unwrap(), at);
        // The index is the one a repair rebuilds from the log.
        let idx = std::fs::read(dir.path().join("1/1.idx")).unwrap();
        assert_eq!(idx.len(), 4 * 8);
        std::fs::remove_file(dir.path().join("1/1.idx")).unwrap();
        assert_eq!(store.repair(1, 1).unwrap(), at);
        assert_eq!(std::fs::read(dir.path().join("1/1.idx")).unwrap(), idx);
    }

    #[test]
    fn lines_are_durable_and_announced_within_the_sync_interval() {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::new(dir.path().to_path_buf());
        let (tx, rx) = std::sync::mpsc::channel();
        let tx = Mutex::new(tx);
        let on: OnDurable = Arc::new(move |n| tx.lock().unwrap().send(n).unwrap());
        let mut s = store.stream(2, 1, on).unwrap();
        let t = Instant::now();
        s.append(Batch {
            data: lines(0, 3),
            count: 3,
            ts: 1,
            stream: b'e',
        })
        .unwrap();
        // Announced without a close, once synced: within the interval (and some slack).
        assert_eq!(rx.recv_timeout(SYNC_EVERY * 4).unwrap(), 3);
        assert!(t.elapsed() >= SYNC_EVERY / 2);
        assert_eq!(close(s).unwrap(), 3);
        // No second announcement for lines already announced.
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn a_log_that_cannot_be_written_fails_its_stream_and_spares_the_others() {
        let dir = tempfile::tempdir().unwrap();
        // A file where the run's directory should be.
        std::fs::write(dir.path().join("5"), "").unwrap();
        let store = LogStore::new(dir.path().to_path_buf());
        let on: OnDurable = Arc::new(|_| {});
        let mut bad = store.stream(5, 1, on.clone()).unwrap();
        let mut good = store.stream(6, 1, on).unwrap();
        for s in [&mut bad, &mut good] {
            s.note("x").unwrap();
            s.note("y").unwrap();
        }
        let e = close(bad).unwrap_err();
        assert!(e.to_string().contains("writing the log"), "{e}");
        assert_eq!(close(good).unwrap(), 2);
    }
}
