//! Where one operation of a resource runs: a local process, or a Slurm batch job
//! (`executor = "slurm"`) given the same command, working directory and variables
//! (`TF_DATA_DIR`, the inputs, the backend's settings), and stopped the same way
//! (SIGINT first, for Terraform).

use crate::config::infra::Resource;
use crate::domain::now_ms;
use crate::engine::executor::process::{self, Outcome, ProcSpec};
use crate::engine::executor::slurm::{self, JobSpec, Link};
use crate::engine::scheduler::UnitCtx;

/// Runs the operation `spec` describes to its end: its outcome, when it ended, and
/// Slurm's words on a job that failed.
pub(super) async fn run(
    spec: ProcSpec,
    vars: &[(String, String)],
    r: &Resource,
    link: Option<&Link>,
    ctx: &mut UnitCtx,
) -> (Outcome, i64, Option<String>) {
    let Some(job) = &r.slurm else {
        let (outcome, at) = process::run(spec, ctx).await;
        return (outcome, at, None);
    };
    let Some(link) = link else {
        let why = "internal error: no Slurm link for a Slurm job".to_string();
        return (Outcome::Error(why), now_ms(), None);
    };
    let vars = vars.iter().chain(&spec.extra_env).cloned().collect();
    let job = JobSpec {
        job,
        command: &spec.command,
        cwd: spec.cwd.clone(),
        vars,
        kill_grace: spec.kill_grace,
        interrupt_first: spec.interrupt_first,
        timeout: spec.timeout,
        hold_slot: spec.hold_slot,
        // An operation is never retried (SJ-5): one attempt.
        attempt: 1,
    };
    let end = slurm::run(job, ctx, link).await;
    (end.outcome, end.ended_at, end.detail)
}
