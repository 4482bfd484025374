//! `pipedeck gc` through the binary (issue 21): old runs go with their logs, and it says
//! what it keeps and why.

mod common;

use common::bin::*;
use common::*;

#[test]
fn gc_removes_old_runs_with_their_logs_and_says_what_stays() {
    let p = TestProject::new(&format!(
        "{HEADER}\n{}",
        r#"
[retention]
keep_runs = 1

[services.svc]
repo_seed = "src"
[[services.svc.steps]]
name = "say"
run = "echo hello"
"#
    ));
    let _engine = serve(&p);
    let ids: Vec<String> = (0..3)
        .map(|_| {
            let out = run_ok(&p, &["run", "svc", "--wait"]);
            out.lines().next().unwrap().trim().to_string()
        })
        .collect();
    assert!(p.data_dir().join("logs").join(&ids[0]).exists());
    let out = run_ok(&p, &["gc", "--dry-run"]);
    assert!(out.contains("would remove 2 runs"), "{out}");
    assert!(out.contains("kept 1: recent"), "{out}");
    assert_eq!(json(&p, &["runs"]).as_array().unwrap().len(), 3);
    let out = run_ok(&p, &["gc"]);
    assert!(out.contains("removed 2 runs"), "{out}");
    let runs = json(&p, &["runs"]);
    let left: Vec<String> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].to_string())
        .collect();
    assert_eq!(left, [ids[2].clone()]);
    // The logs go after the commit, off the engine's thread.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while p.data_dir().join("logs").join(&ids[0]).exists() {
        assert!(std::time::Instant::now() < deadline, "the old logs stayed");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(p.data_dir().join("logs").join(&ids[2]).exists());
    assert_eq!(run_out(&p, &["show", &ids[0]]).status.code(), Some(2));
}
