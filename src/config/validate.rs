//! References, names and cycles: everything TOML itself cannot check.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use petgraph::graph::DiGraph;
use toml::Spanned;

use super::cycle::find_cycle;
use super::load::{ConfigError, Locator};
use super::schema::{EnvironmentFile, ProjectFile, ServiceFile};
use super::{
    EngineSettings, EnvDeploy, GatePolicy, Project, PullRequestLevel, SecretRef, SecretSource,
    Service, Step, parse_duration,
};

pub(super) struct Ctx<'a> {
    pub loc: &'a Locator<'a>,
    pub dir: PathBuf,
    pub errors: Vec<ConfigError>,
}

/// The range a duration key accepts, in milliseconds (inclusive).
pub(super) struct DurationRange {
    pub key: &'static str,
    pub min_ms: u64,
    pub max_ms: u64,
}

const HOUR_MS: u64 = 3_600_000;
const DAY_MS: u64 = 24 * HOUR_MS;

/// Between SIGTERM and SIGKILL: at least 1ms, at most a day (Terraform, sent SIGINT,
/// may need long to finish the operation in flight; beyond a day a stop never ends).
pub(super) const KILL_GRACE: DurationRange = DurationRange {
    key: "kill_grace",
    min_ms: 1,
    max_ms: DAY_MS,
};

/// A gate waits at least 1ms and at most a year for its decision.
pub(super) const EXPIRES_AFTER: DurationRange = DurationRange {
    key: "expires_after",
    min_ms: 1,
    max_ms: 365 * DAY_MS,
};

/// A unit runs at least 1s and at most 30 days before its time limit stops it.
pub(super) const TIMEOUT: DurationRange = DurationRange {
    key: "timeout",
    min_ms: 1_000,
    max_ms: 30 * DAY_MS,
};

/// The most times a build step is run again after a failure.
pub(super) const MAX_RETRIES: u32 = 10;

/// A whole number and a known unit whose product overflows: a duration, too long.
fn looks_like_duration(s: &str) -> bool {
    let s = s.trim();
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    digits > 0 && ["ms", "s", "m", "h", "d"].contains(&&s[digits..])
}

/// `ms` in the largest unit that writes it whole (`86400000` is `1d`).
pub(crate) fn format_ms(ms: u64) -> String {
    let units = [("d", DAY_MS), ("h", HOUR_MS), ("m", 60_000), ("s", 1_000)];
    units
        .iter()
        .find(|(_, u)| ms >= *u && ms.is_multiple_of(*u))
        .map(|(name, u)| format!("{}{name}", ms / u))
        .unwrap_or_else(|| format!("{ms}ms"))
}

impl Ctx<'_> {
    pub fn err(&mut self, span: std::ops::Range<usize>, msg: String, hint: &str) {
        self.errors.push(self.loc.error(span, msg, hint));
    }

    /// The duration `value` in milliseconds, `default` when unset; an error (and
    /// `default`) when it is not a duration or outside `range`.
    pub fn duration(
        &mut self,
        value: &Option<Spanned<String>>,
        default: u64,
        range: &DurationRange,
    ) -> u64 {
        let Some(v) = value else { return default };
        let (min, max) = (format_ms(range.min_ms), format_ms(range.max_ms));
        let hint = format!(
            "write a whole number with a unit (500ms, 10s, 5m, 2h or 1d) from {min} to {max}"
        );
        let text = v.get_ref();
        match parse_duration(text) {
            Some(ms) if (range.min_ms..=range.max_ms).contains(&ms) => ms,
            parsed => {
                let msg = if parsed.is_some() || looks_like_duration(text) {
                    format!(
                        "{} = \"{text}\" is out of range: it must be from {min} to {max}",
                        range.key
                    )
                } else {
                    format!("`{text}` is not a duration")
                };
                self.err(v.span(), msg, &hint);
                default
            }
        }
    }

    /// A unit's time limit: its own, else `default`.
    pub fn timeout(
        &mut self,
        value: &Option<Spanned<String>>,
        default: Option<u64>,
    ) -> Option<u64> {
        match value {
            Some(_) => Some(self.duration(value, TIMEOUT.max_ms, &TIMEOUT)),
            None => default,
        }
    }

    /// A build step's retries, from 0 to [`MAX_RETRIES`].
    pub fn retries(&mut self, value: &Option<Spanned<i64>>) -> u32 {
        let Some(v) = value else { return 0 };
        match u32::try_from(*v.get_ref()) {
            Ok(n) if n <= MAX_RETRIES => n,
            _ => {
                self.err(
                    v.span(),
                    format!(
                        "retries = {} is out of range: it must be from 0 to {MAX_RETRIES}",
                        v.get_ref()
                    ),
                    "write how many times to run the step again after a failure",
                );
                0
            }
        }
    }

    /// A whole number `key` from 1 to `max`, if set.
    pub fn count(&mut self, value: &Option<Spanned<i64>>, key: &str, max: u32) -> Option<u32> {
        let v = value.as_ref()?;
        match u32::try_from(*v.get_ref()) {
            Ok(n) if (1..=max).contains(&n) => Some(n),
            _ => {
                self.err(
                    v.span(),
                    format!(
                        "{key} = {} is out of range: it must be from 1 to {max}",
                        v.get_ref()
                    ),
                    &format!("write a whole number from 1 to {max}, or leave {key} out"),
                );
                None
            }
        }
    }

    /// `retries` where nothing may be retried: an error saying why.
    pub fn never_retried(&mut self, value: &Option<Spanned<i64>>, why: &str) {
        if let Some(v) = value {
            self.err(
                v.span(),
                format!("`retries` is not allowed here: {why}"),
                "remove `retries` (a build step may have it)",
            );
        }
    }

    pub fn path(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.dir.join(p)
        }
    }
}

