//! The stack-job executor (SJ-1..SJ-5): a unit is one operation of a resource, run by
//! the real Terraform/OpenTofu binary in the resource's state dir, or by the
//! operator's `command` driver. A resource (a group) is made ready once: inputs with
//! upstream outputs substituted, preflight (SJ-4), the module copied in.

pub(crate) mod drift;
mod error;
mod files;
mod lock;
mod place;
mod resume;
mod state;
mod targeted;

use std::collections::HashMap;
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::Value;

use error::StackJobError;
pub(crate) use files::state_dir;
use files::{NotReady, last_outputs, remove};

use super::command::finished;
use super::process::{self, LogTarget, ProcSpec};
use super::spawn::Env;
use super::terraform as tf;
use crate::config::infra::{InfraProject, Resource};
use crate::config::schema::CommandsFile;
use crate::domain::{InfraAction, Operation, StepInfo, now_ms};
use crate::engine::preflight;
use crate::engine::scheduler::{Executor, Finished, GroupFailure, Outcome, UnitCtx};

/// One operation of one resource (its index in the project).
pub(crate) struct OpWork {
    pub resource: usize,
    pub op: Operation,
}

/// The `command` driver's command for an operation.
pub(crate) fn command(c: &CommandsFile, op: Operation) -> Option<&String> {
    match op {
        Operation::Init => c.init.as_ref(),
        Operation::Refresh => c.refresh.as_ref(),
        Operation::Preview => c.preview.as_ref(),
        Operation::Apply => c.apply.as_ref(),
        Operation::Destroy => c.destroy.as_ref(),
        // State operations are Terraform's alone.
        Operation::State => None,
    }
}

/// Whether a resource has the operation at all (Terraform has every one).
pub(crate) fn has_operation(r: &Resource, op: Operation) -> bool {
    r.is_terraform() || command(&r.commands, op).is_some()
}

/// A resource made ready for its operations.
struct Ready {
    state_dir: PathBuf,
    env: Arc<Env>,
    /// The same variables as pairs (a Slurm job's script exports them).
    vars: Arc<Vec<(String, String)>>,
    /// The Terraform/OpenTofu binary and where it runs; `None` runs the `command` driver.
    tf: Option<(PathBuf, tf::Workdir)>,
    /// No job has run in the state dir before.
    fresh: bool,
}

/// What this run's operations of a resource have done so far.
#[derive(Default)]
struct Progress {
    ready: Option<Arc<Ready>>,
    /// The preview's plan summary (Terraform).
    summary: Option<Value>,
    /// A preview succeeded in this run: apply applies its saved plan.
    planned: bool,
    /// Apply or destroy succeeded.
    changed: bool,
    /// What apply produced.
    applied: Option<Value>,
    /// A shared backend's state held no resource when `init` ran.
    remote_empty: bool,
    /// A targeted apply left the module incomplete: the outputs of the last complete
    /// apply stay recorded.
    outputs_kept: bool,
    /// Whether this run's apply left a next-outputs file (`None`: not known, as for
    /// an apply done before the engine restarted). Known to be absent, there is
    /// nothing to rename: one failing system call a node fewer.
    next_outputs: Option<bool>,
}

