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
    Decision, Deployment, EnvQueue, Event, GateInfo, GateStatus, QueueKey, QueuePolicy, RunDetail,
    RunInfo, RunKind, RunStatus, StepInfo, StepStatus, Supersession, Trigger, now_ms,
};
use crate::store::{AuditEntry, NewRun, RunFilter, Store};

mod deploys;
mod gates;
mod runs;

type Reply<T> = oneshot::Sender<Result<T>>;

/// Commits of step changes are at most this frequent: a busy engine batches them (and
/// delays their events by at most this long); an idle one commits each at once.
const COMMIT_EVERY: Duration = Duration::from_millis(5);

pub(crate) enum Msg {
    // From clients.
    Create(Box<NewRun>, Reply<RunInfo>),
    Cancel(i64, String, Reply<RunInfo>),
    /// Rerun run `.0` for `.1`; `.2`: it may go back to an older commit on purpose.
    Rerun(i64, String, bool, Reply<RunInfo>),
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
    /// Each environment's queue.
    Queues(Vec<(QueueKey, QueuePolicy)>, Reply<Vec<EnvQueue>>),
    /// What each environment runs now.
    Current(Vec<QueueKey>, Reply<Vec<Deployment>>),
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
    /// A newer run took the environment of a gate that waits: resolve it as superseded.
    SupersedeGate {
        run_id: i64,
        env: String,
        why: Supersession,
    },
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

/// What a batch of messages produced: events to publish, replies to send and side
/// effects to carry out, all only after the batch's transaction commits.
#[derive(Default)]
pub(super) struct Out {
    events: Vec<Event>,
    /// Each is called with the commit's failure, if it failed.
    replies: Vec<Answer>,
    after: Vec<After>,
}

/// Answers one caller, given the commit's failure if it failed.
type Answer = Box<dyn FnOnce(Option<&EngineError>) + Send>;

/// A side effect that may happen only once the change that caused it is stored.
pub(super) enum After {
    /// Start the scheduler of a run just created.
    Start(Box<(RunInfo, Definition, Vec<StepInfo>)>),
    /// Stop a cancelled run's scheduler.
    Cancel(i64),
    /// A scheduler waits for this gate's decision (and its expiry, if it has one).
    Wait(GateInfo, oneshot::Sender<GateInfo>),
    /// A gate was decided: tell the scheduler that waits for it.
    Decided(GateInfo),
}

impl Out {
    pub(super) fn event(&mut self, e: Event) {
        self.events.push(e);
    }

    pub(super) fn after(&mut self, a: After) {
        self.after.push(a);
    }

    fn reply<T: Send + 'static>(&mut self, to: Reply<T>, v: Result<T>) {
        self.replies.push(Box::new(move |failed| {
            let v = match failed {
                Some(e) => Err(e.clone()),
                None => v,
            };
            // The caller may have gone away; nothing is lost but its answer.
            let _ = to.send(v);
        }));
    }

    /// How much this holds, to undo one message's share.
    fn mark(&self) -> (usize, usize) {
        (self.events.len(), self.after.len())
    }

