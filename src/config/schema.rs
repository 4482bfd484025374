//! The project file as written (serde types). Loading turns these into the
//! resolved [`super::Project`].

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

pub type Name = Spanned<String>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectFile {
    #[serde(default)]
    pub project: ProjectMeta,
    #[serde(default)]
    pub engine: EngineFile,
    #[serde(default)]
    pub environments: BTreeMap<Name, EnvironmentFile>,
    #[serde(default)]
    pub services: BTreeMap<Name, ServiceFile>,
    #[serde(default)]
    pub infra: BTreeMap<Name, InfraFile>,
    /// The organization's flow-control policy for stack jobs (SJ-3).
    #[serde(default)]
    pub policy: PolicyFile,
}

/// Flow-control knobs; each unset one comes from the next level out.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    pub skip_refresh: Option<bool>,
    pub require_preview: Option<bool>,
    pub pause_before_apply: Option<bool>,
}

/// An infra project: resources for one environment, deployed as a DAG.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InfraFile {
    pub environment: Name,
    /// Environment gate: approval before any resource starts (default: the environment's `approval`).
    pub approval: Option<bool>,
    pub approvers: Option<Vec<String>>,
    /// Defaults for every resource: its driver, module and command-driver commands.
    pub driver: Option<Spanned<String>>,
    pub module: Option<Spanned<String>>,
    /// The Terraform/OpenTofu binary (a name on PATH or a path); default `terraform`, then `tofu`.
    pub terraform_binary: Option<String>,
    #[serde(default)]
    pub commands: CommandsFile,
    #[serde(default)]
    pub resources: Vec<ResourceFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceFile {
    pub id: Name,
    pub kind: String,
    pub driver: Option<Spanned<String>>,
    pub module: Option<Spanned<String>>,
    #[serde(default)]
    pub inputs: BTreeMap<String, Spanned<toml::Value>>,
    #[serde(default)]
    pub depends_on: Vec<Name>,
    /// Node gate: approval after this resource completes, before its dependents start.
    pub approval: Option<bool>,
    #[serde(default)]
    pub policy: PolicyFile,
    /// Named connection variables that must be set in the engine's environment (SJ-4).
    #[serde(default)]
    pub credentials: Vec<String>,
    #[serde(default)]
    pub commands: CommandsFile,
    pub kill_grace: Option<Spanned<String>>,
}

/// The `command` driver: one shell command per operation.
#[derive(Debug, Default, Clone, Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CommandsFile {
    pub init: Option<String>,
    pub refresh: Option<String>,
    pub preview: Option<String>,
    pub apply: Option<String>,
    pub destroy: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectMeta {
    pub name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineFile {
    pub concurrency: Option<Spanned<i64>>,
    pub kill_grace: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvironmentFile {
    pub approval: Option<bool>,
    pub approvers: Option<Vec<String>>,
    pub forbid_self_approval: Option<bool>,
    pub expires_after: Option<Spanned<String>>,
    #[serde(default)]
    pub policy: PolicyFile,
    /// How deploys to this environment queue: `"all"` or `"latest"`.
    pub queue: Option<crate::domain::QueuePolicy>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceFile {
    pub repo: Option<Spanned<String>>,
    pub repo_seed: Option<Spanned<String>>,
    pub default_branch: Option<String>,
    #[serde(default)]
    pub branches: Vec<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    pub pull_requests: Option<Spanned<String>>,
    #[serde(default)]
    pub environments: Vec<Name>,
    pub pipelines_enabled: Option<bool>,
    pub deployments_enabled: Option<bool>,
    #[serde(default)]
    pub secrets: BTreeMap<Name, SecretFile>,
    #[serde(default)]
    pub steps: Vec<StepFile>,
    #[serde(default)]
    pub deploy: BTreeMap<Name, DeployFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretFile {
    pub env: Option<String>,
    pub file: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepFile {
    pub name: Name,
    pub run: String,
    #[serde(default)]
    pub needs: Vec<Name>,
    pub kill_grace: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeployFile {
    pub run: String,
    pub approval: Option<bool>,
    pub approvers: Option<Vec<String>>,
    pub forbid_self_approval: Option<bool>,
    pub expires_after: Option<Spanned<String>>,
    pub kill_grace: Option<Spanned<String>>,
}
