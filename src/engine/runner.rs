//! The runner actor: the one owner of engine state. It commits every change to the
//! store, then publishes it; drivers and clients only send it messages.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::plan::Definition;
use super::{EngineError, Result, Shared};
use crate::config::GatePolicy;
use crate::domain::{
    Decision, Event, GateInfo, GateStatus, RunDetail, RunInfo, RunKind, RunStatus, StepInfo,
    StepStatus, Trigger, now_ms,
};
use crate::store::{AuditEntry, NewRun, RunFilter, Store};

type Reply<T> = oneshot::Sender<Result<T>>;

/// Commits of step changes are at most this frequent: a busy engine batches them (and
/// delays their events by at most this long); an idle one commits each at once.
const COMMIT_EVERY: Duration = Duration::from_millis(5);

pub(crate) enum Msg {
    // From clients.
    Create(Box<NewRun>, Reply<RunInfo>),
    Cancel(i64, String, Reply<RunInfo>),
    Rerun(i64, String, Reply<RunInfo>),
    Decide {
        run_id: i64,
        env: String,
        decision: Decision,
        by: String,
        comment: Option<String>,
        reply: Reply<GateInfo>,
    },
    List(RunFilter, Reply<Vec<RunInfo>>),
    Detail(i64, Reply<RunDetail>),
    WaitingGates(Reply<Vec<GateInfo>>),
    Audit(i64, Reply<Vec<AuditEntry>>),
    Shutdown(oneshot::Sender<()>),
    // From drivers.
    RunStatus {
        run_id: i64,
        status: RunStatus,
        reason: Option<String>,
    },
    Step(StepInfo),
    OpenGate {
        run_id: i64,
        env: String,
        policy: GatePolicy,
        reply: oneshot::Sender<GateInfo>,
    },
    ExpireGate(i64),
    Done(i64),
    /// A run's driver panicked (a bug): the run fails instead of hanging.
    Crashed(i64, String),
}

pub(crate) struct Runner {
    store: Store,
    shared: Arc<Shared>,
    tx: mpsc::Sender<Msg>,
    rx: mpsc::Receiver<Msg>,
    /// Runs with a live driver, and the token that cancels each.
    active: HashMap<i64, CancellationToken>,
    /// Drivers waiting at a gate, by gate id.
    waiters: HashMap<i64, oneshot::Sender<GateInfo>>,
    shutdown: Option<Vec<oneshot::Sender<()>>>,
}

/// What a batch of messages produced: events to publish and replies to send, both
/// only after the batch's transaction commits.
#[derive(Default)]
struct Out {
    events: Vec<Event>,
    replies: Vec<Box<dyn FnOnce() + Send>>,
}

impl Out {
    fn reply<T: Send + 'static>(&mut self, to: Reply<T>, v: Result<T>) {
        self.replies.push(Box::new(move || {
            let _ = to.send(v);
        }));
    }
}

/// Waits for run `id`'s driver; one that panicked (a bug; its steps' processes die
/// with it) is reported, so the run fails instead of staying `running` for good.
async fn supervise(driver: tokio::task::JoinHandle<()>, tx: mpsc::Sender<Msg>, id: i64) {
    if let Err(e) = driver.await
        && e.is_panic()
    {
        let panic = e.into_panic();
        let why = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("a panic")
            .to_string();
        let _ = tx.send(Msg::Crashed(id, why)).await;
    }
}

impl Runner {
    pub fn new(
        store: Store,
        shared: Arc<Shared>,
        tx: mpsc::Sender<Msg>,
        rx: mpsc::Receiver<Msg>,
    ) -> Self {
        Self {
            store,
            shared,
            tx,
            rx,
            active: HashMap::new(),
            waiters: HashMap::new(),
            shutdown: None,
        }
    }

    /// After a crash: runs that were executing become `interrupted` (their steps too,
    /// their logs trimmed of torn records); runs that were queued or waiting at a gate
    /// get a driver again.
    pub fn recover(&mut self) -> Result<()> {
        let now = now_ms();
        let dead = self
            .store
            .runs_with_status(&[RunStatus::Running, RunStatus::Cancelling])?;
        let logs = self.shared.logs.clone();
        self.store.batch(|s| {
            for mut run in dead {
                for mut step in s.steps(run.id)? {
                    if !step.status.is_terminal() {
                        if step.started_at.is_some() {
                            let _ = logs.repair(run.id, step.id);
                        }
                        step.status = StepStatus::Interrupted;
                        step.reason = Some("the engine stopped while this ran".into());
                        step.ended_at.get_or_insert(now);
                        s.update_step(&step)?;
                    }
                }
                run.status = RunStatus::Interrupted;
                run.reason = Some("the engine stopped while this run was executing".into());
                run.ended_at = Some(now);
                s.update_run(&run)?;
            }
            Ok(())
        })?;
        for run in self
            .store
            .runs_with_status(&[RunStatus::Queued, RunStatus::AwaitingApproval])?
        {
            self.spawn_driver(&run)?;
        }
        Ok(())
    }

