//! Snapshots of every view and dialog at 80x24 and 160x48, with a fixed clock and data.

use crossterm::event::KeyCode;
use pipedeck::domain::{EnvQueue, QueueEntry, QueueKey, QueuePolicy, QueueState};
use pipedeck::tui::action::Reply;
use pipedeck::tui::app::{AppState, View};

#[path = "common/tui.rs"]
mod fixtures;
use fixtures::*;

fn both(name: &str, s: &AppState) {
    insta::assert_snapshot!(format!("{name}_80x24"), draw(s, 80, 24));
    insta::assert_snapshot!(format!("{name}_160x48"), draw(s, 160, 48));
}

#[test]
fn runs_table() {
    let mut s = state();
    s.runs_sel = 2;
    both("runs", &s);
}

#[test]
fn runs_table_filtered_and_ascii_without_colour() {
    let mut s = state();
    s.ascii = true;
    s.color = false;
    key(&mut s, KeyCode::Char('/'));
    for c in "web".chars() {
        key(&mut s, KeyCode::Char(c));
    }
    both("runs_filtered_ascii", &s);
}

#[test]
fn run_detail_with_log() {
    both("detail", &detail_state());
}

#[test]
fn run_detail_timestamps_streams_and_search() {
    let mut s = detail_state();
    key(&mut s, KeyCode::Char('T'));
    key(&mut s, KeyCode::Char('s'));
    key(&mut s, KeyCode::Char('/'));
    for c in "module_1".chars() {
        key(&mut s, KeyCode::Char(c));
    }
    key(&mut s, KeyCode::Enter);
    both("detail_search", &s);
}

#[test]
fn approvals_inbox() {
    let mut s = state();
    s.view = View::Approvals;
    both("approvals", &s);
}

/// Issue 24: each environment's queue under its deploy row, under the inbox's table
/// for the selected gate, and a rerun that would roll back asks again, saying so.
#[test]
fn deploy_queues_and_the_rollback_confirmation() {
    let queue = |env: &str, entries: &[(i64, QueueState)]| EnvQueue {
        key: QueueKey {
            service: "web".into(),
            env: env.into(),
        },
        policy: QueuePolicy::All,
        entries: entries
            .iter()
            .map(|&(run_id, state)| QueueEntry {
                run_id,
                commit_sha: format!("{:x}{}", run_id * 0x1234567, "0".repeat(33)),
                state,
            })
            .collect(),
    };
    let queues = vec![
        queue("dev", &[(7, QueueState::Current), (8, QueueState::Waiting)]),
        queue(
            "prod",
            &[
                (2, QueueState::Current),
                (7, QueueState::AtGate),
                (8, QueueState::OnItsWay),
                (5, QueueState::Superseded),
            ],
        ),
    ];
    let mut s = detail_state();
    s.queues = queues.clone();
    both("detail_queues", &s);
    let mut s = state();
    s.view = View::Approvals;
    s.queues = queues;
    both("approvals_queues", &s);
    let mut s = state();
    s.apply_reply(Reply::Older {
        run: 5,
        why: "a rerun of run 5 (5b05b23) would deploy an older commit than dev runs 7f6e5d4 \
              (run 6); pass --allow-older to roll back on purpose"
            .into(),
    });
    both("dialog_rollback", &s);
}

#[test]
fn dialogs() {
    let mut s = state();
    key(&mut s, KeyCode::Char('c'));
    both("dialog_cancel", &s);

    let mut s = state();
    key(&mut s, KeyCode::Char('t'));
    key(&mut s, KeyCode::Tab);
    for c in "release".chars() {
        key(&mut s, KeyCode::Char(c));
    }
    both("dialog_trigger", &s);

    let mut s = state();
    s.view = View::Approvals;
    key(&mut s, KeyCode::Char('x'));
    for c in "not during the freeze".chars() {
        key(&mut s, KeyCode::Char(c));
    }
    both("dialog_reject_comment", &s);
    key(&mut s, KeyCode::Enter);
    both("dialog_reject_confirm", &s);

    let mut s = state();
    key(&mut s, KeyCode::Char(':'));
    for c in "appr".chars() {
        key(&mut s, KeyCode::Char(c));
    }
    both("dialog_jump", &s);

    let mut s = state();
    key(&mut s, KeyCode::Char('q'));
    both("dialog_quit", &s);

    let mut s = state();
    key(&mut s, KeyCode::Char('?'));
    both("help", &s);

    let mut s = detail_state();
    key(&mut s, KeyCode::Char('?'));
    both("help_detail", &s);
}

#[test]
fn too_small_terminals_get_a_message_and_never_panic() {
    let s = detail_state();
    insta::assert_snapshot!("too_small", draw(&s, 60, 10));
    for (w, h) in [(1, 1), (2, 1), (79, 24), (80, 23), (0, 0)] {
        let _ = draw(&s, w, h);
    }
}

#[test]
fn infra_graph_view_and_navigation() {
    let mut s = infra_state();
    both("graph", &s);
    // l moves right from vpc, j down within a layer, enter opens the node's stack job.
    key(&mut s, KeyCode::Char('l'));
    key(&mut s, KeyCode::Char('j'));
    key(&mut s, KeyCode::Char('l'));
    assert_eq!(s.detail.as_ref().unwrap().graph[s.graph_sel].id, "db");
    key(&mut s, KeyCode::Char('a'));
    assert!(
        matches!(&s.dialog, Some(pipedeck::tui::app::Dialog::Comment { env, .. }) if env == "staging/db")
    );
    key(&mut s, KeyCode::Esc);
    key(&mut s, KeyCode::Enter);
    assert_eq!(s.view, View::Detail);
    both("infra_detail", &s);
    key(&mut s, KeyCode::Esc);
    assert_eq!(s.view, View::Graph);
}
