//! The scheduler's policies, walked with an executor that runs nothing: each unit
//! does what its test says (succeed, fail, run until stopped, wait for a release).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{Notify, mpsc};

use super::{
    Executor, Finished, GateSpec, OnCancel, OnFailure, Outcome, Plan, Policy, Scheduler, Unit,
    UnitCtx,
};
use crate::domain::{
    GateInfo, GateKey, GateStatus, RunInfo, RunKind, RunStatus, RunType, StepInfo, StepStatus,
    Trigger, now_ms,
};
use crate::engine::Shared;
use crate::engine::runner::Msg;

#[derive(Clone)]
enum Does {
    Succeed,
    Fail,
    /// Runs until its stop token fires.
    RunUntilStopped,
    /// Succeeds once released.
    WaitFor(Arc<Notify>),
    /// Handed to another scheduler (a Slurm job 7): waits in its queue, runs, is
    /// requeued, runs again, succeeds.
    Elsewhere,
}

#[derive(Default)]
struct Fake {
    running: AtomicUsize,
    most_at_once: AtomicUsize,
}

impl Executor for Fake {
    type Work = Does;
    type PrepareError = std::convert::Infallible;

    async fn prepare(&self) -> Result<Vec<String>, Self::PrepareError> {
        Ok(Vec::new())
    }

    fn queues_elsewhere(&self, work: &Does) -> bool {
        matches!(work, Does::Elsewhere)
    }

    async fn run(&self, work: &Does, ctx: UnitCtx) -> Finished {
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_at_once.fetch_max(now, Ordering::SeqCst);
        let outcome = match work {
            Does::Succeed => Outcome::Succeeded { outputs: None },
            Does::Fail => Outcome::Failed("exited with code 1".into()),
            Does::RunUntilStopped => {
                ctx.stop.cancelled().await;
                Outcome::Stopped
            }
            Does::WaitFor(n) => {
                n.notified().await;
                Outcome::Succeeded { outputs: None }
            }
            Does::Elsewhere => {
                ctx.status.waiting("submitting".into());
                ctx.status
                    .submitted(crate::engine::executor::slurm::JobId(7));
                ctx.status.waiting("in the queue (Resources)".into());
                ctx.status.running();
                ctx.status.waiting("requeued".into());
                ctx.status.running();
                Outcome::Succeeded { outputs: None }
            }
        };
        // Let another unit in before this one gives its slot back.
        tokio::task::yield_now().await;
        self.running.fetch_sub(1, Ordering::SeqCst);
        drop(ctx.slot);
        Finished {
            outcome,
            exit_code: None,
            ended_at: now_ms(),
        }
    }
}

fn policy(on_failure: OnFailure, on_cancel: OnCancel) -> Policy {
    Policy {
        on_failure,
        on_cancel,
        gate_before: None,
        gate_after: None,
        queue: None,
    }
}

/// A unit on row `step` that needs the units `needs`.
fn unit(step: usize, needs: &[usize], does: Does, p: Policy) -> Unit<Does> {
    Unit {
        step,
        needs: needs.to_vec(),
        group: None,
        policy: p,
        work: Arc::new(does),
    }
}

struct Walk {
    rows: HashMap<String, StepInfo>,
    /// Every row change, in order.
    history: Vec<StepInfo>,
    /// The Slurm jobs recorded (step id, job).
    jobs: Vec<(i64, u64)>,
    run: Vec<(RunStatus, Option<String>)>,
    most_at_once: usize,
}

/// How the test's stand-in runner answers gates.
type Decide = Box<dyn Fn(&str) -> GateStatus + Send>;

/// Cancels the run once a row is running, then releases a unit.
struct CancelAt<'a> {
    row: &'a str,
    then_release: Arc<Notify>,
}

