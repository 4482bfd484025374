//! The dashboard's deployments (`:deployments`) and stations (`:stations`) views,
//! drawn into a `TestBackend` with fixed data; the operations' keys end in a
//! confirmation that says what changes, and a confirmed rollback goes to a real
//! engine as its typed request and moves real stations.

mod common;
#[path = "common/tui.rs"]
mod fixtures;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use fixtures::{NOW, draw, state};
use pipedeck::api::EngineClient;
use pipedeck::domain::release::{Release, ReleaseEnv, ReleaseStatus, ReleaseTrigger, StationInfo};
use pipedeck::domain::{Event, Request, RunStatus};
use pipedeck::tui::action::{Effect, ReleaseOp, Reply};
use pipedeck::tui::app::{AppState, Dialog, View};
use pipedeck::tui::keymap::Keymap;

fn press(s: &mut AppState, c: KeyCode) -> Option<Effect> {
    pipedeck::tui::update::on_key(s, &Keymap::default(), KeyEvent::new(c, KeyModifiers::NONE))
}

fn command(s: &mut AppState, view: &str) -> Option<Effect> {
    press(s, KeyCode::Char(':'));
    for c in view.chars() {
        press(s, KeyCode::Char(c));
    }
    press(s, KeyCode::Enter)
}

fn release(id: i64, env: ReleaseEnv, status: ReleaseStatus, sha: &str) -> Release {
    Release {
        id,
        run_id: id + 10,
        service: "web".into(),
        commit_sha: sha.into(),
        branch: if env == ReleaseEnv::Preview {
            "feature/login".into()
        } else {
            "main".into()
        },
        tag: None,
        environment: env,
        trigger: ReleaseTrigger::Auto,
        status,
        runtime: "sh".into(),
        platform: "linux-x86_64".into(),
        started_at: NOW - (5 - id) * 600_000,
        ended_at: Some(NOW - (5 - id) * 600_000 + 20_000),
        digest: (status == ReleaseStatus::Ready)
            .then(|| format!("sha256:{id}f0e1d2c3b4a5968778695a4b3c2d1e0f")),
        size: (status == ReleaseStatus::Ready).then_some(id as u64 * 1_300_000),
        promoted_from: None,
    }
}

fn station(name: &str, current: Option<i64>, pending: Option<i64>, pinned: bool) -> StationInfo {
    StationInfo {
        name: name.into(),
        service: "web".into(),
        follows: "branch main".into(),
        current,
        pending,
        pinned,
        jobs: 0,
        error: None,
        awaiting: None,
        switch_run: None,
    }
}

/// Four deployments (newest first) and three stations: edge-1 runs 3, edge-2
/// switches from 2 to 3 once its job ends, edge-3 is pinned to 2 and its last switch
/// failed (untrusted text with an escape).
fn deploys_state() -> AppState {
    let mut s = state();
    let mut edge2 = station("edge-2", Some(2), Some(3), false);
    edge2.jobs = 1;
    let mut edge3 = station("edge-3", Some(2), None, true);
    edge3.error = Some("activate failed: \u{1b}[31mexit 1\u{1b}[0m".into());
    s.apply_reply(Reply::Releases {
        releases: vec![
            release(4, ReleaseEnv::Preview, ReleaseStatus::Ready, "9a8b7c6d5e"),
            release(
                3,
                ReleaseEnv::Production,
                ReleaseStatus::Ready,
                "1a2b3c4d5e",
            ),
            release(
                2,
                ReleaseEnv::Production,
                ReleaseStatus::Ready,
                "0f1e2d3c4b",
            ),
            release(
                1,
                ReleaseEnv::Production,
                ReleaseStatus::Failed,
                "00aa11bb22",
            ),
        ],
        stations: vec![station("edge-1", Some(3), None, false), edge2, edge3],
    });
    s
}

fn both(name: &str, s: &AppState) {
    for (w, h) in [(80, 24), (160, 48)] {
        let screen = draw(s, w, h);
        assert!(!screen.contains('\u{1b}'), "no live escape sequences");
        insta::assert_snapshot!(format!("{name}_{w}x{h}"), screen);
    }
}

#[test]
fn the_deployments_view_lists_status_digest_size_and_where_each_runs() {
    let mut s = deploys_state();
    assert_eq!(command(&mut s, "deploys"), Some(Effect::LoadReleases));
    assert_eq!(s.view, View::Deployments);
    press(&mut s, KeyCode::Down);
    both("deployments", &s);
    let screen = draw(&s, 160, 48);
    assert!(screen.contains("3f0e1d2c3b4a"), "short digest: {screen}");
    assert!(screen.contains("edge-1, edge-2 (next)"), "{screen}");
    assert!(screen.contains("edge-2, edge-3 (pinned)"), "{screen}");
    // Enter opens the run that built it.
    assert_eq!(press(&mut s, KeyCode::Enter), Some(Effect::LoadDetail(13)));
}

