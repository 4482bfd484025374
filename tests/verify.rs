//! Verify checks after a deploy (SP-3a) against a real HTTP server on loopback.

mod common;

use common::http::{TestServer, down_url};
use common::*;
use pipedeck::api::EngineClient;
use pipedeck::domain::{RunStatus, StepStatus};

fn project(services: &str) -> TestProject {
    TestProject::new(&format!("{HEADER}\n{services}"))
}

async fn log_text(h: &pipedeck::engine::EngineHandle, run: i64, step: i64) -> Vec<String> {
    h.logs(run, step, 0, 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.text)
        .collect()
}

/// Starts an engine on `p`, runs service `svc` to its end.
async fn run_svc(p: &TestProject) -> (pipedeck::engine::EngineHandle, pipedeck::domain::RunDetail) {
    let h = p.start().await;
    let mut rx = h.subscribe();
    let run = h.trigger(trigger("svc")).await.unwrap();
    let done = wait_done(&h, &mut rx, run.id).await;
    (h, done)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_health_check_passes_after_retries() {
    let server = TestServer::start(2, 200, "status: ok").await;
    let p = project(&format!(
        r#"
[services.svc]
repo_seed = "src"
environments = ["dev", "staging"]
[services.svc.deploy.dev]
run = "echo deployed"
[[services.svc.deploy.dev.verify]]
name = "health"
url = "{}"
body_contains = "ok"
retries = 3
backoff = "10ms"
timeout = "5s"
[[services.svc.deploy.dev.verify]]
name = "smoke"
run = "echo smoke on $PIPEDECK_ENV"
[services.svc.deploy.staging]
run = "echo staging"
"#,
        server.url("/health")
    ));
    let (h, done) = run_svc(&p).await;
    let run = &done.run;
    assert_eq!(done.run.status, RunStatus::Succeeded, "{done:#?}");
    let paths: Vec<String> = done.steps.iter().map(|s| s.path()).collect();
    assert_eq!(
        paths,
        [
            "deploy/dev",
            "verify/dev.health",
            "verify/dev.smoke",
            "deploy/staging"
        ]
    );
    let dev = step(&done, "deploy/dev");
    let health = step(&done, "verify/dev.health");
    let smoke = step(&done, "verify/dev.smoke");
    // Under their environment, in order: deploy, health, smoke, then staging.
    assert_eq!(health.parent_id, Some(dev.id));
    assert_eq!(smoke.parent_id, Some(dev.id));
    assert!(health.started_at.unwrap() >= dev.ended_at.unwrap());
    assert!(smoke.started_at.unwrap() >= health.ended_at.unwrap());
    let staging = step(&done, "deploy/staging");
    assert!(staging.started_at.unwrap() >= smoke.ended_at.unwrap());
    assert_eq!(server.received().len(), 3);
    let log = log_text(&h, run.id, health.id).await;
    let attempts: Vec<&String> = log.iter().filter(|l| l.starts_with("attempt ")).collect();
    assert_eq!(attempts.len(), 3, "{log:#?}");
    assert!(attempts[0].contains("500 in ") && attempts[0].contains("expected status 200"));
    assert!(attempts[2].ends_with("200 in ") || attempts[2].contains(": passed"));
    assert!(log.iter().any(|l| l.starts_with("waiting ")), "{log:#?}");
    let smoke_log = log_text(&h, run.id, smoke.id).await;
    assert_eq!(smoke_log, ["smoke on dev"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_check_fails_the_environment_and_skips_the_later_ones() {
    let server = TestServer::start(100, 200, "").await;
    let p = project(&format!(
        r#"
[services.svc]
repo_seed = "src"
environments = ["dev", "staging"]
[services.svc.deploy.dev]
run = "echo deployed"
[[services.svc.deploy.dev.verify]]
name = "health"
url = "{}"
retries = 2
backoff = "5ms"
[[services.svc.deploy.dev.verify]]
name = "smoke"
run = "echo never"
[services.svc.deploy.staging]
run = "echo staging"
"#,
        server.url("/health")
    ));
    let (_, done) = run_svc(&p).await;
    assert_eq!(done.run.status, RunStatus::Failed, "{done:#?}");
    let health = step(&done, "verify/dev.health");
    assert_eq!(health.status, StepStatus::Failed);
    let why = health.reason.clone().unwrap_or_default();
    assert!(why.contains("failed after 3 attempts"), "{why}");
    assert!(why.contains("500: expected status 200"), "{why}");
    assert_eq!(server.received().len(), 3);
    for s in ["verify/dev.smoke", "deploy/staging"] {
        let st = step(&done, s);
        assert_eq!(st.status, StepStatus::Skipped, "{s}");
        let r = st.reason.clone().unwrap_or_default();
        assert!(r.contains("verify/dev.health"), "{s}: {r}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_that_times_out_or_finds_nobody_fails_with_the_reason() {
    let slow = TestServer::start(0, 200, "ok").await;
    slow.delay(std::time::Duration::from_secs(5));
    let p = project(&format!(
        r#"
[services.svc]
repo_seed = "src"
environments = ["dev", "staging"]
[services.svc.deploy.dev]
run = "echo deployed"
[[services.svc.deploy.dev.verify]]
name = "slow"
url = "{}"
timeout = "100ms"
retries = 0
[services.svc.deploy.staging]
run = "echo staging"
[[services.svc.deploy.staging.verify]]
name = "down"
url = "{}"
retries = 0
"#,
        slow.url("/"),
        down_url("/").await
    ));
    let (_, done) = run_svc(&p).await;
    let why = step(&done, "verify/dev.slow").reason.clone().unwrap();
    assert!(why.contains("no answer: timed out"), "{why}");
    assert!(why.contains("after 1 attempt "), "{why}");
    assert_eq!(
        step(&done, "verify/staging.down").status,
        StepStatus::Skipped
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_smoke_test_fails_the_environment() {
    let p = project(
        r#"
[services.svc]
repo_seed = "src"
environments = ["dev", "staging"]
[services.svc.deploy.dev]
run = "echo deployed"
[[services.svc.deploy.dev.verify]]
name = "smoke"
run = "echo smoke says no; exit 3"
[services.svc.deploy.staging]
run = "echo staging"
"#,
    );
    let (h, done) = run_svc(&p).await;
    let run = &done.run;
    assert_eq!(done.run.status, RunStatus::Failed);
    let smoke = step(&done, "verify/dev.smoke");
    assert_eq!(
        (smoke.status, smoke.exit_code),
        (StepStatus::Failed, Some(3))
    );
    assert_eq!(log_text(&h, run.id, smoke.id).await, ["smoke says no"]);
    assert_eq!(step(&done, "deploy/staging").status, StepStatus::Skipped);
}

#[test]
fn bad_checks_are_config_errors_at_their_line() {
    let p = TestProject::new(&format!(
        r#"{HEADER}
[services.svc]
repo_seed = "src"
environments = ["dev"]
[services.svc.deploy.dev]
run = "echo deployed"
[[services.svc.deploy.dev.verify]]
name = "both"
run = "true"
url = "http://127.0.0.1:1/"
[[services.svc.deploy.dev.verify]]
name = "tls"
url = "ftp://example.com/"
[[services.svc.deploy.dev.verify]]
name = "weird"
url = "http://127.0.0.1:1/"
status = 42
retries = -1
"#
    ));
    let text = std::fs::read_to_string(p.project_file()).unwrap();
    let errs = pipedeck::config::parse_project(&p.project_file(), &text).unwrap_err();
    let msgs: Vec<String> = errs
        .iter()
        .map(|e| format!("{}: {}", e.line, e.message))
        .collect();
    assert_eq!(
        msgs,
        [
            "16: verify check `both` needs exactly one of `run` and `url`",
            "21: `ftp://example.com/` is not an http:// or https:// URL with a host",
            "25: status 42 is not an HTTP status",
            "26: retries = -1 is out of range",
        ],
        "{errs:#?}"
    );
}

/// A deploy whose check fails is a failed deployment: the environment still runs the
/// last one whose checks passed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_check_fails_the_deployment_and_the_last_good_one_stays_current() {
    use pipedeck::domain::{DeployStatus, QueueState};
    let flags = tempfile::tempdir().unwrap();
    let broken = flags.path().join("broken");
    let p = project(&format!(
        r#"
[services.svc]
repo_seed = "src"
environments = ["dev"]
[services.svc.deploy.dev]
run = "echo deployed"
[[services.svc.deploy.dev.verify]]
name = "smoke"
run = "test ! -e '{}'"
"#,
        broken.display()
    ));
    let h = p.start().await;
    let mut rx = h.subscribe();
    let good = h.trigger(trigger("svc")).await.unwrap();
    let done = wait_done(&h, &mut rx, good.id).await;
    assert_eq!(done.run.status, RunStatus::Succeeded, "{done:#?}");

    std::fs::write(&broken, "").unwrap();
    let bad = h.trigger(trigger("svc")).await.unwrap();
    let done = wait_done(&h, &mut rx, bad.id).await;
    assert_eq!(done.run.status, RunStatus::Failed, "{done:#?}");
    assert_eq!(step(&done, "deploy/dev").status, StepStatus::Succeeded);
    assert_eq!(step(&done, "verify/dev.smoke").status, StepStatus::Failed);

    let store = pipedeck::store::Store::open(&p.data_dir().join("state.db")).unwrap();
    let status = |id| store.deployments(id).unwrap()[0].status;
    assert_eq!(status(good.id), DeployStatus::Succeeded);
    assert_eq!(status(bad.id), DeployStatus::Failed);
    let queues: Vec<pipedeck::domain::EnvQueue> = h
        .ask(pipedeck::domain::command::Request::Queues {
            service: Some("svc".into()),
        })
        .await
        .unwrap();
    let current: Vec<i64> = queues[0]
        .entries
        .iter()
        .filter(|e| e.state == QueueState::Current)
        .map(|e| e.run_id)
        .collect();
    assert_eq!(current, [good.id]);
}
