//! The data dir's disk (issue 21): `pipedeck status` reports its usage and free
//! space; under the free-space floor no new run starts and the CLI says why; a
//! step's log keeps at most `max_log_bytes`.

mod common;

use common::bin::*;
use common::*;
use pipedeck::api::EngineClient;
use pipedeck::domain::RunStatus;

const SVC: &str = r#"
[services.svc]
repo_seed = "src"
[[services.svc.steps]]
name = "build"
run = "for i in $(seq 1 2000); do echo this is line $i of a chatty build; done"
"#;

#[test]
fn under_the_free_space_floor_no_new_run_starts_and_the_cli_says_why() {
    // A floor far above any disk's free space.
    let p = TestProject::new(&format!(
        "{HEADER}\n[retention]\nmin_free = \"1000TiB\"\n{SVC}"
    ));
    let _engine = serve(&p);
    let out = run_out(&p, &["run", "svc"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not starting a new run"), "{err}");
    assert!(err.contains("under the floor of 1000.0 TiB"), "{err}");
    assert!(err.contains("min_free in [retention]"), "{err}");
    assert_eq!(json(&p, &["runs"]).as_array().map(Vec::len), Some(0));

    let status = run_ok(&p, &["status"]);
    let dir = p.data_dir().display().to_string();
    assert!(status.contains(&format!("data dir: {dir} · ")), "{status}");
    assert!(
        status.contains(" free (under min_free 1000.0 TiB: no new runs)"),
        "{status}"
    );
    let st = json(&p, &["status"]);
    assert!(st["disk"]["free_bytes"].as_u64().unwrap() > 0, "{st}");
    assert_eq!(st["disk"]["min_free"].as_u64(), Some(1000u64 << 40));

    // The floor follows the project file: lowered, runs start again.
    let text = std::fs::read_to_string(p.project_file()).unwrap();
    std::fs::write(
        p.project_file(),
        text.replace("min_free = \"1000TiB\"", "min_free = \"1KiB\""),
    )
    .unwrap();
    run_ok(&p, &["reload"]);
    let id = run_ok(&p, &["run", "svc"]).trim().to_string();
    wait_status(&p, &id, &["succeeded"]);
    let status = run_ok(&p, &["status"]);
    assert!(!status.contains("no new runs"), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_log_keeps_at_most_max_log_bytes_and_says_so() {
    let p = TestProject::new(&format!(
        "{HEADER}\n[retention]\nmax_log_bytes = \"8KiB\"\n{SVC}"
    ));
    let h = p.start().await;
    let mut rx = h.subscribe();
    let run = h.trigger(trigger("svc")).await.unwrap();
    let d = wait_done(&h, &mut rx, run.id).await;
    assert_eq!(d.run.status, RunStatus::Succeeded);
    let s = step(&d, "build/build");
    let lines = h.logs(run.id, s.id, 0, 10_000).await.unwrap();
    let bytes: usize = lines.iter().map(|l| l.text.len() + 1).sum();
    assert!(bytes <= 8192 + 200, "{bytes}");
    assert!(lines.len() > 100 && lines.len() < 2000, "{}", lines.len());
    let last = lines.last().unwrap();
    assert_eq!(last.stream, 'p');
    assert_eq!(
        last.text,
        "pipedeck: this step's log reached max_log_bytes (8.0 KiB); the rest of its output is discarded"
    );
    // Whole lines only, in order, up to the cap.
    for (i, l) in lines[..lines.len() - 1].iter().enumerate() {
        assert_eq!(l.text, format!("this is line {} of a chatty build", i + 1));
    }
}
