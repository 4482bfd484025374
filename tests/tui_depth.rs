//! Issue 19, the dashboard's depth: the run tree (collapsible, ASCII), and the
//! dialogs and views built on it, as snapshots at 80x24 and 160x48.

use crossterm::event::KeyCode;
use pipedeck::tui::app::{AppState, NodeId, View};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

#[path = "common/tui.rs"]
mod fixtures;
use fixtures::*;

fn both(name: &str, s: &AppState) {
    insta::assert_snapshot!(format!("{name}_80x24"), draw(s, 80, 24));
    insta::assert_snapshot!(format!("{name}_160x48"), draw(s, 160, 48));
}

#[test]
fn run_tree_expanded_and_collapsed() {
    let mut s = infra_state();
    // To db in the DAG (as in tui_views), then its stack job.
    for c in ['l', 'j', 'l'] {
        key(&mut s, KeyCode::Char(c));
    }
    key(&mut s, KeyCode::Enter);
    assert_eq!(s.view, View::Detail);
    assert_eq!(s.selected_step().map(|x| x.name.as_str()), Some("db"));
    both("tree_expanded", &s);
    // h collapses db; k, k, h collapse subnet-private's operations too (k walks
    // the visible nodes: subnet-private's apply, then subnet-private).
    key(&mut s, KeyCode::Char('h'));
    for _ in 0..4 {
        key(&mut s, KeyCode::Char('k'));
    }
    assert_eq!(
        s.selected_step().map(|x| x.name.as_str()),
        Some("subnet-private")
    );
    key(&mut s, KeyCode::Char('h'));
    both("tree_collapsed", &s);
    // Space on the section collapses everything; l opens it again.
    key(&mut s, KeyCode::Char('h'));
    key(&mut s, KeyCode::Char(' '));
    assert_eq!(s.visible_nodes().len(), 1);
    key(&mut s, KeyCode::Char('l'));
    assert_eq!(s.visible_nodes().len(), 1 + 6 + 4 * 3);
    // ASCII glyphs, no colour.
    s.ascii = true;
    s.color = false;
    both("tree_ascii", &s);
}

#[test]
fn a_click_selects_the_tree_node_under_it() {
    let mut s = detail_state();
    s.screen_height = 24;
    let km = pipedeck::tui::keymap::Keymap::default();
    let mut t = Terminal::new(TestBackend::new(80, 24)).unwrap();
    t.draw(|f| pipedeck::tui::views::render(f, &s, &km))
        .unwrap();
    // Row 5 is the tree's first row (title bar, the run header's three, the border).
    pipedeck::tui::update::click(&mut s, 6, 5);
    assert_eq!(
        s.tree.selected,
        vec![NodeId::Section(pipedeck::domain::Stage::Build)]
    );
    let e = pipedeck::tui::update::click(&mut s, 6, 7);
    assert_eq!(s.selected_step().map(|x| x.name.as_str()), Some("compile"));
    assert!(e.is_some(), "the log pane loads the clicked step's log");
    // A click on the log pane leaves the selection alone.
    pipedeck::tui::update::click(&mut s, 60, 7);
    assert_eq!(s.selected_step().map(|x| x.name.as_str()), Some("compile"));
}

#[test]
fn the_trigger_dialog_starts_every_run_kind() {
    use pipedeck::domain::Operation;
    use pipedeck::tui::action::Effect;
    let with_catalog = || {
        let mut s = state();
        s.infra = vec!["aws-staging".into()];
        s.resources = vec!["vpc".into(), "db".into()];
        s
    };
    // Kind row, one right: an infra pipeline, then its action: undeploy.
    let mut s = with_catalog();
    key(&mut s, KeyCode::Char('t'));
    key(&mut s, KeyCode::Up);
    key(&mut s, KeyCode::Right);
    key(&mut s, KeyCode::Down);
    key(&mut s, KeyCode::Down);
    key(&mut s, KeyCode::Right);
    both("trigger_infra", &s);
    let e = pipedeck::tui::update::on_key(
        &mut s,
        &pipedeck::tui::keymap::Keymap::default(),
        crossterm::event::KeyEvent::from(KeyCode::Enter),
    );
    assert_eq!(e, None, "undeploy asks first");
    both("trigger_undeploy_confirm", &s);
    // Kind row, one left: a stack job; the second resource, update.
    let mut s = with_catalog();
    key(&mut s, KeyCode::Char('t'));
    key(&mut s, KeyCode::Up);
    key(&mut s, KeyCode::Left);
    key(&mut s, KeyCode::Down);
    key(&mut s, KeyCode::Right);
    key(&mut s, KeyCode::Down);
    key(&mut s, KeyCode::Right);
    both("trigger_stack_job", &s);
    let e = pipedeck::tui::update::on_key(
        &mut s,
        &pipedeck::tui::keymap::Keymap::default(),
        crossterm::event::KeyEvent::from(KeyCode::Enter),
    );
    assert_eq!(
        e,
        Some(Effect::TriggerStackJob {
            resource: "db".into(),
            operation: Operation::Apply
        })
    );
}

