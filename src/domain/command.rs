//! The one command type (EN-1): every request a client can make of the engine, and
//! the engine's answer. The in-process client and the HTTP API carry these same
//! values. A request never says who makes it: the engine attaches the caller.
//!
//! Adding a command is one [`Request`] arm, its handler in the engine
//! (`EngineHandle::handle`), a CLI verb and a dashboard key.

use serde::{Deserialize, Serialize};

use super::release::{Release, StationInfo};
use super::{Decision, EnvQueue, GateInfo, Millis, RunDetail, RunInfo};
pub use crate::engine::stations::JobOutput;
use crate::store::{AuditEntry, LogLine, RunFilter};

/// A manual trigger of a service run (SP-7).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriggerRequest {
    pub service: String,
    /// Defaults to the service's default branch.
    pub branch: Option<String>,
    /// Defaults to the head of the branch.
    pub commit: Option<String>,
    /// Deploy even where an environment runs a newer commit: a deliberate rollback.
    #[serde(default)]
    pub allow_older: bool,
}

/// Everything a client can ask of the engine. The comment on each arm names the
/// [`Response`] arm it is answered with.
///
/// On the wire: `{"request": "cancel", "run_id": 7}`. Unknown fields are refused,
/// so a body that tries to name its actor (`"by": …`) is an error, not ignored.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// Start a service run. → [`Response::Run`]
    Trigger(TriggerRequest),
    /// Deploy an infra project, or undeploy it in reverse dependency order. → [`Response::Run`]
    TriggerInfra {
        project: String,
        #[serde(default)]
        undeploy: bool,
    },
    /// A stack job for one resource: `update`, `destroy`, `preview` or `refresh`. → [`Response::Run`]
    TriggerStackJob {
        resource: String,
        /// The infra project, needed when several define the resource.
        #[serde(default)]
        infra: Option<String>,
        operation: String,
        /// Terraform addresses preview and apply are limited to (`-target`); empty:
        /// the whole module (the default, always).
        #[serde(default)]
        targets: Vec<String>,
    },
    /// A state job for one resource (SJ-7): list or show what its Terraform state
    /// holds, taint, untaint, remove, move or import (gated like apply, operators
    /// and up), or force-unlock a stale lock (admins only). → [`Response::Run`]
    StateJob {
        resource: String,
        /// The infra project, needed when several define the resource.
        #[serde(default)]
        infra: Option<String>,
        op: super::state_op::StateOp,
    },
    /// A drift check of an infra pipeline, now: a plan-only `terraform plan
    /// -detailed-exitcode` per resource; nothing is applied. → [`Response::Drift`]
    InfraDrift { project: String },
    /// The latest drift check of every resource (stored by `InfraDrift` and by drift
    /// schedules), of one infra pipeline or of all. → [`Response::DriftResults`]
    DriftResults {
        #[serde(default)]
        project: Option<String>,
    },
    /// Ask a run to stop. → [`Response::Run`]
    Cancel { run_id: i64 },
    /// A new attempt of a run; `allow_older` lets it deploy a commit older than an
    /// environment runs (a deliberate rollback). → [`Response::Run`]
    Rerun {
        run_id: i64,
        #[serde(default)]
        allow_older: bool,
    },
    /// Approve or reject a waiting gate (`env`, or `env/node` for an infra node gate). → [`Response::Gate`]
    Decide {
        run_id: i64,
        env: String,
        decision: Decision,
        #[serde(default)]
        comment: Option<String>,
    },
    /// Runs, newest first. → [`Response::Runs`]
    ListRuns {
        #[serde(default)]
        filter: RunFilter,
    },
    /// One run with its steps and gates. → [`Response::Detail`]
    Detail { run_id: i64 },
    /// Every waiting gate, oldest first. → [`Response::Gates`]
    WaitingGates,
    /// A run's audit log. → [`Response::Audit`]
    Audit { run_id: i64 },
    /// The newest `limit` entries of the whole audit log, oldest first. → [`Response::Audit`]
    AuditLog { limit: usize },
    /// Each environment's deploy queue, of one service or of all. → [`Response::Queues`]
    Queues {
        #[serde(default)]
        service: Option<String>,
    },
    /// Up to `limit` lines of one step's log from line `from`. → [`Response::Logs`]
    Logs {
        run_id: i64,
        step_id: i64,
        #[serde(default)]
        from: u64,
        limit: usize,
    },
    /// The line of a step's whole log (not only what a client holds) that contains
    /// `needle` nearest line `from`: at or after it, or before it when `backward`.
    /// → [`Response::LogMatch`]
    SearchLog {
        run_id: i64,
        step_id: i64,
        #[serde(default)]
        from: u64,
        needle: String,
        #[serde(default)]
        backward: bool,
    },
    /// How many lines a step's log holds. → [`Response::LogCount`]
    LogCount { run_id: i64, step_id: i64 },
    /// A stack job's preflight checks for a resource, run where the job would run;
    /// nothing executes. → [`Response::Preflight`]
    Preflight {
        resource: String,
        #[serde(default)]
        infra: Option<String>,
    },
    /// The names the engine's project defines (for shell completion). → [`Response::Catalog`]
    Catalog,
    /// Prune old history as `[retention]` says (or only say what would go).
    /// → [`Response::Gc`]
    Gc {
        #[serde(default)]
        dry_run: bool,
    },
    /// Load the project file again now (the engine also does when it changes).
    /// → [`Response::Config`]
    Reload,
    /// Which project file the engine runs on, and whether its last change loaded.
    /// → [`Response::Config`]
    ConfigStatus,
    /// Every trigger: what it watches, its last fire and run, next fire, last error.
    /// → [`Response::Triggers`]
    Triggers,
    /// Releases (DP-1), newest first, of one service or of all. → [`Response::Releases`]
    ListReleases {
        #[serde(default)]
        service: Option<String>,
        #[serde(default)]
        limit: Option<usize>,
    },
    /// One release. → [`Response::Release`]
    ShowRelease { release: i64 },
    /// Every station: what it runs, switches to, pinned, jobs in flight. → [`Response::Stations`]
    ListStations,
    /// Pin a ready release to stations: they switch to it and stop following new
    /// releases until unpinned. → [`Response::Stations`]
    PinRelease { release: i64, stations: Vec<String> },
    /// The stations follow new releases again (and switch to the newest they follow).
    /// → [`Response::Stations`]
    UnpinStations { stations: Vec<String> },
    /// A ready preview release becomes a production release of the same artifact,
    /// which fans out to the production stations. → [`Response::Release`]
    PromoteRelease { release: i64 },
    /// Every production station of the service is pinned to the ready production
    /// release before the one it runs. → [`Response::Stations`]
    Rollback { service: String },
    /// Delete a release, refused while a station runs it, is pinned to it or switches
    /// to it. → [`Response::Release`] (the release deleted)
    DeleteRelease { release: i64 },
    /// Run a command (an argv, no shell) on the release the station runs now; a switch
    /// waits until it ends. → [`Response::StationJob`]
    StationExec { station: String, argv: Vec<String> },
    /// Who the engine takes the caller for (the verified account, its groups and
    /// role). Answered to anyone who reaches the engine, listed or not.
    /// → [`Response::Identity`]
    Whoami,
}

