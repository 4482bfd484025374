//! A step as a real child process in its own process group, its output captured
//! line by line, masked, timestamped and appended to the step's log in batches.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use memchr::memmem;
use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::spawn;
use crate::domain::{Event, now_ms};
use crate::store::logs::{LogStore, LogWriter, release_cached};

/// Longest line kept whole (longer ones are split into lines of this size).
const READ_BUF: usize = 1024 * 1024;
/// The most one read takes from a pipe. Lines are masked, counted and written while
/// still in the CPU's cache: against 1 MiB reads, a 1 GiB capture took 0.81-0.93 s
/// instead of 1.0-1.19 s (six alternating runs).
const READ_CHUNK: usize = 128 * 1024;
/// The kernel's default pipe buffer: a read that takes this much at once means the
/// step streams.
const DEFAULT_PIPE: usize = 64 * 1024;
/// The pipe buffer a step that streams gets (the kernel's default is 64 KiB): the
/// step writes on while pipedeck stores, with fewer wakeups on both sides.
const PIPE_SIZE: i32 = 1024 * 1024;
/// How long a read of a step that streams first polls its empty pipe before the
/// task sleeps. The step's next write usually lands within microseconds; sleeping
/// costs a wakeup (a cross-CPU interrupt) per write instead: 14,000 sleeps for 1 GiB
/// on a 2-vCPU VM, against 2,000 with the poll. A 1 GiB capture took 0.84-0.94 s
/// instead of 0.96-1.06 s (medians of three series of 9-10 runs in rotated order;
/// in one series 20 us also beat 5, 10 and 40).
const SPIN_FOR: Duration = Duration::from_micros(20);
/// A line read is durable within this long.
const SYNC_EVERY: Duration = Duration::from_millis(250);
/// How soon a due fsync is tried again while the one before is still running.
const SYNC_RETRY: Duration = Duration::from_millis(10);
/// Log events are published at most this often per step.
const PUBLISH_EVERY: Duration = Duration::from_millis(25);
/// After the step exits (and its group is killed), how long its pipes may stay open:
/// only a process that left the group can hold them, and it is not waited for.
const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(2);

/// What to run.
#[derive(Debug, Clone)]
pub struct ProcSpec {
    /// A shell command from the project file (trusted); untrusted values come in `env`.
    pub command: String,
    pub cwd: PathBuf,
    /// Variables set over the engine's environment: those of the run (shared by its
    /// steps), then the step's own.
    pub env: Arc<spawn::Env>,
    pub extra_env: Vec<(String, String)>,
    pub kill_grace: Duration,
    /// Stop with SIGINT first (Terraform releases its state lock), not SIGTERM.
    pub interrupt_first: bool,
}

/// Where the output goes.
#[derive(Clone)]
pub struct LogTarget {
    pub logs: LogStore,
    pub run_id: i64,
    pub step_id: i64,
    pub events: broadcast::Sender<Event>,
    pub masker: Arc<Masker>,
}

/// How the process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Exited(i32),
    /// Killed by a signal we did not send.
    Signalled(i32),
    /// Stopped because `stop` fired (SIGTERM, then SIGKILL after the grace).
    Stopped,
    /// The process could not start, or its log could not be written.
    Error(String),
}

impl Outcome {
    pub fn success(&self) -> bool {
        *self == Outcome::Exited(0)
    }

    pub fn describe(&self) -> String {
        match self {
            Outcome::Exited(c) => format!("exited with code {c}"),
            Outcome::Signalled(s) => format!("killed by signal {s}"),
            Outcome::Stopped => "stopped by pipedeck".to_string(),
            Outcome::Error(e) => e.clone(),
        }
    }

    pub fn exit_code(&self) -> Option<i32> {
        match self {
            Outcome::Exited(c) => Some(*c),
            _ => None,
        }
    }
}

/// Replaces every secret value with `***`.
#[derive(Default)]
pub struct Masker {
    finders: Vec<memmem::Finder<'static>>,
}

impl Masker {
    pub fn new(secrets: &[String]) -> Self {
        let mut values: Vec<&String> = secrets.iter().filter(|s| !s.is_empty()).collect();
        // Longest first, so a secret containing another is masked whole.
        values.sort_by_key(|s| std::cmp::Reverse(s.len()));
        Self {
            finders: values
                .into_iter()
                .map(|s| memmem::Finder::new(s.as_bytes()).into_owned())
                .collect(),
        }
    }

