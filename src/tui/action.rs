//! What a key means ([`Action`]) and what an update asks the outside world to do ([`Effect`]).

use crate::domain::command::Catalog;
use crate::domain::{Decision, EnvQueue, GateInfo, Operation, RunDetail, RunInfo};
use crate::store::LogLine;

/// Every action a key can be bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Up,
    Down,
    Left,
    Right,
    Top,
    Bottom,
    PageUp,
    PageDown,
    Enter,
    Back,
    Search,
    NextMatch,
    PrevMatch,
    CommandLine,
    Help,
    Quit,
    Trigger,
    Cancel,
    Rerun,
    Approve,
    Reject,
    Follow,
    /// Long log lines: wrap them, or cut them and scroll sideways.
    Wrap,
    ScrollLeft,
    ScrollRight,
    /// Write a range of the log's lines to a file.
    WriteLog,
    Timestamps,
    StreamMarker,
    Sort,
    Approvals,
    /// Collapse or expand the selected tree node.
    Toggle,
    /// Deployments and stations (DP-3): pin, unpin, promote, roll back, delete, and
    /// mark a station for pin and unpin.
    Pin,
    Unpin,
    Promote,
    Rollback,
    Delete,
    Mark,
    /// The Terraform state of the selected resource (state view), and its changes.
    StateOf,
    Taint,
    Untaint,
}

/// An operation on deployments (releases) and stations, sent as its typed request.
#[derive(Debug, Clone, PartialEq)]
pub enum ReleaseOp {
    Pin { release: i64, stations: Vec<String> },
    Unpin { stations: Vec<String> },
    Promote { release: i64 },
    Rollback { service: String },
    Delete { release: i64 },
}

impl ReleaseOp {
    /// The engine request.
    pub fn request(&self) -> crate::domain::Request {
        use crate::domain::Request;
        match self.clone() {
            Self::Pin { release, stations } => Request::PinRelease { release, stations },
            Self::Unpin { stations } => Request::UnpinStations { stations },
            Self::Promote { release } => Request::PromoteRelease { release },
            Self::Rollback { service } => Request::Rollback { service },
            Self::Delete { release } => Request::DeleteRelease { release },
        }
    }
}

/// Work for the event loop: engine commands and store reads. Results come back as [`Reply`].
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    Trigger {
        service: String,
        branch: Option<String>,
        commit: Option<String>,
    },
    /// Deploy (or undeploy) an infra project.
    TriggerInfra {
        project: String,
        undeploy: bool,
    },
    /// A resource's stack job ending in `operation` (apply is the `update` job).
    TriggerStackJob {
        resource: String,
        operation: Operation,
    },
    /// A state job on a resource (list, or a confirmed taint/untaint/rm).
    StateJob {
        /// The infra project (`None`: the engine finds the one that defines it).
        project: Option<String>,
        resource: String,
        op: crate::domain::state_op::StateOp,
    },
    /// The detail of a state list job that ended: the addresses it found.
    LoadStateList(i64),
    Cancel(i64),
    Rerun(i64),
    /// A rerun that rolls an environment back to an older commit, confirmed as such.
    RerunOlder(i64),
    /// Read every environment's deploy queue again.
    LoadQueues,
    /// Read the newest entries of the audit log.
    LoadAudit,
    /// Every trigger with its status (`:triggers`).
    LoadTriggers,
    /// The deployments (releases) and stations (`:deployments`, `:stations`).
    LoadReleases,
    /// Pin, unpin, promote, roll back or delete (confirmed).
    Release(ReleaseOp),
    /// Read the names the engine's project defines (services, infra, resources).
    LoadCatalog,
    /// Read the engine's status: its project file and the data dir's disk.
    LoadStatus,
    /// Ask the engine who it takes this dashboard's user for.
    LoadIdentity,
    /// The commits gate `env` of run `run` lets through, from the local `repo`.
    LoadCommits {
        run: i64,
        env: String,
        repo: std::path::PathBuf,
        current: Option<String>,
        commit: String,
    },
    Decide {
        run: i64,
        env: String,
        decision: Decision,
        comment: Option<String>,
    },
    LoadDetail(i64),
    /// Read the runs and waiting gates again, and the open run's detail if any.
    Reload {
        detail: Option<i64>,
    },
    LoadLogs {
        run: i64,
        step: i64,
        from: u64,
        limit: usize,
    },
    /// Search a step's whole stored log for `needle` from line `from`.
    SearchLog {
        run: i64,
        step: i64,
        from: u64,
        needle: String,
        backward: bool,
    },
    /// Write `range` of a step's log, inert, to a file called `name` in
    /// [`super::export::export_dir`].
    WriteLog {
        run: i64,
        step: i64,
        range: super::export::LineRange,
        name: String,
    },
    Quit {
        stop_engine: bool,
    },
}

/// What the event loop reports back after an effect.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Detail(Box<RunDetail>),
    /// A run this dashboard started (trigger, rerun): selected in the table.
    Started(Box<RunInfo>, String),
    Logs {
        step: i64,
        from: u64,
        lines: Vec<LogLine>,
    },
    /// Where a search of the stored log found `needle` (`None`: nowhere).
    Found {
        step: i64,
        needle: String,
        line: Option<u64>,
    },
    /// A state job this dashboard started (the state view follows it).
    StateStarted(Box<RunInfo>),
    /// A state list job's detail (its step outputs hold the addresses).
    StateListed(Box<RunDetail>),
    /// A fresh read of the runs and waiting gates (`None`: that read failed, and an
    /// [`Reply::Error`] says why).
    Reloaded {
        runs: Option<Vec<RunInfo>>,
        gates: Option<Vec<GateInfo>>,
    },
    /// Every environment's deploy queue.
    Queues(Vec<EnvQueue>),
    Audit(Vec<crate::store::AuditEntry>),
    Triggers(Vec<crate::domain::trigger::TriggerInfo>),
    Releases {
        releases: Vec<crate::domain::release::Release>,
        stations: Vec<crate::domain::release::StationInfo>,
    },
    /// A read of the deployments and stations failed (an [`Reply::Error`] says why).
    ReleasesFailed,
    /// A deployment or station operation went through (`what`): read them again.
    ReleaseDone(String),
    Catalog(Catalog),
    Drift(Vec<crate::domain::drift::DriftRecord>),
    /// The engine's status (project file, data-dir disk).
    Status(Box<crate::domain::command::ConfigStatus>),
    Identity(crate::domain::command::Identity),
    Commits(super::commits::GateCommits),
    /// A rerun of `run` would roll an environment back (`why`): ask again, as such.
    Older {
        run: i64,
        why: String,
    },
    Info(String),
    Error(String),
}
