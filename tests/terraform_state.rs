//! State jobs (issue 22 parts 2 and 3): a deployed resource's Terraform state listed,
//! shown, tainted, untainted, removed from, imported into and moved in, each as a
//! stack job with its log, gated like apply and audited with who and what; a stale
//! lock shown with its id and released by an admin only.
//!
//! The tests that run Terraform are ignored by a plain `cargo test`: they need
//! `terraform` or `tofu` (1.4 or later, for terraform_data) on PATH; `.ci/run` runs
//! them with `--ignored` where one is. The refusals need no binary and always run.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::tfstate_http::StateServer;
use common::*;
use pipedeck::api::EngineClient;
use pipedeck::config::load_project;
use pipedeck::domain::state_op::{Address, ImportId, LockId, StateOp};
use pipedeck::domain::{Decision, Event, Request, RunDetail, RunStatus, StepStatus};
use pipedeck::engine::EngineHandle;
use pipedeck::engine::executor::terraform::find_binary;
use pipedeck::store::AuditEntry;

fn iac_binary() -> PathBuf {
    find_binary("terraform", None).expect("neither terraform nor tofu is on PATH")
}

fn a(s: &str) -> Address {
    Address::parse(s).unwrap()
}

/// A module of two terraform_data resources; with `hold = true`, a third whose
/// creation writes `applying` in `dir` and then sleeps (a long apply to kill).
fn module(dir: &Path) {
    std::fs::create_dir_all(dir.join("mod")).unwrap();
    std::fs::write(
        dir.join("mod/main.tf"),
        format!(
            r#"variable "value" {{ type = string }}
variable "hold" {{
  type    = bool
  default = false
}}
resource "terraform_data" "thing" {{ input = var.value }}
resource "terraform_data" "other" {{ input = "${{var.value}}-2" }}
resource "terraform_data" "wait" {{
  count = var.hold ? 1 : 0
  provisioner "local-exec" {{
    command = "touch {d}/applying && sleep 120"
  }}
}}
output "value" {{ value = terraform_data.thing.output }}
"#,
            d = dir.display()
        ),
    )
    .unwrap();
}

/// Project `d` (resource `a` on terraform, `script` on the command driver) and
/// project `g` (resource `b`, its environment gated), with roles for bob (operator),
/// carol (viewer) and dave (admin); `backend`: a backend table for `a`.
fn project(dir: &Path, backend: &str) -> pipedeck::config::Project {
    module(dir);
    let toml = format!(
        r#"
[environments.dev]
[environments.prod]

[access.users]
bob = "operator"
carol = "viewer"
dave = "admin"

[infra.d]
environment = "dev"
driver = "terraform"
module = "mod"

[[infra.d.resources]]
id = "a"
kind = "terraform_data"
inputs = {{ value = "one" }}
{backend}

[[infra.d.resources]]
id = "script"
kind = "script"
driver = "command"
commands = {{ apply = "true" }}

[infra.g]
environment = "prod"
approval = true
driver = "terraform"
module = "mod"

[[infra.g.resources]]
id = "b"
kind = "terraform_data"
inputs = {{ value = "two" }}

[infra.pgp]
environment = "prod"
driver = "terraform"
module = "mod"

[[infra.pgp.resources]]
id = "p"
kind = "terraform_data"
backend = {{ type = "pg", config = {{ conn_str = "postgres://127.0.0.1:1/none" }} }}
"#
    );
    std::fs::write(dir.join("pipedeck.toml"), toml).unwrap();
    load_project(&dir.join("pipedeck.toml")).unwrap()
}

/// The addresses in a local state file, with whether each is tainted.
fn local_state(data: &Path, project: &str, id: &str) -> Vec<(String, bool)> {
    let p = data
        .join("infra")
        .join(project)
        .join(id)
        .join("terraform.tfstate");
    let st: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())),
    )
    .unwrap();
    let mut out: Vec<(String, bool)> = st["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["instances"].as_array().is_some_and(|i| !i.is_empty()))
        .map(|r| {
            (
                format!(
                    "{}.{}",
                    r["type"].as_str().unwrap(),
                    r["name"].as_str().unwrap()
                ),
                r["instances"][0]["status"] == "tainted",
            )
        })
        .collect();
    out.sort();
    out
}

