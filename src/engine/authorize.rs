//! Who may send what: the caller's role from `[access]`, and the gate policy as the
//! project file sets it now (a decision needs it as well as the one the run recorded).

use super::handle::EngineHandle;
use super::runner::Msg;
use super::{Caller, Result};
use crate::domain::RunKind;
use crate::domain::access::{Action, Refusal, Role};
use crate::domain::command::Request;

impl EngineHandle {
    /// The gate policy as the project file sets it now is checked as well as the one
    /// recorded with the run (the runner's check): a decision needs both, so a rerun
    /// of an old run, or a run from before a policy was tightened, gets the stricter.
    pub(super) async fn current_gate_allows(
        &self,
        caller: &Caller,
        role: Role,
        run_id: i64,
        env: &str,
        decision: crate::domain::Decision,
        comment: Option<&str>,
    ) -> Result<()> {
        let run = self.runner(|r| Msg::Detail(run_id, r)).await?.run;
        let project = self.project.get();
        let switch_gate = crate::domain::SwitchGateKey::parse(env);
        let policy = match (run.kind, &switch_gate) {
            (_, Some(key)) => project.switch_gate(key),
            (RunKind::Service, None) => project.service(&run.service).and_then(|s| {
                s.environments
                    .iter()
                    .find(|e| e.name == env)
                    .map(|e| &e.gate)
            }),
            (RunKind::Infra | RunKind::StackJob, None) => {
                project.infra.get(&run.service).map(|p| &p.gate)
            }
            // A rollout waits only at its station groups' gates.
            (RunKind::Rollout, None) => None,
        };
        let Some(policy) = policy else {
            return Ok(()); // gone from the project: the recorded policy decides
        };
        let decider = crate::config::Decider {
            who: caller.principal(),
            role,
            action: match decision {
                crate::domain::Decision::Approve => Action::Approve,
                crate::domain::Decision::Reject => Action::Reject,
            },
            env,
            run_id,
            triggered_by: &run.triggered_by,
            commented: comment.is_some_and(|c| !c.trim().is_empty()),
        };
        match policy.refuses(&decider) {
            Some(why) => Err(why.into()),
            None => Ok(()),
        }
    }

    /// Who the engine takes `caller` for, and its role here (none when not listed).
    pub fn identity(&self, caller: &Caller) -> crate::domain::command::Identity {
        let who = caller.principal();
        crate::domain::command::Identity {
            user: who.name.clone(),
            groups: who.groups.clone(),
            role: self.role_of(caller).ok(),
            engine_user: self.engine_user.to_string(),
            engine_host: super::account::host_name(),
        }
    }

    /// The caller's role on this engine; refused when `[access]` does not list it.
    pub fn role_of(&self, caller: &Caller) -> Result<Role> {
        let who = caller.principal();
        let role = self
            .project
            .get()
            .access
            .role_of(who, &self.engine_user)
            .ok_or_else(|| Refusal::NotListed {
                who: who.name.clone(),
            })?;
        Ok(caller.cap().map_or(role, |cap| role.min(cap)))
    }

    /// The caller's role, if it may send `req`: refused when not listed in
    /// `[access]`, or when its role is below what the request needs. Deciding a
    /// gate is weighed later, against the gate's policy (approvers, self-approval).
    pub fn authorize(&self, caller: &Caller, req: &Request) -> Result<Role> {
        let who = caller.principal();
        let role = self.role_of(caller)?;
        let action = match req {
            Request::Trigger(_)
            | Request::TriggerInfra { .. }
            | Request::TriggerStackJob { .. }
            // Changes nothing, but runs Terraform with the resources' credentials.
            | Request::InfraDrift { .. } => Action::Trigger,
            // Reading the state needs its credentials too; changing it is gated as
            // well, and forcing a lock is an admin's.
            Request::StateJob { op, .. } if op.admin_only() => Action::ForceUnlock,
            Request::StateJob { op, .. } if op.changes_state() => Action::ChangeState,
            Request::StateJob { .. } => Action::Trigger,
            Request::Cancel { .. } => Action::Cancel,
            Request::Rerun { .. } => Action::Rerun,
            Request::Decide { .. } => return Ok(role),
            Request::ListRuns { .. }
            | Request::Detail { .. }
            | Request::WaitingGates
            | Request::Queues { .. }
            | Request::Audit { .. }
            | Request::AuditLog { .. }
            | Request::Logs { .. }
            | Request::LogCount { .. }
            | Request::SearchLog { .. }
            | Request::Preflight { .. }
            | Request::Catalog
            | Request::ConfigStatus
            | Request::DriftResults { .. }
            | Request::Triggers => Action::Read,
            Request::ListReleases { .. } | Request::ShowRelease { .. } | Request::ListStations => {
                Action::Read
            }
            Request::PinRelease { .. }
            | Request::UnpinStations { .. }
            | Request::PromoteRelease { .. }
            | Request::Rollback { .. }
            | Request::DeleteRelease { .. } => Action::Release,
            // Any command, as the engine's account: an admin's.
            Request::StationExec { .. } => Action::Administer,
            // Answered before authorization (`EngineHandle::answer`): never reaches here
            // refused, and needs no more than reading.
            Request::Whoami => Action::Read,
            Request::Reload | Request::Gc { .. } => Action::Administer,
        };
        if role < action.needs() {
            return Err(Refusal::Role {
                who: who.name.clone(),
                action,
                role,
            }
            .into());
        }
        Ok(role)
    }
}
