//! A service run: the build DAG (fail-fast, terminated on cancel), then each
//! environment in order behind its gate and its queue (SP-2..SP-6a).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::Planned;
use crate::config::CheckKind;
use crate::config::Service;
use crate::config::station::ARTIFACT_ROW;
use crate::domain::{GateKey, QueueKey, Stage, StepInfo, StepStatus};
use crate::engine::executor::command::{Command, Work};
use crate::engine::queue::RunFacts;
use crate::engine::scheduler::{GateSpec, OnCancel, OnFailure, Plan, Policy, QueueSpec, Unit};

/// The row name of a check: `env.check`.
pub(crate) fn check_row(env: &str, check: &str) -> String {
    format!("{env}.{check}")
}

/// The environment that `step` finishing with success means `svc` deployed to: the
/// step is the environment's last unit (its last check, or the deploy itself).
pub(crate) fn deployed_env<'a>(svc: &'a Service, step: &StepInfo) -> Option<&'a str> {
    if step.status != StepStatus::Succeeded {
        return None;
    }
    let env = svc.environments.iter().find(|e| match e.verify.last() {
        None => step.stage == Stage::Deploy && step.name == e.name,
        Some(c) => step.stage == Stage::Verify && step.name == check_row(&e.name, &c.name),
    })?;
    Some(&env.name)
}

pub(super) fn rows(svc: &Service) -> Vec<Planned> {
    let mut out: Vec<Planned> = svc
        .steps
        .iter()
        .map(|s| Planned {
            stage: Stage::Build,
            name: s.name.clone(),
            parent: None,
        })
        .collect();
    if !svc.artifact.is_empty() {
        out.push(Planned {
            stage: Stage::Build,
            name: ARTIFACT_ROW.into(),
            parent: None,
        });
    }
    for env in &svc.environments {
        let parent = out.len();
        out.push(Planned {
            stage: Stage::Deploy,
            name: env.name.clone(),
            parent: None,
        });
        for c in &env.verify {
            out.push(Planned {
                stage: Stage::Verify,
                name: check_row(&env.name, &c.name),
                parent: Some(parent),
            });
        }
    }
    out
}