/// Walks `units` over rows named `names` with `slots` slots; gates are answered by
/// `decide`.
async fn walk(
    names: &[&str],
    units: Vec<Unit<Does>>,
    slots: usize,
    decide: Decide,
    cancel_at: Option<CancelAt<'_>>,
) -> Walk {
    let dir = tempfile::tempdir().unwrap();
    let shared = Arc::new(Shared::new(dir.path(), slots));
    let run = RunInfo {
        id: 1,
        kind: RunKind::Service,
        service: "svc".into(),
        run_type: RunType::Production,
        trigger: Trigger::Manual,
        branch: "main".into(),
        tag: None,
        commit_sha: "abc".into(),
        commit_message: "m".into(),
        author: "a".into(),
        triggered_by: "t".into(),
        status: RunStatus::Queued,
        reason: None,
        created_at: 0,
        started_at: None,
        ended_at: None,
        rerun_of: None,
        attempt: 1,
        environment: None,
        resource: None,
        operation: None,
        state_op: None,
        targets: Vec::new(),
        release: None,
    };
    let steps: Vec<StepInfo> = names
        .iter()
        .enumerate()
        .map(|(i, n)| StepInfo {
            name: n.to_string(),
            position: i as i64,
            ..StepInfo::sample(i as i64 + 1, 1, StepStatus::Pending)
        })
        .collect();
    let plan = Plan {
        units,
        groups: Vec::new(),
        run_gate: None,
        settled: Vec::new(),
    };
    let (tx, mut rx) = mpsc::channel(64);
    let cancel = shared.shutdown.child_token();
    let fake = Fake::default();
    let sched = Scheduler::new(run, plan, steps, fake, shared, tx, cancel.clone());
    let exec = sched.exec.clone();
    let task = tokio::spawn(sched.drive());
    let mut out = Walk {
        history: Vec::new(),
        jobs: Vec::new(),
        rows: HashMap::new(),
        run: Vec::new(),
        most_at_once: 0,
    };
    let gate_ids = Mutex::new(0);
    while let Some(msg) = tokio::time::timeout(std::time::Duration::from_secs(10), rx.recv())
        .await
        .expect("the walk stalled")
    {
        match msg {
            Msg::Step(s) => {
                if let Some(at) = &cancel_at
                    && at.row == s.name
                    && s.status == StepStatus::Running
                {
                    cancel.cancel();
                    at.then_release.notify_one();
                }
                out.history.push(s.clone());
                out.rows.insert(s.name.clone(), s);
            }
            Msg::SlurmJob { step_id, job } => out.jobs.push((step_id, job.0)),
            Msg::RunStatus { status, reason, .. } => out.run.push((status, reason)),
            Msg::OpenGate { env, reply, .. } => {
                let mut id = gate_ids.lock().unwrap();
                *id += 1;
                let status = decide(&env);
                let decided = GateInfo {
                    id: *id,
                    run_id: 1,
                    env,
                    status,
                    opened_at: 0,
                    expires_at: None,
                    decided_by: Some("alice".into()),
                    decided_at: Some(0),
                    comment: None,
                };
                reply.send(decided).unwrap();
            }
            Msg::Done(_) => break,
            _ => {}
        }
    }
    task.await.unwrap();
    out.most_at_once = exec.most_at_once.load(Ordering::SeqCst);
    out
}

impl Walk {
    fn row(&self, name: &str) -> (StepStatus, Option<&str>) {
        let r = &self.rows[name];
        (r.status, r.reason.as_deref())
    }

    fn ended(&self) -> (RunStatus, Option<&str>) {
        let (s, r) = self.run.last().unwrap();
        (*s, r.as_deref())
    }
}

fn approve_all() -> Decide {
    Box::new(|_| GateStatus::Approved)
}

#[tokio::test]
async fn a_failure_that_fails_the_run_stops_what_runs_and_skips_the_rest() {
    use OnCancel::Terminate;
    use OnFailure::FailRun;
    let p = || policy(FailRun, Terminate);
    let units = vec![
        unit(0, &[], Does::Succeed, p()),
        unit(1, &[0], Does::Fail, p()),
        unit(2, &[0], Does::RunUntilStopped, p()),
        unit(3, &[1, 2], Does::Succeed, p()),
    ];
    let w = walk(&["a", "bad", "slow", "last"], units, 4, approve_all(), None).await;
    assert_eq!(w.row("a").0, StepStatus::Succeeded);
    assert_eq!(w.row("bad").0, StepStatus::Failed);
    assert_eq!(
        w.row("slow"),
        (StepStatus::Skipped, Some("stopped: build/bad failed"))
    );
    assert_eq!(
        w.row("last"),
        (StepStatus::Skipped, Some("upstream failed: build/bad"))
    );
    assert_eq!(w.ended(), (RunStatus::Failed, Some("build/bad failed")));
}

#[tokio::test]
async fn a_failure_that_skips_downstream_lets_other_branches_finish() {
    let p = || policy(OnFailure::SkipDownstream, OnCancel::FinishInFlight);
    let units = vec![
        unit(0, &[], Does::Fail, p()),
        unit(1, &[0], Does::Succeed, p()),
        unit(2, &[1], Does::Succeed, p()),
        unit(3, &[], Does::Succeed, p()),
    ];
    let w = walk(&["x", "y", "z", "other"], units, 2, approve_all(), None).await;
    for n in ["y", "z"] {
        assert_eq!(
            w.row(n),
            (StepStatus::Skipped, Some("upstream failed: build/x"))
        );
    }
    assert_eq!(w.row("other").0, StepStatus::Succeeded);
    assert_eq!(w.ended(), (RunStatus::Failed, Some("build/x failed")));
}

