//! Cron schedules (SP-7): each starts a run of its branch's head when due, read in
//! its time zone on an injectable [`Clock`]. What a schedule last considered is
//! stored; on start, the fires missed while the engine was down run per its
//! catch-up policy: `skip` (none) or `once` (one run, for the latest).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{Clock, Fire, TriggerStatus, stopped_because};
use crate::config::triggers::{CatchUp, Schedule};
use crate::domain::{Trigger, now_ms};
use crate::engine::{EngineError, EngineHandle};

/// The most due times one look walks (a schedule every second, down for hours).
const MAX_WALK: usize = 100_000;

/// The fire times of `s` after `after`, up to and including `until`.
pub fn due_between(
    s: &Schedule,
    after: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Vec<DateTime<Utc>>, cron::error::Error> {
    let parsed = s.parsed()?;
    let tz = s.tz();
    Ok(parsed
        .after(&after.with_timezone(&tz))
        .map(|t| t.with_timezone(&Utc))
        .take_while(|t| *t <= until)
        .take(MAX_WALK)
        .collect())
}

/// The next fire time of `s` after `now`.
pub fn next_after(s: &Schedule, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let parsed = s.parsed().ok()?;
    parsed
        .after(&now.with_timezone(&s.tz()))
        .next()
        .map(|t| t.with_timezone(&Utc))
}

/// Which of the due times `missed` run: on start they follow the catch-up policy;
/// later (the engine was up) the latest runs.
pub fn to_fire(missed: &[DateTime<Utc>], catch_up: Option<CatchUp>) -> Option<DateTime<Utc>> {
    match catch_up {
        Some(CatchUp::Skip) => None,
        Some(CatchUp::Once) | None => missed.last().copied(),
    }
}

fn seen_key(s: &Schedule) -> String {
    format!("schedule:{}", s.name)
}

pub(super) fn spawn(
    h: EngineHandle,
    service: String,
    s: Schedule,
    clock: Arc<dyn Clock>,
    status: watch::Sender<TriggerStatus>,
    stop: CancellationToken,
) {
    tokio::spawn(async move {
        let mut starting = true;
        loop {
            match look(&h, &service, &s, clock.as_ref(), starting).await {
                Ok(()) => status.send_modify(|st| st.last_error = None),
                Err(EngineError::Stopped) => return,
                Err(e) => {
                    let e = crate::domain::ansi::sanitize(&e.to_string(), false);
                    tracing::warn!(service, schedule = s.name, "{e}");
                    status.send_modify(|st| st.last_error = Some(e));
                }
            }
            starting = false;
            let now = clock.now();
            let Some(next) = next_after(&s, now) else {
                status.send_modify(|st| st.next_fire = None);
                return;
            };
            status.send_modify(|st| {
                st.next_fire = Some(next.timestamp_millis());
                st.checked_at = Some(now_ms());
            });
            tokio::select! {
                _ = clock.sleep_until(next) => {}
                _ = stop.cancelled() => return,
            }
        }
    });
}

/// One look: fires what is due since the last look (on start, per the catch-up
/// policy), then records that it looked.
async fn look(
    h: &EngineHandle,
    service: &str,
    s: &Schedule,
    clock: &dyn Clock,
    starting: bool,
) -> crate::engine::Result<()> {
    let now = clock.now();
    let key = seen_key(s);
    let last = h
        .seen(service)
        .await?
        .get(&key)
        .and_then(|v| v.parse::<i64>().ok())
        .and_then(DateTime::<Utc>::from_timestamp_millis);
    let mut result = Ok(());
    if let Some(last) = last {
        let missed = due_between(s, last, now)
            .map_err(|e| EngineError::Invalid(format!("cron \"{}\": {e}", s.cron)))?;
        let policy = starting.then_some(s.catch_up);
        let stopped = h.project().service(service).and_then(stopped_because);
        if let Some(due) = to_fire(&missed, policy)
            && stopped.is_none()
        {
            result = fire(h, service, s, due).await;
        }
    }
    h.set_seen(
        service,
        vec![(key, Some(now.timestamp_millis().to_string()))],
    )
    .await?;
    result
}

async fn fire(
    h: &EngineHandle,
    service: &str,
    s: &Schedule,
    due: DateTime<Utc>,
) -> crate::engine::Result<()> {
    let name = format!("schedule:{}", s.name);
    let f = Fire {
        service: service.to_string(),
        trigger: name.clone(),
        source: name.clone(),
        key: due.timestamp_millis().to_string(),
        commit: None,
        branch: s.branch.clone(),
        tag: None,
        kind: Trigger::Schedule,
        by: name,
        pull: None,
    };
    if let Some(run) = h.fire(f).await? {
        tracing::info!(service, schedule = s.name, "due {due}: run {}", run.id);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sched(cron: &str, tz: &str) -> Schedule {
        Schedule {
            name: "nightly".into(),
            cron: cron.into(),
            timezone: tz.into(),
            branch: "main".into(),
            catch_up: CatchUp::Skip,
        }
    }

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn due_times_are_read_in_the_time_zone() {
        let s = sched("0 3 * * *", "Europe/Berlin");
        let due = due_between(&s, t("2026-01-01T00:00:00Z"), t("2026-01-03T00:00:00Z")).unwrap();
        // 03:00 in Berlin in winter is 02:00 UTC.
        assert_eq!(
            due,
            vec![t("2026-01-01T02:00:00Z"), t("2026-01-02T02:00:00Z")]
        );
        assert_eq!(
            next_after(&s, t("2026-01-02T02:00:00Z")),
            Some(t("2026-01-03T02:00:00Z"))
        );
    }

    #[test]
    fn catch_up_skips_or_runs_once() {
        let missed = [t("2026-01-01T02:00:00Z"), t("2026-01-02T02:00:00Z")];
        assert_eq!(to_fire(&missed, Some(CatchUp::Skip)), None);
        assert_eq!(to_fire(&missed, Some(CatchUp::Once)), Some(missed[1]));
        assert_eq!(to_fire(&missed, None), Some(missed[1]));
        assert_eq!(to_fire(&[], Some(CatchUp::Once)), None);
    }
}