    pub async fn run(mut self) {
        let mut batch = Vec::with_capacity(256);
        let mut last_commit = Instant::now() - COMMIT_EVERY;
        loop {
            if self.rx.recv_many(&mut batch, 256).await == 0 {
                break;
            }
            let mut out = Out::default();
            // Only step changes wait for company; anything else (a request, a run's
            // status, a shutdown) is committed and answered at once.
            let urgent = batch.iter().any(|m| !matches!(m, Msg::Step(_)));
            // One transaction for the whole batch: many small state changes, one commit.
            let began = self.begin();
            for msg in batch.drain(..) {
                self.handle(msg, &mut out);
            }
            // A busy engine commits step changes at most once per COMMIT_EVERY: what
            // arrives until then joins this commit. An idle one commits at once.
            let due = last_commit + COMMIT_EVERY;
            if Instant::now() < due && !urgent {
                tokio::time::sleep_until(due.into()).await;
                while let Ok(msg) = self.rx.try_recv() {
                    self.handle(msg, &mut out);
                }
            }
            if began {
                self.commit();
            }
            last_commit = Instant::now();
            for e in out.events {
                let _ = self.shared.events.send(e);
            }
            for r in out.replies {
                r();
            }
            if let Some(waiting) = &mut self.shutdown
                && self.active.is_empty()
            {
                for w in waiting.drain(..) {
                    let _ = w.send(());
                }
                break;
            }
        }
    }

    fn begin(&mut self) -> bool {
        match self.store.begin() {
            Ok(()) => true,
            Err(e) => {
                tracing::error!("cannot begin a transaction: {e}");
                false
            }
        }
    }

    fn commit(&mut self) {
        if let Err(e) = self.store.commit() {
            tracing::error!("commit failed: {e}");
        }
    }

    fn handle(&mut self, msg: Msg, out: &mut Out) {
        match msg {
            Msg::Create(new, reply) => {
                let r = self.create(&new, out);
                out.reply(reply, r);
            }
            Msg::Cancel(id, by, reply) => {
                let r = self.cancel(id, &by, out);
                out.reply(reply, r);
            }
            Msg::Rerun(id, by, reply) => {
                let r = self.rerun(id, &by, out);
                out.reply(reply, r);
            }
            Msg::Decide {
                run_id,
                env,
                decision,
                by,
                comment,
                reply,
            } => {
                let r = self.decide(run_id, &env, decision, &by, comment, out);
                out.reply(reply, r);
            }
            Msg::List(f, reply) => {
                let r = self.store.list_runs(&f).map_err(Into::into);
                out.reply(reply, r);
            }
            Msg::Detail(id, reply) => {
                let r = self
                    .store
                    .detail(id)
                    .map_err(EngineError::from)
                    .and_then(|d| d.ok_or_else(|| no_run(id)));
                out.reply(reply, r);
            }
            Msg::WaitingGates(reply) => {
                let r = self.store.waiting_gates().map_err(Into::into);
                out.reply(reply, r);
            }
            Msg::Audit(id, reply) => {
                let r = self.store.audit(id).map_err(Into::into);
                out.reply(reply, r);
            }
            Msg::Shutdown(done) => {
                self.shared.shutdown.cancel();
                self.shutdown.get_or_insert_with(Vec::new).push(done);
            }
            Msg::RunStatus {
                run_id,
                status,
                reason,
            } => {
                if let Err(e) = self.set_run_status(run_id, status, reason, out) {
                    tracing::error!("run {run_id}: {e}");
                }
            }
            Msg::Step(step) => match self.store.update_step(&step) {
                Ok(()) => out.events.push(Event::Step { step }),
                Err(e) => tracing::error!("step {}: {e}", step.id),
            },
            Msg::OpenGate {
                run_id,
                env,
                policy,
                reply,
            } => {
                if let Err(e) = self.open_gate(run_id, &env, &policy, reply, out) {
                    tracing::error!("gate {run_id}/{env}: {e}");
                }
            }
            Msg::ExpireGate(gate_id) => {
                if let Err(e) = self.expire_gate(gate_id, out) {
                    tracing::error!("gate {gate_id}: {e}");
                }
            }
            Msg::Done(run_id) => {
                self.active.remove(&run_id);
            }
            Msg::Crashed(run_id, why) => {
                self.active.remove(&run_id);
                if let Err(e) = self.crashed(run_id, &why, out) {
                    tracing::error!("run {run_id}: {e}");
                }
            }
        }
    }

