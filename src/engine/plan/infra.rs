//! An infra run: every resource is a group of stack-job operations in order (SJ-1);
//! a resource's first operation waits for the last of each resource it depends on
//! (for undeploy: of each resource that depends on it, IP-4). A failure skips exactly
//! its downstream set (IP-3); cancel lets operations in flight finish (IP-6); the
//! environment gate comes before anything, node gates after a resource (IP-5).

use std::collections::HashMap;
use std::sync::Arc;

use super::Planned;
use crate::config::infra::InfraProject;
use crate::domain::{GateKey, InfraAction, Stage, StepInfo};
use crate::engine::executor::stack_job::{OpWork, has_operation};
use crate::engine::scheduler::{GateSpec, Group, OnCancel, OnFailure, Plan, Policy, Unit};

/// The resources a run touches: one for a stack job, all of them otherwise.
fn in_run(p: &InfraProject, steps: &[StepInfo]) -> Vec<usize> {
    let rows: std::collections::HashSet<&str> = steps
        .iter()
        .filter(|s| s.stage == Stage::Resource)
        .map(|s| s.name.as_str())
        .collect();
    (0..p.resources.len())
        .filter(|&k| rows.contains(p.resources[k].id.as_str()))
        .collect()
}

pub(super) fn rows(p: &InfraProject, action: InfraAction) -> Vec<Planned> {
    let mut out = Vec::new();
    for r in &p.resources {
        let parent = out.len();
        out.push(Planned {
            stage: Stage::Resource,
            name: r.id.clone(),
            parent: None,
        });
        for &op in action.operations() {
            if has_operation(r, op) {
                out.push(Planned {
                    stage: Stage::Operation,
                    name: format!("{}.{op}", r.id),
                    parent: Some(parent),
                });
            }
        }
    }
    out
}

pub(super) fn graph(p: &InfraProject, action: InfraAction, steps: &[StepInfo]) -> Plan<OpWork> {
    let row_of: HashMap<(Stage, &str), usize> = steps
        .iter()
        .enumerate()
        .map(|(i, s)| ((s.stage, s.name.as_str()), i))
        .collect();
    let resources = in_run(p, steps);
    let mut units: Vec<Unit<OpWork>> = Vec::new();
    let mut groups = Vec::new();
    // Per resource: its first and last unit.
    let mut ends: HashMap<&str, (usize, usize)> = HashMap::new();
    for &k in &resources {
        let r = &p.resources[k];
        let g = groups.len();
        groups.push(Group {
            step: row_of[&(Stage::Resource, r.id.as_str())],
            key: k,
        });
        let first = units.len();
        for &op in action.operations() {
            let Some(&row) = row_of.get(&(Stage::Operation, format!("{}.{op}", r.id).as_str()))
            else {
                continue;
            };
            let needs = if units.len() > first {
                vec![units.len() - 1]
            } else {
                Vec::new()
            };
            let gate_before =
                (op.changes() && r.policy.pause_before_apply.value).then(|| GateSpec {
                    key: GateKey::op(&p.environment, &r.id, op),
                    policy: p.gate.clone(),
                    what: "plan".into(),
                });
            units.push(Unit {
                step: row,
                needs,
                group: Some(g),
                policy: Policy {
                    on_failure: OnFailure::SkipDownstream,
                    on_cancel: OnCancel::FinishInFlight,
                    gate_before,
                    gate_after: None,
                    queue: None,
                },
                work: Arc::new(OpWork { resource: k, op }),
            });
        }
        if units.len() > first {
            ends.insert(&r.id, (first, units.len() - 1));
            if r.gate && !action.destroys() {
                let last = units.len() - 1;
                units[last].policy.gate_after = Some(GateSpec {
                    key: GateKey::node(&p.environment, &r.id),
                    policy: p.gate.clone(),
                    what: "node gate".into(),
                });
            }
        }
    }
    // What each resource waits for: its dependencies, or for undeploy its dependents.
    let in_run_ids: std::collections::HashSet<&str> = resources
        .iter()
        .map(|&k| p.resources[k].id.as_str())
        .collect();
    let mut waits_for: HashMap<&str, Vec<&str>> = HashMap::new();
    for &k in &resources {
        let r = &p.resources[k];
        for d in r
            .depends_on
            .iter()
            .filter(|d| in_run_ids.contains(d.as_str()))
        {
            if action.destroys() {
                waits_for.entry(d).or_default().push(&r.id);
            } else {
                waits_for.entry(&r.id).or_default().push(d);
            }
        }
    }
    for &k in &resources {
        let rid = p.resources[k].id.as_str();
        if let Some(&(first, _)) = ends.get(rid) {
            let mut lasts = Vec::new();
            for d in waits_for.get(rid).into_iter().flatten() {
                last_units(d, &ends, &waits_for, &mut lasts);
            }
            units[first].needs.extend(lasts);
        }
    }
    let run_gate = p.gate.approval.then(|| GateSpec {
        key: GateKey::env(&p.environment),
        policy: p.gate.clone(),
        what: format!("environment gate {}", p.environment),
    });
    Plan {
        units,
        groups,
        run_gate,
        settled: Vec::new(),
    }
}

/// The units a dependent of `rid` waits for: its last one, or, for a resource with no
/// operation in this run, those of what it waits for itself.
fn last_units(
    rid: &str,
    ends: &HashMap<&str, (usize, usize)>,
    waits_for: &HashMap<&str, Vec<&str>>,
    out: &mut Vec<usize>,
) {
    match ends.get(rid) {
        Some(&(_, last)) => out.push(last),
        None => {
            for d in waits_for.get(rid).into_iter().flatten() {
                last_units(d, ends, waits_for, out);
            }
        }
    }
}