async fn log_text(h: &EngineHandle, run: i64, step_id: i64) -> String {
    h.logs(run, step_id, 0, 10_000)
        .await
        .unwrap()
        .iter()
        .map(|l| l.text.clone())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs a state job as `who` and waits for its end.
async fn state_job(
    h: &EngineHandle,
    rx: &mut tokio::sync::broadcast::Receiver<Event>,
    who: &str,
    resource: &str,
    op: StateOp,
) -> RunDetail {
    let run = h
        .as_caller(who)
        .state_job(resource, None, op)
        .await
        .unwrap();
    wait_done(h, rx, run.id).await
}

/// The run succeeded, else the assertion shows its logs.
async fn assert_ok(h: &EngineHandle, d: &RunDetail) {
    if d.run.status != RunStatus::Succeeded {
        let mut logs = String::new();
        for s in &d.steps {
            logs.push_str(&format!(
                "--- {}\n{}\n",
                s.path(),
                log_text(h, d.run.id, s.id).await
            ));
        }
        panic!("{d:#?}\n{logs}");
    }
}

/// The state job succeeded, else the assertion shows its logs.
async fn succeeded(h: &EngineHandle, d: &RunDetail, resource: &str) {
    assert_ok(h, d).await;
    assert_eq!(
        step(d, &format!("operation/{resource}.state")).status,
        StepStatus::Succeeded
    );
}

async fn audit_of(h: &EngineHandle, run: i64) -> Vec<AuditEntry> {
    h.audit(run).await.unwrap()
}

#[ignore = "needs terraform or tofu >= 1.4 on PATH (no registry here provides one); .ci/run runs it with --ignored where one is"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_operations_change_a_deployed_resource_and_are_audited() {
    iac_binary();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let (h, _) = pipedeck::engine::start(project(tmp.path(), ""), &data)
        .await
        .unwrap();
    let mut rx = h.subscribe();
    let run = h.trigger_infra("d", false).await.unwrap();
    let done = wait_done(&h, &mut rx, run.id).await;
    assert_ok(&h, &done).await;

    // list: the addresses, in the unit's outputs and in its log.
    let d = state_job(&h, &mut rx, "bob", "a", StateOp::List).await;
    succeeded(&h, &d, "a").await;
    let st = step(&d, "operation/a.state");
    assert_eq!(
        st.outputs.as_ref().unwrap()["addresses"],
        serde_json::json!(["terraform_data.other", "terraform_data.thing"])
    );
    assert!(d.gates.is_empty(), "a list waits for no gate");
    assert_eq!(d.run.what(), "state job: list on a");
    // init ran first, as for plan and apply.
    assert_eq!(step(&d, "operation/a.init").status, StepStatus::Succeeded);

    // taint both: each its own `terraform taint`, in the one log.
    let both = vec![a("terraform_data.other"), a("terraform_data.thing")];
    let d = state_job(&h, &mut rx, "bob", "a", StateOp::Taint { addresses: both }).await;
    succeeded(&h, &d, "a").await;
    assert_eq!(
        local_state(&data, "d", "a"),
        vec![
            ("terraform_data.other".into(), true),
            ("terraform_data.thing".into(), true)
        ]
    );
    let log = log_text(&h, d.run.id, step(&d, "operation/a.state").id).await;
    assert!(
        log.contains("$ terraform taint terraform_data.other")
            && log.contains("$ terraform taint terraform_data.thing"),
        "{log}"
    );
    // Audited: who, and what exactly.
    let audit = audit_of(&h, d.run.id).await;
    assert_eq!(audit[0].actor, "bob");
    assert_eq!(audit[0].action, "trigger");
    assert_eq!(
        audit[0].target.as_deref(),
        Some("state taint terraform_data.other, terraform_data.thing on a")
    );

    // untaint one.
    let op = StateOp::Untaint {
        addresses: vec![a("terraform_data.thing")],
    };
    succeeded(&h, &state_job(&h, &mut rx, "bob", "a", op).await, "a").await;
    assert_eq!(
        local_state(&data, "d", "a"),
        vec![
            ("terraform_data.other".into(), true),
            ("terraform_data.thing".into(), false)
        ]
    );

    // rm: the state forgets it.
    let op = StateOp::Rm {
        addresses: vec![a("terraform_data.other")],
    };
    let d = state_job(&h, &mut rx, "bob", "a", op).await;
    succeeded(&h, &d, "a").await;
    assert_eq!(
        local_state(&data, "d", "a"),
        vec![("terraform_data.thing".into(), false)]
    );
    assert_eq!(
        audit_of(&h, d.run.id).await[0].target.as_deref(),
        Some("state rm terraform_data.other on a")
    );

    // import: taken back in under a given id.
    let op = StateOp::Import {
        address: a("terraform_data.other"),
        id: ImportId::parse("other-id").unwrap(),
    };
    succeeded(&h, &state_job(&h, &mut rx, "bob", "a", op).await, "a").await;
    assert_eq!(
        local_state(&data, "d", "a"),
        vec![
            ("terraform_data.other".into(), false),
            ("terraform_data.thing".into(), false)
        ]
    );

    // mv: renamed in the state.
    let op = StateOp::Mv {
        from: a("terraform_data.thing"),
        to: a("terraform_data.moved"),
    };
    let d = state_job(&h, &mut rx, "bob", "a", op).await;
    succeeded(&h, &d, "a").await;
    assert_eq!(
        local_state(&data, "d", "a"),
        vec![
            ("terraform_data.moved".into(), false),
            ("terraform_data.other".into(), false)
        ]
    );
    assert_eq!(
        audit_of(&h, d.run.id).await[0].target.as_deref(),
        Some("state mv terraform_data.thing → terraform_data.moved on a")
    );

    // show: Terraform's view of one resource, in the log.
    let op = StateOp::Show {
        address: a("terraform_data.other"),
    };
    let d = state_job(&h, &mut rx, "bob", "a", op).await;
    succeeded(&h, &d, "a").await;
    let log = log_text(&h, d.run.id, step(&d, "operation/a.state").id).await;
    assert!(log.contains("# terraform_data.other:"), "{log}");
    assert!(log.contains("\"other-id\""), "{log}");

    // A rerun repeats the same operation on the same address.
    let again = h.as_caller("bob").rerun(d.run.id, false).await.unwrap();
    let again = wait_done(&h, &mut rx, again.id).await;
    succeeded(&h, &again, "a").await;
    assert_eq!(again.run.state_op, d.run.state_op);
}