    /// `data` with every secret masked; borrowed when nothing matched.
    pub fn apply<'a>(&self, data: &'a [u8]) -> std::borrow::Cow<'a, [u8]> {
        let mut cur = std::borrow::Cow::Borrowed(data);
        for f in &self.finders {
            if f.find(&cur).is_none() {
                continue;
            }
            let mut out = Vec::with_capacity(cur.len());
            let mut last = 0;
            for at in f.find_iter(&cur) {
                if at < last {
                    continue;
                }
                out.extend_from_slice(&cur[last..at]);
                out.extend_from_slice(b"***");
                last = at + f.needle().len();
            }
            out.extend_from_slice(&cur[last..]);
            cur = std::borrow::Cow::Owned(out);
        }
        cur
    }
}

/// Sends `sig` to the whole process group `pgid`.
pub fn signal_group(pgid: i32, sig: i32) {
    if pgid > 0 {
        // SAFETY: killpg has no memory-safety preconditions; a stale group gives ESRCH.
        unsafe {
            libc::killpg(pgid, sig);
        }
    }
}

/// Complete lines, masked, ready for the log: `count` of them, read at `ts` from
/// `stream`. Borrowed from the pump's buffer unless a secret had to be masked.
struct Lines<'a> {
    data: std::borrow::Cow<'a, [u8]>,
    count: u64,
    ts: i64,
    stream: u8,
}

/// Masks the complete lines in `region` (ending in `\n`).
fn mask_lines<'a>(region: &'a [u8], stream: u8, masker: &Masker) -> Lines<'a> {
    let data = masker.apply(region);
    let count = memchr::memchr_iter(b'\n', &data).count() as u64;
    Lines {
        data,
        count,
        ts: now_ms(),
        stream,
    }
}

/// One of the child's output pipes, read on the runtime's reactor, cut into lines.
struct Pump {
    src: Option<pipe::Receiver>,
    /// Whether the pipe's buffer may still be enlarged (once the step streams).
    small_pipe: bool,
    /// Whether the next read polls the pipe first ([`SPIN_FOR`]): off once a poll
    /// found nothing, on again once a read finds a default pipe's worth waiting.
    spin: bool,
    stream: u8,
    buf: Vec<u8>,
    filled: usize,
    /// The last read filled all the room there was: more is waiting.
    full: bool,
}

impl Pump {
    fn new(src: Option<pipe::Receiver>, stream: u8) -> Self {
        Self {
            src,
            small_pipe: true,
            spin: true,
            stream,
            // Start small (most steps print little); grow to READ_BUF for steps that stream.
            buf: Vec::new(),
            filled: 0,
            full: false,
        }
    }

    fn open(&self) -> bool {
        self.src.is_some()
    }

    /// Reads what the pipe has (cancel safe: a read that did not finish took nothing).
    async fn read(&mut self) -> io::Result<usize> {
        self.grow();
        let Some(src) = self.src.as_mut() else {
            return Ok(0);
        };
        let end = self.buf.len().min(self.filled + READ_CHUNK);
        // Only a step whose pipe was enlarged (it streams) is worth polling for, and
        // only while polls pay: a step that went quiet costs one poll, not one a line.
        let polled = (self.spin && !self.small_pipe)
            .then(|| spin_read(src, &mut self.buf[self.filled..end]));
        let n = match polled {
            Some(Some(n)) => {
                // A polled read bypasses the runtime: count it against the task's
                // budget, so that a flood still lets the engine's other tasks (the
                // API, other steps) run between reads.
                tokio::task::consume_budget().await;
                n
            }
            _ => {
                let n = src.read(&mut self.buf[self.filled..end]).await?;
                self.spin = (polled.is_none() && self.spin) || n >= DEFAULT_PIPE;
                n
            }
        };
        self.full = n == end - self.filled;
        Ok(n)
    }

    /// Makes room for the next read: a first small buffer, grown while a line needs it
    /// or the pipe holds more than a read takes.
    fn grow(&mut self) {
        if self.buf.is_empty() {
            self.buf.resize(4096, 0);
        } else if (self.full || self.filled == self.buf.len()) && self.buf.len() < READ_BUF {
            let len = (self.buf.len() * 4).min(READ_BUF);
            self.buf.resize(len, 0);
            // A read took a whole default pipe's worth: the step streams.
            if len > DEFAULT_PIPE
                && std::mem::take(&mut self.small_pipe)
                && let Some(src) = &self.src
            {
                use std::os::fd::AsRawFd;
                // SAFETY: F_SETPIPE_SZ on a pipe this pump owns; failing (over the
                // system's limit) leaves the default, which works.
                unsafe { libc::fcntl(src.as_raw_fd(), libc::F_SETPIPE_SZ, PIPE_SIZE) };
            }
        }
    }

