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

const AGING: &str = r#"
[retention]
compress = "zstd"
compress_after_days = 1

[services.svc]
repo_seed = "src"
[[services.svc.steps]]
name = "build"
run = "for i in $(seq 1 5000); do echo build line $i; done"
"#;

/// Makes run `id` look as if it ended `days` ago (the engine reads the row afresh).
fn ended_days_ago(p: &TestProject, id: &str, days: i64) {
    let db = rusqlite::Connection::open(p.data_dir().join("state.db")).unwrap();
    db.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
    let n = db
        .execute(
            "UPDATE runs SET ended_at = ended_at - ?1 WHERE id = ?2",
            rusqlite::params![days * 86_400_000, id.parse::<i64>().unwrap()],
        )
        .unwrap();
    assert_eq!(n, 1);
}

#[test]
fn old_logs_are_compressed_and_read_as_before_by_logs_and_a_restored_backup() {
    let p = TestProject::new(&format!("{HEADER}\n{AGING}"));
    let engine = serve(&p);
    let old = run_ok(&p, &["run", "svc", "--wait"])
        .lines()
        .next()
        .unwrap()
        .trim()
        .to_string();
    let new = run_ok(&p, &["run", "svc", "--wait"])
        .lines()
        .next()
        .unwrap()
        .trim()
        .to_string();
    ended_days_ago(&p, &old, 3);
    let before = run_ok(&p, &["logs", &old, "--step", "build/build"]);
    assert!(before.contains("build line 5000"), "{before}");

    let out = run_ok(&p, &["gc", "--dry-run"]);
    assert!(
        out.contains("would age the logs of old runs: 1 logs"),
        "{out}"
    );
    let run_logs = |id: &str| p.data_dir().join("logs").join(id);
    let names = |id: &str| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(run_logs(id))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    assert!(names(&old).iter().all(|n| !n.ends_with(".zst")));
    let out = run_ok(&p, &["gc"]);
    assert!(out.contains("aged the logs of old runs: 1 logs, "), "{out}");
    assert!(
        names(&old).iter().any(|n| n.ends_with(".log.zst")),
        "{:?}",
        names(&old)
    );
    assert!(
        !names(&old).iter().any(|n| n.ends_with(".log")),
        "{:?}",
        names(&old)
    );
    assert!(
        names(&new).iter().any(|n| n.ends_with(".log")),
        "the young run's log stays"
    );
    // Read as before, through the engine.
    assert_eq!(run_ok(&p, &["logs", &old, "--step", "build/build"]), before);
    let out = run_ok(&p, &["gc"]);
    assert!(!out.contains("aged"), "already aged: {out}");

    // A backup carries the compressed log; the restored engine reads it too.
    let snap = p.path().join("snap");
    run_ok(&p, &["backup", snap.to_str().unwrap()]);
    drop(engine);
    let restored = TestProject::new(&format!("{HEADER}\n{AGING}"));
    let out = pipedeck(&restored)
        .args(["restore", snap.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let _engine = serve(&restored);
    assert_eq!(
        run_ok(&restored, &["logs", &old, "--step", "build/build"]),
        before
    );
}
