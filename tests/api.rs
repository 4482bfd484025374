//! The HTTP API on the engine's Unix socket: one request route, and who is acting
//! (the socket peer's account, whatever the body says).

mod common;

use common::bin::me;
use common::*;
use pipedeck::api::EngineClient;
use pipedeck::api::client::Client;
use pipedeck::api::server::{HostOptions, host};
use pipedeck::domain::{Event, RunStatus};
use serde_json::{Value, json};

const SERVICES: &str = r#"
[services.slow]
repo_seed = "src"
[[services.slow.steps]]
name = "wait"
run = "sleep 60"
"#;

struct Api {
    http: reqwest::Client,
}

impl Api {
    async fn request(&self, body: Value) -> (u16, Value) {
        let resp = self
            .http
            .post("http://engine/v1/request")
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_cannot_choose_its_actor() {
    let p = TestProject::new(&format!("{HEADER}\n{SERVICES}"));
    let opts = HostOptions::private(&p.data_dir());
    let hosted = host(p.project(), &p.data_dir(), &opts).await.unwrap();
    // Owner-only: the socket admits the engine's account alone.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&opts.socket)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let api = Api {
        http: pipedeck::tls::client_builder()
            .unix_socket(opts.socket.as_path())
            .build()
            .unwrap(),
    };
    let me = me();
    let mut rx = hosted.handle.subscribe();

    let trigger = json!({"request": "trigger", "service": "slow"});
    // A body that names an actor is refused, whatever the field is called.
    for body in [
        json!({"request": "trigger", "service": "slow", "by": "mallory"}),
        json!({"request": "trigger", "service": "slow", "triggered_by": "mallory"}),
    ] {
        let (code, answer) = api.request(body.clone()).await;
        assert_eq!(code, 400, "{body} → {answer}");
        assert_eq!(answer["kind"], "invalid");
        assert!(
            answer["message"]
                .as_str()
                .unwrap()
                .contains("unknown field"),
            "{answer}"
        );
    }

    // Without one, the engine attaches the socket peer's account.
    let (code, answer) = api.request(trigger).await;
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["response"], "run");
    assert_eq!(answer["value"]["triggered_by"], me.as_str());
    let id = answer["value"]["id"].as_i64().unwrap();
    wait_step(&mut rx, id, "build/wait", "running").await;

    let (code, answer) = api
        .request(json!({"request": "cancel", "run_id": id, "by": "mallory"}))
        .await;
    assert_eq!(code, 400, "{answer}");
    // The typed client goes through the same route.
    let client = Client::connect(&hosted.endpoint.socket).unwrap();
    let r = client.cancel(id).await.unwrap();
    assert_eq!(r.status, RunStatus::Cancelling);
    wait_for(
        &mut rx,
        |e| matches!(e, Event::Run { run } if run.id == id && run.status.is_terminal()),
    )
    .await;

    let (code, answer) = api.request(json!({"request": "audit", "run_id": id})).await;
    assert_eq!(
        (code, &answer["response"]),
        (200, &json!("audit")),
        "{answer}"
    );
    let actors: Vec<(&str, &str)> = answer["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["actor"].as_str().unwrap(), a["action"].as_str().unwrap()))
        .collect();
    assert_eq!(actors, [(me.as_str(), "trigger"), (me.as_str(), "cancel")]);

    // An engine error keeps its kind over the wire.
    let err = client.detail(999_999).await.unwrap_err();
    assert!(
        matches!(err, pipedeck::engine::EngineError::NotFound(_)),
        "{err:?}"
    );
    hosted.shutdown().await;
}

/// TCP for remote attach: per-user tokens, each with at most its role; a missing,
/// wrong or revoked token is refused, and an address that keeps failing is held off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_tokens_stand_for_their_user_and_role() {
    use pipedeck::api::tokens;
    use pipedeck::domain::access::Role;
    let p = TestProject::new(&format!("{HEADER}\n{SERVICES}"));
    let mut opts = HostOptions::private(&p.data_dir());
    opts.listen = Some("127.0.0.1:0".parse().unwrap());
    let hosted = host(p.project(), &p.data_dir(), &opts).await.unwrap();
    let (viewer, viewer_token) = tokens::create(&p.data_dir(), "alice", Role::Viewer, 0).unwrap();
    let (_, operator_token) = tokens::create(&p.data_dir(), "bob", Role::Operator, 0).unwrap();
    let url = format!("http://{}/v1/request", hosted.tcp.unwrap());
    let http = pipedeck::tls::client_builder().build().unwrap();
    let post = |token: Option<String>, body: Value| {
        let mut req = http.post(&url).json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        async move {
            let resp = req.send().await.unwrap();
            let code = resp.status().as_u16();
            (code, resp.json::<Value>().await.unwrap())
        }
    };
    let trigger = json!({"request": "trigger", "service": "slow"});
    let list = json!({"request": "list_runs", "filter": {}});

