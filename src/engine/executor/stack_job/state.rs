//! A state job's state operation (SJ-7): Terraform's `state list`, `state show`,
//! `taint`, `untaint`, `state rm`, `state mv`, `import` or `force-unlock`, run with
//! the real binary in the resource's copy of its module, with its working data,
//! inputs and backend exactly as plan and apply have them. Each argument is one argv
//! word (validated addresses and ids), never part of a shell line.

use std::time::Duration;

use serde_json::json;

use super::process::{self, LogTarget, ProcSpec};
use super::{OpWork, Ready, StackJobError, StackJobExecutor, finished, write_note};
use crate::domain::state_op::{Address, StateOp};
use crate::engine::scheduler::{Finished, Outcome, UnitCtx};

/// The most log lines read back (a state list of this many addresses is already
/// more than any one resource's module holds).
const MAX_LINES: usize = 100_000;

impl StackJobExecutor {
    /// Runs the job's state operation: one Terraform process per invocation, in
    /// order, stopping at the first that fails. `state list` leaves the addresses
    /// as the unit's outputs (`{"addresses": […]}`), for the dashboard's state view.
    pub(super) async fn run_state(
        &self,
        w: &OpWork,
        ready: &Ready,
        mut ctx: UnitCtx,
    ) -> Result<Finished, StackJobError> {
        let op = self.state.as_ref().ok_or(StackJobError::NoStateOp)?;
        let (bin, wd) = ready.tf.as_ref().ok_or(StackJobError::NoBinary)?;
        let r = self.resource(w.resource);
        let log = ctx.log.clone();
        let mut extra_env = vec![("PIPEDECK_OPERATION".to_string(), "state".to_string())];
        extra_env.extend(wd.env(&self.data_dir));
        let calls = op.invocations(wd.lock_timeout_ms);
        let last = calls.len().saturating_sub(1);
        let mut fin = None;
        for (i, args) in calls.into_iter().enumerate() {
            // Validated words only: safe to show as they are.
            let shown = format!("terraform {}", args.join(" "));
            write_note(&log, &format!("$ {shown}"));
            let argv = std::iter::once(bin.display().to_string())
                .chain(args)
                .collect();
            let spec = ProcSpec {
                command: shown,
                argv: Some(argv),
                cwd: wd.work.clone(),
                env: ready.env.clone(),
                extra_env: extra_env.clone(),
                kill_grace: Duration::from_millis(r.kill_grace_ms),
                // SIGINT first, so that Terraform releases the lock it holds (SJ-5).
                interrupt_first: true,
                timeout: r.timeout_ms.map(Duration::from_millis),
                // The slot is kept until the last invocation ends.
                hold_slot: i < last,
            };
            let (result, ended_at) = process::run(spec, &mut ctx).await;
            let mut f = finished(result, ended_at);
            if matches!(op, StateOp::List)
                && matches!(f.outcome, Outcome::Failed(_))
                && said(&log, crate::engine::executor::terraform::NO_STATE)
            {
                // Nothing applied yet to a backend that keeps no empty state.
                f.outcome = Outcome::Succeeded { outputs: None };
            }
            if let Outcome::Failed(why) = &mut f.outcome {
                if let Some(reason) = self.failure_reason(&log, w) {
                    *why = reason;
                }
                return Ok(f);
            }
            if !matches!(f.outcome, Outcome::Succeeded { .. }) {
                return Ok(f);
            }
            fin = Some(f);
        }
        let mut fin = fin.ok_or(StackJobError::NoStateOp)?;
        let outputs = match op {
            StateOp::List => {
                let addresses = listed(&log);
                write_note(
                    &log,
                    &format!("{} resources in the state of {}", addresses.len(), r.id),
                );
                Some(json!({ "addresses": addresses }))
            }
            StateOp::Show { .. } => None,
            StateOp::Unlock { lock_id } => {
                write_note(&log, &format!("lock {lock_id} released"));
                None
            }
            other => {
                write_note(&log, &format!("done: {}", other.describe()));
                None
            }
        };
        fin.outcome = Outcome::Succeeded { outputs };
        Ok(fin)
    }

    /// Why a Terraform operation of `w` failed, from its log, when there is more to
    /// say than its exit status.
    pub(super) fn failure_reason(&self, log: &LogTarget, w: &OpWork) -> Option<String> {
        let lines = log.logs.read(log.run_id, log.step_id, 0, MAX_LINES).ok()?;
        let r = self.resource(w.resource);
        super::lock::failure_reason(
            lines.iter().map(|l| l.text.as_str()),
            w.op.changes(),
            r.backend.as_ref(),
            &r.id,
        )
    }
}

/// Whether the log says `what`.
fn said(log: &LogTarget, what: &str) -> bool {
    log.logs
        .read(log.run_id, log.step_id, 0, MAX_LINES)
        .is_ok_and(|lines| lines.iter().any(|l| l.text.contains(what)))
}

/// The addresses `state list` printed: its standard output's lines that are one.
fn listed(log: &LogTarget) -> Vec<String> {
    let lines = log
        .logs
        .read(log.run_id, log.step_id, 0, MAX_LINES)
        .unwrap_or_default();
    lines
        .iter()
        .filter(|l| l.stream == 'o')
        .map(|l| l.text.trim())
        .filter(|t| Address::parse(t).is_ok())
        .map(str::to_string)
        .collect()
}
