//! Runs, steps and gates: their statuses and the transitions between them.

use serde::{Deserialize, Serialize};

use super::Millis;
use super::operation::{InfraAction, Operation};
use super::state_op::StateOp;
use super::target::Address;

/// Status of a run (SP-9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Queued,
    Running,
    AwaitingApproval,
    Cancelling,
    Succeeded,
    Failed,
    Cancelled,
    /// A gate said no: the environment and every later one were not deployed.
    Rejected,
    /// Nothing ran because the service's pipelines are disabled.
    Skipped,
    /// The engine stopped while the run was executing.
    Interrupted,
}
words!(RunStatus {
    Queued => "queued",
    Running => "running",
    AwaitingApproval => "awaiting_approval",
    Cancelling => "cancelling",
    Succeeded => "succeeded",
    Failed => "failed",
    Cancelled => "cancelled",
    Rejected => "rejected",
    Skipped => "skipped",
    Interrupted => "interrupted",
});

impl RunStatus {
    /// A terminal status never changes again.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Succeeded
                | Self::Failed
                | Self::Cancelled
                | Self::Rejected
                | Self::Skipped
                | Self::Interrupted
        )
    }

    /// Whether a run may move from `self` to `next`. Terminal runs never move;
    /// a cancelling run only settles.
    pub fn can_become(self, next: RunStatus) -> bool {
        use RunStatus::*;
        if self.is_terminal() || self == next {
            return false;
        }
        match self {
            Queued => true,
            Running | AwaitingApproval => next != Queued,
            Cancelling => next.is_terminal(),
            _ => false,
        }
    }

    /// The CLI exit code for a run that ended with this status.
    pub fn exit_code(self) -> i32 {
        match self {
            Self::Succeeded | Self::Skipped => 0,
            Self::Cancelled | Self::Rejected => 3,
            _ => 1,
        }
    }
}

/// Status of a build step or an environment deploy (SP-6b).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Pending,
    /// Waiting for an execution slot or for the environment's deploy queue.
    Queued,
    Running,
    AwaitingApproval,
    Succeeded,
    Failed,
    /// Not run (or stopped) because something upstream failed; the reason says what.
    Skipped,
    /// An operator asked.
    Cancelled,
    /// A gate said no.
    Rejected,
    Interrupted,
}
words!(StepStatus {
    Pending => "pending",
    Queued => "queued",
    Running => "running",
    AwaitingApproval => "awaiting_approval",
    Succeeded => "succeeded",
    Failed => "failed",
    Skipped => "skipped",
    Cancelled => "cancelled",
    Rejected => "rejected",
    Interrupted => "interrupted",
});

impl StepStatus {
    /// Whether a step (or a group's row) may move from `self` to `next`: the table
    /// every change of a row is checked against. Terminal rows never move; the same
    /// status may be set again with a new reason.
    pub fn can_become(self, next: StepStatus) -> bool {
        use StepStatus::*;
        match self {
            _ if self.is_terminal() => false,
            Pending => true,
            Queued | Running | AwaitingApproval => next != Pending,
            Succeeded | Failed | Skipped | Cancelled | Rejected | Interrupted => false,
        }
    }

    /// A terminal status never changes again.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Succeeded
                | Self::Failed
                | Self::Skipped
                | Self::Cancelled
                | Self::Rejected
                | Self::Interrupted
        )
    }
}

/// The two stages of a service run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Build,
    Deploy,
    /// A resource of an infra pipeline (its stack job).
    Resource,
    /// One operation of a resource's stack job (init, refresh, preview, apply, destroy).
    Operation,
    /// A check after an environment deploy (SP-3a), under its environment: `env.check`.
    Verify,
    /// A station's switch to a release (DP-2), in a rollout run: named after the station.
    Switch,
}
words!(Stage {
    Build => "build",
    Deploy => "deploy",
    Resource => "resource",
    Operation => "operation",
    Verify => "verify",
    Switch => "switch",
});

/// Production for branch and tag runs, Preview for pull requests (SP-7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunType {
    Production,
    Preview,
}
words!(RunType { Production => "production", Preview => "preview" });

