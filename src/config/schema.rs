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

use super::json_schema::{
    AfterWhen, BackendType, ChainOn, Concurrency, Driver, Duration, HttpMethod, HttpStatus,
    InputValue, NameKey, NotifyEvent, NotifyFormat, PullRequests, Retries,
};

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
    /// Notifications (EN-6): webhooks told when a gate waits, a run fails or succeeds, or a deploy finishes.
    #[serde(default)]
    pub notify: Vec<NotifyFile>,
    /// The organization's flow-control policy for stack jobs (SJ-3), the outermost level: resource -> environment -> organization -> built-in default.
    #[serde(default)]
    pub policy: PolicyFile,
    /// How much history the engine keeps (`pipedeck gc`; the engine also prunes every hour). A run is kept while it is among the last `keep_runs` of its service or younger than `keep_days`; unset, nothing is pruned.
    #[serde(default)]
    pub retention: RetentionFile,
    /// Who may do what on a shared engine: roles (viewer, operator, admin) by Unix user and by Unix group. Without this table the engine's own user is admin and everyone who can reach its socket is an operator.
    pub access: Option<AccessFile>,
    /// A Slurm cluster that steps and deploys may run on as batch jobs (`executor = "slurm"`).
    pub slurm: Option<super::slurm::SlurmFile>,
    /// Stations (DP-2): directories that run one release of a service each, under `releases/<id>/` with a `current` symlink switched atomically. A station bound to a branch follows that branch's new releases (fan-out); one bound to previews follows releases of other branches.
    #[serde(default)]
    #[schemars(with = "BTreeMap<NameKey, StationFile>")]
    pub stations: BTreeMap<Name, StationFile>,
}

/// A station: where one service's releases are unpacked and switched to.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StationFile {
    /// The service whose releases this station runs; it must declare `artifact`.
    #[schemars(with = "String")]
    pub service: Name,
    /// Follow new releases built from this branch (production). Default: the service's default branch, unless `previews = true`.
    pub branch: Option<String>,
    /// Follow releases built from branches other than the service's default branch (previews) instead of a branch.
    pub previews: Option<bool>,
    /// The station's directory (relative to this file): releases go to `releases/<id>/`, `current` points at the active one.
    #[schemars(with = "String")]
    pub dir: Spanned<String>,
    /// Run (as `sh -c`, in the new release's directory) after `current` points at it.
    pub activate: Option<String>,
    /// Run after `activate`; a failure switches `current` back to the release before.
    pub health: Option<String>,
}

/// How much history to keep.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RetentionFile {
    /// Keep at least the last this many runs of each service (1 to 1,000,000).
    #[schemars(with = "Option<u32>", range(min = 1, max = 1_000_000))]
    pub keep_runs: Option<Spanned<i64>>,
    /// Keep at least the runs of the last this many days (1 to 36,500).
    #[schemars(with = "Option<u32>", range(min = 1, max = 36_500))]
    pub keep_days: Option<Spanned<i64>>,
    /// Most bytes of log one step keeps (`50MiB`); output beyond it is discarded, and the log says so. Unset: no cap.
    #[schemars(with = "Option<String>")]
    pub max_log_bytes: Option<Spanned<String>>,
    /// What becomes of the logs of runs that ended more than `compress_after_days` ago: `zstd` compresses them (they stay readable), `drop` replaces them with a one-line note. Unset: logs stay as written.
    #[schemars(with = "Option<LogAging>")]
    pub compress: Option<Spanned<String>>,
    /// Days after a run ends before `compress` applies to its logs (1 to 36,500; default 7).
    #[schemars(with = "Option<u32>", range(min = 1, max = 36_500))]
    pub compress_after_days: Option<Spanned<i64>>,
    /// Free space the data dir's file system must keep (`1GiB`): under it the engine refuses to start new runs, saying so, instead of failing them half-way. Unset: no floor.
    #[schemars(with = "Option<String>")]
    pub min_free: Option<Spanned<String>>,
}

