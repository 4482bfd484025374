//! Shared by the station tests: a project with two stations that follow `main`, a
//! build run to its release, and waits on what the stations run.

use std::path::Path;

use pipedeck::api::EngineClient;
use pipedeck::domain::command::Request;
use pipedeck::domain::release::{Release, ReleaseStatus, StationInfo};
use pipedeck::domain::{Event, RunStatus};
use pipedeck::engine::EngineHandle;
use tokio::sync::broadcast;

use super::{HEADER, TestProject, trigger, wait_done, wait_for};

/// A service whose build writes its run id (a different artifact per run, unless
/// `same` makes every build identical) and two stations that follow `main`.
pub fn project(same: bool, extra: &str) -> TestProject {
    let version = if same { "v1" } else { "$PIPEDECK_RUN_ID" };
    TestProject::new(&format!(
        r#"{HEADER}
[services.web]
repo_seed = "src"
artifact = ["dist/**"]
[[services.web.steps]]
name = "build"
run = "mkdir -p dist/assets && echo {version} > dist/version && echo app > dist/assets/app.js"

[stations.edge-1]
service = "web"
dir = "stations/edge-1"

[stations.edge-2]
service = "web"
dir = "stations/edge-2"
{extra}
"#
    ))
}

/// Runs a build of `branch` to its end and returns its release once ready.
pub async fn build(h: &EngineHandle, rx: &mut broadcast::Receiver<Event>, branch: &str) -> Release {
    let mut t = trigger("web");
    t.branch = Some(branch.into());
    let run = h.trigger(t).await.unwrap();
    let done = wait_done(h, rx, run.id).await;
    assert_eq!(done.run.status, RunStatus::Succeeded, "{done:#?}");
    let rels: Vec<Release> = h
        .ask(Request::ListReleases {
            service: Some("web".into()),
            limit: None,
        })
        .await
        .unwrap();
    let rel = rels
        .into_iter()
        .find(|r| r.run_id == run.id)
        .expect("a release");
    assert_eq!(rel.status, ReleaseStatus::Ready, "{rel:#?}");
    rel
}

/// Waits until station `name` runs release `id` (by event, bounded).
pub async fn runs(h: &EngineHandle, rx: &mut broadcast::Receiver<Event>, name: &str, id: i64) {
    let now = stations(h).await;
    if now.iter().any(|s| s.name == name && s.current == Some(id)) {
        return;
    }
    wait_for(rx, |e| {
        matches!(e, Event::Station { name: n, current, .. } if n == name && *current == Some(id))
    })
    .await;
}

pub async fn stations(h: &EngineHandle) -> Vec<StationInfo> {
    h.ask(Request::ListStations).await.unwrap()
}

pub fn version(p: &TestProject, station: &str) -> String {
    std::fs::read_to_string(
        p.path()
            .join(format!("stations/{station}/current/dist/version")),
    )
    .unwrap()
    .trim()
    .to_string()
}

pub fn current_target(p: &TestProject, station: &str) -> String {
    std::fs::read_link(p.path().join(format!("stations/{station}/current")))
        .unwrap()
        .display()
        .to_string()
}

/// Whether `path` appears within a generous bound.
pub async fn wait_file(path: &Path) -> bool {
    for _ in 0..3000 {
        if path.exists() {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    false
}
