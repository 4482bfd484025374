//! Values for tests.

use super::{Stage, StepInfo, StepStatus};

impl StepInfo {
    /// A build step `s<id>` of run `run_id`, at position `id`, nothing else set.
    pub(crate) fn sample(id: i64, run_id: i64, status: StepStatus) -> Self {
        StepInfo {
            id,
            run_id,
            stage: Stage::Build,
            name: format!("s{id}"),
            position: id,
            status,
            reason: None,
            exit_code: None,
            started_at: None,
            ended_at: None,
            parent_id: None,
            outputs: None,
            superseded_by: None,
            slurm_job: None,
        }
    }
}
