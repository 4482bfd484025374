//! The two tasks the scheduler spawns for a unit: one waits at a gate, the other
//! prepares the unit's group, waits in its queue and for a slot, and runs it. Both only
//! report; the scheduler decides what each report means.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OnceCell, Semaphore, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::{Executor, Finished, GateSpec, GroupFailure, Outcome, Owner, UnitCtx};
use crate::domain::{GateInfo, Supersession, now_ms};
use crate::engine::executor::process::LogTarget;
use crate::engine::queue::{Place, Turn};
use crate::engine::runner::Msg;

/// A unit waiting for a slot is reported `queued` once it has waited this long: shorter
/// waits are invisible to an operator, and not reporting them spares a state change per
/// unit when a wide graph keeps every slot busy.
pub(crate) const QUEUED_AFTER: Duration = Duration::from_millis(50);

/// What a run task says on its way.
pub(super) enum Progress {
    Queued,
    Running,
    /// It waits in another scheduler's queue (why: that scheduler's words).
    Waiting(String),
    /// It was handed to Slurm as this job (recorded with its row, for re-attaching).
    Submitted(crate::engine::executor::slurm::JobId),
}

/// How a running unit tells the scheduler that it waits in another scheduler's queue
/// (`queued`, with that scheduler's reason), and when it starts there (`running`).
/// Each change goes through the step status table like any other.
#[derive(Clone)]
pub(crate) struct UnitStatus {
    unit: usize,
    reports: Reports,
}

impl UnitStatus {
    /// Reports that go nowhere (a unit run outside a scheduler, in tests).
    #[cfg(test)]
    pub fn detached() -> Self {
        Self {
            unit: 0,
            reports: mpsc::unbounded_channel().0,
        }
    }

    pub fn waiting(&self, why: String) {
        // The scheduler outlives its tasks; a send fails only while it is dropped.
        let _ = self.reports.send((self.unit, Progress::Waiting(why)));
    }

    pub fn running(&self) {
        let _ = self.reports.send((self.unit, Progress::Running));
    }

    /// The unit was submitted as Slurm job `job`: recorded with its row before any
    /// later change of it.
    pub fn submitted(&self, job: crate::engine::executor::slurm::JobId) {
        let _ = self.reports.send((self.unit, Progress::Submitted(job)));
    }
}

pub(super) type Reports = mpsc::UnboundedSender<(usize, Progress)>;

/// How a gate task ended.
pub(super) enum GateEnd {
    Decided(GateInfo),
    /// The engine is shutting down while the gate waits: the run stays waiting.
    Parked,
}

/// How a run task ended.
pub(super) enum RunEnd {
    Finished(Finished),
    /// The run stopped (cancel, a failure, shutdown) before the unit started.
    Halted,
    /// The unit's group could not be made ready.
    GroupFailed(GroupFailure),
    /// A newer run took the environment: the deploy gives way.
    Superseded(Supersession),
}

/// Opens (or finds again, after a restart) a gate. Sent by the scheduler itself, so
/// that the runner sees the gate open right after the unit's row says it waits.
pub(super) async fn open_gate(
    tx: &mpsc::Sender<Msg>,
    run_id: i64,
    spec: GateSpec,
) -> Option<oneshot::Receiver<GateInfo>> {
    let (reply, rx) = oneshot::channel();
    let open = Msg::OpenGate {
        run_id,
        env: spec.key.to_string(),
        policy: spec.policy,
        reply,
    };
    tx.send(open).await.ok().map(|()| rx)
}

/// Waits for an open gate's decision.
pub(super) async fn gate(
    decided: Option<oneshot::Receiver<GateInfo>>,
    shutdown: CancellationToken,
) -> GateEnd {
    let Some(decided) = decided else {
        return GateEnd::Parked;
    };
    tokio::select! {
        g = decided => g.map_or(GateEnd::Parked, GateEnd::Decided),
        _ = shutdown.cancelled() => GateEnd::Parked,
    }
}

