//! Builders and helpers shared by the behaviour tests.
#![allow(dead_code)]

pub mod bin;
pub mod git;
pub mod http;
pub mod stations;
pub mod tfstate;
pub mod tfstate_http;
pub mod tmux;

use std::path::{Path, PathBuf};
use std::time::Duration;

use pipedeck::api::EngineClient;
use pipedeck::config::{Project, parse_project};
use pipedeck::domain::{Event, RunDetail};
use pipedeck::engine::{self, EngineHandle, TriggerRequest};
use tokio::sync::broadcast;

/// A temporary project: a folder with a seed repo (`src/`) and a data dir.
pub struct TestProject {
    pub dir: tempfile::TempDir,
}

impl TestProject {
    /// `services` is TOML for the `[services.*]` part; `repo_seed = "src"` is available.
    pub fn new(toml: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("src")).expect("mkdir");
        std::fs::write(dir.path().join("src/README"), "test service\n").expect("write");
        std::fs::write(dir.path().join("pipedeck.toml"), toml).expect("write");
        Self { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn project_file(&self) -> PathBuf {
        self.dir.path().join("pipedeck.toml")
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// A file inside the test folder, handy for steps that signal each other.
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn project(&self) -> Project {
        let text = std::fs::read_to_string(self.project_file()).expect("read");
        parse_project(&self.project_file(), &text).unwrap_or_else(|e| {
            panic!(
                "{}",
                e.iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("\n")
            )
        })
    }

    /// Starts an engine on this project; the handle acts as `tester`.
    pub async fn start(&self) -> EngineHandle {
        let (h, _task) = engine::start(self.project(), &self.data_dir())
            .await
            .expect("engine starts");
        h.as_caller("tester")
    }
}

pub fn trigger(service: &str) -> TriggerRequest {
    TriggerRequest {
        service: service.to_string(),
        branch: None,
        commit: None,
        allow_older: false,
    }
}

/// Waits for the first event matching `pred`, failing after a generous bound
/// (a hang guard, never a timing assertion).
pub async fn wait_for(
    rx: &mut broadcast::Receiver<Event>,
    mut pred: impl FnMut(&Event) -> bool,
) -> Event {
    let fut = async {
        loop {
            match rx.recv().await {
                Ok(e) if pred(&e) => return e,
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("event stream ended: {e}"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(120), fut)
        .await
        .expect("the awaited event never came")
}

/// Waits until run `id` reaches a terminal status; returns its detail.
pub async fn wait_done(
    h: &EngineHandle,
    rx: &mut broadcast::Receiver<Event>,
    id: i64,
) -> RunDetail {
    // It may have ended before we subscribed.
    let d = h.detail(id).await.expect("detail");
    if !d.run.status.is_terminal() {
        wait_for(
            rx,
            |e| matches!(e, Event::Run { run } if run.id == id && run.status.is_terminal()),
        )
        .await;
    }
    h.detail(id).await.expect("detail")
}

/// Waits until step `path` of run `id` reaches `status` (by event).
pub async fn wait_step(rx: &mut broadcast::Receiver<Event>, id: i64, path: &str, status: &str) {
    wait_for(rx, |e| {
        matches!(e, Event::Step { step } if step.run_id == id && step.path() == path && step.status.as_str() == status)
    })
    .await;
}

pub fn step<'a>(d: &'a RunDetail, path: &str) -> &'a pipedeck::domain::StepInfo {
    d.steps
        .iter()
        .find(|s| s.path() == path)
        .unwrap_or_else(|| panic!("no step {path}"))
}

/// The project header every test project starts with.
pub const HEADER: &str = r#"
[engine]
concurrency = 4
kill_grace = "2s"

[environments.dev]
[environments.staging]
[environments.prod]
"#;

/// Whether process `pid` is gone (or only a zombie waiting to be reaped).
pub fn process_gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .and_then(|rest| rest.split_whitespace().next())
            .is_some_and(|state| state == "Z" || state == "X"),
    }
}

/// A service with a build step and a gate before prod (the CLI and recovery tests').
pub const GATED: &str = r#"
[services.gated]
repo_seed = "src"
environments = ["dev", "prod"]
[[services.gated.steps]]
name = "build"
run = "echo built"
[services.gated.deploy.dev]
run = "echo dev"
[services.gated.deploy.prod]
run = "echo prod"
approval = true
"#;

/// The `input` of the `terraform_data.thing` in the local Terraform state of a
/// resource's state dir `dir`.
pub fn tfstate_value(dir: &Path) -> serde_json::Value {
    let st: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("terraform.tfstate")).unwrap())
            .unwrap();
    st["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "thing")
        .map(|r| r["instances"][0]["attributes"]["input"]["value"].clone())
        .unwrap_or_default()
}

/// A Slurm cluster answers, or the test fails saying how to start one.
pub fn slurm_cluster() {
    let ok = std::process::Command::new("sinfo")
        .arg("-h")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "no Slurm cluster answers `sinfo`: start one with scripts/slurm-test-cluster.sh"
    );
}