    /// Starts the scheduler of a run found in the store (after a restart).
    fn spawn_driver(&mut self, run: &RunInfo) -> Result<()> {
        let steps = self.store.steps(run.id)?;
        let stored: serde_json::Value = self
            .store
            .definition_as(run.id)?
            .ok_or_else(|| no_run(run.id))?;
        let def = Definition::read(&run.spec(), &stored)?;
        self.start_driver(run, def, steps);
        Ok(())
    }

    fn start_driver(&mut self, run: &RunInfo, def: Definition, steps: Vec<StepInfo>) {
        let token = self.shared.shutdown.child_token();
        let driver = super::plan::start(
            run.clone(),
            def,
            steps,
            self.shared.clone(),
            self.tx.clone(),
            token.clone(),
        );
        tokio::spawn(supervise(driver, self.tx.clone(), run.id));
        self.active.insert(run.id, token);
    }

    /// Ends a run whose driver crashed: its unfinished steps and the run fail.
    fn crashed(&mut self, run_id: i64, why: &str, out: &mut Out) -> Result<()> {
        tracing::error!("run {run_id}: the driver crashed: {why}");
        let reason = format!("internal error: the run's driver crashed ({why})");
        let now = now_ms();
        for mut step in self.store.steps(run_id)? {
            if !step.status.is_terminal() {
                step.status = StepStatus::Failed;
                step.reason = Some(reason.clone());
                step.ended_at.get_or_insert(now);
                self.store.update_step(&step)?;
                out.events.push(Event::Step { step });
            }
        }
        self.set_run_status(run_id, RunStatus::Failed, Some(reason), out)?;
        Ok(())
    }

    fn audit(
        &self,
        actor: &str,
        action: &str,
        run_id: i64,
        target: Option<&str>,
        comment: Option<&str>,
    ) -> Result<()> {
        self.store.append_audit(&AuditEntry {
            at: now_ms(),
            actor: actor.to_string(),
            action: action.to_string(),
            run_id,
            target: target.map(str::to_string),
            comment: comment.map(str::to_string),
        })?;
        Ok(())
    }

    fn create(&mut self, new: &NewRun, out: &mut Out) -> Result<RunInfo> {
        if self.shutdown.is_some() {
            return Err(EngineError::Stopped);
        }
        let run = self.store.insert_run(new, now_ms())?;
        out.events.push(Event::Run { run: run.clone() });
        // The driver starts from what was just stored, not from reading it back.
        let (planned, def) = super::plan::plan(new)?;
        let mut steps: Vec<StepInfo> = Vec::with_capacity(planned.len());
        for (pos, p) in planned.into_iter().enumerate() {
            let parent = p.parent.and_then(|i| steps.get(i).map(|s| s.id));
            let step = self
                .store
                .insert_step(run.id, p.stage, &p.name, pos as i64, parent)?;
            out.events.push(Event::Step { step: step.clone() });
            steps.push(step);
        }
        let action = if new.trigger == Trigger::Rerun {
            "rerun"
        } else {
            "trigger"
        };
        self.audit(&new.triggered_by, action, run.id, None, None)?;
        self.start_driver(&run, def, steps);
        Ok(run)
    }

    fn rerun(&mut self, id: i64, by: &str, out: &mut Out) -> Result<RunInfo> {
        let orig = self.store.run(id)?.ok_or_else(|| no_run(id))?;
        let definition: serde_json::Value =
            self.store.definition_as(id)?.ok_or_else(|| no_run(id))?;
        let new = NewRun {
            spec: orig.spec(),
            run_type: orig.run_type,
            trigger: Trigger::Rerun,
            commit_message: orig.commit_message,
            author: orig.author,
            triggered_by: by.to_string(),
            rerun_of: Some(id),
            attempt: orig.attempt + 1,
            definition,
        };
        self.create(&new, out)
    }

