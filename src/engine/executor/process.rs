//! A step as a real child process in its own process group, its output captured
//! line by line, masked, timestamped and appended to the step's log in batches.

use std::io::{ErrorKind, Read};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::time::{Duration, Instant};

use memchr::memmem;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::domain::{Event, now_ms};
use crate::store::logs::{LogStore, LogWriter, PREFIX_LEN, push_prefix};

/// Longest line kept whole; longer ones are split into records of this size.
const READ_BUF: usize = 128 * 1024;
/// A line read is durable within this long.
const SYNC_EVERY: Duration = Duration::from_millis(250);
/// Log events are published at most this often per step.
const PUBLISH_EVERY: Duration = Duration::from_millis(25);

/// What to run.
#[derive(Debug, Clone)]
pub struct ProcSpec {
    /// A shell command from the project file (trusted); untrusted values come in `env`.
    pub command: String,
    pub cwd: PathBuf,
    pub env: Vec<(String, String)>,
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

type Batch = (Vec<u8>, u64);

/// Formats the complete lines in `region` (ending in `\n`) as records.
fn format_lines(region: &[u8], stream: u8, masker: &Masker) -> Batch {
    let region = masker.apply(region);
    let count = memchr::memchr_iter(b'\n', &region).count();
    let mut out = Vec::with_capacity(region.len() + count * PREFIX_LEN);
    let mut prefix = Vec::with_capacity(PREFIX_LEN);
    push_prefix(&mut prefix, now_ms(), stream);
    let mut start = 0;
    for nl in memchr::memchr_iter(b'\n', &region) {
        out.extend_from_slice(&prefix);
        out.extend_from_slice(&region[start..=nl]);
        start = nl + 1;
    }
    (out, count as u64)
}

fn pump(mut src: impl Read, stream: u8, tx: SyncSender<Batch>, masker: Arc<Masker>) {
    // Start small (most steps print little); grow to READ_BUF for steps that stream.
    let mut buf = vec![0u8; 4096];
    let mut filled = 0;
    loop {
        if filled == buf.len() && buf.len() < READ_BUF {
            buf.resize((buf.len() * 4).min(READ_BUF), 0);
        }
        if filled == buf.len() {
            // A line longer than the cap: store what we have as one record.
            buf.push(b'\n');
            let batch = format_lines(&buf[..=filled], stream, &masker);
            buf.truncate(READ_BUF);
            filled = 0;
            if tx.send(batch).is_err() {
                return;
            }
        }
        let n = match src.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        let scan_from = filled;
        filled += n;
        if let Some(rel) = memchr::memrchr(b'\n', &buf[scan_from..filled]) {
            let last = scan_from + rel;
            let batch = format_lines(&buf[..=last], stream, &masker);
            buf.copy_within(last + 1..filled, 0);
            filled -= last + 1;
            if tx.send(batch).is_err() {
                return;
            }
        }
    }
    if filled > 0 {
        buf.truncate(filled);
        buf.push(b'\n');
        let _ = tx.send(format_lines(&buf, stream, &masker));
    }
}

fn write_loop(mut w: LogWriter, rx: Receiver<Batch>, t: &LogTarget) -> std::io::Result<LogWriter> {
    let mut last_sync = Instant::now();
    let mut last_pub = Instant::now();
    let (mut dirty, mut unpublished) = (false, false);
    let mut syncing: Option<std::thread::JoinHandle<()>> = None;
    loop {
        match rx.recv_timeout(PUBLISH_EVERY) {
            Ok((data, count)) => {
                w.append(&data, count)?;
                dirty = true;
                unpublished = true;
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        // Every SYNC_EVERY, fsync what has been written, on a thread of its own: the
        // capture goes on at memory speed while the disk catches up. One at a time.
        if dirty
            && last_sync.elapsed() >= SYNC_EVERY
            && syncing
                .as_ref()
                .is_none_or(|s: &std::thread::JoinHandle<()>| s.is_finished())
            && let Some((log, idx)) = w.sync_handles()?
        {
            syncing = Some(std::thread::spawn(move || {
                let _ = log.sync_data();
                let _ = idx.sync_data();
            }));
            dirty = false;
            last_sync = Instant::now();
        }
        if unpublished && last_pub.elapsed() >= PUBLISH_EVERY {
            publish(t, w.lines());
            unpublished = false;
            last_pub = Instant::now();
        }
    }
    Ok(w)
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

/// `sh -c COMMAND`, or, for a plain command with no shell syntax at all, the program
/// itself (as make does): one exec fewer per step.
fn command(line: &str) -> Command {
    let plain = |c: char| c.is_ascii_alphanumeric() || " _./=:,+-@%".contains(c);
    let mut words = line.split_ascii_whitespace();
    match words.next() {
        Some(prog) if line.chars().all(plain) && !prog.contains('=') => {
            let mut c = Command::new(prog);
            c.args(words);
            c
        }
        _ => {
            let mut c = Command::new("/bin/sh");
            c.arg("-c").arg(line);
            c
        }
    }
}

/// Runs `spec` to the end, or until `stop` fires. `slot` (the step's execution slot)
/// is released as soon as the process group is gone, before the log is finished.
pub async fn run(
    spec: ProcSpec,
    target: LogTarget,
    stop: CancellationToken,
    slot: Option<tokio::sync::OwnedSemaphorePermit>,
) -> Outcome {
    let writer = match target.logs.writer(target.run_id, target.step_id) {
        Ok(w) => w,
        Err(e) => return Outcome::Error(format!("cannot open the step's log: {e}")),
    };
    let mut cmd = command(&spec.command);
    cmd.current_dir(&spec.cwd)
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return Outcome::Error(format!("cannot start `{}`: {e}", spec.command)),
    };
    let pgid = child.id() as i32;
    let (tx, rx) = sync_channel::<Batch>(16);
    // Pumps and writer run on the blocking pool: its threads are reused from step to
    // step (a thread created per step costs more than /bin/true itself).
    use tokio::task::spawn_blocking as blocking;
    if let Some(out) = child.stdout.take() {
        let (tx, m) = (tx.clone(), target.masker.clone());
        blocking(move || pump(out, b'o', tx, m));
    }
    if let Some(err) = child.stderr.take() {
        let (tx, m) = (tx.clone(), target.masker.clone());
        blocking(move || pump(err, b'e', tx, m));
    }
    drop(tx);
    let t2 = target.clone();
    // The writer ends when both pumps have dropped their senders (end of output).
    let writer_task = blocking(move || write_loop(writer, rx, &t2));

    let mut waiter = tokio::task::spawn_blocking(move || child.wait());
    let mut stopped = false;
    let status = tokio::select! {
        s = &mut waiter => s,
        _ = stop.cancelled() => {
            stopped = true;
            signal_group(pgid, if spec.interrupt_first { libc::SIGINT } else { libc::SIGTERM });
            tokio::select! {
                s = &mut waiter => s,
                _ = tokio::time::sleep(spec.kill_grace) => {
                    signal_group(pgid, libc::SIGKILL);
                    waiter.await
                }
            }
        }
    };
    // No orphans: whatever the step left behind in its group goes too.
    signal_group(pgid, libc::SIGKILL);
    drop(slot);
    let outcome = match status {
        Ok(Ok(st)) if stopped => {
            let _ = st;
            Outcome::Stopped
        }
        Ok(Ok(st)) => {
            use std::os::unix::process::ExitStatusExt;
            match (st.code(), st.signal()) {
                (Some(c), _) => Outcome::Exited(c),
                (None, Some(s)) => Outcome::Signalled(s),
                _ => Outcome::Error("unknown exit status".into()),
            }
        }
        Ok(Err(e)) => Outcome::Error(format!("waiting for the process failed: {e}")),
        Err(e) => Outcome::Error(format!("waiting for the process failed: {e}")),
    };
    match writer_task.await {
        Ok(Ok(w)) => {
            // Written means safe from an engine crash; the writer already fsyncs every
            // SYNC_EVERY while a step streams, so a step's end adds no fsync of its own.
            publish(&target, w.lines());
            outcome
        }
        Ok(Err(e)) => Outcome::Error(format!("writing the step's log failed: {e}")),
        Err(e) => Outcome::Error(format!("writing the step's log failed: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_every_secret_occurrence() {
        let m = Masker::new(&["hunter2".into(), "".into(), "hunter2x".into()]);
        assert_eq!(&*m.apply(b"a hunter2x b hunter2\n"), b"a *** b ***\n");
        assert!(matches!(m.apply(b"clean\n"), std::borrow::Cow::Borrowed(_)));
    }

    #[test]
    fn formats_records() {
        let (out, n) = format_lines(b"one\ntwo\n", b'e', &Masker::default());
        assert_eq!(n, 2);
        let s = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].ends_with(" e one"));
        assert_eq!(lines[1].len(), PREFIX_LEN + 3);
    }
}