/// Who may do what, checked by the engine before anything runs (no binary needed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_may_not_and_only_admins_force_a_lock() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let (h, _) = pipedeck::engine::start(project(tmp.path(), ""), &data)
        .await
        .unwrap();
    let taint = StateOp::Taint {
        addresses: vec![a("terraform_data.thing")],
    };
    let unlock = StateOp::Unlock {
        lock_id: LockId::parse("f000a53a-fd7e").unwrap(),
    };
    let carol = h.as_caller("carol");
    let e = carol.state_job("a", None, StateOp::List).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "carol may not trigger runs: role viewer, needs operator (roles: [access] in the project file)"
    );
    let e = carol.state_job("a", None, taint.clone()).await.unwrap_err();
    assert!(
        e.to_string()
            .starts_with("carol may not change Terraform state: role viewer, needs operator"),
        "{e}"
    );
    let e = h
        .as_caller("bob")
        .state_job("a", None, unlock.clone())
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("bob may not force-unlock Terraform state: role operator, needs admin"),
        "{e}"
    );
    // Refusals are audited with who and what.
    let log: Vec<AuditEntry> = h.ask(Request::AuditLog { limit: 100 }).await.unwrap();
    let refused: Vec<(&str, &str)> = log
        .iter()
        .filter(|e| e.action == AuditEntry::REFUSED)
        .map(|e| (e.actor.as_str(), e.target.as_deref().unwrap_or("")))
        .collect();
    assert_eq!(
        refused,
        vec![
            ("carol", "state list on a"),
            ("carol", "state taint terraform_data.thing on a"),
            ("bob", "state unlock f000a53a-fd7e on a"),
        ]
    );
    // A pg lock is a session's advisory lock: force-unlock cannot release it, and the
    // engine says so rather than report Terraform's hollow success.
    let e = h
        .as_caller("dave")
        .state_job("p", None, unlock)
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("PostgreSQL advisory locks held by a live session"),
        "{e}"
    );
    // State operations are Terraform's: a command-driver resource has none.
    let e = h
        .as_caller("bob")
        .state_job("script", None, StateOp::List)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("uses the command driver"), "{e}");
    // An address that is not one never reaches the engine as a value, even as JSON.
    let bad = serde_json::from_str::<Request>(
        r#"{"request":"state_job","resource":"a","op":{"op":"rm","addresses":["-lock=false"]}}"#,
    );
    assert!(bad.is_err());
    let e = h
        .as_caller("bob")
        .state_job("a", None, StateOp::Rm { addresses: vec![] })
        .await
        .unwrap_err();
    assert_eq!(e.to_string(), "rm needs at least one address");
    // Nothing ran.
    assert!(h.runs(Default::default()).await.unwrap().is_empty());
}

