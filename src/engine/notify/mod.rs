//! Outbound integrations (EN-6): commit statuses and notifications. A client of the
//! engine like the dashboard: it follows the committed events and queues calls that
//! two sender tasks (statuses in order; notifications) post with retries. Nothing
//! here is on a scheduler's path: a status API that is down delays no run, and a
//! call given up is recorded in the run's audit log.

mod drift;
mod send;
mod watch;

use std::sync::Arc;

use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

pub(crate) use send::Delivery;

use super::runner::Msg;
use crate::config::Project;
use crate::domain::Event;

/// How many calls may wait per queue; beyond that new ones are dropped (and logged).
const QUEUE: usize = 4096;

/// Whether `project` has anything to send.
pub(crate) fn any(project: &Project) -> bool {
    !project.notify.is_empty()
        || project
            .services
            .values()
            .any(|s| s.status_reporting.is_some())
}

/// The `[[notify]]` entries told of `event` about `name` (a service, or an infra
/// pipeline), each with its URL (an entry whose URL cannot be read is logged and left
/// out).
pub(crate) fn listening<'a>(
    project: &'a Project,
    event: crate::config::outbound::NotifyEvent,
    name: &'a str,
) -> impl Iterator<Item = (&'a crate::config::outbound::Notify, String)> + 'a {
    project
        .notify
        .iter()
        .filter(move |n| {
            n.events.contains(&event)
                && (n.services.is_empty() || n.services.iter().any(|s| s == name))
        })
        .filter_map(|n| match n.url.resolve() {
            Ok(u) => Some((n, u)),
            Err(e) => {
                tracing::warn!("notify {}: {e}", n.name);
                None
            }
        })
}

/// Starts the watcher and its two senders; they stop with `shutdown`.
pub(crate) fn start(
    project: Arc<Project>,
    events: broadcast::Receiver<Event>,
    runner: mpsc::Sender<Msg>,
    shutdown: CancellationToken,
) {
    let (statuses, s_rx) = mpsc::channel(QUEUE);
    let (notes, n_rx) = mpsc::channel(QUEUE);
    tokio::spawn(sender(s_rx, runner.clone(), shutdown.clone()));
    tokio::spawn(sender(n_rx, runner, shutdown.clone()));
    tokio::spawn(watch::watch(project, events, statuses, notes, shutdown));
}

/// Posts the queue's calls one after another.
async fn sender(
    mut rx: mpsc::Receiver<Delivery>,
    runner: mpsc::Sender<Msg>,
    shutdown: CancellationToken,
) {
    let client = match crate::tls::client_builder().build() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("notifications and statuses are off: cannot make an HTTP client: {e}");
            return;
        }
    };
    loop {
        let d = tokio::select! {
            d = rx.recv() => match d { Some(d) => d, None => return },
            _ = shutdown.cancelled() => return,
        };
        let r = tokio::select! {
            r = send::post(&client, &d) => r,
            _ = shutdown.cancelled() => return,
        };
        match r {
            Ok(n) => tracing::debug!("{} for run {}: posted ({n} attempts)", d.what, d.run_id),
            Err(why) => {
                tracing::warn!("{} for run {}: {why}", d.what, d.run_id);
                let msg = Msg::OutboundFailed {
                    run_id: d.run_id,
                    what: d.what.clone(),
                    why: why.to_string(),
                };
                // Only a stopped engine refuses it, and then the log keeps it.
                let _ = runner.send(msg).await;
            }
        }
    }
}
