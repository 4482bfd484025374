//! Stale locks (issue 22 part 2): a lock left by a terraform that died is named by
//! the job that finds it, with the command that frees it, and only an admin frees it,
//! through the engine, audited; on a real http state backend served by the test.
//!
//! Ignored by a plain `cargo test`: it needs `terraform` or `tofu` (1.4 or later) on
//! PATH; `.ci/run` runs it with `--ignored` where one is.

mod common;

use common::tfstate::*;
use common::*;

use std::path::Path;
use std::process::Command;

use common::tfstate_http::StateServer;
use pipedeck::api::EngineClient;
use pipedeck::domain::state_op::{LockId, StateOp};
use pipedeck::domain::{RunStatus, StepStatus};

/// Plain terraform applying `a`'s state (the same http backend) with the held
/// resource: it takes the lock and sleeps in its provisioner.
fn start_apply(dir: &Path, server: &StateServer) -> std::process::Child {
    let work = dir.join("other");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::copy(dir.join("mod/main.tf"), work.join("main.tf")).unwrap();
    std::fs::write(
        work.join("backend_override.tf"),
        "terraform {\n  backend \"http\" {}\n}\n",
    )
    .unwrap();
    let tf = |args: &[&str]| {
        let mut c = Command::new(iac_binary());
        c.args(args)
            .current_dir(&work)
            .env("TF_CLI_CONFIG_FILE", "/dev/null")
            .env("TF_IN_AUTOMATION", "1");
        c
    };
    let init = tf(&[
        "init",
        "-input=false",
        // Where pipedeck keeps resource `a` of `d`.
        &format!("-backend-config=address={}", server.url("/state/d/a")),
        &format!("-backend-config=lock_address={}", server.url("/lock/d/a")),
        &format!("-backend-config=unlock_address={}", server.url("/lock/d/a")),
    ])
    .output()
    .unwrap();
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    tf(&[
        "apply",
        "-auto-approve",
        "-input=false",
        "-var",
        "value=one",
        "-var",
        "hold=true",
    ])
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null())
    .spawn()
    .unwrap()
}

#[ignore = "needs terraform or tofu >= 1.4 on PATH (no registry here provides one); .ci/run runs it with --ignored where one is"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_lock_names_its_id_and_only_an_admin_releases_it() {
    iac_binary();
    let server = StateServer::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let backend = format!(
        "backend = {{ type = \"http\", config = {{ address = \"{}\", lock_address = \"{}\", unlock_address = \"{}\" }} }}",
        server.url("/state"),
        server.url("/lock"),
        server.url("/lock")
    );
    let (h, _) = pipedeck::engine::start(project(tmp.path(), &backend), &data)
        .await
        .unwrap();
    let mut rx = h.subscribe();
    let run = h.trigger_infra("d", false).await.unwrap();
    let done = wait_done(&h, &mut rx, run.id).await;
    assert_ok(&h, &done).await;
    assert!(
        server.state().is_some(),
        "the state lives in the http backend"
    );

    // Someone's apply takes the lock and dies with it (kill -9: no chance to unlock).
    let mut other = start_apply(tmp.path(), &server);
    while !tmp.path().join("applying").exists() {
        assert!(other.try_wait().unwrap().is_none(), "the other apply ended");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    other.kill().unwrap();
    other.wait().unwrap();
    let held = server.lock().expect("the dead apply's lock stays");
    let lock_id = held["ID"].as_str().unwrap().to_string();
    assert_eq!(held["Operation"], "OperationTypeApply");

    // The next job fails on the lock, and says which lock and how to release it.
    let job = h
        .as_caller("bob")
        .trigger_stack_job("a", None, "update")
        .await
        .unwrap();
    let failed = wait_done(&h, &mut rx, job.id).await;
    assert_eq!(failed.run.status, RunStatus::Failed);
    let op = failed
        .steps
        .iter()
        .find(|s| s.status == StepStatus::Failed && s.path().starts_with("operation/"))
        .unwrap_or_else(|| panic!("{failed:#?}"));
    let reason = op.reason.as_deref().unwrap();
    assert!(
        reason.contains(&format!("lock id {lock_id}"))
            && reason.contains(&format!("pipedeck stack-job unlock a {lock_id}")),
        "{reason}"
    );

    // An operator may not force it; an admin may, through the engine, audited.
    let unlock = StateOp::Unlock {
        lock_id: LockId::parse(&lock_id).unwrap(),
    };
    let e = h
        .as_caller("bob")
        .state_job("a", None, unlock.clone())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("needs admin"), "{e}");
    assert!(server.lock().is_some());
    let d = state_job(&h, &mut rx, "dave", "a", unlock).await;
    succeeded(&h, &d, "a").await;
    assert!(server.lock().is_none(), "released");
    let log = log_text(&h, d.run.id, step(&d, "operation/a.state").id).await;
    assert!(
        log.contains(&format!("$ terraform force-unlock -force {lock_id}")),
        "{log}"
    );
    let audit = audit_of(&h, d.run.id).await;
    assert_eq!(audit[0].actor, "dave");
    assert_eq!(
        audit[0].target.as_deref(),
        Some(format!("state unlock {lock_id} on a").as_str())
    );
    // An unlock is not repeated.
    let e = h.rerun(d.run.id, false).await.unwrap_err();
    assert!(e.to_string().contains("a force-unlock is not rerun"), "{e}");

    // And the job goes through now.
    let job = h
        .as_caller("bob")
        .trigger_stack_job("a", None, "update")
        .await
        .unwrap();
    let ok = wait_done(&h, &mut rx, job.id).await;
    assert_eq!(ok.run.status, RunStatus::Succeeded, "{ok:#?}");
}
