//! What a run's executor knows when it starts, or starts again after a restart:
//! outputs as last applied, what this run's operations already did, and the Slurm
//! jobs to re-attach to.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use serde_json::Value;

use super::Progress;
use super::files::{self, last_outputs};
use crate::config::infra::InfraProject;
use crate::domain::{InfraAction, Operation, Stage, StepInfo, StepStatus};

pub(super) struct Known {
    /// Each resource's outputs as they stand (for `${id.outputs.key}`).
    pub outputs: HashMap<String, Value>,
    pub progress: HashMap<usize, Progress>,
    /// Resources with an operation re-attaching to its Slurm job.
    pub reattaching: HashSet<usize>,
}

/// What run rows `steps` of `project` (doing `action`) and its state dirs say.
pub(super) fn known(
    project: &InfraProject,
    action: InfraAction,
    steps: &[StepInfo],
    data_dir: &Path,
) -> Known {
    let mut outputs = HashMap::new();
    // No state dir yet (a first deploy): no outputs to look for in each.
    let dir = files::project_dir(data_dir, &project.name);
    let applied_before = dir.is_dir();
    if action.destroys() || action.is_stack_job() {
        // Destroy takes the inputs it was applied with, and a lone stack job its
        // upstream's: outputs as last applied, from every resource's state dir.
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            if let Some(o) = last_outputs(&e.path()) {
                outputs.insert(e.file_name().to_string_lossy().into_owned(), o);
            }
        }
    }
    let mut progress: HashMap<usize, Progress> = HashMap::new();
    let mut reattaching = HashSet::new();
    let index: HashMap<&str, usize> = project
        .resources
        .iter()
        .enumerate()
        .map(|(k, r)| (r.id.as_str(), k))
        .collect();
    for s in steps {
        match s.stage {
            Stage::Resource => {
                // The row shows sensitive outputs as `***`: dependents take the
                // values from the resource's state dir.
                let dir = files::state_dir(data_dir, &project.name, &s.name);
                let last = applied_before.then(|| last_outputs(&dir)).flatten();
                if let Some(o) = last.or_else(|| s.outputs.clone()) {
                    outputs.insert(s.name.clone(), o);
                }
            }
            // A resumed run's unfinished operation with a job: a restarted engine
            // re-attaches to it.
            Stage::Operation if !s.status.is_terminal() && s.slurm_job.is_some() => {
                if let Some(&k) = s.name.rsplit_once('.').and_then(|(r, _)| index.get(r)) {
                    reattaching.insert(k);
                }
            }
            Stage::Operation if s.status == StepStatus::Succeeded => {
                let Some((rid, op)) = s.name.rsplit_once('.') else {
                    continue;
                };
                let Some(&k) = index.get(rid) else {
                    continue;
                };
                let p = progress.entry(k).or_default();
                match Operation::parse(op) {
                    Some(Operation::Preview) => {
                        p.planned = true;
                        p.summary = s.outputs.clone();
                    }
                    Some(o) if o.changes() => p.changed = true,
                    _ => {}
                }
            }
            _ => {}
        }
    }
    Known {
        outputs,
        progress,
        reattaching,
    }
}
