//! A trigger as `pipedeck triggers` and the dashboard show it (SP-7).

use serde::{Deserialize, Serialize};

use super::Millis;

/// One trigger of a service: what it watches, when it last fired (and the run),
/// when it fires next, its last error, and why it is stopped if it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TriggerInfo {
    pub service: String,
    /// `push`, `tag`, `pull_request` or `schedule:NAME`.
    pub trigger: String,
    /// What it watches: a repository and globs, a webhook's repository, a cron line.
    pub watches: String,
    /// Set when it does not fire, saying why (pipelines disabled).
    pub stopped: Option<String>,
    pub last_fired: Option<LastFired>,
    /// Schedules: the next due time.
    pub next_fire: Option<Millis>,
    /// The last check's error (cleared by a good check).
    pub last_error: Option<String>,
    /// When it last looked (watchers and schedules).
    pub checked_at: Option<Millis>,
}

/// A trigger's newest run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastFired {
    pub run_id: i64,
    pub at: Millis,
}
