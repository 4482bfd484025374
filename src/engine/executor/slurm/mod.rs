//! A unit as a Slurm batch job (issue 20): submitted with `sbatch --parsable`, its
//! output file read into the unit's log as it grows (masked, like a local step's
//! pipes), its state read with `scontrol`/`sacct` at a bounded interval, stopped with
//! `scancel` (SIGTERM, then SIGKILL after the unit's grace). The job id is recorded
//! with the step, so that a restarted engine re-attaches instead of interrupting.

pub mod cli;
mod files;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use cli::JobId;
use cli::JobInfo;

use super::process::{self, LogTarget, Outcome, publisher};
use crate::config::slurm::SlurmJob;
use crate::domain::now_ms;
use crate::engine::scheduler::UnitCtx;

/// The wait between two reads of a job in its first [`QUICK_FOR`]; then it doubles up
/// to the job's `poll` (most short jobs end within the quick reads).
const FIRST_POLL: Duration = Duration::from_millis(100);
const QUICK_FOR: Duration = Duration::from_secs(2);
/// After this many failed reads in a row, the job is taken as lost.
const MAX_READ_ERRORS: u32 = 10;

/// What the engine gives the Slurm executor: the jobs a restarted engine found still
/// submitted (by step id), to re-attach to. (A job's id is recorded with its step
/// through the unit's [`UnitCtx::status`].)
#[derive(Clone)]
pub struct Link {
    pub reattach: Arc<Mutex<HashMap<i64, JobId>>>,
    pub data_dir: PathBuf,
    /// The engine's store id: jobs are named `pipedeck-<store>-r<run>-s<step>`, so
    /// that two engines sharing a cluster never mistake each other's jobs.
    pub store: Arc<str>,
}

/// The name of step `step_id`'s job in run `run_id`.
pub fn job_name(store: &str, run_id: i64, step_id: i64) -> String {
    let store: String = store.chars().take(8).collect();
    format!("pipedeck-{store}-r{run_id}-s{step_id}")
}

/// One attempt of a unit as a job.
pub struct JobSpec<'a> {
    pub job: &'a SlurmJob,
    pub command: &'a str,
    pub cwd: PathBuf,
    /// The run's variables, then the unit's own.
    pub vars: Vec<(String, String)>,
    pub kill_grace: Duration,
    /// Stop with SIGINT first (Terraform releases its state lock), not SIGTERM.
    pub interrupt_first: bool,
    /// pipedeck's own time limit (stopped and timed out, as a local step), counted from
    /// when the job starts running.
    pub timeout: Option<Duration>,
    pub hold_slot: bool,
    pub attempt: u32,
}

/// How a job ended: the outcome as a local process would report it, Slurm's words
/// on it, and when.
pub struct JobEnd {
    pub outcome: Outcome,
    pub detail: Option<String>,
    pub ended_at: i64,
}

fn error(why: String) -> JobEnd {
    JobEnd {
        outcome: Outcome::Error(why),
        detail: None,
        ended_at: now_ms(),
    }
}

fn note(log: &LogTarget, text: &str) {
    if let Err(e) = process::note(log, text) {
        tracing::warn!("step {}: cannot write a note to its log: {e}", log.step_id);
    }
}

/// The output lines in the log after the note that `job` was submitted: what a
/// previous engine had already copied from its output file.
fn logged_lines(log: &LogTarget, job: JobId) -> u64 {
    let mark = submitted(job);
    let Ok(lines) = log.logs.read(log.run_id, log.step_id, 0, 1_000_000) else {
        return 0;
    };
    let from = lines
        .iter()
        .position(|l| l.stream == 'p' && l.text.starts_with(&mark))
        .map_or(0, |i| i + 1);
    lines[from..].iter().filter(|l| l.stream != 'p').count() as u64
}

fn submitted(job: JobId) -> String {
    format!("Slurm job {job} submitted")
}

