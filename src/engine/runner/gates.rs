//! Gates: opened by a run's scheduler, decided by an operator (checked against the
//! gate's policy), expired by time or closed by a cancel; every decision is audited.

use super::*;

impl Runner {
    pub(super) fn open_gate(
        &mut self,
        run_id: i64,
        env: &str,
        policy: &GatePolicy,
        reply: oneshot::Sender<GateInfo>,
        out: &mut Out,
    ) -> Result<()> {
        // A resumed run finds its gate as it was: still waiting, or decided meanwhile.
        let existing = self.store.last_gate(run_id, env)?;
        let gate = match existing {
            Some(g) if g.status != GateStatus::Waiting => {
                out.after(After::Wait(g.clone(), reply));
                out.after(After::Decided(g));
                return Ok(());
            }
            Some(g) => g,
            None => {
                let now = now_ms();
                let expires = policy.expires_after_ms.map(|ms| now + ms as i64);
                let g = self.store.insert_gate(run_id, env, now, expires)?;
                out.event(Event::Gate { gate: g.clone() });
                g
            }
        };
        self.set_run_status(run_id, RunStatus::AwaitingApproval, None, out)?;
        out.after(After::Wait(gate, reply));
        Ok(())
    }

    pub(super) fn close_gate(
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
            GateStatus::Superseded => "supersede_gate",
            GateStatus::Interrupted => "interrupt_gate",
            GateStatus::Waiting => "open",
        };
        self.audit(
            by,
            action,
            gate.run_id,
            Some(&gate.env),
            gate.comment.as_deref(),
        )?;
        out.event(Event::Gate { gate: gate.clone() });
        out.after(After::Decided(gate.clone()));
        Ok(gate)
    }

    pub(super) fn decide(
        &mut self,
        run_id: i64,
        env: &str,
        decision: Decision,
        by: &crate::domain::access::Actor,
        comment: Option<String>,
        out: &mut Out,
    ) -> Result<GateInfo> {
        use crate::domain::access::Action;
        let run = self.store.run(run_id)?.ok_or_else(|| no_run(run_id))?;
        let last = self.store.last_gate(run_id, env)?;
        let gate = match last {
            Some(g) if g.status == GateStatus::Waiting => g,
            Some(g) if g.status == GateStatus::Superseded => {
                return Err(EngineError::Conflict(format!(
                    "the gate at `{env}` in run {run_id} was {}: nothing is left to approve",
                    g.comment.as_deref().unwrap_or("superseded")
                )));
            }
            _ => {
                return Err(EngineError::Conflict(format!(
                    "no gate is waiting at `{env}` in run {run_id} (the run is {})",
                    run.status
                )));
            }
        };
        let switch_gate = crate::domain::SwitchGateKey::parse(env);
        let policy = match (run.kind, switch_gate) {
            // A station group's gate on a build's release: the group's policy now.
            (_, Some(key)) => self.switch_gate_policy(&key)?,
            (RunKind::Service, None) => {
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
            (RunKind::Infra | RunKind::StackJob, None) => {
                let def: crate::config::infra::InfraProject = self
                    .store
                    .definition_as(run_id)?
                    .ok_or_else(|| no_run(run_id))?;
                def.gate
            }
            // A rollout waits only at its station groups' gates (found above).
            (RunKind::Rollout, None) => GatePolicy::default(),
        };
        let (status, action) = match decision {
            Decision::Approve => (GateStatus::Approved, Action::Approve),
            Decision::Reject => (GateStatus::Rejected, Action::Reject),
        };
        let decider = crate::config::Decider {
            who: &by.who,
            role: by.role,
            action,
            env,
            run_id,
            triggered_by: &run.triggered_by,
            commented: comment.as_deref().is_some_and(|c| !c.trim().is_empty()),
        };
        if let Some(why) = policy.refuses(&decider) {
            return Err(why.into());
        }
        // Checked now, not only by the sweeper: an expired gate is never approved.
        if gate.expires_at.is_some_and(|at| at <= now_ms()) {
            let id = gate.id;
            self.expire_gate(id, out)?;
            return Err(EngineError::Conflict(format!(
                "the gate at `{env}` in run {run_id} expired before this decision: nothing is left to {}",
                match decision {
                    Decision::Approve => "approve",
                    Decision::Reject => "reject",
                }
            )));
        }
        self.close_gate(gate, status, &by.who.name, comment, out)
    }

    pub(super) fn expire_gate(&mut self, gate_id: i64, out: &mut Out) -> Result<()> {
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