/// What becomes of old logs (`compress` in `[retention]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LogAging {
    /// Compressed with zstd; `pipedeck logs`, the dashboard and backups read them as before.
    Zstd,
    /// Replaced with a one-line note saying when and why.
    Drop,
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
    /// Where Terraform keeps each resource's state (default: local files in the data dir). One state per resource.
    pub backend: Option<BackendFile>,
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
    #[schemars(with = "Option<super::slurm::ExecutorName>")]
    pub executor: Option<Spanned<super::slurm::ExecutorName>>,
    /// Its Slurm jobs' resources: partition, cpus, memory, time_limit, extra sbatch options.
    pub slurm: Option<super::slurm::SlurmJobFile>,
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
    /// The longest any step, deploy or stack-job operation may run before it is stopped and fails (`timed out after 1h`). Default: no limit.
    #[schemars(with = "Option<Duration>")]
    pub timeout: Option<Spanned<String>>,
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
    /// Approving or rejecting here needs a comment (`pipedeck approve RUN ENV --comment WHY`).
    pub require_comment: Option<bool>,
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
    /// Pull-request runs (from webhooks): "off" (alias "none"), "build" (build only) or "deploy" (alias "preview": build and deploy to `preview-<N>`, see `preview`).
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
    /// Chained pipelines (SP-7a): runs of other services that start this one, e.g. `[{ service = "api", on = "succeeded" }, { service = "web", on = "deployed", environment = "staging" }]`. The chained run gets the upstream runs' ids, commits and outputs as variables.
    #[serde(default)]
    pub after: Vec<AfterFile>,
    /// Commit statuses (EN-6) to a GitHub-compatible API for this service's runs.
    pub status_reporting: Option<StatusReportingFile>,
    /// "all" (default): start once every `after` entry has happened since this service's last chained run; "any": each entry starts a run on its own.
    #[schemars(with = "Option<AfterWhen>")]
    pub after_when: Option<Spanned<String>>,
    /// What a build produces (DP-1): globs relative to the workspace, e.g. `["dist/**"]`. After a successful build the matching files are packed once into the content-addressed artifact store and the run becomes a release that stations can run.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub artifact: Vec<Spanned<String>>,
    /// How often the repository's refs are compared for pushes to `branches` and `tags` (`git ls-remote`; a local repository is also watched for changes, so this is its fallback). Default 1m.
    #[schemars(with = "Option<Duration>")]
    pub poll_interval: Option<Spanned<String>>,
    /// Webhooks (`POST /hooks/github`, `POST /hooks/gitlab` on `pipedeck serve --listen`) that start this service's runs: pushes, tags and pull requests.
    pub webhook: Option<WebhookFile>,
    /// Pull-request previews (pull_requests = "deploy"): each PR deploys to `preview-<N>`; closing or merging it runs `teardown`.
    pub preview: Option<PreviewFile>,
    /// Cron schedules that start a run of a branch.
    #[serde(default)]
    pub schedules: Vec<ScheduleFile>,
}

/// Which webhook deliveries start this service's runs.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookFile {
    /// The repository as the forge names it: `owner/name` (GitHub's `full_name`, GitLab's `path_with_namespace`).
    #[schemars(with = "String")]
    pub repository: Spanned<String>,
    /// The name of one of this service's secrets: the key of GitHub's `X-Hub-Signature-256` (HMAC-SHA256 of the body), or GitLab's `X-Gitlab-Token`.
    #[schemars(with = "String")]
    pub secret: Spanned<String>,
}

/// A pull request's preview environment (`preview-<N>`).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PreviewFile {
    /// The deploy command; it runs with PIPEDECK_ENV = preview-<N> and PIPEDECK_PR = N.
    pub run: String,
    /// Run when the pull request is closed or merged, with the same variables.
    pub teardown: Option<String>,
}

