//! `pipedeck infra …`: graph, run (deploy or undeploy), environment and node gates.

use super::run::{Start, start};
use super::{Ctx, exit};
use crate::config::infra::InfraProject;
use crate::domain::Decision;

#[derive(Debug, clap::Subcommand)]
pub enum InfraCommand {
    /// Print an infra project's DAG, layer by layer (dependencies first).
    Graph {
        #[arg(value_name = "PROJECT")]
        name: String,
        /// Plain ASCII only.
        #[arg(long)]
        ascii: bool,
    },
    /// Deploy (or --undeploy) an infra project; prints the run id first.
    Run {
        #[arg(value_name = "PROJECT")]
        name: String,
        #[arg(long)]
        wait: bool,
        /// Destroy the resources, in reverse dependency order.
        #[arg(long)]
        undeploy: bool,
    },
    /// Approve the environment gate (before any resource starts).
    ApproveEnv {
        run: i64,
        env: String,
        #[arg(long, short)]
        comment: Option<String>,
    },
    /// Reject the environment gate: nothing is deployed.
    RejectEnv {
        run: i64,
        env: String,
        #[arg(long, short)]
        comment: Option<String>,
    },
    /// Approve a node gate (after the node, before its dependents).
    ApproveNode {
        run: i64,
        env: String,
        node: String,
        #[arg(long, short)]
        comment: Option<String>,
    },
    /// Reject a node gate: the node's dependents are skipped.
    RejectNode {
        run: i64,
        env: String,
        node: String,
        #[arg(long, short)]
        comment: Option<String>,
    },
}

pub async fn infra(ctx: &Ctx, cmd: InfraCommand) -> i32 {
    match cmd {
        InfraCommand::Graph { name, ascii } => graph(ctx, &name, ascii),
        InfraCommand::Run {
            name,
            wait,
            undeploy,
        } => {
            start(
                ctx,
                Start::Infra {
                    project: name,
                    undeploy,
                },
                wait,
            )
            .await
        }
        InfraCommand::ApproveEnv { run, env, comment } => {
            super::control::decide(ctx, run, &env, Decision::Approve, comment).await
        }
        InfraCommand::RejectEnv { run, env, comment } => {
            super::control::decide(ctx, run, &env, Decision::Reject, comment).await
        }
        InfraCommand::ApproveNode {
            run,
            env,
            node,
            comment,
        } => {
            super::control::decide(
                ctx,
                run,
                &format!("{env}/{node}"),
                Decision::Approve,
                comment,
            )
            .await
        }
        InfraCommand::RejectNode {
            run,
            env,
            node,
            comment,
        } => {
            super::control::decide(
                ctx,
                run,
                &format!("{env}/{node}"),
                Decision::Reject,
                comment,
            )
            .await
        }
    }
}

/// Longest-path layers: a resource sits one layer below its deepest dependency.
pub fn layers(p: &InfraProject) -> Vec<Vec<&crate::config::infra::Resource>> {
    let mut depth: std::collections::HashMap<&str, usize> = Default::default();
    // Validation guarantees a DAG, so repeated relaxation terminates.
    let mut changed = true;
    while changed {
        changed = false;
        for r in &p.resources {
            let d = r
                .depends_on
                .iter()
                .map(|x| depth.get(x.as_str()).map_or(1, |v| v + 1))
                .max()
                .unwrap_or(0);
            if depth.get(r.id.as_str()) != Some(&d) {
                depth.insert(&r.id, d);
                changed = true;
            }
        }
    }
    let n = depth.values().max().map_or(0, |m| m + 1);
    let mut out: Vec<Vec<_>> = vec![Vec::new(); n];
    for r in &p.resources {
        out[depth[r.id.as_str()]].push(r);
    }
    out
}

fn graph(ctx: &Ctx, name: &str, ascii: bool) -> i32 {
    let project = match ctx.load_project() {
        Ok(p) => p,
        Err(code) => return code,
    };
    let Some(p) = project.infra.get(name) else {
        let names: Vec<&str> = project.infra.keys().map(String::as_str).collect();
        eprintln!(
            "error: no infra project `{name}` (infra projects: {})",
            names.join(", ")
        );
        return exit::USAGE;
    };
    if ctx.json {
        super::output::json(p);
        return exit::OK;
    }
    let arrow = if ascii { "<-" } else { "←" };
    let gate = if p.gate.approval {
        ", environment gate"
    } else {
        ""
    };
    println!("{} → {}{gate}", p.name, p.environment);
    for (i, layer) in layers(p).iter().enumerate() {
        for (k, r) in layer.iter().enumerate() {
            let head = if k == 0 {
                format!("layer {i}:")
            } else {
                String::new()
            };
            let deps = if r.depends_on.is_empty() {
                String::new()
            } else {
                format!(" {arrow} {}", r.depends_on.join(", "))
            };
            let gate = if r.gate { "  [node gate]" } else { "" };
            println!("{head:<9} [{}] ({}){deps}{gate}", r.id, r.kind);
        }
    }
    exit::OK
}
