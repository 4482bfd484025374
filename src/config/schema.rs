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
