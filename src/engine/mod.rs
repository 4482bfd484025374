//! The orchestrator.
//!
//! - Every client (the dashboard, the CLI, the HTTP API) sends a
//!   [`Request`](crate::domain::command::Request) to [`EngineHandle::handle`], which
//!   attaches the [`Caller`]; the request itself never says who acts.
//! - One actor, the runner, owns the engine's state. It commits every change, and
//!   publishes the change as an [`Event`] only once it is stored.
//! - Each run has one task: the scheduler. It walks a graph of units that a planner
//!   made from the run's [`RunSpec`](crate::domain::RunSpec) and its pinned definition.
//!   What a unit runs is its executor's business.
//!
//! ```text
//!  Request ─► handle ─► runner ─► plan::{service,infra,rollout} ─► scheduler ─► executor::{command,stack_job,switch}
//!                        ▲  commit, then publish                 │ rows, gates, run status
//!                        └───────────────────────────────────────┘
//! ```
//!
//! # Adding a kind of run
//! Rollouts (DP-2) were added this way: a run that switches stations to a release,
//! each in its idle window.
//!
//! 1. **Domain.** An arm of [`RunSpec`](crate::domain::RunSpec),
//!    `Rollout { service, release, branch, commit }`, and a
//!    [`RunKind`](crate::domain::RunKind) word for it (`rollout`). The store maps the
//!    spec to its columns (`store::Store::insert_run`; migration 15 added
//!    `runs.release_id`), and `RunInfo::spec` reads it back.
//! 2. **Planner.** `plan/rollout.rs`: `rows` (the steps a new run shows: one per
//!    station, stage `switch`) and `graph` (a `scheduler::Plan`: one unit per row;
//!    what each unit needs, its failure policy (fail the run or skip downstream), its
//!    cancel policy (terminate now or let it finish), gates before or after it (a
//!    station group's `stations:GROUP`), a line (`scheduler::QueueSpec`: never
//!    overlapping, trigger order, never older over newer; a station's own). Wired
//!    into `plan::plan` and `plan::start`.
//! 3. **Executor.** `executor/switch.rs` implements `scheduler::Executor` (`prepare`
//!    once per run, `run` per unit, and the optional hooks: `queues_elsewhere` says
//!    that a switch reports its wait for the station's idle window itself). Units
//!    that run commands reuse `executor::process`.
//! 4. **Clients.** The runner makes rollouts itself (`runner/rollouts.rs`), from a
//!    release that became ready, a pin, an unpin, a rollback or a promotion; the
//!    runs list, `pipedeck runs` and the run view show them like any run, and the
//!    stations view names the rollout a pending switch belongs to. A kind a person
//!    starts directly adds a `Request` arm and its handler line in
//!    [`EngineHandle::handle`], a CLI verb under `cli/`, and a key or view under `tui/`.
//!
//! Nothing in `scheduler/` changes: readiness, the concurrency limit, gates, queues,
//! skip reasons, cancel, timestamps and the run's end are the same for every kind. A
//! kind that seems to need a change there is asking for a new policy, not a special
//! case.

pub mod account;
mod authorize;
mod caller;
mod chain;
pub mod datadir;
mod drift;
pub mod executor;
mod gc;
mod handle;
pub mod live_project;
pub mod metrics;
mod notify;
mod plan;
mod prefetch;
pub mod preflight;
mod queue;
mod reads;
mod releases;
mod runner;
mod scheduler;
pub mod space;
mod state_jobs;
pub mod stations;
pub mod triggers;
pub mod workspace;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::{Semaphore, broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use crate::config::Project;
use crate::domain::Event;
use crate::store::{LogStore, Store};

pub use caller::Caller;
pub use handle::{EngineHandle, TriggerRequest};

/// What went wrong with a command. The CLI maps kinds to exit codes and the
/// HTTP API to status codes.
#[derive(Debug, Clone, PartialEq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "kind", content = "message", rename_all = "snake_case")]
pub enum EngineError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Forbidden(String),
    /// The run would deploy a commit older than an environment runs, and was not
    /// allowed to (`--allow-older`).
    #[error("{0}")]
    OlderCommit(String),
    #[error("{0}")]
    Internal(String),
    #[error("the engine has stopped")]
    Stopped,
    /// The engine could not be reached over the local API.
    #[error("{0}")]
    Unreachable(String),
}

impl From<crate::store::StoreError> for EngineError {
    fn from(e: crate::store::StoreError) -> Self {
        EngineError::Internal(e.to_string())
    }
}

impl From<crate::domain::access::Refusal> for EngineError {
    fn from(r: crate::domain::access::Refusal) -> Self {
        EngineError::Forbidden(r.to_string())
    }
}

pub type Result<T> = std::result::Result<T, EngineError>;