pub(super) fn graph(svc: &Service, steps: &[StepInfo], facts: &RunFacts) -> Plan<Work> {
    let mut units = Vec::new();
    let mut settled = Vec::new();
    let mut build_unit: HashMap<&str, usize> = HashMap::new();
    let defs: HashMap<&str, &crate::config::Step> =
        svc.steps.iter().map(|s| (s.name.as_str(), s)).collect();
    let build_policy = Policy {
        on_failure: OnFailure::FailRun,
        on_cancel: OnCancel::Terminate,
        gate_before: None,
        gate_after: None,
        queue: None,
    };
    for (i, row) in steps.iter().enumerate() {
        if row.stage != Stage::Build {
            continue;
        }
        let Some(def) = defs.get(row.name.as_str()) else {
            continue;
        };
        build_unit.insert(&def.name, units.len());
        units.push(Unit {
            step: i,
            needs: Vec::new(),
            group: None,
            policy: build_policy.clone(),
            work: Arc::new(Work::Command(Command {
                run: def.run.clone(),
                kill_grace: Duration::from_millis(def.kill_grace_ms),
                env: vec![("PIPEDECK_STEP".into(), def.name.clone())],
                timeout: def.timeout_ms.map(Duration::from_millis),
                retries: def.retries,
                row: i,
                slurm: def.slurm.clone(),
            })),
        });
    }
    for u in &mut units {
        let name = steps[u.step].name.as_str();
        if let Some(def) = defs.get(name) {
            u.needs = def
                .needs
                .iter()
                .filter_map(|n| build_unit.get(n.as_str()).copied())
                .collect();
        }
    }
    // The artifact is packed once the whole build passed (DP-1).
    if let Some(i) = steps
        .iter()
        .position(|r| r.stage == Stage::Build && r.name == ARTIFACT_ROW && !svc.artifact.is_empty())
    {
        units.push(Unit {
            step: i,
            needs: (0..units.len()).collect(),
            group: None,
            policy: build_policy.clone(),
            work: Arc::new(Work::Pack(svc.artifact.clone())),
        });
    }
    // Every environment waits for the whole build, then for the one before it.
    let mut before: Vec<usize> = (0..units.len()).collect();
    let row_of: HashMap<(Stage, &str), usize> = steps
        .iter()
        .enumerate()
        .map(|(i, s)| ((s.stage, s.name.as_str()), i))
        .collect();
    for (i, row) in steps.iter().enumerate() {
        if !matches!(row.stage, Stage::Deploy | Stage::Verify) {
            continue;
        }
        if !svc.deployments_enabled {
            let why = format!("deployments are disabled for service {}", svc.name);
            settled.push((i, StepStatus::Skipped, why));
            continue;
        }
        if row.stage == Stage::Verify {
            continue;
        }
        let Some(env) = svc.environments.iter().find(|e| e.name == row.name) else {
            continue;
        };
        let gate_before = env.gate.approval.then(|| GateSpec {
            key: GateKey::env(&env.name),
            policy: env.gate.clone(),
            what: String::new(),
        });
        let u = units.len();
        units.push(Unit {
            step: i,
            needs: std::mem::replace(&mut before, vec![u]),
            group: None,
            policy: Policy {
                on_failure: OnFailure::FailRun,
                // The environment in flight completes; the rest are cancelled (SP-5).
                on_cancel: OnCancel::FinishInFlight,
                gate_before,
                gate_after: None,
                queue: Some(QueueSpec {
                    key: QueueKey {
                        service: svc.name.clone(),
                        env: env.name.clone(),
                    },
                    policy: env.queue,
                    me: facts.me.clone(),
                    allow_older: facts.allow_older,
                    last: facts.last.get(&env.name).cloned(),
                }),
            },
            work: Arc::new(Work::Command(Command {
                run: env.run.clone(),
                kill_grace: Duration::from_millis(env.kill_grace_ms),
                env: vec![
                    ("PIPEDECK_ENV".into(), env.name.clone()),
                    ("PIPEDECK_STEP".into(), row.path()),
                ],
                timeout: env.timeout_ms.map(Duration::from_millis),
                // A deploy is never retried on its own (SJ-5).
                retries: 0,
                row: i,
                slurm: env.slurm.clone(),
            })),
        });
        // Its checks, one after another; the next environment waits for the last.
        for c in &env.verify {
            let name = check_row(&env.name, &c.name);
            let Some(&step) = row_of.get(&(Stage::Verify, name.as_str())) else {
                continue;
            };
            let work = match &c.kind {
                CheckKind::Command { run, kill_grace_ms } => Work::Command(Command {
                    run: run.clone(),
                    kill_grace: Duration::from_millis(*kill_grace_ms),
                    env: vec![
                        ("PIPEDECK_ENV".into(), env.name.clone()),
                        ("PIPEDECK_STEP".into(), steps[step].path()),
                    ],
                    row: step,
                    timeout: env.timeout_ms.map(Duration::from_millis),
                    // A failed smoke test fails its environment (HTTP checks retry).
                    retries: 0,
                    slurm: None,
                }),
                CheckKind::Http(h) => Work::Http(h.clone()),
            };
            let u = units.len();
            units.push(Unit {
                step,
                needs: std::mem::replace(&mut before, vec![u]),
                group: None,
                policy: Policy {
                    // A failed check fails its environment's deploy: the run fails
                    // and the later environments are skipped with the reason (SP-3a).
                    on_failure: OnFailure::FailRun,
                    on_cancel: OnCancel::Terminate,
                    gate_before: None,
                    gate_after: None,
                    queue: None,
                },
                work: Arc::new(work),
            });
        }
    }
    Plan {
        units,
        groups: Vec::new(),
        run_gate: None,
        settled,
    }
}
