//! A command that hosts the engine for its own run (`run --wait` while no engine is
//! up) is everyone's engine meanwhile: other clients find its socket and start runs
//! in it. Once its own run has ended it stops only when no other run has a step
//! running or about to start, since stopping would cut those runs short. Runs that only wait (at a gate,
//! for a slot or for their environment) stay waiting for the next engine, as on any
//! shutdown.

use std::time::Duration;

use futures_util::StreamExt;

use crate::api::{EngineClient, Feed};
use crate::domain::{Event, Request, RunDetail, RunInfo, RunStatus, StepInfo, StepStatus};
use crate::store::RunFilter;

/// After a change, how long further changes are let in before looking again: one
/// look per burst of a big run's step changes, not one per change.
const SETTLE: Duration = Duration::from_millis(100);

/// Waits until no run in the engine `c` has a step running or about to start (nor is
/// being cancelled), saying once on stderr which runs it waits for. Returns at once when the engine is
/// idle, and when it cannot tell (the engine is gone, or a request failed: logged).
pub(super) async fn others_finish<C: EngineClient>(c: &C) {
    // Subscribed before the first look, so that no change after it is missed.
    let mut events = match c.events().await {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!("cannot follow the engine's runs before stopping it: {e}");
            return;
        }
    };
    let mut told = false;
    loop {
        let busy = match busy_runs(c).await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!("cannot list the runs before stopping the engine: {e}");
                return;
            }
        };
        if busy.is_empty() {
            return;
        }
        if !told {
            told = true;
            let ids: Vec<String> = busy.iter().map(i64::to_string).collect();
            eprintln!(
                "this command hosts the engine, where other runs have steps running ({}): \
                 it stops when they end (Ctrl-C stops it now and cancels them)",
                ids.join(", ")
            );
        }
        // Until a run changes or a step ends; then the burst it starts settles.
        loop {
            match events.next().await {
                None => return,
                Some(Feed::Lagged) => break,
                Some(Feed::Event(e)) => match *e {
                    Event::Run { .. } => break,
                    Event::Step { step } if step.status.is_terminal() => break,
                    _ => {}
                },
            }
        }
        let settle = tokio::time::sleep(SETTLE);
        tokio::pin!(settle);
        loop {
            tokio::select! {
                _ = &mut settle => break,
                e = events.next() => if e.is_none() { return },
            }
        }
    }
}

/// Whether a run with `status` and `steps` is doing something, rather than only
/// waiting: a step runs, or (the run `running`, so no gate waits) a step is pending
/// while none is queued. Pending steps then wait for the run's checkout or for steps
/// that just ended, and start at once; a queued one may wait in its environment's
/// line behind a run parked at a gate.
fn in_progress(status: RunStatus, steps: &[StepInfo]) -> bool {
    let any = |s: StepStatus| steps.iter().any(|x| x.status == s);
    any(StepStatus::Running)
        || (status == RunStatus::Running && any(StepStatus::Pending) && !any(StepStatus::Queued))
}

/// The runs with a step running or about to start, or being cancelled.
async fn busy_runs<C: EngineClient>(c: &C) -> crate::engine::Result<Vec<i64>> {
    let mut busy = Vec::new();
    for status in [
        RunStatus::Running,
        RunStatus::AwaitingApproval,
        RunStatus::Cancelling,
    ] {
        let filter = RunFilter {
            status: Some(status),
            ..Default::default()
        };
        for run in c.ask::<Vec<RunInfo>>(Request::ListRuns { filter }).await? {
            if status == RunStatus::Cancelling {
                busy.push(run.id);
                continue;
            }
            let d = c
                .ask::<RunDetail>(Request::Detail { run_id: run.id })
                .await?;
            if in_progress(status, &d.steps) {
                busy.push(run.id);
            }
        }
    }
    busy.sort_unstable();
    Ok(busy)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn steps(statuses: &[StepStatus]) -> Vec<StepInfo> {
        statuses
            .iter()
            .enumerate()
            .map(|(i, &status)| StepInfo::sample(i as i64, 2, status))
            .collect()
    }

    #[test]
    fn a_run_starting_or_between_steps_is_in_progress_and_one_in_a_line_is_not() {
        use RunStatus::{AwaitingApproval, Running};
        use StepStatus::{Pending, Queued, Succeeded};
        // A step runs: whatever else waits.
        assert!(in_progress(
            AwaitingApproval,
            &steps(&[StepStatus::Running, Pending])
        ));
        // Checking out, or between one step and the next.
        assert!(in_progress(Running, &steps(&[Pending])));
        assert!(in_progress(Running, &steps(&[Succeeded, Pending])));
        // Queued (maybe in a line behind a gate), or behind its own gate: only waiting.
        assert!(!in_progress(Running, &steps(&[Queued, Pending])));
        assert!(!in_progress(
            AwaitingApproval,
            &steps(&[Succeeded, Pending])
        ));
        assert!(!in_progress(Running, &steps(&[Succeeded])));
    }
}
