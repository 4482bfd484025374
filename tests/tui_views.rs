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

/// Steps on Slurm (issue 20), as their live changes come: the job id under each and
/// in the log's title; a job still waiting in the cluster's queue shows as queued,
/// with Slurm's reason.
#[test]
fn run_detail_shows_slurm_jobs_queued_and_running() {
    use pipedeck::domain::{Event, StepStatus};
    let mut s = detail_state();
    let d = s.detail.clone().unwrap();
    let mut test = d.steps[2].clone();
    test.status = StepStatus::Running;
    test.ended_at = None;
    test.slurm_job = Some(4242);
    let mut dev = d.steps[3].clone();
    dev.status = StepStatus::Queued;
    dev.reason = Some("in Slurm's queue (Resources)".into());
    (dev.started_at, dev.ended_at) = (None, None);
    dev.slurm_job = Some(4243);
    s.apply_event(Event::Step { step: test });
    s.apply_event(Event::Step { step: dev });
    both("detail_slurm", &s);
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

/// `:audit`: the audit log, refusals with their reasons, every field sanitised (an
/// actor or comment with escape sequences prints inert); it opens at the newest
/// entry and scrolls.
#[test]
fn audit_log_view_from_the_command_line() {
    use pipedeck::store::AuditEntry;
    use pipedeck::tui::action::Effect;
    let mut s = state();
    key(&mut s, KeyCode::Char(':'));
    for c in "audit".chars() {
        key(&mut s, KeyCode::Char(c));
    }
    let effect = pipedeck::tui::update::on_key(
        &mut s,
        &pipedeck::tui::keymap::Keymap::default(),
        crossterm::event::KeyEvent::new(KeyCode::Enter, crossterm::event::KeyModifiers::NONE),
    );
    assert_eq!(effect, Some(Effect::LoadAudit));
    assert_eq!(s.view, View::Audit);
    let entry =
        |i: i64, actor: &str, action: &str, run: i64, target: &str, comment: &str| AuditEntry {
            at: NOW - 60_000 * (40 - i),
            actor: actor.into(),
            action: action.into(),
            run_id: run,
            target: (!target.is_empty()).then(|| target.into()),
            comment: (!comment.is_empty()).then(|| comment.into()),
        };
    let mut entries = vec![
        entry(0, "alice", "trigger", 7, "", ""),
        entry(
            1,
            "carol",
            "refused",
            AuditEntry::NO_RUN,
            "trigger web",
            "carol may not trigger runs: role viewer, needs operator (roles: [access] in the project file)",
        ),
        entry(
            2,
            "alice",
            "refused",
            7,
            "approve prod",
            "alice may not approve prod: alice triggered run 7 and prod forbids self-approval",
        ),
        entry(
            3,
            "unknown (10.0.0.9, over TCP)",
            "refused",
            AuditEntry::NO_RUN,
            "POST /v1/request",
            "missing, wrong or revoked token (`pipedeck token create` makes one)",
        ),
        entry(
            4,
            "m\x1b[31mallory\x1b]0;owned\x07",
            "approve",
            7,
            "prod",
            "ship \u{202e}it\x1b[5m",
        ),
    ];
    for i in 5..40 {
        entries.push(entry(i, "bob", "cancel", 100 + i, "", ""));
    }
    s.apply_reply(Reply::Audit(entries));
    // Opened at the newest; `g` goes to the oldest.
    assert_eq!(s.audit_sel, 39);
    both("audit_newest", &s);
    key(&mut s, KeyCode::Char('g'));
    both("audit_oldest", &s);
    let screen = draw(&s, 160, 48);
    assert!(!screen.contains('\x1b') && !screen.contains('\u{202e}'));
    key(&mut s, KeyCode::Esc);
    assert_eq!(s.view, View::Runs);
}

/// A drift check found `lb` drifted: its box in the DAG view says `[drift]`, the head
/// names it with its plan summary, and in the runs table the pipeline's newest infra
/// run carries `[drift: …]`; a targeted stack job carries `[targeted: …]`.
#[test]
fn drift_and_targeted_markers() {
    use pipedeck::domain::drift::{DriftReport, DriftStatus, ResourceDrift};
    use pipedeck::domain::{Event, Operation, RunKind, RunStatus};
    let mut s = infra_state();
    s.apply_event(Event::Drift {
        report: DriftReport {
            project: "aws-staging".into(),
            environment: "staging".into(),
            checked_at: fixtures::NOW - 300_000,
            elapsed_ms: 900,
            resources: vec![
                ResourceDrift {
                    resource: "lb".into(),
                    status: DriftStatus::Drifted,
                    summary: Some(serde_json::json!({"add": 0, "change": 1, "destroy": 0,
                        "changes": [{"address": "terraform_data.lb", "action": "update"}]})),
                    detail: None,
                    elapsed_ms: 400,
                },
                ResourceDrift {
                    resource: "vpc".into(),
                    status: DriftStatus::InSync,
                    summary: None,
                    detail: None,
                    elapsed_ms: 400,
                },
            ],
        },
    });
    both("graph_drift", &s);
    let mut job = fixtures::run(
        9,
        RunStatus::Succeeded,
        "stack job: update db in staging",
        20,
        4,
    );
    job.kind = RunKind::StackJob;
    job.service = "aws-staging".into();
    job.branch = String::new();
    job.commit_sha = String::new();
    job.environment = Some("staging".into());
    job.resource = Some("db".into());
    job.operation = Some(Operation::Apply);
    job.targets =
        pipedeck::domain::target::parse_all(&["module.pg.terraform_data.main".into()]).unwrap();
    s.apply_event(Event::Run { run: job.clone() });
    s.view = View::Runs;
    both("runs_drift_targeted", &s);

    // The targeted job's own view says so in its title.
    let mut res = fixtures::step(
        200,
        pipedeck::domain::Stage::Resource,
        "db",
        0,
        pipedeck::domain::StepStatus::Succeeded,
        Some((20, 4)),
    );
    res.run_id = 9;
    let mut op = fixtures::step(
        201,
        pipedeck::domain::Stage::Operation,
        "db.apply",
        1,
        pipedeck::domain::StepStatus::Succeeded,
        Some((18, 2)),
    );
    op.run_id = 9;
    op.parent_id = Some(200);
    s.detail = Some(pipedeck::domain::RunDetail {
        run: job,
        steps: vec![res, op],
        gates: Vec::new(),
        graph: Vec::new(),
        chain: Default::default(),
    });
    s.view = View::Detail;
    let screen = fixtures::draw(&s, 120, 30);
    assert!(
        screen.contains(
            "stack job: update db (targeted: module.pg.terraform_data.main) in aws-staging@staging"
        ),
        "{screen}"
    );
}
