//! `pipedeck infra …`: graph, run (deploy or undeploy), environment and node gates.

use super::run::start;
use super::{Ctx, exit};
use crate::config::infra::InfraProject;
use crate::domain::{Decision, Request};

#[derive(Debug, clap::Subcommand)]
pub enum InfraCommand {
    /// Print an infra project's DAG, layer by layer (dependencies first).
    Graph {
        #[arg(value_name = "PROJECT", add = super::complete::infra_projects())]
        name: String,
        /// Plain ASCII only.
        #[arg(long)]
        ascii: bool,
    },
    /// Deploy (or --undeploy) an infra project; prints the run id first.
    Run {
        #[arg(value_name = "PROJECT", add = super::complete::infra_projects())]
        name: String,
        #[arg(long)]
        wait: bool,
        /// Destroy the resources, in reverse dependency order.
        #[arg(long)]
        undeploy: bool,
    },
    /// Check every resource of an infra project for drift now: a plan-only
    /// `terraform plan -detailed-exitcode` (refresh on) per Terraform/OpenTofu resource;
    /// nothing is applied. Exits 0 when all are in sync, 1 when any drifted or errored.
    Drift {
        #[arg(value_name = "PROJECT", add = super::complete::infra_projects())]
        name: String,
        /// Show what the latest check (on demand or scheduled) found, stored per
        /// resource with when it was checked; runs nothing.
        #[arg(long)]
        last: bool,
    },
    /// Approve the environment gate (before any resource starts).
    ApproveEnv {
        #[arg(add = super::complete::run_ids())]
        run: i64,
        #[arg(add = super::complete::waiting_gates())]
        env: String,
        #[arg(long, short)]
        comment: Option<String>,
    },
    /// Reject the environment gate: nothing is deployed.
    RejectEnv {
        #[arg(add = super::complete::run_ids())]
        run: i64,
        #[arg(add = super::complete::waiting_gates())]
        env: String,
        #[arg(long, short)]
        comment: Option<String>,
    },
    /// Approve a node gate (after the node, before its dependents).
    ApproveNode {
        #[arg(add = super::complete::run_ids())]
        run: i64,
        #[arg(add = super::complete::waiting_gates())]
        env: String,
        #[arg(add = super::complete::resources())]
        node: String,
        #[arg(long, short)]
        comment: Option<String>,
    },
    /// Reject a node gate: the node's dependents are skipped.
    RejectNode {
        #[arg(add = super::complete::run_ids())]
        run: i64,
        #[arg(add = super::complete::waiting_gates())]
        env: String,
        #[arg(add = super::complete::resources())]
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
                Request::TriggerInfra {
                    project: name,
                    undeploy,
                },
                wait,
            )
            .await
        }
        InfraCommand::Drift { name, last: false } => super::drift::drift(ctx, name).await,
        InfraCommand::Drift { name, last: true } => super::drift::last(ctx, name).await,
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
        } => match node_gate(&env, &node) {
            Ok(key) => super::control::decide(ctx, run, &key, Decision::Approve, comment).await,
            Err(code) => code,
        },
        InfraCommand::RejectNode {
            run,
            env,
            node,
            comment,
        } => match node_gate(&env, &node) {
            Ok(key) => super::control::decide(ctx, run, &key, Decision::Reject, comment).await,
            Err(code) => code,
        },
    }
}

/// The DAG drawn as text: boxes (id, kind, gate) and edges, no colour.
pub fn drawing(p: &InfraProject, ascii: bool) -> String {
    use crate::tui::widgets::dag_graph::{Label, Layout, Node, draw};
    let nodes: Vec<Node> = p
        .resources
        .iter()
        .map(|r| Node {
            id: r.id.clone(),
            deps: r.depends_on.clone(),
        })
        .collect();
    let labels: Vec<Label> = p
        .resources
        .iter()
        .map(|r| Label {
            title: if r.gate {
                format!("{} [gate]", r.id)
            } else {
                r.id.clone()
            },
            status: r.kind.clone(),
            color: ratatui::style::Color::Reset,
        })
        .collect();
    let layout = Layout::new(&nodes);
    format!(
        "{}\n",
        draw(&layout, &labels, None, ascii, false).to_text(ascii)
    )
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
    let gate = if p.gate.approval {
        " (environment gate)"
    } else {
        ""
    };
    outln!("{} → {}{gate}", p.name, p.environment);
    out!("{}", drawing(p, ascii));
    exit::OK
}

/// The key of a node gate (`db`) or of a pause before a node's operation (`db/apply`).
fn node_gate(env: &str, node: &str) -> Result<String, i32> {
    match crate::domain::GateKey::parse(&format!("{env}/{node}")) {
        Some(k) if k.node.is_some() => Ok(k.to_string()),
        _ => {
            eprintln!(
                "error: `{node}` is not a node gate: give a resource id (db) or a resource \
                 and an operation (db/apply)"
            );
            Err(exit::USAGE)
        }
    }
}
