//! Pipeline as code (PC-1..PC-4): the project file, strictly loaded and resolved.

pub mod backend;
mod chain;
mod cycle;
pub mod drift;
pub mod infra;
pub mod json_schema;
mod load;
pub mod outbound;
mod retention;
pub use retention::{OldLogs, Retention};
pub mod schema;
pub mod slurm;
pub mod station;
mod station_file;
pub mod triggers;
pub mod user;
mod validate;
pub(crate) use validate::format_ms;
pub mod verify;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::domain::access::{AccessPolicy, Action, Principal, Refusal, Role};
pub use chain::{Chain, ChainCond, ChainOn};

pub use load::{ConfigError, LoadError, load_project, parse_project};
pub use verify::{Check, CheckKind, HttpCheck, HttpMethod};

/// The default project file name.
pub const PROJECT_FILE: &str = "pipedeck.toml";

/// A loaded, validated project.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Project {
    pub name: String,
    /// The project file.
    pub path: PathBuf,
    pub engine: EngineSettings,
    pub services: BTreeMap<String, Service>,
    pub infra: BTreeMap<String, infra::InfraProject>,
    /// Notification webhooks (EN-6).
    pub notify: Vec<outbound::Notify>,
    #[serde(default)]
    pub retention: Retention,
    /// Who may do what (`[access]`; without it, [`AccessPolicy::Open`]).
    #[serde(default)]
    pub access: AccessPolicy,
    /// Stations by name (DP-2).
    #[serde(default)]
    pub stations: BTreeMap<String, station::Station>,
    /// Station groups by name (their gate before a switch, DP-3).
    #[serde(default)]
    pub station_groups: BTreeMap<String, station::StationGroup>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EngineSettings {
    /// Most steps (build steps and deploys) running at once, across all runs.
    pub concurrency: usize,
    /// Default grace between SIGTERM and SIGKILL.
    pub kill_grace_ms: u64,
    /// Default longest a unit may run (none: no limit).
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// The Slurm cluster of `[slurm]`, if any.
    #[serde(default)]
    pub slurm: Option<slurm::SlurmCluster>,
}

impl Default for EngineSettings {
    fn default() -> Self {
        Self {
            concurrency: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            kill_grace_ms: 10_000,
            timeout_ms: None,
            slurm: None,
        }
    }
}

/// Pull-request pipelines (SP-7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PullRequestLevel {
    Off,
    Build,
    Deploy,
}

