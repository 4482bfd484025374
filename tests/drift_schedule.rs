//! Drift schedules (issue 22, part 5) on a clock the test moves: an infra pipeline
//! with `drift = { every = "1h" }` is checked at exactly its times (never before),
//! each check is stored per resource, published and audited, and a restart after the
//! engine was down runs an overdue check once. A cron schedule takes its cron times.
//! (The Terraform side, drift found and notified, is tests/terraform_drift.rs.)

mod common;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use common::git::*;
use common::*;
use pipedeck::api::EngineClient;
use pipedeck::domain::Event;
use pipedeck::domain::drift::{DriftReport, DriftStatus};
use pipedeck::engine::{self, EngineHandle, triggers::ManualClock};

const PROJECT: &str = r#"
[environments.dev]

[infra.net]
environment = "dev"
drift = { every = "1h" }
[[infra.net.resources]]
id = "vpc"
kind = "script"
commands = { apply = "true" }

[infra.dns]
environment = "dev"
drift = { cron = "0 3 * * *" }
[[infra.dns.resources]]
id = "zone"
kind = "script"
commands = { apply = "true" }
"#;

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

async fn next(h: &EngineHandle, pipeline: &str) -> Option<i64> {
    triggers(h)
        .await
        .into_iter()
        .find(|x| x.service == pipeline && x.trigger == "drift")
        .and_then(|x| x.next_fire)
}

async fn until_next(h: &EngineHandle, pipeline: &str, at: &str) {
    let want = t(at).timestamp_millis();
    until(
        &format!("{pipeline}'s drift check next at {at}"),
        || async { next(h, pipeline).await == Some(want) },
    )
    .await;
}

async fn checked(rx: &mut tokio::sync::broadcast::Receiver<Event>, pipeline: &str) -> DriftReport {
    match wait_for(
        rx,
        |e| matches!(e, Event::Drift { report } if report.project == pipeline),
    )
    .await
    {
        Event::Drift { report } => report,
        _ => unreachable!(),
    }
}

async fn audited(h: &EngineHandle) -> usize {
    h.ask::<Vec<pipedeck::store::AuditEntry>>(pipedeck::domain::Request::AuditLog { limit: 1000 })
        .await
        .unwrap()
        .iter()
        .filter(|e| e.action == "drift_check" && e.actor == "schedule:drift")
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_checks_run_at_their_times_and_an_overdue_one_once_after_a_restart() {
    let p = TestProject::new(PROJECT);
    let clock = Arc::new(ManualClock::new(t("2026-01-01T00:30:00Z")));
    let (h, _task) = engine::start_with_clock(p.project(), &p.data_dir(), clock.clone())
        .await
        .unwrap();
    let mut rx = h.subscribe();
    until_next(&h, "net", "2026-01-01T01:30:00Z").await;
    until_next(&h, "dns", "2026-01-01T03:00:00Z").await;
    let listed = triggers(&h).await;
    let net = listed.iter().find(|x| x.service == "net").unwrap();
    assert_eq!(net.watches, "drift of infra net: every 1h00m (plan only)");
    assert_eq!(net.stopped, None);

    // Not due yet: nothing is checked.
    clock.set(t("2026-01-01T01:29:59Z"));
    until_next(&h, "net", "2026-01-01T01:30:00Z").await;
    assert!(h.drift_results(None).await.unwrap().is_empty());
    assert_eq!(audited(&h).await, 0);

    clock.set(t("2026-01-01T01:30:00Z"));
    let report = checked(&mut rx, "net").await;
    assert_eq!(report.resources.len(), 1);
    assert_eq!(report.resources[0].status, DriftStatus::NotChecked);
    until_next(&h, "net", "2026-01-01T02:30:00Z").await;
    let stored = h.drift_results(Some("net")).await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].resource, "vpc");
    assert_eq!(stored[0].status, DriftStatus::NotChecked);
    assert_eq!(audited(&h).await, 1);
    // A drift check is no run.
    assert!(h.runs(Default::default()).await.unwrap().is_empty());

    // The cron schedule takes its own time.
    // net was due at 02:30 too: the jump past it runs it once, late.
    clock.set(t("2026-01-01T03:00:00Z"));
    let mut seen = Vec::new();
    while seen.len() < 2 {
        if let Event::Drift { report } =
            wait_for(&mut rx, |e| matches!(e, Event::Drift { .. })).await
        {
            seen.push(report.project);
        }
    }
    seen.sort();
    assert_eq!(seen, ["dns", "net"]);
    until_next(&h, "dns", "2026-01-02T03:00:00Z").await;
    until_next(&h, "net", "2026-01-01T04:00:00Z").await;
    assert_eq!(audited(&h).await, 3);
    h.shutdown().await;
    drop(h);

    // Down for a day: net's checks (hourly) and dns's (03:00) fell due meanwhile; each
    // runs once, at once.
    let clock = Arc::new(ManualClock::new(t("2026-01-02T05:00:00Z")));
    let (h, _task) = engine::start_with_clock(p.project(), &p.data_dir(), clock.clone())
        .await
        .unwrap();
    until_next(&h, "net", "2026-01-02T06:00:00Z").await;
    until_next(&h, "dns", "2026-01-03T03:00:00Z").await;
    until("the two overdue checks", || async {
        audited(&h).await == 5
    })
    .await;
    let stored = h.drift_results(None).await.unwrap();
    assert_eq!(stored.len(), 2, "{stored:#?}");
    h.shutdown().await;
}