    /// Takes `n` more bytes in; returns how far the buffer holds complete lines, if
    /// it does. A line longer than the cap is cut there (it gets a `\n` of its own).
    fn took(&mut self, n: usize) -> Option<usize> {
        let scan_from = self.filled;
        self.filled += n;
        if let Some(rel) = memchr::memrchr(b'\n', &self.buf[scan_from..self.filled]) {
            return Some(scan_from + rel + 1);
        }
        if self.filled == self.buf.len() && self.buf.len() >= READ_BUF {
            self.buf.push(b'\n');
            self.filled += 1;
            return Some(self.filled);
        }
        None
    }

    /// End of output: the pipe is closed; an unterminated last line is completed.
    /// Returns how far the buffer holds complete lines, if anything is left.
    fn finish(&mut self) -> Option<usize> {
        self.src = None;
        if self.filled == 0 {
            return None;
        }
        if self.filled == self.buf.len() {
            self.buf.push(b'\n');
        } else {
            self.buf[self.filled] = b'\n';
        }
        self.filled += 1;
        Some(self.filled)
    }

    /// The complete lines up to `end` (from [`took`](Self::took) or
    /// [`finish`](Self::finish)), masked.
    fn lines(&self, end: usize, masker: &Masker) -> Lines<'_> {
        mask_lines(&self.buf[..end], self.stream, masker)
    }

    /// Drops the lines up to `end`, once stored; keeps the partial line after them.
    fn consume(&mut self, end: usize) {
        self.buf.copy_within(end..self.filled, 0);
        self.filled -= end;
        self.buf.truncate(READ_BUF.max(self.filled));
    }
}

/// Reads `src` without waiting, trying again for up to [`SPIN_FOR`] while it is empty,
/// yielding the core between tries to whatever else waits for it (the dashboard, the
/// terminal); `None` if nothing came (or the read failed: the awaited read that
/// follows reports it).
fn spin_read(src: &pipe::Receiver, dst: &mut [u8]) -> Option<usize> {
    use std::os::fd::AsRawFd;
    let started = Instant::now();
    loop {
        // SAFETY: `dst` is valid for writes of `dst.len()` bytes; the descriptor is
        // the pipe `src` owns, non-blocking. A direct read leaves the reactor's
        // readiness stale at worst, which the awaited read clears.
        let n = unsafe { libc::read(src.as_raw_fd(), dst.as_mut_ptr().cast(), dst.len()) };
        if n >= 0 {
            return Some(n as usize);
        }
        if io::Error::last_os_error().kind() != io::ErrorKind::WouldBlock
            || started.elapsed() >= SPIN_FOR
        {
            return None;
        }
        // SAFETY: sched_yield has no preconditions.
        unsafe { libc::sched_yield() };
    }
}

/// The step's log as it is written: appends, and publishes and fsyncs on a schedule.
struct Sink<'a> {
    w: LogWriter,
    t: &'a LogTarget,
    /// Lines written but not yet announced, and since when.
    unpublished: Option<Instant>,
    /// Bytes written but not yet fsynced, and since when.
    dirty: Option<Instant>,
    syncing: Option<std::thread::JoinHandle<()>>,
    /// Log bytes before this offset were fsynced and dropped from the page cache.
    released: u64,
}