/// What started a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    Manual,
    Push,
    Tag,
    PullRequest,
    Schedule,
    Rerun,
    /// Another run's end, or its deploy to an environment (SP-7a).
    Chain,
}
words!(Trigger {
    Manual => "manual",
    Push => "push",
    Tag => "tag",
    PullRequest => "pull_request",
    Schedule => "schedule",
    Rerun => "rerun",
    Chain => "chain",
});

/// What a run executes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunKind {
    Service,
    /// An infra project deployed (or undeployed) as a DAG.
    Infra,
    /// One resource's stack job, outside a pipeline run.
    StackJob,
    /// A release switched to on stations (DP-2): one unit per station.
    Rollout,
}
words!(RunKind { Service => "service", Infra => "infra", StackJob => "stack_job", Rollout => "rollout" });

impl RunKind {
    /// Infra projects and stack jobs: runs of resources, drawn as a DAG.
    pub fn is_infra(self) -> bool {
        matches!(self, Self::Infra | Self::StackJob)
    }
}

/// What a run executes, typed: a new kind of run is a new arm.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RunSpec {
    Service {
        service: String,
        branch: String,
        tag: Option<String>,
        commit: String,
    },
    Infra {
        project: String,
        environment: String,
        undeploy: bool,
    },
    StackJob {
        project: String,
        environment: String,
        resource: String,
        /// The operation the job ends in (SJ-1).
        operation: Operation,
        /// A state job ([`Operation::State`]): which state operation, and on what.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        state: Option<StateOp>,
        /// Terraform addresses preview and apply are limited to (`-target`); empty:
        /// the whole module, as always unless an operator names some.
        #[serde(default)]
        targets: Vec<Address>,
    },
    /// Stations switch to a service's release (DP-2); which stations, and how, is the
    /// run's definition.
    Rollout {
        service: String,
        release: i64,
        /// The release's branch and commit (what the stations will run).
        branch: String,
        commit: String,
    },
}

impl RunSpec {
    pub fn kind(&self) -> RunKind {
        match self {
            Self::Service { .. } => RunKind::Service,
            Self::Infra { .. } => RunKind::Infra,
            Self::StackJob { .. } => RunKind::StackJob,
            Self::Rollout { .. } => RunKind::Rollout,
        }
    }

    /// What the audit log names as the target of creating the run, where its columns
    /// do not say it all: a state job's operation and addresses.
    pub fn audit_target(&self) -> Option<String> {
        match self {
            Self::StackJob {
                resource,
                state: Some(op),
                ..
            } => Some(format!("state {} on {resource}", op.describe())),
            _ => None,
        }
    }

    /// What an infra run or stack job does to its resources.
    pub fn infra_action(&self) -> Option<InfraAction> {
        match self {
            Self::Service { .. } | Self::Rollout { .. } => None,
            Self::Infra {
                undeploy: false, ..
            } => Some(InfraAction::Deploy),
            Self::Infra { undeploy: true, .. } => Some(InfraAction::Undeploy),
            Self::StackJob { operation, .. } => Some(InfraAction::StackJob(*operation)),
        }
    }
}

/// Status of a gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GateStatus {
    Waiting,
    Approved,
    Rejected,
    /// The gate's expiry passed before anyone decided: counts as rejected.
    Expired,
    /// The run was cancelled while the gate waited.
    Cancelled,
    /// A run triggered later deployed to the environment first (or a newer one arrived
    /// under `queue = "latest"`): nothing is left to approve.
    Superseded,
    /// The engine stopped while the run executed, and the run cannot resume.
    Interrupted,
}
words!(GateStatus {
    Waiting => "waiting",
    Approved => "approved",
    Rejected => "rejected",
    Expired => "expired",
    Cancelled => "cancelled",
    Superseded => "superseded",
    Interrupted => "interrupted",
});

/// An operator's answer at a gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Approve,
    Reject,
}

