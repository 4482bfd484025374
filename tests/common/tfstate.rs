//! The project the state-job tests share (tests/terraform_state*.rs): a module of
//! terraform_data resources, projects with roles and a gated environment, and helpers
//! to run state jobs and read what they did.

use std::path::{Path, PathBuf};
use std::process::Command;

use pipedeck::api::EngineClient;
use pipedeck::config::load_project;
use pipedeck::domain::state_op::{Address, StateOp};
use pipedeck::domain::{Event, RunDetail, RunStatus, StepStatus};
use pipedeck::engine::EngineHandle;
use pipedeck::engine::executor::terraform::find_binary;
use pipedeck::store::AuditEntry;

use super::{step, wait_done};

pub fn iac_binary() -> PathBuf {
    find_binary("terraform", None).expect("neither terraform nor tofu is on PATH")
}

pub fn a(s: &str) -> Address {
    Address::parse(s).unwrap()
}

/// A module of two terraform_data resources; with `hold = true`, a third whose
/// creation writes `applying` in `dir` and then sleeps (a long apply to kill).
pub fn module(dir: &Path) {
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
pub fn project(dir: &Path, backend: &str) -> pipedeck::config::Project {
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
pub fn local_state(data: &Path, project: &str, id: &str) -> Vec<(String, bool)> {
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

pub async fn log_text(h: &EngineHandle, run: i64, step_id: i64) -> String {
    h.logs(run, step_id, 0, 10_000)
        .await
        .unwrap()
        .iter()
        .map(|l| l.text.clone())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs a state job as `who` and waits for its end.
pub async fn state_job(
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
pub async fn assert_ok(h: &EngineHandle, d: &RunDetail) {
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
pub async fn succeeded(h: &EngineHandle, d: &RunDetail, resource: &str) {
    assert_ok(h, d).await;
    assert_eq!(
        step(d, &format!("operation/{resource}.state")).status,
        StepStatus::Succeeded
    );
}

pub async fn audit_of(h: &EngineHandle, run: i64) -> Vec<AuditEntry> {
    h.audit(run).await.unwrap()
}

/// `pipedeck` itself, on the test's project and data dir.
pub fn cli(dir: &Path, args: &[&str]) -> std::process::Output {
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

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}
