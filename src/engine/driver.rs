//! One task per run: checks out the workspace, runs the build DAG, then deploys
//! environment by environment through gates and queues. It reports every change to
//! the runner, which commits and publishes it.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::executor::process::{self, LogTarget, Masker, Outcome, ProcSpec};
use super::executor::spawn::Env;
use super::runner::Msg;
use super::{Shared, workspace};
use crate::config::Service;
use crate::domain::{GateStatus, RunInfo, RunStatus, Stage, StepInfo, StepStatus, now_ms};

/// How a stage ended.
enum End {
    Done,
    /// The run ends with this status and reason.
    Stop(RunStatus, String),
    /// The engine is shutting down and the run stays as it is (waiting at a gate).
    Park,
}

pub(crate) struct Driver {
    run: RunInfo,
    def: Service,
    steps: Vec<StepInfo>,
    shared: Arc<Shared>,
    tx: mpsc::Sender<Msg>,
    /// Fires when an operator cancels, or the engine shuts down (its parent).
    cancel: CancellationToken,
    masker: Arc<Masker>,
    /// The run's variables, shared by its steps.
    env: Arc<Env>,
    workspace: PathBuf,
}

const SHUTDOWN: &str = "the engine shut down";

/// A step ready to run but waiting for a slot is reported `queued` once it has waited
/// this long: shorter waits are invisible to an operator, and not reporting them
/// spares a state change per step when a wide DAG keeps every slot busy.
pub(crate) const QUEUED_AFTER: Duration = Duration::from_millis(50);

/// Waits for an execution slot, or for `stop`; runs `queued` (which reports the wait)
/// if the wait lasts QUEUED_AFTER.
pub(crate) async fn acquire_slot(
    slots: &Arc<tokio::sync::Semaphore>,
    stop: &CancellationToken,
    queued: impl std::future::Future<Output = ()>,
) -> Option<tokio::sync::OwnedSemaphorePermit> {
    if let Ok(p) = slots.clone().try_acquire_owned() {
        return Some(p);
    }
    let acquire = slots.clone().acquire_owned();
    tokio::pin!(acquire);
    tokio::select! {
        p = &mut acquire => return p.ok(),
        _ = stop.cancelled() => return None,
        _ = tokio::time::sleep(QUEUED_AFTER) => {}
    }
    queued.await;
    tokio::select! {
        p = acquire => p.ok(),
        _ = stop.cancelled() => None,
    }
}

/// Sleeps until `at` (forever if `None`).
pub(crate) async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

impl Driver {
    pub fn new(
        run: RunInfo,
        def: Service,
        steps: Vec<StepInfo>,
        shared: Arc<Shared>,
        tx: mpsc::Sender<Msg>,
        cancel: CancellationToken,
    ) -> Self {
        let workspace = shared.data_dir.join("workspaces").join(run.id.to_string());
        Self {
            run,
            def,
            steps,
            shared,
            tx,
            cancel,
            masker: Arc::new(Masker::default()),
            env: Arc::default(),
            workspace,
        }
    }

    pub async fn drive(mut self) {
        let id = self.run.id;
        let end = self.execute().await;
        let update = match end {
            End::Done => Some((RunStatus::Succeeded, None)),
            End::Stop(status, reason) => Some((status, Some(reason))),
            End::Park => None,
        };
        if let Some((status, reason)) = update {
            self.send(Msg::RunStatus {
                run_id: id,
                status,
                reason,
            })
            .await;
        }
        self.send(Msg::Done(id)).await;
    }

    async fn send(&self, msg: Msg) {
        let _ = self.tx.send(msg).await;
    }

    async fn set_step(&mut self, i: usize, status: StepStatus, reason: Option<String>) {
        self.set_step_at(i, status, reason, now_ms()).await
    }

    /// Sets step `i`'s status as of `now` (unix ms): a process's end is stamped with
    /// when it was seen to exit, not when its result was handled.
    async fn set_step_at(
        &mut self,
        i: usize,
        status: StepStatus,
        reason: Option<String>,
        now: i64,
    ) {
        let s = &mut self.steps[i];
        s.status = status;
        s.reason = reason;
        if status == StepStatus::Running {
            s.started_at = Some(now);
        }
        if status.is_terminal() {
            s.ended_at = Some(now);
        }
        let msg = Msg::Step(s.clone());
        self.send(msg).await;
    }

    /// Ends every step not yet ended that matches `stage` (all stages if `None`).
    async fn end_rest(&mut self, stage: Option<Stage>, status: StepStatus, reason: &str) {
        for i in 0..self.steps.len() {
            let s = &self.steps[i];
            if !s.status.is_terminal() && stage.is_none_or(|st| st == s.stage) {
                self.set_step(i, status, Some(reason.to_string())).await;
            }
        }
    }

