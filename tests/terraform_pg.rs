//! Terraform state in a shared `pg` backend: one state per resource, the lock shown
//! when another apply holds it, no lock left behind by a cancelled apply.
//!
//! Ignored by a plain `cargo test`, with the reason: they need `terraform` or `tofu`
//! on PATH and a PostgreSQL server, which `scripts/pg-test-server.sh start` runs on a
//! temp dir and a loopback port (Debian's `postgresql` package); its URL goes in
//! `PIPEDECK_TEST_PG`. `.ci/run` does both and runs these with `--ignored`. Run with
//! `--ignored` without them, they fail saying what is missing.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use pipedeck::api::EngineClient;
use pipedeck::config::load_project;
use pipedeck::domain::{Event, RunStatus, StepStatus};
use pipedeck::engine::executor::terraform::find_binary;

const WHY: &str = "needs terraform or tofu on PATH and a PostgreSQL server (scripts/pg-test-server.sh start; PIPEDECK_TEST_PG=its URL); .ci/run runs it with --ignored";

fn iac_binary() -> PathBuf {
    find_binary("terraform", None).expect("neither terraform nor tofu is on PATH")
}

/// The test server's URL; a run without one fails, saying how to start it.
fn pg_url() -> String {
    std::env::var("PIPEDECK_TEST_PG").expect(
        "PIPEDECK_TEST_PG is not set: start the server with `scripts/pg-test-server.sh start` and export the URL it prints",
    )
}

fn psql(url: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args([url, "-Atc", sql])
        .output()
        .expect("psql (Debian's postgresql-client) is needed to read the server");
    assert!(
        out.status.success(),
        "psql: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A schema of its own for each test (the tests share one server).
fn schema(test: &str) -> String {
    format!("pd_{test}_{}", std::process::id())
}

/// Two resources, `a` then `b`, on the `pg` backend; `hold`: `a`'s apply waits for
/// the file `release` (in the test's folder) to exist, after writing `applying`.
fn project(dir: &Path, schema: &str) -> pipedeck::config::Project {
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
resource "terraform_data" "wait" {{
  count = var.hold ? 1 : 0
  input = var.value
  provisioner "local-exec" {{
    command = "touch {d}/applying && while [ ! -f {d}/release ]; do sleep 0.05; done"
  }}
}}
output "value" {{ value = terraform_data.thing.output }}
"#,
            d = dir.display()
        ),
    )
    .unwrap();
    let toml = format!(
        r#"
[environments.dev]

[infra.c]
environment = "dev"
driver = "terraform"
module = "mod"
backend = {{ type = "pg", config = {{ schema_name = "{schema}" }}, secrets = {{ conn_str = {{ env = "PIPEDECK_TEST_PG" }} }} }}

[[infra.c.resources]]
id = "a"
kind = "terraform_data"
inputs = {{ value = "one" }}

[[infra.c.resources]]
id = "b"
kind = "terraform_data"
inputs = {{ value = "${{a.outputs.value}}" }}
"#
    );
    std::fs::write(dir.join("pipedeck.toml"), toml).unwrap();
    load_project(&dir.join("pipedeck.toml")).unwrap()
}

/// Plain terraform on resource `a`'s state (its workspace in the same schema),
/// holding the state's lock until `release` exists.
fn hold_lock(dir: &Path, schema: &str, url: &str) -> std::process::Child {
    let work = dir.join("other");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::copy(dir.join("mod/main.tf"), work.join("main.tf")).unwrap();
    std::fs::write(
        work.join("backend_override.tf"),
        "terraform {\n  backend \"pg\" {}\n}\n",
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
        &format!("-backend-config=conn_str={url}"),
        &format!("-backend-config=schema_name={schema}"),
    ])
    .output()
    .unwrap();
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    // Every pg lock also takes the server-wide workspace-creation lock for a moment, so
    // the other tests' Terraform (other schemas, same server) can make one attempt
    // fail: wait for it, as the engine does (its pg default is PG_LOCK_TIMEOUT_MS).
    let select = tf(&["workspace", "new", "-lock-timeout=60s", "c.a"])
        .output()
        .unwrap();
    assert!(
        select.status.success(),
        "{}",
        String::from_utf8_lossy(&select.stderr)
    );
    tf(&[
        "apply",
        "-auto-approve",
        "-input=false",
        "-lock-timeout=60s",
        "-var",
        "value=other",
        "-var",
        "hold=true",
    ])
    .stdout(std::process::Stdio::null())
    .stderr(std::fs::File::create(dir.join("other.err")).unwrap())
    .spawn()
    .unwrap()
}

