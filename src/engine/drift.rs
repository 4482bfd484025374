//! `infra drift`: the engine's side of a drift check of an infra pipeline (issue 22,
//! part 5). The check itself is the stack-job executor's (`stack_job::drift`); here it
//! is refused while a run of the pipeline is in flight (both would write the module
//! copy in the state dirs) or while another drift check of it runs.

use std::collections::HashSet;
use std::sync::Mutex;

use super::handle::EngineHandle;
use super::runner::Msg;
use super::runner::drift::DriftMsg;
use super::{EngineError, Result};
use crate::domain::drift::{DriftRecord, DriftReport};
use crate::store::RunFilter;

/// The pipelines (data dir and name) a drift check is running for.
fn checking() -> &'static Mutex<HashSet<String>> {
    static SET: std::sync::OnceLock<Mutex<HashSet<String>>> = std::sync::OnceLock::new();
    SET.get_or_init(Default::default)
}

/// Takes a pipeline's turn to be checked; the turn ends when it is dropped.
struct Turn(String);

impl Turn {
    fn take(project: &str) -> Option<Self> {
        let mut set = checking().lock().unwrap_or_else(|p| p.into_inner());
        set.insert(project.to_string())
            .then(|| Turn(project.to_string()))
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        checking()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.0);
    }
}

impl EngineHandle {
    /// Checks every resource of infra pipeline `name` for drift now; applies nothing.
    /// What it found is stored, audited as `by`'s, and published (notifications
    /// follow the event).
    pub(crate) async fn check_drift(&self, name: &str, by: &str) -> Result<DriftReport> {
        let current = self.project.get();
        let p = current.infra.get(name).ok_or_else(|| {
            let names: Vec<&str> = current.infra.keys().map(String::as_str).collect();
            EngineError::NotFound(format!(
                "no infra project `{name}` in {} (infra projects: {})",
                current.path.display(),
                names.join(", ")
            ))
        })?;
        let filter = RunFilter {
            service: Some(name.to_string()),
            limit: Some(1000),
            ..Default::default()
        };
        let runs = self.runner(|r| Msg::List(filter, r)).await?;
        if let Some(r) = runs
            .iter()
            .find(|r| r.kind.is_infra() && !r.status.is_terminal())
        {
            return Err(EngineError::Conflict(format!(
                "run {} of `{name}` is {}: check for drift after it ends",
                r.id, r.status
            )));
        }
        // Per engine (its data dir): engines in one process check their own pipelines.
        let key = format!("{}\0{name}", self.data_dir().display());
        let turn = Turn::take(&key).ok_or_else(|| {
            EngineError::Conflict(format!("a drift check of `{name}` is already running"))
        })?;
        let (def, data_dir) = (p.clone(), self.data_dir().to_path_buf());
        let report = tokio::task::spawn_blocking(move || {
            super::executor::stack_job::drift::check(&def, &data_dir)
        })
        .await
        .map_err(|e| EngineError::Internal(format!("the drift check stopped: {e}")))?;
        drop(turn);
        let (stored, by) = (Box::new(report.clone()), by.to_string());
        self.runner(|reply| {
            Msg::Drift(DriftMsg::Record {
                report: stored,
                by,
                reply,
            })
        })
        .await?;
        Ok(report)
    }

    /// The latest drift check of every resource, of pipeline `project` or of all.
    pub(crate) async fn drift_results(&self, project: Option<String>) -> Result<Vec<DriftRecord>> {
        self.runner(|r| Msg::Drift(DriftMsg::Latest(project, r)))
            .await
    }
}
