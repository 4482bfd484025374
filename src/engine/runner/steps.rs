//! A step's row changing: stored, then what follows from it (its deployment, its run's
//! release, its station), then its event.

use std::collections::HashSet;

use super::{Msg, Out, Runner};
use crate::domain::{Event, StepInfo};

/// For each message of a batch: whether it is a step's row that a later message of
/// the same batch writes again. A row is written whole, so only its last version in a
/// commit needs writing; every version is still published, in order. (A short step's
/// `running` and its end mostly share a commit, 5 ms apart at most: one row write a
/// step instead of two.)
pub(super) fn superseded(batch: &[Msg]) -> Vec<bool> {
    let mut later = HashSet::new();
    let mut out = vec![false; batch.len()];
    for (i, m) in batch.iter().enumerate().rev() {
        if let Msg::Step(s) = m {
            out[i] = !later.insert(s.id);
        }
    }
    out
}

impl Runner {
    /// A step's row changed: it is stored (unless `write` is false: a later message of
    /// the same commit stores it), what follows from it recorded, and its event
    /// published once committed. False if the row could not be written.
    pub(super) fn step_changed(&mut self, step: StepInfo, write: bool, out: &mut Out) -> bool {
        if write && let Err(e) = self.store.update_step(&step) {
            tracing::error!("step {}: {e}", step.id);
            return false;
        }
        // The deployment record follows its row; a failure is logged and leaves the
        // row's change standing.
        if let Err(e) = self.record_deploy(&step) {
            tracing::error!("deployment of step {}: {e}", step.id);
        }
        if let Err(e) = self.record_release(&step, out) {
            tracing::error!("release of run {}: {e}", step.run_id);
        }
        if let Err(e) = self.record_switch(&step, out) {
            tracing::error!("station {} in run {}: {e}", step.name, step.run_id);
        }
        out.event(Event::Step { step });
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::StepStatus;

    fn step(id: i64, status: StepStatus) -> Msg {
        Msg::Step(StepInfo::sample(id, 1, status))
    }

    #[test]
    fn only_a_rows_last_change_in_a_batch_is_written() {
        let batch = [
            step(1, StepStatus::Running),
            step(2, StepStatus::Running),
            step(1, StepStatus::Succeeded),
            Msg::StepProcess {
                step_id: 2,
                pid: 7,
                start: 1,
            },
            step(3, StepStatus::Running),
        ];
        assert_eq!(superseded(&batch), [true, false, false, false, false]);
    }
}
