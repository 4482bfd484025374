//! Infra projects (IP-1): resources, explicit `depends_on` and implicit edges from
//! `${id.outputs.key}` references, validated into a DAG.

use std::collections::{BTreeMap, HashMap};

use petgraph::graph::DiGraph;
use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::GatePolicy;
use super::cycle::find_cycle;
use super::schema::{CommandsFile, EnvironmentFile, InfraFile, PolicyFile};
use super::validate::{Ctx, KILL_GRACE, check_name};

/// A validated infra project.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InfraProject {
    pub name: String,
    pub environment: String,
    /// The environment gate.
    pub gate: GatePolicy,
    /// In declaration order.
    pub resources: Vec<Resource>,
    /// When every resource is checked for drift (plan only), if on a schedule.
    #[serde(default)]
    pub drift: Option<super::drift::DriftSchedule>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Resource {
    pub id: String,
    pub kind: String,
    /// `command`, `terraform` or `tofu`.
    pub driver: String,
    /// For terraform/tofu: the binary to run (default: the driver's name, then the other).
    #[serde(default)]
    pub binary: Option<String>,
    /// Absolute path of the IaC module (the command driver's `PIPEDECK_MODULE`).
    pub module: Option<std::path::PathBuf>,
    /// Where Terraform keeps this resource's state; `None`: local files in the data dir.
    #[serde(default)]
    pub backend: Option<super::backend::Backend>,
    /// Values may hold `${id.outputs.key}` references, substituted at run time.
    pub inputs: BTreeMap<String, serde_json::Value>,
    /// Explicit and implicit (from references) dependencies, sorted, without repeats.
    pub depends_on: Vec<String>,
    /// Node gate after this resource completes.
    pub gate: bool,
    /// The flow-control policy, resolved (SJ-3).
    #[serde(default)]
    pub policy: Policy,
    /// Connection variables the engine's environment must hold (SJ-4).
    #[serde(default)]
    pub credentials: Vec<String>,
    pub commands: CommandsFile,
    pub kill_grace_ms: u64,
    /// Each operation is stopped and fails after this long.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// Its operations run as Slurm jobs (issue 20).
    #[serde(default)]
    pub slurm: Option<super::slurm::SlurmJob>,
}

/// One knob's value and the level it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Knob {
    pub value: bool,
    /// `resource`, `environment`, `organization` or `default`.
    pub from: String,
}

/// A resolved flow-control policy (SJ-3): resource → environment → organization → default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Policy {
    pub skip_refresh: Knob,
    pub require_preview: Knob,
    pub pause_before_apply: Knob,
}

impl Default for Policy {
    fn default() -> Self {
        resolve_policy(&[])
    }
}

/// Resolves each knob from the most specific level that sets it.
pub fn resolve_policy(levels: &[(&str, &PolicyFile)]) -> Policy {
    let knob = |get: fn(&PolicyFile) -> Option<bool>, default: bool| {
        levels
            .iter()
            .find_map(|(name, p)| {
                get(p).map(|v| Knob {
                    value: v,
                    from: name.to_string(),
                })
            })
            .unwrap_or(Knob {
                value: default,
                from: "default".into(),
            })
    };
    Policy {
        skip_refresh: knob(|p| p.skip_refresh, false),
        require_preview: knob(|p| p.require_preview, true),
        pause_before_apply: knob(|p| p.pause_before_apply, false),
    }
}

impl Resource {
    /// Runs a real Terraform/OpenTofu binary (SJ-2), rather than operator commands.
    pub fn is_terraform(&self) -> bool {
        self.driver == "terraform" || self.driver == "tofu"
    }
}

impl InfraProject {
    pub fn resource(&self, id: &str) -> Option<&Resource> {
        self.resources.iter().find(|r| r.id == id)
    }
}

/// Every `${id.outputs.key}` in a string: `(id, key)` pairs.
pub fn references(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else { break };
        let inner = &after[..end];
        if let Some((id, key)) = inner.split_once(".outputs.") {
            out.push((id.to_string(), key.to_string()));
        }
        rest = &after[end + 1..];
    }
    out
}

fn collect_refs(v: &serde_json::Value, out: &mut Vec<(String, String)>) {
    match v {
        serde_json::Value::String(s) => out.extend(references(s)),
        serde_json::Value::Array(a) => a.iter().for_each(|x| collect_refs(x, out)),
        serde_json::Value::Object(o) => o.values().for_each(|x| collect_refs(x, out)),
        _ => {}
    }
}