/// One service's pipeline, as stored with every run (a rerun uses the stored copy).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Service {
    pub name: String,
    /// A local path or a URL that `git` can clone.
    pub repo: String,
    /// When set, the repo is created from this folder on first use.
    pub repo_seed: Option<PathBuf>,
    pub default_branch: String,
    pub branches: Vec<String>,
    pub tags: Vec<String>,
    pub pull_requests: PullRequestLevel,
    pub pipelines_enabled: bool,
    pub deployments_enabled: bool,
    pub secrets: Vec<SecretRef>,
    pub steps: Vec<Step>,
    /// In deploy order.
    pub environments: Vec<EnvDeploy>,
    /// What starts it besides triggers (SP-7a; runs stored before chains have none).
    #[serde(default)]
    pub chain: Chain,
    /// Commit statuses for its runs (EN-6).
    #[serde(default)]
    pub status_reporting: Option<Box<outbound::StatusReporting>>,
    /// Pushes, webhooks, previews and schedules (SP-7; runs stored before them have
    /// the defaults).
    #[serde(default)]
    pub triggers: Box<triggers::Triggers>,
    /// A pull-request run's number (`PIPEDECK_PR`): set in the definition pinned for
    /// that run only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_request: Option<u64>,
    /// What its build produces: globs relative to the workspace (DP-1; none: no releases).
    #[serde(default)]
    pub artifact: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    pub name: String,
    pub run: String,
    pub needs: Vec<String>,
    pub kill_grace_ms: u64,
    /// Stopped and failed after this long (definitions stored before it existed: none).
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// Run again this many times after a failure.
    #[serde(default)]
    pub retries: u32,
    /// Runs as a Slurm job (None: a local process).
    #[serde(default)]
    pub slurm: Option<slurm::SlurmJob>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnvDeploy {
    pub name: String,
    pub run: String,
    pub gate: GatePolicy,
    pub kill_grace_ms: u64,
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// How this service's deploys to the environment queue (runs stored before it
    /// existed read as the default).
    #[serde(default)]
    pub queue: crate::domain::QueuePolicy,
    /// Checks after the deploy, in order (runs stored before they existed have none).
    #[serde(default)]
    pub verify: Vec<Check>,
    /// Runs as a Slurm job (None: a local process).
    #[serde(default)]
    pub slurm: Option<slurm::SlurmJob>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GatePolicy {
    pub approval: bool,
    /// Who may decide; empty means anyone.
    pub approvers: Vec<String>,
    /// The person who triggered the run may not approve it.
    pub forbid_self_approval: bool,
    /// After this long without a decision the gate counts as rejected.
    pub expires_after_ms: Option<u64>,
    /// A decision (approve or reject) must say why (runs stored before this existed
    /// read as not required).
    #[serde(default)]
    pub require_comment: bool,
}

impl GatePolicy {
    /// Why `d` may not decide this gate, if not: an approvers list (names or
    /// `@group`) names who may; without one, any operator may; and where
    /// self-approval is forbidden, the person who triggered the run may not.
    pub fn refuses(&self, d: &Decider<'_>) -> Option<Refusal> {
        let who = || d.who.name.clone();
        if self.approvers.is_empty() {
            if d.role < Role::Operator {
                return Some(Refusal::Role {
                    who: who(),
                    action: d.action,
                    role: d.role,
                });
            }
        } else if !self.approvers.iter().any(|a| d.who.matches(a)) {
            return Some(Refusal::NotApprover {
                who: who(),
                action: d.action,
                env: d.env.to_string(),
                approvers: self.approvers.clone(),
            });
        }
        if self.forbid_self_approval && d.who.name == d.triggered_by {
            return Some(Refusal::SelfApproval {
                who: who(),
                action: d.action,
                env: d.env.to_string(),
                run_id: d.run_id,
            });
        }
        if self.require_comment && !d.commented {
            return Some(Refusal::CommentRequired {
                who: who(),
                action: d.action,
                env: d.env.to_string(),
            });
        }
        None
    }
}

/// Who decides which gate: what [`GatePolicy::refuses`] weighs.
pub struct Decider<'a> {
    pub who: &'a Principal,
    pub role: Role,
    pub action: Action,
    pub env: &'a str,
    pub run_id: i64,
    /// Who triggered the run (a verified principal's name).
    pub triggered_by: &'a str,
    /// The decision carries a comment (not blank).
    pub commented: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SecretRef {
    /// The variable the step sees.
    pub name: String,
    pub source: SecretSource,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretSource {
    /// Read from this environment variable of the engine's process.
    Env(String),
    /// Read from this file (trailing newline removed).
    File(PathBuf),
}

/// Why a secret's value could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The variable is unset (or not Unicode: `source` says which).
    #[error("secret {name} is read from the environment variable {var}, which is not set")]
    Env {
        name: String,
        var: String,
        source: std::env::VarError,
    },
    #[error("secret {name} is read from {}: {source}", path.display())]
    File {
        name: String,
        path: PathBuf,
        source: std::io::Error,
    },
}

impl SecretRef {
    /// Reads the secret's value now.
    pub fn resolve(&self) -> Result<String, SecretError> {
        match &self.source {
            SecretSource::Env(var) => std::env::var(var).map_err(|source| SecretError::Env {
                name: self.name.clone(),
                var: var.clone(),
                source,
            }),
            SecretSource::File(path) => std::fs::read_to_string(path)
                .map(|s| s.trim_end_matches(['\n', '\r']).to_string())
                .map_err(|source| SecretError::File {
                    name: self.name.clone(),
                    path: path.clone(),
                    source,
                }),
        }
    }
}

impl Project {
    pub fn service(&self, name: &str) -> Option<&Service> {
        self.services.get(name)
    }

    /// The gate policy of a station group's switch gate (`stations:GROUP`), if the
    /// group exists.
    pub fn switch_gate(&self, key: &crate::domain::SwitchGateKey) -> Option<&GatePolicy> {
        self.station_groups.get(&key.group).map(|g| &g.gate)
    }

    /// The names this project defines, sorted.
    pub fn catalog(&self) -> crate::domain::command::Catalog {
        let mut resources: Vec<String> = self
            .infra
            .values()
            .flat_map(|p| p.resources.iter().map(|r| r.id.clone()))
            .collect();
        resources.sort();
        resources.dedup();
        use crate::domain::command::GateRule;
        let rule = |owner: &str, env: &str, g: &GatePolicy| GateRule {
            owner: owner.to_string(),
            env: env.to_string(),
            approvers: g.approvers.clone(),
            forbid_self_approval: g.forbid_self_approval,
            require_comment: g.require_comment,
        };
        let mut gates: Vec<GateRule> = self
            .services
            .values()
            .flat_map(|s| {
                s.environments
                    .iter()
                    .filter(|e| e.gate.approval)
                    .map(|e| rule(&s.name, &e.name, &e.gate))
            })
            .collect();
        gates.extend(
            self.infra
                .values()
                .map(|p| rule(&p.name, &p.environment, &p.gate)),
        );
        // A gated station group's switch gate, once for each service it runs.
        for st in self.stations.values() {
            let Some(g) = st.group.as_ref().and_then(|g| self.station_groups.get(g)) else {
                continue;
            };
            let key = crate::domain::SwitchGateKey::new(&g.name).to_string();
            if g.gate.approval && !gates.iter().any(|r| r.owner == st.service && r.env == key) {
                gates.push(rule(&st.service, &key, &g.gate));
            }
        }
        crate::domain::command::Catalog {
            services: self.services.keys().cloned().collect(),
            infra: self.infra.keys().cloned().collect(),
            resources,
            gates,
        }
    }
}

/// Parses `500ms`, `10s`, `5m`, `2h`, `1d` into milliseconds.
pub fn parse_duration(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    let mult = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    n.checked_mul(mult)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreadable_secrets_are_named() {
        let env = SecretRef {
            name: "TOKEN".into(),
            source: SecretSource::Env("PIPEDECK_TEST_NEVER_SET".into()),
        };
        assert_eq!(
            env.resolve().unwrap_err().to_string(),
            "secret TOKEN is read from the environment variable PIPEDECK_TEST_NEVER_SET, which is not set"
        );
        let file = SecretRef {
            name: "KEY".into(),
            source: SecretSource::File("/nonexistent/pipedeck-key".into()),
        };
        let e = file.resolve().unwrap_err().to_string();
        assert!(
            e.starts_with("secret KEY is read from /nonexistent/pipedeck-key: "),
            "{e}"
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Some(500));
        assert_eq!(parse_duration("10s"), Some(10_000));
        assert_eq!(parse_duration("2h"), Some(7_200_000));
        assert_eq!(parse_duration("10"), None);
        assert_eq!(parse_duration("s"), None);
        assert_eq!(parse_duration("3 weeks"), None);
    }

    #[test]
    fn gate_refusals() {
        use crate::domain::access::{Action, Principal, Role};
        let g = GatePolicy {
            approval: true,
            approvers: vec!["alice".into(), "@release".into()],
            forbid_self_approval: true,
            expires_after_ms: None,
            require_comment: false,
        };
        let ask = |who: &Principal, role, triggered_by| {
            g.refuses(&Decider {
                who,
                role,
                action: Action::Approve,
                env: "prod",
                run_id: 7,
                triggered_by,
                commented: false,
            })
            .map(|r| r.to_string())
        };
        let (alice, bob) = (Principal::new("alice"), Principal::new("bob"));
        assert_eq!(
            ask(&bob, Role::Admin, "carol").as_deref(),
            Some("bob may not approve prod: not in approvers [alice, @release]")
        );
        assert_eq!(
            ask(&alice, Role::Operator, "alice").as_deref(),
            Some(
                "alice may not approve prod: alice triggered run 7 and prod forbids self-approval"
            )
        );
        assert_eq!(ask(&alice, Role::Viewer, "carol"), None);
        let mut rel = Principal::new("rel");
        rel.groups.push("release".into());
        assert_eq!(ask(&rel, Role::Viewer, "carol"), None);
        let open = GatePolicy::default();
        let d = Decider {
            who: &bob,
            role: Role::Viewer,
            action: Action::Reject,
            env: "prod",
            run_id: 7,
            triggered_by: "carol",
            commented: false,
        };
        assert_eq!(
            open.refuses(&d).map(|r| r.to_string()).as_deref(),
            Some(
                "bob may not reject: role viewer, needs operator (roles: [access] in the project file)"
            )
        );
        let said = GatePolicy {
            require_comment: true,
            ..GatePolicy::default()
        };
        let d = Decider {
            role: Role::Operator,
            ..d
        };
        assert_eq!(
            said.refuses(&d).map(|r| r.to_string()).as_deref(),
            Some("bob may not reject prod without a comment: prod requires one (--comment)")
        );
        assert_eq!(
            said.refuses(&Decider {
                commented: true,
                ..d
            }),
            None
        );
    }
}