    fn cancel(&mut self, id: i64, by: &str, out: &mut Out) -> Result<RunInfo> {
        let run = self.store.run(id)?.ok_or_else(|| no_run(id))?;
        if run.status.is_terminal() {
            return Err(EngineError::Conflict(format!(
                "run {id} has already ended ({}); nothing to cancel",
                run.status
            )));
        }
        if run.status == RunStatus::Cancelling {
            return Ok(run);
        }
        self.audit(by, "cancel", id, None, None)?;
        let run = self.set_run_status(
            id,
            RunStatus::Cancelling,
            Some(format!("cancelled by {by}")),
            out,
        )?;
        for gate in self.store.gates(id)? {
            if gate.status == GateStatus::Waiting {
                self.close_gate(gate, GateStatus::Cancelled, by, None, out)?;
            }
        }
        if let Some(token) = self.active.get(&id) {
            token.cancel();
        }
        Ok(run)
    }

    fn set_run_status(
        &mut self,
        id: i64,
        status: RunStatus,
        reason: Option<String>,
        out: &mut Out,
    ) -> Result<RunInfo> {
        let mut run = self.store.run(id)?.ok_or_else(|| no_run(id))?;
        if !run.status.can_become(status) {
            return Ok(run);
        }
        let now = now_ms();
        run.status = status;
        if reason.is_some() {
            run.reason = reason;
        }
        if status == RunStatus::Running {
            run.started_at.get_or_insert(now);
        }
        if status.is_terminal() {
            run.started_at.get_or_insert(now);
            run.ended_at = Some(now);
        }
        self.store.update_run(&run)?;
        out.events.push(Event::Run { run: run.clone() });
        Ok(run)
    }

    fn open_gate(
        &mut self,
        run_id: i64,
        env: &str,
        policy: &GatePolicy,
        reply: oneshot::Sender<GateInfo>,
        out: &mut Out,
    ) -> Result<()> {
        // A resumed run finds its gate as it was: still waiting, or decided meanwhile.
        let existing = self
            .store
            .gates(run_id)?
            .into_iter()
            .rev()
            .find(|g| g.env == env);
        let gate = match existing {
            Some(g) if g.status != GateStatus::Waiting => {
                let _ = reply.send(g);
                return Ok(());
            }
            Some(g) => g,
            None => {
                let now = now_ms();
                let expires = policy.expires_after_ms.map(|ms| now + ms as i64);
                let g = self.store.insert_gate(run_id, env, now, expires)?;
                out.events.push(Event::Gate { gate: g.clone() });
                g
            }
        };
        self.set_run_status(run_id, RunStatus::AwaitingApproval, None, out)?;
        if let Some(at) = gate.expires_at {
            let tx = self.tx.clone();
            let id = gate.id;
            let wait = (at - now_ms()).max(0) as u64;
            tokio::spawn(async move {
                tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
                let _ = tx.send(Msg::ExpireGate(id)).await;
            });
        }
        self.waiters.insert(gate.id, reply);
        Ok(())
    }

    fn close_gate(
        &mut self,
        mut gate: GateInfo,
        status: GateStatus,
        by: &str,
        comment: Option<String>,
        out: &mut Out,
    ) -> Result<GateInfo> {
        gate.status = status;
        gate.decided_by = Some(by.to_string());
        gate.decided_at = Some(now_ms());
        gate.comment = comment;
        self.store.update_gate(&gate)?;
        let action = match status {
            GateStatus::Approved => "approve",
            GateStatus::Rejected => "reject",
            GateStatus::Expired => "expire",
            GateStatus::Cancelled => "cancel_gate",
            GateStatus::Waiting => "open",
        };
        self.audit(
            by,
            action,
            gate.run_id,
            Some(&gate.env),
            gate.comment.as_deref(),
        )?;
        out.events.push(Event::Gate { gate: gate.clone() });
        if let Some(w) = self.waiters.remove(&gate.id) {
            let g = gate.clone();
            out.replies.push(Box::new(move || {
                let _ = w.send(g);
            }));
        }
        Ok(gate)
    }

    fn decide(
        &mut self,
        run_id: i64,
        env: &str,
        decision: Decision,
        by: &str,
        comment: Option<String>,
        out: &mut Out,
    ) -> Result<GateInfo> {
        let run = self.store.run(run_id)?.ok_or_else(|| no_run(run_id))?;
        let gate = self
            .store
            .gates(run_id)?
            .into_iter()
            .rev()
            .find(|g| g.env == env && g.status == GateStatus::Waiting)
            .ok_or_else(|| {
                EngineError::Conflict(format!(
                    "no gate is waiting at `{env}` in run {run_id} (the run is {})",
                    run.status
                ))
            })?;
        let policy = match run.kind {
            RunKind::Service => {
                let def = self
                    .store
                    .definition(run_id)?
                    .ok_or_else(|| no_run(run_id))?;
                def.environments
                    .iter()
                    .find(|e| e.name == env)
                    .map(|e| e.gate.clone())
                    .unwrap_or_default()
            }
            // Environment and node gates of an infra project share the environment's approvers.
            RunKind::Infra | RunKind::StackJob => {
                let def: crate::config::infra::InfraProject = self
                    .store
                    .definition_as(run_id)?
                    .ok_or_else(|| no_run(run_id))?;
                def.gate
            }
        };
        if let Some(why) = policy.refuses(by, &run.triggered_by) {
            return Err(EngineError::Forbidden(why));
        }
        let status = match decision {
            Decision::Approve => GateStatus::Approved,
            Decision::Reject => GateStatus::Rejected,
        };
        self.close_gate(gate, status, by, comment, out)
    }