#[test]
fn the_stations_view_shows_current_next_pinned_jobs_and_the_last_error() {
    let mut s = deploys_state();
    assert_eq!(command(&mut s, "stations"), Some(Effect::LoadReleases));
    assert_eq!(s.view, View::Stations);
    // Mark edge-2.
    press(&mut s, KeyCode::Down);
    press(&mut s, KeyCode::Char(' '));
    both("stations", &s);
    let screen = draw(&s, 160, 48);
    assert!(screen.contains("pending: 1 job in flight"), "{screen}");
    assert!(screen.contains("error: activate failed"), "{screen}");
    assert!(screen.contains("*edge-2"), "{screen}");
    // Unpin acts on the marked station.
    assert_eq!(press(&mut s, KeyCode::Char('u')), None);
    let Some(Dialog::Confirm { text, effect }) = &s.dialog else {
        panic!("no confirmation: {:?}", s.dialog);
    };
    assert!(text.starts_with("Unpin edge-2?"), "{text}");
    assert_eq!(
        *effect,
        Effect::Release(ReleaseOp::Unpin {
            stations: vec!["edge-2".into()]
        })
    );
}

#[test]
fn a_switch_at_a_station_group_gate_says_how_to_approve_it() {
    let mut s = deploys_state();
    let mut edge4 = station("edge-4", Some(2), Some(3), false);
    edge4.awaiting = Some(pipedeck::domain::GateInfo {
        id: 9,
        run_id: 13,
        env: "stations:edge".into(),
        status: pipedeck::domain::GateStatus::Waiting,
        opened_at: 0,
        expires_at: None,
        decided_by: None,
        decided_at: None,
        comment: None,
    });
    let mut list = s.deploys.stations.clone();
    list.push(edge4);
    s.deploys.stations = list;
    command(&mut s, "stations");
    let screen = draw(&s, 160, 48);
    assert!(
        screen.contains("pending: approval (pipedeck approve 13 stations:edge)"),
        "{screen}"
    );
}

#[test]
fn pin_promote_and_delete_ask_first_and_say_what_changes() {
    let mut s = deploys_state();
    command(&mut s, "stations");
    press(&mut s, KeyCode::Char(' '));
    press(&mut s, KeyCode::Down);
    press(&mut s, KeyCode::Down);
    press(&mut s, KeyCode::Char(' '));
    command(&mut s, "deployments");
    // Pin deployment 2 to the marked edge-1 and edge-3.
    press(&mut s, KeyCode::Down);
    press(&mut s, KeyCode::Down);
    assert_eq!(press(&mut s, KeyCode::Char('p')), None);
    both("pin_confirm", &s);
    assert_eq!(
        press(&mut s, KeyCode::Char('y')),
        Some(Effect::Release(ReleaseOp::Pin {
            release: 2,
            stations: vec!["edge-1".into(), "edge-3".into()]
        }))
    );
    // Deployment 2 is in use: the confirmation names who uses it.
    press(&mut s, KeyCode::Char('d'));
    let Some(Dialog::Confirm { text, .. }) = &s.dialog else {
        panic!("no confirmation");
    };
    assert!(text.contains("edge-2, edge-3 (pinned)"), "{text}");
    assert_eq!(press(&mut s, KeyCode::Char('n')), None);
    // Only a ready preview can be promoted: 2 is production.
    assert_eq!(press(&mut s, KeyCode::Char('P')), None);
    assert!(s.dialog.is_none());
    assert!(s.message.as_ref().is_some_and(|m| m.0));
    press(&mut s, KeyCode::Char('g'));
    press(&mut s, KeyCode::Char('P'));
    assert!(
        matches!(
            &s.dialog,
            Some(Dialog::Confirm {
                effect: Effect::Release(ReleaseOp::Promote { release: 4 }),
                ..
            })
        ),
        "{:?}",
        s.dialog
    );
    // A failed deployment cannot be pinned.
    press(&mut s, KeyCode::Esc);
    press(&mut s, KeyCode::Char('G'));
    press(&mut s, KeyCode::Char('p'));
    assert!(s.dialog.is_none());
}

#[test]
fn events_read_the_open_view_again() {
    let mut s = deploys_state();
    let r = release(
        5,
        ReleaseEnv::Production,
        ReleaseStatus::Building,
        "5555555555",
    );
    // Not on screen: kept, nothing read.
    assert_eq!(s.apply_event(Event::Release { release: r.clone() }), None);
    assert_eq!(s.deploys.releases[0].id, 5);
    command(&mut s, "stations");
    let ev = Event::Station {
        name: "edge-1".into(),
        current: Some(3),
        pending: Some(5),
        pinned: false,
        error: None,
    };
    // Opening the view asked for a read: while it is in flight, events only owe one more.
    assert_eq!(s.apply_event(ev.clone()), None);
    assert_eq!(s.deploys.stations[0].pending, Some(5));
    assert_eq!(s.apply_event(ev.clone()), None);
    let (releases, stations) = (s.deploys.releases.clone(), s.deploys.stations.clone());
    assert_eq!(
        s.apply_reply(Reply::Releases {
            releases: releases.clone(),
            stations: stations.clone()
        }),
        Some(Effect::LoadReleases)
    );
    // A failed read does not stop later ones.
    assert_eq!(s.apply_reply(Reply::ReleasesFailed), None);
    assert_eq!(s.apply_event(ev), Some(Effect::LoadReleases));
    assert_eq!(s.apply_reply(Reply::Releases { releases, stations }), None);
}

