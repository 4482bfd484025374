//! The engine API (EN-1): async commands in, a broadcast stream of events out.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc, oneshot};

use super::runner::Msg;
use super::{EngineError, Result, Shared, workspace};
use crate::config::Project;
use crate::domain::{Decision, Event, GateInfo, RunDetail, RunInfo, RunKind, RunType, Trigger};
use crate::store::{AuditEntry, LogLine, NewRun, RunFilter};

/// A manual trigger (SP-7).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TriggerRequest {
    pub service: String,
    /// Defaults to the service's default branch.
    pub branch: Option<String>,
    /// Defaults to the head of the branch.
    pub commit: Option<String>,
    pub triggered_by: String,
}

/// A cheap, cloneable handle on a running engine.
#[derive(Clone)]
pub struct EngineHandle {
    tx: mpsc::Sender<Msg>,
    shared: Arc<Shared>,
    project: Arc<Project>,
}

impl EngineHandle {
    pub(super) fn new(tx: mpsc::Sender<Msg>, shared: Arc<Shared>, project: Arc<Project>) -> Self {
        Self {
            tx,
            shared,
            project,
        }
    }

    async fn call<T>(&self, make: impl FnOnce(oneshot::Sender<Result<T>>) -> Msg) -> Result<T> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(make(reply))
            .await
            .map_err(|_| EngineError::Stopped)?;
        rx.await.map_err(|_| EngineError::Stopped)?
    }

    pub fn project(&self) -> &Project {
        &self.project
    }

    pub fn data_dir(&self) -> &std::path::Path {
        &self.shared.data_dir
    }

    /// Every event committed from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.shared.events.subscribe()
    }

    /// Starts a run of a service at a branch head or a given commit.
    pub async fn trigger(&self, req: TriggerRequest) -> Result<RunInfo> {
        let svc = self.project.service(&req.service).ok_or_else(|| {
            let names: Vec<&str> = self.project.services.keys().map(String::as_str).collect();
            EngineError::NotFound(format!(
                "no service `{}` in {} (services: {})",
                req.service,
                self.project.path.display(),
                names.join(", ")
            ))
        })?;
        if !svc.pipelines_enabled {
            return Err(EngineError::Invalid(format!(
                "pipelines are disabled for service {}: nothing runs, manual triggers included \
                 (set pipelines_enabled = true in {} to enable them)",
                svc.name,
                self.project.path.display()
            )));
        }
        let branch = req
            .branch
            .clone()
            .unwrap_or_else(|| svc.default_branch.clone());
        let (svc2, data_dir, commit) = (
            svc.clone(),
            self.shared.data_dir.clone(),
            req.commit.clone(),
        );
        let b2 = branch.clone();
        let info = tokio::task::spawn_blocking(move || {
            let repo = workspace::ensure_repo(&svc2, &data_dir)?;
            workspace::resolve_commit(&repo, &b2, commit.as_deref())
        })
        .await
        .map_err(|e| EngineError::Internal(e.to_string()))?
        .map_err(EngineError::Invalid)?;
        let new = NewRun {
            kind: RunKind::Service,
            service: svc.name.clone(),
            run_type: RunType::Production,
            trigger: Trigger::Manual,
            branch,
            tag: None,
            commit_sha: info.sha,
            commit_message: info.message,
            author: info.author,
            triggered_by: req.triggered_by,
            rerun_of: None,
            attempt: 1,
            operation: None,
            definition: serde_json::to_value(svc)
                .map_err(|e| EngineError::Internal(e.to_string()))?,
        };
        self.call(|reply| Msg::Create(Box::new(new), reply)).await
    }

    /// Starts an infra pipeline run: deploy, or undeploy in reverse dependency order.
    pub async fn trigger_infra(&self, project: &str, undeploy: bool, by: &str) -> Result<RunInfo> {
        let p = self.project.infra.get(project).ok_or_else(|| {
            let names: Vec<&str> = self.project.infra.keys().map(String::as_str).collect();
            EngineError::NotFound(format!(
                "no infra project `{project}` in {} (infra projects: {})",
                self.project.path.display(),
                names.join(", ")
            ))
        })?;
        if undeploy
            && let Some(r) = p
                .resources
                .iter()
                .find(|r| !r.is_terraform() && r.commands.destroy.is_none())
        {
            return Err(EngineError::Invalid(format!(
                "resource `{}` has no destroy command, so `{project}` cannot be undeployed \
                 (add commands.destroy to it in {})",
                r.id,
                self.project.path.display()
            )));
        }
        let op = if undeploy { "undeploy" } else { "deploy" };
        let message = format!("{op} {} to {}", p.name, p.environment);
        self.create_infra(p, None, message, op.to_string(), by)
            .await
    }

    /// A stack job for one resource (SJ-1): `update` (…→ apply), `destroy`, `preview`
    /// or `refresh`, outside any pipeline run (no environment gate; the policy applies).
    pub async fn trigger_stack_job(
        &self,
        resource: &str,
        infra: Option<&str>,
        operation: &str,
        by: &str,
    ) -> Result<RunInfo> {
        if !["update", "destroy", "preview", "refresh"].contains(&operation) {
            return Err(EngineError::Invalid(format!(
                "`{operation}` is not a stack-job operation: use update, destroy, preview or refresh"
            )));
        }
        let found: Vec<&crate::config::infra::InfraProject> = self
            .project
            .infra
            .values()
            .filter(|p| infra.is_none_or(|n| n == p.name) && p.resource(resource).is_some())
            .collect();
        let p = match found.as_slice() {
            [one] => *one,
            [] => {
                return Err(EngineError::NotFound(format!(
                    "no resource `{resource}` in {}",
                    self.project.path.display()
                )));
            }
            _ => {
                return Err(EngineError::Invalid(format!(
                    "several infra projects define `{resource}`: name one"
                )));
            }
        };
        let mut def = p.clone();
        def.gate.approval = false;
        def.resources.retain(|r| r.id == resource);
        if let Some(r) = def.resources.first_mut() {
            r.depends_on.clear();
            r.gate = false;
            if operation == "destroy" && !r.is_terraform() && r.commands.destroy.is_none() {
                return Err(EngineError::Invalid(format!(
                    "resource `{resource}` has no destroy command"
                )));
            }
        }
        let message = format!("stack job: {operation} {resource} in {}", p.environment);
        // A stack job names its resource in the run's tag.
        let op = format!("stack-job:{operation}");
        self.create_infra(&def, Some(resource.to_string()), message, op, by)
            .await
    }

    /// Creates a manual infra run of `def` (its project name, environment and operation).
    async fn create_infra(
        &self,
        def: &crate::config::infra::InfraProject,
        tag: Option<String>,
        message: String,
        operation: String,
        by: &str,
    ) -> Result<RunInfo> {
        let new = NewRun {
            kind: RunKind::Infra,
            service: def.name.clone(),
            run_type: RunType::Production,
            trigger: Trigger::Manual,
            branch: def.environment.clone(),
            tag,
            commit_sha: String::new(),
            commit_message: message,
            author: by.to_string(),
            triggered_by: by.to_string(),
            rerun_of: None,
            attempt: 1,
            operation: Some(operation),
            definition: serde_json::to_value(def)
                .map_err(|e| EngineError::Internal(e.to_string()))?,
        };
        self.call(|reply| Msg::Create(Box::new(new), reply)).await
    }

    /// Asks a run to stop (SP-5). Returns at once; the run shows `cancelling` until it settles.
    pub async fn cancel(&self, run_id: i64, by: &str) -> Result<RunInfo> {
        let by = by.to_string();
        self.call(|reply| Msg::Cancel(run_id, by, reply)).await
    }

    /// A new attempt of a run: same commit, trigger data and pipeline definition (SP-6).
    pub async fn rerun(&self, run_id: i64, by: &str) -> Result<RunInfo> {
        let by = by.to_string();
        self.call(|reply| Msg::Rerun(run_id, by, reply)).await
    }

    /// Approves or rejects the gate waiting before `env` (SP-4).
    pub async fn decide(
        &self,
        run_id: i64,
        env: &str,
        decision: Decision,
        by: &str,
        comment: Option<String>,
    ) -> Result<GateInfo> {
        let (env, by) = (env.to_string(), by.to_string());
        self.call(|reply| Msg::Decide {
            run_id,
            env,
            decision,
            by,
            comment,
            reply,
        })
        .await
    }

    pub async fn runs(&self, filter: RunFilter) -> Result<Vec<RunInfo>> {
        self.call(|reply| Msg::List(filter, reply)).await
    }

    pub async fn detail(&self, run_id: i64) -> Result<RunDetail> {
        self.call(|reply| Msg::Detail(run_id, reply)).await
    }

    /// Every gate waiting, across runs, oldest first.
    pub async fn waiting_gates(&self) -> Result<Vec<GateInfo>> {
        self.call(Msg::WaitingGates).await
    }

    pub async fn audit(&self, run_id: i64) -> Result<Vec<AuditEntry>> {
        self.call(|reply| Msg::Audit(run_id, reply)).await
    }

    /// Up to `limit` log lines of one step from line `from`.
    pub async fn logs(
        &self,
        run_id: i64,
        step_id: i64,
        from: u64,
        limit: usize,
    ) -> Result<Vec<LogLine>> {
        let logs = self.shared.logs.clone();
        tokio::task::spawn_blocking(move || logs.read(run_id, step_id, from, limit))
            .await
            .map_err(|e| EngineError::Internal(e.to_string()))?
            .map_err(|e| EngineError::Internal(format!("reading the log failed: {e}")))
    }

    /// How many lines a step's log holds.
    pub async fn log_count(&self, run_id: i64, step_id: i64) -> Result<u64> {
        let logs = self.shared.logs.clone();
        tokio::task::spawn_blocking(move || logs.line_count(run_id, step_id))
            .await
            .map_err(|e| EngineError::Internal(e.to_string()))?
            .map_err(|e| EngineError::Internal(format!("reading the log failed: {e}")))
    }

    /// Stops the engine: running steps are terminated and recorded as cancelled;
    /// gates that wait stay waiting for the next engine.
    pub async fn shutdown(&self) {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Msg::Shutdown(reply)).await.is_ok() {
            let _ = rx.await;
        }
    }
}
