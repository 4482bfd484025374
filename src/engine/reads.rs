//! What the engine handle reads for its callers: queues, logs, status, metrics and
//! triggers (each a read; nothing here changes state).

use std::sync::Arc;

use super::handle::MAX_LOG_LINES;
use super::runner::Msg;
use super::{Caller, EngineError, EngineHandle, Result};
use crate::domain::{EnvQueue, QueueKey};
use crate::store::LogLine;

impl EngineHandle {
    /// Each environment's deploy queue, of `service` or of every service.
    pub(super) async fn queues(&self, service: Option<&str>) -> Result<Vec<EnvQueue>> {
        let keys = self.queue_keys(service);
        self.runner(|r| Msg::Queues(keys, r)).await
    }

    /// Each environment's line, of `service` or of every service, as the project in
    /// force defines them.
    pub(super) fn queue_keys(
        &self,
        service: Option<&str>,
    ) -> Vec<(QueueKey, crate::domain::QueuePolicy)> {
        self.project
            .get()
            .services
            .values()
            .filter(|s| service.is_none_or(|n| n == s.name))
            .flat_map(|s| {
                s.environments.iter().map(|e| {
                    let key = QueueKey {
                        service: s.name.clone(),
                        env: e.name.clone(),
                    };
                    (key, e.queue)
                })
            })
            .collect()
    }

    /// Up to `limit` log lines of one step from line `from`.
    pub(super) async fn read_log(
        &self,
        run_id: i64,
        step_id: i64,
        from: u64,
        limit: usize,
    ) -> Result<Vec<LogLine>> {
        let logs = self.shared.logs.clone();
        let limit = limit.min(MAX_LOG_LINES);
        tokio::task::spawn_blocking(move || logs.read(run_id, step_id, from, limit))
            .await
            .map_err(|e| EngineError::Internal(e.to_string()))?
            .map_err(|e| EngineError::Internal(format!("reading the log failed: {e}")))
    }

    /// How many lines a step's log holds.
    pub(super) async fn count_log(&self, run_id: i64, step_id: i64) -> Result<u64> {
        let logs = self.shared.logs.clone();
        tokio::task::spawn_blocking(move || logs.line_count(run_id, step_id))
            .await
            .map_err(|e| EngineError::Internal(e.to_string()))?
            .map_err(|e| EngineError::Internal(format!("reading the log failed: {e}")))
    }

    /// The project file's status and the data dir's disk.
    pub(super) async fn engine_status(&self) -> crate::domain::command::ConfigStatus {
        let mut status = self.project.status();
        let space = self.shared.space.clone();
        // statvfs (and a first walk, when asked before the engine's own first look)
        // is file system work: off the runtime.
        status.disk = tokio::task::spawn_blocking(move || {
            space.measure_if_unknown();
            space.status()
        })
        .await
        .ok();
        status
    }

    /// The metrics in the Prometheus text format (a viewer's right).
    pub async fn metrics_text(&self, caller: &Caller) -> Result<String> {
        self.role_of(caller)?;
        let keys = self.queue_keys(None);
        let figures = self.runner(|r| Msg::Figures(keys, r)).await?;
        let bytes = self.shared.logs.bytes_written();
        Ok(self
            .shared
            .metrics
            .render(&figures, bytes, crate::domain::now_ms()))
    }

    /// The engine's metrics, for what increments them from outside the runner
    /// (triggers: [`super::metrics::counters`]).
    pub fn metrics(&self) -> &Arc<super::metrics::Metrics> {
        &self.shared.metrics
    }

    /// Every trigger with its status.
    pub(super) async fn triggers(&self) -> Result<Vec<crate::domain::trigger::TriggerInfo>> {
        let fires = self
            .runner(|r| Msg::Trigger(super::runner::TriggerMsg::LastFires(r)))
            .await?;
        Ok(self
            .board
            .get()
            .map(|b| b.infos(&self.project.get(), &fires))
            .unwrap_or_default())
    }
}