    let (code, body) = post(None, trigger.clone()).await;
    assert_eq!((code, &body["kind"]), (403, &json!("forbidden")), "{body}");
    let wrong = format!("{}0", &viewer_token[..viewer_token.len() - 1]);
    let wrong = if wrong == viewer_token {
        format!("{wrong}1")
    } else {
        wrong
    };
    let (code, _) = post(Some(wrong.clone()), list.clone()).await;
    assert_eq!(code, 403);

    // A viewer's token reads, and is refused a mutating request, naming the rule.
    let (code, body) = post(Some(viewer_token.clone()), list.clone()).await;
    assert_eq!(code, 200, "{body}");
    let (code, body) = post(Some(viewer_token.clone()), trigger.clone()).await;
    assert_eq!(code, 403, "{body}");
    assert_eq!(
        body["message"],
        "alice may not trigger runs: role viewer, needs operator (roles: [access] in the project file)"
    );
    // An operator's token acts as its user.
    let (code, body) = post(Some(operator_token.clone()), trigger.clone()).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["value"]["triggered_by"], "bob");
    let id = body["value"]["id"].as_i64().unwrap();
    let (code, _) = post(
        Some(operator_token.clone()),
        json!({"request": "cancel", "run_id": id}),
    )
    .await;
    assert_eq!(code, 200);

    // Revoked: refused at once.
    tokens::revoke(&p.data_dir(), &viewer.id, 1).unwrap();
    let (code, _) = post(Some(viewer_token), list.clone()).await;
    assert_eq!(code, 403);

    // Failures from one address: after ten in a minute, even a good token waits.
    for _ in 0..10 {
        post(Some(wrong.clone()), list.clone()).await;
    }
    let (code, body) = post(Some(operator_token), list).await;
    assert_eq!(code, 429, "{body}");

    // Every refusal is in the audit log: who (or where from), what, why.
    let log: Vec<pipedeck::store::AuditEntry> = hosted
        .handle
        .ask(pipedeck::domain::Request::AuditLog { limit: 100 })
        .await
        .unwrap();
    let refused: Vec<(String, String, String)> = log
        .iter()
        .filter(|e| e.action == "refused")
        .map(|e| {
            (
                e.actor.clone(),
                e.target.clone().unwrap_or_default(),
                e.comment.clone().unwrap_or_default(),
            )
        })
        .collect();
    let anon = "unknown (127.0.0.1, over TCP)".to_string();
    let post_req = "POST /v1/request".to_string();
    let bad_token = "missing, wrong or revoked token (`pipedeck token create` makes one)";
    let mut want = vec![
        (anon.clone(), post_req.clone(), bad_token.to_string()),
        (anon.clone(), post_req.clone(), bad_token.to_string()),
        (
            "alice".to_string(),
            "trigger slow".to_string(),
            "alice may not trigger runs: role viewer, needs operator (roles: [access] in the project file)"
                .to_string(),
        ),
    ];
    // The revoked token, then seven of the ten wrong ones: ten failures in all...
    want.extend(std::iter::repeat_n(
        (anon.clone(), post_req.clone(), bad_token.to_string()),
        8,
    ));
    // ...then the address is held off: the last three and the good token.
    want.extend(std::iter::repeat_n(
        (
            anon,
            post_req,
            "too many failed token attempts from 127.0.0.1: refused for up to 60s".to_string(),
        ),
        4,
    ));
    assert_eq!(refused, want);
    assert!(
        log.iter()
            .filter(|e| e.action == "refused")
            .all(|e| e.run().is_none())
    );
    hosted.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_loopback_listen_is_refused_without_tls() {
    let p = TestProject::new(&format!("{HEADER}\n{SERVICES}"));
    let mut opts = HostOptions::private(&p.data_dir());
    opts.listen = Some("0.0.0.0:7878".parse().unwrap());
    let err = match host(p.project(), &p.data_dir(), &opts).await {
        Ok(_) => panic!("a non-loopback listener was started"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.starts_with(
            "refusing to listen on 0.0.0.0:7878 without TLS: it is not a loopback address, and tokens would cross the network in clear"
        ),
        "{err}"
    );
    assert!(!p.data_dir().join("engine.sock").exists());
}
