//! The read model's unit tests (and the run the dashboard's tests use).
use super::*;
use crate::domain::{RunKind, RunStatus, RunType, Trigger};

/// A service run as the dashboard's tests use it.
pub(crate) fn run(id: i64, status: RunStatus) -> RunInfo {
    RunInfo {
        id,
        kind: RunKind::Service,
        service: "web".into(),
        run_type: RunType::Production,
        trigger: Trigger::Manual,
        branch: "main".into(),
        tag: None,
        commit_sha: "abcdef0123".into(),
        commit_message: "msg".into(),
        author: "a".into(),
        triggered_by: "a".into(),
        status,
        reason: None,
        created_at: 0,
        started_at: Some(0),
        ended_at: None,
        rerun_of: None,
        attempt: 1,
        environment: None,
        resource: None,
        operation: None,
        state_op: None,
        targets: Vec::new(),
        release: None,
    }
}

fn detail(id: i64) -> Reply {
    Reply::Detail(Box::new(RunDetail {
        run: run(id, RunStatus::Running),
        steps: vec![],
        gates: vec![],
        graph: vec![],
        chain: Default::default(),
    }))
}

#[test]
fn the_detail_of_a_run_no_longer_open_is_dropped() {
    let mut s = AppState::new(vec![], false, "/d".into());
    assert_eq!(s.open_detail(1), Effect::LoadDetail(1));
    assert_eq!(s.open_detail(2), Effect::LoadDetail(2));
    s.apply_reply(detail(1));
    assert!(s.detail.is_none());
    s.apply_reply(detail(2));
    assert_eq!(s.detail.as_ref().map(|d| d.run.id), Some(2));
}

#[test]
fn events_during_a_reload_are_applied_over_its_snapshot() {
    let mut s = AppState::new(vec![], false, "/d".into());
    s.runs = vec![run(1, RunStatus::Running)];
    assert_eq!(s.reload(), Effect::Reload { detail: None });
    // Run 1 ends and run 2 starts while the (older) snapshot is on its way.
    s.apply_event(Event::Run {
        run: run(1, RunStatus::Succeeded),
    });
    s.apply_event(Event::Run {
        run: run(2, RunStatus::Running),
    });
    s.apply_reply(Reply::Reloaded {
        runs: Some(vec![run(1, RunStatus::Running)]),
        gates: None,
    });
    let shown: Vec<(i64, RunStatus)> = s.visible_runs().iter().map(|r| (r.id, r.status)).collect();
    assert_eq!(shown, [(2, RunStatus::Running), (1, RunStatus::Succeeded)]);
    assert!(!s.reloading);
}

#[test]
fn the_table_rows_follow_every_change_to_the_runs() {
    let mut s = AppState::new(vec![], false, "/d".into());
    s.runs = vec![run(2, RunStatus::Running), run(1, RunStatus::Failed)];
    s.filter = "fail".into();
    assert_eq!(s.visible_len(), 1);
    s.apply_event(Event::Run {
        run: run(2, RunStatus::Failed),
    });
    assert_eq!(s.visible_len(), 2);
    s.runs[0].status = RunStatus::Succeeded;
    s.touch_runs();
    assert_eq!(s.visible_len(), 1);
    s.runs = vec![run(3, RunStatus::Failed)];
    assert_eq!(s.selected_run().map(|r| r.id), Some(3));
}