pub(crate) struct StackJobExecutor {
    run_id: i64,
    project: InfraProject,
    action: InfraAction,
    data_dir: PathBuf,
    /// The addresses a targeted stack job is limited to (empty: the whole module).
    targets: Vec<crate::domain::target::Address>,
    /// Each resource's outputs as they stand for this run (for `${id.outputs.key}`).
    outputs: Mutex<HashMap<String, Value>>,
    progress: Mutex<HashMap<usize, Progress>>,
    /// A state job's state operation.
    state: Option<crate::domain::state_op::StateOp>,
    /// How Slurm jobs are recorded and re-attached (resources with `executor = "slurm"`).
    slurm: Option<super::slurm::Link>,
    /// Resources with an operation re-attaching to its Slurm job after a restart: their
    /// module copy, where the job runs, is left as it is.
    reattaching: std::collections::HashSet<usize>,
}

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl StackJobExecutor {
    /// An executor for run `run` of `project`, resumed from its rows `steps`.
    pub fn new(
        run: &crate::domain::RunInfo,
        project: InfraProject,
        action: InfraAction,
        steps: &[StepInfo],
        data_dir: PathBuf,
    ) -> Self {
        let known = resume::known(&project, action, steps, &data_dir);
        Self {
            run_id: run.id,
            project,
            action,
            data_dir,
            targets: run.targets.clone(),
            outputs: Mutex::new(known.outputs),
            progress: Mutex::new(known.progress),
            state: run.state_op.clone(),
            slurm: None,
            reattaching: known.reattaching,
        }
    }

    pub fn with_slurm(mut self, link: super::slurm::Link) -> Self {
        self.slurm = Some(link);
        self
    }

    fn resource(&self, k: usize) -> &Resource {
        &self.project.resources[k]
    }

    fn state_dir(&self, k: usize) -> PathBuf {
        files::state_dir(&self.data_dir, &self.project.name, &self.resource(k).id)
    }

    fn ready(&self, k: usize) -> Option<Arc<Ready>> {
        locked(&self.progress).get(&k).and_then(|p| p.ready.clone())
    }

    /// Inputs, preflight, state dir, module and variables for resource `k`.
    fn make_ready(&self, k: usize, log: &LogTarget) -> Result<Ready, GroupFailure> {
        let r = self.resource(k);
        let fail = |reason: String, units: &str| GroupFailure {
            reason,
            units_reason: units.to_string(),
        };
        let upstream = format!("upstream failed: resource/{}", r.id);
        let inputs = files::substitute_all(&r.inputs, &locked(&self.outputs))
            .map_err(|e| fail(e.to_string(), &upstream))?;
        let state_dir = self.state_dir(k);
        // (Done on the engine's thread, not the blocking pool: handing 10,000 of these
        // to other threads measured 20% slower.)
        let text = Value::Object(inputs.clone()).to_string();
        let fresh = match files::ready_state(r, &state_dir, &text) {
            Ok(fresh) => fresh,
            Err(NotReady::Preflight(checks, why)) => {
                // The full report goes to the first operation's log.
                for line in preflight::report(&checks) {
                    write_note(log, &format!("preflight {line}"));
                }
                return Err(fail(why, "preflight failed"));
            }
            Err(NotReady::Io(why)) => {
                return Err(fail(why, "the state dir could not be made ready"));
            }
        };
        // The Terraform/OpenTofu driver: the real binary in the state dir; without one,
        // the operator's commands (if any) stand in.
        let mut tf_run = None;
        if r.is_terraform() {
            match tf::find_binary(&r.driver, r.binary.as_deref()) {
                Some(bin) => {
                    let module = r.module.clone().unwrap_or_default();
                    let target = tf::Target {
                        project: &self.project.name,
                        resource: &r.id,
                        backend: r.backend.as_ref(),
                        keep_tree: self.reattaching.contains(&k),
                    };
                    let wd = tf::prepare(&module, &state_dir, &inputs, &target)
                        .map_err(|e| fail(e.to_string(), "the module could not be prepared"))?;
                    tf_run = Some((bin, wd));
                }
                None if r.commands.apply.is_some() => write_note(
                    log,
                    "no terraform or tofu binary on PATH: using the command driver's commands instead",
                ),
                None => {
                    let why = "no terraform or tofu binary on PATH (install one, or set terraform_binary)";
                    return Err(fail(why.into(), why));
                }
            }
        }
        let path = |name: &str| state_dir.join(name).display().to_string();
        let mut env: Vec<(String, String)> = vec![
            ("PIPEDECK_RUN_ID".into(), self.run_id.to_string()),
            ("PIPEDECK_INFRA_PROJECT".into(), self.project.name.clone()),
            ("PIPEDECK_ENV".into(), self.project.environment.clone()),
            ("PIPEDECK_RESOURCE".into(), r.id.clone()),
            ("PIPEDECK_KIND".into(), r.kind.clone()),
            ("PIPEDECK_STATE_DIR".into(), state_dir.display().to_string()),
            ("PIPEDECK_INPUTS".into(), path(files::INPUTS)),
            ("PIPEDECK_OUTPUTS".into(), path(files::NEXT_OUTPUTS)),
            (
                "PIPEDECK_DATA_DIR".into(),
                self.data_dir.display().to_string(),
            ),
        ];
        if let Some(m) = &r.module {
            env.push(("PIPEDECK_MODULE".into(), m.display().to_string()));
        }
        for (key, v) in &inputs {
            let text = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            env.push((format!("PIPEDECK_INPUT_{}", files::env_name(key)), text));
        }
        let pairs = Env::new(&env)
            .map_err(|e| fail(format!("cannot set the environment: {e}"), "no environment"))?;
        Ok(Ready {
            state_dir,
            env: Arc::new(pairs),
            vars: Arc::new(env),
            tf: tf_run,
            fresh,
        })
    }

    /// After a Terraform operation succeeded: the plan's summary, or apply's outputs.
    async fn after_terraform(
        &self,
        bin: &Path,
        wd: &tf::Workdir,
        op: Operation,
    ) -> Result<Option<Value>, StackJobError> {
        let (bin, wd, data) = (bin.to_path_buf(), wd.clone(), self.data_dir.clone());
        let destroys = self.action.destroys();
        tokio::task::spawn_blocking(move || -> Result<_, StackJobError> {
            match op {
                // Whether there is anything to refresh, in a shared backend.
                Operation::Init if !wd.local => Ok(Some(Value::Bool(
                    tf::state_list(&bin, &wd, &data)?.is_empty(),
                ))),
                Operation::Preview => Ok(Some(tf::plan_summary(&bin, &wd, &data)?)),
                Operation::Apply if !destroys => {
                    let (outs, sensitive) = tf::outputs(&bin, &wd, &data)?;
                    // Values in the state dir (0700, beside the state that holds them
                    // anyway) for dependents; which are sensitive, for what is shown.
                    let names = serde_json::to_string(&sensitive).unwrap_or_default();
                    for (name, text) in [
                        (files::SENSITIVE, names),
                        (files::NEXT_OUTPUTS, outs.to_string()),
                    ] {
                        let file = wd.state_dir.join(name);
                        std::fs::write(&file, text)
                            .map_err(|source| StackJobError::WriteOutputs { path: file, source })?;
                    }
                    Ok(None)
                }
                _ => Ok(None),
            }
        })
        .await?
    }

    async fn run_op(&self, w: &OpWork, ctx: UnitCtx) -> Result<Finished, StackJobError> {
        let ready = self.ready(w.resource).ok_or(StackJobError::NotReady)?;
        if w.op == Operation::State {
            return self.run_state(w, &ready, ctx).await;
        }
        let r = self.resource(w.resource);
        let planned = locked(&self.progress)
            .get(&w.resource)
            .is_some_and(|p| p.planned);
        let cmd = match &ready.tf {
            Some((bin, wd)) => {
                let mut cmd =
                    tf::op_command(bin, w.op.as_str(), self.action.destroys(), planned, wd);
                if targeted::takes_targets(w.op, planned) {
                    cmd.push_str(&targeted::args(&self.targets));
                }
                cmd
            }
            None => command(&r.commands, w.op)
                .cloned()
                .ok_or(StackJobError::NoCommand)?,
        };
        let outputs_file = ready.state_dir.join(files::NEXT_OUTPUTS);
        if w.op == Operation::Apply && !ready.fresh {
            remove(&outputs_file);
        }
        let mut extra_env = vec![("PIPEDECK_OPERATION".into(), w.op.to_string())];
        if let Some((_, wd)) = &ready.tf {
            extra_env.extend(wd.env(&self.data_dir));
            extra_env.extend(targeted::env(&self.targets));
        }
        let spec = ProcSpec {
            command: cmd,
            argv: None,
            cwd: ready
                .tf
                .as_ref()
                .map_or_else(|| ready.state_dir.clone(), |(_, wd)| wd.work.clone()),
            env: ready.env.clone(),
            extra_env,
            kill_grace: Duration::from_millis(r.kill_grace_ms),
            // Terraform gets SIGINT first, so it can release its state lock (SJ-5).
            interrupt_first: ready.tf.is_some(),
            timeout: r.timeout_ms.map(Duration::from_millis),
            // Never retried (SJ-5).
            hold_slot: false,
        };
        let log = ctx.log.clone();
        let mut ctx = ctx;
        // The provider plugin cache takes no concurrent writers, and the pg backend no
        // concurrent workspace creation: then inits take turns.
        let cache_turn = match (w.op, &ready.tf) {
            (Operation::Init, Some((_, wd))) if wd.serial_init || tf::plugin_cache_set() => {
                let lock = tf::init_lock();
                if lock.try_lock().is_err() {
                    let why = if wd.serial_init {
                        "the pg backend creates workspaces one at a time"
                    } else {
                        "TF_PLUGIN_CACHE_DIR is set"
                    };
                    write_note(
                        &log,
                        &format!("waiting for another init: {why}, so inits take turns"),
                    );
                }
                Some(lock.lock().await)
            }
            _ => None,
        };
        let (result, ended_at, detail) =
            place::run(spec, &ready.vars, r, self.slurm.as_ref(), &mut ctx).await;
        drop(cache_turn);
        let mut fin = finished(result, ended_at);
        if let (Outcome::Failed(why), Some(d)) = (&mut fin.outcome, detail) {
            why.push_str(&format!(" ({d})"));
        }
        match &mut fin.outcome {
            Outcome::Failed(why) if ready.tf.is_some() => {
                if let Some(reason) = self.failure_reason(&log, w) {
                    *why = reason;
                }
                return Ok(fin);
            }
            Outcome::Succeeded { .. } => {}
            _ => return Ok(fin),
        }
        let mut unit_outputs = None;
        let mut remote_empty = false;
        let kept = match &ready.tf {
            Some((bin, wd)) if w.op == Operation::Apply && !self.action.destroys() => {
                targeted::kept_outputs(&self.targets, bin, wd, &self.data_dir, &log).await
            }
            _ => false,
        };
        if let Some((bin, wd)) = &ready.tf
            && !kept
        {
            match self.after_terraform(bin, wd, w.op).await? {
                Some(Value::Bool(empty)) => remote_empty = empty,
                Some(s) => {
                    write_note(&log, &tf::summary_line(&s));
                    unit_outputs = Some(s);
                }
                None => {}
            }
        }
        let mut progress = locked(&self.progress);
        let p = progress.entry(w.resource).or_default();
        match w.op {
            Operation::Init => p.remote_empty = remote_empty,
            Operation::Preview => {
                p.planned = true;
                p.summary = unit_outputs.clone();
            }
            Operation::Apply if kept => p.outputs_kept = true,
            Operation::Apply => {
                let found = files::read_outputs_if_any(&outputs_file)?;
                p.next_outputs = Some(found.is_some());
                let outs = found.unwrap_or_else(|| Value::Object(Default::default()));
                p.applied = Some(files::shown(&ready.state_dir, outs.clone()));
                locked(&self.outputs).insert(r.id.clone(), outs);
            }
            _ => {}
        }
        p.changed |= w.op.changes();
        fin.outcome = Outcome::Succeeded {
            outputs: unit_outputs,
        };
        Ok(fin)
    }
}

