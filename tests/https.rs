//! TLS both ways against real servers on loopback: outbound calls (verify checks,
//! commit statuses, notifications) to https servers, and `serve --listen` on a
//! non-loopback address over TLS, reached by a real https client.
//!
//! Every test calls [`trusted`] first: it makes the certificate the engine trusts and
//! names it in `SSL_CERT_FILE` (the standard variable for extra roots) before any
//! client is built in this process.

mod common;

use std::sync::OnceLock;

use common::http::{TestCert, TestServer};
use common::*;
use pipedeck::api::EngineClient;
use pipedeck::api::server::{HostOptions, TlsFiles, host};
use pipedeck::domain::{RunStatus, StepStatus};
use serde_json::{Value, json};

struct Trusted {
    cert: TestCert,
    _dir: tempfile::TempDir,
}

fn trusted() -> &'static TestCert {
    static T: OnceLock<Trusted> = OnceLock::new();
    &T.get_or_init(|| {
        let cert = TestCert::new();
        let dir = tempfile::tempdir().unwrap();
        let (path, _) = cert.write(dir.path());
        // SAFETY: set once, before any test of this binary starts a thread that reads
        // the environment (each calls `trusted()` first and waits for this).
        unsafe { std::env::set_var("SSL_CERT_FILE", &path) };
        Trusted { cert, _dir: dir }
    })
    .cert
}

