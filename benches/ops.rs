//! Figures for an engine that has run for months (issue 21), each beside its peer:
//!
//! 1. Dashboard start with 100,000 runs of history against 100: the engine starts on
//!    the data dir (recovery included), the dashboard's first read (the newest
//!    `INITIAL_RUNS` runs and the waiting gates) is applied, and the first frame is
//!    drawn into a 200x50 TestBackend. Then the runs table's frame time (median and
//!    p99 over 300 frames, the selection moving each frame) for both histories.
//! 2. `gc` over 10,000 ended runs (each with one step and a small log), keeping the
//!    last 100 per service: the time of the engine's gc request, rows and files.
//! 3. Backup throughput (`store::backup::backup`, the code behind `pipedeck backup`)
//!    against `cp -r` of the same data dir, interleaved, median of the ratios.
//!
//! The history is written straight into SQLite through the store API (the engine's
//! own insert functions), not by running 100,000 pipelines.
//!
//! Run: cargo bench --bench ops   (ROUNDS=5 by default; the machine is shared: noisy)

use std::path::Path;
use std::time::{Duration, Instant};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use pipedeck::api::EngineClient;
use pipedeck::config::parse_project;
use pipedeck::domain::{RunSpec, RunStatus, RunType, Stage, StepStatus, Trigger};
use pipedeck::store::{LogStore, NewRun, NewStep, RunFilter, Store};
use pipedeck::tui::action::Reply;
use pipedeck::tui::app::AppState;
use pipedeck::tui::event_loop::INITIAL_RUNS;
use pipedeck::tui::keymap::Keymap;
use pipedeck::tui::{update, views};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

const PROJECT: &str = r#"
[engine]
concurrency = 2
[environments.dev]
[retention]
keep_runs = 100
[services.svc-0]
repo_seed = "src"
[[services.svc-0.steps]]
name = "build"
run = "true"
"#;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn p99(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 - 1.0) * 0.99) as usize]
}

/// A data dir with `n` ended runs of four services, each with one step; with
/// `log_bytes`, each step has a log of about that many bytes.
fn history(dir: &Path, n: i64, log_bytes: usize) {
    std::fs::create_dir_all(dir.join("data")).unwrap();
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(dir.join("src/README"), "bench\n").unwrap();
    std::fs::write(dir.join("pipedeck.toml"), PROJECT).unwrap();
    let mut store = Store::open(&dir.join("data/state.db")).unwrap();
    let logs = LogStore::new(dir.join("data/logs"));
    let t0 = 1_700_000_000_000i64;
    let line = "a line of build output of an ordinary length, say sixty-four b\n";
    store
        .batch(|s| {
            for i in 0..n {
                let new = NewRun {
                    spec: RunSpec::Service {
                        service: format!("svc-{}", i % 4),
                        branch: "main".into(),
                        tag: None,
                        commit: format!("{i:040x}"),
                    },
                    run_type: RunType::Production,
                    trigger: Trigger::Manual,
                    commit_message: format!("Commit number {i} with a message of ordinary length"),
                    author: "Dana Ops".into(),
                    triggered_by: "alice".into(),
                    rerun_of: None,
                    attempt: 1,
                    allow_older: false,
                    definition: "{}".into(),
                    upstream: Vec::new(),
                };
                let at = t0 + i * 60_000;
                let mut run = s.insert_run(&new, at)?;
                let build = NewStep {
                    stage: Stage::Build,
                    name: "build",
                    parent: None,
                };
                let mut step = s.insert_steps(run.id, &[build])?.remove(0);
                step.status = StepStatus::Succeeded;
                step.started_at = Some(at);
                step.ended_at = Some(at + 30_000);
                s.update_step(&step)?;
                run.status = if i % 10 == 0 {
                    RunStatus::Failed
                } else {
                    RunStatus::Succeeded
                };
                run.started_at = Some(at);
                run.ended_at = Some(at + 30_000);
                s.update_run(&run)?;
                if log_bytes > 0 {
                    let count = log_bytes / line.len();
                    let data = line.repeat(count);
                    let mut w = logs.writer(run.id, step.id).expect("log");
                    w.append(data.as_bytes(), count as u64, at, b'o')
                        .expect("append");
                }
            }
            Ok(())
        })
        .unwrap();
}

fn project(dir: &Path) -> pipedeck::config::Project {
    let path = dir.join("pipedeck.toml");
    parse_project(&path, PROJECT).unwrap_or_else(|_| panic!("bench project"))
}

