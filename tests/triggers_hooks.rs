//! Webhooks (SP-7, EN-6) over real HTTP to a running engine's TCP listener: signed
//! GitHub deliveries and GitLab tokens start runs; a replay, a bad signature, a
//! missing header and an oversized body are each refused with a 4xx, a reason and an
//! audit entry; pull requests build and deploy a preview, a new push replaces it,
//! closing it runs the teardown.

mod common;

use std::path::Path;
use std::time::Instant;

use common::git::*;
use common::*;
use pipedeck::api::EngineClient;
use pipedeck::api::server::{HostOptions, host};
use pipedeck::domain::{Request, RunStatus, RunType, Trigger};
use pipedeck::engine::triggers::hooks::github_signature;
use pipedeck::store::AuditEntry;
use serde_json::{Value, json};

const SECRET: &str = "It's a Secret to Everybody";

fn project(repo: &Path, secret_file: &Path, out: &Path) -> String {
    format!(
        r#"
[services.api]
repo = "file://{repo}"
branches = ["main"]
tags = ["v*"]
poll_interval = "1h"
pull_requests = "deploy"
webhook = {{ repository = "acme/api", secret = "HOOK" }}
preview = {{ run = '''echo "deploy $PIPEDECK_ENV pr=$PIPEDECK_PR $PIPEDECK_COMMIT" >> {out}''', teardown = '''echo "teardown $PIPEDECK_PREVIEW_ENV pr=$PIPEDECK_PR" >> {out}''' }}
[services.api.secrets.HOOK]
file = "{secret}"
[[services.api.steps]]
name = "build"
run = 'echo "built $PIPEDECK_BRANCH"'
"#,
        repo = repo.display(),
        secret = secret_file.display(),
        out = out.display(),
    )
}

struct Hook {
    http: reqwest::Client,
    base: String,
}

impl Hook {
    async fn github(
        &self,
        event: &str,
        delivery: &str,
        body: &[u8],
        sig: Option<String>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .post(format!("{}/hooks/github", self.base))
            .header("X-GitHub-Event", event)
            .header("X-GitHub-Delivery", delivery)
            .header("Content-Type", "application/json")
            .body(body.to_vec());
        if let Some(s) = sig {
            req = req.header("X-Hub-Signature-256", s);
        }
        let resp = req.send().await.unwrap();
        let code = resp.status().as_u16();
        (code, resp.json().await.unwrap_or(Value::Null))
    }

    async fn signed(&self, event: &str, delivery: &str, body: &Value) -> (u16, Value) {
        let bytes = serde_json::to_vec(body).unwrap();
        let sig = github_signature(SECRET.as_bytes(), &bytes);
        self.github(event, delivery, &bytes, Some(sig)).await
    }

    async fn gitlab(&self, event: &str, delivery: &str, body: &Value, token: &str) -> (u16, Value) {
        let resp = self
            .http
            .post(format!("{}/hooks/gitlab", self.base))
            .header("X-Gitlab-Event", event)
            .header("X-Gitlab-Event-UUID", delivery)
            .header("X-Gitlab-Token", token)
            .json(body)
            .send()
            .await
            .unwrap();
        let code = resp.status().as_u16();
        (code, resp.json().await.unwrap_or(Value::Null))
    }
}

fn push(r: &str, after: &str) -> Value {
    json!({"ref": r, "after": after, "repository": {"full_name": "acme/api"}})
}

fn pull(action: &str, n: u64, sha: &str) -> Value {
    json!({
        "action": action,
        "number": n,
        "pull_request": {"head": {"sha": sha, "ref": "feature"}},
        "repository": {"full_name": "acme/api"}
    })
}

struct Setup {
    _work: tempfile::TempDir,
    clone: std::path::PathBuf,
    remote: std::path::PathBuf,
    out: std::path::PathBuf,
    p: TestProject,
}

fn setup() -> Setup {
    let work = tempfile::tempdir().unwrap();
    let (remote, clone) = bare_remote(work.path());
    let secret = work.path().join("hook-secret");
    std::fs::write(&secret, format!("{SECRET}\n")).unwrap();
    let out = work.path().join("previews.log");
    let p = TestProject::new(&project(&remote, &secret, &out));
    Setup {
        _work: work,
        clone,
        remote,
        out,
        p,
    }
}

