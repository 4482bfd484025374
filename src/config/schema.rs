//! The project file as written (serde types). Loading turns these into the
//! resolved [`super::Project`].
//!
//! The doc comments on these fields are the descriptions of the JSON Schema that
//! `pipedeck schema` prints (and editors show): keep them in step with
//! `config.example.toml`. The `schemars(with = ...)` types say what TOML itself
//! cannot (name patterns, durations, ranges); see [`super::json_schema`].

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;
use toml::Spanned;

use super::json_schema::{Concurrency, Driver, Duration, InputValue, NameKey, PullRequests};

pub type Name = Spanned<String>;

/// A pipedeck project file (`pipedeck.toml`): services built and deployed through
/// environments, and infra projects deployed as DAGs. Every key is explained in
/// `config.example.toml`; `pipedeck validate` checks what a schema cannot
/// (references, cycles, duplicates).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "pipedeck project file")]
pub struct ProjectFile {
    /// About the project.
    #[serde(default)]
    pub project: ProjectMeta,
    /// Engine settings: concurrency and the stop grace.
    #[serde(default)]
    pub engine: EngineFile,
    /// Environments, declared once; a service lists the ones it deploys to, in order. The gate keys set here are defaults that a service's deploy table may override.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, EnvironmentFile>")]
    pub environments: BTreeMap<Name, EnvironmentFile>,
    /// Services: a repository, build steps (a DAG) and deploys to environments.
    #[serde(default)]
    #[schemars(with = "BTreeMap<NameKey, ServiceFile>")]
    pub services: BTreeMap<Name, ServiceFile>,
    /// Infra projects: resources for one environment, deployed as a DAG. Edges come from `depends_on` and from `${<id>.outputs.<key>}` references in input values.
    #[serde(default)]
    #[schemars(with = "BTreeMap<NameKey, InfraFile>")]
    pub infra: BTreeMap<Name, InfraFile>,
    /// The organization's flow-control policy for stack jobs (SJ-3), the outermost level: resource -> environment -> organization -> built-in default.
    #[serde(default)]
    pub policy: PolicyFile,
    /// Who may do what on a shared engine: roles (viewer, operator, admin) by Unix user and by Unix group. Without this table the engine's own user is admin and everyone who can reach its socket is an operator.
    pub access: Option<AccessFile>,
}

/// Roles by Unix user and group. A person's role is the highest of their user entry, their groups' entries and `default`; the engine's own user is always admin. Who may decide a gate comes from its `approvers` (names, or `@group`), else any operator.
#[derive(Debug, Default, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AccessFile {
    /// Role by Unix user name: `alice = "operator"`.
    #[serde(default)]
    pub users: BTreeMap<String, crate::domain::access::Role>,
    /// Role by Unix group name (the members' groups as the system reports them): `ops = "operator"`.
    #[serde(default)]
    pub groups: BTreeMap<String, crate::domain::access::Role>,
    /// The role of anyone who reaches the engine and is not listed; unset, they are refused.
    pub default: Option<crate::domain::access::Role>,
}

/// Flow-control knobs for stack jobs; each unset one comes from the next level out (resource -> environment -> organization -> default).
#[derive(Debug, Default, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    /// Skip the refresh operation (default false).
    pub skip_refresh: Option<bool>,
    /// Run a preview before apply/destroy (default true); without one, Terraform applies directly.
    pub require_preview: Option<bool>,
    /// Pause between preview and apply until someone approves the plan (default false).
    pub pause_before_apply: Option<bool>,
}

