//! `pipedeck backup` while a step floods its log, then `pipedeck restore` (issue 21).

mod common;

use common::bin::*;
use common::*;

const FLOOD: &str = r#"
[services.flood]
repo_seed = "src"
[[services.flood.steps]]
name = "print"
run = "i=1; while [ $i -le 300000 ]; do echo line $i; i=$((i+1)); done; while [ ! -e \"$PIPEDECK_DATA_DIR/done\" ]; do sleep 0.02; done"
"#;

/// The lines of `pipedeck logs RUN` on the engine serving `p`.
fn lines(p: &TestProject, id: &str) -> Vec<String> {
    run_ok(p, &["logs", id])
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn a_backup_during_a_log_flood_restores_history_and_logs_up_to_the_snapshot() {
    let p = TestProject::new(&format!("{HEADER}\n{GATED}\n{FLOOD}"));
    let engine = serve(&p);
    // History: a run approved at its gate.
    let gated = run_ok(&p, &["run", "gated"]).trim().to_string();
    wait_status(&p, &gated, &["awaiting_approval"]);
    run_ok(&p, &["approve", &gated, "prod", "--comment", "ship it"]);
    wait_status(&p, &gated, &["succeeded"]);
    // The snapshot is taken while a step prints.
    let flood = run_ok(&p, &["run", "flood"]).trim().to_string();
    let mut c = pipedeck(&p);
    c.args(["logs", &flood, "--follow"]);
    let mut follow = Proc::spawn(c, false);
    follow.until("line 2000");
    let snap = p.path().join("snap");
    let out = run_ok(&p, &["backup", snap.to_str().unwrap()]);
    assert!(out.contains("files"), "{out}");
    drop(follow);
    // The step (printing or waiting) ends only now: the snapshot saw it running.
    std::fs::write(p.data_dir().join("done"), "").unwrap();
    wait_status(&p, &flood, &["succeeded"]);
    let live_gated = json(&p, &["show", &gated]);
    let live_log = lines(&p, &flood);
    assert_eq!(live_log.len(), 300_000);
    let pid = engine.child.id().to_string();
    let st = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(engine.rest().0, 0);

    // Restored into a new data dir, served there.
    let restored = TestProject::new(&format!("{HEADER}\n{GATED}\n{FLOOD}"));
    let out = pipedeck(&restored)
        .args(["restore", snap.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let _engine = serve(&restored);
    // The history up to the snapshot is there as it was.
    let shown = json(&restored, &["show", &gated]);
    assert_eq!(shown["run"], live_gated["run"]);
    assert_eq!(shown["gates"], live_gated["gates"]);
    // The flood was running at the snapshot: interrupted, and its log is a whole
    // prefix of the live one (no line torn, none out of order).
    let shown = json(&restored, &["show", &flood]);
    assert_eq!(shown["run"]["status"], "interrupted", "{shown:#}");
    let got = lines(&restored, &flood);
    assert!(
        got.len() >= 2000 && got.len() <= live_log.len(),
        "{} lines",
        got.len()
    );
    assert_eq!(got[..], live_log[..got.len()]);
}

#[test]
fn a_snapshot_that_does_not_match_its_manifest_is_refused() {
    let p = TestProject::new(&format!("{HEADER}\n{GATED}"));
    let engine = serve(&p);
    let id = run_ok(&p, &["run", "gated"]).trim().to_string();
    wait_status(&p, &id, &["awaiting_approval"]);
    let snap = p.path().join("snap");
    run_ok(&p, &["backup", snap.to_str().unwrap()]);
    // A second backup into the same folder is refused.
    let out = run_out(&p, &["backup", snap.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not empty"));
    drop(engine);
    // One byte of a log changed.
    let log = std::fs::read_dir(snap.join("logs").join(&id))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "log"))
        .unwrap();
    let mut bytes = std::fs::read(&log).unwrap();
    bytes[0] ^= 1;
    std::fs::write(&log, bytes).unwrap();
    let target = TestProject::new(&format!("{HEADER}\n{GATED}"));
    let out = pipedeck(&target)
        .args(["restore", snap.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("does not match its manifest"), "{err}");
    assert!(!target.data_dir().join("state.db").exists());
}