#[ignore = "needs terraform or tofu >= 1.4 on PATH (no registry here provides one); .ci/run runs it with --ignored where one is"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_change_waits_for_the_approval_apply_would() {
    iac_binary();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let (h, _) = pipedeck::engine::start(project(tmp.path(), ""), &data)
        .await
        .unwrap();
    let mut rx = h.subscribe();
    // Deploy g (its environment gate approved by dave).
    let run = h.trigger_infra("g", false).await.unwrap();
    wait_for(
        &mut rx,
        |e| matches!(e, Event::Gate { gate } if gate.run_id == run.id),
    )
    .await;
    h.as_caller("dave")
        .decide(run.id, "prod", Decision::Approve, None)
        .await
        .unwrap();
    let done = wait_done(&h, &mut rx, run.id).await;
    assert_ok(&h, &done).await;

    // A list reads: no gate.
    let d = state_job(&h, &mut rx, "bob", "b", StateOp::List).await;
    succeeded(&h, &d, "b").await;
    assert!(d.gates.is_empty());

    // A taint changes the state: it waits at the environment's gate, nothing run yet.
    let op = StateOp::Taint {
        addresses: vec![a("terraform_data.thing")],
    };
    let run = h.as_caller("bob").state_job("b", None, op).await.unwrap();
    wait_for(
        &mut rx,
        |e| matches!(e, Event::Gate { gate } if gate.run_id == run.id),
    )
    .await;
    let waiting = h.detail(run.id).await.unwrap();
    assert_eq!(waiting.run.status, RunStatus::AwaitingApproval);
    assert_eq!(waiting.gates[0].env, "prod");
    assert!(
        waiting
            .steps
            .iter()
            .all(|s| s.status == StepStatus::Pending),
        "{waiting:#?}"
    );
    assert_eq!(
        local_state(&data, "g", "b"),
        vec![
            ("terraform_data.other".into(), false),
            ("terraform_data.thing".into(), false)
        ]
    );
    h.as_caller("dave")
        .decide(run.id, "prod", Decision::Approve, None)
        .await
        .unwrap();
    let d = wait_done(&h, &mut rx, run.id).await;
    succeeded(&h, &d, "b").await;
    assert_eq!(
        local_state(&data, "g", "b"),
        vec![
            ("terraform_data.other".into(), false),
            ("terraform_data.thing".into(), true)
        ]
    );
    let audit = audit_of(&h, run.id).await;
    let who: Vec<(&str, &str)> = audit
        .iter()
        .map(|e| (e.actor.as_str(), e.action.as_str()))
        .collect();
    assert_eq!(who[0], ("bob", "trigger"));
    assert!(who.iter().any(|(w, _)| *w == "dave"), "{audit:#?}");
}

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

