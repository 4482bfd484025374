//! Pruning old history and aging old logs, on request (`pipedeck gc`) and every hour.
//!
//! The runner decides which runs go and removes their rows (in its transaction); their
//! files go after the commit. The logs of kept runs that ended long enough ago are then
//! compressed or dropped (`[retention] compress`), off the runtime.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::runner::Msg;
use super::{EngineError, Result, live_project};
use crate::config::Retention;
use crate::store::LogStore;
use crate::store::retention::GcReport;

/// Prunes as `retention` says (or only says what would go), then ages old logs.
pub(super) async fn gc(
    tx: &mpsc::Sender<Msg>,
    logs: &LogStore,
    retention: Retention,
    dry_run: bool,
) -> Result<GcReport> {
    let (reply, rx) = tokio::sync::oneshot::channel();
    let msg = Msg::Gc {
        retention,
        dry_run,
        reply,
    };
    tx.send(msg).await.map_err(|_| EngineError::Stopped)?;
    let mut report = rx.await.map_err(|_| EngineError::Stopped)??;
    let Some(old) = retention.old_logs else {
        return Ok(report);
    };
    let runs = std::mem::take(&mut report.aging);
    let logs = logs.clone();
    let aged = tokio::task::spawn_blocking(move || {
        let mut total = crate::store::logs::AgedLogs::default();
        for id in runs {
            match logs.age_run(id, old.action, dry_run) {
                Ok(a) => total.add(a),
                // One log that cannot be aged does not stop the others.
                Err(e) => tracing::warn!(run = id, "gc: cannot age the run's logs: {e}"),
            }
        }
        total
    })
    .await
    .map_err(|e| EngineError::Internal(format!("aging logs: {e}")))?;
    report.logs = aged;
    Ok(report)
}

/// Prunes old history as the project's `[retention]` says, an hour after start and
/// every hour since (`pipedeck gc` does it at once).
pub(super) fn prune_every_hour(
    tx: mpsc::Sender<Msg>,
    logs: LogStore,
    project: Arc<live_project::LiveProject>,
    stop: CancellationToken,
) {
    const EVERY: std::time::Duration = std::time::Duration::from_secs(3600);
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(EVERY) => {}
                _ = stop.cancelled() => return,
            }
            let retention = project.get().retention;
            if retention == Default::default() {
                continue;
            }
            match gc(&tx, &logs, retention, false).await {
                Ok(r) => {
                    if !r.removed.is_empty() {
                        tracing::info!(runs = r.removed.len(), "pruned old runs");
                    }
                    if r.logs.logs > 0 {
                        tracing::info!(logs = r.logs.logs, "aged old logs");
                    }
                }
                Err(EngineError::Stopped) => return,
                Err(e) => tracing::error!("pruning old runs failed: {e}"),
            }
        }
    });
}