pub(super) fn resolve_infra(
    cx: &mut Ctx<'_>,
    name: &Spanned<String>,
    f: &InfraFile,
    envs: &HashMap<&str, &EnvironmentFile>,
    org_policy: &PolicyFile,
    engine: &super::EngineSettings,
) -> Option<InfraProject> {
    let default_grace = engine.kill_grace_ms;
    let first_error = cx.errors.len();
    check_name(cx, name, "infra project");
    let env_name = f.environment.get_ref();
    let decl = envs.get(env_name.as_str());
    if decl.is_none() {
        cx.err(
            f.environment.span(),
            format!("environment `{env_name}` is not declared"),
            &format!("add an `[environments.{env_name}]` table, or fix the name"),
        );
    }
    let gate = GatePolicy {
        approval: f
            .approval
            .or(decl.and_then(|d| d.approval))
            .unwrap_or(false),
        approvers: f
            .approvers
            .clone()
            .or_else(|| decl.and_then(|d| d.approvers.clone()))
            .unwrap_or_default(),
        forbid_self_approval: decl.and_then(|d| d.forbid_self_approval).unwrap_or(false),
        expires_after_ms: None,
        require_comment: decl.and_then(|d| d.require_comment).unwrap_or(false),
    };
    let mut index: HashMap<&str, usize> = HashMap::new();
    for (i, r) in f.resources.iter().enumerate() {
        check_name(cx, &r.id, "resource");
        if index.insert(r.id.get_ref(), i).is_some() {
            cx.err(
                r.id.span(),
                format!(
                    "resource `{}` is defined twice in infra project `{}`",
                    r.id.get_ref(),
                    name.get_ref()
                ),
                "give each resource a unique id",
            );
        }
    }
    let project_backend = f
        .backend
        .as_ref()
        .and_then(|b| super::backend::backend(cx, b));
    let mut graph = DiGraph::<usize, ()>::new();
    let nodes: Vec<_> = (0..f.resources.len()).map(|i| graph.add_node(i)).collect();
    let mut resources = Vec::new();
    for (i, r) in f.resources.iter().enumerate() {
        let rid = r.id.get_ref();
        let mut deps: Vec<String> = Vec::new();
        for d in &r.depends_on {
            match index.get(d.get_ref().as_str()) {
                Some(_) => deps.push(d.get_ref().clone()),
                None => cx.err(
                    d.span(),
                    format!("resource `{rid}` depends on `{}`, which this infra project does not define", d.get_ref()),
                    "name a resource of the same infra project, or remove it from `depends_on`",
                ),
            }
        }
        let mut inputs = BTreeMap::new();
        for (k, v) in &r.inputs {
            let json = serde_json::to_value(v.get_ref()).unwrap_or(serde_json::Value::Null);
            let mut refs = Vec::new();
            collect_refs(&json, &mut refs);
            for (id, _) in refs {
                if index.contains_key(id.as_str()) {
                    deps.push(id);
                } else {
                    cx.err(
                        v.span(),
                        format!("input `{k}` of resource `{rid}` references `{id}`, which this infra project does not define"),
                        "write ${<resource id>.outputs.<key>} with the id of a resource declared here",
                    );
                }
            }
            inputs.insert(k.clone(), json);
        }
        deps.sort();
        deps.dedup();
        if deps.iter().any(|d| d == rid) {
            cx.err(
                r.id.span(),
                format!("resource `{rid}` depends on itself"),
                "remove the reference to itself",
            );
            deps.retain(|d| d != rid);
        }
        for d in &deps {
            if let Some(&j) = index.get(d.as_str()) {
                graph.add_edge(nodes[i], nodes[j], ());
            }
        }
        let driver_src = r.driver.as_ref().or(f.driver.as_ref());
        let driver = driver_src
            .map(|d| d.get_ref().clone())
            .unwrap_or_else(|| "command".into());
        if !["command", "terraform", "tofu"].contains(&driver.as_str()) {
            let span = driver_src.map(|d| d.span()).unwrap_or_else(|| r.id.span());
            cx.err(
                span,
                format!("driver `{driver}` is not available"),
                "use driver = \"command\", \"terraform\" or \"tofu\"",
            );
        }
        let terraform = driver != "command";
        if terraform && r.module.is_none() && f.module.is_none() {
            cx.err(
                r.id.span(),
                format!("resource `{rid}` uses the {driver} driver but has no module"),
                &format!("add `module = \"<folder with .tf files>\"` to resource `{rid}` or to the infra project"),
            );
        }
        let d = &f.commands;
        let commands = CommandsFile {
            init: r.commands.init.clone().or_else(|| d.init.clone()),
            refresh: r.commands.refresh.clone().or_else(|| d.refresh.clone()),
            preview: r.commands.preview.clone().or_else(|| d.preview.clone()),
            apply: r.commands.apply.clone().or_else(|| d.apply.clone()),
            destroy: r.commands.destroy.clone().or_else(|| d.destroy.clone()),
        };
        if !terraform && commands.apply.is_none() {
            cx.err(
                r.id.span(),
                format!("resource `{rid}` has no apply command"),
                &format!("add `commands.apply = \"...\"` to resource `{rid}` (the command driver needs one per operation it runs)"),
            );
        }
        resources.push(Resource {
            id: rid.clone(),
            kind: r.kind.clone(),
            driver,
            binary: f.terraform_binary.clone(),
            module: r
                .module
                .as_ref()
                .or(f.module.as_ref())
                .map(|m| cx.path(m.get_ref())),
            backend: match &r.backend {
                Some(b) => super::backend::backend(cx, b),
                None => project_backend.clone(),
            },
            inputs,
            depends_on: deps,
            gate: r.approval.unwrap_or(false),
            policy: {
                let mut levels: Vec<(&str, &PolicyFile)> = vec![("resource", &r.policy)];
                if let Some(d) = decl {
                    levels.push(("environment", &d.policy));
                }
                levels.push(("organization", org_policy));
                resolve_policy(&levels)
            },
            credentials: r.credentials.clone(),
            commands,
            kill_grace_ms: cx.duration(&r.kill_grace, default_grace, &KILL_GRACE),
            timeout_ms: cx.timeout(&r.timeout, engine.timeout_ms),
            slurm: super::slurm::resolve_job(
                cx,
                &engine.slurm,
                &r.executor,
                &r.slurm,
                &format!("resource `{rid}` of infra project `{}`", name.get_ref()),
                r.id.span(),
            ),
        });
        cx.never_retried(&r.retries, "apply and destroy are never retried (SJ-5)");
    }
    if let Some(cycle) = find_cycle(&graph) {
        let names: Vec<&str> = cycle
            .iter()
            .map(|&i| f.resources[i].id.get_ref().as_str())
            .collect();
        cx.err(
            f.resources[cycle[0]].id.span(),
            format!(
                "dependency cycle in infra project `{}` (each resource needs the next): {}",
                name.get_ref(),
                names.join(" -> ")
            ),
            "remove one of these dependencies (depends_on or an ${...outputs...} reference)",
        );
    }
    let drift = f
        .drift
        .as_ref()
        .and_then(|d| super::drift::resolve(cx, name, d));
    if cx.errors.len() > first_error {
        return None;
    }
    Some(InfraProject {
        name: name.get_ref().clone(),
        environment: env_name.clone(),
        gate,
        resources,
        drift,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_resolves_from_the_most_specific_level() {
        let org = PolicyFile {
            skip_refresh: Some(true),
            require_preview: Some(false),
            pause_before_apply: Some(false),
        };
        let env = PolicyFile {
            require_preview: Some(true),
            pause_before_apply: Some(true),
            ..Default::default()
        };
        let res = PolicyFile {
            pause_before_apply: Some(false),
            ..Default::default()
        };
        let p = resolve_policy(&[
            ("resource", &res),
            ("environment", &env),
            ("organization", &org),
        ]);
        assert_eq!(
            (
                p.pause_before_apply.value,
                p.pause_before_apply.from.as_str()
            ),
            (false, "resource")
        );
        assert_eq!(
            (p.require_preview.value, p.require_preview.from.as_str()),
            (true, "environment")
        );
        assert_eq!(
            (p.skip_refresh.value, p.skip_refresh.from.as_str()),
            (true, "organization")
        );
        let d = resolve_policy(&[("resource", &PolicyFile::default())]);
        assert_eq!(
            (
                d.skip_refresh.value,
                d.require_preview.value,
                d.pause_before_apply.value
            ),
            (false, true, false)
        );
        assert_eq!(d.pause_before_apply.from, "default");
    }

    #[test]
    fn finds_references() {
        assert_eq!(
            references("${vpc.outputs.id}/${db.outputs.host}:5432 ${nope}"),
            vec![("vpc".into(), "id".into()), ("db".into(), "host".into())]
        );
    }
}