impl Request {
    /// What the request asks for, in a few words (`trigger api`, `decide prod`), for
    /// the audit log's record of a refusal.
    pub fn target(&self) -> String {
        match self {
            Request::Trigger(t) => format!("trigger {}", t.service),
            Request::TriggerInfra { project, undeploy } => {
                format!(
                    "{} {project}",
                    if *undeploy { "undeploy" } else { "deploy" }
                )
            }
            Request::TriggerStackJob {
                resource,
                operation,
                targets,
                ..
            } if !targets.is_empty() => {
                format!("{operation} {resource} (targeted: {})", targets.join(", "))
            }
            Request::TriggerStackJob {
                resource,
                operation,
                ..
            } => format!("{operation} {resource}"),
            Request::StateJob { resource, op, .. } => {
                format!("state {} on {resource}", op.describe())
            }
            Request::InfraDrift { project } => format!("drift check {project}"),
            Request::DriftResults { .. } => "drift results".into(),
            Request::Cancel { .. } => "cancel".into(),
            Request::Rerun { .. } => "rerun".into(),
            Request::Decide { env, decision, .. } => match decision {
                Decision::Approve => format!("approve {env}"),
                Decision::Reject => format!("reject {env}"),
            },
            Request::ListRuns { .. } => "list runs".into(),
            Request::Detail { .. } => "detail".into(),
            Request::WaitingGates => "waiting gates".into(),
            Request::Audit { .. } | Request::AuditLog { .. } => "audit".into(),
            Request::Queues { .. } => "queues".into(),
            Request::Logs { .. } | Request::SearchLog { .. } | Request::LogCount { .. } => {
                "logs".into()
            }
            Request::Preflight { resource, .. } => format!("preflight {resource}"),
            Request::Catalog => "catalog".into(),
            Request::Gc { .. } => "gc".into(),
            Request::Reload => "reload".into(),
            Request::ConfigStatus => "config status".into(),
            Request::Triggers => "triggers".into(),
            Request::ListReleases { .. } | Request::ShowRelease { .. } => "releases".into(),
            Request::ListStations => "stations".into(),
            Request::PinRelease { release, .. } => format!("pin release {release}"),
            Request::UnpinStations { .. } => "unpin stations".into(),
            Request::PromoteRelease { release } => format!("promote release {release}"),
            Request::Rollback { service } => format!("roll back {service}"),
            Request::DeleteRelease { release } => format!("delete release {release}"),
            Request::StationExec { station, .. } => format!("exec on station {station}"),
            Request::Whoami => "whoami".into(),
        }
    }

