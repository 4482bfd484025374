//! The engine API (EN-1): requests in ([`EngineHandle::handle`]), a broadcast
//! stream of events out.

use std::sync::Arc;

use tokio::sync::{broadcast, mpsc, oneshot};

use super::live_project::LiveProject;
use super::plan::Definition;
use super::runner::Msg;
use super::{Caller, EngineError, Result, Shared, preflight, workspace};
use crate::config::Project;
use crate::domain::access::Actor;
use crate::domain::chain::Upstream;
use crate::domain::command::{Request, Response};
use crate::domain::deploy::short_sha;
use crate::domain::{Event, Operation, QueueKey, RunInfo, RunSpec, RunType, Trigger};
use crate::store::{AuditEntry, NewRun};

pub use crate::domain::command::TriggerRequest;

/// The most audit entries one request returns.
const MAX_AUDIT: usize = 100_000;

/// The most log lines one request returns.
pub(super) const MAX_LOG_LINES: usize = 100_000;

/// A cheap, cloneable handle on a running engine. As an in-process client
/// ([`crate::api::EngineClient`]) it acts as its caller: the local user of the
/// engine process unless [`EngineHandle::as_caller`] says otherwise.
#[derive(Clone)]
pub struct EngineHandle {
    tx: mpsc::Sender<Msg>,
    pub(super) shared: Arc<Shared>,
    pub(super) project: Arc<LiveProject>,
    caller: Caller,
    /// The account the engine runs as: always admin.
    pub(super) engine_user: Arc<str>,
    /// The triggers started with the engine, once they are.
    pub(super) board: Arc<std::sync::OnceLock<super::triggers::Board>>,
}

impl EngineHandle {
    pub(super) fn new(
        tx: mpsc::Sender<Msg>,
        shared: Arc<Shared>,
        project: Arc<LiveProject>,
    ) -> Self {
        let caller = Caller::local();
        Self {
            tx,
            shared,
            project,
            engine_user: caller.name().into(),
            caller,
            board: Default::default(),
        }
    }

    /// The same engine, acting for `caller` when used as a client.
    pub fn as_caller(&self, caller: impl Into<Caller>) -> Self {
        Self {
            caller: caller.into(),
            ..self.clone()
        }
    }

    /// Who this handle acts for as a client.
    pub fn caller(&self) -> &Caller {
        &self.caller
    }