/// `pipedeck` itself, on the test's project and data dir.
fn cli(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_pipedeck"))
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--project")
        .arg(dir.join("pipedeck.toml"))
        .args(args)
        .env_remove("PIPEDECK_DATA_DIR")
        .env_remove("PIPEDECK_SOCKET")
        .env("PIPEDECK_CONFIG", dir.join("no-user-config.toml"))
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[ignore = "needs terraform or tofu >= 1.4 on PATH (no registry here provides one); .ci/run runs it with --ignored where one is"]
#[test]
fn the_cli_lists_and_taints_and_refuses_what_is_not_an_address() {
    iac_binary();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    project(dir, "");
    // Nothing deployed: an empty state lists as nothing.
    let out = cli(dir, &["stack-job", "state", "a", "list"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        !text(&out.stdout).contains("terraform_data."),
        "{}",
        text(&out.stdout)
    );

    let out = cli(dir, &["infra", "run", "d", "--wait"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    let out = cli(dir, &["stack-job", "state", "a", "list"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    // Terraform's own output follows the job's progress.
    assert!(
        stdout.contains("\nterraform_data.other\nterraform_data.thing\n"),
        "{stdout}"
    );
    let out = cli(
        dir,
        &["stack-job", "state", "a", "taint", "terraform_data.thing"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout)
            .contains("Resource instance terraform_data.thing has been marked as tainted."),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(
        local_state(&dir.join("data"), "d", "a"),
        vec![
            ("terraform_data.other".into(), false),
            ("terraform_data.thing".into(), true)
        ]
    );
    // Not an address: refused before anything is sent, exit 2.
    let out = cli(dir, &["stack-job", "state", "a", "rm", "thing; rm -rf /"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("is not a Terraform resource address"),
        "{}",
        text(&out.stderr)
    );
    let out = cli(dir, &["stack-job", "unlock", "a", "not an id"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("is not a lock id"),
        "{}",
        text(&out.stderr)
    );
}

#[ignore = "needs terraform or tofu >= 1.4 on PATH (no registry here provides one) and tmux; .ci/run runs it with --ignored where one is"]
#[test]
fn the_state_view_taints_what_was_marked_in_a_real_terminal() {
    iac_binary();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    project(dir, "");
    let out = cli(dir, &["infra", "run", "d", "--wait"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));

    let t = common::tmux::Tmux {
        socket: format!("pipedeck-state-{}", std::process::id()),
    };
    let cmd = format!(
        "{} --data-dir {} --project {}",
        env!("CARGO_BIN_EXE_pipedeck"),
        dir.join("data").display(),
        dir.join("pipedeck.toml").display()
    );
    let started = t.cmd(&[
        "new-session",
        "-d",
        "-s",
        "pd",
        "-x",
        "120",
        "-y",
        "36",
        "-c",
        &dir.display().to_string(),
        "-e",
        &format!("PIPEDECK_CONFIG={}", dir.join("none.toml").display()),
        &cmd,
    ]);
    assert!(started.status.success(), "tmux: {}", text(&started.stderr));
    t.wait_for("runs (");
    t.keys(&[":"]);
    t.wait_for("jump to");
    t.keys(&["-l", "state a"]);
    t.keys(&["Enter"]);
    // A list job fills the view.
    t.wait_for("[ ] terraform_data.thing");
    t.wait_for("2 resources, listed by job 2");
    t.keys(&["Space", "j", "Space"]);
    t.wait_for("2 marked");
    t.keys(&["t"]);
    t.wait_for("Taint 2 resources in the state of a:");
    t.keys(&["y"]);
    // The change runs, then the view lists again.
    t.wait_for(
        "job 3: state job: taint terraform_data.other, terraform_data.thing on a (succeeded)",
    );
    t.wait_for("listed by job 4");
    assert_eq!(
        local_state(&dir.join("data"), "d", "a"),
        vec![
            ("terraform_data.other".into(), true),
            ("terraform_data.thing".into(), true)
        ]
    );
    // enter: the change job's log.
    t.keys(&["Enter"]);
    t.wait_for("stack job 3");
    t.keys(&["q"]);
}
