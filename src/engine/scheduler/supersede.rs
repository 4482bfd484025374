//! A deploy that a newer run superseded (issue 24): its row is skipped with the reason,
//! its later environments likewise, and a gate waiting before it is resolved.

use super::Executor;
use super::walk::{Phase, Scheduler};
use crate::domain::{StepStatus, Supersession, now_ms};
use crate::engine::runner::Msg;

impl<E: Executor> Scheduler<E> {
    /// The environment's line says unit `u` was superseded.
    pub(super) async fn told(&mut self, u: usize, why: Supersession) {
        match self.phase[u] {
            Phase::Pending => self.superseded(u, why.to_string(), Some(why.run_id)).await,
            Phase::GateBefore => {
                let Some(spec) = self.plan.units[u].policy.gate_before.clone() else {
                    return;
                };
                // The runner resolves the gate; its task then reports the decision.
                let msg = Msg::SupersedeGate {
                    run_id: self.run.id,
                    env: spec.key.to_string(),
                    why: why.clone(),
                };
                self.supersessions.insert(u, why);
                self.send(msg).await;
            }
            // Waiting in the line: its task hears it and gives way. Running or ended:
            // too late to matter.
            Phase::Running | Phase::GateAfter | Phase::Passed | Phase::Ended => {}
        }
    }

    /// Skips unit `u` (`why`: `superseded by run 7 (a1b2c3d)`) and what needs it.
    pub(super) async fn superseded(&mut self, u: usize, why: String, by: Option<i64>) {
        let path = self.path(u);
        self.superseded_run.get_or_insert(format!("{path} {why}"));
        let mut stack = vec![u];
        self.phase[u] = Phase::Pending;
        while let Some(cur) = stack.pop() {
            if self.phase[cur] != Phase::Pending {
                continue;
            }
            self.phase[cur] = Phase::Ended;
            self.steps[self.plan.units[cur].step].superseded_by = by;
            self.set_unit(cur, StepStatus::Skipped, Some(why.clone()), now_ms())
                .await;
            stack.extend(self.dependents[cur].iter().copied());
        }
    }
}
