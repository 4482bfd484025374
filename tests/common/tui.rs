//! Fixtures of the dashboard's view tests: a fixed clock and data, drawn into a
//! `TestBackend` and read back as text.
#![allow(dead_code)]

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use pipedeck::domain::{
    GateInfo, GateStatus, RunDetail, RunInfo, RunKind, RunStatus, RunType, Stage, StepInfo,
    StepStatus, Trigger,
};
use pipedeck::store::LogLine;
use pipedeck::tui::action::Reply;
use pipedeck::tui::app::{AppState, View};
use pipedeck::tui::keymap::Keymap;
use pipedeck::tui::{update, views};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

pub const NOW: i64 = 1_800_000_000_000;

pub fn run(id: i64, status: RunStatus, msg: &str, ago_s: i64, dur_s: i64) -> RunInfo {
    let start = NOW - ago_s * 1000;
    RunInfo {
        id,
        kind: RunKind::Service,
        service: if id % 3 == 0 {
            "api".into()
        } else {
            "web".into()
        },
        run_type: if id % 4 == 0 {
            RunType::Preview
        } else {
            RunType::Production
        },
        trigger: Trigger::Manual,
        branch: if id % 4 == 0 {
            "feature/login".into()
        } else {
            "main".into()
        },
        tag: None,
        commit_sha: format!("{:x}{}", id * 0x1234567, "0".repeat(33)),
        commit_message: msg.into(),
        author: "Dana Ops".into(),
        triggered_by: "alice".into(),
        status,
        reason: None,
        created_at: start,
        started_at: Some(start),
        ended_at: status.is_terminal().then_some(start + dur_s * 1000),
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

pub fn state() -> AppState {
    let mut s = AppState::new(
        vec!["api".into(), "web".into()],
        true,
        "/var/lib/pipedeck".into(),
    );
    s.now = NOW;
    s.runs = vec![
        run(
            7,
            RunStatus::AwaitingApproval,
            "Add rate limiting to the login endpoint",
            90,
            0,
        ),
        run(6, RunStatus::Running, "Bump dependencies", 30, 0),
        run(5, RunStatus::Failed, "Refactor session store", 600, 42),
        run(
            4,
            RunStatus::Succeeded,
            "Preview: new login page",
            3_600,
            95,
        ),
        run(
            3,
            RunStatus::Cancelled,
            "Try a faster test runner",
            7_200,
            12,
        ),
        run(2, RunStatus::Rejected, "Migrate the database", 86_400, 300),
        run(
            1,
            RunStatus::Interrupted,
            "Initial import \u{1b}]0;evil title\u{7}",
            172_800,
            3,
        ),
    ];
    s.gates = vec![GateInfo {
        id: 1,
        run_id: 7,
        env: "prod".into(),
        status: GateStatus::Waiting,
        opened_at: NOW - 60_000,
        expires_at: Some(NOW + 3_600_000),
        decided_by: None,
        decided_at: None,
        comment: None,
    }];
    s
}

pub fn step(
    id: i64,
    stage: Stage,
    name: &str,
    pos: i64,
    status: StepStatus,
    secs: Option<(i64, i64)>,
) -> StepInfo {
    StepInfo {
        id,
        run_id: 7,
        stage,
        name: name.into(),
        position: pos,
        status,
        reason: None,
        exit_code: None,
        started_at: secs.map(|(a, _)| NOW - a * 1000),
        ended_at: secs.map(|(a, d)| NOW - a * 1000 + d * 1000),
        parent_id: None,
        outputs: None,
        superseded_by: None,
        slurm_job: None,
    }
}

pub fn detail_state() -> AppState {
    let mut s = state();
    s.view = View::Detail;
    let mut steps = vec![
        step(
            1,
            Stage::Build,
            "lint",
            0,
            StepStatus::Succeeded,
            Some((90, 2)),
        ),
        step(
            2,
            Stage::Build,
            "compile",
            1,
            StepStatus::Succeeded,
            Some((90, 20)),
        ),
        step(
            3,
            Stage::Build,
            "unit-test",
            2,
            StepStatus::Succeeded,
            Some((90, 31)),
        ),
        step(
            4,
            Stage::Deploy,
            "dev",
            3,
            StepStatus::Succeeded,
            Some((50, 4)),
        ),
        step(
            5,
            Stage::Deploy,
            "staging",
            4,
            StepStatus::Succeeded,
            Some((45, 5)),
        ),
        step(
            6,
            Stage::Deploy,
            "prod",
            5,
            StepStatus::AwaitingApproval,
            None,
        ),
    ];
    steps[1].reason = None;
    let detail = RunDetail {
        run: s.runs[0].clone(),
        steps,
        gates: s.gates.clone(),
        graph: vec![],
        chain: Default::default(),
    };
    s.apply_reply(Reply::Detail(Box::new(detail)));
    s.select_step_id(3);
    let lines = (0..40)
        .map(|n| LogLine {
            n,
            ts: NOW - 60_000 + n as i64 * 100,
            stream: if n % 7 == 3 { 'e' } else { 'o' },
            text: match n {
                0 => "\u{1b}[1;34m== unit tests ==\u{1b}[0m".into(),
                5 => {
                    "cursor \u{1b}[2J\u{1b}[H moves and \u{1b}]52;c;c2VjcmV0\u{7}clipboard are gone"
                        .into()
                }
                n => format!("test module_{n}::works ... ok"),
            },
        })
        .collect();
    s.apply_reply(Reply::Logs {
        step: 3,
        from: 0,
        lines,
    });
    s.log.total = 40;
    s
}

pub fn draw(s: &AppState, w: u16, h: u16) -> String {
    let mut s = s.clone();
    s.screen_height = h;
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    let km = Keymap::default();
    t.draw(|f| views::render(f, &s, &km)).unwrap();
    let buf = t.backend().buffer().clone();
    let mut out = String::new();
    for y in 0..h {
        let line: String = (0..w).map(|x| buf[(x, y)].symbol().to_string()).collect();
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

pub fn key(s: &mut AppState, c: KeyCode) {
    update::on_key(s, &Keymap::default(), KeyEvent::new(c, KeyModifiers::NONE));
}

pub fn infra_state() -> AppState {
    use pipedeck::domain::GraphNode;
    let mut s = state();
    let mut r = run(
        8,
        RunStatus::AwaitingApproval,
        "deploy aws-staging to staging",
        40,
        0,
    );
    r.kind = pipedeck::domain::RunKind::Infra;
    r.service = "aws-staging".into();
    r.branch = String::new();
    r.environment = Some("staging".into());
    r.commit_sha = String::new();
    r.operation = Some(pipedeck::domain::Operation::Apply);
    s.runs.insert(0, r.clone());
    let ids = [
        ("vpc", vec![], StepStatus::Succeeded),
        ("subnet-public", vec!["vpc"], StepStatus::Succeeded),
        ("subnet-private", vec!["vpc"], StepStatus::Succeeded),
        ("db", vec!["subnet-private"], StepStatus::AwaitingApproval),
        ("lb", vec!["subnet-public"], StepStatus::Running),
        ("dns", vec!["lb"], StepStatus::Pending),
    ];
    let mut steps = Vec::new();
    let mut graph = Vec::new();
    for (k, (id, deps, status)) in ids.iter().enumerate() {
        let mut st = step(
            100 + k as i64 * 10,
            Stage::Resource,
            id,
            k as i64 * 5,
            *status,
            if *status == StepStatus::Pending {
                None
            } else {
                Some((30 - k as i64 * 4, 3))
            },
        );
        st.run_id = 8;
        if *status == StepStatus::Succeeded {
            st.outputs = Some(serde_json::json!({"id": format!("{id}-1")}));
        }
        if matches!(status, StepStatus::Running | StepStatus::AwaitingApproval) {
            st.ended_at = None;
        }
        let parent = st.id;
        steps.push(st);
        for (j, op) in ["init", "preview", "apply"].iter().enumerate() {
            let mut o = step(
                parent + 1 + j as i64,
                Stage::Operation,
                &format!("{id}.{op}"),
                k as i64 * 5 + 1 + j as i64,
                *status,
                None,
            );
            o.run_id = 8;
            o.parent_id = Some(parent);
            if *status == StepStatus::Pending || (*status == StepStatus::Running && j == 2) {
                o.status = if *status == StepStatus::Running {
                    StepStatus::Running
                } else {
                    StepStatus::Pending
                };
            } else {
                o.status = StepStatus::Succeeded;
            }
            steps.push(o);
        }
        graph.push(GraphNode {
            id: id.to_string(),
            depends_on: deps.iter().map(|d| d.to_string()).collect(),
        });
    }
    s.gates = vec![GateInfo {
        id: 5,
        run_id: 8,
        env: "staging/db".into(),
        status: GateStatus::Waiting,
        opened_at: NOW - 5_000,
        expires_at: None,
        decided_by: None,
        decided_at: None,
        comment: None,
    }];
    let gates = vec![
        GateInfo {
            id: 4,
            run_id: 8,
            env: "staging".into(),
            status: GateStatus::Approved,
            opened_at: NOW - 40_000,
            expires_at: None,
            decided_by: Some("alice".into()),
            decided_at: Some(NOW - 35_000),
            comment: None,
        },
        s.gates[0].clone(),
    ];
    s.apply_reply(Reply::Detail(Box::new(RunDetail {
        run: r,
        steps,
        gates,
        graph,
        chain: Default::default(),
    })));
    s.view = View::Graph;
    s
}