pub(super) fn resolve(loc: &Locator<'_>, file: ProjectFile) -> Result<Project, Vec<ConfigError>> {
    let dir = loc.file.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut cx = Ctx {
        loc,
        dir,
        errors: Vec::new(),
    };
    let mut engine = EngineSettings::default();
    if let Some(c) = &file.engine.concurrency {
        match usize::try_from(*c.get_ref()) {
            Ok(n) if CONCURRENCY.contains(&n) => engine.concurrency = n,
            _ => cx.err(
                c.span(),
                format!(
                    "concurrency must be from {} to {}, not {}",
                    CONCURRENCY.start(),
                    CONCURRENCY.end(),
                    c.get_ref()
                ),
                "set engine.concurrency to the most steps that may run at once",
            ),
        }
    }
    engine.kill_grace_ms = cx.duration(&file.engine.kill_grace, engine.kill_grace_ms, &KILL_GRACE);
    engine.timeout_ms = cx.timeout(&file.engine.timeout, None);
    engine.slurm = super::slurm::resolve_cluster(&mut cx, &file.slurm);

    for env in file.environments.values() {
        cx.duration(&env.expires_after, 0, &EXPIRES_AFTER);
    }
    let envs: HashMap<&str, &EnvironmentFile> = file
        .environments
        .iter()
        .map(|(k, v)| (k.get_ref().as_str(), v))
        .collect();
    let mut services = BTreeMap::new();
    for (name, svc) in &file.services {
        if let Some(s) = resolve_service(&mut cx, name, svc, &envs, &engine) {
            services.insert(name.get_ref().clone(), s);
        }
    }
    let retention = super::retention::resolve(&mut cx, &file.retention);
    super::chain::resolve_chains(&mut cx, &file.services, &mut services);
    // A notification may name services and infra pipelines (drift checks).
    let names: Vec<&str> = (file.services.keys().chain(file.infra.keys()))
        .map(|k| k.get_ref().as_str())
        .collect();
    let notify = super::outbound::notify(&mut cx, &file.notify, &names);
    let station_groups = super::station::resolve_groups(&mut cx, &file.station_groups);
    let stations =
        super::station::resolve_stations(&mut cx, &file.stations, &station_groups, &services);
    let mut infra = BTreeMap::new();
    for (name, f) in &file.infra {
        if let Some(p) = super::infra::resolve_infra(&mut cx, name, f, &envs, &file.policy, &engine)
        {
            infra.insert(name.get_ref().clone(), p);
        }
    }
    if cx.errors.is_empty() {
        Ok(Project {
            infra,
            notify,
            name: file.project.name.unwrap_or_else(|| {
                cx.dir
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "pipedeck".into())
            }),
            path: loc.file.to_path_buf(),
            engine,
            services,
            stations,
            station_groups,
            retention,
            access: match file.access {
                None => crate::domain::access::AccessPolicy::Open,
                Some(a) => crate::domain::access::AccessPolicy::Declared {
                    users: a.users,
                    groups: a.groups,
                    default: a.default,
                },
            },
        })
    } else {
        cx.errors.sort_by_key(|e| (e.line, e.column));
        Err(cx.errors)
    }
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
}

pub(super) fn check_name(cx: &mut Ctx<'_>, name: &Spanned<String>, what: &str) {
    if !valid_name(name.get_ref()) {
        cx.err(
            name.span(),
            format!("{what} name `{}` is not allowed", name.get_ref()),
            "use letters, digits, `-`, `_` and `.` only",
        );
    }
}

