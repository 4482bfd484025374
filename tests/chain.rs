//! Chained pipelines (SP-7a): two builds -> integration -> release, on the real engine.

mod common;

use common::bin::{json, run_ok, serve, wait_status};
use common::*;
use pipedeck::api::EngineClient;
use pipedeck::domain::{Event, RunKind, RunStatus, Trigger};

const CHAIN: &str = r#"
[services.api]
repo_seed = "src"
[[services.api.steps]]
name = "build"
run = "echo version=api-1 >> \"$PIPEDECK_OUTPUT\""

[services.web]
repo_seed = "src"
[[services.web.steps]]
name = "build"
run = "echo version=web-2 >> \"$PIPEDECK_OUTPUT\""

[services.integration]
repo_seed = "src"
environments = ["dev"]
after = [{ service = "api", on = "succeeded" }, { service = "web", on = "succeeded" }]
[[services.integration.steps]]
name = "test"
run = "echo \"testing $PIPEDECK_UPSTREAM_API_OUT_BUILD_VERSION with $PIPEDECK_UPSTREAM_WEB_OUT_BUILD_VERSION (runs $PIPEDECK_UPSTREAM_RUN_IDS)\""
[services.integration.deploy.dev]
run = "echo deployed"
[[services.integration.deploy.dev.verify]]
name = "smoke"
run = "true"

[services.release]
repo_seed = "src"
after = [{ service = "integration", on = "deployed", environment = "dev" }]
[[services.release.steps]]
name = "ship"
run = "echo \"shipping after $PIPEDECK_UPSTREAM_INTEGRATION_RUN_ID at $PIPEDECK_UPSTREAM_INTEGRATION_COMMIT\""
"#;

