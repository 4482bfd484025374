//! State jobs (SJ-7, issue 22 parts 2 and 3): a resource's Terraform state listed,
//! shown or changed (taint, untaint, rm, mv, import), or a stale lock forced, as a
//! stack job on the one scheduler: `init` as plan and apply run it, then the state
//! operation, each with its log. Who may is `authorize`'s; here: which resources,
//! the gate, and never beside another run of the resource.

use super::handle::EngineHandle;
use super::runner::Msg;
use super::{Caller, EngineError, Result, preflight};
use crate::config::backend::BackendKind;
use crate::domain::state_op::StateOp;
use crate::domain::{Operation, RunInfo, RunKind, RunSpec};
use crate::store::RunFilter;

impl EngineHandle {
    /// Starts a state job of `op` on `resource`. A job that changes the state waits
    /// for the approval its environment (or the resource's node gate) asks of apply;
    /// list, show and a force-unlock (an admin's) do not.
    pub(super) async fn start_state_job(
        &self,
        caller: &Caller,
        resource: &str,
        infra: Option<&str>,
        op: StateOp,
    ) -> Result<RunInfo> {
        op.validate()
            .map_err(|e| EngineError::Invalid(e.to_string()))?;
        let project = self.project.get();
        let (p, r) = preflight::locate(&project, resource, infra)?;
        if !r.is_terraform() {
            return Err(EngineError::Invalid(format!(
                "resource `{resource}` uses the {} driver: state operations are for \
                 terraform/tofu resources",
                r.driver
            )));
        }
        let kind = r.backend.as_ref().map_or(BackendKind::Local, |b| b.kind);
        if matches!(op, StateOp::Unlock { .. }) && kind == BackendKind::Local {
            // A local state's lock is a file lock of the process that holds it: it
            // cannot outlive that process, and Terraform refuses to force it.
            return Err(EngineError::Invalid(format!(
                "resource `{resource}` keeps its state in a local file, whose lock is held by \
                 a live process and ends with it: there is no stale lock to release (stop \
                 the run or the terraform command that holds it)"
            )));
        }
        if matches!(op, StateOp::Unlock { .. }) && kind == BackendKind::Pg {
            // Terraform's pg backend locks with a session-level advisory lock: it ends
            // with the session that holds it, and `force-unlock` cannot release it
            // (Terraform reports success and the lock stays).
            return Err(EngineError::Invalid(format!(
                "resource `{resource}` keeps its state in the pg backend, whose locks are \
                 PostgreSQL advisory locks held by a live session: they are released when \
                 that session ends, and terraform force-unlock cannot release them. Stop \
                 the process that holds it (its run, or the terraform command), or end its \
                 session in PostgreSQL (pg_stat_activity, pg_terminate_backend)"
            )));
        }
        self.no_run_of(&p.name, resource).await?;
        let mut def = p.clone();
        let node_gate = r.gate;
        def.gate.approval = op.gated() && (p.gate.approval || node_gate);
        def.resources.retain(|x| x.id == resource);
        if let Some(x) = def.resources.first_mut() {
            x.depends_on.clear();
            x.gate = false;
        }
        let message = format!(
            "state job: {} on {resource} in {}",
            op.describe(),
            p.environment
        );
        let spec = RunSpec::StackJob {
            project: p.name.clone(),
            environment: p.environment.clone(),
            resource: resource.to_string(),
            operation: Operation::State,
            state: Some(op),
            targets: Vec::new(),
        };
        self.create_infra(caller, &def, spec, message).await
    }

    /// Refuses while a run of the resource is in flight: both would write the copy of
    /// its module in its state dir, and the other holds (or is about to take) its lock.
    async fn no_run_of(&self, project: &str, resource: &str) -> Result<()> {
        let filter = RunFilter {
            service: Some(project.to_string()),
            limit: Some(1000),
            ..Default::default()
        };
        let runs = self.runner(|r| Msg::List(filter, r)).await?;
        let busy = runs.iter().find(|r| {
            !r.status.is_terminal()
                && match r.kind {
                    RunKind::Infra => true,
                    RunKind::StackJob => r.resource.as_deref() == Some(resource),
                    RunKind::Service | RunKind::Rollout => false,
                }
        });
        match busy {
            Some(r) => Err(EngineError::Conflict(format!(
                "run {} ({}) of `{project}` is {}: a state job on `{resource}` waits until it ends",
                r.id,
                r.what(),
                r.status
            ))),
            None => Ok(()),
        }
    }

    /// A force-unlock is not repeated: the lock it released is gone, and a new one
    /// has a new id.
    pub(super) async fn may_rerun(&self, run_id: i64) -> Result<()> {
        let run = self.runner(|r| Msg::Detail(run_id, r)).await?.run;
        if matches!(run.state_op, Some(StateOp::Unlock { .. })) {
            return Err(EngineError::Invalid(format!(
                "run {run_id} released a lock, which is gone now: a force-unlock is not rerun \
                 (`pipedeck stack-job unlock RESOURCE LOCK_ID` with the id of the lock now held)"
            )));
        }
        Ok(())
    }
}
