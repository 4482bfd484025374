//! Commit statuses and notifications (EN-6) against real HTTP servers on loopback:
//! posted in order, retried after 500s, given up and recorded when the API is down,
//! and never holding a run up.

mod common;

use std::time::Duration;

use common::http::{TestServer, down_url};
use common::*;
use pipedeck::api::EngineClient;
use pipedeck::domain::RunStatus;

fn status_project(api: &str, retry: &str, extra: &str) -> TestProject {
    let p = TestProject::new(&format!(
        r#"{HEADER}
[services.svc]
repo_seed = "src"
environments = ["dev"]
[services.svc.secrets]
GH_TOKEN = {{ file = "gh-token" }}
[services.svc.status_reporting]
api = "{api}"
owner = "acme"
repo = "svc"
token_secret = "GH_TOKEN"
target_url = "http://pipedeck.example/runs/{{run}}"
{retry}
[[services.svc.steps]]
name = "build"
run = "echo built"
[services.svc.deploy.dev]
run = "echo deployed"
[[services.svc.deploy.dev.verify]]
name = "smoke"
run = "true"
{extra}
"#
    ));
    std::fs::write(p.file("gh-token"), "tok-123\n").unwrap();
    p
}

fn states(bodies: &[serde_json::Value]) -> Vec<(String, String)> {
    bodies
        .iter()
        .map(|b| {
            (
                b["context"].as_str().unwrap_or("?").to_string(),
                b["state"].as_str().unwrap_or("?").to_string(),
            )
        })
        .collect()
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statuses_are_posted_in_order_and_retried_after_500s() {
    // The first two calls fail with 500: the first status is retried, order holds.
    let api = TestServer::start(2, 201, "{}").await;
    let p = status_project(&api.url(""), "retries = 3\nbackoff = \"10ms\"", "");
    let h = p.start().await;
    let mut rx = h.subscribe();
    let run = h.trigger(trigger("svc")).await.unwrap();
    let done = wait_done(&h, &mut rx, run.id).await;
    assert_eq!(done.run.status, RunStatus::Succeeded);
    let got = api.wait_for(6).await;
    let sha = &done.run.commit_sha;
    for r in &got {
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, format!("/repos/acme/svc/statuses/{sha}"));
        assert_eq!(r.auth.as_deref(), Some("Bearer tok-123"));
    }
    let bodies = api.json();
    assert_eq!(
        states(&bodies[2..]),
        pairs(&[
            ("pipedeck/build", "pending"),
            ("pipedeck/build", "success"),
            ("pipedeck/deploy/dev", "pending"),
            ("pipedeck/deploy/dev", "success"),
        ])
    );
    // The two 500s were the first status, tried again.
    assert_eq!(bodies[0], bodies[2]);
    assert_eq!(bodies[1], bodies[2]);
    assert_eq!(
        bodies[5]["target_url"],
        format!("http://pipedeck.example/runs/{}", run.id)
    );
    assert_eq!(bodies[5]["description"], format!("deployed {}", &sha[..7]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_build_reports_failure_and_the_environment_never_starts() {
    let api = TestServer::start(0, 201, "{}").await;
    let p = TestProject::new(&format!(
        r#"{HEADER}
[services.svc]
repo_seed = "src"
environments = ["dev"]
[services.svc.secrets]
GH_TOKEN = {{ file = "gh-token" }}
[services.svc.status_reporting]
api = "{}"
owner = "acme"
repo = "svc"
token_secret = "GH_TOKEN"
context = "ci"
[[services.svc.steps]]
name = "build"
run = "exit 1"
[services.svc.deploy.dev]
run = "echo deployed"
"#,
        api.url("/")
    ));
    std::fs::write(p.file("gh-token"), "tok").unwrap();
    let h = p.start().await;
    let mut rx = h.subscribe();
    let run = h.trigger(trigger("svc")).await.unwrap();
    assert_eq!(
        wait_done(&h, &mut rx, run.id).await.run.status,
        RunStatus::Failed
    );
    api.wait_for(2).await;
    let bodies = api.json();
    assert_eq!(
        states(&bodies),
        pairs(&[("ci/build", "pending"), ("ci/build", "failure")])
    );
    assert_eq!(bodies[1]["description"], "build/build failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_api_down_for_the_whole_run_holds_nothing_up() {
    // Each status would take over 10 s to give up; the run does not wait for it.
    let p = status_project(&down_url("").await, "retries = 3\nbackoff = \"10s\"", "");
    let h = p.start().await;
    let mut rx = h.subscribe();
    let run = h.trigger(trigger("svc")).await.unwrap();
    let done = wait_done(&h, &mut rx, run.id).await;
    assert_eq!(done.run.status, RunStatus::Succeeded);
    let took = done.run.ended_at.unwrap() - done.run.created_at;
    assert!(took < 5_000, "the run took {took} ms");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_given_up_is_recorded_on_the_run_with_the_token_masked() {
    let p = status_project(&down_url("").await, "retries = 1\nbackoff = \"10ms\"", "");
    let h = p.start().await;
    let mut rx = h.subscribe();
    let run = h.trigger(trigger("svc")).await.unwrap();
    wait_done(&h, &mut rx, run.id).await;
    // Bounded wait for the sender to give up (no event marks an audit entry).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let entry = loop {
        let audit = h.audit(run.id).await.unwrap();
        if let Some(e) = audit.into_iter().find(|e| e.action == "outbound_failed") {
            break e;
        }
        assert!(std::time::Instant::now() < deadline, "never given up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(entry.actor, "pipedeck");
    assert_eq!(entry.target.as_deref(), Some("status pipedeck/build"));
    let why = entry.comment.unwrap_or_default();
    assert!(why.starts_with("gave up after 2 attempts: "), "{why}");
    assert!(!why.contains("tok-123"), "{why}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_carry_the_documented_payloads() {
    let hook = TestServer::start(0, 200, "ok").await;
    let chat = TestServer::start(0, 200, "ok").await;
    let p = TestProject::new(&format!(
        r#"{HEADER}
[[notify]]
name = "hook"
url_file = "hook-url"
events = ["gate_waiting", "deployed", "run_succeeded", "run_failed"]
retries = 0

[[notify]]
name = "chat"
url_file = "chat-url"
format = "slack"
events = ["run_failed"]
services = ["svc"]

[services.svc]
repo_seed = "src"
environments = ["dev", "prod"]
[services.svc.deploy.dev]
run = "echo deployed"
[services.svc.deploy.prod]
run = "exit 4"
approval = true
"#
    ));
    std::fs::write(p.file("hook-url"), hook.url("/hook")).unwrap();
    std::fs::write(p.file("chat-url"), chat.url("/chat")).unwrap();
    let h = p.start().await;
    let mut rx = h.subscribe();
    let run = h.trigger(trigger("svc")).await.unwrap();
    wait_step(&mut rx, run.id, "deploy/prod", "awaiting_approval").await;
    hook.wait_for(2).await;
    h.decide(run.id, "prod", pipedeck::domain::Decision::Approve, None)
        .await
        .unwrap();
    let done = wait_done(&h, &mut rx, run.id).await;
    assert_eq!(done.run.status, RunStatus::Failed);
    let got = hook.wait_for(3).await;
    assert!(got.iter().all(|r| r.path == "/hook"));
    let b = hook.json();
    let id = run.id;
    assert_eq!(b[0]["event"], "deployed");
    assert_eq!(b[0]["environment"], "dev");
    assert_eq!(
        b[0]["text"],
        format!("svc run {id} deployed {} to dev", &done.run.commit_sha[..7])
    );
    assert_eq!(b[1]["event"], "gate_waiting");
    assert_eq!(b[1]["approve"], format!("pipedeck approve {id} prod"));
    assert_eq!(
        b[1]["text"],
        format!("svc run {id} waits for approval before prod: pipedeck approve {id} prod")
    );
    assert_eq!(b[2]["event"], "run_failed");
    assert_eq!(b[2]["run"]["id"], id);
    assert_eq!(b[2]["run"]["status"], "failed");
    assert_eq!(b[2]["run"]["service"], "svc");
    chat.wait_for(1).await;
    let c = chat.json();
    assert_eq!(c.len(), 1);
    let text = c[0]["text"].as_str().unwrap();
    assert!(text.starts_with(&format!("svc run {id} failed")), "{text}");
    assert_eq!(c[0].as_object().unwrap().len(), 1, "slack: text only");
}

#[test]
fn outbound_config_errors_name_the_line() {
    let p = TestProject::new(&format!(
        r#"{HEADER}
[[notify]]
name = "x"
events = ["gate_open"]

[services.svc]
repo_seed = "src"
[services.svc.status_reporting]
api = "ftp://api.github.com"
owner = "a"
repo = "b"
token_secret = "NOPE"
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
            "11: notify `x` needs exactly one of url_env and url_file",
            "17: `ftp://api.github.com` is not an http:// or https:// URL with a host",
            "20: token_secret `NOPE` is not a secret of service `svc`",
        ],
        "{errs:#?}"
    );
}

#[test]
fn show_lists_a_status_given_up() {
    let down = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let p = status_project(&down, "retries = 1\nbackoff = \"10ms\"", "");
    let _engine = common::bin::serve(&p);
    let out = common::bin::run_ok(&p, &["run", "svc", "--wait"]);
    let id = out.lines().next().unwrap().trim().to_string();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let shown = common::bin::run_ok(&p, &["show", &id]);
        if let Some(line) = shown
            .lines()
            .find(|l| l.contains("outbound status pipedeck/build"))
        {
            assert!(line.contains(": gave up after 2 attempts: "), "{line}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{shown}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
