//! Git triggers (SP-7) against real repositories: a local repository watched for
//! changes, a bare remote polled with `git ls-remote`; one run per ref and commit,
//! kept across a restart (a push made while the engine was down runs once).

mod common;

use std::time::Instant;

use common::bin;

use common::git::*;
use common::*;
use pipedeck::api::EngineClient;
use pipedeck::domain::{Event, RunInfo, RunType, Trigger};
use pipedeck::store::RunFilter;

fn project(repo: &str, extra: &str) -> String {
    format!(
        r#"
[services.api]
repo = "{repo}"
branches = ["main", "release/*"]
tags = ["v*"]
poll_interval = "1h"
{extra}
[[services.api.steps]]
name = "build"
run = 'echo "tag=$PIPEDECK_TAG branch=$PIPEDECK_BRANCH"'
"#
    )
}

async fn runs(h: &pipedeck::engine::EngineHandle) -> Vec<RunInfo> {
    h.runs(RunFilter::default()).await.unwrap()
}

async fn created(rx: &mut tokio::sync::broadcast::Receiver<Event>, sha: &str) -> RunInfo {
    match wait_for(
        rx,
        |e| matches!(e, Event::Run { run } if run.commit_sha == sha),
    )
    .await
    {
        Event::Run { run } => run,
        _ => unreachable!(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_push_and_tag_run_once_and_a_push_while_down_runs_on_start() {
    let work = tempfile::tempdir().unwrap();
    let repo = init_repo(&work.path().join("api"));
    let p = TestProject::new(&project(&repo.to_string_lossy(), ""));
    let h = p.start().await;
    let mut rx = h.subscribe();
    watchers_looked(&h).await;
    assert!(
        runs(&h).await.is_empty(),
        "what was there before is not new"
    );

    // A push to main: inotify wakes the watcher (the poll interval is an hour).
    let t0 = Instant::now();
    let sha = commit(&repo, "second");
    let run = created(&mut rx, &sha).await;
    println!("local watch: push -> run created in {:?}", t0.elapsed());
    assert_eq!(run.trigger, Trigger::Push);
    assert_eq!(run.run_type, RunType::Production);
    assert_eq!(run.branch, "main");
    assert_eq!(run.triggered_by, "trigger:push");
    let done = wait_done(&h, &mut rx, run.id).await;
    assert_eq!(done.run.status.as_str(), "succeeded", "{done:#?}");
    let audit = h.audit(run.id).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|a| a.actor == "trigger:push" && a.action == "trigger"),
        "{audit:?}"
    );

    // An annotated tag: a Production run labelled with it.
    git(&repo, &["tag", "-a", "v1.2.0", "-m", "release"]);
    let tag_run = created(&mut rx, &sha).await;
    assert_eq!(tag_run.trigger, Trigger::Tag);
    assert_eq!(tag_run.tag.as_deref(), Some("v1.2.0"));
    assert_eq!(tag_run.run_type, RunType::Production);
    wait_done(&h, &mut rx, tag_run.id).await;
    let lines = h
        .logs(tag_run.id, step_id(&h, tag_run.id).await, 0, 10)
        .await
        .unwrap();
    assert!(
        lines.iter().any(|l| l.text.contains("tag=v1.2.0")),
        "PIPEDECK_TAG reaches the step: {lines:?}"
    );

    // A branch no glob matches, and a tag no glob matches: nothing runs.
    git(&repo, &["branch", "feature/x"]);
    git(&repo, &["tag", "nightly"]);
    // A matching branch at the same commit does run (its own ref).
    git(&repo, &["branch", "release/1"]);
    let rel = created(&mut rx, &sha).await;
    assert_eq!(rel.branch, "release/1");
    wait_done(&h, &mut rx, rel.id).await;
    let list = triggers(&h).await;
    let push = list.iter().find(|t| t.trigger == "push").unwrap();
    assert_eq!(push.last_fired.as_ref().map(|l| l.run_id), Some(rel.id));
    assert_eq!(push.last_error, None);
    h.shutdown().await;
    drop(h);

    // While the engine is down: a push. On start it runs, once; nothing else repeats.
    let missed = commit(&repo, "third");
    let h = p.start().await;
    let mut rx = h.subscribe();
    let all = runs(&h).await;
    let again = match all.iter().find(|r| r.commit_sha == missed) {
        Some(r) => r.clone(),
        None => created(&mut rx, &missed).await,
    };
    assert_eq!(again.trigger, Trigger::Push);
    wait_done(&h, &mut rx, again.id).await;
    // Another look (a change in the repository wakes it) starts nothing new.
    git(&repo, &["tag", "unrelated"]);
    until("the watcher looked again", || async {
        triggers(&h)
            .await
            .iter()
            .any(|t| t.trigger == "push" && t.checked_at.is_some_and(|c| c > again.created_at))
    })
    .await;
    let all = runs(&h).await;
    assert_eq!(
        all.len(),
        4,
        "push, tag, release branch, missed push: {all:#?}"
    );
    assert_eq!(all.iter().filter(|r| r.commit_sha == missed).count(), 1);
    h.shutdown().await;
}

async fn step_id(h: &pipedeck::engine::EngineHandle, run: i64) -> i64 {
    h.detail(run).await.unwrap().steps[0].id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bare_remote_is_polled_with_ls_remote_and_a_bad_url_shows_its_error() {
    let work = tempfile::tempdir().unwrap();
    let (remote, clone) = bare_remote(work.path());
    let url = format!("file://{}", remote.display());
    let toml = project(&url, "").replace("poll_interval = \"1h\"", "poll_interval = \"1s\"")
        + r#"
[services.broken]
repo = "file:///nonexistent/pipedeck-test/repo.git"
branches = ["main"]
poll_interval = "1s"
[[services.broken.steps]]
name = "build"
run = "true"
"#;
    let p = TestProject::new(&toml);
    let h = p.start().await;
    let mut rx = h.subscribe();
    watchers_looked(&h).await;

    let sha = commit(&clone, "pushed");
    git(&clone, &["push", "-q", "origin", "main"]);
    let run = created(&mut rx, &sha).await;
    assert_eq!(run.trigger, Trigger::Push);
    wait_done(&h, &mut rx, run.id).await;
    git(&clone, &["tag", "v2.0.0"]);
    git(&clone, &["push", "-q", "origin", "v2.0.0"]);
    let tag = created(&mut rx, &sha).await;
    assert_eq!(tag.tag.as_deref(), Some("v2.0.0"));
    wait_done(&h, &mut rx, tag.id).await;

    let list = triggers(&h).await;
    let broken = list.iter().find(|t| t.service == "broken").unwrap();
    let err = broken
        .last_error
        .as_deref()
        .expect("the last error is shown");
    assert!(err.contains("git ls-remote"), "{err}");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_pipelines_stop_the_triggers_with_a_reason() {
    let work = tempfile::tempdir().unwrap();
    let repo = init_repo(&work.path().join("api"));
    let p = TestProject::new(&project(
        &repo.to_string_lossy(),
        "pipelines_enabled = false",
    ));
    let h = p.start().await;
    watchers_looked(&h).await;
    commit(&repo, "ignored");
    let list = triggers(&h).await;
    for t in list.iter().filter(|t| t.service == "api") {
        let why = t.stopped.as_deref().expect("stopped, with a reason");
        assert!(why.contains("pipelines_enabled = false"), "{why}");
    }
    // The change is looked at (and recorded) but starts nothing.
    until("the watcher saw the push", || async {
        let store = pipedeck::store::Store::open(&p.data_dir().join("state.db")).unwrap();
        store
            .seen("api")
            .unwrap()
            .get("refs/heads/main")
            .is_some_and(|s| s == &git(&repo, &["rev-parse", "HEAD"]))
    })
    .await;
    assert!(runs(&h).await.is_empty());
    h.shutdown().await;
}

/// `pipedeck triggers` against a served engine: each trigger in text and JSON, the
/// push's run after a commit, the schedule's next fire, a stopped service's reason.
#[test]
fn the_cli_lists_triggers_with_their_last_run() {
    let work = tempfile::tempdir().unwrap();
    let repo = init_repo(&work.path().join("api"));
    let toml = project(&repo.to_string_lossy(), "")
        + r#"
[[services.api.schedules]]
name = "nightly"
cron = "0 3 * * *"

[services.off]
repo_seed = "src"
branches = ["main"]
pipelines_enabled = false
[[services.off.steps]]
name = "build"
run = "true"
"#;
    let p = TestProject::new(&toml);
    let _engine = bin::serve(&p);
    let looked = |v: &serde_json::Value| {
        v.as_array()
            .unwrap()
            .iter()
            .filter(|t| t["trigger"] == "push")
            .all(|t| !t["checked_at"].is_null())
    };
    let deadline = Instant::now() + std::time::Duration::from_secs(60);
    while !looked(&bin::json(&p, &["triggers"])) {
        assert!(Instant::now() < deadline, "the watchers never looked");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let sha = commit(&repo, "second");
    let deadline = Instant::now() + std::time::Duration::from_secs(60);
    let list = loop {
        let v = bin::json(&p, &["triggers"]);
        let push = v
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["service"] == "api" && t["trigger"] == "push")
            .cloned()
            .unwrap();
        if !push["last_fired"].is_null() {
            break v;
        }
        assert!(Instant::now() < deadline, "the push never fired: {v:#}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let run_id = list
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["service"] == "api" && t["trigger"] == "push")
        .unwrap()["last_fired"]["run_id"]
        .as_i64()
        .unwrap();
    let shown = bin::json(&p, &["show", &run_id.to_string()]);
    assert_eq!(shown["run"]["commit_sha"], sha.as_str());
    let nightly = list
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["trigger"] == "schedule:nightly")
        .unwrap();
    assert!(nightly["next_fire"].as_i64().is_some(), "{nightly:#}");
    let text = bin::run_ok(&p, &["triggers"]);
    assert!(text.contains(&format!("run {run_id}")), "{text}");
    assert!(text.contains("schedule:nightly"), "{text}");
    assert!(
        text.contains("stopped: pipelines are disabled for service off"),
        "{text}"
    );
    assert!(text.contains("branches main, release/*"), "{text}");
}
