//! Frame time of the dashboard at 200x50 into a TestBackend: the runs table with
//! 10,000 runs, and the log view of a step with 1,000,000 stored lines (following,
//! then scrolling back through the store), the runs table filtered, and the DAG view of
//! an infra run with 1,000 resources. Prints median and p99 per frame.
//! Run: cargo bench --bench frame   (scripts/bench.sh runs it too)

use std::time::{Duration, Instant};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use pipedeck::domain::{
    RunDetail, RunInfo, RunKind, RunStatus, RunType, Stage, StepInfo, StepStatus, Trigger,
};
use pipedeck::store::LogStore;
use pipedeck::tui::action::{Effect, Reply};
use pipedeck::tui::app::{AppState, TAIL, View};
use pipedeck::tui::keymap::Keymap;
use pipedeck::tui::{update, views};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

const W: u16 = 200;
const H: u16 = 50;

fn report(name: &str, mut t: Vec<Duration>) {
    t.sort();
    let p = |q: f64| t[((t.len() as f64 - 1.0) * q) as usize].as_secs_f64() * 1000.0;
    println!(
        "  {name}: {} frames, median {:.3} ms, p99 {:.3} ms, max {:.3} ms   (target p99 < 4 ms)",
        t.len(),
        p(0.5),
        p(0.99),
        p(1.0)
    );
}

