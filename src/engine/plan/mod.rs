//! Planners: each kind of run becomes the rows it shows (steps, stored when the run is
//! created) and a graph of units over those rows, which the one scheduler walks.

mod infra;
pub(crate) mod rollout;
mod service;

pub(crate) use service::deployed_env;

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::executor::command::CommandExecutor;
use super::executor::outputs::Wiring;
use super::executor::stack_job::StackJobExecutor;
use super::executor::switch::SwitchExecutor;
use super::queue::RunFacts;
use super::runner::Msg;
use super::scheduler::Scheduler;
use super::{EngineError, Result, Shared};
use crate::config::Service;
use crate::config::infra::InfraProject;
use crate::domain::{InfraAction, RunInfo, RunSpec, Stage, StepInfo};
use crate::store::NewRun;

/// A row a new run starts with.
pub(crate) struct Planned {
    pub stage: Stage,
    pub name: String,
    /// Index into the plan of this row's parent (an operation's resource).
    pub parent: Option<usize>,
}

/// A run's definition, pinned when it was created.
pub(crate) enum Definition {
    Service(Service),
    Infra(InfraProject, InfraAction),
    Rollout(rollout::RolloutDef),
}

fn bad(e: impl std::fmt::Display) -> EngineError {
    EngineError::Internal(format!("the stored definition is unreadable: {e}"))
}

impl Definition {
    /// Reads the definition stored with a run of `spec`.
    pub fn read(spec: &RunSpec, definition: &str) -> Result<Self> {
        use serde_json::from_str;
        if let RunSpec::Rollout { .. } = spec {
            let def = from_str(definition).map_err(bad)?;
            return Ok(Definition::Rollout(def));
        }
        Ok(match spec.infra_action() {
            None => Definition::Service(from_str(definition).map_err(bad)?),
            Some(action) => Definition::Infra(from_str(definition).map_err(bad)?, action),
        })
    }
}

/// The rows a new run starts with, and its definition: `def`, or else read from `new`.
pub(crate) fn plan(new: &NewRun, def: Option<Definition>) -> Result<(Vec<Planned>, Definition)> {
    let def = match def {
        Some(def) => def,
        None => Definition::read(&new.spec, &new.definition)?,
    };
    let rows = match &def {
        Definition::Service(svc) => service::rows(svc),
        Definition::Infra(p, action) => infra::rows(p, *action),
        Definition::Rollout(def) => rollout::rows(def),
    };
    Ok((rows, def))
}

/// Where a run's Slurm jobs go, and those it re-attaches to.
fn slurm_link(
    shared: &Shared,
    data_dir: std::path::PathBuf,
) -> crate::engine::executor::slurm::Link {
    crate::engine::executor::slurm::Link {
        reattach: shared.slurm_attach.clone(),
        data_dir,
        store: shared.store_id.clone(),
    }
}

/// Starts the scheduler of a run over its rows (all pending for a new run); a service
/// run's deploys join their environments' lines with `facts`, and its steps get what
/// the runs that started it (a chain) produced.
pub(crate) fn start(
    run: RunInfo,
    def: Definition,
    steps: Vec<StepInfo>,
    shared: Arc<Shared>,
    tx: mpsc::Sender<Msg>,
    cancel: CancellationToken,
    facts: RunFacts,
) -> tokio::task::JoinHandle<()> {
    let data_dir = shared.data_dir.clone();
    match def {
        Definition::Service(svc) => {
            let plan = service::graph(&svc, &steps, &facts);
            let mut before = vec![Vec::new(); steps.len()];
            for u in &plan.units {
                before[u.step] = u.needs.iter().map(|&d| plan.units[d].step).collect();
            }
            let names = steps.iter().map(|s| s.name.clone()).collect();
            let wiring = Wiring::new(names, before);
            let exec = CommandExecutor::new(run.clone(), svc, data_dir.clone(), &steps, wiring)
                .with_upstream(facts.upstream.clone())
                .with_slurm(slurm_link(&shared, data_dir))
                .with_ahead(shared.ahead.clone());
            tokio::spawn(Scheduler::new(run, plan, steps, exec, shared, tx, cancel).drive())
        }
        Definition::Infra(p, action) => {
            let plan = infra::graph(&p, action, &steps);
            let exec = StackJobExecutor::new(&run, p, action, &steps, data_dir.clone())
                .with_slurm(slurm_link(&shared, data_dir));
            tokio::spawn(Scheduler::new(run, plan, steps, exec, shared, tx, cancel).drive())
        }
        Definition::Rollout(def) => {
            let plan = rollout::graph(&run, &def);
            let grace = std::time::Duration::from_millis(def.kill_grace_ms);
            let stations = shared.stations.clone();
            let exec = SwitchExecutor::new(run.id, def.release, stations, &data_dir, grace);
            tokio::spawn(Scheduler::new(run, plan, steps, exec, shared, tx, cancel).drive())
        }
    }
}
