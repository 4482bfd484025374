//! The dashboard's state view (issue 22 part 3), drawn into a `TestBackend`: opened
//! from a node of the infra DAG, it lists the resource's state through a state job,
//! marks several addresses, and a change waits behind a confirmation that names each
//! before it goes out as a typed state job; the job's log is a key away.

mod common;
#[path = "common/tui.rs"]
mod fixtures;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use fixtures::{NOW, draw, infra_state, run, step};
use pipedeck::domain::state_op::{Address, StateOp};
use pipedeck::domain::{Event, RunDetail, RunKind, RunStatus, Stage, StepStatus};
use pipedeck::tui::action::{Effect, Reply};
use pipedeck::tui::app::{AppState, Dialog, View};
use pipedeck::tui::keymap::Keymap;

fn press(s: &mut AppState, c: KeyCode) -> Option<Effect> {
    pipedeck::tui::update::on_key(s, &Keymap::default(), KeyEvent::new(c, KeyModifiers::NONE))
}

/// A state job of `db` as the engine reports it.
fn job(id: i64, op: StateOp, status: RunStatus) -> pipedeck::domain::RunInfo {
    let mut r = run(id, status, "state job", 5, 2);
    r.kind = RunKind::StackJob;
    r.service = "aws-staging".into();
    r.environment = Some("staging".into());
    r.resource = Some("db".into());
    r.operation = Some(pipedeck::domain::Operation::State);
    r.state_op = Some(op);
    r
}

/// The list job's detail: its state step's outputs hold the addresses.
fn listed(id: i64, addresses: &[&str]) -> RunDetail {
    let mut st = step(
        id * 10,
        Stage::Operation,
        "db.state",
        2,
        StepStatus::Succeeded,
        Some((5, 2)),
    );
    st.run_id = id;
    st.outputs = Some(serde_json::json!({ "addresses": addresses }));
    let mut r = job(id, StateOp::List, RunStatus::Succeeded);
    r.ended_at = Some(NOW - 3_000);
    RunDetail {
        run: r,
        steps: vec![st],
        gates: Vec::new(),
        graph: Vec::new(),
        chain: Default::default(),
    }
}

/// The DAG with db selected, `S` pressed, and the list job done.
fn listed_state() -> AppState {
    let mut s = infra_state();
    s.graph_sel = 3;
    let e = press(&mut s, KeyCode::Char('S'));
    assert_eq!(
        e,
        Some(Effect::StateJob {
            project: Some("aws-staging".into()),
            resource: "db".into(),
            op: StateOp::List
        })
    );
    assert_eq!(s.view, View::State);
    assert_eq!(
        s.apply_reply(Reply::StateStarted(Box::new(job(
            12,
            StateOp::List,
            RunStatus::Running
        )))),
        None
    );
    assert_eq!(s.state.status, "listing (job 12)…");
    // The list job ends: its detail is read.
    let e = s.apply_event(Event::Run {
        run: job(12, StateOp::List, RunStatus::Succeeded),
    });
    assert_eq!(e, Some(Effect::LoadStateList(12)));
    s.apply_reply(Reply::StateListed(Box::new(listed(
        12,
        &[
            "module.params.terraform_data.params",
            "terraform_data.db",
            "terraform_data.replica[\"eu-west-1\"]",
        ],
    ))));
    s
}

#[test]
fn the_state_view_lists_marks_and_confirms_naming_each_address() {
    let mut s = listed_state();
    insta::assert_snapshot!("state_listed_80x24", draw(&s, 80, 24));

    // Mark two, then taint: the confirmation names both.
    press(&mut s, KeyCode::Char(' '));
    press(&mut s, KeyCode::Char('j'));
    press(&mut s, KeyCode::Char('j'));
    press(&mut s, KeyCode::Char(' '));
    assert_eq!(press(&mut s, KeyCode::Char('t')), None);
    let Some(Dialog::Confirm { text, .. }) = &s.dialog else {
        panic!("no confirmation: {:?}", s.dialog);
    };
    assert!(
        text.starts_with(
            "Taint 2 resources in the state of db: module.params.terraform_data.params, \
             terraform_data.replica[\"eu-west-1\"]?"
        ),
        "{text}"
    );
    insta::assert_snapshot!("state_taint_confirm_80x24", draw(&s, 80, 24));
    // `n` keeps everything as it was.
    assert_eq!(press(&mut s, KeyCode::Char('n')), None);
    assert!(s.dialog.is_none());
    press(&mut s, KeyCode::Char('t'));
    let e = press(&mut s, KeyCode::Char('y'));
    let want = StateOp::Taint {
        addresses: vec![
            Address::parse("module.params.terraform_data.params").unwrap(),
            Address::parse("terraform_data.replica[\"eu-west-1\"]").unwrap(),
        ],
    };
    assert_eq!(
        e,
        Some(Effect::StateJob {
            project: Some("aws-staging".into()),
            resource: "db".into(),
            op: want.clone()
        })
    );

    // The change runs as job 13; when it succeeds the view lists again.
    s.apply_reply(Reply::StateStarted(Box::new(job(
        13,
        want.clone(),
        RunStatus::Queued,
    ))));
    let mut done = job(13, want, RunStatus::Succeeded);
    done.ended_at = Some(NOW);
    let e = s.apply_event(Event::Run { run: done });
    assert_eq!(
        e,
        Some(Effect::StateJob {
            project: Some("aws-staging".into()),
            resource: "db".into(),
            op: StateOp::List
        })
    );
    assert!(s.state.marked.is_empty());
    insta::assert_snapshot!("state_after_taint_80x24", draw(&s, 80, 24));
    // `enter`: the change job's log.
    assert_eq!(press(&mut s, KeyCode::Enter), Some(Effect::LoadDetail(13)));
    assert_eq!(s.view, View::Detail);
}