    /// The run the request is about, if one.
    pub fn run_id(&self) -> Option<i64> {
        match self {
            Request::Cancel { run_id }
            | Request::Rerun { run_id, .. }
            | Request::Decide { run_id, .. }
            | Request::Detail { run_id }
            | Request::Audit { run_id }
            | Request::Logs { run_id, .. }
            | Request::SearchLog { run_id, .. }
            | Request::LogCount { run_id, .. } => Some(*run_id),
            _ => None,
        }
    }
}

/// The engine's answer to a [`Request`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "response", content = "value", rename_all = "snake_case")]
pub enum Response {
    Run(RunInfo),
    Runs(Vec<RunInfo>),
    Detail(Box<RunDetail>),
    Gate(GateInfo),
    Gates(Vec<GateInfo>),
    Audit(Vec<AuditEntry>),
    Logs(Vec<LogLine>),
    LogCount(u64),
    /// The matching line's number, if any.
    LogMatch(Option<u64>),
    Preflight(PreflightReport),
    Drift(super::drift::DriftReport),
    DriftResults(Vec<super::drift::DriftRecord>),
    Catalog(Catalog),
    Config(ConfigStatus),
    Gc(crate::store::retention::GcReport),
    Queues(Vec<EnvQueue>),
    Triggers(Vec<super::trigger::TriggerInfo>),
    Releases(Vec<Release>),
    Release(Release),
    Stations(Vec<StationInfo>),
    StationJob(JobOutput),
    Identity(Identity),
}

/// Who the engine takes a caller for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Identity {
    /// The verified account (the socket peer's, a token's, or this process's own).
    pub user: String,
    pub groups: Vec<String>,
    /// The caller's role on this engine; `None`: `[access]` does not list it.
    pub role: Option<crate::domain::access::Role>,
    /// The account the engine runs as.
    pub engine_user: String,
    /// The host the engine runs on (a dashboard elsewhere is attached remotely).
    #[serde(default)]
    pub engine_host: String,
}

impl Response {
    /// The arm's name, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Response::Run(_) => "run",
            Response::Runs(_) => "runs",
            Response::Detail(_) => "detail",
            Response::Gate(_) => "gate",
            Response::Gates(_) => "gates",
            Response::Audit(_) => "audit",
            Response::Logs(_) => "logs",
            Response::LogCount(_) => "log_count",
            Response::LogMatch(_) => "log_match",
            Response::Preflight(_) => "preflight",
            Response::Drift(_) => "drift",
            Response::DriftResults(_) => "drift_results",
            Response::Catalog(_) => "catalog",
            Response::Config(_) => "config",
            Response::Gc(_) => "gc",
            Response::Queues(_) => "queues",
            Response::Triggers(_) => "triggers",
            Response::Releases(_) => "releases",
            Response::Release(_) => "release",
            Response::Stations(_) => "stations",
            Response::StationJob(_) => "station_job",
            Response::Identity(_) => "identity",
        }
    }
}

/// A response of another arm than the request calls for (a bug on one side).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("the engine answered with `{got}` where `{want}` was expected")]
pub struct UnexpectedResponse {
    pub want: &'static str,
    pub got: &'static str,
}

/// `TryFrom<Response>` for the value each arm carries, so a client asks for the type
/// it expects (`let run: RunInfo = client.ask(req).await?`).
macro_rules! typed_answer {
    ($($ty:ty => $arm:ident($v:ident) => $out:expr, $want:literal;)*) => {$(
        impl TryFrom<Response> for $ty {
            type Error = UnexpectedResponse;
            fn try_from(r: Response) -> Result<Self, UnexpectedResponse> {
                match r {
                    Response::$arm($v) => Ok($out),
                    other => Err(UnexpectedResponse { want: $want, got: other.kind() }),
                }
            }
        }
    )*};
}

