//! Outputs between units: `$PIPEDECK_OUTPUT` lines become later units' variables,
//! stored masked and shown by `pipedeck show`.

mod common;

use common::bin::{run_ok, serve};
use common::*;
use pipedeck::api::EngineClient;
use pipedeck::domain::{RunStatus, StepStatus};

const SERVICE: &str = r#"
[services.svc]
repo_seed = "src"
environments = ["dev"]
[services.svc.secrets]
TOKEN = { file = "token.txt" }
[[services.svc.steps]]
name = "a"
run = "echo version=1.2.3 >> \"$PIPEDECK_OUTPUT\"; echo \"token=$TOKEN\" >> \"$PIPEDECK_OUTPUT\""
[[services.svc.steps]]
name = "side"
run = "echo \"side sees [${PIPEDECK_OUT_A_VERSION:-nothing}]\""
[[services.svc.steps]]
name = "b"
needs = ["a"]
run = "echo \"b got $PIPEDECK_OUT_A_VERSION\"; test \"$PIPEDECK_OUT_A_TOKEN\" = \"$TOKEN\" && echo b got the token; echo image=web:$PIPEDECK_OUT_A_VERSION > \"$PIPEDECK_OUTPUT\""
[services.svc.deploy.dev]
run = "echo \"deploying $PIPEDECK_OUT_B_IMAGE\""
"#;

fn project() -> TestProject {
    let p = TestProject::new(&format!("{HEADER}\n{SERVICE}"));
    std::fs::write(p.file("token.txt"), "s3cr3t-value\n").unwrap();
    p
}

async fn lines(h: &pipedeck::engine::EngineHandle, run: i64, step: i64) -> Vec<String> {
    let got = h.logs(run, step, 0, 100).await.unwrap();
    got.into_iter().map(|l| l.text).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn later_units_get_what_earlier_ones_wrote_and_the_detail_shows_it_masked() {
    let p = project();
    let h = p.start().await;
    let mut rx = h.subscribe();
    let run = h.trigger(trigger("svc")).await.unwrap();
    let done = wait_done(&h, &mut rx, run.id).await;
    assert_eq!(done.run.status, RunStatus::Succeeded, "{done:#?}");
    let a = step(&done, "build/a");
    assert_eq!(
        a.outputs,
        Some(serde_json::json!({"version": "1.2.3", "token": "***"}))
    );
    let b = step(&done, "build/b");
    assert_eq!(
        lines(&h, run.id, b.id).await,
        ["b got 1.2.3", "b got the token"]
    );
    assert_eq!(b.outputs, Some(serde_json::json!({"image": "web:1.2.3"})));
    // A step beside `a` (not after it) never gets its outputs, whenever it runs.
    let side = step(&done, "build/side");
    assert_eq!(lines(&h, run.id, side.id).await, ["side sees [nothing]"]);
    let dev = step(&done, "deploy/dev");
    assert_eq!(lines(&h, run.id, dev.id).await, ["deploying web:1.2.3"]);
    // The files are gone once read.
    let dir = p.data_dir().join("outputs").join(run.id.to_string());
    assert_eq!(std::fs::read_dir(dir).unwrap().count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outputs_past_the_limit_or_malformed_fail_the_step_saying_why() {
    let p = TestProject::new(&format!(
        r#"{HEADER}
[services.big]
repo_seed = "src"
[[services.big.steps]]
name = "big"
run = "head -c 70000 /dev/zero | tr '\\0' x | sed 's/^/blob=/' > \"$PIPEDECK_OUTPUT\""
[services.bad]
repo_seed = "src"
[[services.bad.steps]]
name = "bad"
run = "printf 'ok=1\\nnot a pair\\n' > \"$PIPEDECK_OUTPUT\""
"#
    ));
    let h = p.start().await;
    let mut rx = h.subscribe();
    let big = h.trigger(trigger("big")).await.unwrap();
    let bad = h.trigger(trigger("bad")).await.unwrap();
    let big = wait_done(&h, &mut rx, big.id).await;
    let bad = wait_done(&h, &mut rx, bad.id).await;
    let s = step(&big, "build/big");
    assert_eq!(s.status, StepStatus::Failed);
    let why = s.reason.clone().unwrap_or_default();
    assert!(
        why.contains("70005 bytes, over the limit of 65536"),
        "{why}"
    );
    let s = step(&bad, "build/bad");
    assert_eq!(s.status, StepStatus::Failed);
    let why = s.reason.clone().unwrap_or_default();
    assert!(why.contains("line 2: no `=`"), "{why}");
}

#[test]
fn show_lists_a_steps_outputs() {
    let p = project();
    let _engine = serve(&p);
    let out = run_ok(&p, &["run", "svc", "--wait"]);
    let id = out.lines().next().unwrap().trim().to_string();
    let shown = run_ok(&p, &["show", &id]);
    let lines: Vec<&str> = shown.lines().map(str::trim).collect();
    let a = lines.iter().position(|l| l.starts_with("build/a")).unwrap();
    assert_eq!(
        lines[a + 1..a + 3],
        ["token=***", "version=1.2.3"],
        "{shown}"
    );
    assert!(!shown.contains("s3cr3t"), "{shown}");
}