    fn undo(&mut self, (events, after): (usize, usize)) {
        self.events.truncate(events);
        self.after.truncate(after);
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
        // The runner is gone only when the engine has stopped: nobody is left to record
        // the crash, so the log keeps it.
        if tx.send(Msg::Crashed(id, why.clone())).await.is_err() {
            tracing::error!("run {id}: its driver panicked after the engine stopped: {why}");
        }
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
            let began = self.store.begin();
            for msg in batch.drain(..) {
                self.handle_one(msg, &mut out);
            }
            // A busy engine commits step changes at most once per COMMIT_EVERY: what
            // arrives until then joins this commit. An idle one commits at once.
            let due = last_commit + COMMIT_EVERY;
            if Instant::now() < due && !urgent {
                tokio::time::sleep_until(due.into()).await;
                while let Ok(msg) = self.rx.try_recv() {
                    self.handle_one(msg, &mut out);
                }
            }
            // Without a transaction (BEGIN failed) each statement committed on its own.
            let stored = match began {
                Ok(()) => self.store.commit(),
                Err(e) => {
                    tracing::error!("cannot begin a transaction: {e}");
                    Ok(())
                }
            };
            last_commit = Instant::now();
            self.publish(out, stored.err().map(EngineError::from));
            if let Some(waiting) = &mut self.shutdown
                && self.active.is_empty()
            {
                for w in waiting.drain(..) {
                    // A shutdown caller that went away needs no answer.
                    let _ = w.send(());
                }
                break;
            }
        }
    }

    /// Commit, then publish (EN-3): a stored batch publishes its events, answers its
    /// callers and carries out its side effects. A batch that could not be stored
    /// (rolled back whole) publishes nothing and answers every caller with the failure.
    fn publish(&mut self, out: Out, failed: Option<EngineError>) {
        if let Some(e) = &failed {
            tracing::error!("a batch of changes could not be stored and was rolled back: {e}");
            let e = EngineError::Internal(format!("the engine could not store this change: {e}"));
            for r in out.replies {
                r(Some(&e));
            }
            return;
        }
        for e in out.events {
            // No subscriber is not an error: the change is stored either way.
            let _ = self.shared.events.send(e);
        }
        // Side effects first: a caller told "cancelling" may act on it at once, and
        // the run's scheduler must already know.
        for a in out.after {
            self.carry_out(a);
        }
        for r in out.replies {
            r(None);
        }
    }

    fn carry_out(&mut self, a: After) {
        match a {
            After::Start(start) => {
                let (run, def, steps) = *start;
                self.start_driver(&run, def, steps);
            }
            After::Cancel(id) => {
                if let Some(token) = self.active.get(&id) {
                    token.cancel();
                }
            }
            After::Wait(gate, reply) => {
                if let Some(at) = gate.expires_at {
                    let tx = self.tx.clone();
                    let id = gate.id;
                    let wait = (at - now_ms()).max(0) as u64;
                    tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_millis(wait)).await;
                        // The runner is gone only when the engine has stopped.
                        let _ = tx.send(Msg::ExpireGate(id)).await;
                    });
                }
                self.waiters.insert(gate.id, reply);
            }
            After::Decided(gate) => {
                if let Some(w) = self.waiters.remove(&gate.id) {
                    // A scheduler that stopped waiting (shutdown) needs no answer.
                    let _ = w.send(gate);
                }
            }
        }
    }

    /// Handles one message. What it wrote is undone if it failed part-way (a
    /// savepoint), so a failed command leaves no half of itself in the batch.
    fn handle_one(&mut self, msg: Msg, out: &mut Out) {
        // A step change is one statement: it is stored whole or not at all.
        if matches!(msg, Msg::Step(_)) {
            self.handle(msg, out);
            return;
        }
        let mark = out.mark();
        let saved = self.store.savepoint();
        let ok = self.handle(msg, out);
        let undone = match (saved, ok) {
            (Ok(()), true) => self.store.release().map(|()| false),
            (Ok(()), false) => self.store.rollback_to().map(|()| true),
            (Err(e), _) => Err(e),
        };
        match undone {
            Ok(true) => out.undo(mark),
            Ok(false) => {}
            Err(e) => tracing::error!("savepoint: {e}"),
        }
    }

    /// Handles one message; false if a change it made failed to be written.
    fn handle(&mut self, msg: Msg, out: &mut Out) -> bool {
        match msg {
            Msg::Create(new, reply) => {
                let r = self.create(&new, out);
                let ok = r.is_ok();
                out.reply(reply, r);
                ok
            }
            Msg::Cancel(id, by, reply) => {
                let r = self.cancel(id, &by, out);
                let ok = r.is_ok();
                out.reply(reply, r);
                ok
            }
            Msg::Rerun(id, by, allow_older, reply) => {
                let r = self.rerun(id, &by, allow_older, out);
                let ok = r.is_ok();
                out.reply(reply, r);
                ok
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
                let ok = r.is_ok();
                out.reply(reply, r);
                ok
            }
            Msg::List(f, reply) => {
                let r = self.store.list_runs(&f).map_err(Into::into);
                out.reply(reply, r);
                true
            }
            Msg::Detail(id, reply) => {
                let r = self
                    .store
                    .detail(id)
                    .map_err(EngineError::from)
                    .and_then(|d| d.ok_or_else(|| no_run(id)));
                out.reply(reply, r);
                true
            }
            Msg::WaitingGates(reply) => {
                let r = self.store.waiting_gates().map_err(Into::into);
                out.reply(reply, r);
                true
            }
            Msg::Audit(id, reply) => {
                let r = self.store.audit(id).map_err(Into::into);
                out.reply(reply, r);
                true
            }
            Msg::Queues(keys, reply) => {
                out.reply(reply, self.queues(keys));
                true
            }
            Msg::Current(keys, reply) => {
                out.reply(reply, self.current(keys));
                true
            }
            Msg::SupersedeGate { run_id, env, why } => {
                logged(self.supersede_gate(run_id, &env, &why, out), || {
                    format!("gate {env} of run {run_id}")
                })
            }
            Msg::Shutdown(done) => {
                self.shared.shutdown.cancel();
                self.shutdown.get_or_insert_with(Vec::new).push(done);
                true
            }
            Msg::RunStatus {
                run_id,
                status,
                reason,
            } => logged(self.set_run_status(run_id, status, reason, out), || {
                format!("run {run_id}")
            }),
            Msg::Step(step) => match self.store.update_step(&step) {
                Ok(()) => {
                    // The deployment record follows its row; a failure is logged and
                    // leaves the row's change standing.
                    if let Err(e) = self.record_deploy(&step) {
                        tracing::error!("deployment of step {}: {e}", step.id);
                    }
                    out.event(Event::Step { step });
                    true
                }
                Err(e) => {
                    tracing::error!("step {}: {e}", step.id);
                    false
                }
            },
            Msg::OpenGate {
                run_id,
                env,
                policy,
                reply,
            } => logged(self.open_gate(run_id, &env, &policy, reply, out), || {
                format!("gate {env} of run {run_id}")
            }),
            Msg::ExpireGate(gate_id) => {
                logged(self.expire_gate(gate_id, out), || format!("gate {gate_id}"))
            }
            Msg::Done(run_id) => {
                self.active.remove(&run_id);
                true
            }
            Msg::Crashed(run_id, why) => {
                self.active.remove(&run_id);
                logged(self.crashed(run_id, &why, out), || format!("run {run_id}"))
            }
        }
    }
}