    fn stopped_why(&self) -> (StepStatus, String) {
        if self.shared.shutdown.is_cancelled() {
            (StepStatus::Cancelled, SHUTDOWN.to_string())
        } else {
            (
                StepStatus::Cancelled,
                "cancelled by an operator".to_string(),
            )
        }
    }

    async fn cancelled_end(&mut self) -> End {
        let (status, why) = self.stopped_why();
        self.end_rest(None, status, &why).await;
        End::Stop(RunStatus::Cancelled, why)
    }

    fn target(&self, step_id: i64) -> LogTarget {
        LogTarget {
            logs: self.shared.logs.clone(),
            run_id: self.run.id,
            step_id,
            events: self.shared.events.clone(),
            masker: self.masker.clone(),
        }
    }

    fn spec(&self, command: &str, kill_grace_ms: u64, extra: &[(&str, &str)]) -> ProcSpec {
        ProcSpec {
            command: command.to_string(),
            cwd: self.workspace.clone(),
            env: self.env.clone(),
            extra_env: extra
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            kill_grace: Duration::from_millis(kill_grace_ms),
            interrupt_first: false,
        }
    }

    async fn execute(&mut self) -> End {
        if self.run.status != RunStatus::AwaitingApproval {
            self.send(Msg::RunStatus {
                run_id: self.run.id,
                status: RunStatus::Running,
                reason: None,
            })
            .await;
        }
        if let Err(why) = self.prepare().await {
            let reason = format!("the run could not start: {why}");
            self.end_rest(None, StepStatus::Skipped, &reason).await;
            return End::Stop(RunStatus::Failed, reason);
        }
        match self.build().await {
            End::Done => {}
            other => return other,
        }
        self.deploy().await
    }

    /// Workspace at the run's commit, secrets read, variables set (EN-2).
    async fn prepare(&mut self) -> Result<(), String> {
        let (def, data_dir, ws, sha) = (
            self.def.clone(),
            self.shared.data_dir.clone(),
            self.workspace.clone(),
            self.run.commit_sha.clone(),
        );
        tokio::task::spawn_blocking(move || {
            let repo = workspace::ensure_repo(&def, &data_dir)?;
            workspace::checkout(&repo, &sha, &ws)
        })
        .await
        .map_err(|e| e.to_string())??;
        let mut values = Vec::new();
        let mut env = Vec::new();
        for secret in &self.def.secrets {
            let v = secret.resolve()?;
            env.push((secret.name.clone(), v.clone()));
            values.push(v);
        }
        self.masker = Arc::new(Masker::new(&values));
        let r = &self.run;
        let vars = [
            ("PIPEDECK_RUN_ID", r.id.to_string()),
            ("PIPEDECK_ATTEMPT", r.attempt.to_string()),
            ("PIPEDECK_SERVICE", r.service.clone()),
            ("PIPEDECK_COMMIT", r.commit_sha.clone()),
            ("PIPEDECK_COMMIT_MESSAGE", r.commit_message.clone()),
            ("PIPEDECK_AUTHOR", r.author.clone()),
            ("PIPEDECK_BRANCH", r.branch.clone()),
            ("PIPEDECK_TAG", r.tag.clone().unwrap_or_default()),
            ("PIPEDECK_RUN_TYPE", r.run_type.to_string()),
            ("PIPEDECK_TRIGGER", r.trigger.to_string()),
            ("PIPEDECK_TRIGGERED_BY", r.triggered_by.clone()),
            (
                "PIPEDECK_WORKSPACE",
                self.workspace.to_string_lossy().into_owned(),
            ),
            (
                "PIPEDECK_DATA_DIR",
                self.shared.data_dir.to_string_lossy().into_owned(),
            ),
        ];
        env.extend(vars.into_iter().map(|(k, v)| (k.to_string(), v)));
        self.env = Arc::new(Env::new(&env).map_err(|e| e.to_string())?);
        Ok(())
    }

