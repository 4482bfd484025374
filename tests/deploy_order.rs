//! Deploy order per environment (issue 24), with real child processes and SQLite:
//! trigger order whatever order builds finish in, `queue = "all" | "latest"`, never
//! two deploys at once, never older over newer, deliberate rollbacks, gates resolved
//! as superseded. A build waits for a file the test creates (`go-RUN`), a deploy while
//! a file exists (`hold-RUN`); every wait is on engine events, with a bound.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use pipedeck::api::EngineClient;
use pipedeck::domain::{Decision, Event, GateStatus, RunStatus, StepStatus, TriggerRequest};
use pipedeck::engine::{EngineError, EngineHandle};
use tokio::sync::broadcast;

/// A git repository with `n` commits on `main`; their SHAs, oldest first.
fn repo(dir: &Path, n: usize) -> Vec<String> {
    let git = |args: &[&str]| {
        let out = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args([
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@t.invalid",
                "-c",
                "commit.gpgsign=false",
            ])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    std::fs::create_dir_all(dir).unwrap();
    git(&["init", "--quiet", "-b", "main"]);
    (1..=n)
        .map(|i| {
            git(&["commit", "--quiet", "--allow-empty", "-m", &format!("c{i}")]);
            git(&["rev-parse", "HEAD"])
        })
        .collect()
}

/// A project whose `svc` deploys to `envs` (prod behind a gate), `queue` on dev.
fn project(queue: &str, envs: &str) -> (TestProject, Vec<String>) {
    let p = TestProject::new("");
    let d = p.path().display();
    let toml = format!(
        r#"
[engine]
concurrency = 8
kill_grace = "2s"

[environments.dev]
queue = "{queue}"
[environments.prod]
approval = true

[services.svc]
repo = "repo"
environments = [{envs}]
[[services.svc.steps]]
name = "build"
run = "while [ ! -e {d}/go-$PIPEDECK_RUN_ID ]; do sleep 0.01; done"
[services.svc.deploy.dev]
run = "mkdir {d}/lock-dev || exit 7; echo $PIPEDECK_RUN_ID $PIPEDECK_COMMIT >> {d}/order-dev; while [ -e {d}/hold-$PIPEDECK_RUN_ID ]; do sleep 0.01; done; rmdir {d}/lock-dev"
"#
    );
    let prod = format!(
        r#"[services.svc.deploy.prod]
run = "mkdir {d}/lock-prod || exit 7; echo $PIPEDECK_RUN_ID $PIPEDECK_COMMIT >> {d}/order-prod; rmdir {d}/lock-prod"
"#
    );
    let toml = if envs.contains("prod") {
        toml + &prod
    } else {
        toml
    };
    std::fs::write(p.project_file(), toml).unwrap();
    let shas = repo(&p.path().join("repo"), 5);
    (p, shas)
}

fn touch(p: &TestProject, name: &str) {
    std::fs::write(p.file(name), "").unwrap();
}

async fn trigger_at(h: &EngineHandle, sha: &str) -> i64 {
    let req = TriggerRequest {
        commit: Some(sha.to_string()),
        ..trigger("svc")
    };
    h.trigger(req).await.unwrap().id
}

/// The deploys to `env` in the order they started: (run, commit).
fn deploys(p: &TestProject, env: &str) -> Vec<(i64, String)> {
    let text = std::fs::read_to_string(p.file(&format!("order-{env}"))).unwrap_or_default();
    text.lines()
        .map(|l| {
            let (run, sha) = l.split_once(' ').unwrap();
            (run.parse().unwrap(), sha.to_string())
        })
        .collect()
}

/// The run whose `path` event `e` says is queued (waiting in its line) or skipped.
fn arrival(e: &Event, path: &str) -> Option<i64> {
    match e {
        Event::Step { step }
            if step.path() == path
                && matches!(step.status, StepStatus::Queued | StepStatus::Skipped) =>
        {
            Some(step.run_id)
        }
        _ => None,
    }
}

/// Waits until `path` of run `id` is queued or skipped.
async fn arrived(rx: &mut broadcast::Receiver<Event>, id: i64, path: &str) {
    wait_for(rx, |e| arrival(e, path) == Some(id)).await;
}

fn short(sha: &str) -> &str {
    &sha[..7]
}

/// Five runs triggered one after another, builds finishing newest first, run 1's
/// deploy held while the others arrive; returns the deploys to dev.
async fn five_runs(queue: &str) -> Vec<(i64, String)> {
    let (p, shas) = project(queue, "\"dev\"");
    let h = p.start().await;
    let mut rx = h.subscribe();
    let mut ids = Vec::new();
    for sha in &shas {
        ids.push(trigger_at(&h, sha).await);
    }
    touch(&p, &format!("hold-{}", ids[0]));
    touch(&p, &format!("go-{}", ids[0]));
    wait_step(&mut rx, ids[0], "deploy/dev", "running").await;
    // The builds finish newest first, close together: whatever order the deploys
    // arrive in, the result is the same.
    for id in ids[1..].iter().rev() {
        touch(&p, &format!("go-{id}"));
    }
    let mut waiting: std::collections::HashSet<i64> = ids[1..].iter().copied().collect();
    while !waiting.is_empty() {
        let e = wait_for(&mut rx, |e| arrival(e, "deploy/dev").is_some()).await;
        if let Some(id) = arrival(&e, "deploy/dev") {
            waiting.remove(&id);
        }
    }
    std::fs::remove_file(p.file(&format!("hold-{}", ids[0]))).unwrap();
    for id in &ids {
        let done = wait_done(&h, &mut rx, *id).await;
        assert_eq!(done.run.status, RunStatus::Succeeded, "{done:#?}");
    }
    let got = deploys(&p, "dev");
    let words: Vec<String> = got
        .iter()
        .map(|(r, s)| format!("run {r} ({})", short(s)))
        .collect();
    println!(
        "queue = \"{queue}\", five runs: deploys to dev: {}",
        words.join(", ")
    );
    if queue == "latest" {
        for id in &ids[1..4] {
            let d = h.detail(*id).await.unwrap();
            let dev = step(&d, "deploy/dev");
            // By whichever later run arrived first after it.
            let by = dev.superseded_by.expect("superseded");
            assert!(by > *id, "{d:#?}");
            let sha = &shas[(by - ids[0]) as usize];
            let want = format!("superseded by run {by} ({})", short(sha));
            assert_eq!(dev.reason.as_deref(), Some(want.as_str()), "{d:#?}");
        }
    }
    got.into_iter().map(|(r, s)| (r - ids[0] + 1, s)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_quick_triggers_under_latest_deploy_the_first_and_the_last_only() {
    let got = five_runs("latest").await;
    let runs: Vec<i64> = got.iter().map(|(r, _)| *r).collect();
    assert_eq!(runs, [1, 5]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_quick_triggers_under_all_deploy_every_run_in_trigger_order_one_at_a_time() {
    // A second deploy while one runs would fail its run (the lock dir exists).
    let got = five_runs("all").await;
    let runs: Vec<i64> = got.iter().map(|(r, _)| *r).collect();
    assert_eq!(runs, [1, 2, 3, 4, 5]);
}

/// Two runs at different commits, the first with the slower build.
async fn first_slower(queue: &str) -> (TestProject, EngineHandle, [i64; 2], Vec<String>) {
    let (p, shas) = project(queue, "\"dev\"");
    let h = p.start().await;
    let mut rx = h.subscribe();
    let one = trigger_at(&h, &shas[0]).await;
    let two = trigger_at(&h, &shas[1]).await;
    touch(&p, &format!("go-{two}"));
    arrived(&mut rx, two, "deploy/dev").await;
    touch(&p, &format!("go-{one}"));
    for id in [one, two] {
        let done = wait_done(&h, &mut rx, id).await;
        assert_eq!(done.run.status, RunStatus::Succeeded, "{done:#?}");
    }
    (p, h, [one, two], shas)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_latest_the_slower_first_run_is_superseded_and_dev_ends_on_the_second() {
    let (p, h, [one, two], shas) = first_slower("latest").await;
    assert_eq!(deploys(&p, "dev"), [(two, shas[1].clone())]);
    let d = h.detail(one).await.unwrap();
    let dev = step(&d, "deploy/dev");
    assert_eq!(dev.status, StepStatus::Skipped);
    let want = format!("superseded by run {two} ({})", short(&shas[1]));
    assert_eq!(dev.reason.as_deref(), Some(want.as_str()));
    assert_eq!(
        d.run.reason.as_deref(),
        Some(&*format!("deploy/dev {want}"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_all_the_slower_first_run_deploys_first_and_dev_ends_on_the_second() {
    let (p, _h, [one, two], shas) = first_slower("all").await;
    assert_eq!(
        deploys(&p, "dev"),
        [(one, shas[0].clone()), (two, shas[1].clone())]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rerun_of_an_old_run_needs_allow_older_and_is_recorded_as_a_rollback() {
    let (p, shas) = project("all", "\"dev\"");
    let h = p.start().await;
    let mut rx = h.subscribe();
    let mut ids = Vec::new();
    for sha in &shas[..2] {
        let id = trigger_at(&h, sha).await;
        touch(&p, &format!("go-{id}"));
        assert_eq!(
            wait_done(&h, &mut rx, id).await.run.status,
            RunStatus::Succeeded
        );
        ids.push(id);
    }
    let err = h.rerun(ids[0], false).await.unwrap_err();
    let want = format!(
        "a rerun of run {} ({}) would deploy an older commit than dev runs {} (run {}); \
         pass --allow-older to roll back on purpose",
        ids[0],
        short(&shas[0]),
        short(&shas[1]),
        ids[1]
    );
    assert_eq!(err, EngineError::OlderCommit(want));
    let again = h.rerun(ids[0], true).await.unwrap();
    touch(&p, &format!("go-{}", again.id));
    let done = wait_done(&h, &mut rx, again.id).await;
    assert_eq!(done.run.status, RunStatus::Succeeded, "{done:#?}");
    assert_eq!(
        deploys(&p, "dev").last(),
        Some(&(again.id, shas[0].clone()))
    );
    let store = pipedeck::store::Store::open(&p.data_dir().join("state.db")).unwrap();
    let rollback = |id| store.deployments(id).unwrap()[0].rollback;
    assert!(
        rollback(again.id),
        "the rerun's deployment is a deliberate rollback"
    );
    assert!(!rollback(ids[1]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gate_left_behind_by_a_superseded_run_is_no_longer_approvable() {
    let (p, shas) = project("all", "\"dev\", \"prod\"");
    let h = p.start().await;
    let mut rx = h.subscribe();
    let one = trigger_at(&h, &shas[0]).await;
    touch(&p, &format!("go-{one}"));
    wait_step(&mut rx, one, "deploy/prod", "awaiting_approval").await;
    // Run 1 waits at prod's gate; run 2 deploys to dev meanwhile, and reaches the gate.
    let two = trigger_at(&h, &shas[1]).await;
    touch(&p, &format!("go-{two}"));
    wait_step(&mut rx, two, "deploy/prod", "awaiting_approval").await;
    h.decide(two, "prod", Decision::Approve, None)
        .await
        .unwrap();
    let done = wait_done(&h, &mut rx, two).await;
    assert_eq!(done.run.status, RunStatus::Succeeded, "{done:#?}");
    let left = wait_done(&h, &mut rx, one).await;
    let why = format!("superseded by run {two} ({})", short(&shas[1]));
    let prod = step(&left, "deploy/prod");
    assert_eq!(
        (prod.status, prod.reason.as_deref()),
        (StepStatus::Skipped, Some(why.as_str()))
    );
    assert_eq!(left.gates[0].status, GateStatus::Superseded);
    let err = h
        .decide(one, "prod", Decision::Approve, None)
        .await
        .unwrap_err();
    assert_eq!(
        err,
        EngineError::Conflict(format!(
            "the gate at `prod` in run {one} was {why}: nothing is left to approve"
        ))
    );
    assert!(h.waiting_gates().await.unwrap().is_empty());
    assert_eq!(deploys(&p, "prod"), [(two, shas[1].clone())]);
    assert_eq!(
        deploys(&p, "dev"),
        [(one, shas[0].clone()), (two, shas[1].clone())]
    );
}
