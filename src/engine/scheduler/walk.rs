//! The walk: one task per run, which starts what is ready, applies each unit's policy
//! when it ends, and sets every status and timestamp. Nothing else writes a unit's row.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use tokio::sync::{OnceCell, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::group::{self, GroupState};
use super::task::{self, GateEnd, Progress, RunEnd, RunJob};
use super::{Executor, Finished, OnCancel, Outcome, Owner, Plan};
use crate::domain::now_ms;
use crate::domain::{GateStatus, Millis, RunInfo, RunStatus, StepInfo, StepStatus, Supersession};
use crate::engine::Shared;
use crate::engine::executor::process::{LogTarget, Masker};
use crate::engine::queue::{Joining, Place};
use crate::engine::runner::Msg;

pub(super) const SHUTDOWN: &str = "the engine shut down";
pub(super) const CANCELLED: &str = "cancelled by an operator";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    Pending,
    GateBefore,
    Running,
    GateAfter,
    /// Succeeded (or waived) with its gate after approved: dependents may start.
    Passed,
    Ended,
}

/// What a spawned task handed back.
pub(super) enum End {
    GateBefore(GateEnd),
    GateAfter(GateEnd),
    Run(RunEnd),
}

pub(crate) struct Scheduler<E: Executor> {
    pub(super) run: RunInfo,
    pub(super) plan: Plan<E::Work>,
    pub(super) steps: Vec<StepInfo>,
    pub(super) exec: Arc<E>,
    pub(super) shared: Arc<Shared>,
    pub(super) tx: mpsc::Sender<Msg>,
    /// Fires when an operator cancels, or the engine shuts down (its parent).
    pub(super) cancel: CancellationToken,
    /// Fires when nothing more may start: cancel, or a failure that fails the run.
    pub(super) halt: CancellationToken,
    pub(super) masker: Arc<Masker>,
    pub(super) phase: Vec<Phase>,
    /// Per unit, how many of its needs have not passed yet.
    pub(super) waiting: Vec<usize>,
    pub(super) dependents: Vec<Vec<usize>>,
    pub(super) members: Vec<Vec<usize>>,
    pub(super) groups: Vec<GroupState>,
    pub(super) prepared: Vec<Arc<OnceCell<()>>>,
    pub(super) ready: VecDeque<usize>,
    /// The unit whose failure failed the run (its path).
    pub(super) failed_run: Option<String>,
    /// Why units that never started did not: set with `failed_run` or a refusal.
    pub(super) rest: Option<String>,
    pub(super) failures: Vec<String>,
    pub(super) rejected: Option<String>,
    pub(super) gates_waiting: usize,
    pub(super) parked: bool,
    /// Units this walk saw stopped by an engine shutdown, and when.
    pub(super) stopped_by_shutdown: Vec<(usize, Millis)>,
    /// Per unit, its place in its environment's line while it may still deploy.
    pub(super) places: Vec<Option<Place>>,
    /// Where the lines say a unit was superseded.
    pub(super) told: mpsc::UnboundedReceiver<(usize, Supersession)>,
    /// Why a gate this run waits at is being resolved as superseded.
    pub(super) supersessions: HashMap<usize, Supersession>,
    /// The first deploy of this run that a newer run superseded, and by whom.
    pub(super) superseded_run: Option<String>,
}

