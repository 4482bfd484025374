//! Drift schedules (issue 22, part 5): each infra pipeline with `drift = { every }` or
//! `drift = { cron }` is checked for drift when due, on the injectable [`Clock`], by
//! the same plan-only check as `pipedeck infra drift` (nothing is ever applied). The
//! time of the last scheduled check is stored (as the schedules' last looks are), so a
//! restart neither repeats a check nor forgets one that fell due meanwhile: one that
//! is overdue runs once, at once.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::schedule::next_after;
use super::{Clock, TriggerStatus};
use crate::config::drift::DriftSchedule;
use crate::domain::now_ms;
use crate::engine::{EngineError, EngineHandle};

/// Who a scheduled check is audited as.
pub const BY: &str = "schedule:drift";
/// The trigger's name in `pipedeck triggers`.
pub const TRIGGER: &str = "drift";
const SEEN: &str = "drift:last";

/// Where the last look is kept (trigger_seen is keyed by a name; an infra pipeline's
/// is kept apart from a service's of the same name).
fn seen_owner(project: &str) -> String {
    format!("infra:{project}")
}

/// When the check after one at `last` is due.
pub fn due_after(s: &DriftSchedule, last: DateTime<Utc>) -> Option<DateTime<Utc>> {
    match s {
        DriftSchedule::Every { every_ms } => {
            Some(last + chrono::Duration::milliseconds(*every_ms as i64))
        }
        DriftSchedule::Cron(c) => next_after(c, last),
    }
}

pub(super) fn spawn(
    h: EngineHandle,
    project: String,
    s: DriftSchedule,
    clock: Arc<dyn Clock>,
    status: watch::Sender<TriggerStatus>,
    stop: CancellationToken,
) {
    tokio::spawn(async move {
        loop {
            let now = clock.now();
            let last = match last_look(&h, &project).await {
                Ok(Some(last)) => last,
                // Never looked: the schedule starts now.
                Ok(None) => match set_look(&h, &project, now).await {
                    Ok(()) => now,
                    Err(EngineError::Stopped) => return,
                    Err(e) => {
                        failed(&status, &project, e);
                        now
                    }
                },
                Err(EngineError::Stopped) => return,
                Err(e) => {
                    failed(&status, &project, e);
                    now
                }
            };
            let Some(due) = due_after(&s, last) else {
                status.send_modify(|st| st.next_fire = None);
                return;
            };
            status.send_modify(|st| {
                st.next_fire = Some(due.timestamp_millis());
                st.checked_at = Some(now_ms());
            });
            if due > now {
                tokio::select! {
                    _ = clock.sleep_until(due) => {}
                    _ = stop.cancelled() => return,
                }
                // Look again: the clock may have moved on further (a suspended machine).
                continue;
            }
            // Due (or overdue, once): the look is recorded first, so a check that
            // cannot run (a run of the pipeline in flight) waits for the next time.
            match set_look(&h, &project, now).await {
                Ok(()) => {}
                Err(EngineError::Stopped) => return,
                Err(e) => failed(&status, &project, e),
            }
            match h.check_drift(&project, BY).await {
                Ok(report) => {
                    tracing::info!(
                        project,
                        drifted = report.drifted().count(),
                        "scheduled drift check"
                    );
                    status.send_modify(|st| st.last_error = None);
                }
                Err(EngineError::Stopped) => return,
                Err(e) => failed(&status, &project, e),
            }
        }
    });
}

fn failed(status: &watch::Sender<TriggerStatus>, project: &str, e: EngineError) {
    let e = crate::domain::ansi::sanitize(&e.to_string(), false);
    tracing::warn!(project, "drift schedule: {e}");
    status.send_modify(|st| st.last_error = Some(e));
}

async fn last_look(
    h: &EngineHandle,
    project: &str,
) -> crate::engine::Result<Option<DateTime<Utc>>> {
    Ok(h.seen(&seen_owner(project))
        .await?
        .get(SEEN)
        .and_then(|v| v.parse::<i64>().ok())
        .and_then(DateTime::<Utc>::from_timestamp_millis))
}

async fn set_look(h: &EngineHandle, project: &str, at: DateTime<Utc>) -> crate::engine::Result<()> {
    h.set_seen(
        &seen_owner(project),
        vec![(SEEN.to_string(), Some(at.timestamp_millis().to_string()))],
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::triggers::{CatchUp, Schedule};

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn every_counts_from_the_last_check_and_cron_takes_its_next_time() {
        let every = DriftSchedule::Every {
            every_ms: 6 * 3_600_000,
        };
        assert_eq!(
            due_after(&every, t("2026-01-01T01:30:00Z")),
            Some(t("2026-01-01T07:30:00Z"))
        );
        let cron = DriftSchedule::Cron(Schedule {
            name: "drift".into(),
            cron: "0 */6 * * *".into(),
            timezone: "UTC".into(),
            branch: String::new(),
            catch_up: CatchUp::Once,
        });
        assert_eq!(
            due_after(&cron, t("2026-01-01T01:30:00Z")),
            Some(t("2026-01-01T06:00:00Z"))
        );
        assert_eq!(every.describe(), "every 6h00m");
        assert_eq!(cron.describe(), "cron \"0 */6 * * *\" (UTC)");
    }
}
