//! Chained pipelines (SP-7a): `after = [{ service = "api", on = "succeeded" }, ...]`
//! on a service says which runs of other services start it.

use std::collections::{BTreeMap, HashMap};

use petgraph::graph::DiGraph;
use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::Service;
use super::cycle::find_cycle;
use super::schema::ServiceFile;
use super::validate::Ctx;

/// What of an upstream run starts the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChainOn {
    /// The upstream run succeeded.
    Succeeded,
    /// The upstream run failed.
    Failed,
    /// The upstream run deployed to `environment` and passed its checks there.
    Deployed,
}

/// One entry of a service's `after`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainCond {
    pub service: String,
    pub on: ChainOn,
    /// For `deployed`: the environment.
    pub environment: Option<String>,
}

/// What starts a service: its `after` entries, and whether all of them must have
/// happened (since its last chained run) or any one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chain {
    pub after: Vec<ChainCond>,
    pub all: bool,
}

/// Resolves every service's `after`, then rejects cycles with their path.
pub(super) fn resolve_chains(
    cx: &mut Ctx<'_>,
    files: &BTreeMap<Spanned<String>, ServiceFile>,
    services: &mut BTreeMap<String, Service>,
) {
    let names: Vec<&Spanned<String>> = files.keys().collect();
    let index: HashMap<&str, usize> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.get_ref().as_str(), i))
        .collect();
    let mut graph = DiGraph::<usize, ()>::new();
    let nodes: Vec<_> = (0..names.len()).map(|i| graph.add_node(i)).collect();
    // Per edge (upstream, downstream): where it was written.
    let mut spans = HashMap::new();
    for (name, f) in files {
        let me = name.get_ref();
        let mut chain = Chain {
            after: Vec::new(),
            all: true,
        };
        if let Some(w) = &f.after_when {
            match w.get_ref().as_str() {
                "all" => {}
                "any" => chain.all = false,
                other => cx.err(
                    w.span(),
                    format!("after_when = \"{other}\" is not known"),
                    "use \"all\" (every entry, default) or \"any\" (each entry on its own)",
                ),
            }
        }
        for a in &f.after {
            let up = a.service.get_ref();
            let Some(&u) = index.get(up.as_str()) else {
                cx.err(
                    a.service.span(),
                    format!("service `{me}` runs after `{up}`, which is not a service here"),
                    "name a service declared under [services], or fix the name",
                );
                continue;
            };
            let on = match a.on.get_ref().as_str() {
                "succeeded" => ChainOn::Succeeded,
                "failed" => ChainOn::Failed,
                "deployed" => ChainOn::Deployed,
                other => {
                    cx.err(
                        a.on.span(),
                        format!("on = \"{other}\" is not known"),
                        "use \"succeeded\", \"failed\" or \"deployed\" (with environment = \"...\")",
                    );
                    continue;
                }
            };
            let env = a.environment.as_ref();
            match (on, env) {
                (ChainOn::Deployed, None) => {
                    cx.err(
                        a.on.span(),
                        format!(
                            "service `{me}` runs after `{up}` deploys, but no environment is named"
                        ),
                        "add environment = \"...\" (one the upstream service deploys to)",
                    );
                    continue;
                }
                (ChainOn::Deployed, Some(e)) => {
                    let deploys = files[names[u]]
                        .environments
                        .iter()
                        .any(|x| x.get_ref() == e.get_ref());
                    if !deploys {
                        cx.err(
                            e.span(),
                            format!("service `{up}` does not deploy to `{}`", e.get_ref()),
                            &format!("name an environment listed in services.{up}.environments"),
                        );
                        continue;
                    }
                }
                (_, Some(e)) => {
                    cx.err(
                        e.span(),
                        "environment goes with on = \"deployed\" only".into(),
                        "remove environment, or set on = \"deployed\"",
                    );
                    continue;
                }
                (_, None) => {}
            }
            let d = index[me.as_str()];
            graph.add_edge(nodes[u], nodes[d], ());
            spans.entry((u, d)).or_insert_with(|| a.service.span());
            chain.after.push(ChainCond {
                service: up.clone(),
                on,
                environment: env.map(|e| e.get_ref().clone()),
            });
        }
        if let Some(s) = services.get_mut(me) {
            s.chain = chain;
        }
    }
    if let Some(path) = find_cycle(&graph) {
        let shown: Vec<&str> = path.iter().map(|&i| names[i].get_ref().as_str()).collect();
        // Reported where the cycle's last edge was written: the entry that closes it.
        let (u, d) = (path[path.len() - 2], path[path.len() - 1]);
        let span = spans.get(&(u, d)).cloned().unwrap_or_default();
        cx.err(
            span,
            format!("chained pipelines form a cycle: {}", shown.join(" -> ")),
            "remove one of these `after` entries: a chain must end",
        );
    }
}
