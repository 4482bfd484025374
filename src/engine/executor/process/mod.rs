//! A step as a real child process in its own process group. Its output is captured
//! by [`capture`](super::capture) (on the runtime while it is a trickle, then on a
//! blocking reader of the step's own) and written by the store's one log-writer
//! thread; this task waits for the exit, the stop token and the reader, and never
//! polls.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use memchr::memmem;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::token::{self, StepToken};
use super::{capture, children, spawn};
use crate::domain::{Event, now_ms};
use crate::engine::scheduler::UnitCtx;
use crate::store::logs::{LogStore, LogStream, OnDurable};

/// After the step exits (and its group is killed), how long its pipes may stay open:
/// only a process that left the group can hold them, and it is not waited for.
const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(2);
/// A step's process is recorded in the store once it has run this long.
const RECORD_AFTER: Duration = Duration::from_millis(50);
/// A step's output is first read when it exits, or once it has run this long (its
/// pipes are watched from then on). A short step's output is then read in one go,
/// and its pipes never join the reactor: four `epoll_ctl` calls and two wakeups
/// fewer a step. A step that fills a pipe (64 KiB) sooner waits this long once.
const WATCH_AFTER: Duration = Duration::from_millis(5);

/// What to run.
#[derive(Debug, Clone)]
pub struct ProcSpec {
    /// A shell command from the project file (trusted); untrusted values come in `env`.
    /// With `argv`, only what messages show of it.
    pub command: String,
    /// The exact program and arguments, no shell: for arguments a person typed (a
    /// state address), which must reach the program as they are, one word each.
    pub argv: Option<Vec<String>>,
    pub cwd: PathBuf,
    /// Variables set over the engine's environment: those of the run (shared by its
    /// steps), then the step's own.
    pub env: Arc<spawn::Env>,
    pub extra_env: Vec<(String, String)>,
    pub kill_grace: Duration,
    /// Stop with SIGINT first (Terraform releases its state lock), not SIGTERM.
    pub interrupt_first: bool,
    /// Stopped as on cancel, and failed, after running this long.
    pub timeout: Option<Duration>,
    /// Keep the unit's slot when the process ends (another attempt may follow).
    pub hold_slot: bool,
}

/// Whose a unit's processes are.
#[derive(Clone)]
pub struct Owner {
    /// The engine's store (named by its data dir): the first part of every token.
    pub store: Arc<str>,
    /// Told of each process started: its pid (and group) and start time.
    pub started: Arc<dyn Fn(i32, u64) + Send + Sync>,
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
    /// Stopped (as on cancel) because it ran longer than its time limit.
    TimedOut(Duration),
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
            Outcome::TimedOut(limit) => {
                format!(
                    "timed out after {}",
                    crate::config::format_ms(limit.as_millis() as u64)
                )
            }
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

