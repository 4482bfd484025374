//! `/metrics` on the TCP listener: Prometheus text that parses, needs a token (a
//! viewer's is enough), and whose counters move when runs happen.

mod common;

use std::collections::BTreeMap;

use common::*;
use pipedeck::api::EngineClient;
use pipedeck::api::server::{HostOptions, host};
use pipedeck::api::tokens;
use pipedeck::domain::access::Role;
use pipedeck::domain::{Decision, Event, GateStatus, RunStatus};

const SERVICES: &str = r#"
[services.svc]
repo_seed = "src"
environments = ["dev", "staging"]
[[services.svc.steps]]
name = "build"
run = "for i in $(seq 1 100); do echo line $i of the build; done"
[services.svc.deploy.dev]
run = "echo dev"
[services.svc.deploy.staging]
run = "echo staging"
approval = true
"#;

/// One sample: its name, its labels, its value.
type Samples = BTreeMap<(String, Vec<(String, String)>), f64>;

/// A strict parser of the text format: every line is a comment (`# HELP`/`# TYPE`
/// with a known type), blank, or `name{label="value",…} number`; every sample
/// belongs to a family announced by `# TYPE` before it; names are valid.
fn parse(text: &str) -> Samples {
    fn valid_name(n: &str) -> bool {
        let mut c = n.chars();
        c.next()
            .is_some_and(|f| f.is_ascii_alphabetic() || f == '_' || f == ':')
            && c.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    }
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut out = Samples::new();
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let (kw, name, tail) = (parts.next(), parts.next(), parts.next());
            let name = name.unwrap_or_else(|| panic!("a comment without a name: {line}"));
            assert!(valid_name(name), "bad name in {line}");
            match kw {
                Some("HELP") => {}
                Some("TYPE") => {
                    let t = tail.unwrap_or_default();
                    assert!(
                        ["counter", "gauge", "histogram", "summary", "untyped"].contains(&t),
                        "{line}"
                    );
                    assert!(
                        types.insert(name.to_string(), t.to_string()).is_none(),
                        "a family announced twice: {name}"
                    );
                }
                _ => panic!("an unknown comment: {line}"),
            }
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("no value: {line}"));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value: {line}")),
        };
        let (name, labels) = match series.split_once('{') {
            None => (series, Vec::new()),
            Some((name, rest)) => {
                let body = rest
                    .strip_suffix('}')
                    .unwrap_or_else(|| panic!("unclosed labels: {line}"));
                let mut labels = Vec::new();
                let mut chars = body.chars().peekable();
                while chars.peek().is_some() {
                    let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
                    assert!(valid_name(&key), "bad label name in {line}");
                    assert_eq!(chars.next(), Some('"'), "{line}");
                    let mut v = String::new();
                    loop {
                        match chars.next() {
                            Some('\\') => match chars.next() {
                                Some('n') => v.push('\n'),
                                Some(c @ ('\\' | '"')) => v.push(c),
                                other => panic!("bad escape {other:?} in {line}"),
                            },
                            Some('"') => break,
                            Some(c) => v.push(c),
                            None => panic!("unterminated label value: {line}"),
                        }
                    }
                    labels.push((key, v));
                    match chars.next() {
                        Some(',') | None => {}
                        other => panic!("unexpected {other:?} in {line}"),
                    }
                }
                (name, labels)
            }
        };
        assert!(valid_name(name), "bad name: {line}");
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|f| types.get(*f).is_some_and(|t| t == "histogram"))
            })
            .unwrap_or(name);
        assert!(
            types.contains_key(family),
            "sample before (or without) its # TYPE: {line}"
        );
        assert!(
            out.insert((name.to_string(), labels), value).is_none(),
            "a sample given twice: {line}"
        );
    }
    out
}