#[tokio::test]
async fn never_more_units_at_once_than_slots() {
    let units = (0..12)
        .map(|i| {
            unit(
                i,
                &[],
                Does::Succeed,
                policy(OnFailure::FailRun, OnCancel::Terminate),
            )
        })
        .collect();
    let names: Vec<String> = (0..12).map(|i| format!("s{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let w = walk(&names, units, 3, approve_all(), None).await;
    assert!(w.rows.values().all(|r| r.status == StepStatus::Succeeded));
    assert!(
        (1..=3).contains(&w.most_at_once),
        "{} at once",
        w.most_at_once
    );
    assert_eq!(w.ended(), (RunStatus::Succeeded, None));
}

#[tokio::test]
async fn a_rejected_gate_rejects_the_unit_and_skips_what_follows() {
    let gated = |env: &str| Policy {
        gate_before: Some(GateSpec {
            key: GateKey::env(env),
            policy: Default::default(),
            what: String::new(),
        }),
        ..policy(OnFailure::FailRun, OnCancel::FinishInFlight)
    };
    let units = vec![
        unit(0, &[], Does::Succeed, gated("staging")),
        unit(1, &[0], Does::Succeed, gated("prod")),
        unit(2, &[1], Does::Succeed, gated("dr")),
    ];
    let decide: Decide = Box::new(|key| {
        if key == "prod" {
            GateStatus::Rejected
        } else {
            GateStatus::Approved
        }
    });
    let w = walk(&["staging", "prod", "dr"], units, 2, decide, None).await;
    assert_eq!(w.row("staging").0, StepStatus::Succeeded);
    assert_eq!(
        w.row("prod"),
        (StepStatus::Rejected, Some("rejected by alice"))
    );
    assert_eq!(
        w.row("dr"),
        (StepStatus::Skipped, Some("gate rejected at build/prod"))
    );
    assert_eq!(
        w.ended(),
        (RunStatus::Rejected, Some("build/prod: rejected by alice"))
    );
}

#[tokio::test]
async fn cancel_lets_a_unit_in_flight_finish_and_cancels_the_rest() {
    let release = Arc::new(Notify::new());
    let p = || policy(OnFailure::FailRun, OnCancel::FinishInFlight);
    let units = vec![
        unit(0, &[], Does::WaitFor(release.clone()), p()),
        unit(1, &[0], Does::Succeed, p()),
    ];
    // Released only after the cancel: the unit in flight still ends as it would have.
    let at = CancelAt {
        row: "deploy",
        then_release: release,
    };
    let w = walk(&["deploy", "next"], units, 1, approve_all(), Some(at)).await;
    assert_eq!(w.row("deploy").0, StepStatus::Succeeded);
    assert_eq!(
        w.row("next"),
        (StepStatus::Cancelled, Some("cancelled by an operator"))
    );
    assert_eq!(w.ended().0, RunStatus::Cancelled);
}

/// A unit queued in another scheduler shows queued (with that scheduler's reason) until
/// it says it runs, never running before; it may go back to queued (a requeue) as the
/// status table allows; its job is recorded before its next change, and carried by it.
#[tokio::test]
async fn a_unit_queued_elsewhere_is_queued_until_it_says_it_runs() {
    let p = policy(OnFailure::FailRun, OnCancel::Terminate);
    let w = walk(
        &["x"],
        vec![unit(0, &[], Does::Elsewhere, p)],
        1,
        approve_all(),
        None,
    )
    .await;
    let seen: Vec<(StepStatus, Option<&str>, bool, Option<u64>)> = w
        .history
        .iter()
        .map(|s| {
            (
                s.status,
                s.reason.as_deref(),
                s.started_at.is_some(),
                s.slurm_job,
            )
        })
        .collect();
    use StepStatus::*;
    assert_eq!(
        seen,
        [
            (Queued, Some("submitting"), false, None),
            (Queued, Some("in the queue (Resources)"), false, Some(7)),
            (Running, None, true, Some(7)),
            (Queued, Some("requeued"), true, Some(7)),
            (Running, None, true, Some(7)),
            (Succeeded, None, true, Some(7)),
        ]
    );
    assert_eq!(w.jobs, [(1, 7)]);
}
