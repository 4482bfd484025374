//! What the runner is sent: by clients (requests), drivers (step changes) and
//! triggers.

use tokio::sync::oneshot;

use super::{ReleaseMsg, Reply, TriggerMsg};
use crate::config::GatePolicy;
use crate::domain::{
    Decision, Deployment, EnvQueue, GateInfo, QueueKey, QueuePolicy, RunDetail, RunInfo, RunStatus,
    StepInfo, Supersession,
};
use crate::engine::plan::Definition;
use crate::store::{AuditEntry, NewRun, RunFilter};

pub(crate) enum Msg {
    // From clients.
    /// A new run, with its definition as typed values when the sender has them (the
    /// planner then need not parse back the text just written: ~8% of a 2,000-node
    /// infra run's instructions on the engine's thread).
    Create(Box<(NewRun, Option<Definition>)>, Reply<RunInfo>),
    Cancel(i64, String, Reply<RunInfo>),
    /// Rerun run `.0` for `.1`; `.2`: it may go back to an older commit on purpose.
    Rerun(i64, String, bool, Reply<RunInfo>),
    Decide {
        run_id: i64,
        env: String,
        decision: Decision,
        by: crate::domain::access::Actor,
        comment: Option<String>,
        reply: Reply<GateInfo>,
    },
    List(RunFilter, Reply<Vec<RunInfo>>),
    Detail(i64, Reply<RunDetail>),
    WaitingGates(Reply<Vec<GateInfo>>),
    /// Prune old history (or only say what would go).
    Gc {
        retention: crate::config::Retention,
        dry_run: bool,
        reply: Reply<crate::store::retention::GcReport>,
    },
    Audit(i64, Reply<Vec<AuditEntry>>),
    /// The newest `.0` entries of the whole audit log.
    AuditLog(usize, Reply<Vec<AuditEntry>>),
    /// Each environment's queue.
    Queues(Vec<(QueueKey, QueuePolicy)>, Reply<Vec<EnvQueue>>),
    /// What the store says for `/metrics` (each environment's queue among it).
    Figures(
        Vec<(QueueKey, QueuePolicy)>,
        Reply<crate::engine::metrics::Figures>,
    ),
    /// What each environment runs now.
    Current(Vec<QueueKey>, Reply<Vec<Deployment>>),
    Shutdown(oneshot::Sender<()>),
    /// A request refused: recorded in the audit log (no answer; not durable, so that a
    /// flood of refusals costs no fsync each).
    Refused(Box<AuditEntry>),
    /// What service `downstream`'s `all` chain waits with now (from the chain watcher).
    ChainPending {
        downstream: String,
        slots: Vec<Option<i64>>,
        reply: Reply<()>,
    },
    /// Drift checks (issue 22): stored, audited, published; the latest read.
    Drift(super::drift::DriftMsg),
    // From drivers.
    RunStatus {
        run_id: i64,
        status: RunStatus,
        reason: Option<String>,
    },
    Step(StepInfo),
    /// A unit started a process: recorded with its step, so that a restarted
    /// engine can stop what this one left running.
    StepProcess {
        step_id: i64,
        pid: i32,
        start: u64,
    },
    /// A unit submitted a Slurm job: recorded with its step, so that a restarted
    /// engine re-attaches to it (or stops it, when its run was cancelled).
    SlurmJob {
        step_id: i64,
        job: crate::engine::executor::slurm::JobId,
    },
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
    /// An outbound call (a commit status, a notification) was given up: recorded in
    /// the run's audit log.
    OutboundFailed {
        run_id: i64,
        what: String,
        why: String,
    },
    /// A run's driver panicked (a bug): the run fails instead of hanging.
    Crashed(i64, String),
    /// From triggers (SP-7).
    Trigger(TriggerMsg),
    /// Releases and stations (DP-1..DP-3).
    Release(ReleaseMsg),
}

impl Msg {
    /// A step's change, which may wait for others to share its commit.
    pub(super) fn is_step_change(&self) -> bool {
        matches!(
            self,
            Msg::Step(_) | Msg::StepProcess { .. } | Msg::SlurmJob { .. }
        )
    }

    /// What a person (or a trigger) decided: stored durably before it is answered.
    pub(super) fn is_decision(&self) -> bool {
        matches!(
            self,
            Msg::Create(..)
                | Msg::Cancel(..)
                | Msg::Rerun(..)
                | Msg::Decide { .. }
                | Msg::ExpireGate(_)
                | Msg::ChainPending { .. }
        ) || matches!(self, Msg::Trigger(t) if t.is_decision())
            || matches!(self, Msg::Release(m) if m.is_decision())
            || matches!(self, Msg::Drift(m) if m.is_decision())
    }
}
