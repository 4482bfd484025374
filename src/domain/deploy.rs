//! Deploy order per environment: the queue policy, why a deploy was superseded, the
//! deployment record, and an environment's queue as the dashboard shows it.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::Millis;

/// How the deploys of one service to one environment queue (`queue = …` on an
/// environment in the project file).
///
/// The default is [`QueuePolicy::All`]: SP-6a promises that later deploys wait in order
/// and none is dropped, and trigger order alone already keeps an environment from going
/// back to an older commit. [`QueuePolicy::Latest`] is the opt-in for environments where
/// only the newest matters (as GitHub Actions concurrency groups do).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum QueuePolicy {
    /// Every run deploys, in the order the runs were triggered.
    #[default]
    All,
    /// A run waiting for the environment (or at its gate, or still on its way) is
    /// superseded as soon as a newer run arrives: only the newest waits.
    Latest,
}
words!(QueuePolicy { All => "all", Latest => "latest" });

/// Why a deploy did not happen: a run triggered later (or one carrying a newer commit of
/// the same branch) took, or is about to take, the environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Supersession {
    pub run_id: i64,
    pub commit: String,
}

impl fmt::Display for Supersession {
    /// `superseded by run 7 (a1b2c3d)`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "superseded by run {} ({})",
            self.run_id,
            short_sha(&self.commit)
        )
    }
}

/// The first seven characters of a commit (all of a shorter one).
pub fn short_sha(sha: &str) -> &str {
    sha.get(..7).unwrap_or(sha)
}

/// The (service, environment) pair whose deploys one queue orders.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct QueueKey {
    pub service: String,
    pub env: String,
}

/// How a deployment went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeployStatus {
    Deploying,
    Succeeded,
    Failed,
    /// Stopped by an engine shutdown, or the engine died while it ran.
    Interrupted,
}
words!(DeployStatus {
    Deploying => "deploying",
    Succeeded => "succeeded",
    Failed => "failed",
    Interrupted => "interrupted",
});

/// One deploy of a run's commit to an environment, from the moment it started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deployment {
    pub id: i64,
    pub run_id: i64,
    pub service: String,
    pub env: String,
    pub commit_sha: String,
    pub branch: String,
    pub status: DeployStatus,
    /// Deliberately older than what the environment ran (`--allow-older`).
    pub rollback: bool,
    pub started_at: Millis,
    pub ended_at: Option<Millis>,
}

/// Where one run stands in an environment's queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueState {
    /// What the environment runs now (its last successful deploy).
    Current,
    Deploying,
    /// Ready, waiting for its turn.
    Waiting,
    /// Waiting at the environment's approval gate.
    AtGate,
    /// Its build (or an earlier environment) has not finished: it holds its place.
    OnItsWay,
    /// It will not deploy here: a newer run took its place.
    Superseded,
}
words!(QueueState {
    Current => "current",
    Deploying => "deploying",
    Waiting => "waiting",
    AtGate => "at_gate",
    OnItsWay => "on_its_way",
    Superseded => "superseded",
});

/// One run in an environment's queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueEntry {
    pub run_id: i64,
    pub commit_sha: String,
    pub state: QueueState,
}

/// One environment's queue: what it runs, who deploys, who waits (in trigger order)
/// and who was superseded lately.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnvQueue {
    pub key: QueueKey,
    pub policy: QueuePolicy,
    pub entries: Vec<QueueEntry>,
}

impl EnvQueue {
    /// `current 3 (a1b2c3d) · deploying 5 · waiting 6, 7 · superseded 4`: runs by
    /// state, in the order of [`QueueState::ALL`].
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        for state in QueueState::ALL {
            let runs: Vec<String> = self
                .entries
                .iter()
                .filter(|e| e.state == *state)
                .map(|e| match state {
                    QueueState::Current => {
                        format!("{} ({})", e.run_id, short_sha(&e.commit_sha))
                    }
                    _ => e.run_id.to_string(),
                })
                .collect();
            if runs.is_empty() {
                continue;
            }
            let word = match state {
                QueueState::AtGate => "at gate",
                QueueState::OnItsWay => "on its way",
                s => s.as_str(),
            };
            parts.push(format!("{word} {}", runs.join(", ")));
        }
        if parts.is_empty() {
            return "nothing deployed yet".into();
        }
        parts.join(" · ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_supersession_names_the_run_and_its_short_commit() {
        let s = Supersession {
            run_id: 7,
            commit: "a1b2c3d4e5f6".into(),
        };
        assert_eq!(s.to_string(), "superseded by run 7 (a1b2c3d)");
        assert_eq!(short_sha("abc"), "abc");
    }

    #[test]
    fn a_queue_summary_groups_runs_by_state() {
        let e = |run_id, state| QueueEntry {
            run_id,
            commit_sha: format!("{run_id}abcdef0123"),
            state,
        };
        let q = EnvQueue {
            key: QueueKey {
                service: "web".into(),
                env: "dev".into(),
            },
            policy: QueuePolicy::All,
            entries: vec![
                e(3, QueueState::Current),
                e(5, QueueState::Deploying),
                e(6, QueueState::Waiting),
                e(7, QueueState::Waiting),
                e(4, QueueState::Superseded),
            ],
        };
        assert_eq!(
            q.summary(),
            "current 3 (3abcdef) · deploying 5 · waiting 6, 7 · superseded 4"
        );
    }

    #[test]
    fn policies_are_words() {
        assert_eq!(QueuePolicy::default(), QueuePolicy::All);
        assert_eq!(QueuePolicy::parse("latest"), Some(QueuePolicy::Latest));
        let json = serde_json::to_string(&QueuePolicy::Latest).unwrap();
        assert_eq!(json, "\"latest\"");
    }
}
