//! Targeted stack jobs (issue 22, part 4): refresh, preview and an apply or destroy
//! without a saved plan are limited to the job's addresses (`-target=ADDR`); an apply
//! of the saved plan needs none (the plan is already targeted).
//!
//! The addresses reach Terraform as arguments of their own: each `-target=ADDR` is a
//! variable of the operation's environment (`PIPEDECK_TF_TARGET_<n>`), and the
//! command names the variables in double quotes, so nothing an operator typed is ever
//! read by a shell.
//!
//! Outputs: after a targeted apply, Terraform's root outputs may be only partly
//! updated (those that depend on resources left out keep their old values), so the
//! resource's recorded outputs, which its dependents read, are replaced only when the
//! module is complete after it: a plan of the whole module (`plan -refresh=false
//! -detailed-exitcode`, nothing saved, nothing locked) has nothing left to do.
//! Otherwise the outputs of the last complete apply stay recorded, and the log says so.

use std::path::Path;
use std::process::Command;

use super::write_note;
use crate::domain::Operation;
use crate::domain::target::Address;
use crate::engine::executor::process::LogTarget;
use crate::engine::executor::terraform as tf;

/// The variable holding the `n`th target argument.
fn var(n: usize) -> String {
    format!("PIPEDECK_TF_TARGET_{n}")
}

/// Whether operation `op` takes the targets (`planned`: apply/destroy apply a saved
/// plan, which is targeted already).
pub(super) fn takes_targets(op: Operation, planned: bool) -> bool {
    match op {
        Operation::Refresh | Operation::Preview => true,
        Operation::Apply | Operation::Destroy => !planned,
        Operation::Init | Operation::State => false,
    }
}

/// ` "$PIPEDECK_TF_TARGET_0" "$PIPEDECK_TF_TARGET_1"…`: appended to a Terraform
/// command line.
pub(super) fn args(targets: &[Address]) -> String {
    (0..targets.len())
        .map(|n| format!(" \"${}\"", var(n)))
        .collect()
}

/// The variables [`args`] names, each `-target=ADDR`.
pub(super) fn env(targets: &[Address]) -> Vec<(String, String)> {
    targets
        .iter()
        .enumerate()
        .map(|(n, t)| (var(n), t.arg()))
        .collect()
}

/// Whether the whole module is applied as it stands (its outputs are then complete):
/// `Ok(None)`, or `Ok(Some(why not))`. Read-only: no plan is saved, the state is not
/// locked.
pub(super) fn incomplete(
    bin: &Path,
    wd: &tf::Workdir,
    data_dir: &Path,
) -> std::io::Result<Option<String>> {
    let out = Command::new(bin)
        .args([
            "plan",
            "-refresh=false",
            "-detailed-exitcode",
            "-input=false",
            "-lock=false",
        ])
        .current_dir(&wd.work)
        .envs(wd.env(data_dir))
        .output()?;
    Ok(match out.status.code() {
        Some(0) => None,
        Some(2) => Some("changes outside the targets are still to apply".into()),
        _ => Some(format!(
            "the check of the whole module failed: {}",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .find(|l| l.contains("Error"))
                .unwrap_or("no reason given")
                .trim()
        )),
    })
}

/// After a targeted apply: whether the module is left incomplete, so the outputs of
/// the last complete apply stay recorded (the log says which and why).
pub(super) async fn kept_outputs(
    targets: &[Address],
    bin: &Path,
    wd: &tf::Workdir,
    data_dir: &Path,
    log: &LogTarget,
) -> bool {
    if targets.is_empty() {
        return false;
    }
    let (bin, wd, data) = (bin.to_path_buf(), wd.clone(), data_dir.to_path_buf());
    let check = tokio::task::spawn_blocking(move || incomplete(&bin, &wd, &data)).await;
    let why = match check {
        Ok(Ok(None)) => {
            write_note(
                log,
                "targeted apply: the whole module is now applied, so its outputs are recorded",
            );
            return false;
        }
        Ok(Ok(Some(why))) => why,
        Ok(Err(e)) => format!("the check of the whole module could not run: {e}"),
        Err(e) => format!("the check of the whole module stopped: {e}"),
    };
    write_note(
        log,
        &format!(
            "targeted apply: {why}; the outputs of the last complete apply stay recorded \
             (an update without --target records new ones)"
        ),
    );
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_variables_named_in_quotes() {
        let t = crate::domain::target::parse_all(&["a.b".into(), "module.m.c.d[\"k\"]".into()])
            .unwrap();
        assert_eq!(
            args(&t),
            " \"$PIPEDECK_TF_TARGET_0\" \"$PIPEDECK_TF_TARGET_1\""
        );
        assert_eq!(
            env(&t),
            vec![
                (
                    "PIPEDECK_TF_TARGET_0".to_string(),
                    "-target=a.b".to_string()
                ),
                (
                    "PIPEDECK_TF_TARGET_1".to_string(),
                    "-target=module.m.c.d[\"k\"]".to_string()
                ),
            ]
        );
        assert!(takes_targets(Operation::Preview, true));
        assert!(!takes_targets(Operation::Apply, true));
        assert!(takes_targets(Operation::Apply, false));
        assert!(!takes_targets(Operation::Init, false));
    }
}