#[test]
fn remove_and_untaint_act_on_the_selection_and_a_failed_list_says_why() {
    let mut s = listed_state();
    press(&mut s, KeyCode::Char('j'));
    press(&mut s, KeyCode::Char('d'));
    let Some(Dialog::Confirm { text, effect }) = &s.dialog else {
        panic!("no confirmation");
    };
    assert!(
        text.starts_with("Remove from the state 1 resource in the state of db: terraform_data.db?")
            && text.contains("the real objects stay"),
        "{text}"
    );
    assert!(
        matches!(effect, Effect::StateJob { op: StateOp::Rm { addresses }, .. } if addresses.len() == 1)
    );
    press(&mut s, KeyCode::Esc);
    press(&mut s, KeyCode::Char('u'));
    assert!(matches!(
        &s.dialog,
        Some(Dialog::Confirm {
            effect: Effect::StateJob {
                op: StateOp::Untaint { .. },
                ..
            },
            ..
        })
    ));
    press(&mut s, KeyCode::Char('n'));

    // `r` lists again; this time the job fails on a lock, and the view says so.
    assert!(matches!(
        press(&mut s, KeyCode::Char('r')),
        Some(Effect::StateJob {
            op: StateOp::List,
            ..
        })
    ));
    s.apply_reply(Reply::StateStarted(Box::new(job(
        14,
        StateOp::List,
        RunStatus::Running,
    ))));
    let mut failed = listed(14, &[]);
    failed.run.status = RunStatus::Failed;
    failed.steps[0].status = StepStatus::Failed;
    failed.steps[0].outputs = None;
    failed.steps[0].reason = Some(
        "the state is locked, held by alice@ops1 (OperationTypeApply since 2026-12-02 07:23:42 UTC), lock id 11-22; nothing was changed (if that lock is stale, an admin can release it: pipedeck stack-job unlock db 11-22)\u{1b}]0;x\u{7}".into(),
    );
    s.apply_reply(Reply::StateListed(Box::new(failed)));
    assert!(
        s.state
            .status
            .starts_with("list job 14 failed: the state is locked, held by alice@ops1"),
        "{}",
        s.state.status
    );
    assert!(!s.state.status.contains('\u{1b}'));
    // The last good list stays on screen.
    assert_eq!(s.state.len(), 3);
    insta::assert_snapshot!("state_list_failed_80x24", draw(&s, 80, 24));
}

#[test]
fn a_stack_job_stopped_by_a_lock_shows_its_holder_in_its_header() {
    let mut s = fixtures::state();
    let mut r = job(15, StateOp::List, RunStatus::Failed);
    r.state_op = None;
    r.operation = Some(pipedeck::domain::Operation::Apply);
    r.reason = Some("resource/db failed".into());
    let mut res = step(
        150,
        Stage::Resource,
        "db",
        0,
        StepStatus::Failed,
        Some((9, 2)),
    );
    let mut init = step(
        151,
        Stage::Operation,
        "db.init",
        1,
        StepStatus::Succeeded,
        Some((9, 1)),
    );
    let mut refresh = step(
        152,
        Stage::Operation,
        "db.refresh",
        2,
        StepStatus::Failed,
        Some((8, 1)),
    );
    for st in [&mut res, &mut init, &mut refresh] {
        st.run_id = 15;
    }
    init.parent_id = Some(150);
    refresh.parent_id = Some(150);
    refresh.reason = Some(
        "the state is locked, held by alice@ops1 (OperationTypeApply since 2026-12-02 07:23:42 UTC), lock id 11-22; nothing was changed (if that lock is stale, an admin can release it: pipedeck stack-job unlock db 11-22)".into(),
    );
    s.runs.insert(0, r.clone());
    s.view = View::Detail;
    s.wanted_detail = Some(15);
    s.apply_reply(Reply::Detail(Box::new(RunDetail {
        run: r,
        steps: vec![res, init, refresh],
        gates: Vec::new(),
        graph: Vec::new(),
        chain: Default::default(),
    })));
    let screen = draw(&s, 120, 30);
    assert!(
        screen.contains("│the state is locked, held by alice@ops1 (OperationTypeApply since 2026-12-02 07:23:42 UTC), lock id 11-22"),
        "{screen}"
    );
    insta::assert_snapshot!("stack_job_locked_120x30", screen);
}