fn ids(v: &Value) -> Vec<i64> {
    v["runs"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_i64).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_pushes_start_runs_and_every_bad_delivery_is_refused_and_audited() {
    let s = setup();
    let mut opts = HostOptions::private(&s.p.data_dir());
    opts.listen = Some("127.0.0.1:0".parse().unwrap());
    let hosted = host(s.p.project(), &s.p.data_dir(), &opts).await.unwrap();
    let h = hosted.handle.as_caller("tester");
    let mut rx = h.subscribe();
    watchers_looked(&h).await;
    let hook = Hook {
        http: pipedeck::tls::client_builder().build().unwrap(),
        base: format!("http://{}", hosted.tcp.unwrap()),
    };
    let sha = commit(&s.clone, "hooked");
    git(&s.clone, &["push", "-q", "origin", "main"]);

    // A signed push starts a run (the watcher polls hourly: this is the webhook's).
    let body = push("refs/heads/main", &sha);
    let t0 = Instant::now();
    let (code, v) = hook.signed("push", "d-1", &body).await;
    println!("webhook: push -> run created in {:?}", t0.elapsed());
    assert_eq!(code, 201, "{v}");
    let run = h.detail(ids(&v)[0]).await.unwrap().run;
    assert_eq!(
        (run.trigger, run.run_type),
        (Trigger::Push, RunType::Production)
    );
    assert_eq!(run.commit_sha, sha);
    assert_eq!(run.triggered_by, "hook:github");
    assert_eq!(
        wait_done(&h, &mut rx, run.id).await.run.status,
        RunStatus::Succeeded
    );

    // The same delivery again: a replay.
    let (code, v) = hook.signed("push", "d-1", &body).await;
    assert_eq!(code, 409, "{v}");
    assert!(v["refused"].as_str().unwrap().contains("replay"), "{v}");
    // The same push under a new delivery id: accepted, but it already ran.
    let (code, v) = hook.signed("push", "d-2", &body).await;
    assert_eq!(code, 202, "{v}");
    assert!(
        ids(&v).is_empty() && v["ignored"][0].as_str().unwrap().contains("already"),
        "{v}"
    );
    // A bad signature, a missing one, a missing delivery id, an oversized body.
    let bytes = serde_json::to_vec(&body).unwrap();
    let forged = github_signature(b"not the secret", &bytes);
    let (code, v) = hook.github("push", "d-3", &bytes, Some(forged)).await;
    assert_eq!(code, 401, "{v}");
    assert!(
        v["refused"].as_str().unwrap().contains("does not match"),
        "{v}"
    );
    let (code, v) = hook.github("push", "d-4", &bytes, None).await;
    assert_eq!(code, 401, "{v}");
    assert!(
        v["refused"]
            .as_str()
            .unwrap()
            .contains("X-Hub-Signature-256"),
        "{v}"
    );
    let resp = hook
        .http
        .post(format!("{}/hooks/github", hook.base))
        .header("X-GitHub-Event", "push")
        .header(
            "X-Hub-Signature-256",
            github_signature(SECRET.as_bytes(), &bytes),
        )
        .body(bytes.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let big = vec![b' '; 2 * 1024 * 1024];
    let sig = github_signature(SECRET.as_bytes(), &big);
    let (code, v) = hook.github("push", "d-5", &big, Some(sig)).await;
    assert_eq!(code, 413, "{v}");
    // An event of no interest: 202, ignored.
    let (code, v) = hook
        .signed(
            "issues",
            "d-6",
            &json!({"repository": {"full_name": "acme/api"}}),
        )
        .await;
    assert_eq!(code, 202, "{v}");
    assert!(v["ignored"][0].as_str().unwrap().contains("issues"), "{v}");
    // A tag push: a tag run.
    git(&s.clone, &["tag", "v1.2.0"]);
    git(&s.clone, &["push", "-q", "origin", "v1.2.0"]);
    let (code, v) = hook
        .signed("push", "d-7", &push("refs/tags/v1.2.0", &sha))
        .await;
    assert_eq!(code, 201, "{v}");
    let tag = h.detail(ids(&v)[0]).await.unwrap().run;
    assert_eq!(
        (tag.trigger, tag.tag.as_deref()),
        (Trigger::Tag, Some("v1.2.0"))
    );
    wait_done(&h, &mut rx, tag.id).await;
    // GitLab: the token, compared; a wrong one refused.
    let sha2 = commit(&s.clone, "gitlab");
    git(&s.clone, &["push", "-q", "origin", "main"]);
    let gl = json!({"ref": "refs/heads/main", "after": sha2, "project": {"path_with_namespace": "acme/api"}});
    let (code, v) = hook.gitlab("Push Hook", "g-1", &gl, "wrong").await;
    assert_eq!(code, 401, "{v}");
    let (code, v) = hook.gitlab("Push Hook", "g-2", &gl, SECRET).await;
    assert_eq!(code, 201, "{v}");
    let gl_run = h.detail(ids(&v)[0]).await.unwrap().run;
    assert_eq!(gl_run.triggered_by, "hook:gitlab");
    wait_done(&h, &mut rx, gl_run.id).await;

    // Every refusal is in the audit log, with its reason.
    let audit: Vec<AuditEntry> = h.ask(Request::AuditLog { limit: 1000 }).await.unwrap();
    let refused: Vec<&AuditEntry> = audit
        .iter()
        .filter(|a| a.action == "hook_refused")
        .collect();
    assert_eq!(refused.len(), 6, "{refused:#?}");
    assert!(
        refused
            .iter()
            .any(|a| a.comment.as_deref().unwrap_or("").contains("larger than"))
    );
    hosted.shutdown().await;
    let _ = &s.remote;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_request_deploys_a_preview_a_push_replaces_it_and_closing_tears_it_down() {
    let s = setup();
    let mut opts = HostOptions::private(&s.p.data_dir());
    opts.listen = Some("127.0.0.1:0".parse().unwrap());
    let hosted = host(s.p.project(), &s.p.data_dir(), &opts).await.unwrap();
    let h = hosted.handle.as_caller("tester");
    let mut rx = h.subscribe();
    let hook = Hook {
        http: pipedeck::tls::client_builder().build().unwrap(),
        base: format!("http://{}", hosted.tcp.unwrap()),
    };
    git(&s.clone, &["checkout", "-q", "-b", "feature"]);
    let first = commit(&s.clone, "feature one");
    git(&s.clone, &["push", "-q", "origin", "feature"]);

    let (code, v) = hook
        .signed("pull_request", "p-1", &pull("opened", 7, &first))
        .await;
    assert_eq!(code, 201, "{v}");
    let opened = wait_done(&h, &mut rx, ids(&v)[0]).await;
    assert_eq!(opened.run.run_type, RunType::Preview);
    assert_eq!(opened.run.trigger, Trigger::PullRequest);
    assert_eq!(opened.run.status, RunStatus::Succeeded, "{opened:#?}");
    assert!(
        opened
            .steps
            .iter()
            .any(|st| st.path() == "deploy/preview-7"),
        "{:#?}",
        opened.steps
    );

    let second = commit(&s.clone, "feature two");
    git(&s.clone, &["push", "-q", "origin", "feature"]);
    let (code, v) = hook
        .signed("pull_request", "p-2", &pull("synchronize", 7, &second))
        .await;
    assert_eq!(code, 201, "{v}");
    let synced = wait_done(&h, &mut rx, ids(&v)[0]).await;
    assert_eq!(synced.run.status, RunStatus::Succeeded, "{synced:#?}");

    let (code, v) = hook
        .signed("pull_request", "p-3", &pull("closed", 7, &second))
        .await;
    assert_eq!(code, 201, "{v}");
    let closed = wait_done(&h, &mut rx, ids(&v)[0]).await;
    assert_eq!(closed.run.status, RunStatus::Succeeded, "{closed:#?}");
    assert_eq!(closed.run.run_type, RunType::Preview);

    let log = std::fs::read_to_string(&s.out).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(
        lines,
        vec![
            format!("deploy preview-7 pr=7 {first}").as_str(),
            format!("deploy preview-7 pr=7 {second}").as_str(),
            "teardown preview-7 pr=7",
        ],
        "the preview deployed, replaced by the new push, then torn down"
    );
    // The build-only and "none" levels: engine::triggers::hooks unit tests.
    hosted.shutdown().await;
}