    fn expire_gate(&mut self, gate_id: i64, out: &mut Out) -> Result<()> {
        let Some(gate) = self
            .store
            .waiting_gates()?
            .into_iter()
            .find(|g| g.id == gate_id)
        else {
            return Ok(()); // decided before it expired
        };
        self.close_gate(
            gate,
            GateStatus::Expired,
            "pipedeck",
            Some("the gate expired".into()),
            out,
        )?;
        Ok(())
    }
}

fn no_run(id: i64) -> EngineError {
    EngineError::NotFound(format!("no run {id}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{RunType, Stage, Trigger};

    #[tokio::test]
    async fn a_driver_that_panics_is_reported() {
        let (tx, mut rx) = mpsc::channel(4);
        let driver = tokio::spawn(async { panic!("boom") });
        supervise(driver, tx.clone(), 7).await;
        match rx.try_recv() {
            Ok(Msg::Crashed(7, why)) => assert_eq!(why, "boom"),
            _ => panic!("no crash reported"),
        }
        // One that ends normally is not.
        supervise(tokio::spawn(async {}), tx, 8).await;
        assert!(rx.try_recv().is_err());
    }

    #[tokio::test]
    async fn a_crashed_run_fails_with_its_unfinished_steps() {
        let dir = tempfile::tempdir().unwrap();
        let (events, mut seen) = tokio::sync::broadcast::channel(64);
        let shared = Arc::new(Shared {
            data_dir: dir.path().to_path_buf(),
            logs: crate::store::logs::LogStore::new(dir.path().join("logs")),
            events,
            slots: Arc::new(tokio::sync::Semaphore::new(1)),
            env_locks: Default::default(),
            shutdown: CancellationToken::new(),
        });
        let (tx, rx) = mpsc::channel(4);
        let mut r = Runner::new(Store::in_memory().unwrap(), shared, tx, rx);
        let new = NewRun {
            spec: crate::domain::RunSpec::Service {
                service: "svc".into(),
                branch: "main".into(),
                tag: None,
                commit: "abc".into(),
            },
            run_type: RunType::Production,
            trigger: Trigger::Manual,
            commit_message: "m".into(),
            author: "a".into(),
            triggered_by: "t".into(),
            rerun_of: None,
            attempt: 1,
            definition: serde_json::json!({}),
        };
        let run = r.store.insert_run(&new, now_ms()).unwrap();
        let mut done = r
            .store
            .insert_step(run.id, Stage::Build, "a", 0, None)
            .unwrap();
        done.status = StepStatus::Succeeded;
        r.store.update_step(&done).unwrap();
        let mut running = r
            .store
            .insert_step(run.id, Stage::Build, "b", 1, None)
            .unwrap();
        running.status = StepStatus::Running;
        r.store.update_step(&running).unwrap();
        let mut out = Out::default();
        r.set_run_status(run.id, RunStatus::Running, None, &mut out)
            .unwrap();
        r.active.insert(run.id, CancellationToken::new());

        let mut out = Out::default();
        r.handle(Msg::Crashed(run.id, "boom".into()), &mut out);
        assert!(r.active.is_empty());
        let d = r.store.detail(run.id).unwrap().unwrap();
        assert_eq!(d.run.status, RunStatus::Failed);
        assert!(d.run.reason.as_deref().unwrap_or("").contains("boom"));
        let status = |name: &str| d.steps.iter().find(|s| s.name == name).unwrap().status;
        assert_eq!(status("a"), StepStatus::Succeeded);
        assert_eq!(status("b"), StepStatus::Failed);
        assert!(
            out.events
                .iter()
                .any(|e| matches!(e, Event::Run { run } if run.status == RunStatus::Failed))
        );
        assert!(seen.try_recv().is_err()); // published only after the commit
    }
}