impl<E: Executor> Scheduler<E> {
    pub fn new(
        run: RunInfo,
        plan: Plan<E::Work>,
        steps: Vec<StepInfo>,
        exec: E,
        shared: Arc<Shared>,
        tx: mpsc::Sender<Msg>,
        cancel: CancellationToken,
    ) -> Self {
        let n = plan.units.len();
        let mut dependents = vec![Vec::new(); n];
        for (u, unit) in plan.units.iter().enumerate() {
            for &d in &unit.needs {
                dependents[d].push(u);
            }
        }
        let mut members = vec![Vec::new(); plan.groups.len()];
        for (u, unit) in plan.units.iter().enumerate() {
            if let Some(g) = unit.group {
                members[g].push(u);
            }
        }
        let halt = cancel.child_token();
        let (tell, told) = mpsc::unbounded_channel();
        // Every deploy that may still happen joins its environment's line now, in the
        // runner's order of starting runs, so trigger order holds from the start.
        let places = plan
            .units
            .iter()
            .enumerate()
            .map(|(u, unit)| {
                let spec = unit.policy.queue.as_ref()?;
                if steps[unit.step].status.is_terminal() {
                    return None;
                }
                Some(shared.queues.join(Joining {
                    key: spec.key.clone(),
                    policy: spec.policy,
                    unit: u,
                    me: spec.me.clone(),
                    allow_older: spec.allow_older,
                    last: spec.last.clone(),
                    tell: tell.clone(),
                }))
            })
            .collect();
        Self {
            groups: vec![GroupState::default(); plan.groups.len()],
            prepared: (0..plan.groups.len()).map(|_| Arc::default()).collect(),
            run,
            plan,
            steps,
            exec: Arc::new(exec),
            shared,
            tx,
            cancel,
            halt,
            masker: Arc::new(Masker::default()),
            phase: vec![Phase::Pending; n],
            waiting: vec![0; n],
            dependents,
            members,
            ready: VecDeque::new(),
            failed_run: None,
            rest: None,
            failures: Vec::new(),
            rejected: None,
            gates_waiting: 0,
            parked: false,
            stopped_by_shutdown: Vec::new(),
            places,
            told,
            supersessions: HashMap::new(),
            superseded_run: None,
        }
    }

    /// Walks the run to its end (or parks it at a gate on shutdown), then tells the runner.
    pub async fn drive(mut self) {
        let id = self.run.id;
        if let Some((status, reason)) = self.execute().await {
            self.send(Msg::RunStatus {
                run_id: id,
                status,
                reason,
            })
            .await;
        }
        self.send(Msg::Done(id)).await;
    }

    pub(super) async fn send(&self, msg: Msg) {
        // Fails only when the runner is gone, and then nobody is left to tell.
        let _ = self.tx.send(msg).await;
    }

    pub(super) async fn run_status(&self, status: RunStatus) {
        self.send(Msg::RunStatus {
            run_id: self.run.id,
            status,
            reason: None,
        })
        .await;
    }