/// Writes a note into a unit's log; a failure is logged, not fatal.
fn write_note(log: &LogTarget, text: &str) {
    if let Err(e) = process::note(log, text) {
        tracing::warn!("step {}: cannot write a note to its log: {e}", log.step_id);
    }
}

impl Executor for StackJobExecutor {
    type Work = OpWork;
    type PrepareError = Infallible;

    /// The credentials the resources name, and their backends' secrets, are masked in
    /// every log.
    async fn prepare(&self) -> Result<Vec<String>, Infallible> {
        let mut values: Vec<String> = self
            .project
            .resources
            .iter()
            .flat_map(|r| &r.credentials)
            .filter_map(|c| std::env::var(c).ok())
            .filter(|v| !v.is_empty())
            .collect();
        for r in &self.project.resources {
            values.extend(tf::backend::secret_values(r.backend.as_ref()));
        }
        Ok(values)
    }

    async fn prepare_group(&self, k: usize, log: &LogTarget) -> Result<(), GroupFailure> {
        let ready = Arc::new(self.make_ready(k, log)?);
        locked(&self.progress).entry(k).or_default().ready = Some(ready);
        Ok(())
    }

    /// A resource on Slurm: each operation waits in the cluster's queue.
    fn queues_elsewhere(&self, w: &OpWork) -> bool {
        self.resource(w.resource).slurm.is_some() && self.slurm.is_some()
    }