/// A cron schedule.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleFile {
    /// Unique within the service; shown by `pipedeck triggers`.
    #[schemars(with = "NameKey")]
    pub name: Name,
    /// Five fields (minute hour day-of-month month day-of-week), e.g. "0 3 * * *"; six or seven start with seconds.
    #[schemars(with = "String")]
    pub cron: Spanned<String>,
    /// The IANA time zone the expression is read in (default "UTC").
    #[schemars(with = "Option<String>")]
    pub timezone: Option<Spanned<String>>,
    /// The branch whose head runs (default: the service's default branch).
    pub branch: Option<String>,
    /// Fires missed while the engine was down: "skip" (default: none run) or "once" (one run for them all).
    #[schemars(with = "Option<String>")]
    pub catch_up: Option<Spanned<String>>,
}

/// Commit statuses: `POST {api}/repos/{owner}/{repo}/statuses/{sha}` with state pending/success/failure/error, a context per stage and environment, a description and a target URL.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusReportingFile {
    /// The API's base URL (http:// or https://), e.g. https://api.github.com.
    #[schemars(with = "String")]
    pub api: Spanned<String>,
    /// The repository's owner.
    pub owner: String,
    /// The repository's name.
    pub repo: String,
    /// The name of one of this service's secrets holding the API token (sent as `Authorization: Bearer`).
    #[schemars(with = "String")]
    pub token_secret: Spanned<String>,
    /// The contexts' prefix: `<context>/build`, `<context>/deploy/<env>` (default "pipedeck").
    pub context: Option<String>,
    /// The statuses' link; `{run}` becomes the run id.
    pub target_url: Option<String>,
    /// Attempts after the first (default 4, at most 100), on 5xx, 429, timeouts and connection errors; a call that still fails is given up and recorded in the run's audit log.
    #[schemars(with = "Option<Retries>")]
    pub retries: Option<Spanned<i64>>,
    /// Before the first retry (default 1s); doubled each retry, plus up to half again of jitter.
    #[schemars(with = "Option<Duration>")]
    pub backoff: Option<Spanned<String>>,
    /// Per attempt (default 10s).
    #[schemars(with = "Option<Duration>")]
    pub timeout: Option<Spanned<String>>,
}

/// A notification webhook (EN-6).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("oneOf" = [{"required": ["url_env"]}, {"required": ["url_file"]}]))]
pub struct NotifyFile {
    /// Names the entry in logs and the audit log.
    #[schemars(with = "NameKey")]
    pub name: Name,
    /// The environment variable of the engine holding the webhook URL (URLs are secrets).
    pub url_env: Option<String>,
    /// Or the file holding it.
    pub url_file: Option<String>,
    /// "json" (default: event, text, run, environment, approve) or "slack" (an incoming webhook's {"text"}).
    #[schemars(with = "Option<NotifyFormat>")]
    pub format: Option<Spanned<String>>,
    /// Which: gate_waiting (with the approve command), run_failed, run_succeeded, deployed (an environment's deploy and checks passed).
    #[serde(default)]
    #[schemars(with = "Vec<NotifyEvent>")]
    pub events: Vec<Spanned<String>>,
    /// Only these services' runs (default: all).
    #[serde(default)]
    #[schemars(with = "Vec<NameKey>")]
    pub services: Vec<Name>,
    /// Attempts after the first (default 4, at most 100), on 5xx, 429, timeouts and connection errors; a call that still fails is given up and recorded in the run's audit log.
    #[schemars(with = "Option<Retries>")]
    pub retries: Option<Spanned<i64>>,
    /// Before the first retry (default 1s); doubled each retry, plus up to half again of jitter.
    #[schemars(with = "Option<Duration>")]
    pub backoff: Option<Spanned<String>>,
    /// Per attempt (default 10s).
    #[schemars(with = "Option<Duration>")]
    pub timeout: Option<Spanned<String>>,
}