    pub(super) fn stopped_why(&self) -> &'static str {
        if self.shared.shutdown.is_cancelled() {
            SHUTDOWN
        } else {
            CANCELLED
        }
    }

    /// The one place a row changes: status, reason and timestamps.
    pub(super) async fn set(
        &mut self,
        i: usize,
        status: StepStatus,
        reason: Option<String>,
        at: Millis,
    ) {
        let s = &mut self.steps[i];
        if s.status == status && s.reason == reason {
            return;
        }
        s.status = status;
        s.reason = reason;
        if status == StepStatus::Running {
            s.started_at.get_or_insert(at);
        }
        if status.is_terminal() {
            s.ended_at = Some(at);
        }
        let msg = Msg::Step(s.clone());
        self.send(msg).await;
    }

    /// Sets unit `u`'s row, then its group's.
    pub(super) async fn set_unit(
        &mut self,
        u: usize,
        status: StepStatus,
        reason: Option<String>,
        at: Millis,
    ) {
        self.set(self.plan.units[u].step, status, reason, at).await;
        if status.is_terminal() {
            // Its deploy will not happen: it leaves its environment's line.
            self.places[u] = None;
        }
        if let Some(g) = self.plan.units[u].group {
            self.settle_group(g).await;
        }
    }

    pub(super) async fn settle_group(&mut self, g: usize) {
        let rows: Vec<&StepInfo> = self.members[g]
            .iter()
            .map(|&u| &self.steps[self.plan.units[u].step])
            .collect();
        let all_ended = rows.iter().all(|s| s.status.is_terminal());
        let (status, reason) = group::status(&rows, &self.groups[g]);
        let row = self.plan.groups[g].step;
        if all_ended && !self.groups[g].finished {
            self.groups[g].finished = true;
            let ok = rows
                .iter()
                .all(|s| matches!(s.status, StepStatus::Succeeded | StepStatus::Skipped))
                && self.groups[g].verdict.is_none();
            let outputs = self.exec.finish_group(self.plan.groups[g].key, ok);
            self.steps[row].outputs = outputs;
        }
        // A group that has started never reads as pending again (after a restart its
        // units are pending while its row still says where it got to).
        if status == StepStatus::Pending && self.steps[row].status != StepStatus::Pending {
            return;
        }
        self.set(row, status, reason, now_ms()).await;
    }

    /// `resource/db` for a unit of a group, else the unit's own path.
    pub(super) fn path(&self, u: usize) -> String {
        let unit = &self.plan.units[u];
        let row = unit.group.map_or(unit.step, |g| self.plan.groups[g].step);
        self.steps[row].path()
    }

    pub(super) fn log(&self, u: usize) -> LogTarget {
        LogTarget {
            logs: self.shared.logs.clone(),
            run_id: self.run.id,
            step_id: self.steps[self.plan.units[u].step].id,
            events: self.shared.events.clone(),
            masker: self.masker.clone(),
        }
    }

    /// Whose unit `u`'s processes are: each one started is recorded with the step.
    fn owner(&self, u: usize) -> Owner {
        let (tx, step_id) = (self.tx.clone(), self.steps[self.plan.units[u].step].id);
        Owner {
            store: self.shared.store_id.clone(),
            started: Arc::new(move |pid, start| {
                // A full queue loses only this record: the token still finds the
                // processes after a crash.
                if let Err(e) = tx.try_send(Msg::StepProcess {
                    step_id,
                    pid,
                    start,
                }) {
                    tracing::warn!(step_id, pid, "cannot record the step's process: {e}");
                }
            }),
        }
    }

    async fn execute(&mut self) -> Option<(RunStatus, Option<String>)> {
        if self.run.status != RunStatus::AwaitingApproval {
            self.run_status(RunStatus::Running).await;
        }
        for (i, status, why) in std::mem::take(&mut self.plan.settled) {
            if !self.steps[i].status.is_terminal() {
                self.set(i, status, Some(why), now_ms()).await;
            }
        }
        match self.exec.prepare().await {
            Ok(secrets) => self.masker = Arc::new(Masker::new(&secrets)),
            Err(why) => {
                let reason = format!("the run could not start: {why}");
                self.end_rest(StepStatus::Skipped, &reason).await;
                return Some((RunStatus::Failed, Some(reason)));
            }
        }
        if let Some(spec) = self.plan.run_gate.clone() {
            let decided = task::open_gate(&self.tx, self.run.id, spec.clone()).await;
            let end = task::gate(decided, self.shared.shutdown.clone()).await;
            let gate = match end {
                GateEnd::Parked => return None,
                GateEnd::Decided(g) => g,
            };
            match gate.status {
                GateStatus::Approved => self.run_status(RunStatus::Running).await,
                GateStatus::Rejected | GateStatus::Expired => {
                    let why = super::outcome::refusal(&spec, &gate);
                    self.end_rest(StepStatus::Skipped, &why).await;
                    return Some((RunStatus::Rejected, Some(why)));
                }
                GateStatus::Cancelled
                | GateStatus::Waiting
                | GateStatus::Superseded
                | GateStatus::Interrupted => {
                    let why = self.stopped_why();
                    self.end_rest(StepStatus::Cancelled, why).await;
                    return Some((RunStatus::Cancelled, Some(why.into())));
                }
            }
        }
        self.resume().await;
        self.walk().await;
        // An engine that shuts down leaves the runs that only waited (at a gate, for a
        // slot or for their environment) to the next one, which carries them on in
        // order (SP-6a, EN-3). A run whose step the shutdown stopped ends cancelled, as
        // one that failed meanwhile ends now; one an operator was cancelling is
        // `cancelling` in the store, and the next engine ends it as interrupted.
        if self.shared.shutdown.is_cancelled()
            && self.failed_run.is_none()
            && self.stopped_by_shutdown.is_empty()
        {
            self.parked = true;
        }
        for (u, at) in std::mem::take(&mut self.stopped_by_shutdown) {
            let (status, why) = if self.parked {
                (
                    StepStatus::Interrupted,
                    format!("{SHUTDOWN} while this ran"),
                )
            } else {
                (StepStatus::Cancelled, SHUTDOWN.to_string())
            };
            self.set_unit(u, status, Some(why), at).await;
        }
        if self.parked {
            return None;
        }
        self.finish().await
    }

    /// Ends every row not yet ended.
    pub(super) async fn end_rest(&mut self, status: StepStatus, reason: &str) {
        for i in 0..self.steps.len() {
            if !self.steps[i].status.is_terminal() {
                self.set(i, status, Some(reason.to_string()), now_ms())
                    .await;
            }
        }
    }

    /// Reads where each unit stands from its row (all pending for a new run; a run
    /// resumed after a restart carries on from where it was).
    async fn resume(&mut self) {
        let mut failed = Vec::new();
        for u in 0..self.plan.units.len() {
            let status = self.steps[self.plan.units[u].step].status;
            self.phase[u] = match status {
                StepStatus::Succeeded if self.plan.units[u].policy.gate_after.is_some() => {
                    Phase::GateAfter
                }
                // A skipped unit was waived, or its upstream failed and its dependents
                // were skipped with it: either way nothing waits for it.
                StepStatus::Succeeded | StepStatus::Skipped => Phase::Passed,
                // Queued for a slot or its environment: it never started.
                StepStatus::Queued => Phase::Pending,
                StepStatus::Running => {
                    let why = "interrupted by an engine restart".to_string();
                    self.set_unit(u, StepStatus::Interrupted, Some(why), now_ms())
                        .await;
                    failed.push(u);
                    Phase::Ended
                }
                StepStatus::Failed | StepStatus::Interrupted | StepStatus::Rejected => {
                    failed.push(u);
                    Phase::Ended
                }
                StepStatus::Cancelled => Phase::Ended,
                StepStatus::Pending | StepStatus::AwaitingApproval => Phase::Pending,
            };
        }
        for g in 0..self.groups.len() {
            self.groups[g].finished = self.members[g]
                .iter()
                .all(|&u| self.steps[self.plan.units[u].step].status.is_terminal());
        }
        for u in 0..self.plan.units.len() {
            self.waiting[u] = self.plan.units[u]
                .needs
                .iter()
                .filter(|&&d| self.phase[d] != Phase::Passed)
                .count();
        }
        for u in failed {
            if self.steps[self.plan.units[u].step].status == StepStatus::Rejected {
                let why = self.steps[self.plan.units[u].step].reason.clone();
                self.rejected.get_or_insert(format!(
                    "{}: {}",
                    self.path(u),
                    why.unwrap_or_default()
                ));
                self.skip_downstream(u).await;
            } else {
                self.fail(u).await;
            }
        }
        self.ready = (0..self.plan.units.len())
            .filter(|&u| self.phase[u] == Phase::Pending && self.waiting[u] == 0)
            .collect();
    }

    async fn walk(&mut self) {
        let (reports, mut progress) = mpsc::unbounded_channel();
        let mut set: JoinSet<(usize, End)> = JoinSet::new();
        let mut task_unit = HashMap::new();
        let mut told = std::mem::replace(&mut self.told, mpsc::unbounded_channel().1);
        for u in 0..self.plan.units.len() {
            if self.phase[u] == Phase::GateAfter {
                self.open_gate_after(u, &mut set, &mut task_unit).await;
            }
        }
        loop {
            while !self.halt.is_cancelled()
                && let Some(u) = self.ready.pop_front()
            {
                if self.phase[u] == Phase::Pending {
                    self.start(u, &reports, &mut set, &mut task_unit).await;
                }
            }
            if set.is_empty() {
                break;
            }
            tokio::select! {
                biased;
                Some((u, p)) = progress.recv() => self.progress(u, p).await,
                Some((u, why)) = told.recv() => self.told(u, why).await,
                joined = set.join_next_with_id() => match joined {
                    Some(Ok((id, (u, end)))) => {
                        task_unit.remove(&id);
                        self.ended(u, end, &reports, &mut set, &mut task_unit).await;
                    }
                    Some(Err(e)) => {
                        // A task panicked (a bug): its unit fails instead of hanging.
                        let Some(u) = task_unit.remove(&e.id()) else { continue };
                        tracing::error!("run {}: unit {u}'s task failed: {e}", self.run.id);
                        let fin = Finished {
                            outcome: Outcome::Failed(format!("internal error: {e}")),
                            exit_code: None,
                            ended_at: now_ms(),
                        };
                        self.finished(u, fin, &mut set, &mut task_unit).await;
                    }
                    None => {}
                },
            }
        }
    }

    pub(super) async fn progress(&mut self, u: usize, p: Progress) {
        let row = &self.steps[self.plan.units[u].step];
        if row.status.is_terminal() {
            return;
        }
        let (status, why) = match p {
            Progress::Submitted(job) => {
                let step_id = row.id;
                self.steps[self.plan.units[u].step].slurm_job = Some(job.0);
                self.send(Msg::SlurmJob { step_id, job }).await;
                return;
            }
            Progress::Queued if row.status == StepStatus::Running => return,
            Progress::Queued => (StepStatus::Queued, None),
            Progress::Running => (StepStatus::Running, None),
            // Back from running (a requeued job) only as the status table allows.
            Progress::Waiting(why) => (StepStatus::Queued, Some(why)),
        };
        if !row.status.can_become(status) {
            return;
        }
        self.set_unit(u, status, why, now_ms()).await;
    }

    pub(super) async fn start(
        &mut self,
        u: usize,
        reports: &task::Reports,
        set: &mut JoinSet<(usize, End)>,
        task_unit: &mut HashMap<tokio::task::Id, usize>,
    ) {
        let Some(spec) = self.plan.units[u].policy.gate_before.clone() else {
            self.spawn_run(u, reports, set, task_unit);
            return;
        };
        self.phase[u] = Phase::GateBefore;
        self.gates_waiting += 1;
        if let Some(place) = &self.places[u] {
            place.at_gate();
        }
        let note = self.exec.gate_note(&self.plan.units[u].work);
        self.set_unit(u, StepStatus::AwaitingApproval, note, now_ms())
            .await;
        let decided = task::open_gate(&self.tx, self.run.id, spec).await;
        let gate = task::gate(decided, self.shared.shutdown.clone());
        let id = set
            .spawn(async move { (u, End::GateBefore(gate.await)) })
            .id();
        task_unit.insert(id, u);
    }

    pub(super) async fn open_gate_after(
        &mut self,
        u: usize,
        set: &mut JoinSet<(usize, End)>,
        task_unit: &mut HashMap<tokio::task::Id, usize>,
    ) {
        let Some(spec) = self.plan.units[u].policy.gate_after.clone() else {
            return;
        };
        self.phase[u] = Phase::GateAfter;
        self.gates_waiting += 1;
        if let Some(g) = self.plan.units[u].group {
            self.groups[g].gate_waiting = true;
            self.settle_group(g).await;
        }
        let decided = task::open_gate(&self.tx, self.run.id, spec).await;
        let gate = task::gate(decided, self.shared.shutdown.clone());
        let id = set
            .spawn(async move { (u, End::GateAfter(gate.await)) })
            .id();
        task_unit.insert(id, u);
    }

    pub(super) fn spawn_run(
        &mut self,
        u: usize,
        reports: &task::Reports,
        set: &mut JoinSet<(usize, End)>,
        task_unit: &mut HashMap<tokio::task::Id, usize>,
    ) {
        self.phase[u] = Phase::Running;
        let place = self.places[u].take();
        let unit = &self.plan.units[u];
        let job = RunJob {
            unit: u,
            exec: self.exec.clone(),
            work: unit.work.clone(),
            log: self.log(u),
            group: unit
                .group
                .map(|g| (self.plan.groups[g].key, self.prepared[g].clone())),
            queue: place,
            slots: self.shared.slots.clone(),
            halt: self.halt.clone(),
            stop: match unit.policy.on_cancel {
                OnCancel::Terminate => self.halt.clone(),
                OnCancel::FinishInFlight => self.shared.shutdown.clone(),
            },
            reports: reports.clone(),
            owner: self.owner(u),
        };
        // Boxed: the unit's future (~5 KiB) is then made once in place, not moved
        // through the spawn (copying it was 2.5% of the engine thread's time in a
        // DAG of short steps).
        let id = set
            .spawn(async move { (u, End::Run(Box::pin(task::run(job)).await)) })
            .id();
        task_unit.insert(id, u);
    }
}