/// An infra project: resources for one environment, deployed as a DAG.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InfraFile {
    /// The environment deployed to: a name declared under `[environments]`.
    #[schemars(with = "String")]
    pub environment: Name,
    /// Environment gate: approval before any resource starts (default: the environment's `approval`).
    pub approval: Option<bool>,
    /// Who may approve this project's environment and node gates (default: the environment's).
    pub approvers: Option<Vec<String>>,
    /// The default driver of every resource: "command" (the commands), "terraform" or "tofu" (the real binary). Default "command".
    #[schemars(with = "Option<Driver>")]
    pub driver: Option<Spanned<String>>,
    /// The default IaC module folder of every resource (relative to this file).
    #[schemars(with = "Option<String>")]
    pub module: Option<Spanned<String>>,
    /// The Terraform/OpenTofu binary: a name on PATH or a path (default: the driver's name, then the other).
    pub terraform_binary: Option<String>,
    /// The `command` driver's default commands, one per operation.
    #[serde(default)]
    pub commands: CommandsFile,
    /// The resources, each a node of the DAG.
    #[serde(default)]
    pub resources: Vec<ResourceFile>,
}

/// One resource of an infra project: a node of its DAG, changed by stack jobs.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResourceFile {
    /// Unique within the infra project.
    #[schemars(with = "NameKey")]
    pub id: Name,
    /// Free text, shown in the graph.
    pub kind: String,
    /// Overrides the project's driver: "command", "terraform" or "tofu".
    #[schemars(with = "Option<Driver>")]
    pub driver: Option<Spanned<String>>,
    /// Overrides the project's module folder.
    #[schemars(with = "Option<String>")]
    pub module: Option<Spanned<String>>,
    /// Input values; strings may reference another resource's outputs as `${<id>.outputs.<key>}`.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, InputValue>")]
    pub inputs: BTreeMap<String, Spanned<toml::Value>>,
    /// Explicit dependencies (resource ids), on top of those the references imply.
    #[serde(default)]
    #[schemars(with = "Vec<NameKey>")]
    pub depends_on: Vec<Name>,
    /// Node gate: approval after this resource completes, before its dependents start.
    pub approval: Option<bool>,
    /// The most specific flow-control level.
    #[serde(default)]
    pub policy: PolicyFile,
    /// Named connection variables that must be set in the engine's environment (SJ-4); preflight checks them.
    #[serde(default)]
    pub credentials: Vec<String>,
    /// Per-operation overrides of the project's commands.
    #[serde(default)]
    pub commands: CommandsFile,
    /// Between SIGTERM and SIGKILL for this resource's operations on shutdown.
    #[schemars(with = "Option<Duration>")]
    pub kill_grace: Option<Spanned<String>>,
}

/// The `command` driver: one shell command per operation, run with `sh -c` in the resource's state dir. Operations without a command are left out.
#[derive(Debug, Default, Clone, Deserialize, serde::Serialize, PartialEq, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CommandsFile {
    /// Prepares the resource's state dir.
    pub init: Option<String>,
    /// Reads the resource's current state.
    pub refresh: Option<String>,
    /// Shows what apply or destroy would change.
    pub preview: Option<String>,
    /// Creates or updates the resource; writes its outputs as a JSON object to the file $PIPEDECK_OUTPUTS.
    pub apply: Option<String>,
    /// Removes the resource (undeploy).
    pub destroy: Option<String>,
}

/// About the project.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProjectMeta {
    /// Shown in the dashboard; defaults to the project folder's name.
    pub name: Option<String>,
}

/// Engine settings.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EngineFile {
    /// Most steps (build steps and environment deploys) running at once, across all runs. From 1 to 1024. Default: the number of CPUs.
    #[schemars(with = "Option<Concurrency>")]
    pub concurrency: Option<Spanned<i64>>,
    /// Between SIGTERM and SIGKILL when a step's process group is stopped. Default 10s.
    #[schemars(with = "Option<Duration>")]
    pub kill_grace: Option<Spanned<String>>,
}

/// An environment: its gate defaults and stack-job policy.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EnvironmentFile {
    /// Pause the run before deploying here until someone approves (`pipedeck approve RUN ENV`).
    pub approval: Option<bool>,
    /// Who may approve or reject: Unix user names, or `@group` for a Unix group's members; empty or absent means any operator.
    pub approvers: Option<Vec<String>>,
    /// The person who triggered the run may not approve it.
    pub forbid_self_approval: Option<bool>,
    /// Without a decision for this long, the gate counts as rejected.
    #[schemars(with = "Option<Duration>")]
    pub expires_after: Option<Spanned<String>>,
    /// Flow control for stack jobs here (SJ-3); unset knobs come from [policy], then defaults.
    #[serde(default)]
    pub policy: PolicyFile,
    /// How deploys to this environment queue: `"all"` or `"latest"`.
    pub queue: Option<crate::domain::QueuePolicy>,
}