impl Sink<'_> {
    fn append(&mut self, l: Lines<'_>) -> io::Result<()> {
        if l.count == 0 {
            return Ok(());
        }
        self.w.append(&l.data, l.count, l.ts, l.stream)?;
        let now = Instant::now();
        self.unpublished.get_or_insert(now);
        self.dirty.get_or_insert(now);
        self.tick(now)
    }

    /// When the next publish or fsync is due, if one is pending.
    fn next_due(&self) -> Option<Instant> {
        let p = self.unpublished.map(|t| t + PUBLISH_EVERY);
        let s = self.dirty.map(|t| t + SYNC_EVERY);
        earliest(p, s)
    }

    /// Publishes and fsyncs what is due.
    fn tick(&mut self, now: Instant) -> io::Result<()> {
        if self.unpublished.is_some_and(|t| now >= t + PUBLISH_EVERY) {
            publish(self.t, self.w.lines());
            self.unpublished = None;
        }
        // Every SYNC_EVERY, fsync what has been written, on a thread of its own: the
        // capture goes on at memory speed while the disk catches up. One at a time.
        if self.dirty.is_some_and(|t| now >= t + SYNC_EVERY) {
            if self.syncing.as_ref().is_none_or(|s| s.is_finished()) {
                // Once durable, the bytes written so far leave the page cache.
                let (from, to) = (self.released, self.w.bytes());
                self.released = to;
                self.syncing = self.spawn_sync(from, to)?;
                self.dirty = None;
            } else {
                // The last fsync is still at it (a slow disk): look again shortly,
                // rather than at once and over and over.
                self.dirty = (now + SYNC_RETRY).checked_sub(SYNC_EVERY).or(self.dirty);
            }
        }
        Ok(())
    }

    /// At the step's end: what is not durable yet is fsynced too, on a thread of its
    /// own (the step's end waits for no disk). Those pages stay cached: they are the
    /// lines a reader asks for next.
    fn sync_rest(&mut self) -> io::Result<()> {
        if self.dirty.take().is_some() {
            self.spawn_sync(0, 0)?;
        }
        Ok(())
    }

    /// Starts an fsync of the log's files on a thread; once the log is durable, its
    /// cached pages in `[from, to)` are dropped.
    fn spawn_sync(&self, from: u64, to: u64) -> io::Result<Option<std::thread::JoinHandle<()>>> {
        let files = self.w.sync_handles()?;
        if files.is_empty() {
            return Ok(None);
        }
        Ok(Some(std::thread::spawn(move || {
            if let Some((log, rest)) = files.split_first() {
                if log.sync_data().is_ok() {
                    release_cached(log, from, to);
                }
                for f in rest {
                    let _ = f.sync_data();
                }
            }
        })))
    }
}

/// Stores the complete lines of `pump` up to `end` and drops them from its buffer.
fn store(sink: &mut Sink<'_>, pump: &mut Pump, end: usize, masker: &Masker) -> io::Result<()> {
    let stored = sink.append(pump.lines(end, masker));
    pump.consume(end);
    stored
}

fn publish(t: &LogTarget, total_lines: u64) {
    let _ = t.events.send(Event::Log {
        run_id: t.run_id,
        step_id: t.step_id,
        total_lines,
    });
}

/// Writes one note line into a step's log and publishes it (used for steps that do not run).
pub fn note(t: &LogTarget, text: &str) -> std::io::Result<()> {
    let mut w = t.logs.writer(t.run_id, t.step_id)?;
    w.note(text)?;
    w.sync()?;
    publish(t, w.lines());
    Ok(())
}