    /// The build DAG: ready steps start at once (bounded by the global slots); the
    /// first failure stops the rest (SP-2).
    async fn build(&mut self) -> End {
        let build: Vec<usize> = (0..self.steps.len())
            .filter(|&i| self.steps[i].stage == Stage::Build)
            .collect();
        let by_name: HashMap<String, usize> = build
            .iter()
            .map(|&i| (self.steps[i].name.clone(), i))
            .collect();
        let defs: HashMap<String, crate::config::Step> = self
            .def
            .steps
            .iter()
            .map(|s| (s.name.clone(), s.clone()))
            .collect();
        let mut waiting: HashMap<usize, usize> = HashMap::new();
        let mut dependents: HashMap<usize, Vec<usize>> = HashMap::new();
        for &i in &build {
            let Some(def) = defs.get(&self.steps[i].name) else {
                continue;
            };
            let mut n = 0;
            for need in &def.needs {
                if let Some(&j) = by_name.get(need)
                    && self.steps[j].status != StepStatus::Succeeded
                {
                    n += 1;
                    dependents.entry(j).or_default().push(i);
                }
            }
            waiting.insert(i, n);
        }
        // Ready steps, in order, with when each became ready; each starts only once it
        // holds a slot, so nothing waits for a slot but this loop. The first `queued`
        // of them have been reported as waiting for one.
        let now = Instant::now();
        let mut ready: VecDeque<(usize, Instant)> = build
            .iter()
            .filter(|i| self.steps[**i].status == StepStatus::Pending && waiting.get(i) == Some(&0))
            .map(|&i| (i, now))
            .collect();
        let mut queued: usize = 0;
        let stop = self.cancel.child_token();
        let mut set: JoinSet<(usize, (Outcome, i64))> = JoinSet::new();
        let mut failed: Option<String> = None;
        loop {
            if failed.is_some() || stop.is_cancelled() {
                // Not started, never will be: ended with the rest below.
                ready.clear();
                queued = 0;
            }
            while let Some(&(i, _)) = ready.front() {
                let Ok(permit) = self.shared.slots.clone().try_acquire_owned() else {
                    break;
                };
                ready.pop_front();
                queued = queued.saturating_sub(1);
                self.start_step(&mut set, i, &defs, permit, &stop).await;
            }
            // Those that have waited for a slot for a while are reported as queued.
            let now = Instant::now();
            while let Some(&(i, since)) = ready.get(queued)
                && now >= since + QUEUED_AFTER
            {
                self.set_step(i, StepStatus::Queued, None).await;
                queued += 1;
            }
            let report_at = ready.get(queued).map(|(_, since)| *since + QUEUED_AFTER);
            if set.is_empty() && ready.is_empty() {
                break;
            }
            let joined = tokio::select! {
                j = set.join_next(), if !set.is_empty() => j,
                p = self.shared.slots.clone().acquire_owned(), if !ready.is_empty() => {
                    if let (Ok(permit), Some((i, _))) = (p, ready.pop_front()) {
                        queued = queued.saturating_sub(1);
                        self.start_step(&mut set, i, &defs, permit, &stop).await;
                    }
                    continue;
                }
                _ = sleep_until(report_at), if report_at.is_some() => continue,
                _ = stop.cancelled(), if !ready.is_empty() => continue,
            };
            let Some(Ok((i, (outcome, ended_at)))) = joined else {
                continue;
            };
            let path = self.steps[i].path();
            self.steps[i].exit_code = outcome.exit_code();
            if outcome.success() {
                self.set_step_at(i, StepStatus::Succeeded, None, ended_at)
                    .await;
                for &d in dependents.get(&i).map(Vec::as_slice).unwrap_or_default() {
                    if let Some(n) = waiting.get_mut(&d) {
                        *n -= 1;
                        if *n == 0 && self.steps[d].status == StepStatus::Pending {
                            ready.push_back((d, Instant::now()));
                        }
                    }
                }
            } else if outcome == Outcome::Stopped {
                let (status, why) = match &failed {
                    Some(f) => (StepStatus::Skipped, format!("stopped: {f} failed")),
                    None => self.stopped_why(),
                };
                self.set_step(i, status, Some(why)).await;
            } else {
                let why = outcome.describe();
                self.set_step_at(i, StepStatus::Failed, Some(why), ended_at)
                    .await;
                if failed.is_none() {
                    failed = Some(path);
                    stop.cancel();
                }
            }
        }
        if let Some(f) = failed {
            let reason = format!("upstream failed: {f}");
            self.end_rest(None, StepStatus::Skipped, &reason).await;
            return End::Stop(RunStatus::Failed, format!("{f} failed"));
        }
        if self.cancel.is_cancelled() {
            return self.cancelled_end().await;
        }
        End::Done
    }

    /// Starts build step `i`, which holds `permit` for as long as its process runs.
    async fn start_step(
        &mut self,
        set: &mut JoinSet<(usize, (Outcome, i64))>,
        i: usize,
        defs: &HashMap<String, crate::config::Step>,
        permit: tokio::sync::OwnedSemaphorePermit,
        stop: &CancellationToken,
    ) {
        let Some(def) = defs.get(&self.steps[i].name) else {
            return;
        };
        let name = self.steps[i].name.clone();
        let spec = self.spec(&def.run, def.kill_grace_ms, &[("PIPEDECK_STEP", &name)]);
        let target = self.target(self.steps[i].id);
        self.set_step(i, StepStatus::Running, None).await;
        let stop = stop.clone();
        set.spawn(async move { (i, process::run(spec, target, stop, Some(permit)).await) });
    }