fn get(s: &Samples, name: &str, labels: &[(&str, &str)]) -> f64 {
    let key = (
        name.to_string(),
        labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    );
    *s.get(&key)
        .unwrap_or_else(|| panic!("no sample {name}{labels:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_need_a_token_and_move_when_runs_happen() {
    let p = TestProject::new(&format!("{HEADER}\n{SERVICES}"));
    let mut opts = HostOptions::private(&p.data_dir());
    opts.listen = Some("127.0.0.1:0".parse().unwrap());
    let hosted = host(p.project(), &p.data_dir(), &opts).await.unwrap();
    let (_, viewer) = tokens::create(&p.data_dir(), "alice", Role::Viewer, 0).unwrap();
    let url = format!("http://{}/metrics", hosted.tcp.unwrap());
    let http = pipedeck::tls::client_builder().build().unwrap();
    let scrape = || async {
        let resp = http.get(&url).bearer_auth(&viewer).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        let ct = resp.headers()["content-type"].to_str().unwrap().to_string();
        assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
        parse(&resp.text().await.unwrap())
    };

    // No token, no metrics.
    let resp = http.get(&url).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 403);

    let before = scrape().await;
    let started = get(&before, "pipedeck_engine_start_time_seconds", &[]);
    assert!(started > 1.6e9, "{started}");
    assert_eq!(get(&before, "pipedeck_runs_created_total", &[]), 0.0);
    assert_eq!(
        get(
            &before,
            "pipedeck_runs_ended_total",
            &[("status", "succeeded")]
        ),
        0.0
    );
    assert_eq!(get(&before, "pipedeck_log_bytes_written_total", &[]), 0.0);
    // The trigger counters are there from the start, at 0.
    for source in ["git_poll", "webhook", "cron"] {
        for outcome in ["started", "skipped", "failed"] {
            let l = [("source", source), ("outcome", outcome)];
            assert_eq!(get(&before, "pipedeck_triggers_total", &l), 0.0);
        }
    }
    assert_eq!(
        get(
            &before,
            "pipedeck_webhook_requests_total",
            &[("outcome", "bad_signature")]
        ),
        0.0
    );
    let qd = [("service", "svc"), ("env", "staging")];
    assert_eq!(get(&before, "pipedeck_queue_depth", &qd), 0.0);

    // A run builds, deploys to dev and waits at staging's gate.
    let h = hosted.handle.as_caller("tester");
    let mut rx = h.subscribe();
    let run = h.trigger(trigger("svc")).await.unwrap();
    wait_for(&mut rx, |e| {
        matches!(e, Event::Run { run: r } if r.id == run.id && r.status == RunStatus::AwaitingApproval)
    })
    .await;
    let waiting = scrape().await;
    assert_eq!(get(&waiting, "pipedeck_runs_created_total", &[]), 1.0);
    assert_eq!(
        get(
            &waiting,
            "pipedeck_runs",
            &[("status", "awaiting_approval")]
        ),
        1.0
    );
    assert_eq!(get(&waiting, "pipedeck_gates_waiting", &[]), 1.0);
    assert_eq!(get(&waiting, "pipedeck_queue_depth", &qd), 1.0);
    let build = [("stage", "build"), ("status", "succeeded")];
    assert_eq!(
        get(&waiting, "pipedeck_unit_duration_seconds_count", &build),
        1.0
    );
    assert_eq!(
        get(
            &waiting,
            "pipedeck_unit_duration_seconds_bucket",
            &[("stage", "build"), ("status", "succeeded"), ("le", "+Inf")]
        ),
        1.0
    );
    // 100 lines of at least 17 bytes each, and the deploy's line.
    assert!(get(&waiting, "pipedeck_log_bytes_written_total", &[]) >= 1700.0);

    let gate = h
        .decide(run.id, "staging", Decision::Approve, None)
        .await
        .unwrap();
    assert_eq!(gate.status, GateStatus::Approved);
    let d = wait_done(&h, &mut rx, run.id).await;
    assert_eq!(d.run.status, RunStatus::Succeeded);
    let after = scrape().await;
    assert_eq!(
        get(
            &after,
            "pipedeck_runs_ended_total",
            &[("status", "succeeded")]
        ),
        1.0
    );
    assert_eq!(
        get(&after, "pipedeck_runs", &[("status", "succeeded")]),
        1.0
    );
    assert_eq!(get(&after, "pipedeck_gates_waiting", &[]), 0.0);
    assert_eq!(get(&after, "pipedeck_gate_wait_seconds_count", &[]), 1.0);
    assert_eq!(get(&after, "pipedeck_queue_depth", &qd), 0.0);
    let deploys = [("stage", "deploy"), ("status", "succeeded")];
    assert_eq!(
        get(&after, "pipedeck_unit_duration_seconds_count", &deploys),
        2.0
    );
    assert_eq!(
        get(&after, "pipedeck_engine_start_time_seconds", &[]),
        started
    );

    // What triggers count shows at the next scrape.
    use pipedeck::engine::metrics::{TriggerOutcome, TriggerSource, WebhookOutcome};
    h.metrics()
        .trigger(TriggerSource::Webhook, TriggerOutcome::Started);
    h.metrics().webhook(WebhookOutcome::Accepted);
    let counted = scrape().await;
    let l = [("source", "webhook"), ("outcome", "started")];
    assert_eq!(get(&counted, "pipedeck_triggers_total", &l), 1.0);
    assert_eq!(
        get(
            &counted,
            "pipedeck_webhook_requests_total",
            &[("outcome", "accepted")]
        ),
        1.0
    );
    hosted.shutdown().await;
}
