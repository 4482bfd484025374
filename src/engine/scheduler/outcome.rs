//! What the scheduler does when a unit's task ends: the unit's policy decides what
//! happens to the rest of the run.

use std::collections::HashMap;

use tokio::task::JoinSet;

use super::task::{self, GateEnd, RunEnd};
use super::walk::{CANCELLED, End, Phase, Scheduler};
use super::{Executor, Finished, GateSpec, OnFailure, Outcome};
use crate::domain::{GateInfo, GateStatus, RunStatus, StepStatus, now_ms};

impl<E: Executor> Scheduler<E> {
    pub(super) async fn ended(
        &mut self,
        u: usize,
        end: End,
        reports: &task::Reports,
        set: &mut JoinSet<(usize, End)>,
        task_unit: &mut HashMap<tokio::task::Id, usize>,
    ) {
        match end {
            End::GateBefore(GateEnd::Parked) | End::GateAfter(GateEnd::Parked) => {
                self.parked = true;
            }
            End::GateBefore(GateEnd::Decided(gate)) => {
                self.gates_waiting -= 1;
                let spec = self.plan.units[u].policy.gate_before.clone();
                match gate.status {
                    GateStatus::Approved => {
                        self.approved().await;
                        self.set_unit(u, StepStatus::Queued, None, now_ms()).await;
                        self.spawn_run(u, reports, set, task_unit);
                    }
                    GateStatus::Rejected | GateStatus::Expired => {
                        let why = spec.map(|s| refusal(&s, &gate)).unwrap_or_default();
                        self.phase[u] = Phase::Ended;
                        self.exec.gate_refused(&self.plan.units[u].work);
                        self.set_unit(u, StepStatus::Rejected, Some(why.clone()), now_ms())
                            .await;
                        self.refused(u, &why).await;
                    }
                    GateStatus::Superseded => {
                        self.approved().await;
                        let (why, by) = match self.supersessions.remove(&u) {
                            Some(s) => (s.to_string(), Some(s.run_id)),
                            None => (gate.comment.clone().unwrap_or_default(), None),
                        };
                        self.superseded(u, why, by).await;
                    }
                    GateStatus::Cancelled | GateStatus::Waiting | GateStatus::Interrupted => {
                        self.phase[u] = Phase::Ended;
                        let why = self.stopped_why().to_string();
                        self.set_unit(u, StepStatus::Cancelled, Some(why), now_ms())
                            .await;
                    }
                }
            }
            End::GateAfter(GateEnd::Decided(gate)) => {
                self.gates_waiting -= 1;
                let group = self.plan.units[u].group;
                if let Some(g) = group {
                    self.groups[g].gate_waiting = false;
                }
                match gate.status {
                    GateStatus::Approved => {
                        self.approved().await;
                        self.pass(u);
                    }
                    status => {
                        self.phase[u] = Phase::Ended;
                        let (row, why) = if status == GateStatus::Cancelled {
                            (StepStatus::Cancelled, self.stopped_why().to_string())
                        } else {
                            let spec = self.plan.units[u].policy.gate_after.clone();
                            let why = spec.map(|s| refusal(&s, &gate)).unwrap_or_default();
                            (StepStatus::Rejected, why)
                        };
                        if let Some(g) = group {
                            self.groups[g].verdict = Some((row, why.clone()));
                        }
                        if row == StepStatus::Rejected {
                            self.refused(u, &why).await;
                        }
                    }
                }
                if let Some(g) = group {
                    self.settle_group(g).await;
                }
            }
            End::Run(RunEnd::Halted) => self.phase[u] = Phase::Ended,
            End::Run(RunEnd::GroupFailed(f)) => {
                self.phase[u] = Phase::Ended;
                let Some(g) = self.plan.units[u].group else {
                    return;
                };
                self.groups[g].verdict = Some((StepStatus::Failed, f.reason));
                for m in self.members[g].clone() {
                    if !self.steps[self.plan.units[m].step].status.is_terminal() {
                        self.phase[m] = Phase::Ended;
                        let why = Some(f.units_reason.clone());
                        self.set_unit(m, StepStatus::Skipped, why, now_ms()).await;
                    }
                }
                self.fail(u).await;
            }
            End::Run(RunEnd::Superseded(why)) => {
                self.superseded(u, why.to_string(), Some(why.run_id)).await;
            }
            End::Run(RunEnd::Finished(fin)) => self.finished(u, fin, set, task_unit).await,
        }
    }