fn resolve_service(
    cx: &mut Ctx<'_>,
    name: &Spanned<String>,
    svc: &ServiceFile,
    envs: &HashMap<&str, &EnvironmentFile>,
    engine: &EngineSettings,
) -> Option<Service> {
    let first_error = cx.errors.len();
    let sname = name.get_ref();
    check_name(cx, name, "service");
    let repo = match (&svc.repo, &svc.repo_seed) {
        (Some(r), _) => {
            let r = r.get_ref();
            if r.contains("://") || r.contains('@') {
                r.clone()
            } else {
                cx.path(r).to_string_lossy().into_owned()
            }
        }
        (None, Some(_)) => String::new(), // the engine places seeded repos in the data dir
        (None, None) => {
            cx.err(
                name.span(),
                format!("service `{sname}` has no repository"),
                "add `repo = \"<path or git URL>\"` (or `repo_seed = \"<folder>\"`) to the service",
            );
            String::new()
        }
    };
    let pull_requests = match svc
        .pull_requests
        .as_ref()
        .map(|p| (p.get_ref().as_str(), p))
    {
        None | Some(("off" | "none", _)) => PullRequestLevel::Off,
        Some(("build", _)) => PullRequestLevel::Build,
        Some(("deploy" | "preview", _)) => PullRequestLevel::Deploy,
        Some((other, p)) => {
            cx.err(
                p.span(),
                format!("pull_requests = \"{other}\" is not a level"),
                "use \"off\", \"build\" (build only) or \"deploy\" (build and deploy a preview)",
            );
            PullRequestLevel::Off
        }
    };

    let secrets: Vec<SecretRef> = svc
        .secrets
        .iter()
        .filter_map(|(k, v)| {
            let source = match (&v.env, &v.file) {
                (Some(e), None) => SecretSource::Env(e.clone()),
                (None, Some(f)) => SecretSource::File(cx.path(f)),
                _ => {
                    cx.err(
                        k.span(),
                        format!("secret `{}` needs exactly one source", k.get_ref()),
                        "write `{ env = \"VAR\" }` or `{ file = \"/path\" }`; never the value itself",
                    );
                    return None;
                }
            };
            Some(SecretRef {
                name: k.get_ref().clone(),
                source,
            })
        })
        .collect();

    let steps = resolve_steps(cx, sname, svc, engine);

    // Environments: each must be declared, listed once, and have a deploy command.
    let mut environments = Vec::new();
    let mut seen: HashMap<&str, ()> = HashMap::new();
    for env in &svc.environments {
        let ename = env.get_ref().as_str();
        if seen.insert(ename, ()).is_some() {
            cx.err(
                env.span(),
                format!("environment `{ename}` is listed twice for service `{sname}`"),
                "list each environment once, in deploy order",
            );
            continue;
        }
        let Some(decl) = envs.get(ename) else {
            cx.err(
                env.span(),
                format!("environment `{ename}` is not declared"),
                &format!("add an `[environments.{ename}]` table, or fix the name"),
            );
            continue;
        };
        let Some((dep_key, dep)) = svc.deploy.iter().find(|(k, _)| k.get_ref() == ename) else {
            cx.err(
                env.span(),
                format!("service `{sname}` deploys to `{ename}` but has no deploy command for it"),
                &format!("add `[services.{sname}.deploy.{ename}]` with `run = \"...\"`"),
            );
            continue;
        };
        let expires_after_ms = match (&dep.expires_after, &decl.expires_after) {
            (Some(_), _) => Some(cx.duration(&dep.expires_after, 0, &EXPIRES_AFTER)),
            // Checked once, with its environment.
            (None, Some(e)) => parse_duration(e.get_ref()),
            (None, None) => None,
        };
        let kill_grace_ms = cx.duration(&dep.kill_grace, engine.kill_grace_ms, &KILL_GRACE);
        let at = format!("services.{sname}.deploy.{ename}");
        let verify = super::verify::resolve_checks(cx, &at, &dep.verify, engine.kill_grace_ms);
        environments.push(EnvDeploy {
            name: ename.to_string(),
            run: dep.run.clone(),
            gate: GatePolicy {
                approval: dep.approval.or(decl.approval).unwrap_or(false),
                approvers: dep
                    .approvers
                    .clone()
                    .or_else(|| decl.approvers.clone())
                    .unwrap_or_default(),
                forbid_self_approval: dep
                    .forbid_self_approval
                    .or(decl.forbid_self_approval)
                    .unwrap_or(false),
                expires_after_ms,
                require_comment: dep
                    .require_comment
                    .or(decl.require_comment)
                    .unwrap_or(false),
            },
            kill_grace_ms,
            timeout_ms: cx.timeout(&dep.timeout, engine.timeout_ms),
            queue: decl.queue.unwrap_or_default(),
            verify,
            slurm: super::slurm::resolve_job(
                cx,
                &engine.slurm,
                &dep.executor,
                &dep.slurm,
                &format!("the deploy of service `{sname}` to `{ename}`"),
                dep_key.span(),
            ),
        });
        cx.never_retried(&dep.retries, "a deploy is never retried on its own (SJ-5)");
    }
    for key in svc.deploy.keys() {
        if !svc
            .environments
            .iter()
            .any(|e| e.get_ref() == key.get_ref())
        {
            cx.err(
                key.span(),
                format!(
                    "deploy command for `{}` but service `{sname}` does not deploy there",
                    key.get_ref()
                ),
                &format!(
                    "add \"{}\" to services.{sname}.environments, or remove this table",
                    key.get_ref()
                ),
            );
        }
    }

    let step_names: Vec<&str> = steps.iter().map(|s| s.name.as_str()).collect();
    let artifact = super::station::resolve_artifact(cx, sname, &svc.artifact, &step_names);
    let status_reporting = svc
        .status_reporting
        .as_ref()
        .map(|f| Box::new(super::outbound::status_reporting(cx, sname, f, &secrets)));
    let default_branch = svc
        .default_branch
        .clone()
        .or_else(|| svc.branches.first().cloned())
        .unwrap_or_else(|| "main".into());
    super::triggers::check_globs(cx, name.span(), sname, "branches", &svc.branches);
    super::triggers::check_globs(cx, name.span(), sname, "tags", &svc.tags);
    let triggers = super::triggers::resolve(cx, sname, svc, &secrets, &default_branch);
    if cx.errors.len() > first_error {
        return None;
    }
    Some(Service {
        name: sname.clone(),
        repo,
        repo_seed: svc.repo_seed.as_ref().map(|s| cx.path(s.get_ref())),
        default_branch,
        branches: svc.branches.clone(),
        tags: svc.tags.clone(),
        pull_requests,
        pipelines_enabled: svc.pipelines_enabled.unwrap_or(true),
        deployments_enabled: svc.deployments_enabled.unwrap_or(true),
        secrets,
        steps,
        environments,
        chain: Default::default(),
        status_reporting,
        triggers: Box::new(triggers),
        pull_request: None,
        artifact,
    })
}