    /// How many bytes at the end of `data` could begin a secret (the longest such
    /// proper prefix of any secret); 0 when none could.
    pub fn open_prefix(&self, data: &[u8]) -> usize {
        self.finders
            .iter()
            .map(|f| {
                let s = f.needle();
                (1..s.len().min(data.len() + 1))
                    .rev()
                    .find(|&k| data.ends_with(&s[..k]))
                    .unwrap_or(0)
            })
            .max()
            .unwrap_or(0)
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

/// Announces a step's durable line count to every client.
pub(crate) fn publisher(t: &LogTarget) -> OnDurable {
    let (events, run_id, step_id) = (t.events.clone(), t.run_id, t.step_id);
    Arc::new(move |total_lines| {
        // No subscriber is not an error: the lines are in the file.
        events
            .send(Event::Log {
                run_id,
                step_id,
                total_lines,
            })
            .ok();
    })
}

/// Writes one note line into a step's log; returns once it is durable and announced
/// (used for steps that do not run, and for pipedeck's lines around a step's own).
/// Blocks the calling thread for as long as the log writer takes to get to it.
pub fn note(t: &LogTarget, text: &str) -> std::io::Result<()> {
    let mut s = t.logs.stream(t.run_id, t.step_id, publisher(t))?;
    s.note(text)?;
    let (tx, rx) = std::sync::mpsc::channel();
    s.close(Box::new(move |r| {
        // The caller waits below; it cannot have gone.
        tx.send(r).ok();
    }));
    rx.recv()
        .map_err(|_| io::Error::other("the log writer has stopped"))?
        .map(|_| ())
}

/// Writes one note line into a step's log without waiting for it: the log writer
/// appends it in order with whatever comes next, and a failure is only logged.
pub(crate) fn note_later(t: &LogTarget, text: &str) {
    let step = t.step_id;
    let sent = t
        .logs
        .stream(t.run_id, step, publisher(t))
        .and_then(|mut s| {
            s.note(text)?;
            s.close(Box::new(move |r| {
                if let Err(e) = r {
                    tracing::warn!("step {step}: cannot write a note to its log: {e}");
                }
            }));
            Ok(())
        });
    if let Err(e) = sent {
        tracing::warn!("step {step}: cannot write a note to its log: {e}");
    }
}

/// Closes `log` once its reader is done; the log's first write or sync error, if any.
pub(crate) async fn close(log: LogStream) -> io::Result<u64> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    log.close(Box::new(move |r| {
        // A step whose task was dropped no longer waits for its log.
        tx.send(r).ok();
    }));
    rx.await
        .map_err(|_| io::Error::other("the log writer has stopped"))?
}

/// Runs `spec` to the end, or until `stop` fires; returns how it ended and when (unix
/// ms). `slot` (the step's execution slot) is released as soon as the process group
/// is gone, before the log is finished: the end time is taken before that, so a step
/// that takes over the slot never seems to start before this one ended. This task then
/// yields, and the next step starts first (2,000-step DAG: faster in 12 of 16 rounds,
/// median 0.97 of the time without). The output is read by [`capture::read`] and
/// written by the log-writer thread; an error if the log could not be written.
pub(crate) async fn run(spec: ProcSpec, ctx: &mut UnitCtx) -> (Outcome, i64) {
    let UnitCtx {
        log: target,
        stop,
        slot,
        owner,
        ..
    } = ctx;
    let target = &*target;
    let fail = |why: String| (Outcome::Error(why), now_ms());
    let log = match target
        .logs
        .stream(target.run_id, target.step_id, publisher(target))
    {
        Ok(l) => l,
        Err(e) => return fail(format!("cannot open the step's log: {e}")),
    };
    // Tells the reader to stop (output held open after the exit).
    let stop_reading = CancellationToken::new();
    // Every process of the step carries its token (see `children`).
    let token = StepToken {
        store: owner.store.to_string(),
        run: target.run_id,
        step: target.step_id,
        interrupt_first: spec.interrupt_first,
        grace: spec.kill_grace,
    };
    let marked = (token::VAR.to_string(), token.to_string());
    let started = spawn::Env::new(spec.extra_env.iter().chain([&marked])).and_then(|extra| {
        let argv = spec
            .argv
            .clone()
            .unwrap_or_else(|| spawn::argv(&spec.command));
        spawn::spawn(&argv, &spec.cwd, &spec.env, &extra, Some(&token))
    });
    let mut child = match started {
        Ok(c) => c,
        Err(e) => return fail(format!("cannot start `{}`: {e}", spec.command)),
    };
    let pgid = child.pid;
    let token = children::EndOnDrop(token);
    // Recorded in the store once the step has run a little: a short step ends before
    // it would matter. Recording every one of a DAG's 2,000 `true`s cost 5% of its time:
    // reading a process's start time right after the spawn waits for its exec to
    // finish (the kernel takes the new process's memory lock), and each record woke
    // the runner. A step that a crash cuts short in its first moments is still found
    // by its token.
    let mut record = true;
    let record_at = tokio::time::sleep(RECORD_AFTER);
    tokio::pin!(record_at);
    let mut watching = false;
    let watch_at = tokio::time::sleep(WATCH_AFTER);
    tokio::pin!(watch_at);
    let pipes = match capture::Pipes::new(child.stdout.take(), child.stderr.take()) {
        Ok(p) => p,
        Err(e) => {
            // The child runs: it must not be left behind.
            signal_group(pgid, libc::SIGKILL);
            child.wait().await.ok();
            return fail(format!("cannot read the output of `{}`: {e}", spec.command));
        }
    };
    let reader = capture::read(pipes, stop_reading.clone(), log, target.masker.clone());
    tokio::pin!(reader);
    let mut read = None;
    let mut status = None;
    let mut ended_at = 0;
    let mut stopped = false;
    let mut timed_out = false;
    let time_limit = async {
        match spec.timeout {
            Some(t) => tokio::time::sleep(t).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(time_limit);
    // After SIGTERM: when to send SIGKILL. After the exit: how long output may still
    // come from a process that left the group.
    let mut deadline: Option<Instant> = None;
    let cancelled = stop.cancelled();
    tokio::pin!(cancelled);
    while status.is_none() || read.is_none() {
        let sleep = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            s = child.wait(), if status.is_none() => {
                // No orphans: whatever the step left behind in its group goes too,
                // and what left the group goes as soon as the reaper finds it.
                signal_group(pgid, libc::SIGKILL);
                children::ended(&token.0);
                ended_at = now_ms();
                status = Some(s);
                deadline = Some(Instant::now() + DRAIN_AFTER_EXIT);
                if !spec.hold_slot && slot.take().is_some() {
                    // The unit waiting for the slot starts before this one finishes.
                    tokio::task::yield_now().await;
                }
            }
            r = &mut reader, if read.is_none() && (watching || status.is_some()) => read = Some(r),
            _ = &mut watch_at, if !watching && status.is_none() => watching = true,
            _ = &mut record_at, if record && status.is_none() => {
                record = false;
                if let Some(start) = token::start_time(pgid) {
                    (owner.started)(pgid, start);
                }
            }
            _ = &mut cancelled, if !stopped && status.is_none() => {
                stopped = true;
                signal_group(pgid, token.0.first_signal());
                deadline = Some(Instant::now() + spec.kill_grace);
            }
            _ = &mut time_limit, if !stopped && status.is_none() => {
                stopped = true;
                timed_out = true;
                signal_group(pgid, token.0.first_signal());
                deadline = Some(Instant::now() + spec.kill_grace);
            }
            _ = sleep => {
                deadline = None;
                if status.is_none() {
                    signal_group(pgid, libc::SIGKILL);
                } else {
                    // Output held open by a process outside the group: stop reading.
                    stop_reading.cancel();
                }
            }
        }
    }
    let outcome = match status {
        Some(Ok(_)) if let Some(e) = child.start_error() => {
            Outcome::Error(format!("cannot start `{}`: {e}", spec.command))
        }
        Some(Ok(_)) if timed_out => Outcome::TimedOut(spec.timeout.unwrap_or_default()),
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
    // What was read is written and durable before the step is reported done.
    let logged = match read {
        Some(Ok((log, read))) => close(log).await.and(read),
        Some(Err(e)) => Err(e),
        None => Err(io::Error::other("the output reader was lost")),
    };
    if let Err(e) = logged {
        tracing::error!(
            run = target.run_id,
            step = target.step_id,
            "capturing the step's output failed: {e}"
        );
        return (
            Outcome::Error(format!("writing the step's log failed: {e}")),
            ended_at,
        );
    }
    (outcome, ended_at)
}

#[cfg(test)]
mod tests;