/// The earlier of two optional instants.
fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Runs `spec` to the end, or until `stop` fires; returns how it ended and when (unix
/// ms). `slot` (the step's execution slot) is released as soon as the process group
/// is gone, before the log is finished: the end time is taken before that, so a step
/// that takes over the slot never seems to start before this one ended.
///
/// One task does it all on the runtime: the child's exit comes from its pidfd and its
/// pipes are read on the reactor, so a step costs no thread handoffs of its own.
pub async fn run(
    spec: ProcSpec,
    target: LogTarget,
    stop: CancellationToken,
    mut slot: Option<tokio::sync::OwnedSemaphorePermit>,
) -> (Outcome, i64) {
    let writer = match target.logs.writer(target.run_id, target.step_id) {
        Ok(w) => w,
        Err(e) => {
            return (
                Outcome::Error(format!("cannot open the step's log: {e}")),
                now_ms(),
            );
        }
    };
    let started = spawn::Env::new(&spec.extra_env)
        .and_then(|extra| spawn::spawn(&spawn::argv(&spec.command), &spec.cwd, &spec.env, &extra));
    let mut child = match started {
        Ok(c) => c,
        Err(e) => {
            let why = format!("cannot start `{}`: {e}", spec.command);
            return (Outcome::Error(why), now_ms());
        }
    };
    let pgid = child.pid;
    let mut out = Pump::new(child.stdout.take(), b'o');
    let mut err = Pump::new(child.stderr.take(), b'e');
    let mut sink = Sink {
        w: writer,
        t: &target,
        unpublished: None,
        dirty: None,
        syncing: None,
        released: 0,
    };
    let masker = target.masker.clone();
    let mut status = None;
    let mut ended_at = 0;
    let mut stopped = false;
    // After SIGTERM: when to send SIGKILL. After the exit: how long output may still
    // come from a process that left the group.
    let mut deadline: Option<Instant> = None;
    let mut failure: Option<io::Error> = None;
    // One timer and one cancellation wait for the whole step: set up afresh for each
    // read, they cost about 3% of the engine's time while a step floods.
    let timer = tokio::time::sleep_until(tokio::time::Instant::now());
    tokio::pin!(timer);
    let mut timer_at: Option<Instant> = None;
    let cancelled = stop.cancelled();
    tokio::pin!(cancelled);
    while status.is_none() || out.open() || err.open() {
        let due = earliest(deadline, sink.next_due());
        if due != timer_at {
            if let Some(at) = due {
                timer.as_mut().reset(at.into());
            }
            timer_at = due;
        }
        let (read, from_out) = tokio::select! {
            r = out.read(), if out.open() => (r, true),
            r = err.read(), if err.open() => (r, false),
            s = child.wait(), if status.is_none() => {
                // No orphans: whatever the step left behind in its group goes too.
                signal_group(pgid, libc::SIGKILL);
                ended_at = now_ms();
                drop(slot.take());
                status = Some(s);
                deadline = Some(Instant::now() + DRAIN_AFTER_EXIT);
                continue;
            }
            _ = &mut cancelled, if !stopped && status.is_none() => {
                stopped = true;
                signal_group(pgid, if spec.interrupt_first { libc::SIGINT } else { libc::SIGTERM });
                deadline = Some(Instant::now() + spec.kill_grace);
                continue;
            }
            _ = &mut timer, if timer_at.is_some() => {
                let now = Instant::now();
                if deadline.is_some_and(|d| now >= d) {
                    deadline = None;
                    if status.is_none() {
                        signal_group(pgid, libc::SIGKILL);
                    } else {
                        // Output held open by a process outside the group: stop reading.
                        for pump in [&mut out, &mut err] {
                            if let Some(end) = pump.finish()
                                && let Err(e) = store(&mut sink, pump, end, &masker)
                            {
                                failure.get_or_insert(e);
                            }
                        }
                    }
                }
                if let Err(e) = sink.tick(now) {
                    failure.get_or_insert(e);
                }
                continue;
            }
        };
        let pump = if from_out { &mut out } else { &mut err };
        let end = match read {
            Ok(0) | Err(_) => pump.finish(),
            Ok(n) => pump.took(n),
        };
        if let Some(end) = end
            && let Err(e) = store(&mut sink, pump, end, &masker)
        {
            failure.get_or_insert(e);
        }
    }
    // Disk blocks reserved ahead of a large log and not used go back (failing would
    // cost disk space only, not lines).
    let _ = sink.w.release();
    // Written means safe from an engine crash; the last lines are fsynced as well, so
    // that they too are safe from a machine crash within SYNC_EVERY.
    if let Err(e) = sink.sync_rest() {
        failure.get_or_insert(e);
    }
    let outcome = match status {
        Some(Ok(_)) if stopped => Outcome::Stopped,
        Some(Ok(st)) => {
            use std::os::unix::process::ExitStatusExt as _;
            match (st.code(), st.signal()) {
                (Some(c), _) => Outcome::Exited(c),
                (None, Some(s)) => Outcome::Signalled(s),
                _ => Outcome::Error("unknown exit status".into()),
            }
        }
        Some(Err(e)) => Outcome::Error(format!("waiting for the process failed: {e}")),
        None => Outcome::Error("the process was lost".into()),
    };
    if let Some(e) = failure {
        let why = format!("writing the step's log failed: {e}");
        return (Outcome::Error(why), ended_at);
    }
    // A step that printed nothing has nothing to announce.
    if sink.w.wrote() {
        publish(&target, sink.w.lines());
    }
    (outcome, ended_at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn spin_read_takes_what_the_pipe_has_and_gives_up_when_it_stays_empty() {
        let (mut tx, rx) = pipe::pipe().unwrap();
        let mut buf = [0u8; 16];
        // Empty: gives up (after SPIN_FOR) and leaves the read to the reactor.
        let started = Instant::now();
        assert_eq!(spin_read(&rx, &mut buf), None);
        assert!(started.elapsed() >= SPIN_FOR);
        tokio::io::AsyncWriteExt::write_all(&mut tx, b"abc\n")
            .await
            .unwrap();
        assert_eq!(spin_read(&rx, &mut buf), Some(4));
        assert_eq!(&buf[..4], b"abc\n");
        // The writer gone: end of output.
        drop(tx);
        assert_eq!(spin_read(&rx, &mut buf), Some(0));
    }

    #[tokio::test]
    async fn a_pump_stops_polling_once_a_poll_finds_nothing_and_resumes_when_output_piles_up() {
        use tokio::io::AsyncWriteExt;
        let (mut tx, rx) = pipe::pipe().unwrap();
        let mut p = Pump::new(Some(rx), b'o');
        p.small_pipe = false; // as if the step streamed
        p.buf.resize(READ_BUF, 0);
        // Output waiting: the poll takes it and polling stays on.
        tx.write_all(b"ab\n").await.unwrap();
        assert_eq!(p.read().await.unwrap(), 3);
        assert!(p.spin);
        // Nothing comes while the pump polls (the writer writes only once the read
        // waits): polling goes off.
        let (n, _) = tokio::join!(p.read(), async {
            tokio::task::yield_now().await;
            tx.write_all(b"cd\n").await.unwrap();
        });
        assert_eq!(n.unwrap(), 3);
        assert!(!p.spin);
        // A default pipe's worth waiting at once: the step streams again.
        tx.write_all(&[b'x'; DEFAULT_PIPE]).await.unwrap();
        assert_eq!(p.read().await.unwrap(), DEFAULT_PIPE);
        assert!(p.spin);
    }

    #[test]
    fn masks_every_secret_occurrence() {
        let m = Masker::new(&["hunter2".into(), "".into(), "hunter2x".into()]);
        assert_eq!(&*m.apply(b"a hunter2x b hunter2\n"), b"a *** b ***\n");
        assert!(matches!(m.apply(b"clean\n"), std::borrow::Cow::Borrowed(_)));
    }

    /// Feeds `chunks` through a pump as if read from a pipe; the lines it hands over,
    /// and the line counts it gave for them.
    fn cut(chunks: &[&[u8]]) -> Vec<String> {
        let mut p = Pump::new(None, b'o');
        let m = Masker::default();
        let mut out = Vec::new();
        let mut keep = |p: &mut Pump, end: Option<usize>| {
            if let Some(end) = end {
                let l = p.lines(end, &m);
                let text = String::from_utf8(l.data.to_vec()).unwrap();
                assert_eq!(l.count as usize, text.lines().count());
                assert_eq!(l.stream, b'o');
                out.extend(text.lines().map(str::to_string));
                p.consume(end);
            }
        };
        for c in chunks {
            let mut c: &[u8] = c;
            while !c.is_empty() {
                // What read() does: make room, then take in what fits.
                p.grow();
                let n = c.len().min(p.buf.len() - p.filled);
                p.buf[p.filled..p.filled + n].copy_from_slice(&c[..n]);
                c = &c[n..];
                let end = p.took(n);
                keep(&mut p, end);
            }
        }
        let end = p.finish();
        keep(&mut p, end);
        out
    }

    #[test]
    fn pump_cuts_lines_across_reads_and_caps_long_ones() {
        assert_eq!(cut(&[b"a\nb", b"c\nd"]), ["a", "bc", "d"]);
        assert_eq!(cut(&[b"", b"x\n"]), ["x"]);
        // A line just under the cap stays whole even when it fills the buffer.
        let almost = vec![b'y'; READ_BUF - 1];
        let mut feed = almost.clone();
        feed.extend_from_slice(b"\nz\n");
        assert_eq!(
            cut(&[&feed]),
            [String::from_utf8(almost).unwrap(), "z".to_string()]
        );
        // A longer one is cut at the cap, twice over, and what follows is whole.
        let long = vec![b'w'; 2 * READ_BUF + 10];
        let got = cut(&[&long, b"\nafter\n"]);
        assert_eq!(got.len(), 4);
        assert_eq!(
            (got[0].len(), got[1].len(), got[2].len()),
            (READ_BUF, READ_BUF, 10)
        );
        assert_eq!(got[3], "after");
        // An unterminated last line that exactly fills the buffer is kept whole.
        assert_eq!(
            cut(&[&[b'q'; 4096]]),
            [String::from_utf8(vec![b'q'; 4096]).unwrap()]
        );
    }

    #[test]
    fn masked_lines_are_owned_only_when_a_secret_was_there() {
        let m = Masker::new(&["s3cret".into()]);
        let clean = mask_lines(b"one\ntwo\n", b'e', &m);
        assert!(matches!(clean.data, std::borrow::Cow::Borrowed(_)));
        assert_eq!((clean.count, clean.stream), (2, b'e'));
        let masked = mask_lines(b"a s3cret b\n", b'o', &m);
        assert_eq!(&*masked.data, b"a *** b\n");
        assert_eq!(masked.count, 1);
    }
}