async fn log_text(h: &pipedeck::engine::EngineHandle, run: i64, step: i64) -> String {
    h.logs(run, step, 0, 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.text + "\n")
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_statuses_and_notifications_reach_https_servers() {
    let cert = trusted();
    let health = TestServer::start_tls(1, 200, "status: ok", cert).await;
    let api = TestServer::start_tls(0, 201, "{}", cert).await;
    let hook = TestServer::start_tls(0, 200, "ok", cert).await;
    assert!(health.url("").starts_with("https://"));
    let p = TestProject::new(&format!(
        r#"{HEADER}
[[notify]]
name = "hook"
url_file = "hook-url"
events = ["run_succeeded"]

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
[services.svc.deploy.dev]
run = "echo deployed"
[[services.svc.deploy.dev.verify]]
name = "health"
url = "{}"
body_contains = "ok"
retries = 2
backoff = "10ms"
"#,
        api.url(""),
        health.url("/health")
    ));
    std::fs::write(p.file("gh-token"), "tok-123\n").unwrap();
    std::fs::write(p.file("hook-url"), hook.url("/hook")).unwrap();
    let h = p.start().await;
    let mut rx = h.subscribe();
    let run = h.trigger(trigger("svc")).await.unwrap();
    let done = wait_done(&h, &mut rx, run.id).await;
    assert_eq!(done.run.status, RunStatus::Succeeded, "{done:#?}");
    let check = step(&done, "verify/dev.health");
    assert_eq!(check.status, StepStatus::Succeeded);
    // One 500, then the 200: both attempts went over TLS.
    assert_eq!(health.received().len(), 2);
    let log = log_text(&h, run.id, check.id).await;
    assert!(log.contains("https://127.0.0.1:"), "{log}");

    // The run (`build`) and its environment: pending, then success (the environment's
    // once its checks passed, the run's at its end).
    let got = api.wait_for(4).await;
    let sha = &done.run.commit_sha;
    assert_eq!(got[0].path, format!("/repos/acme/svc/statuses/{sha}"));
    assert_eq!(got[0].auth.as_deref(), Some("Bearer tok-123"));
    let states: Vec<(Value, Value)> = api
        .json()
        .iter()
        .map(|b| (b["context"].clone(), b["state"].clone()))
        .collect();
    let (build, dev) = (json!("pipedeck/build"), json!("pipedeck/deploy/dev"));
    let (pending, success) = (json!("pending"), json!("success"));
    assert_eq!(
        states,
        [
            (build.clone(), pending.clone()),
            (dev.clone(), pending),
            (dev, success.clone()),
            (build, success)
        ]
    );
    hook.wait_for(1).await;
    assert_eq!(hook.json()[0]["event"], "run_succeeded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_with_an_untrusted_certificate_fails_the_check_saying_why() {
    trusted();
    let stranger = TestCert::new();
    let health = TestServer::start_tls(0, 200, "ok", &stranger).await;
    let p = TestProject::new(&format!(
        r#"{HEADER}
[services.svc]
repo_seed = "src"
environments = ["dev"]
[services.svc.deploy.dev]
run = "echo deployed"
[[services.svc.deploy.dev.verify]]
name = "health"
url = "{}"
retries = 0
"#,
        health.url("/health")
    ));
    let h = p.start().await;
    let mut rx = h.subscribe();
    let run = h.trigger(trigger("svc")).await.unwrap();
    let done = wait_done(&h, &mut rx, run.id).await;
    assert_eq!(done.run.status, RunStatus::Failed);
    let check = step(&done, "verify/dev.health");
    assert_eq!(check.status, StepStatus::Failed);
    // The handshake was refused: no request ever reached the handler.
    assert!(health.received().is_empty());
    let log = log_text(&h, run.id, check.id).await;
    assert!(log.to_lowercase().contains("certificate"), "{log}");
}

/// `serve --listen` on every address (not loopback) is served over TLS: a real https
/// client that trusts the certificate gets in with a token; plain HTTP does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_loopback_listener_serves_tls_with_tokens() {
    use pipedeck::api::tokens;
    use pipedeck::domain::access::Role;
    let cert = trusted();
    let p = TestProject::new(&format!(
        "{HEADER}\n[services.svc]\nrepo_seed = \"src\"\n[[services.svc.steps]]\nname = \"a\"\nrun = \"true\"\n"
    ));
    let dir = tempfile::tempdir().unwrap();
    let (c, k) = cert.write(dir.path());
    let mut opts = HostOptions::private(&p.data_dir());
    opts.listen = Some("0.0.0.0:0".parse().unwrap());
    opts.tls = Some(TlsFiles { cert: c, key: k });
    let hosted = host(p.project(), &p.data_dir(), &opts).await.unwrap();
    let port = hosted.tcp.unwrap().port();
    let (_, token) = tokens::create(&p.data_dir(), "carol", Role::Viewer, 0).unwrap();

    let http = pipedeck::tls::client_builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.cert_pem.as_bytes()).unwrap())
        .build()
        .unwrap();
    let url = format!("https://127.0.0.1:{port}/v1/request");
    let list = json!({"request": "list_runs", "filter": {}});
    let resp = http
        .post(&url)
        .bearer_auth(&token)
        .json(&list)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["response"], "runs", "{body}");
    // Over TLS still needs a token.
    let resp = http.post(&url).json(&list).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 403);
    // Plain HTTP to the TLS port gets no answer from the API.
    let plain = format!("http://127.0.0.1:{port}/v1/request");
    let r = http
        .post(&plain)
        .bearer_auth(&token)
        .json(&list)
        .send()
        .await;
    assert!(r.is_err(), "plain HTTP was answered: {r:?}");
    hosted.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_certificate_or_key_stops_the_engine_from_starting_saying_which() {
    trusted();
    let p = TestProject::new(&format!(
        "{HEADER}\n[services.svc]\nrepo_seed = \"src\"\n[[services.svc.steps]]\nname = \"a\"\nrun = \"true\"\n"
    ));
    let dir = tempfile::tempdir().unwrap();
    let mut opts = HostOptions::private(&p.data_dir());
    opts.listen = Some("0.0.0.0:0".parse().unwrap());
    opts.tls = Some(TlsFiles {
        cert: dir.path().join("missing.pem"),
        key: dir.path().join("key.pem"),
    });
    let err = match host(p.project(), &p.data_dir(), &opts).await {
        Ok(_) => panic!("the engine started without its certificate"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.starts_with("cannot read the TLS certificate") && err.contains("missing.pem"),
        "{err}"
    );
}