fn run(id: i64) -> RunInfo {
    RunInfo {
        id,
        kind: RunKind::Service,
        service: format!("svc-{}", id % 17),
        run_type: RunType::Production,
        trigger: Trigger::Manual,
        branch: "main".into(),
        tag: None,
        commit_sha: format!("{id:040x}"),
        commit_message: format!("Commit number {id} with a message of ordinary length"),
        author: "Dana Ops".into(),
        triggered_by: "alice".into(),
        status: RunStatus::ALL[(id % 10) as usize],
        reason: None,
        created_at: 1_700_000_000_000 + id * 1000,
        started_at: Some(1_700_000_000_000 + id * 1000),
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

fn key(s: &mut AppState, km: &Keymap, c: KeyCode) -> Option<Effect> {
    update::on_key(s, km, KeyEvent::new(c, KeyModifiers::NONE))
}

fn main() {
    let km = Keymap::default();
    let mut term = Terminal::new(TestBackend::new(W, H)).expect("terminal");
    println!("== frame time at {W}x{H} (TestBackend)");

    // Runs table: 10,000 runs, moving the selection every frame.
    let mut s = AppState::new(vec!["svc".into()], true, "/data".into());
    s.now = 1_700_000_000_000 + 20_000_000;
    s.screen_height = H;
    s.runs = (1..=10_000).rev().map(run).collect();
    let mut times = Vec::new();
    for i in 0..2000 {
        let t = Instant::now();
        key(
            &mut s,
            &km,
            if i < 1500 {
                KeyCode::Char('j')
            } else {
                KeyCode::PageUp
            },
        );
        term.draw(|f| views::render(f, &s, &km)).expect("draw");
        times.push(t.elapsed());
    }
    report("runs table, 10,000 runs", times);

    // The same table filtered (`/svc-3`), moving the selection every frame.
    key(&mut s, &km, KeyCode::Char('/'));
    for c in "svc-3".chars() {
        key(&mut s, &km, KeyCode::Char(c));
    }
    key(&mut s, &km, KeyCode::Enter);
    let mut times = Vec::new();
    for i in 0..1000 {
        let t = Instant::now();
        key(
            &mut s,
            &km,
            if i % 200 < 150 {
                KeyCode::Char('j')
            } else {
                KeyCode::Char('k')
            },
        );
        term.draw(|f| views::render(f, &s, &km)).expect("draw");
        times.push(t.elapsed());
    }
    report("runs table filtered, 10,000 runs", times);
    key(&mut s, &km, KeyCode::Char('/'));
    key(&mut s, &km, KeyCode::Esc);

    // Log view: a step with 1,000,000 stored lines.
    let dir = tempfile::tempdir().expect("tempdir");
    let logs = LogStore::new(dir.path().to_path_buf());
    let mut w = logs.writer(1, 1).expect("writer");
    let total = 1_000_000u64;
    // Every line a millisecond of its own, the most `.meta` entries a log can have.
    for i in 0..total {
        let line = format!(
            "\u{1b}[32m{i:>8}\u{1b}[0m some log line of a build step printing its progress {}\n",
            "x".repeat(20)
        );
        w.append(line.as_bytes(), 1, 1_700_000_000_000 + i as i64, b'o')
            .expect("append");
    }
    drop(w);
    s.view = View::Detail;
    let step = StepInfo {
        id: 1,
        run_id: 1,
        stage: Stage::Build,
        name: "flood".into(),
        position: 0,
        status: StepStatus::Running,
        reason: None,
        exit_code: None,
        started_at: Some(s.now - 5000),
        ended_at: None,
        parent_id: None,
        outputs: None,
        superseded_by: None,
        slurm_job: None,
    };
    let mut r = run(1);
    r.status = RunStatus::Running;
    let mut pending = s.apply_reply(Reply::Detail(Box::new(RunDetail {
        run: r,
        steps: vec![step],
        gates: vec![],
        graph: vec![],
        chain: Default::default(),
    })));
    let serve = |s: &mut AppState, e: Option<Effect>| {
        let mut e = e;
        while let Some(Effect::LoadLogs {
            run,
            step,
            from,
            limit,
        }) = e
        {
            let from = if from == TAIL {
                logs.line_count(run, step)
                    .expect("count")
                    .saturating_sub(limit as u64)
            } else {
                from
            };
            let lines = logs.read(run, step, from, limit).expect("read");
            e = s.apply_reply(Reply::Logs { step, from, lines });
        }
    };
    serve(&mut s, pending.take());
    let mut times = Vec::new();
    for _ in 0..1000 {
        let t = Instant::now();
        term.draw(|f| views::render(f, &s, &km)).expect("draw");
        times.push(t.elapsed());
    }
    report("log view following, 1,000,000 stored lines", times);
    let mut times = Vec::new();
    for _ in 0..1000 {
        let t = Instant::now();
        let e = key(&mut s, &km, KeyCode::PageUp);
        serve(&mut s, e);
        term.draw(|f| views::render(f, &s, &km)).expect("draw");
        times.push(t.elapsed());
    }
    report("log view paging back (store reads included)", times);
    println!(
        "  log window in memory: {} lines (of {total})",
        s.log.lines.len()
    );

    // Whole-log search through the store: line 17, searched back from the end (the
    // whole file is read), and forward from the start.
    let needle = format!("{:>8}\u{1b}[0m", 17);
    for (dir, from) in [
        (pipedeck::store::Direction::Backward, total),
        (pipedeck::store::Direction::Forward, 0),
    ] {
        let t = Instant::now();
        let hit = logs.find(1, 1, from, &needle, dir).expect("search");
        println!(
            "  search {dir:?} from line {from} of {total}: line {hit:?} in {:.1} ms",
            t.elapsed().as_secs_f64() * 1000.0
        );
    }

    // Run tree: a 2,000-step run, every node expanded, moving the selection each frame.
    let steps: Vec<StepInfo> = (0..2000)
        .map(|i| StepInfo {
            id: 10 + i,
            run_id: 2,
            stage: if i < 1500 {
                Stage::Build
            } else {
                Stage::Deploy
            },
            name: format!("step-{i}"),
            position: i,
            status: StepStatus::ALL[(i % 6) as usize],
            reason: None,
            exit_code: None,
            started_at: Some(s.now - 5000),
            ended_at: Some(s.now - 1000),
            parent_id: None,
            outputs: None,
            superseded_by: None,
            slurm_job: None,
        })
        .collect();
    s.wanted_detail = Some(2);
    let e = s.apply_reply(Reply::Detail(Box::new(RunDetail {
        run: run(2),
        steps,
        gates: vec![],
        graph: vec![],
        chain: Default::default(),
    })));
    drop(e);
    let mut times = Vec::new();
    for i in 0..1000 {
        let t = Instant::now();
        key(
            &mut s,
            &km,
            if i % 400 < 300 {
                KeyCode::Char('j')
            } else {
                KeyCode::Char('k')
            },
        );
        term.draw(|f| views::render(f, &s, &km)).expect("draw");
        times.push(t.elapsed());
    }
    report("run tree of 2,000 steps, expanded", times);

    // DAG layout: lay out and draw a 1,000-node graph (width 32, 2 dependencies each).
    use pipedeck::tui::widgets::dag_graph::{Label, Layout, Node, draw};
    let nodes: Vec<Node> = (0..1000usize)
        .map(|k| Node {
            id: format!("n{k}"),
            deps: if k < 32 {
                vec![]
            } else {
                let base = k - k % 32 - 32;
                vec![
                    format!("n{}", base + k % 32),
                    format!("n{}", base + (k * 7) % 32),
                ]
            },
        })
        .collect();
    let labels: Vec<Label> = nodes
        .iter()
        .map(|n| Label {
            title: n.id.clone(),
            status: "✓ succeeded 1.2s".into(),
            color: ratatui::style::Color::Green,
        })
        .collect();
    let mut times = Vec::new();
    for _ in 0..10 {
        let t = Instant::now();
        let layout = Layout::new(&nodes);
        let canvas = draw(&layout, &labels, Some(0), false, true);
        let _ = canvas.lines(0, 0, W, H, false);
        times.push(t.elapsed());
    }
    times.sort();
    let dag_median = times[times.len() / 2];
    let dag_max = times[times.len() - 1];

    // The DAG view of an infra run with those 1,000 resources, moving between nodes.
    let mut s = AppState::new(vec!["svc".into()], true, "/data".into());
    s.now = 1_700_000_000_000 + 20_000_000;
    s.screen_height = H;
    let mut r = run(1);
    r.kind = RunKind::Infra;
    r.status = RunStatus::Running;
    let steps = nodes
        .iter()
        .enumerate()
        .map(|(k, n)| StepInfo {
            id: k as i64 + 1,
            run_id: 1,
            stage: Stage::Resource,
            name: n.id.clone(),
            position: k as i64,
            status: if k < 500 {
                StepStatus::Succeeded
            } else {
                StepStatus::Running
            },
            reason: None,
            exit_code: None,
            started_at: Some(s.now - 5000),
            ended_at: (k < 500).then_some(s.now - 1000),
            parent_id: None,
            outputs: None,
            superseded_by: None,
            slurm_job: None,
        })
        .collect();
    let graph = nodes
        .iter()
        .map(|n| pipedeck::domain::GraphNode {
            id: n.id.clone(),
            depends_on: n.deps.clone(),
        })
        .collect();
    s.apply_reply(Reply::Detail(Box::new(RunDetail {
        run: r,
        steps,
        gates: vec![],
        graph,
        chain: Default::default(),
    })));
    s.view = View::Graph;
    let mut times = Vec::new();
    for i in 0..200 {
        let t = Instant::now();
        let k = match i % 40 {
            0..10 => 'l',
            10..20 => 'j',
            20..30 => 'h',
            _ => 'k',
        };
        key(&mut s, &km, KeyCode::Char(k));
        term.draw(|f| views::render(f, &s, &km)).expect("draw");
        times.push(t.elapsed());
    }
    report("DAG view, 1,000 resources, moving between nodes", times);
    println!(
        "  DAG of 1,000 nodes: layout + draw median {:.1} ms, max {:.1} ms   (target < 50 ms)",
        dag_median.as_secs_f64() * 1000.0,
        dag_max.as_secs_f64() * 1000.0
    );
}
