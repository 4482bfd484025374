//! Stations through the real binary: the CLI's deployments and station commands, and
//! an engine killed with SIGKILL in the middle of a fan-out.

mod common;

use std::time::{Duration, Instant};

use common::bin::*;
use common::*;

fn project(t: &std::path::Path) -> TestProject {
    let t = t.display();
    TestProject::new(&format!(
        r#"{HEADER}
[services.web]
repo_seed = "src"
artifact = ["dist/**"]
[[services.web.steps]]
name = "build"
run = "mkdir -p dist/assets && echo $PIPEDECK_RUN_ID > dist/version && echo app > dist/assets/app.js"

[stations.edge-1]
service = "web"
dir = "stations/edge-1"
activate = "if [ -f {t}/slow ]; then touch {t}/$PIPEDECK_STATION.activating; while [ -f {t}/slow ]; do sleep 0.02; done; fi"

[stations.edge-2]
service = "web"
dir = "stations/edge-2"
activate = "if [ -f {t}/slow ]; then touch {t}/$PIPEDECK_STATION.activating; while [ -f {t}/slow ]; do sleep 0.02; done; fi"
"#
    ))
}

/// Polls `station list` until `pred` holds for it (bounded).
fn wait_stations(p: &TestProject, what: &str, pred: impl Fn(&serde_json::Value) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let list = json(p, &["station", "list"]);
        if pred(&list) {
            return;
        }
        assert!(Instant::now() < deadline, "never {what}: {list:#}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn all_run(id: i64) -> impl Fn(&serde_json::Value) -> bool {
    move |l| {
        l.as_array()
            .unwrap()
            .iter()
            .all(|s| s["current"] == id && s["pending"].is_null() && s["error"].is_null())
    }
}

fn release_of_run(p: &TestProject, run: &str) -> i64 {
    let list = json(p, &["deployments", "--service", "web"]);
    let r = list
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["run_id"].as_i64().map(|n| n.to_string()).as_deref() == Some(run))
        .unwrap_or_else(|| panic!("no release of run {run}: {list:#}"));
    r["id"].as_i64().unwrap()
}

/// Every station's `current` is a whole release.
fn every_station_whole(p: &TestProject) {
    for s in ["edge-1", "edge-2"] {
        let cur = p.path().join(format!("stations/{s}/current"));
        let v = std::fs::read_to_string(cur.join("dist/version"))
            .unwrap_or_else(|e| panic!("{s}: current is not a whole release: {e}"));
        assert!(!v.trim().is_empty());
        assert_eq!(
            std::fs::read_to_string(cur.join("dist/assets/app.js")).unwrap(),
            "app\n"
        );
    }
}

#[test]
fn a_kill_9_mid_fan_out_leaves_whole_releases_and_the_restart_finishes_it() {
    let tmp = tempfile::tempdir().unwrap();
    let p = project(tmp.path());
    let mut engine = serve(&p);
    let run1 = run_ok(&p, &["run", "web"]).trim().to_string();
    wait_status(&p, &run1, &["succeeded"]);
    let r1 = release_of_run(&p, &run1);
    wait_stations(&p, "all on the first release", all_run(r1));

    // The next fan-out hangs in `activate` until `slow` goes; the engine dies there.
    std::fs::write(tmp.path().join("slow"), "").unwrap();
    let run2 = run_ok(&p, &["run", "web"]).trim().to_string();
    wait_status(&p, &run2, &["succeeded"]);
    let r2 = release_of_run(&p, &run2);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !tmp.path().join("edge-1.activating").exists() {
        assert!(Instant::now() < deadline, "the switch never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    engine.child.kill().unwrap();
    engine.child.wait().unwrap();
    every_station_whole(&p);

    // Restarted, the engine finishes the fan-out it was in.
    std::fs::remove_file(tmp.path().join("slow")).unwrap();
    let _engine = serve(&p);
    wait_stations(&p, "all on the second release", all_run(r2));
    every_station_whole(&p);
    for s in ["edge-1", "edge-2"] {
        let v =
            std::fs::read_to_string(p.path().join(format!("stations/{s}/current/dist/version")));
        assert_eq!(v.unwrap().trim(), run2);
    }
}

#[test]
fn the_cli_lists_deployments_and_stations_and_names_who_holds_a_release() {
    let tmp = tempfile::tempdir().unwrap();
    let p = project(tmp.path());
    let _engine = serve(&p);
    let run1 = run_ok(&p, &["run", "web"]).trim().to_string();
    wait_status(&p, &run1, &["succeeded"]);
    let r1 = release_of_run(&p, &run1);
    wait_stations(&p, "all on the first release", all_run(r1));

    let list = run_ok(&p, &["deployments"]);
    assert!(
        list.contains("ready") && list.contains("production"),
        "{list}"
    );
    assert!(list.contains("edge-1, edge-2"), "{list}");
    let show = run_ok(&p, &["deployment", "show", &r1.to_string()]);
    assert!(show.contains("digest       sha256:"), "{show}");
    let stations = run_ok(&p, &["station", "list"]);
    assert!(
        stations.contains("edge-1") && stations.contains("branch main"),
        "{stations}"
    );

    run_ok(&p, &["station", "pin", &r1.to_string(), "edge-1"]);
    let out = run_out(&p, &["deployment", "delete", &r1.to_string()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("edge-1 (pinned, runs it), edge-2 (runs it)"),
        "{err}"
    );
    // Nothing to roll back to: said so.
    let out = run_out(&p, &["deployment", "rollback", "web"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no production station"));
    let out = run_out(&p, &["station", "exec", "nope", "--", "true"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no station nope"));
    let out = run_ok(
        &p,
        &["station", "exec", "edge-2", "--", "cat", "dist/version"],
    );
    assert_eq!(out.trim(), run1);
}

#[test]
fn station_list_shows_a_switch_at_its_group_gate_and_approve_lets_it_through() {
    let tmp = tempfile::tempdir().unwrap();
    let p = project(tmp.path());
    let toml = std::fs::read_to_string(p.project_file()).unwrap().replace(
        "dir = \"stations/edge-2\"",
        "dir = \"stations/edge-2\"\ngroup = \"fleet\"",
    );
    std::fs::write(
        p.project_file(),
        format!("{toml}\n[station_groups.fleet]\napproval = true\n"),
    )
    .unwrap();
    let _engine = serve(&p);
    let run1 = run_ok(&p, &["run", "web"]).trim().to_string();
    wait_status(&p, &run1, &["succeeded"]);
    let r1 = release_of_run(&p, &run1);
    wait_stations(&p, "edge-2 at the gate", |l| {
        l.as_array().unwrap().iter().any(|s| {
            s["name"] == "edge-2" && s["pending"] == r1 && s["awaiting"]["status"] == "waiting"
        })
    });
    // The gate is the rollout run's (the build's downstream run).
    let listed = json(&p, &["station", "list"]);
    let edge2 = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "edge-2");
    let rollout = edge2.unwrap()["switch_run"].to_string();
    assert_ne!(rollout, run1);
    let list = run_ok(&p, &["station", "list"]);
    let wanted = format!("pending: approval (pipedeck approve {rollout} stations:fleet)");
    assert!(list.contains(&wanted), "{list}");
    let out = run_ok(&p, &["approve", &rollout, "stations:fleet"]);
    assert!(out.contains("gate stations:fleet approved by"), "{out}");
    wait_stations(&p, "both on the first release", all_run(r1));
    wait_status(&p, &rollout, &["succeeded"]);
    let audit = run_ok(&p, &["audit"]);
    assert!(audit.contains("approve"), "{audit}");
}