/// State every driver shares (read-only but for the semaphores and locks).
pub(crate) struct Shared {
    pub data_dir: PathBuf,
    pub logs: LogStore,
    pub events: broadcast::Sender<Event>,
    /// The global running-step limit (SP-6a).
    pub slots: Arc<Semaphore>,
    /// One line per (service, environment): deploys never overlap, and go in trigger
    /// order, never older over newer.
    pub queues: Arc<queue::EnvQueues>,
    /// Fires when the engine shuts down; every run's token is its child.
    pub shutdown: CancellationToken,
    /// Names this engine's store (from its data dir) in its steps' process tokens.
    pub store_id: Arc<str>,
    /// Counters and histograms for `/metrics`.
    pub metrics: Arc<metrics::Metrics>,
    /// The data dir's disk and the free-space floor.
    pub space: Arc<space::Space>,
    /// Slurm jobs a previous engine submitted that still run, by step id: their
    /// units re-attach to them when their runs resume.
    pub slurm_attach: Arc<std::sync::Mutex<std::collections::HashMap<i64, executor::slurm::JobId>>>,
    /// Workspaces checked out while their runs are being stored.
    pub ahead: Arc<prefetch::Ahead>,
    /// Station jobs in flight and switches under way (DP-2).
    pub stations: stations::Stations,
}

impl Shared {
    pub fn new(data_dir: &Path, concurrency: usize) -> Self {
        Self {
            data_dir: data_dir.to_path_buf(),
            logs: LogStore::new(data_dir.join("logs")),
            events: broadcast::channel(4096).0,
            slots: Arc::new(Semaphore::new(concurrency)),
            queues: Default::default(),
            shutdown: CancellationToken::new(),
            store_id: executor::leftovers::store_id(data_dir).into(),
            metrics: Default::default(),
            space: Arc::new(space::Space::new(data_dir)),
            slurm_attach: Default::default(),
            ahead: Default::default(),
            stations: Default::default(),
        }
    }
}

/// Opens the store in `data_dir`, recovers what a previous engine left, and starts
/// the engine. Runs that were waiting at a gate or queued carry on.
pub async fn start(
    project: Project,
    data_dir: &Path,
) -> Result<(EngineHandle, tokio::task::JoinHandle<()>)> {
    start_with_clock(project, data_dir, Arc::new(triggers::SystemClock)).await
}

/// [`start`], with the clock schedules read (tests move a [`triggers::ManualClock`]).
pub async fn start_with_clock(
    project: Project,
    data_dir: &Path,
    clock: Arc<dyn triggers::Clock>,
) -> Result<(EngineHandle, tokio::task::JoinHandle<()>)> {
    datadir::prepare(data_dir).map_err(|e| EngineError::Invalid(e.to_string()))?;
    let shared = Arc::new(Shared::new(data_dir, project.engine.concurrency));
    // What a previous engine's steps left running is looked for (a walk of /proc)
    // while the store opens: 4 ms off every start, measured on a CLI `run --wait`.
    let id = shared.store_id.clone();
    let scanned = tokio::task::spawn_blocking(move || executor::leftovers::scan(&id));
    let db = data_dir.join("state.db");
    let store = Store::open(&db)?;
    datadir::owner_only(&db).map_err(|e| EngineError::Internal(e.to_string()))?;
    prefetch::Ahead::clean(data_dir);
    // Before runs are marked interrupted: what the previous engine's steps left
    // running is stopped (and from now on, what this one's steps leave).
    executor::children::start(&shared.store_id);
    let leaders = store.leftover_processes()?;
    let stop = |e: tokio::task::JoinError| {
        EngineError::Internal(format!("stopping leftover processes: {e}"))
    };
    let found = scanned.await.map_err(stop)?;
    let stopped = tokio::task::spawn_blocking(move || executor::leftovers::stop(found, &leaders))
        .await
        .map_err(stop)?;
    if stopped != Default::default() {
        tracing::warn!(
            asked = stopped.asked,
            killed = stopped.killed,
            "stopped what the previous engine's steps left running"
        );
    }
    let (tx, rx) = mpsc::channel(1024);
    let project = Arc::new(live_project::LiveProject::new(project));
    {
        // Engine-wide settings follow the project in force.
        let (space, logs) = (shared.space.clone(), shared.logs.clone());
        project.on_load(move |p| {
            space.set_min_free(p.retention.min_free);
            logs.set_max_bytes(p.retention.max_log_bytes);
        });
    }
    space::watch(shared.space.clone(), shared.shutdown.clone());
    live_project::watch(project.clone(), shared.shutdown.clone());
    gc::prune_every_hour(
        tx.clone(),
        shared.logs.clone(),
        project.clone(),
        shared.shutdown.clone(),
    );
    // Chains and notifications follow the project as it was at start (a reload
    // applies to them at the next start).
    let at_start = project.get();
    // Subscribed before anything is published, so that no run's end is missed.
    let chained = chain::any(&at_start).then(|| shared.events.subscribe());
    let chain_saved = store.chain_pending()?;
    let outbound = notify::any(&at_start).then(|| shared.events.subscribe());
    if let Some(events) = outbound {
        let shutdown = shared.shutdown.clone();
        notify::start(at_start.clone(), events, tx.clone(), shutdown);
    }
    let mut runner =
        runner::Runner::new(store, shared.clone(), tx.clone(), rx).with_project(project.clone());
    runner.recover()?;
    let task = tokio::spawn(runner.run());
    let handle = EngineHandle::new(tx, shared.clone(), project.clone());
    if let Some(events) = chained {
        let shutdown = shared.shutdown.clone();
        tokio::spawn(chain::watch(
            handle.clone(),
            at_start.clone(),
            chain_saved,
            events,
            shutdown,
        ));
    }
    // Triggers watch the services the engine started with; each reads the project in
    // force when it fires (a service disabled since does not fire).
    let board = triggers::start(&handle, &at_start, clock, shared.shutdown.clone());
    let _ = handle.board.set(board);
    Ok((handle, task))
}