/// A confirmed rollback from the deployments view reaches the engine as
/// `Request::Rollback` and pins the real stations to the deployment before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_confirmed_rollback_sends_the_request_and_the_stations_go_back() {
    use common::*;
    // Two stations that follow main; each build writes its run id.
    let p = common::stations::project(false, "");
    let h = p.start().await;
    let mut rx = h.subscribe();
    let mut ids = vec![];
    for _ in 0..2 {
        let run = h.trigger(trigger("web")).await.unwrap();
        let done = wait_done(&h, &mut rx, run.id).await;
        assert_eq!(done.run.status, RunStatus::Succeeded, "{done:#?}");
        ids.push(run.id);
    }
    // Both stations run the newer release before it is rolled back (by event, bounded).
    loop {
        let now: Vec<StationInfo> = h.ask(Request::ListStations).await.unwrap();
        let rels: Vec<Release> = h
            .ask(Request::ListReleases {
                service: None,
                limit: None,
            })
            .await
            .unwrap();
        let newest = rels.iter().map(|r| r.id).max();
        if rels.len() == 2 && now.iter().all(|st| st.current == newest) {
            break;
        }
        wait_for(&mut rx, |e| matches!(e, Event::Station { .. })).await;
    }
    let (tx, mut replies) = tokio::sync::mpsc::unbounded_channel();
    let mut s = state();
    let load = command(&mut s, "deployments").expect("a load");
    pipedeck::tui::event_loop::execute(&h, load, tx.clone());
    let reply = tokio::time::timeout(std::time::Duration::from_secs(20), replies.recv())
        .await
        .expect("the releases in time")
        .expect("a reply");
    s.apply_reply(reply);
    let rels = s.deploys.releases.clone();
    assert_eq!(rels.len(), 2, "{rels:#?}");
    let (newer, older) = (rels[0].id, rels[1].id);
    assert_eq!(press(&mut s, KeyCode::Char('b')), None);
    let Some(Dialog::Confirm { text, .. }) = &s.dialog else {
        panic!("no confirmation: {:?}", s.dialog);
    };
    assert!(text.starts_with("Roll back web?"), "{text}");
    let effect = press(&mut s, KeyCode::Char('y')).expect("the rollback");
    assert_eq!(
        effect,
        Effect::Release(ReleaseOp::Rollback {
            service: "web".into()
        })
    );
    pipedeck::tui::event_loop::execute(&h, effect, tx);
    let reply = tokio::time::timeout(std::time::Duration::from_secs(20), replies.recv())
        .await
        .expect("the rollback's reply in time")
        .expect("a reply");
    let Reply::ReleaseDone(msg) = &reply else {
        panic!("{reply:?}");
    };
    assert!(msg.starts_with("rolled back web"), "{msg}");
    assert_eq!(s.apply_reply(reply), Some(Effect::LoadReleases));
    let now: Vec<StationInfo> = h.ask(Request::ListStations).await.unwrap();
    for st in &now {
        assert!(st.pinned, "{st:?}");
        assert!(
            st.pending == Some(older) || st.current == Some(older),
            "{st:?} should go from {newer} back to {older}"
        );
    }
    h.shutdown().await;
}

/// A rollout run (issue 18): the runs table marks it, and its detail names its
/// release and shows one row per station, a switch that waits for a job saying so.
#[test]
fn a_rollout_in_the_runs_table_and_its_detail() {
    use pipedeck::domain::{RunDetail, RunKind, Stage, StepStatus};
    let mut s = state();
    let mut run = fixtures::run(9, RunStatus::Running, "Add the login page", 30, 12);
    run.kind = RunKind::Rollout;
    run.release = Some(3);
    run.ended_at = None;
    s.apply_event(Event::Run { run: run.clone() });
    let screen = draw(&s, 160, 48);
    assert!(
        screen.contains("[rollout of release 3] Add the login page"),
        "{screen}"
    );

    let mut edge1 = fixtures::step(
        1,
        Stage::Switch,
        "edge-1",
        0,
        StepStatus::Succeeded,
        Some((30, 1)),
    );
    edge1.run_id = 9;
    edge1.outputs = Some(serde_json::json!({"station": "edge-1", "release": 3, "previous": 2}));
    let mut edge2 = fixtures::step(2, Stage::Switch, "edge-2", 1, StepStatus::Queued, None);
    edge2.run_id = 9;
    edge2.reason = Some("waits for 1 job in flight on station edge-2".into());
    s.detail = Some(RunDetail {
        run,
        steps: vec![edge1, edge2],
        gates: Vec::new(),
        graph: Vec::new(),
        chain: Default::default(),
    });
    s.view = View::Detail;
    insta::assert_snapshot!("rollout_detail_160x48", draw(&s, 160, 48));
}