#[test]
fn a_drift_schedule_is_one_of_every_and_cron() {
    let bad = |drift: &str| {
        let text =
            format!("[environments.dev]\n[infra.net]\nenvironment = \"dev\"\ndrift = {drift}\n");
        let errs =
            pipedeck::config::parse_project(std::path::Path::new("p.toml"), &text).unwrap_err();
        errs.iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    };
    let e = bad("{}");
    assert!(
        e.contains("p.toml:") && e.contains("infra.net.drift needs exactly one of every and cron"),
        "{e}"
    );
    let e = bad("{ every = \"1h\", cron = \"0 * * * *\" }");
    assert!(e.contains("needs exactly one of every and cron"), "{e}");
    let e = bad("{ every = \"5s\" }");
    assert!(e.contains("p.toml:4:") && e.contains("drift.every"), "{e}");
    let e = bad("{ cron = \"soon\" }");
    assert!(e.contains("`soon` is not a cron expression"), "{e}");
    let e = bad("{ cron = \"0 3 * * *\", timezone = \"Mars/Olympus\" }");
    assert!(e.contains("`Mars/Olympus` is not a time zone"), "{e}");
}

/// `pipedeck infra drift PROJECT --last` shows what the latest check stored, through
/// the real binary and a served engine.
#[test]
fn the_last_check_is_shown_from_the_command_line() {
    use common::bin::{json, run_ok, serve};
    let p = TestProject::new(PROJECT);
    let _engine = serve(&p);
    let none = run_ok(&p, &["infra", "drift", "net", "--last"]);
    assert_eq!(
        none.trim(),
        "net has not been checked for drift yet (pipedeck infra drift net checks now)"
    );
    let now = run_ok(&p, &["infra", "drift", "net"]);
    assert!(now.contains("vpc              not_checked"), "{now}");
    let last = run_ok(&p, &["infra", "drift", "net", "--last"]);
    assert!(
        last.starts_with("  vpc              not_checked   ")
            && last.contains("command driver: only terraform/tofu resources are checked"),
        "{last}"
    );
    let stored = json(&p, &["infra", "drift", "net", "--last"]);
    assert_eq!(stored[0]["resource"], "vpc");
    assert_eq!(stored[0]["status"], "not_checked");
    assert!(stored[0]["checked_at"].as_i64().unwrap() > 0);
}
