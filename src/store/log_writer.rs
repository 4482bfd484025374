//! The log-writer thread: one per [`LogStore`](super::LogStore), owning every open
//! step log. Steps hand it batches of masked, timestamped lines over one bounded
//! channel; it appends them (and their index and `.meta` entries), fsyncs each dirty
//! log within [`SYNC_EVERY`] of its first unsynced batch, and then tells the step's
//! `on_durable` how many lines are durable. When it falls behind, the channel fills
//! and the steps' readers wait in `send`: a step slows down, no line is lost, and
//! memory stays bounded (at most [`QUEUE`] batches in flight).

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::io;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::logs::{LogWriter, Paths};

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
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Writer")
    }
}

impl Writer {
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
                std::thread::Builder::new()
                    .name("pd-log-writer".into())
                    .spawn(move || run(r))?;
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

/// An open log on the writer thread.
struct Open {
    w: LogWriter,
    on_durable: OnDurable,
    /// Streams that have it open.
    holders: usize,
    /// Since when it holds lines not yet fsynced.
    dirty: Option<Instant>,
    /// The line count last announced.
    announced: u64,
    /// The first write or sync error: later batches are dropped (the step is told).
    failed: Option<String>,
}

impl Open {
    /// Fsyncs what was written, then announces it.
    fn sync(&mut self, key: Key) {
        if self.dirty.take().is_none() || self.failed.is_some() {
            return;
        }
        match self.w.sync() {
            Ok(()) => {
                if self.w.lines() != self.announced {
                    self.announced = self.w.lines();
                    (self.on_durable)(self.announced);
                }
            }
            Err(e) => self.fail(key, "syncing", e),
        }
    }

    fn fail(&mut self, key: Key, what: &str, e: io::Error) {
        tracing::error!(run = key.0, step = key.1, "{what} a step's log failed: {e}");
        self.failed
            .get_or_insert_with(|| format!("{what} the log: {e}"));
    }
}

fn run(rx: Receiver<Msg>) {
    let mut logs: HashMap<Key, Open> = HashMap::new();
    loop {
        let due = logs
            .values()
            .filter_map(|l| l.dirty)
            .min()
            .map(|t| t + SYNC_EVERY);
        let msg = match due {
            Some(due) => rx.recv_timeout(due.saturating_duration_since(Instant::now())),
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        match msg {
            Ok(Msg::Append { key, batch, open }) => {
                let opens = open.is_some();
                let log = match (logs.entry(key), open) {
                    (Entry::Occupied(e), _) => e.into_mut(),
                    (Entry::Vacant(e), Some((paths, on_durable))) => e.insert(Open {
                        w: LogWriter::new(paths),
                        on_durable,
                        holders: 0,
                        dirty: None,
                        announced: 0,
                        failed: None,
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
                if log.failed.is_none() {
                    match log
                        .w
                        .append(&batch.data, batch.count, batch.ts, batch.stream)
                    {
                        Ok(()) => {
                            log.dirty.get_or_insert_with(Instant::now);
                        }
                        Err(e) => log.fail(key, "writing", e),
                    }
                }
            }
            Ok(Msg::Close { key, done }) => match logs.get_mut(&key) {
                Some(log) => {
                    log.sync(key);
                    let result = match &log.failed {
                        Some(why) => Err(io::Error::other(why.clone())),
                        None => Ok(log.w.lines()),
                    };
                    log.holders = log.holders.saturating_sub(1);
                    if log.holders == 0 {
                        logs.remove(&key);
                    }
                    done(result);
                }
                None => done(Ok(0)),
            },
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        let now = Instant::now();
        for (key, log) in &mut logs {
            if log.dirty.is_some_and(|t| now >= t + SYNC_EVERY) {
                log.sync(*key);
            }
        }
    }
    // Every sender is gone; a stream always closes, but sync what may be left.
    for (key, log) in &mut logs {
        log.sync(*key);
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
