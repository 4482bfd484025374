//! The HTTP API: one request route, the token, and who is acting.

mod common;

use common::*;
use pipedeck::api::EngineClient;
use pipedeck::api::client::Client;
use pipedeck::api::server::host;
use pipedeck::domain::{Event, RunStatus};
use pipedeck::engine::Caller;
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
    url: String,
    token: String,
}

impl Api {
    async fn post(&self, body: &Value, token: Option<&str>) -> (u16, Value) {
        let mut req = self
            .http
            .post(format!("{}/v1/request", self.url))
            .json(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap())
    }

    async fn request(&self, body: Value) -> (u16, Value) {
        self.post(&body, Some(&self.token)).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_cannot_choose_its_actor() {
    let p = TestProject::new(&format!("{HEADER}\n{SERVICES}"));
    let hosted = host(p.project(), &p.data_dir(), Caller::new("engine-user"))
        .await
        .unwrap();
    let api = Api {
        http: reqwest::Client::new(),
        url: hosted.endpoint.url.clone(),
        token: hosted.endpoint.token.clone(),
    };
    let mut rx = hosted.handle.subscribe();

    // No token, or a wrong one: refused.
    let trigger = json!({"request": "trigger", "service": "slow"});
    let (code, body) = api.post(&trigger, None).await;
    assert_eq!((code, &body["kind"]), (403, &json!("forbidden")), "{body}");
    let (code, _) = api.post(&trigger, Some("not-the-token")).await;
    assert_eq!(code, 403);

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

    // Without one, the engine attaches its caller.
    let (code, answer) = api.request(trigger).await;
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["response"], "run");
    assert_eq!(answer["value"]["triggered_by"], "engine-user");
    let id = answer["value"]["id"].as_i64().unwrap();
    wait_step(&mut rx, id, "build/wait", "running").await;

    let (code, answer) = api
        .request(json!({"request": "cancel", "run_id": id, "by": "mallory"}))
        .await;
    assert_eq!(code, 400, "{answer}");
    // The typed client goes through the same route.
    let client = Client::new(hosted.endpoint.clone());
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
    assert_eq!(
        actors,
        [("engine-user", "trigger"), ("engine-user", "cancel")]
    );

    // An engine error keeps its kind over the wire.
    let err = client.detail(999_999).await.unwrap_err();
    assert!(
        matches!(err, pipedeck::engine::EngineError::NotFound(_)),
        "{err:?}"
    );
    hosted.shutdown().await;
}