    /// Sends a message to the runner and waits for its reply.
    pub(super) async fn runner<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T>>) -> Msg,
    ) -> Result<T> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(make(reply))
            .await
            .map_err(|_| EngineError::Stopped)?;
        rx.await.map_err(|_| EngineError::Stopped)?
    }

    /// Stores what service `downstream`'s `all` chain waits with (the chain watcher's).
    pub(crate) async fn save_chain_pending(
        &self,
        downstream: &str,
        slots: Vec<Option<i64>>,
    ) -> Result<()> {
        let downstream = downstream.to_string();
        self.runner(|reply| Msg::ChainPending {
            downstream,
            slots,
            reply,
        })
        .await
    }

    /// The project in force (the file is reloaded when it changes).
    pub fn project(&self) -> Arc<Project> {
        self.project.get()
    }

    pub fn data_dir(&self) -> &std::path::Path {
        &self.shared.data_dir
    }

    /// Every event committed from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.shared.events.subscribe()
    }

    /// Answers one request on behalf of `caller`: the one place requests meet the
    /// runner. Every client (in-process, HTTP) comes through here.
    pub async fn handle(&self, caller: &Caller, req: Request) -> Result<Response> {
        let (target, run_id) = (req.target(), req.run_id());
        let r = self.answer(caller, req).await;
        if let Err(EngineError::Forbidden(why)) = &r {
            self.refused(caller.name(), &target, why, run_id).await;
        }
        r
    }

    /// Records a refused request (who, what, why) in the engine's log and the audit
    /// log; `run_id` is the run it was about, if one.
    pub(crate) async fn refused(&self, who: &str, target: &str, why: &str, run_id: Option<i64>) {
        tracing::warn!(caller = who, target, "refused: {why}");
        let entry = AuditEntry {
            at: crate::domain::now_ms(),
            actor: who.to_string(),
            action: AuditEntry::REFUSED.to_string(),
            run_id: run_id.unwrap_or(AuditEntry::NO_RUN),
            target: Some(target.to_string()),
            comment: Some(why.to_string()),
        };
        if self.tx.send(Msg::Refused(Box::new(entry))).await.is_err() {
            tracing::warn!("the engine stopped: a refusal was not recorded in the audit log");
        }
    }

    async fn answer(&self, caller: &Caller, req: Request) -> Result<Response> {
        // Who one is, the engine tells anyone who reaches it (an unlisted account
        // learns why it is refused everything else).
        if let Request::Whoami = req {
            return Ok(Response::Identity(self.identity(caller)));
        }
        let role = self.authorize(caller, &req)?;
        let by = || caller.name().to_string();
        Ok(match req {
            Request::ListReleases { .. }
            | Request::ShowRelease { .. }
            | Request::ListStations
            | Request::PinRelease { .. }
            | Request::UnpinStations { .. }
            | Request::PromoteRelease { .. }
            | Request::Rollback { .. }
            | Request::DeleteRelease { .. }
            | Request::StationExec { .. } => self.release_request(caller, req).await?,
            Request::Trigger(t) => Response::Run(self.start_service(caller, t, Vec::new()).await?),
            Request::TriggerInfra { project, undeploy } => {
                Response::Run(self.start_infra(caller, &project, undeploy).await?)
            }
            Request::TriggerStackJob {
                resource,
                infra,
                operation,
                targets,
            } => Response::Run(
                self.start_stack_job(caller, &resource, infra.as_deref(), &operation, &targets)
                    .await?,
            ),
            Request::StateJob {
                resource,
                infra,
                op,
            } => Response::Run(
                self.start_state_job(caller, &resource, infra.as_deref(), op)
                    .await?,
            ),
            Request::InfraDrift { project } => {
                Response::Drift(self.check_drift(&project, caller.name()).await?)
            }
            Request::DriftResults { project } => {
                Response::DriftResults(self.drift_results(project).await?)
            }
            // Returns at once; the run shows `cancelling` until it settles (SP-5).
            Request::Cancel { run_id } => {
                Response::Run(self.runner(|r| Msg::Cancel(run_id, by(), r)).await?)
            }
            // Same commit, trigger data and pipeline definition (SP-6).
            Request::Rerun {
                run_id,
                allow_older,
            } => {
                self.may_rerun(run_id).await?;
                let allow_older = self.may_go_back(run_id, allow_older).await?;
                Response::Run(
                    self.runner(|r| Msg::Rerun(run_id, by(), allow_older, r))
                        .await?,
                )
            }
            Request::Decide {
                run_id,
                env,
                decision,
                comment,
            } => Response::Gate({
                self.current_gate_allows(caller, role, run_id, &env, decision, comment.as_deref())
                    .await?;
                self.runner(|reply| Msg::Decide {
                    run_id,
                    env,
                    decision,
                    by: Actor {
                        who: caller.principal().clone(),
                        role,
                    },
                    comment,
                    reply,
                })
                .await?
            }),
            Request::ListRuns { filter } => {
                Response::Runs(self.runner(|r| Msg::List(filter, r)).await?)
            }
            Request::Detail { run_id } => {
                Response::Detail(Box::new(self.runner(|r| Msg::Detail(run_id, r)).await?))
            }
            Request::WaitingGates => Response::Gates(self.runner(Msg::WaitingGates).await?),
            Request::Queues { service } => Response::Queues(self.queues(service.as_deref()).await?),
            Request::Audit { run_id } => {
                Response::Audit(self.runner(|r| Msg::Audit(run_id, r)).await?)
            }
            Request::AuditLog { limit } => Response::Audit(
                self.runner(|r| Msg::AuditLog(limit.min(MAX_AUDIT), r))
                    .await?,
            ),
            Request::Logs {
                run_id,
                step_id,
                from,
                limit,
            } => Response::Logs(self.read_log(run_id, step_id, from, limit).await?),
            Request::SearchLog {
                run_id,
                step_id,
                from,
                needle,
                backward,
            } => {
                let logs = self.shared.logs.clone();
                let dir = if backward {
                    crate::store::Direction::Backward
                } else {
                    crate::store::Direction::Forward
                };
                let found = tokio::task::spawn_blocking(move || {
                    logs.find(run_id, step_id, from, &needle, dir)
                })
                .await
                .map_err(|e| EngineError::Internal(e.to_string()))?
                .map_err(|e| EngineError::Internal(format!("searching the log failed: {e}")))?;
                Response::LogMatch(found)
            }
            Request::LogCount { run_id, step_id } => {
                Response::LogCount(self.count_log(run_id, step_id).await?)
            }
            Request::Preflight { resource, infra } => {
                let (project, data_dir) = (self.project.get(), self.shared.data_dir.clone());
                let report = tokio::task::spawn_blocking(move || {
                    preflight::for_resource(&project, &data_dir, &resource, infra.as_deref())
                })
                .await
                .map_err(|e| EngineError::Internal(e.to_string()))??;
                Response::Preflight(report)
            }
            Request::Catalog => Response::Catalog(self.project.get().catalog()),
            Request::ConfigStatus => Response::Config(self.engine_status().await),
            Request::Whoami => Response::Identity(self.identity(caller)),
            Request::Gc { dry_run } => {
                let retention = self.project.get().retention;
                Response::Gc(super::gc::gc(&self.tx, &self.shared.logs, retention, dry_run).await?)
            }
            Request::Triggers => Response::Triggers(self.triggers().await?),
            Request::Reload => {
                let live = self.project.clone();
                tokio::task::spawn_blocking(move || live.reload())
                    .await
                    .map_err(|e| EngineError::Internal(format!("reloading: {e}")))?;
                Response::Config(self.engine_status().await)
            }
        })
    }

    /// Starts a run of a service at a branch head or a given commit; a run that
    /// `upstream` runs started (a chain) is recorded as triggered by the chain.
    pub(crate) async fn start_service(
        &self,
        caller: &Caller,
        req: TriggerRequest,
        upstream: Vec<Upstream>,
    ) -> Result<RunInfo> {
        let project = self.project.get();
        let svc = project.service(&req.service).ok_or_else(|| {
            let names: Vec<&str> = project.services.keys().map(String::as_str).collect();
            EngineError::NotFound(format!(
                "no service `{}` in {} (services: {})",
                req.service,
                project.path.display(),
                names.join(", ")
            ))
        })?;
        if !svc.pipelines_enabled {
            return Err(EngineError::Invalid(format!(
                "pipelines are disabled for service {}: nothing runs, manual triggers included \
                 (set pipelines_enabled = true in {} to enable them)",
                svc.name,
                project.path.display()
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
        let (repo, info) = tokio::task::spawn_blocking(move || {
            let repo = workspace::ensure_repo(&svc2, &data_dir)?;
            workspace::resolve_commit(&repo, &b2, commit.as_deref()).map(|info| (repo, info))
        })
        .await
        .map_err(|e| EngineError::Internal(e.to_string()))?
        .map_err(|e| EngineError::Invalid(e.to_string()))?;
        // The run's workspace is checked out while the runner stores the run.
        let data_dir = &self.shared.data_dir;
        self.shared
            .ahead
            .start(data_dir, &svc.name, repo, &info.sha);
        let what = format!("service {} at {}", svc.name, short_sha(&info.sha));
        let allow_older = self
            .goes_back(svc, &info.sha, &what, req.allow_older)
            .await?;
        let new = NewRun {
            spec: RunSpec::Service {
                service: svc.name.clone(),
                branch,
                tag: None,
                commit: info.sha,
            },
            run_type: RunType::Production,
            trigger: if upstream.is_empty() {
                Trigger::Manual
            } else {
                Trigger::Chain
            },
            commit_message: info.message,
            author: info.author,
            triggered_by: caller.name().to_string(),
            rerun_of: None,
            attempt: 1,
            allow_older,
            definition: serde_json::to_string(svc)
                .map_err(|e| EngineError::Internal(e.to_string()))?,
            upstream,
        };
        let def = Definition::Service(svc.clone());
        self.runner(|reply| Msg::Create(Box::new((new, Some(def))), reply))
            .await
    }

    /// Starts an infra pipeline run: deploy, or undeploy in reverse dependency order.
    async fn start_infra(&self, caller: &Caller, project: &str, undeploy: bool) -> Result<RunInfo> {
        let current = self.project.get();
        let p = current.infra.get(project).ok_or_else(|| {
            let names: Vec<&str> = current.infra.keys().map(String::as_str).collect();
            EngineError::NotFound(format!(
                "no infra project `{project}` in {} (infra projects: {})",
                current.path.display(),
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
                current.path.display()
            )));
        }
        let op = if undeploy { "undeploy" } else { "deploy" };
        let message = format!("{op} {} to {}", p.name, p.environment);
        let spec = RunSpec::Infra {
            project: p.name.clone(),
            environment: p.environment.clone(),
            undeploy,
        };
        self.create_infra(caller, p, spec, message).await
    }

    /// A stack job for one resource (SJ-1): `update` (…→ apply), `destroy`, `preview`
    /// or `refresh`, outside any pipeline run (the policy applies; a job that changes
    /// a gated resource waits for that approval).
    async fn start_stack_job(
        &self,
        caller: &Caller,
        resource: &str,
        infra: Option<&str>,
        operation: &str,
        targets: &[String],
    ) -> Result<RunInfo> {
        let project = self.project.get();
        let targets = crate::domain::target::parse_all(targets)
            .map_err(|e| EngineError::Invalid(e.to_string()))?;
        if !["update", "destroy", "preview", "refresh"].contains(&operation) {
            return Err(EngineError::Invalid(format!(
                "`{operation}` is not a stack-job operation: use update, destroy, preview or refresh"
            )));
        }
        let (p, _) = preflight::locate(&project, resource, infra)?;
        let mut def = p.clone();
        // No gate bypass: a job that changes the resource (`update`, `destroy`) waits
        // for the same approval as its environment, or its node gate, would ask for
        // (one gate, before anything runs); `preview` and `refresh` change nothing.
        let changes = matches!(operation, "update" | "destroy");
        let node_gate = p.resources.iter().any(|r| r.id == resource && r.gate);
        def.gate.approval = changes && (p.gate.approval || node_gate);
        def.resources.retain(|r| r.id == resource);
        if let Some(r) = def.resources.first_mut() {
            r.depends_on.clear();
            r.gate = false;
            if !targets.is_empty() && !r.is_terraform() {
                return Err(EngineError::Invalid(format!(
                    "resource `{resource}` runs the {} driver: --target takes Terraform \
                     addresses, for terraform/tofu resources only",
                    r.driver
                )));
            }
            if operation == "destroy" && !r.is_terraform() && r.commands.destroy.is_none() {
                return Err(EngineError::Invalid(format!(
                    "resource `{resource}` has no destroy command"
                )));
            }
        }
        let message = format!("stack job: {operation} {resource} in {}", p.environment);
        let spec = RunSpec::StackJob {
            project: p.name.clone(),
            environment: p.environment.clone(),
            resource: resource.to_string(),
            // `update` ends in apply.
            operation: Operation::ALL
                .iter()
                .copied()
                .find(|o| o.job_verb() == operation)
                .unwrap_or(Operation::Apply),
            state: None,
            targets,
        };
        self.create_infra(caller, &def, spec, message).await
    }

    /// Creates a manual infra run or stack job (`spec`) of `def`.
    pub(super) async fn create_infra(
        &self,
        caller: &Caller,
        def: &crate::config::infra::InfraProject,
        spec: RunSpec,
        message: String,
    ) -> Result<RunInfo> {
        let pinned = spec
            .infra_action()
            .map(|action| Definition::Infra(def.clone(), action));
        let new = NewRun {
            spec,
            run_type: RunType::Production,
            trigger: Trigger::Manual,
            commit_message: message,
            author: caller.name().to_string(),
            triggered_by: caller.name().to_string(),
            rerun_of: None,
            attempt: 1,
            allow_older: false,
            upstream: Vec::new(),
            definition: serde_json::to_string(def)
                .map_err(|e| EngineError::Internal(e.to_string()))?,
        };
        self.runner(|reply| Msg::Create(Box::new((new, pinned)), reply))
            .await
    }

    /// Whether a rerun of run `run_id` may go back to its older commit: refused if it
    /// would and `allow_older` is not set.
    async fn may_go_back(&self, run_id: i64, allow_older: bool) -> Result<bool> {
        let project = self.project.get();
        let run = self.runner(|r| Msg::Detail(run_id, r)).await?.run;
        let Some(svc) = project.service(&run.service) else {
            return Ok(false);
        };
        let what = format!("a rerun of run {run_id} ({})", short_sha(&run.commit_sha));
        self.goes_back(svc, &run.commit_sha, &what, allow_older)
            .await
    }

    /// Whether deploying `sha` of `svc` would take an environment back to an older
    /// commit than it runs. If it would: `Ok(true)` when `allow_older` (a deliberate
    /// rollback), else [`EngineError::OlderCommit`] saying where and how to insist.
    pub(super) async fn goes_back(
        &self,
        svc: &crate::config::Service,
        sha: &str,
        what: &str,
        allow_older: bool,
    ) -> Result<bool> {
        let keys: Vec<QueueKey> = svc
            .environments
            .iter()
            .map(|e| QueueKey {
                service: svc.name.clone(),
                env: e.name.clone(),
            })
            .collect();
        if !svc.deployments_enabled || keys.is_empty() {
            return Ok(false);
        }
        let current = self.runner(|r| Msg::Current(keys, r)).await?;
        let (svc2, data_dir, sha2) = (svc.clone(), self.shared.data_dir.clone(), sha.to_string());
        let newer = tokio::task::spawn_blocking(move || {
            let repo = workspace::ensure_repo(&svc2, &data_dir)?;
            let mut newer = Vec::new();
            for d in current {
                if workspace::is_ancestor(&repo, &sha2, &d.commit_sha)? {
                    newer.push(d);
                }
            }
            Ok::<_, workspace::WorkspaceError>(newer)
        })
        .await
        .map_err(|e| EngineError::Internal(e.to_string()))?
        .map_err(|e| EngineError::Invalid(e.to_string()))?;
        if newer.is_empty() {
            return Ok(false);
        }
        if allow_older {
            return Ok(true);
        }
        let envs: Vec<String> = newer
            .iter()
            .map(|d| {
                format!(
                    "{} runs {} (run {})",
                    d.env,
                    short_sha(&d.commit_sha),
                    d.run_id
                )
            })
            .collect();
        Err(EngineError::OlderCommit(format!(
            "{what} would deploy an older commit than {}; pass --allow-older to roll back on \
             purpose",
            envs.join(", ")
        )))
    }

    /// Stops the engine: running steps are terminated and recorded as cancelled;
    /// gates that wait stay waiting for the next engine.
    pub async fn shutdown(&self) {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Msg::Shutdown(reply)).await.is_err() {
            return; // already stopped
        }
        if rx.await.is_err() {
            tracing::warn!("the engine ended without confirming its shutdown");
        }
    }
}
