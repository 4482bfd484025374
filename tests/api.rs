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
        http: reqwest::Client::builder()
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