    /// Environments one after another, each behind its gate and its queue (SP-3..SP-6a).
    async fn deploy(&mut self) -> End {
        if !self.def.deployments_enabled {
            let why = format!("deployments are disabled for service {}", self.def.name);
            self.end_rest(Some(Stage::Deploy), StepStatus::Skipped, &why)
                .await;
            return End::Done;
        }
        let envs: Vec<usize> = (0..self.steps.len())
            .filter(|&i| {
                self.steps[i].stage == Stage::Deploy && !self.steps[i].status.is_terminal()
            })
            .collect();
        for i in envs {
            if self.cancel.is_cancelled() {
                return self.cancelled_end().await;
            }
            let name = self.steps[i].name.clone();
            let path = self.steps[i].path();
            let Some(env) = self
                .def
                .environments
                .iter()
                .find(|e| e.name == name)
                .cloned()
            else {
                continue;
            };
            if env.gate.approval {
                self.set_step(i, StepStatus::AwaitingApproval, None).await;
                let (reply, rx) = oneshot::channel();
                self.send(Msg::OpenGate {
                    run_id: self.run.id,
                    env: name.clone(),
                    policy: env.gate.clone(),
                    reply,
                })
                .await;
                let gate = tokio::select! {
                    g = rx => g,
                    _ = self.shared.shutdown.cancelled() => return End::Park,
                };
                let Ok(gate) = gate else {
                    return End::Park;
                };
                match gate.status {
                    GateStatus::Approved => {
                        self.send(Msg::RunStatus {
                            run_id: self.run.id,
                            status: RunStatus::Running,
                            reason: None,
                        })
                        .await;
                    }
                    GateStatus::Rejected | GateStatus::Expired => {
                        let who = gate.decided_by.unwrap_or_default();
                        let mut why = if gate.status == GateStatus::Expired {
                            "the gate expired before anyone decided".to_string()
                        } else {
                            format!("rejected by {who}")
                        };
                        if let (GateStatus::Rejected, Some(c)) = (gate.status, &gate.comment) {
                            why.push_str(&format!(": {c}"));
                        }
                        self.set_step(i, StepStatus::Rejected, Some(why.clone()))
                            .await;
                        let rest = format!("gate rejected at {path}");
                        self.end_rest(Some(Stage::Deploy), StepStatus::Skipped, &rest)
                            .await;
                        return End::Stop(RunStatus::Rejected, format!("{path}: {why}"));
                    }
                    GateStatus::Cancelled | GateStatus::Waiting => {
                        return self.cancelled_end().await;
                    }
                }
            }
            // Wait in order for this (service, environment), then for a slot.
            self.set_step(i, StepStatus::Queued, None).await;
            let lock = self.shared.env_lock(&self.def.name, &name);
            let guard = tokio::select! {
                g = lock.lock_owned() => g,
                _ = self.cancel.cancelled() => return self.cancelled_end().await,
            };
            let permit = tokio::select! {
                p = self.shared.slots.clone().acquire_owned() => p.ok(),
                _ = self.cancel.cancelled() => return self.cancelled_end().await,
            };
            self.set_step(i, StepStatus::Running, None).await;
            let spec = self.spec(
                &env.run,
                env.kill_grace_ms,
                &[("PIPEDECK_ENV", &name), ("PIPEDECK_STEP", &path)],
            );
            // An operator's cancel lets the environment in flight finish; only a shutdown stops it.
            let (outcome, ended_at) = process::run(
                spec,
                self.target(self.steps[i].id),
                self.shared.shutdown.clone(),
                permit,
            )
            .await;
            drop(guard);
            self.steps[i].exit_code = outcome.exit_code();
            if outcome.success() {
                self.set_step_at(i, StepStatus::Succeeded, None, ended_at)
                    .await;
            } else if outcome == Outcome::Stopped {
                return self.cancelled_end().await;
            } else {
                self.set_step_at(i, StepStatus::Failed, Some(outcome.describe()), ended_at)
                    .await;
                let rest = format!("upstream failed: {path}");
                self.end_rest(Some(Stage::Deploy), StepStatus::Skipped, &rest)
                    .await;
                return End::Stop(RunStatus::Failed, format!("{path} failed"));
            }
        }
        End::Done
    }
}