/// Engine start to the first frame, then the runs table's frame times (ms).
fn dashboard(rt: &tokio::runtime::Runtime, dir: &Path) -> (f64, Vec<f64>) {
    rt.block_on(async {
        let t = Instant::now();
        let (h, task) = pipedeck::engine::start(project(dir), &dir.join("data"))
            .await
            .unwrap();
        let runs = h
            .runs(RunFilter {
                limit: Some(INITIAL_RUNS),
                ..Default::default()
            })
            .await
            .unwrap();
        let gates = h.waiting_gates().await.unwrap();
        let mut s = AppState::new(vec!["svc-0".into()], true, "/data".into());
        s.apply_reply(Reply::Reloaded {
            runs: Some(runs),
            gates: Some(gates),
        });
        let km = Keymap::default();
        let mut term = Terminal::new(TestBackend::new(200, 50)).unwrap();
        s.screen_height = 50;
        term.draw(|f| views::render(f, &s, &km)).unwrap();
        let start = t.elapsed().as_secs_f64() * 1000.0;
        let mut frames = Vec::new();
        for i in 0..300 {
            let k = if (i / 100) % 2 == 0 {
                KeyCode::Down
            } else {
                KeyCode::Up
            };
            update::on_key(&mut s, &km, KeyEvent::new(k, KeyModifiers::NONE));
            let t = Instant::now();
            term.draw(|f| views::render(f, &s, &km)).unwrap();
            frames.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        h.shutdown().await;
        task.await.ok();
        (start, frames)
    })
}

fn du(dir: &Path) -> u64 {
    let out = std::process::Command::new("du")
        .args(["-sb"])
        .arg(dir)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn main() {
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("load average at start: {}", load.trim());

    // 1. Dashboard start and frame time: 100,000 runs against 100.
    let big = tempfile::tempdir().unwrap();
    let small = tempfile::tempdir().unwrap();
    let t = Instant::now();
    history(big.path(), 100_000, 0);
    println!(
        "wrote 100,000 runs through the store API in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    history(small.path(), 100, 0);
    let (mut start_big, mut start_small, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    let (mut frames_big, mut frames_small) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let (sb, fb) = dashboard(&rt, big.path());
        let (ss, fs) = dashboard(&rt, small.path());
        ratios.push(sb / ss);
        start_big.push(sb);
        start_small.push(ss);
        frames_big.extend(fb);
        frames_small.extend(fs);
    }
    println!(
        "dashboard start (engine start to first frame): 100,000 runs median {:.0} ms (max {:.0}), \
         100 runs median {:.0} ms; ratio median {:.2}   (target < 1000 ms)",
        median(start_big.clone()),
        start_big.iter().cloned().fold(0.0, f64::max),
        median(start_small),
        median(ratios)
    );
    println!(
        "runs-table frame at 200x50: 100,000 runs median {:.3} ms p99 {:.3} ms; \
         100 runs median {:.3} ms p99 {:.3} ms",
        median(frames_big.clone()),
        p99(frames_big),
        median(frames_small.clone()),
        p99(frames_small)
    );
    drop(big);
    drop(small);

    // 2. gc over 10,000 runs (fresh history each round: gc changes it).
    let mut gc_times = Vec::new();
    for _ in 0..rounds.min(3) {
        let d = tempfile::tempdir().unwrap();
        history(d.path(), 10_000, 2048);
        let ms = rt.block_on(async {
            let (h, task) = pipedeck::engine::start(project(d.path()), &d.path().join("data"))
                .await
                .unwrap();
            let t = Instant::now();
            let r: pipedeck::store::retention::GcReport = h
                .ask(pipedeck::domain::Request::Gc { dry_run: false })
                .await
                .unwrap();
            let ms = t.elapsed().as_secs_f64() * 1000.0;
            assert_eq!(r.removed.len(), 10_000 - 400);
            h.shutdown().await;
            task.await.ok();
            ms
        });
        gc_times.push(ms);
    }
    println!(
        "gc over 10,000 runs (9,600 removed with their logs): median {:.0} ms over {} rounds",
        median(gc_times.clone()),
        gc_times.len()
    );

    // 3. Backup against cp -r of the same data dir.
    let d = tempfile::tempdir().unwrap();
    history(d.path(), 4_000, 32 * 1024);
    let data = d.path().join("data");
    let bytes = du(&data);
    let (mut ours, mut cp, mut r) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..rounds {
        let out = d.path().join(format!("snap-{i}"));
        let t = Instant::now();
        pipedeck::store::backup::backup(&data, &out).unwrap();
        let b = t.elapsed();
        std::fs::remove_dir_all(&out).unwrap();
        let out = d.path().join(format!("cp-{i}"));
        let t = Instant::now();
        let ok = std::process::Command::new("cp")
            .arg("-r")
            .arg(&data)
            .arg(&out)
            .status()
            .unwrap()
            .success();
        assert!(ok);
        // cp does not fsync; the backup syncs each file: sync for a fair end point.
        let ok = std::process::Command::new("sync")
            .status()
            .unwrap()
            .success();
        assert!(ok);
        let c = t.elapsed();
        std::fs::remove_dir_all(&out).unwrap();
        let mbs = |d: Duration| bytes as f64 / d.as_secs_f64() / 1e6;
        ours.push(mbs(b));
        cp.push(mbs(c));
        r.push(b.as_secs_f64() / c.as_secs_f64());
    }
    println!(
        "backup of {:.0} MB (4,000 runs, 32 KiB logs): median {:.0} MB/s; cp -r + sync median {:.0} MB/s; \
         time ratio backup/cp median {:.2}",
        bytes as f64 / 1e6,
        median(ours),
        median(cp),
        median(r)
    );
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("load average at end: {}", load.trim());
}