    pub(super) async fn finished(
        &mut self,
        u: usize,
        fin: Finished,
        set: &mut JoinSet<(usize, End)>,
        task_unit: &mut HashMap<tokio::task::Id, usize>,
    ) {
        let row = self.plan.units[u].step;
        self.steps[row].exit_code = fin.exit_code;
        let at = fin.ended_at;
        match fin.outcome {
            Outcome::Succeeded { outputs } => {
                if outputs.is_some() {
                    self.steps[row].outputs = outputs;
                }
                // The group waits at the gate after from the moment its unit ends.
                if let (Some(_), Some(g)) = (
                    &self.plan.units[u].policy.gate_after,
                    self.plan.units[u].group,
                ) {
                    self.groups[g].gate_waiting = true;
                }
                self.set_unit(u, StepStatus::Succeeded, None, at).await;
                if self.plan.units[u].policy.gate_after.is_some() {
                    self.open_gate_after(u, set, task_unit).await;
                } else {
                    self.pass(u);
                }
            }
            Outcome::Waived(why) => {
                self.set_unit(u, StepStatus::Skipped, Some(why), at).await;
                self.pass(u);
            }
            Outcome::Failed(why) => {
                self.phase[u] = Phase::Ended;
                self.set_unit(u, StepStatus::Failed, Some(why), at).await;
                self.fail(u).await;
            }
            Outcome::Stopped => {
                self.phase[u] = Phase::Ended;
                let (status, why) = match &self.failed_run {
                    Some(f) => (StepStatus::Skipped, format!("stopped: {f} failed")),
                    None if self.shared.shutdown.is_cancelled() => {
                        // Settled once the walk knows whether the run parks.
                        self.stopped_by_shutdown.push((u, at));
                        return;
                    }
                    None => (StepStatus::Cancelled, CANCELLED.to_string()),
                };
                self.set_unit(u, status, Some(why), at).await;
            }
        }
    }

    /// A gate was approved: the run runs again once no other gate waits.
    async fn approved(&mut self) {
        if self.gates_waiting == 0 {
            self.run_status(RunStatus::Running).await;
        }
    }

    fn pass(&mut self, u: usize) {
        self.phase[u] = Phase::Passed;
        for &d in &self.dependents[u] {
            self.waiting[d] -= 1;
            if self.waiting[d] == 0 && self.phase[d] == Phase::Pending {
                self.ready.push_back(d);
            }
        }
    }

    /// Unit `u` failed: its policy says what happens to the rest.
    pub(super) async fn fail(&mut self, u: usize) {
        let path = self.path(u);
        if !self.failures.contains(&path) {
            self.failures.push(path.clone());
        }
        match self.plan.units[u].policy.on_failure {
            OnFailure::FailRun => {
                self.failed_run.get_or_insert(path.clone());
                self.rest.get_or_insert(format!("upstream failed: {path}"));
                self.halt.cancel();
            }
            OnFailure::SkipDownstream => self.skip_downstream(u).await,
        }
    }

    /// A gate before or after unit `u` said no (`why`).
    async fn refused(&mut self, u: usize, why: &str) {
        let path = self.path(u);
        self.rejected.get_or_insert(format!("{path}: {why}"));
        match self.plan.units[u].policy.on_failure {
            OnFailure::FailRun => {
                self.rest.get_or_insert(format!("gate rejected at {path}"));
                self.halt.cancel();
            }
            OnFailure::SkipDownstream => self.skip_downstream(u).await,
        }
    }

    /// Skips everything that (transitively) needs `from` and has not started, saying why.
    pub(super) async fn skip_downstream(&mut self, from: usize) {
        let group = self.plan.units[from].group;
        let mut stack = vec![from];
        while let Some(cur) = stack.pop() {
            for d in self.dependents[cur].clone() {
                if self.phase[d] != Phase::Pending {
                    continue;
                }
                self.phase[d] = Phase::Ended;
                // Within a group the failed unit is named; from outside, its group.
                let culprit = if group.is_some() && self.plan.units[d].group == group {
                    self.steps[self.plan.units[from].step].path()
                } else {
                    self.path(from)
                };
                let why = format!("upstream failed: {culprit}");
                self.set_unit(d, StepStatus::Skipped, Some(why), now_ms())
                    .await;
                stack.push(d);
            }
        }
    }

    /// After the walk: what never started ends, and the run's status says how it went.
    pub(super) async fn finish(&mut self) -> Option<(RunStatus, Option<String>)> {
        let cancelled = self.cancel.is_cancelled();
        for u in 0..self.plan.units.len() {
            if self.steps[self.plan.units[u].step].status.is_terminal() {
                continue;
            }
            let (status, why) = match &self.rest {
                Some(r) => (StepStatus::Skipped, r.clone()),
                None if cancelled => (StepStatus::Cancelled, self.stopped_why().to_string()),
                None => (StepStatus::Skipped, "never became ready".to_string()),
            };
            self.set_unit(u, status, Some(why), now_ms()).await;
        }
        for g in 0..self.groups.len() {
            self.settle_group(g).await;
        }
        Some(if let Some(f) = &self.failed_run {
            (RunStatus::Failed, Some(format!("{f} failed")))
        } else if !self.failures.is_empty() {
            let list = self.failures.join(", ");
            (RunStatus::Failed, Some(format!("{list} failed")))
        } else if let Some(r) = &self.rejected {
            (RunStatus::Rejected, Some(r.clone()))
        } else if cancelled {
            (RunStatus::Cancelled, Some(self.stopped_why().to_string()))
        } else {
            (RunStatus::Succeeded, self.superseded_run.clone())
        })
    }
}

/// Why a gate said no: `node gate rejected by alice: not now`.
pub(super) fn refusal(spec: &GateSpec, gate: &GateInfo) -> String {
    let what = match spec.what.as_str() {
        "" => String::new(),
        w => format!("{w} "),
    };
    if gate.status == GateStatus::Expired {
        let what = if what.is_empty() { "gate " } else { &what };
        return format!("the {what}expired before anyone decided");
    }
    let mut why = format!(
        "{what}rejected by {}",
        gate.decided_by.as_deref().unwrap_or("someone")
    );
    if let Some(c) = &gate.comment {
        why.push_str(&format!(": {c}"));
    }
    why
}