/// A stack job of db: its operations with status and duration, the plan summary,
/// and the saved plan (the preview's log) in the log pane.
fn stack_job_state() -> AppState {
    use pipedeck::domain::{
        GateInfo, GateStatus, Operation, RunDetail, RunKind, RunStatus, Stage, StepStatus,
    };
    use pipedeck::tui::action::Reply;
    let mut s = state();
    let mut r = run(9, RunStatus::AwaitingApproval, "", 20, 0);
    r.kind = RunKind::StackJob;
    r.service = "aws-staging".into();
    r.environment = Some("staging".into());
    r.resource = Some("db".into());
    r.operation = Some(Operation::Apply);
    r.commit_sha = String::new();
    s.runs.insert(0, r.clone());
    let mut steps = vec![step(
        90,
        Stage::Resource,
        "db",
        0,
        StepStatus::AwaitingApproval,
        Some((20, 0)),
    )];
    steps[0].ended_at = None;
    for (j, (op, status)) in [
        ("init", StepStatus::Succeeded),
        ("refresh", StepStatus::Succeeded),
        ("preview", StepStatus::Succeeded),
        ("apply", StepStatus::AwaitingApproval),
    ]
    .into_iter()
    .enumerate()
    {
        let j = j as i64;
        let secs = (status == StepStatus::Succeeded).then_some((20 - j * 4, 3 + j));
        let mut o = step(
            91 + j,
            Stage::Operation,
            &format!("db.{op}"),
            1 + j,
            status,
            secs,
        );
        o.parent_id = Some(90);
        if op == "preview" {
            o.outputs = Some(serde_json::json!({
                "add": 1, "change": 0, "destroy": 0,
                "changes": [{"action": "create", "address": "terraform_data.db"}]
            }));
        }
        steps.push(o);
    }
    for st in &mut steps {
        st.run_id = 9;
    }
    let gate = GateInfo {
        id: 11,
        run_id: 9,
        env: "staging/db/apply".into(),
        status: GateStatus::Waiting,
        opened_at: NOW - 8_000,
        expires_at: None,
        decided_by: None,
        decided_at: None,
        comment: None,
    };
    s.gates.push(gate.clone());
    s.wanted_detail = Some(9);
    s.apply_reply(Reply::Detail(Box::new(RunDetail {
        run: r,
        steps,
        gates: vec![gate],
        graph: vec![],
        chain: Default::default(),
    })));
    s.view = View::Detail;
    s
}

/// The saved plan: what the preview printed (colours included).
fn plan_lines() -> Vec<pipedeck::store::LogLine> {
    [
        "Terraform will perform the following actions:",
        "",
        "  # terraform_data.db will be created",
        "  \u{1b}[32m+\u{1b}[0m resource \"terraform_data\" \"db\" {",
        "      \u{1b}[32m+\u{1b}[0m id     = (known after apply)",
        "      \u{1b}[32m+\u{1b}[0m input  = \"db-staging\"",
        "    }",
        "",
        "Plan: 1 to add, 0 to change, 0 to destroy.",
    ]
    .iter()
    .enumerate()
    .map(|(n, t)| pipedeck::store::LogLine {
        n: n as u64,
        ts: NOW - 10_000,
        stream: 'o',
        text: t.to_string(),
    })
    .collect()
}

#[test]
fn the_stack_job_view_shows_operations_plan_and_saved_plan() {
    let mut s = stack_job_state();
    // A stack job waiting at its apply opens on that step; the preview holds the plan.
    assert_eq!(s.selected_step().map(|x| x.name.as_str()), Some("db"));
    let preview = 93;
    s.select_step_id(preview);
    s.apply_reply(pipedeck::tui::action::Reply::Logs {
        step: preview,
        from: 0,
        lines: plan_lines(),
    });
    both("stack_job", &s);
    // a resumes: it approves the pause before apply.
    key(&mut s, KeyCode::Char('a'));
    assert!(matches!(
        &s.dialog,
        Some(pipedeck::tui::app::Dialog::Comment { env, .. }) if env == "staging/db/apply"
    ));
}

#[test]
fn help_scrolls_and_shows_whole_descriptions() {
    let mut s = detail_state();
    key(&mut s, KeyCode::Char('?'));
    for _ in 0..20 {
        key(&mut s, KeyCode::Char('j'));
    }
    assert!(s.help, "j scrolls the help instead of closing it");
    both("help_scrolled", &s);
    key(&mut s, KeyCode::Char('x'));
    assert!(!s.help);
}

#[test]
fn the_approve_dialog_shows_what_is_being_approved() {
    let mut s = state();
    s.view = View::Approvals;
    s.runs[0].commit_message = "Add rate limiting \u{1b}]0;pwned\u{7}to the login endpoint".into();
    // Who may approve, as the engine's catalog says.
    let demo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/demo/pipedeck.toml");
    let mut rules = pipedeck::config::load_project(&demo)
        .unwrap()
        .catalog()
        .gates;
    assert!(
        rules
            .iter()
            .any(|g| g.owner == "web" && g.env == "prod" && g.approvers.is_empty()),
        "the demo's prod gate is anyone's: {rules:?}"
    );
    rules.push(pipedeck::domain::command::GateRule {
        owner: "web".into(),
        env: "prod".into(),
        approvers: vec!["alice".into(), "bob".into()],
        forbid_self_approval: true,
        require_comment: true,
    });
    rules.retain(|g| !(g.env == "prod" && g.approvers.is_empty()));
    s.gate_rules = rules;
    key(&mut s, KeyCode::Char('a'));
    both("approve_context", &s);
    // A stack job's pause before apply shows the plan it would apply.
    let mut s = stack_job_state();
    key(&mut s, KeyCode::Char('a'));
    both("approve_plan_context", &s);
}