/// A service: its repository, triggers, build steps and deploys.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("anyOf" = [{"required": ["repo"]}, {"required": ["repo_seed"]}]))]
pub struct ServiceFile {
    /// The repository: a local path (relative to this file) or a URL `git` can clone.
    #[schemars(with = "Option<String>")]
    pub repo: Option<Spanned<String>>,
    /// Instead of `repo`: create the repository in the data dir from this folder on first use (what the demo does).
    #[schemars(with = "Option<String>")]
    pub repo_seed: Option<Spanned<String>>,
    /// The branch `pipedeck run SERVICE` builds when no --branch is given. Default: the first of `branches`, else "main".
    pub default_branch: Option<String>,
    /// Branches whose pushes trigger a run.
    #[serde(default)]
    pub branches: Vec<String>,
    /// Tag filters (globs) whose pushes trigger a run.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Pull-request runs: "off", "build" (build only) or "deploy" (build and deploy a preview).
    #[schemars(with = "Option<PullRequests>")]
    pub pull_requests: Option<Spanned<String>>,
    /// Environments to deploy to, in order. A failure skips every later one.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub environments: Vec<Name>,
    /// false: nothing runs for this service, manual triggers included.
    pub pipelines_enabled: Option<bool>,
    /// false: the build stage runs, the deploy stage is skipped.
    pub deployments_enabled: Option<bool>,
    /// Secrets, named here and read at run time, never written here. Each becomes an environment variable of every step; its value is masked as *** in logs.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, SecretFile>")]
    pub secrets: BTreeMap<Name, SecretFile>,
    /// Build steps: a DAG through `needs`; independent steps run in parallel, each as `sh -c RUN` in the run's workspace.
    #[serde(default)]
    pub steps: Vec<StepFile>,
    /// One deploy table per environment in `environments`: the command, plus gate overrides.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, DeployFile>")]
    pub deploy: BTreeMap<Name, DeployFile>,
}

/// Where a secret is read from: exactly one of `env` and `file`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("oneOf" = [{"required": ["env"]}, {"required": ["file"]}]))]
pub struct SecretFile {
    /// From this environment variable of the engine's process.
    pub env: Option<String>,
    /// From this file (trailing newline dropped).
    pub file: Option<String>,
}

/// A build step.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StepFile {
    /// Unique within the service.
    #[schemars(with = "NameKey")]
    pub name: Name,
    /// The command, run as `sh -c RUN` in the run's workspace. Values from commits and branches arrive only as variables: quote them ("$PIPEDECK_BRANCH").
    pub run: String,
    /// Steps of the same service that must succeed first.
    #[serde(default)]
    #[schemars(with = "Vec<NameKey>")]
    pub needs: Vec<Name>,
    /// Overrides engine.kill_grace for this step.
    #[schemars(with = "Option<Duration>")]
    pub kill_grace: Option<Spanned<String>>,
}

/// How a service deploys to one environment, with gate overrides.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeployFile {
    /// The deploy command; it runs with PIPEDECK_ENV set to the environment's name.
    pub run: String,
    /// Pause before this deploy until someone approves (overrides the environment's).
    pub approval: Option<bool>,
    /// Who may approve or reject (overrides the environment's).
    pub approvers: Option<Vec<String>>,
    /// The person who triggered the run may not approve it (overrides the environment's).
    pub forbid_self_approval: Option<bool>,
    /// Without a decision for this long, the gate counts as rejected (overrides the environment's).
    #[schemars(with = "Option<Duration>")]
    pub expires_after: Option<Spanned<String>>,
    /// Between SIGTERM and SIGKILL for this deploy.
    #[schemars(with = "Option<Duration>")]
    pub kill_grace: Option<Spanned<String>>,
}
