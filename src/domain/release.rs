//! Releases (DP-1: the "deployments", named apart from the deploy records of
//! environments): a successful build's immutable, content-addressed artifact, and the
//! stations that run one release at a time (DP-2).

use serde::{Deserialize, Serialize};

use super::Millis;

/// The environment a release was created in; fixed at creation (a promote makes a
/// new production release of the same artifact).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReleaseEnv {
    /// Built from a station's production branch, or promoted.
    Production,
    /// Built from any other branch.
    Preview,
    /// From a local session (not produced by the engine yet).
    Development,
}
words!(ReleaseEnv {
    Production => "production",
    Preview => "preview",
    Development => "development",
});

/// How a release came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReleaseTrigger {
    /// A push (a trigger that watches the repository).
    Auto,
    /// A person: a manual run, a promote.
    Manual,
}
words!(ReleaseTrigger {
    Auto => "auto",
    Manual => "manual",
});

/// Where a release's build stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReleaseStatus {
    /// Its run is queued.
    Pending,
    /// Its build runs.
    Building,
    /// Built and stored: stations may run it.
    Ready,
    /// The build failed (never retried on its own).
    Failed,
}
words!(ReleaseStatus {
    Pending => "pending",
    Building => "building",
    Ready => "ready",
    Failed => "failed",
});

/// One release.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Release {
    pub id: i64,
    /// The service run that built it.
    pub run_id: i64,
    pub service: String,
    pub commit_sha: String,
    pub branch: String,
    pub tag: Option<String>,
    pub environment: ReleaseEnv,
    pub trigger: ReleaseTrigger,
    pub status: ReleaseStatus,
    /// What built it (`sh`), and on what (`linux-x86_64`).
    pub runtime: String,
    pub platform: String,
    pub started_at: Millis,
    pub ended_at: Option<Millis>,
    /// `sha256:<hex>` of the packed artifact, once ready.
    pub digest: Option<String>,
    pub size: Option<u64>,
    /// The preview release it was promoted from.
    pub promoted_from: Option<i64>,
}

/// A station as the engine keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StationInfo {
    pub name: String,
    pub service: String,
    /// `branch main` or `previews`.
    pub follows: String,
    /// The release `current` points at.
    pub current: Option<i64>,
    /// The release it switches to at its next idle window.
    pub pending: Option<i64>,
    /// Pinned to `current`: it does not follow new releases until unpinned.
    pub pinned: bool,
    /// Station jobs in flight (a pending switch waits for them).
    pub jobs: u32,
    /// Why the last switch failed, if it did.
    pub error: Option<String>,
    /// The gate the pending switch waits at (a gated station group's), if it does.
    #[serde(default)]
    pub awaiting: Option<super::GateInfo>,
    /// The rollout run that makes the pending switch.
    #[serde(default)]
    pub switch_run: Option<i64>,
}

impl StationInfo {
    /// What a pending switch waits for, in words.
    pub fn waiting_for(&self) -> Option<String> {
        self.pending?;
        if let Some(g) = &self.awaiting {
            return Some(format!(
                "approval (pipedeck approve {} {})",
                g.run_id,
                super::ansi::inert(&g.env)
            ));
        }
        let what = match self.jobs {
            0 => "switching".to_string(),
            1 => "1 job in flight".to_string(),
            n => format!("{n} jobs in flight"),
        };
        Some(match self.switch_run {
            Some(run) => format!("{what} (rollout run {run})"),
            None => what,
        })
    }
}

/// The stations that run (or switch to) release `id`, as `a, b (pinned), c (next)`
/// (names sanitised), or `-`.
pub fn running_on(stations: &[StationInfo], id: i64) -> String {
    let names: Vec<String> = stations
        .iter()
        .filter_map(|s| {
            let name = super::ansi::inert(&s.name);
            let pin = if s.pinned { " (pinned)" } else { "" };
            if s.current == Some(id) {
                Some(format!("{name}{pin}"))
            } else if s.pending == Some(id) {
                let pin = if s.pinned { ", pinned" } else { "" };
                Some(format!("{name} (next{pin})"))
            } else {
                None
            }
        })
        .collect();
    if names.is_empty() {
        "-".into()
    } else {
        names.join(", ")
    }
}

/// What the platform a release was built on is called: `linux-x86_64`.
pub fn platform() -> String {
    format!("{}-{}", std::env::consts::OS, std::env::consts::ARCH)
}