    /// Flow control (SJ-3): the resolved policy may waive refresh or preview, and
    /// Terraform cannot refresh what does not exist yet.
    fn waive(&self, w: &OpWork) -> Option<String> {
        let policy = &self.resource(w.resource).policy;
        let ready = self.ready(w.resource);
        match w.op {
            Operation::Refresh if policy.skip_refresh.value => Some(format!(
                "policy ({}): skip refresh",
                policy.skip_refresh.from
            )),
            Operation::Preview if !policy.require_preview.value => Some(format!(
                "policy ({}): preview not required",
                policy.require_preview.from
            )),
            Operation::Refresh
                if ready
                    .as_ref()
                    .and_then(|r| r.tf.as_ref())
                    .is_some_and(|(_, wd)| {
                        if wd.local {
                            !tf::has_state(wd)
                        } else {
                            locked(&self.progress)
                                .get(&w.resource)
                                .is_some_and(|p| p.remote_empty)
                        }
                    }) =>
            {
                Some("nothing deployed yet: no state to refresh".into())
            }
            op if op != Operation::State
                && ready.as_ref().is_some_and(|r| r.tf.is_none())
                && command(&self.resource(w.resource).commands, op).is_none() =>
            {
                Some("no command for this operation".into())
            }
            _ => None,
        }
    }