/// Cancels `job` at once, from a thread that may block (an engine's recovery).
pub fn cancel_now(job: JobId) {
    let r = std::process::Command::new("scancel")
        .arg(job.to_string())
        .stdin(std::process::Stdio::null())
        .output();
    match r {
        Ok(o) if o.status.success() => {
            tracing::warn!("stopped Slurm job {job} of a run that cannot resume")
        }
        Ok(o) => tracing::error!(
            "cannot stop Slurm job {job}: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => tracing::error!("cannot stop Slurm job {job}: cannot run scancel: {e}"),
    }
}

/// Runs one attempt as a Slurm job to its end, or until `stop` fires.
pub(crate) async fn run(spec: JobSpec<'_>, ctx: &mut UnitCtx, link: &Link) -> JobEnd {
    let target = ctx.log.clone();
    let (run_id, step_id) = (target.run_id, target.step_id);
    let dir = spec
        .job
        .shared_dir
        .clone()
        .unwrap_or_else(|| link.data_dir.join("slurm"))
        .join(format!("run-{run_id}"));
    if let Err(e) = std::fs::create_dir_all(&dir) {
        return error(format!("cannot make the job folder {}: {e}", dir.display()));
    }
    let stem = format!("step-{step_id}-{}", spec.attempt);
    let (script_path, out_path) = (
        dir.join(format!("{stem}.sh")),
        dir.join(format!("{stem}.out")),
    );
    let again = link
        .reattach
        .lock()
        .map(|mut m| m.remove(&step_id))
        .unwrap_or(None);
    let (job, skip) = match again {
        Some(job) => {
            let skip = logged_lines(&target, job);
            note(
                &target,
                &format!("Slurm job {job} re-attached after an engine restart"),
            );
            (job, skip)
        }
        None => {
            ctx.status.waiting("submitting to Slurm".into());
            let text =
                match files::script(&spec.vars, &spec.cwd, spec.command, spec.interrupt_first) {
                    Ok(t) => t,
                    Err(e) => return error(format!("cannot write the job's batch script: {e}")),
                };
            if let Err(e) = files::write_private(&script_path, &text) {
                return error(format!(
                    "cannot write the job's batch script {}: {e}",
                    script_path.display()
                ));
            }
            let name = job_name(&link.store, run_id, step_id);
            let args = cli::sbatch_args(spec.job, &name, &out_path, &spec.cwd, &script_path);
            let job = match cli::submit(&args).await {
                Ok(j) => j,
                Err(e) => {
                    let _ = std::fs::remove_file(&script_path);
                    return error(format!("Slurm did not take the job: {e}"));
                }
            };
            ctx.status.submitted(job);
            let part = spec
                .job
                .partition
                .as_deref()
                .unwrap_or("the default partition");
            note(&target, &format!("{} to {part}", submitted(job)));
            (job, 0)
        }
    };
    let end = follow(&spec, ctx, job, files::Tail::new(out_path.clone(), skip)).await;
    let _ = std::fs::remove_file(&script_path);
    let _ = std::fs::remove_file(&out_path);
    end
}

/// What `follow` asked of the job.
#[derive(PartialEq)]
enum Asked {
    Nothing,
    Stop,
    TimedOut,
}

async fn follow(
    spec: &JobSpec<'_>,
    ctx: &mut UnitCtx,
    job: JobId,
    mut tail: files::Tail,
) -> JobEnd {
    let target = ctx.log.clone();
    let mut log = match target
        .logs
        .stream(target.run_id, target.step_id, publisher(&target))
    {
        Ok(l) => l,
        Err(e) => {
            let _ = cli::cancel(job).await;
            return error(format!("cannot open the step's log: {e}"));
        }
    };
    let max_poll = Duration::from_millis(spec.job.poll_ms).max(FIRST_POLL);
    let mut poll = FIRST_POLL;
    let started = Instant::now();
    let mut asked = Asked::Nothing;
    let mut kill_at: Option<Instant> = None;
    let mut last_state = String::new();
    // Whether the step was last said to run (a requeued job waits again).
    let mut running = false;
    let mut errors = 0;
    // pipedeck's time limit counts from when the job starts, not while it waits in the
    // cluster's queue: armed once it runs.
    let time_limit = tokio::time::sleep(Duration::from_secs(3_600));
    tokio::pin!(time_limit);
    let mut armed = false;
    let stop = ctx.stop.clone();
    let mut log_error = None;
    let (info, ended_at) = loop {
        let mut now_asked = None;
        tokio::select! {
            _ = tokio::time::sleep(poll) => {}
            _ = stop.cancelled(), if asked == Asked::Nothing => now_asked = Some(Asked::Stop),
            _ = &mut time_limit, if armed && asked == Asked::Nothing => now_asked = Some(Asked::TimedOut),
        }
        if let Some(a) = now_asked {
            asked = a;
            kill_at = Some(Instant::now() + spec.kill_grace);
            // A pending job is simply taken off the queue; a running one gets SIGTERM
            // (SIGINT, for Terraform).
            let r = if last_state == "RUNNING" {
                let sig = if spec.interrupt_first { "INT" } else { "TERM" };
                cli::signal(job, sig).await
            } else {
                cli::cancel(job).await
            };
            if let Err(e) = r {
                tracing::warn!("Slurm job {job}: {e}");
            }
            poll = FIRST_POLL;
        }
        if let Some(at) = kill_at
            && Instant::now() >= at
        {
            kill_at = None;
            let _ = cli::signal(job, "KILL").await;
            if let Err(e) = cli::cancel(job).await {
                tracing::warn!("Slurm job {job}: {e}");
            }
        }
        if let Err(e) = tail.pump(&mut log, &target.masker, false) {
            log_error.get_or_insert(e);
        }
        match cli::query(job).await {
            Ok(Some(info)) => {
                errors = 0;
                if info.state != last_state {
                    last_state = info.state.clone();
                    let at = if info.nodes.is_empty() {
                        String::new()
                    } else {
                        format!(" on {}", info.nodes)
                    };
                    let why = match info.reason.as_str() {
                        "" | "None" => String::new(),
                        r => format!(" ({r})"),
                    };
                    if let Err(e) = log.note(&format!("Slurm job {job} is {}{at}{why}", info.state))
                    {
                        log_error.get_or_insert(e);
                    }
                    // Waiting in the cluster's queue shows as queued; running (or
                    // ended after running somewhere) as running.
                    if info.waits() {
                        running = false;
                        ctx.status.waiting(match info.state.as_str() {
                            "PENDING" => format!("in Slurm's queue{why}"),
                            state => format!("Slurm job {state}{why}"),
                        });
                    } else if !running && (!info.ended() || !info.nodes.is_empty()) {
                        running = true;
                        ctx.status.running();
                        if let (Some(t), false) = (spec.timeout, armed) {
                            time_limit.as_mut().reset(tokio::time::Instant::now() + t);
                            armed = true;
                        }
                    }
                }
                if info.ended() {
                    break (Some(info), now_ms());
                }
            }
            Ok(None) => break (None, now_ms()),
            Err(e) => {
                errors += 1;
                tracing::warn!("Slurm job {job}: cannot read its state: {e}");
                if errors >= MAX_READ_ERRORS {
                    let _ = cli::cancel(job).await;
                    let _ = process::close(log).await;
                    return error(format!("cannot read the state of Slurm job {job}: {e}"));
                }
            }
        }
        if started.elapsed() >= QUICK_FOR {
            poll = (poll * 2).min(max_poll);
        }
        if asked != Asked::Nothing {
            poll = poll.min(Duration::from_millis(500));
        }
    };
    if !spec.hold_slot {
        drop(ctx.slot.take());
    }
    // The output written last (Slurm flushes it before the job ends).
    if let Err(e) = tail.pump(&mut log, &target.masker, true) {
        log_error.get_or_insert(e);
    }
    let closed = process::close(log).await;
    if let Some(e) = log_error.or(closed.err()) {
        return error(format!("writing the step's log failed: {e}"));
    }
    let (outcome, detail) = outcome(job, info, &asked, spec);
    JobEnd {
        outcome,
        detail,
        ended_at,
    }
}

/// A job's end as a local process's, with Slurm's words on it.
fn outcome(
    job: JobId,
    info: Option<JobInfo>,
    asked: &Asked,
    spec: &JobSpec,
) -> (Outcome, Option<String>) {
    match asked {
        Asked::Stop => return (Outcome::Stopped, None),
        Asked::TimedOut => return (Outcome::TimedOut(spec.timeout.unwrap_or_default()), None),
        Asked::Nothing => {}
    }
    let Some(info) = info else {
        return (
            Outcome::Error(format!("Slurm job {job} is no longer known to the cluster")),
            None,
        );
    };
    let why = match info.reason.as_str() {
        "" | "None" => String::new(),
        r => format!(": {r}"),
    };
    let said = format!("Slurm job {job} {}{why}", info.state);
    let (code, sig) = info.exit;
    let by_code = if sig > 0 {
        Outcome::Signalled(sig)
    } else {
        Outcome::Exited(code)
    };
    match info.state.as_str() {
        "COMPLETED" => (Outcome::Exited(code), None),
        "TIMEOUT" => {
            let limit = spec.job.time_limit_min.unwrap_or_default();
            (
                Outcome::TimedOut(Duration::from_secs(limit * 60)),
                Some(format!(
                    "Slurm job {job} TIMEOUT: it reached its time limit"
                )),
            )
        }
        "FAILED" | "OUT_OF_MEMORY" if (code, sig) != (0, 0) => (by_code, Some(said)),
        "CANCELLED" => (
            Outcome::Error(format!("{said} (cancelled outside pipedeck)")),
            None,
        ),
        _ => (Outcome::Error(said), None),
    }
}