async fn log_text(h: &pipedeck::engine::EngineHandle, run: i64, step_id: i64) -> String {
    h.logs(run, step_id, 0, 10_000)
        .await
        .unwrap()
        .iter()
        .map(|l| l.text.clone())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The logs of a run's failed steps, for a failing assertion's message.
async fn failed_logs(
    h: &pipedeck::engine::EngineHandle,
    d: &pipedeck::domain::RunDetail,
) -> String {
    let mut out = String::new();
    for s in d.steps.iter().filter(|s| s.status == StepStatus::Failed) {
        out.push_str(&format!("--- {} ({:?})\n", s.name, s.reason));
        out.push_str(&log_text(h, d.run.id, s.id).await);
        out.push('\n');
    }
    out
}

#[ignore = "needs terraform or tofu on PATH and a PostgreSQL server (scripts/pg-test-server.sh start; PIPEDECK_TEST_PG=its URL); .ci/run runs it with --ignored"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_keeps_one_state_per_resource_and_undeploys() {
    let _ = WHY;
    iac_binary();
    let url = pg_url();
    let tmp = tempfile::tempdir().unwrap();
    let schema = schema("states");
    let data = tmp.path().join("data");
    let (h, _) = pipedeck::engine::start(project(tmp.path(), &schema), &data)
        .await
        .unwrap();
    let mut rx = h.subscribe();
    let run = h.trigger_infra("c", false).await.unwrap();
    let done = wait_done(&h, &mut rx, run.id).await;
    assert_eq!(
        done.run.status,
        RunStatus::Succeeded,
        "{}",
        failed_logs(&h, &done).await
    );
    assert_eq!(
        step(&done, "resource/b").outputs.as_ref().unwrap()["value"],
        "one"
    );
    // Each resource's state is its own workspace in the schema; nothing is local.
    assert_eq!(
        psql(
            &url,
            &format!("select name from {schema}.states order by name")
        ),
        "c.a\nc.b"
    );
    let a: serde_json::Value = serde_json::from_str(&psql(
        &url,
        &format!("select data from {schema}.states where name = 'c.a'"),
    ))
    .unwrap();
    assert_eq!(
        a["resources"][0]["instances"][0]["attributes"]["input"]["value"],
        "one"
    );
    assert!(!data.join("infra/c/a/terraform.tfstate").exists());
    // The connection string is a secret: never in a log.
    let init = step(&done, "operation/a.init");
    assert!(!log_text(&h, run.id, init.id).await.contains(&url));

    let un = h.trigger_infra("c", true).await.unwrap();
    let done = wait_done(&h, &mut rx, un.id).await;
    assert_eq!(done.run.status, RunStatus::Succeeded, "{done:#?}");
    for ws in ["c.a", "c.b"] {
        let st: serde_json::Value = serde_json::from_str(&psql(
            &url,
            &format!("select data from {schema}.states where name = '{ws}'"),
        ))
        .unwrap();
        assert!(st["resources"].as_array().unwrap().is_empty(), "{ws}: {st}");
    }
}

