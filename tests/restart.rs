//! Queued runs survive a restart in their order (issue 15, SPEC EN-3 and SP-6a): deploys
//! waiting for an environment when the engine is killed (or stopped) run after it
//! starts again, in the order their runs were triggered, none dropped, never two at once.

mod common;

use common::bin::*;
use common::*;

/// Each deploy holds an exclusive lock on the environment (a second one at the same
/// time fails with 7), writes its run id, and waits while its run's hold file exists.
fn services(dir: &std::path::Path) -> String {
    let d = dir.display();
    format!(
        r#"
[services.queued]
repo_seed = "src"
environments = ["dev"]
[[services.queued.steps]]
name = "build"
run = "true"
[services.queued.deploy.dev]
run = "exec 9>{d}/lock; flock -n 9 || exit 7; echo $PIPEDECK_RUN_ID >> {d}/order; while [ -e {d}/hold-$PIPEDECK_RUN_ID ]; do sleep 0.02; done"
"#
    )
}

fn deploy_status(p: &TestProject, id: &str) -> String {
    let shown = json(p, &["show", id]);
    let steps = shown["steps"].as_array().unwrap();
    let dev = steps.iter().find(|s| s["name"] == "dev").unwrap();
    dev["status"].as_str().unwrap().to_string()
}

fn queued_deploys_carry_on_in_order(stop: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let p = TestProject::new(&format!("{HEADER}\n{}", services(tmp.path())));
    let mut engine = serve(&p);
    // Run 1 deploys and holds dev; runs 2 to 4 wait for it.
    std::fs::write(tmp.path().join("hold-1"), "").unwrap();
    let ids: Vec<String> = (0..4)
        .map(|_| run_ok(&p, &["run", "queued"]).trim().to_string())
        .collect();
    assert_eq!(ids, ["1", "2", "3", "4"]);
    wait_status(&p, "1", &["running"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !ids[1..].iter().all(|id| deploy_status(&p, id) == "queued") {
        assert!(
            std::time::Instant::now() < deadline,
            "the deploys never queued"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let order = || std::fs::read_to_string(tmp.path().join("order")).unwrap_or_default();
    assert_eq!(order(), "1\n");

    if stop == "KILL" {
        engine.child.kill().unwrap();
        engine.child.wait().unwrap();
    } else {
        let st = std::process::Command::new("kill")
            .args(["-TERM", &engine.child.id().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
        assert_eq!(engine.rest().0, 0);
    }
    let _engine = serve(&p);
    for id in &ids[1..] {
        wait_status(&p, id, &["succeeded", "failed", "cancelled", "interrupted"]);
        let shown = json(&p, &["show", id]);
        assert_eq!(shown["run"]["status"], "succeeded", "run {id}: {shown:#}");
    }
    // Run 1's deploy was cut short (and its process stopped); the others went in order.
    let first = json(&p, &["show", "1"]);
    let want = if stop == "KILL" {
        "interrupted"
    } else {
        "cancelled"
    };
    assert_eq!(first["run"]["status"], want, "{first:#}");
    assert_eq!(order(), "1\n2\n3\n4\n");
}

#[test]
fn queued_deploys_survive_a_kill_9_in_trigger_order() {
    queued_deploys_carry_on_in_order("KILL");
}

#[test]
fn queued_deploys_survive_a_shutdown_in_trigger_order() {
    queued_deploys_carry_on_in_order("TERM");
}

/// An infra run killed while one resource runs and another waits at its node gate
/// cannot resume (the running operation may have done half its work): it ends
/// interrupted, and its gate is closed as interrupted, no longer approvable.
#[test]
fn a_gate_of_an_interrupted_infra_run_is_closed_not_left_approvable() {
    let p = TestProject::new(&format!(
        "{HEADER}\n{}",
        r#"
[infra.net]
environment = "staging"
driver = "command"
[[infra.net.resources]]
id = "gated"
kind = "x"
approval = true
commands = { apply = "true" }
[[infra.net.resources]]
id = "slow"
kind = "x"
commands = { apply = "exec sleep 1000" }
"#
    ));
    let mut engine = serve(&p);
    let id = run_ok(&p, &["infra", "run", "net"]).trim().to_string();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let shown = json(&p, &["show", &id]);
        let gate_waits = shown["gates"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["env"] == "staging/gated" && g["status"] == "waiting");
        let slow_runs = shown["steps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["name"] == "slow" && s["status"] == "running");
        if gate_waits && slow_runs {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{shown:#}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    engine.child.kill().unwrap();
    engine.child.wait().unwrap();
    let _engine = serve(&p);
    let shown = json(&p, &["show", &id]);
    assert_eq!(shown["run"]["status"], "interrupted", "{shown:#}");
    let gate = &shown["gates"][0];
    assert_eq!(gate["status"], "interrupted", "{shown:#}");
    let out = run_out(&p, &["approve", &id, "staging/gated"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no gate is waiting at `staging/gated`"),
        "{err}"
    );
}