fn resolve_steps(
    cx: &mut Ctx<'_>,
    sname: &str,
    svc: &ServiceFile,
    engine: &EngineSettings,
) -> Vec<Step> {
    let mut index: HashMap<&str, usize> = HashMap::new();
    for (i, step) in svc.steps.iter().enumerate() {
        check_name(cx, &step.name, "step");
        if index.insert(step.name.get_ref(), i).is_some() {
            cx.err(
                step.name.span(),
                format!(
                    "step `{}` is defined twice in service `{sname}`",
                    step.name.get_ref()
                ),
                "give each step a unique name",
            );
        }
    }
    let mut graph = DiGraph::<usize, ()>::new();
    let nodes: Vec<_> = (0..svc.steps.len()).map(|i| graph.add_node(i)).collect();
    for (i, step) in svc.steps.iter().enumerate() {
        for need in &step.needs {
            match index.get(need.get_ref().as_str()) {
                Some(&j) => {
                    graph.add_edge(nodes[i], nodes[j], ());
                }
                None => cx.err(
                    need.span(),
                    format!(
                        "step `{}` needs `{}`, which service `{sname}` does not define",
                        step.name.get_ref(),
                        need.get_ref()
                    ),
                    "name a step of the same service, or remove it from `needs`",
                ),
            }
        }
    }
    if let Some(cycle) = find_cycle(&graph) {
        let names: Vec<&str> = cycle
            .iter()
            .map(|&i| svc.steps[i].name.get_ref().as_str())
            .collect();
        let first = &svc.steps[cycle[0]];
        let span = first
            .needs
            .iter()
            .find(|n| n.get_ref() == names[1])
            .map(|n| n.span())
            .unwrap_or_else(|| first.name.span());
        cx.err(
            span,
            format!(
                "dependency cycle in service `{sname}` (each step needs the next): {}",
                names.join(" -> ")
            ),
            "remove one of these `needs` so the steps form a DAG",
        );
    }
    svc.steps
        .iter()
        .map(|s| Step {
            name: s.name.get_ref().clone(),
            run: s.run.clone(),
            needs: s.needs.iter().map(|n| n.get_ref().clone()).collect(),
            kill_grace_ms: cx.duration(&s.kill_grace, engine.kill_grace_ms, &KILL_GRACE),
            timeout_ms: cx.timeout(&s.timeout, engine.timeout_ms),
            retries: cx.retries(&s.retries),
            slurm: super::slurm::resolve_job(
                cx,
                &engine.slurm,
                &s.executor,
                &s.slurm,
                &format!("step `{}` of service `{sname}`", s.name.get_ref()),
                s.name.span(),
            ),
        })
        .collect()
}

/// The engine's one concurrency limit: at least one unit, at most 1,024 at once
/// (each running unit holds a process group and its pipes).
const CONCURRENCY: std::ops::RangeInclusive<usize> = 1..=1024;