#[ignore = "needs terraform or tofu on PATH and a PostgreSQL server (scripts/pg-test-server.sh start; PIPEDECK_TEST_PG=its URL); .ci/run runs it with --ignored"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_state_fails_the_run_with_terraform_s_lock_message() {
    iac_binary();
    let url = pg_url();
    let tmp = tempfile::tempdir().unwrap();
    let schema = schema("lock");
    let data = tmp.path().join("data");
    let (h, _) = pipedeck::engine::start(project(tmp.path(), &schema), &data)
        .await
        .unwrap();
    // Someone else's apply holds a's state.
    let mut other = hold_lock(tmp.path(), &schema, &url);
    while !tmp.path().join("applying").exists() {
        assert!(
            other.try_wait().unwrap().is_none(),
            "the other apply ended: {}",
            std::fs::read_to_string(tmp.path().join("other.err")).unwrap()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let mut rx = h.subscribe();
    let run = h.trigger_infra("c", false).await.unwrap();
    let done = wait_done(&h, &mut rx, run.id).await;
    std::fs::write(tmp.path().join("release"), "").unwrap();
    assert!(other.wait().unwrap().success());

    assert_eq!(done.run.status, RunStatus::Failed);
    let preview = step(&done, "operation/a.preview");
    assert_eq!(preview.status, StepStatus::Failed);
    assert_eq!(
        preview.reason.as_deref(),
        Some(
            "the state is locked by another PostgreSQL session (the pg backend does not record who holds a lock; the lock info in this log is this job's own request); nothing was changed"
        )
    );
    let log = log_text(&h, run.id, preview.id).await;
    assert!(log.contains("Error acquiring the state lock"), "{log}");
    // A pg lock is the holding session's advisory lock: `terraform force-unlock` cannot
    // release it (it reports success and the lock stays), so even an admin is told so.
    let unlock = pipedeck::domain::state_op::StateOp::Unlock {
        lock_id: pipedeck::domain::state_op::LockId::parse("1").unwrap(),
    };
    let e = h
        .state_job("a", None, unlock)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("advisory locks held by a live session"), "{e}");
    // b never ran.
    assert_ne!(step(&done, "resource/b").status, StepStatus::Succeeded);

    // Once the other apply is done, the same run shape goes through.
    let run = h.trigger_infra("c", false).await.unwrap();
    let done = wait_done(&h, &mut rx, run.id).await;
    assert_eq!(done.run.status, RunStatus::Succeeded, "{done:#?}");
}

#[ignore = "needs terraform or tofu on PATH and a PostgreSQL server (scripts/pg-test-server.sh start; PIPEDECK_TEST_PG=its URL); .ci/run runs it with --ignored"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_apply_leaves_no_lock_behind() {
    iac_binary();
    pg_url();
    let tmp = tempfile::tempdir().unwrap();
    let schema = schema("cancel");
    let data = tmp.path().join("data");
    // a's apply holds (hold = true) until `release` exists.
    let toml = std::fs::read_to_string({
        project(tmp.path(), &schema);
        tmp.path().join("pipedeck.toml")
    })
    .unwrap()
    .replace(
        "inputs = { value = \"one\" }",
        "inputs = { value = \"one\", hold = true }",
    );
    std::fs::write(tmp.path().join("pipedeck.toml"), toml).unwrap();
    let (h, _) = pipedeck::engine::start(
        load_project(&tmp.path().join("pipedeck.toml")).unwrap(),
        &data,
    )
    .await
    .unwrap();
    let mut rx = h.subscribe();
    let run = h.trigger_infra("c", false).await.unwrap();
    wait_step(&mut rx, run.id, "operation/a.apply", "running").await;
    while !tmp.path().join("applying").exists() {
        wait_for(&mut rx, |e| matches!(e, Event::Log { .. })).await;
    }
    // SIGINT first (SJ-5): Terraform lets the provisioner finish, then unlocks.
    h.cancel(run.id).await.unwrap();
    std::fs::write(tmp.path().join("release"), "").unwrap();
    let done = wait_done(&h, &mut rx, run.id).await;
    assert_eq!(done.run.status, RunStatus::Cancelled);
    // No lock was left: the next run takes it at once and goes through. (The tests
    // share the server, so its lock table cannot be read for this test alone.)
    std::fs::remove_file(tmp.path().join("applying")).unwrap();
    let run = h.trigger_infra("c", false).await.unwrap();
    let done = wait_done(&h, &mut rx, run.id).await;
    assert_eq!(
        done.run.status,
        RunStatus::Succeeded,
        "{}",
        failed_logs(&h, &done).await
    );
    for op in ["a.preview", "a.apply"] {
        let s = step(&done, &format!("operation/{op}"));
        let log = log_text(&h, run.id, s.id).await;
        assert!(!log.contains("Error acquiring the state lock"), "{log}");
    }
}