typed_answer! {
    RunInfo => Run(v) => v, "run";
    Vec<RunInfo> => Runs(v) => v, "runs";
    RunDetail => Detail(v) => *v, "detail";
    GateInfo => Gate(v) => v, "gate";
    Vec<GateInfo> => Gates(v) => v, "gates";
    Vec<AuditEntry> => Audit(v) => v, "audit";
    Vec<LogLine> => Logs(v) => v, "logs";
    u64 => LogCount(v) => v, "log_count";
    Option<u64> => LogMatch(v) => v, "log_match";
    PreflightReport => Preflight(v) => v, "preflight";
    super::drift::DriftReport => Drift(v) => v, "drift";
    Vec<super::drift::DriftRecord> => DriftResults(v) => v, "drift_results";
    Catalog => Catalog(v) => v, "catalog";
    ConfigStatus => Config(v) => v, "config";
    crate::store::retention::GcReport => Gc(v) => v, "gc";
    Vec<EnvQueue> => Queues(v) => v, "queues";
    Vec<super::trigger::TriggerInfo> => Triggers(v) => v, "triggers";
    Vec<Release> => Releases(v) => v, "releases";
    Release => Release(v) => v, "release";
    Vec<StationInfo> => Stations(v) => v, "stations";
    JobOutput => StationJob(v) => v, "station_job";
    Identity => Identity(v) => v, "identity";
}

/// The project file the engine runs on, and how the last look at it went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigStatus {
    pub path: std::path::PathBuf,
    /// When the version in force was loaded (unix ms).
    pub loaded_at: Millis,
    /// The last version of the file that could not be loaded: why (file:line), and
    /// when that was seen. Cleared by a good version.
    pub error: Option<String>,
    pub error_at: Option<Millis>,
    /// The data dir's disk (filled in by the engine when it answers).
    #[serde(default)]
    pub disk: Option<DiskStatus>,
}

/// The data dir's disk: its usage as last measured, its file system's free space now,
/// and the floor under which no new run starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiskStatus {
    pub data_dir: std::path::PathBuf,
    /// Bytes the data dir takes (none until first measured, shortly after start).
    pub used_bytes: Option<u64>,
    pub measured_at: Option<Millis>,
    /// Bytes free on its file system (none if it cannot tell).
    pub free_bytes: Option<u64>,
    /// `min_free` in `[retention]`.
    pub min_free: Option<u64>,
}

impl DiskStatus {
    /// Whether new runs are refused now: free space under the floor.
    pub fn under_floor(&self) -> bool {
        matches!((self.free_bytes, self.min_free), (Some(f), Some(m)) if f < m)
    }

    /// `1.2 GiB used, 40.0 GiB free` (what is known), for a status line.
    pub fn summary_short(&self) -> String {
        use super::bytes::format_bytes;
        let parts: Vec<String> = [
            self.used_bytes.map(|b| format!("{} used", format_bytes(b))),
            self.free_bytes.map(|b| format!("{} free", format_bytes(b))),
        ]
        .into_iter()
        .flatten()
        .collect();
        parts.join(", ")
    }

    /// `1.2 GiB used · 40.0 GiB free`, and `(under min_free 50.0 GiB: no new runs)`
    /// when under the floor.
    pub fn summary(&self) -> String {
        use super::bytes::format_bytes;
        let used = self.used_bytes.map_or_else(
            || "usage not measured yet".to_string(),
            |b| format!("{} used", format_bytes(b)),
        );
        let free = self.free_bytes.map_or_else(
            || "free space unknown".to_string(),
            |b| format!("{} free", format_bytes(b)),
        );
        let mut s = format!("{used} · {free}");
        if let (true, Some(m)) = (self.under_floor(), self.min_free) {
            s.push_str(&format!(
                " (under min_free {}: no new runs)",
                format_bytes(m)
            ));
        }
        s
    }
}

/// The names a project defines: what a shell may complete.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Catalog {
    pub services: Vec<String>,
    /// Infra projects.
    pub infra: Vec<String>,
    /// Resource ids of every infra project, without repeats.
    pub resources: Vec<String>,
    /// Who may decide the gates, as the project defines them now (a run decides by
    /// the definition it pinned), for the dashboard's approve dialog.
    #[serde(default)]
    pub gates: Vec<GateRule>,
}

/// Who may decide the gates of one service environment or infra project.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GateRule {
    /// The service, or the infra project.
    pub owner: String,
    /// The environment (an infra project's node gates share its environment's rule).
    pub env: String,
    /// Who may decide; empty means anyone.
    pub approvers: Vec<String>,
    /// The person who triggered the run may not decide.
    pub forbid_self_approval: bool,
    /// A decision must carry a comment.
    #[serde(default)]
    pub require_comment: bool,
}

/// One preflight check (SJ-4).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

/// The engine's preflight of one resource.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreflightReport {
    /// The infra project that defines the resource.
    pub project: String,
    pub resource: String,
    pub driver: String,
    pub checks: Vec<Check>,
}

#[cfg(test)]
mod tests;