/// Everything a run task needs.
pub(super) struct RunJob<E: Executor> {
    pub unit: usize,
    pub exec: Arc<E>,
    pub work: Arc<E::Work>,
    pub log: LogTarget,
    /// The group's key and its once-only preparation.
    pub group: Option<(usize, Arc<OnceCell<()>>)>,
    /// The unit's place in its environment's line.
    pub queue: Option<Place>,
    pub slots: Arc<Semaphore>,
    /// Fires when nothing more may start.
    pub halt: CancellationToken,
    /// Fires when the running unit must stop.
    pub stop: CancellationToken,
    pub reports: Reports,
    pub owner: Owner,
}

/// Prepares the unit's group, checks for a waiver, waits in the queue and for a slot,
/// then runs the unit.
pub(super) async fn run<E: Executor>(j: RunJob<E>) -> RunEnd {
    if j.halt.is_cancelled() {
        return RunEnd::Halted;
    }
    if let Some((key, once)) = &j.group {
        let ready = once
            .get_or_try_init(|| j.exec.prepare_group(*key, &j.log))
            .await;
        if let Err(f) = ready {
            return RunEnd::GroupFailed(f);
        }
    }
    if let Some(why) = j.exec.waive(&j.work) {
        return RunEnd::Finished(Finished {
            outcome: Outcome::Waived(why),
            exit_code: None,
            ended_at: now_ms(),
        });
    }
    let report = |p| {
        // The scheduler outlives its tasks; a send fails only while it is dropped.
        let _ = j.reports.send((j.unit, p));
    };
    // Wait for its turn in the environment's line (reported at once), then for a
    // slot. The place is held until the unit ends: nobody else deploys meanwhile.
    if let Some(place) = &j.queue {
        report(Progress::Queued);
        match place.turn(&j.halt).await {
            None => return RunEnd::Halted,
            Some(Turn::Superseded(why)) => return RunEnd::Superseded(why),
            Some(Turn::Go) => {}
        }
    }
    let Some(slot) = acquire_slot(&j.slots, &j.halt, || report(Progress::Queued)).await else {
        return RunEnd::Halted;
    };
    // A unit queued elsewhere says itself when it starts.
    if !j.exec.queues_elsewhere(&j.work) {
        report(Progress::Running);
    }
    let ctx = UnitCtx {
        log: j.log.clone(),
        stop: j.stop.clone(),
        slot: Some(slot),
        owner: j.owner.clone(),
        status: UnitStatus {
            unit: j.unit,
            reports: j.reports.clone(),
        },
    };
    RunEnd::Finished(j.exec.run(&j.work, ctx).await)
}

/// Waits for an execution slot, or for `halt`; calls `queued` if the wait lasts
/// [`QUEUED_AFTER`].
async fn acquire_slot(
    slots: &Arc<Semaphore>,
    halt: &CancellationToken,
    queued: impl FnOnce(),
) -> Option<tokio::sync::OwnedSemaphorePermit> {
    if let Ok(p) = slots.clone().try_acquire_owned() {
        return Some(p);
    }
    let acquire = slots.clone().acquire_owned();
    tokio::pin!(acquire);
    tokio::select! {
        p = &mut acquire => return p.ok(),
        _ = halt.cancelled() => return None,
        _ = tokio::time::sleep(QUEUED_AFTER) => {}
    }
    queued();
    tokio::select! {
        p = acquire => p.ok(),
        _ = halt.cancelled() => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_slot_wait_is_reported_only_once_it_lasts() {
        let slots = Arc::new(Semaphore::new(1));
        let halt = CancellationToken::new();
        let held = slots.clone().try_acquire_owned().unwrap();
        let mut reported = false;
        let release = async {
            tokio::time::sleep(QUEUED_AFTER * 2).await;
            drop(held);
        };
        let (got, ()) = tokio::join!(acquire_slot(&slots, &halt, || reported = true), release);
        assert!(got.is_some());
        assert!(reported);
        drop(got);
        // A free slot is taken without a report; a halted wait gives up.
        let mut again = false;
        let p = acquire_slot(&slots, &halt, || again = true).await;
        assert!(p.is_some() && !again);
        halt.cancel();
        assert!(acquire_slot(&slots, &halt, || {}).await.is_none());
    }
}
