//! Deploy order per environment, on the runner's side (issue 24): what a run brings to
//! its environments' lines, the deployment records its deploy rows make, gates
//! resolved as superseded, and each environment's queue as committed.

use super::*;
use crate::config::Service;
use crate::domain::{
    DeployStatus, Deployment, EnvQueue, QueueKey, QueuePolicy, Stage, Supersession,
};
use crate::engine::queue::{Deployed, RunFacts};
use crate::store::deploys::NewDeployment;

impl Runner {
    /// What run `run` brings to its environments' lines: its commit's rank, whether it
    /// may go back on purpose, and the last deploy that started in each environment.
    pub(super) fn run_facts(&self, run: &RunInfo, svc: Option<&Service>) -> Result<RunFacts> {
        let me = self.deployed(run)?;
        let mut last = HashMap::new();
        for env in svc.map(|s| s.environments.as_slice()).unwrap_or_default() {
            let key = QueueKey {
                service: run.service.clone(),
                env: env.name.clone(),
            };
            if let Some(d) = self.store.last_deployment(&key)? {
                let rank = self
                    .store
                    .commit_rank(&d.service, &d.branch, &d.commit_sha)?
                    .unwrap_or(d.run_id);
                last.insert(
                    env.name.clone(),
                    Deployed {
                        run_id: d.run_id,
                        rank,
                        branch: d.branch,
                        commit: d.commit_sha,
                    },
                );
            }
        }
        Ok(RunFacts {
            me,
            allow_older: self.store.allows_older(run.id)?,
            last,
            upstream: self.store.upstream(run.id)?,
        })
    }

    fn deployed(&self, run: &RunInfo) -> Result<Deployed> {
        let rank = self
            .store
            .commit_rank(&run.service, &run.branch, &run.commit_sha)?
            .unwrap_or(run.id);
        Ok(Deployed {
            run_id: run.id,
            rank,
            branch: run.branch.clone(),
            commit: run.commit_sha.clone(),
        })
    }

    /// A service run's deploy row changed: its deployment record starts or ends. A
    /// failed verify check fails the deployment of its environment.
    pub(super) fn record_deploy(&self, step: &StepInfo) -> Result<()> {
        if step.stage == Stage::Verify && step.status == StepStatus::Failed {
            if let Some(deploy) = step.parent_id {
                self.store.fail_verified_deployment(deploy)?;
            }
            return Ok(());
        }
        if step.stage != Stage::Deploy {
            return Ok(());
        }
        let at = step.ended_at.or(step.started_at).unwrap_or_else(now_ms);
        let ended = match step.status {
            StepStatus::Running => None,
            StepStatus::Succeeded => Some(DeployStatus::Succeeded),
            StepStatus::Failed => Some(DeployStatus::Failed),
            s if s.is_terminal() => Some(DeployStatus::Interrupted),
            _ => return Ok(()),
        };
        if let Some(status) = ended {
            return Ok(self.store.end_deployment(step.id, status, at)?);
        }
        let Some(run) = self.store.run(step.run_id)? else {
            return Ok(());
        };
        if run.kind != RunKind::Service || self.store.deployment_of_step(step.id)?.is_some() {
            return Ok(());
        }
        let key = QueueKey {
            service: run.service.clone(),
            env: step.name.clone(),
        };
        // Going back on purpose: the run was allowed older, and the environment runs
        // another commit.
        let rollback = self.store.allows_older(run.id)?
            && self
                .store
                .current_deployment(&key)?
                .is_some_and(|c| c.commit_sha != run.commit_sha);
        let new = NewDeployment {
            step,
            key: &key,
            commit_sha: &run.commit_sha,
            branch: &run.branch,
            rollback,
        };
        self.store.insert_deployment(&new, at)?;
        Ok(())
    }

    /// A newer run took the environment before run `run_id`'s waiting gate there was
    /// decided: the gate is resolved as superseded, no longer approvable.
    pub(super) fn supersede_gate(
        &mut self,
        run_id: i64,
        env: &str,
        why: &Supersession,
        out: &mut Out,
    ) -> Result<()> {
        let gate = self
            .store
            .gates(run_id)?
            .into_iter()
            .rev()
            .find(|g| g.env == env && g.status == GateStatus::Waiting);
        if let Some(gate) = gate {
            self.close_gate(
                gate,
                GateStatus::Superseded,
                "pipedeck",
                Some(why.to_string()),
                out,
            )?;
        }
        Ok(())
    }

    /// Each environment's queue, as committed.
    pub(super) fn queues(&self, keys: Vec<(QueueKey, QueuePolicy)>) -> Result<Vec<EnvQueue>> {
        keys.into_iter()
            .map(|(key, policy)| {
                let entries = self.store.queue_entries(&key)?;
                Ok(EnvQueue {
                    key,
                    policy,
                    entries,
                })
            })
            .collect()
    }

    /// What the store says for `/metrics`.
    pub(super) fn figures(
        &self,
        keys: Vec<(QueueKey, QueuePolicy)>,
    ) -> Result<crate::engine::metrics::Figures> {
        Ok(crate::engine::metrics::Figures {
            runs: self.store.runs_by_status()?,
            waiting_gates: self.store.waiting_gates()?,
            queues: self.queues(keys)?,
        })
    }

    /// What each environment runs now.
    pub(super) fn current(&self, keys: Vec<QueueKey>) -> Result<Vec<Deployment>> {
        let mut out = Vec::new();
        for key in keys {
            out.extend(self.store.current_deployment(&key)?);
        }
        Ok(out)
    }
}