/// An upstream run that starts this service.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AfterFile {
    /// The upstream service.
    #[schemars(with = "NameKey")]
    pub service: Name,
    /// "succeeded" or "failed" (the upstream run ended so), or "deployed" (it deployed to `environment` and passed its checks there).
    #[schemars(with = "ChainOn")]
    pub on: Spanned<String>,
    /// With on = "deployed": the environment.
    #[schemars(with = "Option<String>")]
    pub environment: Option<Spanned<String>>,
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
    /// Overrides engine.timeout for this step.
    #[schemars(with = "Option<Duration>")]
    pub timeout: Option<Spanned<String>>,
    /// Run the step again this many times if it fails (from 0 to 10), waiting 1s, 2s, 4s ... between attempts. Every attempt's output stays in the step's log.
    #[schemars(with = "Option<u32>", range(min = 0, max = 10))]
    pub retries: Option<Spanned<i64>>,
    /// Where it runs: "local" (a process here) or "slurm" (a batch job on the cluster of [slurm]). Default: "slurm" when it has a `slurm` table or `[slurm] default = true`, else "local".
    #[schemars(with = "Option<super::slurm::ExecutorName>")]
    pub executor: Option<Spanned<super::slurm::ExecutorName>>,
    /// Its Slurm job's resources: partition, cpus, memory, time_limit, extra sbatch options.
    pub slurm: Option<super::slurm::SlurmJobFile>,
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
    /// Approving or rejecting needs a comment (overrides the environment's).
    pub require_comment: Option<bool>,
    /// Without a decision for this long, the gate counts as rejected (overrides the environment's).
    #[schemars(with = "Option<Duration>")]
    pub expires_after: Option<Spanned<String>>,
    /// Between SIGTERM and SIGKILL for this deploy.
    #[schemars(with = "Option<Duration>")]
    pub kill_grace: Option<Spanned<String>>,
    /// Overrides engine.timeout for this deploy.
    #[schemars(with = "Option<Duration>")]
    pub timeout: Option<Spanned<String>>,
    /// Not allowed: a deploy is never retried on its own (SJ-5).
    #[schemars(skip)]
    pub retries: Option<Spanned<i64>>,
    /// Checks run after the deploy, in order (SP-3a). A failed check fails this environment and skips the later ones.
    #[serde(default)]
    pub verify: Vec<VerifyFile>,
    /// Where it runs: "local" (a process here) or "slurm" (a batch job on the cluster of [slurm]). Default: "slurm" when it has a `slurm` table or `[slurm] default = true`, else "local".
    #[schemars(with = "Option<super::slurm::ExecutorName>")]
    pub executor: Option<Spanned<super::slurm::ExecutorName>>,
    /// Its Slurm job's resources: partition, cpus, memory, time_limit, extra sbatch options.
    pub slurm: Option<super::slurm::SlurmJobFile>,
}

/// A check after a deploy: exactly one of `run` (a command, like a step) and `url` (an HTTP check).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("oneOf" = [{"required": ["run"]}, {"required": ["url"]}]))]
pub struct VerifyFile {
    /// Unique within the deploy; the check shows as `<environment>.<name>` under its environment.
    #[schemars(with = "NameKey")]
    pub name: Name,
    /// A smoke test: the command, run as `sh -c RUN` in the run's workspace, with logs, like a step.
    pub run: Option<String>,
    /// An HTTP check: the http:// URL requested.
    #[schemars(with = "Option<String>")]
    pub url: Option<Spanned<String>>,
    /// HTTP check: GET (default), HEAD, POST or PUT.
    #[schemars(with = "Option<HttpMethod>")]
    pub method: Option<Spanned<String>>,
    /// HTTP check: the status a healthy answer has (default 200).
    #[schemars(with = "Option<HttpStatus>")]
    pub status: Option<Spanned<i64>>,
    /// HTTP check: a substring a healthy answer's body contains.
    pub body_contains: Option<String>,
    /// HTTP check: how long one attempt may take (default 10s, at most 10m).
    #[schemars(with = "Option<Duration>")]
    pub timeout: Option<Spanned<String>>,
    /// HTTP check: attempts after the first (default 3, at most 100).
    #[schemars(with = "Option<Retries>")]
    pub retries: Option<Spanned<i64>>,
    /// HTTP check: the wait before the first retry (default 1s); it doubles for each retry after, plus up to half again of random jitter.
    #[schemars(with = "Option<Duration>")]
    pub backoff: Option<Spanned<String>>,
    /// Command check: between SIGTERM and SIGKILL (default: the engine's).
    #[schemars(with = "Option<Duration>")]
    pub kill_grace: Option<Spanned<String>>,
}
