//! Cron schedules (SP-7) on a clock the test moves: fires at the right simulated
//! times, and after a restart catches up per policy (`once`: one run; `skip`: none).

mod common;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use common::git::*;
use common::*;
use pipedeck::api::EngineClient;
use pipedeck::domain::{Event, RunInfo, Trigger};
use pipedeck::engine::{self, EngineHandle, triggers::ManualClock};
use pipedeck::store::RunFilter;

const PROJECT: &str = r#"
[services.api]
repo_seed = "src"
[[services.api.steps]]
name = "build"
run = "echo scheduled"
[[services.api.schedules]]
name = "nightly"
cron = "0 3 * * *"
timezone = "UTC"
catch_up = "once"
[[services.api.schedules]]
name = "hourly"
cron = "0 * * * *"
catch_up = "skip"
"#;

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

async fn next_fire(h: &EngineHandle, name: &str) -> Option<i64> {
    triggers(h)
        .await
        .into_iter()
        .find(|x| x.trigger == format!("schedule:{name}"))
        .and_then(|x| x.next_fire)
}

async fn until_next(h: &EngineHandle, name: &str, at: &str) {
    let want = t(at).timestamp_millis();
    until(&format!("{name} next at {at}"), || async {
        next_fire(h, name).await == Some(want)
    })
    .await;
}

/// The next run `by` creates (one newer than every run so far).
async fn fired(
    rx: &mut tokio::sync::broadcast::Receiver<Event>,
    by: &str,
    newer_than: i64,
) -> RunInfo {
    match wait_for(
        rx,
        |e| matches!(e, Event::Run { run } if run.triggered_by == by && run.id > newer_than),
    )
    .await
    {
        Event::Run { run } => run,
        _ => unreachable!(),
    }
}

async fn runs_by(h: &EngineHandle, by: &str) -> usize {
    h.runs(RunFilter::default())
        .await
        .unwrap()
        .iter()
        .filter(|r| r.triggered_by == by)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_fire_at_their_times_and_catch_up_per_policy_across_a_restart() {
    let p = TestProject::new(PROJECT);
    let clock = Arc::new(ManualClock::new(t("2026-01-01T00:30:00Z")));
    let (h, _task) = engine::start_with_clock(p.project(), &p.data_dir(), clock.clone())
        .await
        .unwrap();
    let mut rx = h.subscribe();
    until_next(&h, "hourly", "2026-01-01T01:00:00Z").await;
    until_next(&h, "nightly", "2026-01-01T03:00:00Z").await;

    clock.set(t("2026-01-01T01:00:00Z"));
    let run = fired(&mut rx, "schedule:hourly", 0).await;
    assert_eq!(run.trigger, Trigger::Schedule);
    assert_eq!(run.branch, "main");
    wait_done(&h, &mut rx, run.id).await;
    until_next(&h, "hourly", "2026-01-01T02:00:00Z").await;
    assert_eq!(runs_by(&h, "schedule:nightly").await, 0, "not due yet");

    // The clock jumps past 02:00 (a suspended machine): the engine was up, so the
    // fire it missed runs late, once.
    clock.set(t("2026-01-01T02:59:00Z"));
    let late = fired(&mut rx, "schedule:hourly", run.id).await;
    wait_done(&h, &mut rx, late.id).await;
    until_next(&h, "hourly", "2026-01-01T03:00:00Z").await;
    assert_eq!(runs_by(&h, "schedule:nightly").await, 0, "not due yet");
    clock.set(t("2026-01-01T03:00:00Z"));
    let nightly = fired(&mut rx, "schedule:nightly", late.id).await;
    wait_done(&h, &mut rx, nightly.id).await;
    until_next(&h, "hourly", "2026-01-01T04:00:00Z").await;
    until_next(&h, "nightly", "2026-01-02T03:00:00Z").await;
    until("the 03:00 hourly run", || async {
        runs_by(&h, "schedule:hourly").await == 3
    })
    .await;
    h.shutdown().await;
    drop(h);

    // Down for a day: the nightly at 2026-01-02 03:00 and the hourlies in between
    // were missed. `once`: one nightly run; `skip`: no hourly run.
    let clock = Arc::new(ManualClock::new(t("2026-01-02T05:30:00Z")));
    let (h, _task) = engine::start_with_clock(p.project(), &p.data_dir(), clock.clone())
        .await
        .unwrap();
    let mut rx = h.subscribe();
    until_next(&h, "hourly", "2026-01-02T06:00:00Z").await;
    until_next(&h, "nightly", "2026-01-03T03:00:00Z").await;
    until("the caught-up nightly run", || async {
        runs_by(&h, "schedule:nightly").await == 2
    })
    .await;
    assert_eq!(
        runs_by(&h, "schedule:hourly").await,
        3,
        "skip: nothing caught up"
    );
    let list = triggers(&h).await;
    let nightly_info = list
        .iter()
        .find(|x| x.trigger == "schedule:nightly")
        .unwrap();
    assert!(nightly_info.last_fired.is_some());

    // And on it goes.
    clock.set(t("2026-01-02T06:00:00Z"));
    let newest = h.runs(RunFilter::default()).await.unwrap()[0].id;
    let run = fired(&mut rx, "schedule:hourly", newest).await;
    wait_done(&h, &mut rx, run.id).await;
    assert_eq!(runs_by(&h, "schedule:hourly").await, 4);
    h.shutdown().await;
}
