//! Drift detection (issue 22, part 5): for every Terraform/OpenTofu resource of an
//! infra pipeline, `init` then `plan -detailed-exitcode -refresh=true` against the
//! module as it is now and the resource's state. Plan only: the plan is saved to its
//! own file (never the reviewed plan apply reads), summarised and deleted; nothing is
//! applied, and `-lock=false` because a plan never writes the state.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use serde_json::Value;

use super::files;
use crate::config::infra::{InfraProject, Resource};
use crate::domain::drift::{DriftReport, DriftStatus, ResourceDrift};
use crate::domain::now_ms;
use crate::engine::executor::terraform as tf;

/// The drift check's own plan file, in the state dir (deleted after it is read).
pub const DRIFT_PLAN_FILE: &str = "pipedeck.drift.tfplan";

/// The most of Terraform's error output a report carries.
const MAX_DETAIL: usize = 2_000;

/// Checks every resource of `project`, resources in parallel (one thread each: they
/// are Terraform processes, the threads only wait).
pub fn check(project: &InfraProject, data_dir: &Path) -> DriftReport {
    let started = Instant::now();
    let checked_at = now_ms();
    // Upstream outputs as last applied: the inputs the resource was deployed with.
    let mut outputs = HashMap::new();
    for r in &project.resources {
        let dir = files::state_dir(data_dir, &project.name, &r.id);
        if let Some(o) = files::last_outputs(&dir) {
            outputs.insert(r.id.clone(), o);
        }
    }
    let resources = std::thread::scope(|s| {
        let handles: Vec<_> = project
            .resources
            .iter()
            .map(|r| {
                let outputs = &outputs;
                s.spawn(move || check_one(project, r, outputs, data_dir))
            })
            .collect();
        handles
            .into_iter()
            .zip(&project.resources)
            .map(|(h, r)| {
                h.join().unwrap_or_else(|_| ResourceDrift {
                    resource: r.id.clone(),
                    status: DriftStatus::Error,
                    summary: None,
                    detail: Some("internal error: the check panicked".into()),
                    elapsed_ms: 0,
                })
            })
            .collect()
    });
    DriftReport {
        project: project.name.clone(),
        environment: project.environment.clone(),
        checked_at,
        elapsed_ms: started.elapsed().as_millis() as u64,
        resources,
    }
}

fn check_one(
    project: &InfraProject,
    r: &Resource,
    outputs: &HashMap<String, Value>,
    data_dir: &Path,
) -> ResourceDrift {
    let started = Instant::now();
    let (status, summary, detail) = match status_of(project, r, outputs, data_dir) {
        Ok((status, summary)) => (status, summary, None),
        Err(Unchecked(status, why)) => (status, None, Some(why)),
    };
    ResourceDrift {
        resource: r.id.clone(),
        status,
        summary,
        detail,
        elapsed_ms: started.elapsed().as_millis() as u64,
    }
}

/// A resource that was not compared, and why.
struct Unchecked(DriftStatus, String);

fn error(why: impl ToString) -> Unchecked {
    Unchecked(DriftStatus::Error, why.to_string())
}

fn status_of(
    project: &InfraProject,
    r: &Resource,
    outputs: &HashMap<String, Value>,
    data_dir: &Path,
) -> Result<(DriftStatus, Option<Value>), Unchecked> {
    if !r.is_terraform() {
        return Err(Unchecked(
            DriftStatus::NotChecked,
            format!(
                "{} driver: only terraform/tofu resources are checked",
                r.driver
            ),
        ));
    }
    let state_dir = files::state_dir(data_dir, &project.name, &r.id);
    let not_deployed = || Unchecked(DriftStatus::NotDeployed, "nothing deployed yet".into());
    if !state_dir.is_dir() {
        return Err(not_deployed());
    }
    let bin = tf::find_binary(&r.driver, r.binary.as_deref()).ok_or_else(|| {
        error("no terraform or tofu binary on PATH (install one, or set terraform_binary)")
    })?;
    let inputs = files::substitute_all(&r.inputs, outputs).map_err(error)?;
    let module = r.module.clone().unwrap_or_default();
    let target = tf::Target {
        project: &project.name,
        resource: &r.id,
        backend: r.backend.as_ref(),
        keep_tree: false,
    };
    let wd = tf::prepare(&module, &state_dir, &inputs, &target).map_err(error)?;
    if wd.local && !tf::has_state(&wd) {
        return Err(not_deployed());
    }
    let env = wd.env(data_dir);
    let init = tf::op_command(&bin, "init", false, false, &wd);
    let out = Command::new("sh")
        .arg("-c")
        .arg(&init)
        .current_dir(&wd.work)
        .envs(env.clone())
        .output()
        .map_err(|e| error(format!("cannot run init: {e}")))?;
    if !out.status.success() {
        return Err(error(format!("init failed: {}", tail(&out.stderr))));
    }
    if !wd.local
        && tf::state_list(&bin, &wd, data_dir)
            .map_err(error)?
            .is_empty()
    {
        return Err(not_deployed());
    }
    let plan_file = state_dir.join(DRIFT_PLAN_FILE);
    let out = Command::new(&bin)
        .args([
            "plan",
            "-detailed-exitcode",
            "-refresh=true",
            "-input=false",
        ])
        .arg("-lock=false")
        .arg(format!("-out={}", plan_file.display()))
        .current_dir(&wd.work)
        .envs(env)
        .output()
        .map_err(|e| error(format!("cannot run {}: {e}", bin.display())))?;
    let result = match out.status.code() {
        Some(0) => Ok((DriftStatus::InSync, None)),
        Some(2) => tf::plan_summary_of(&bin, &wd, &plan_file, data_dir)
            .map(|s| (DriftStatus::Drifted, Some(s)))
            .map_err(error),
        _ => Err(error(format!("plan failed: {}", tail(&out.stderr)))),
    };
    files::remove(&plan_file);
    result
}

/// The end of what a command said, at most [`MAX_DETAIL`] bytes.
fn tail(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim();
    let mut start = text.len().saturating_sub(MAX_DETAIL);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    text[start..].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_end_on_a_char_boundary() {
        let long = "é".repeat(MAX_DETAIL);
        let t = tail(long.as_bytes());
        assert!(t.len() <= MAX_DETAIL);
        assert!(t.chars().all(|c| c == 'é'));
        assert_eq!(tail(b"  short\n"), "short");
    }
}
