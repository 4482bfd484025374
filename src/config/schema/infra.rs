//! The project file's infra pipelines as written: projects, resources, state backends,
//! the `command` driver's commands, stack-job policy and drift schedules.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;
use toml::Spanned;

use super::super::json_schema::{BackendType, Driver, Duration, InputValue, NameKey};
use super::{Name, SecretFile};

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
    /// Where Terraform keeps each resource's state (default: local files in the data dir). One state per resource.
    pub backend: Option<BackendFile>,
    /// The `command` driver's default commands, one per operation.
    #[serde(default)]
    pub commands: CommandsFile,
    /// The resources, each a node of the DAG.
    #[serde(default)]
    pub resources: Vec<ResourceFile>,
    /// Check every resource for drift on a schedule: a plan-only `terraform plan -detailed-exitcode` (refresh on) per Terraform/OpenTofu resource, as `pipedeck infra drift` does now; nothing is ever applied. Drifted resources are marked in the dashboard and notified (`drifted`).
    pub drift: Option<DriftFile>,
}

/// When an infra pipeline is checked for drift: exactly one of `every` and `cron`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("oneOf" = [{"required": ["every"]}, {"required": ["cron"]}]))]
pub struct DriftFile {
    /// Between two checks, e.g. "6h" (at least 1m): the first is this long after the last check (at once on start if one is overdue, as after the engine was down).
    #[schemars(with = "Option<Duration>")]
    pub every: Option<Spanned<String>>,
    /// Or a cron expression: five fields (minute hour day-of-month month day-of-week), e.g. "0 */6 * * *"; a check missed while the engine was down runs once on start.
    #[schemars(with = "Option<String>")]
    pub cron: Option<Spanned<String>>,
    /// The IANA time zone `cron` is read in (default "UTC").
    #[schemars(with = "Option<String>")]
    pub timezone: Option<Spanned<String>>,
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
    /// Overrides the project's state backend.
    pub backend: Option<BackendFile>,
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
    /// Overrides engine.timeout for each of this resource's operations.
    #[schemars(with = "Option<Duration>")]
    pub timeout: Option<Spanned<String>>,
    /// Not allowed: apply and destroy are never retried (SJ-5).
    #[schemars(skip)]
    pub retries: Option<Spanned<i64>>,
    /// Where its operations run: "local" (Terraform or its commands here) or "slurm" (each operation a batch job on the cluster of [slurm]; the data dir must be on a filesystem the nodes share). Default: "slurm" when it has a `slurm` table or `[slurm] default = true`, else "local".
    #[schemars(with = "Option<super::super::slurm::ExecutorName>")]
    pub executor: Option<Spanned<super::super::slurm::ExecutorName>>,
    /// Its Slurm jobs' resources: partition, cpus, memory, time_limit, extra sbatch options.
    pub slurm: Option<super::super::slurm::SlurmJobFile>,
}

/// A Terraform state backend, given to `init` as `-backend-config` (the module's own backend block, if any, is replaced). Each resource gets its own state: the workspace `<project>.<resource>` (pg, s3, gcs, azurerm), `/<project>/<resource>` after the http addresses, `infra/<project>/<resource>/terraform.tfstate` in the data dir (local).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BackendFile {
    /// The backend: "local", "pg", "s3", "gcs", "azurerm" or "http".
    #[serde(rename = "type")]
    #[schemars(with = "BackendType")]
    pub kind: Spanned<String>,
    /// Its settings (strings, numbers, booleans), e.g. `{ schema_name = "pipedeck" }`. Never secrets: name those under `secrets`.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, InputValue>")]
    pub config: BTreeMap<String, Spanned<toml::Value>>,
    /// Settings read at run time, never written here, e.g. `{ conn_str = { env = "PG_CONN" } }`; masked in logs.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, SecretFile>")]
    pub secrets: BTreeMap<Name, SecretFile>,
    /// How long plan and apply wait for the state lock before failing (Terraform's `-lock-timeout`; default: fail at once).
    #[schemars(with = "Option<Duration>")]
    pub lock_timeout: Option<Spanned<String>>,
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