async fn ended(rx: &mut tokio::sync::broadcast::Receiver<Event>, service: &str) -> i64 {
    let e = wait_for(
        rx,
        |e| matches!(e, Event::Run { run } if run.service == service && run.status.is_terminal()),
    )
    .await;
    match e {
        Event::Run { run } => run.id,
        _ => unreachable!(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_builds_then_integration_then_release_with_outputs_passed() {
    let p = TestProject::new(&format!("{HEADER}\n{CHAIN}"));
    let h = p.start().await;
    let mut rx = h.subscribe();
    let api = h.trigger(trigger("api")).await.unwrap();
    // One upstream is not enough for `all`: integration waits for web.
    let api_done = wait_done(&h, &mut rx, api.id).await;
    assert_eq!(api_done.run.status, RunStatus::Succeeded);
    let web = h.trigger(trigger("web")).await.unwrap();
    let integration = ended(&mut rx, "integration").await;
    let release = ended(&mut rx, "release").await;

    let runs = h.runs(Default::default()).await.unwrap();
    let services: Vec<(&str, Trigger)> = runs
        .iter()
        .rev()
        .filter(|r| r.kind == RunKind::Service)
        .map(|r| (r.service.as_str(), r.trigger))
        .collect();
    assert_eq!(
        services,
        [
            ("api", Trigger::Manual),
            ("web", Trigger::Manual),
            ("integration", Trigger::Chain),
            ("release", Trigger::Chain)
        ]
    );
    let i = h.detail(integration).await.unwrap();
    assert_eq!(i.run.status, RunStatus::Succeeded, "{i:#?}");
    assert_eq!(i.run.triggered_by, "chain");
    let ups: Vec<i64> = i.chain.upstream.iter().map(|u| u.run_id).collect();
    assert_eq!(ups, [api.id, web.id]);
    let web_done = h.detail(web.id).await.unwrap();
    assert!(i.run.created_at >= web_done.run.ended_at.unwrap());
    let test = step(&i, "build/test");
    let log = h.logs(integration, test.id, 0, 10).await.unwrap();
    assert_eq!(
        log[0].text,
        format!("testing api-1 with web-2 (runs {} {})", api.id, web.id)
    );
    let r = h.detail(release).await.unwrap();
    assert_eq!(r.run.status, RunStatus::Succeeded);
    assert_eq!(r.chain.upstream[0].run_id, integration);
    let ship = step(&r, "build/ship");
    let log = h.logs(release, ship.id, 0, 10).await.unwrap();
    assert_eq!(
        log[0].text,
        format!("shipping after {integration} at {}", i.run.commit_sha)
    );
    // Each upstream lists what it started.
    let downstream = |d: &pipedeck::domain::RunDetail| -> Vec<i64> {
        d.chain.downstream.iter().map(|x| x.run_id).collect()
    };
    assert_eq!(downstream(&h.detail(api.id).await.unwrap()), [integration]);
    assert_eq!(downstream(&web_done), [integration]);
    assert_eq!(downstream(&h.detail(integration).await.unwrap()), [release]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_any_each_upstream_starts_a_run_and_a_failure_starts_nothing() {
    let p = TestProject::new(&format!(
        r#"{HEADER}
[services.a]
repo_seed = "src"
[[services.a.steps]]
name = "s"
run = "test -f {flag}"
[services.b]
repo_seed = "src"
[[services.b.steps]]
name = "s"
run = "true"
[services.down]
repo_seed = "src"
after = [{{ service = "a", on = "succeeded" }}, {{ service = "b", on = "succeeded" }}]
after_when = "any"
[[services.down.steps]]
name = "s"
run = "echo $PIPEDECK_UPSTREAM_RUN_IDS"
"#,
        flag = "flag-never-made"
    ));
    let h = p.start().await;
    let mut rx = h.subscribe();
    let a = h.trigger(trigger("a")).await.unwrap();
    assert_eq!(
        wait_done(&h, &mut rx, a.id).await.run.status,
        RunStatus::Failed
    );
    let b = h.trigger(trigger("b")).await.unwrap();
    let down = ended(&mut rx, "down").await;
    let d = h.detail(down).await.unwrap();
    assert_eq!(d.chain.upstream.len(), 1);
    assert_eq!(d.chain.upstream[0].run_id, b.id);
    // The failed `a` started nothing.
    let runs = h.runs(Default::default()).await.unwrap();
    assert_eq!(runs.iter().filter(|r| r.service == "down").count(), 1);
}

/// An `all` chain half satisfied when the engine stops is still half satisfied when
/// it starts again: the second upstream starts the downstream run, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_all_chain_survives_an_engine_restart_between_its_upstreams() {
    let p = TestProject::new(&format!("{HEADER}\n{CHAIN}"));
    let h = p.start().await;
    let mut rx = h.subscribe();
    let api = h.trigger(trigger("api")).await.unwrap();
    assert_eq!(
        wait_done(&h, &mut rx, api.id).await.run.status,
        RunStatus::Succeeded
    );
    // The chain watcher stores that `api` satisfied integration's first entry: wait
    // (bounded) until it is committed, then stop the engine.
    let db = rusqlite::Connection::open(p.data_dir().join("state.db")).unwrap();
    let stored = || -> Vec<(String, i64, i64)> {
        let mut st = db
            .prepare("SELECT downstream, slot, upstream FROM chain_pending")
            .unwrap();
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    let saved = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        loop {
            let s = stored();
            if !s.is_empty() {
                return s;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the chain's progress was never stored");
    assert_eq!(saved, [("integration".to_string(), 0, api.id)]);
    h.shutdown().await;

    let h = p.start().await;
    let mut rx = h.subscribe();
    let web = h.trigger(trigger("web")).await.unwrap();
    let integration = ended(&mut rx, "integration").await;
    ended(&mut rx, "release").await;
    let i = h.detail(integration).await.unwrap();
    let ups: Vec<i64> = i.chain.upstream.iter().map(|u| u.run_id).collect();
    assert_eq!(ups, [api.id, web.id]);
    let runs = h.runs(Default::default()).await.unwrap();
    assert_eq!(
        runs.iter().filter(|r| r.service == "integration").count(),
        1
    );
    // Consumed by the run it started, in that run's commit.
    assert!(stored().is_empty(), "{:?}", stored());
}

#[test]
fn a_chain_cycle_is_a_validate_error_with_its_path() {
    let p = TestProject::new(&format!(
        r#"{HEADER}
[services.a]
repo_seed = "src"
after = [{{ service = "c", on = "succeeded" }}]
[services.b]
repo_seed = "src"
after = [{{ service = "a", on = "succeeded" }}]
[services.c]
repo_seed = "src"
after = [{{ service = "b", on = "succeeded" }}]
[services.d]
repo_seed = "src"
after = [{{ service = "a", on = "deployed", environment = "prod" }}]
"#
    ));
    let out = common::bin::run_out(&p, &["validate"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("pipedeck.toml:") && err.contains("chained pipelines form a cycle: "),
        "{err}"
    );
    let cycle = err
        .lines()
        .find(|l| l.contains("form a cycle"))
        .unwrap()
        .to_string();
    // Some rotation of a -> b -> c -> a.
    assert!(
        ["a -> b -> c -> a", "b -> c -> a -> b", "c -> a -> b -> c"]
            .iter()
            .any(|c| cycle.ends_with(c)),
        "{cycle}"
    );
    assert!(
        err.contains("service `a` does not deploy to `prod`"),
        "{err}"
    );
}

#[test]
fn show_lists_upstream_and_downstream_runs() {
    let p = TestProject::new(&format!("{HEADER}\n{CHAIN}"));
    let _engine = serve(&p);
    let api = run_ok(&p, &["run", "api", "--wait"]);
    let api = api.lines().next().unwrap().trim().to_string();
    run_ok(&p, &["run", "web", "--wait"]);
    // The chained run starts once web has ended: wait (bounded) until it exists and ends.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let integration = loop {
        let runs = json(&p, &["runs", "--service", "integration"]);
        if let Some(id) = runs[0]["id"].as_i64() {
            break id.to_string();
        }
        assert!(std::time::Instant::now() < deadline, "no integration run");
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    wait_status(&p, &integration, &["succeeded"]);
    let shown = run_ok(&p, &["show", &api]);
    assert!(
        shown.contains(&format!("downstream: run {integration} integration")),
        "{shown}"
    );
    let shown = run_ok(&p, &["show", &integration]);
    assert!(
        shown.contains(&format!("upstream: run {api} api@main")),
        "{shown}"
    );
}