/// One run, as stored and as shown in the runs table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    pub id: i64,
    pub kind: RunKind,
    /// The service, or the infra project.
    pub service: String,
    pub run_type: RunType,
    pub trigger: Trigger,
    pub branch: String,
    pub tag: Option<String>,
    pub commit_sha: String,
    pub commit_message: String,
    pub author: String,
    pub triggered_by: String,
    pub status: RunStatus,
    /// Why the run ended as it did, when there is more to say than the status.
    pub reason: Option<String>,
    pub created_at: Millis,
    pub started_at: Option<Millis>,
    pub ended_at: Option<Millis>,
    /// The run this one repeats (SP-6).
    pub rerun_of: Option<i64>,
    pub attempt: i64,
    /// Infra runs and stack jobs: the environment.
    #[serde(default)]
    pub environment: Option<String>,
    /// Stack jobs: the resource.
    #[serde(default)]
    pub resource: Option<String>,
    /// Infra runs and stack jobs: the operation each resource ends in (an infra run
    /// applies, or destroys when it undeploys).
    #[serde(default)]
    pub operation: Option<Operation>,
    /// State jobs: the state operation and its arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_op: Option<StateOp>,
    /// Stack jobs: the addresses a targeted job was limited to (empty: not targeted).
    #[serde(default)]
    pub targets: Vec<Address>,
    /// Rollouts: the release the stations switch to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<i64>,
}

impl RunInfo {
    /// The run's typed spec, from its columns.
    pub fn spec(&self) -> RunSpec {
        let environment = self.environment.clone().unwrap_or_default();
        match self.kind {
            RunKind::Service => RunSpec::Service {
                service: self.service.clone(),
                branch: self.branch.clone(),
                tag: self.tag.clone(),
                commit: self.commit_sha.clone(),
            },
            RunKind::Infra => RunSpec::Infra {
                project: self.service.clone(),
                environment,
                undeploy: self.operation == Some(Operation::Destroy),
            },
            RunKind::StackJob => RunSpec::StackJob {
                project: self.service.clone(),
                environment,
                resource: self.resource.clone().unwrap_or_default(),
                operation: self.operation.unwrap_or(Operation::Apply),
                state: self.state_op.clone(),
                targets: self.targets.clone(),
            },
            RunKind::Rollout => RunSpec::Rollout {
                service: self.service.clone(),
                release: self.release.unwrap_or_default(),
                branch: self.branch.clone(),
                commit: self.commit_sha.clone(),
            },
        }
    }

    /// Where the run goes: a service run's branch, an infra run's environment.
    pub fn place(&self) -> &str {
        match self.kind {
            RunKind::Service | RunKind::Rollout => &self.branch,
            _ => self.environment.as_deref().unwrap_or(""),
        }
    }

    /// `deploy`, `undeploy`, `stack job: apply db` or `stack job: apply db (targeted:
    /// a.b)` (empty for a service run).
    pub fn what(&self) -> String {
        match self.spec() {
            RunSpec::Service { .. } => String::new(),
            RunSpec::Rollout { release, .. } => format!("rollout of release {release}"),
            RunSpec::Infra { undeploy, .. } => if undeploy { "undeploy" } else { "deploy" }.into(),
            RunSpec::StackJob {
                resource,
                state: Some(op),
                ..
            } => format!("state job: {} on {resource}", op.describe()),
            RunSpec::StackJob {
                resource,
                operation,
                targets,
                ..
            } if !targets.is_empty() => format!(
                "stack job: {} {resource} ({})",
                operation.job_verb(),
                super::target::marker(&targets)
            ),
            RunSpec::StackJob {
                resource,
                operation,
                ..
            } => format!("stack job: {} {resource}", operation.job_verb()),
        }
    }

    /// What the runs lists mark a run with before its message: `targeted: a, b` for a
    /// targeted stack job, `rollout of release 7` for a rollout, else empty.
    pub fn marker(&self) -> String {
        match self.kind {
            RunKind::Rollout => self.what(),
            _ => self.targeted(),
        }
    }

    /// `targeted: a, b` for a targeted stack job, else empty.
    pub fn targeted(&self) -> String {
        super::target::marker(&self.targets)
    }

    /// Duration in milliseconds: up to `now` while the run is still going.
    pub fn duration_ms(&self, now: Millis) -> Option<i64> {
        let start = self.started_at?;
        Some(self.ended_at.unwrap_or(now) - start)
    }
}

