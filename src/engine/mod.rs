//! The orchestrator: one actor owns the live state ([`runner`]), one task drives
//! each run ([`driver`]), and every client talks to it through [`EngineHandle`].

pub mod executor;
mod handle;
mod plan;
pub mod preflight;
mod runner;
mod scheduler;
pub mod workspace;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::{Semaphore, broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use crate::config::Project;
use crate::domain::Event;
use crate::store::{LogStore, Store};

pub use handle::{Caller, EngineHandle, TriggerRequest};

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

pub type Result<T> = std::result::Result<T, EngineError>;

/// The FIFO lock that keeps deploys to one (service, environment) from overlapping.
pub(crate) type EnvLock = Arc<tokio::sync::Mutex<()>>;

/// State every driver shares (read-only but for the semaphores and locks).
pub(crate) struct Shared {
    pub data_dir: PathBuf,
    pub logs: LogStore,
    pub events: broadcast::Sender<Event>,
    /// The global running-step limit (SP-6a).
    pub slots: Arc<Semaphore>,
    /// One FIFO lock per (service, environment): deploys never overlap.
    pub env_locks: std::sync::Mutex<HashMap<(String, String), EnvLock>>,
    /// Fires when the engine shuts down; every run's token is its child.
    pub shutdown: CancellationToken,
}

impl Shared {
    pub fn env_lock(&self, service: &str, env: &str) -> EnvLock {
        let mut map = self
            .env_locks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        map.entry((service.to_string(), env.to_string()))
            .or_default()
            .clone()
    }
}

/// Opens the store in `data_dir`, recovers what a previous engine left, and starts
/// the engine. Runs that were waiting at a gate or queued carry on.
pub async fn start(
    project: Project,
    data_dir: &Path,
) -> Result<(EngineHandle, tokio::task::JoinHandle<()>)> {
    std::fs::create_dir_all(data_dir)
        .map_err(|e| EngineError::Internal(format!("cannot create {}: {e}", data_dir.display())))?;
    let store = Store::open(&data_dir.join("state.db"))?;
    let (events, _) = broadcast::channel(4096);
    let shared = Arc::new(Shared {
        data_dir: data_dir.to_path_buf(),
        logs: LogStore::new(data_dir.join("logs")),
        events: events.clone(),
        slots: Arc::new(Semaphore::new(project.engine.concurrency)),
        env_locks: Default::default(),
        shutdown: CancellationToken::new(),
    });
    let (tx, rx) = mpsc::channel(1024);
    let project = Arc::new(project);
    let mut runner = runner::Runner::new(store, shared.clone(), tx.clone(), rx);
    runner.recover()?;
    let task = tokio::spawn(runner.run());
    Ok((EngineHandle::new(tx, shared, project), task))
}