/// Whether `r` succeeded; a failure is logged with what it was about.
fn logged<T>(r: Result<T>, about: impl FnOnce() -> String) -> bool {
    if let Err(e) = &r {
        tracing::error!("{}: {e}", about());
    }
    r.is_ok()
}

pub(super) fn no_run(id: i64) -> EngineError {
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

    fn runner(dir: &std::path::Path) -> (Runner, tokio::sync::broadcast::Receiver<Event>) {
        let (events, seen) = tokio::sync::broadcast::channel(64);
        let shared = Arc::new(Shared {
            data_dir: dir.to_path_buf(),
            logs: crate::store::logs::LogStore::new(dir.join("logs")),
            events,
            slots: Arc::new(tokio::sync::Semaphore::new(1)),
            queues: Default::default(),
            shutdown: CancellationToken::new(),
        });
        let (tx, rx) = mpsc::channel(4);
        (
            Runner::new(Store::in_memory().unwrap(), shared, tx, rx),
            seen,
        )
    }

    fn new_run() -> NewRun {
        NewRun {
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
            allow_older: false,
            definition: serde_json::json!({}),
        }
    }

    /// EN-3: a batch whose COMMIT fails publishes nothing, carries out none of its
    /// side effects, answers its caller with the failure, and leaves the store as it was.
    #[tokio::test]
    async fn a_failed_commit_publishes_nothing_and_tells_the_caller() {
        let dir = tempfile::tempdir().unwrap();
        let (mut r, mut seen) = runner(dir.path());
        let run = r.store.insert_run(&new_run(), now_ms()).unwrap();
        r.active.insert(run.id, CancellationToken::new());
        let token = r.active[&run.id].clone();

        let mut out = Out::default();
        r.store.begin().unwrap();
        let (reply, answer) = oneshot::channel();
        r.handle_one(Msg::Cancel(run.id, "alice".into(), reply), &mut out);
        assert!(!out.events.is_empty(), "the cancel made changes to publish");
        // A change in the same batch that only fails at COMMIT (a deferred foreign key).
        r.store
            .execute_raw("PRAGMA defer_foreign_keys = ON")
            .unwrap();
        r.store
            .execute_raw(
                "INSERT INTO steps (run_id, stage, name, position, status) \
                 VALUES (9999, 'build', 'x', 0, 'pending')",
            )
            .unwrap();
        let stored = r.store.commit();
        assert!(stored.is_err());
        r.publish(out, stored.err().map(EngineError::from));

        let err = answer.await.unwrap().unwrap_err();
        assert!(err.to_string().contains("could not store"), "{err}");
        assert!(seen.try_recv().is_err(), "an event was published");
        assert!(
            !token.is_cancelled(),
            "the run's scheduler was told to stop"
        );
        let stored = r.store.run(run.id).unwrap().unwrap();
        assert_eq!(stored.status, RunStatus::Queued);
        assert!(r.store.audit(run.id).unwrap().is_empty());
    }

    /// A command that fails part-way leaves nothing of itself in the batch; the rest
    /// of the batch is stored.
    #[tokio::test]
    async fn a_failed_command_is_undone_and_the_rest_of_the_batch_stays() {
        let dir = tempfile::tempdir().unwrap();
        let (mut r, mut seen) = runner(dir.path());
        let run = r.store.insert_run(&new_run(), now_ms()).unwrap();
        // Cancel writes its audit entry, then fails to set the run's status.
        r.store
            .execute_raw(
                "CREATE TRIGGER refuse BEFORE UPDATE ON runs WHEN NEW.status = 'cancelling' \
                 BEGIN SELECT RAISE(ABORT, 'refused'); END",
            )
            .unwrap();
        let mut out = Out::default();
        r.store.begin().unwrap();
        let running = Msg::RunStatus {
            run_id: run.id,
            status: RunStatus::Running,
            reason: None,
        };
        r.handle_one(running, &mut out);
        let (reply, answer) = oneshot::channel();
        r.handle_one(Msg::Cancel(run.id, "alice".into(), reply), &mut out);
        r.store.commit().unwrap();
        r.publish(out, None);
        assert!(answer.await.unwrap().is_err());
        assert!(
            r.store.audit(run.id).unwrap().is_empty(),
            "half a cancel stayed"
        );
        let stored = r.store.run(run.id).unwrap().unwrap();
        assert_eq!(stored.status, RunStatus::Running);
        match seen.try_recv() {
            Ok(Event::Run { run }) => assert_eq!(run.status, RunStatus::Running),
            other => panic!("expected the running run, got {other:?}"),
        }
        assert!(seen.try_recv().is_err(), "the failed cancel published");
    }

    #[tokio::test]
    async fn a_crashed_run_fails_with_its_unfinished_steps() {
        let dir = tempfile::tempdir().unwrap();
        let (mut r, mut seen) = runner(dir.path());
        let new = new_run();
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