/// One build step or environment deploy of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepInfo {
    pub id: i64,
    pub run_id: i64,
    pub stage: Stage,
    /// The step name, or for the deploy stage the environment name.
    pub name: String,
    pub position: i64,
    pub status: StepStatus,
    pub reason: Option<String>,
    pub exit_code: Option<i32>,
    pub started_at: Option<Millis>,
    pub ended_at: Option<Millis>,
    /// An operation's resource step.
    #[serde(default)]
    pub parent_id: Option<i64>,
    /// A resource's outputs (JSON object), once applied.
    #[serde(default)]
    pub outputs: Option<serde_json::Value>,
    /// A deploy skipped because a newer run took the environment: that run's id.
    #[serde(default)]
    pub superseded_by: Option<i64>,
    /// The Slurm job it runs as, or ran as last (issue 20).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slurm_job: Option<u64>,
}

impl StepInfo {
    /// `build/test`, `deploy/prod`, `resource/db` or `operation/db.apply`: how reasons
    /// and the CLI name a step.
    pub fn path(&self) -> String {
        format!("{}/{}", self.stage, self.name)
    }
}

/// A gate before an environment deploy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateInfo {
    pub id: i64,
    pub run_id: i64,
    pub env: String,
    pub status: GateStatus,
    pub opened_at: Millis,
    pub expires_at: Option<Millis>,
    pub decided_by: Option<String>,
    pub decided_at: Option<Millis>,
    pub comment: Option<String>,
}

/// A run with its steps and gates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunDetail {
    pub run: RunInfo,
    pub steps: Vec<StepInfo>,
    pub gates: Vec<GateInfo>,
    /// Infra runs: each resource with the ids it depends on (for the DAG view).
    #[serde(default)]
    pub graph: Vec<GraphNode>,
    /// Service runs: the runs that started this one and those it started (SP-7a).
    #[serde(default)]
    pub chain: super::chain::ChainLinks,
}

/// A resource in an infra run's DAG.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GraphNode {
    pub id: String,
    pub depends_on: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip() {
        for s in RunStatus::ALL {
            assert_eq!(RunStatus::parse(s.as_str()), Some(*s));
            let json = serde_json::to_string(s).unwrap();
            assert_eq!(json, format!("\"{}\"", s.as_str()));
        }
        for s in StepStatus::ALL {
            assert_eq!(StepStatus::parse(s.as_str()), Some(*s));
        }
        assert_eq!(RunStatus::AwaitingApproval.as_str(), "awaiting_approval");
    }

    #[test]
    fn terminal_runs_never_move() {
        for from in RunStatus::ALL.iter().filter(|s| s.is_terminal()) {
            for to in RunStatus::ALL {
                assert!(!from.can_become(*to), "{from} -> {to}");
            }
        }
    }

    #[test]
    fn cancelling_only_settles() {
        for to in RunStatus::ALL {
            assert_eq!(RunStatus::Cancelling.can_become(*to), to.is_terminal());
        }
        assert!(RunStatus::Running.can_become(RunStatus::Cancelling));
        assert!(RunStatus::AwaitingApproval.can_become(RunStatus::Running));
        assert!(!RunStatus::Running.can_become(RunStatus::Queued));
    }

    #[test]
    fn steps_never_leave_an_end_nor_go_back_to_pending() {
        for from in StepStatus::ALL {
            for to in StepStatus::ALL {
                let ok = from.can_become(*to);
                if from.is_terminal()
                    || (*to == StepStatus::Pending && *from != StepStatus::Pending)
                {
                    assert!(!ok, "{from} -> {to}");
                } else {
                    assert!(ok, "{from} -> {to}");
                }
            }
        }
    }

    #[test]
    fn exit_codes() {
        assert_eq!(RunStatus::Succeeded.exit_code(), 0);
        assert_eq!(RunStatus::Failed.exit_code(), 1);
        assert_eq!(RunStatus::Interrupted.exit_code(), 1);
        assert_eq!(RunStatus::Cancelled.exit_code(), 3);
        assert_eq!(RunStatus::Rejected.exit_code(), 3);
    }
}
