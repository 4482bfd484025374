//! The one scheduler. A planner turns a run into a [`Plan`]: a graph of [`Unit`]s, each
//! with its [`Policy`]. The scheduler walks that graph for every kind of run: readiness,
//! the engine's one concurrency limit, gates before and after a unit, per-environment
//! queues, skip propagation with the reason, cancel, and every status and timestamp.
//! What a unit runs is its [`Executor`]'s business; the scheduler never looks inside.

mod group;
mod outcome;
mod supersede;
mod task;
#[cfg(test)]
mod tests;
mod walk;

use std::future::Future;
use std::sync::Arc;

use serde_json::Value;
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;

use super::executor::process::{LogTarget, Owner};
use crate::config::GatePolicy;
use crate::domain::{GateKey, Millis, QueueKey, QueuePolicy, StepStatus};
use crate::engine::queue::Deployed;

pub(crate) use walk::Scheduler;

/// What a failure of the unit does to the rest of the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnFailure {
    /// Stop the run: units running with [`OnCancel::Terminate`] are stopped, nothing
    /// more starts (a build stage, SP-2; an environment deploy, SP-3).
    FailRun,
    /// Skip exactly what depends on it; unrelated branches carry on (IP-3).
    SkipDownstream,
}

/// What an operator's cancel does to the unit while it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnCancel {
    /// Stop it now (the process group gets its signals).
    Terminate,
    /// Let it finish (a deploy in flight, SP-5; a stack-job operation, IP-6). Only an
    /// engine shutdown stops it.
    FinishInFlight,
}

/// A gate: its key, who may decide, and how a refusal is worded (`"node gate"`
/// makes "node gate rejected by alice").
#[derive(Debug, Clone)]
pub(crate) struct GateSpec {
    pub key: GateKey,
    pub policy: GatePolicy,
    pub what: String,
}

/// How the scheduler treats one unit.
#[derive(Debug, Clone)]
pub(crate) struct Policy {
    pub on_failure: OnFailure,
    pub on_cancel: OnCancel,
    /// Approval needed before the unit starts.
    pub gate_before: Option<GateSpec>,
    /// Approval needed after the unit succeeded, before its dependents start.
    pub gate_after: Option<GateSpec>,
    /// The environment line the unit deploys through: units of one line never
    /// overlap, go in trigger order, and never put an older commit over a newer one
    /// (SP-6a, issue 24).
    pub queue: Option<QueueSpec>,
}

/// A unit's place in an environment's line, as its planner knows it.
#[derive(Debug, Clone)]
pub(crate) struct QueueSpec {
    pub key: QueueKey,
    pub policy: QueuePolicy,
    /// What the run deploys: its id, commit, branch and the commit's rank.
    pub me: Deployed,
    /// The run may go back to an older commit on purpose.
    pub allow_older: bool,
    /// The last deploy that started there, as the store knows it.
    pub last: Option<Deployed>,
}

/// One executable unit: a build step, an environment deploy, a stack-job operation.
pub(crate) struct Unit<W> {
    /// The run's stored step this unit reports to.
    pub step: usize,
    /// Units that must have passed (succeeded, or been waived, and their gate after
    /// approved) before this one starts.
    pub needs: Vec<usize>,
    /// The group (a resource of several operations) the unit belongs to.
    pub group: Option<usize>,
    pub policy: Policy,
    pub work: Arc<W>,
}

/// Steps that summarise several units (a resource's row above its operations).
pub(crate) struct Group {
    /// The run's stored step for the group.
    pub step: usize,
    /// The executor's own key for the group (for [`Executor::prepare_group`]).
    pub key: usize,
}

/// A run as the scheduler walks it.
pub(crate) struct Plan<W> {
    pub units: Vec<Unit<W>>,
    pub groups: Vec<Group>,
    /// A gate before anything starts (an infra project's environment gate, IP-5).
    pub run_gate: Option<GateSpec>,
    /// Steps settled before anything runs, with the reason (deploys of a service
    /// whose deployments are disabled, SP-8).
    pub settled: Vec<(usize, StepStatus, String)>,
}

/// How a unit's work ended.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Outcome {
    Succeeded {
        /// What it produced (a resource's outputs, a plan's summary).
        outputs: Option<Value>,
    },
    Failed(String),
    /// Its stop token fired and it stopped.
    Stopped,
    /// Found not to be needed when it came to run (a policy waiver); passes like a success.
    Waived(String),
}

/// A unit's end as its executor reports it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Finished {
    pub outcome: Outcome,
    pub exit_code: Option<i32>,
    /// When it ended (unix ms): when the process was seen to exit, not when the
    /// result was handled.
    pub ended_at: Millis,
}

/// What a unit gets to run with.
pub(crate) struct UnitCtx {
    /// Its log, masked with the run's secrets.
    pub log: LogTarget,
    /// Fires when the unit must stop now.
    pub stop: CancellationToken,
    /// Its execution slot, to be released as soon as its processes are gone.
    pub slot: Option<OwnedSemaphorePermit>,
    /// Whose its processes are (they are marked with it, and recorded as started).
    pub owner: Owner,
    /// Where a unit that waits in another scheduler's queue says so (a Slurm job).
    pub status: UnitStatus,
}

pub(crate) use task::UnitStatus;

/// Why a group could not be made ready: the group's reason, and its units'.
#[derive(Debug, Clone)]
pub(crate) struct GroupFailure {
    pub reason: String,
    pub units_reason: String,
}

/// Runs units. One executor serves one run; its units may run concurrently.
pub(crate) trait Executor: Send + Sync + 'static {
    /// What one unit runs (a command, a stack-job operation).
    type Work: Send + Sync + 'static;

    /// Why [`Executor::prepare`] failed; its `Display` is the reason the run could
    /// not start (`Infallible` for an executor with nothing that can fail).
    type PrepareError: std::error::Error + Send + 'static;

    /// Once, before any unit: returns the secret values every unit's log masks.
    fn prepare(&self) -> impl Future<Output = Result<Vec<String>, Self::PrepareError>> + Send;

    /// Once per group, before its first unit runs; `log` is that unit's log.
    fn prepare_group(
        &self,
        _key: usize,
        _log: &LogTarget,
    ) -> impl Future<Output = Result<(), GroupFailure>> + Send {
        async { Ok(()) }
    }

    /// Just before a unit would wait for a slot: `Some(why)` waives it.
    fn waive(&self, _work: &Self::Work) -> Option<String> {
        None
    }

    /// The unit is handed to another scheduler that queues it (a Slurm job): it is not
    /// reported running when it gets its slot, but reports through
    /// [`UnitCtx::status`] when it waits there and when it starts.
    fn queues_elsewhere(&self, _work: &Self::Work) -> bool {
        false
    }

    /// Runs one unit to its end.
    fn run(&self, work: &Self::Work, ctx: UnitCtx) -> impl Future<Output = Finished> + Send;

    /// What an approver should see at the unit's gate before it (a plan summary).
    fn gate_note(&self, _work: &Self::Work) -> Option<String> {
        None
    }

    /// The gate before the unit said no.
    fn gate_refused(&self, _work: &Self::Work) {}

    /// Every unit of a group has ended: returns what the group's row shows as its
    /// outputs.
    fn finish_group(&self, _key: usize, _succeeded: bool) -> Option<Value> {
        None
    }
}