    async fn run(&self, w: &OpWork, ctx: UnitCtx) -> Finished {
        self.run_op(w, ctx).await.unwrap_or_else(|why| Finished {
            outcome: Outcome::Failed(why.to_string()),
            exit_code: None,
            ended_at: now_ms(),
        })
    }

    /// The approver sees the plan they approve.
    fn gate_note(&self, w: &OpWork) -> Option<String> {
        let progress = locked(&self.progress);
        let summary = progress.get(&w.resource)?.summary.as_ref()?;
        Some(tf::summary_line(summary))
    }

    /// Rejecting discards the reviewed plan.
    fn gate_refused(&self, w: &OpWork) {
        remove(&self.state_dir(w.resource).join(tf::PLAN_FILE));
    }

    /// What the resource's row shows as its outputs; what apply wrote becomes the
    /// last applied outputs.
    fn finish_group(&self, k: usize, succeeded: bool) -> Option<Value> {
        let mut progress = locked(&self.progress);
        let p = progress.get_mut(&k)?;
        // Freed now, not with all the others at the run's end (~60 ms for 10,000).
        let ready = p.ready.take()?;
        if !succeeded {
            return None;
        }
        let last = ready.state_dir.join(files::LAST_OUTPUTS);
        let next = ready.state_dir.join(files::NEXT_OUTPUTS);
        // A targeted destroy removes its addresses only: the resource stays deployed.
        let partial_destroy = self.action.destroys() && !self.targets.is_empty();
        if !p.changed || p.outputs_kept || partial_destroy {
            // A preview or refresh leaves what was applied as it was (as do a targeted
            // apply that left the module incomplete and a targeted destroy).
            return last_outputs(&ready.state_dir).map(|o| files::shown(&ready.state_dir, o));
        }
        if self.action.destroys() {
            remove(&last);
            return None;
        }
        // What apply wrote becomes the last applied outputs; when it wrote none, the
        // last ones (of an earlier apply) go.
        let renamed = match p.next_outputs {
            Some(false) => Err(std::io::ErrorKind::NotFound.into()),
            _ => std::fs::rename(&next, &last),
        };
        match renamed {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if !ready.fresh {
                    remove(&last);
                }
            }
            Err(e) => tracing::error!("cannot keep the outputs in {}: {e}", last.display()),
        }
        p.applied.clone()
    }
}
