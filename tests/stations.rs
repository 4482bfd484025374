//! Releases and stations (DP-1..DP-3) on the real engine: real builds packed into the
//! artifact store, real station directories switched by symlink, real processes.

mod common;

use common::stations::*;
use common::tfstate::log_text;
use common::*;
use pipedeck::api::EngineClient;
use pipedeck::domain::command::{JobOutput, Request};
use pipedeck::domain::release::{Release, ReleaseEnv, ReleaseStatus, StationInfo};
use pipedeck::domain::{RunDetail, RunKind, RunStatus, StepStatus};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_build_fans_out_to_both_stations_rolls_back_and_a_held_release_is_not_deleted() {
    let p = project(false, "");
    let h = p.start().await;
    let mut rx = h.subscribe();
    let r1 = build(&h, &mut rx, "main").await;
    assert_eq!(r1.environment, ReleaseEnv::Production);
    assert!(r1.digest.as_deref().unwrap().starts_with("sha256:"));
    for s in ["edge-1", "edge-2"] {
        runs(&h, &mut rx, s, r1.id).await;
        assert_eq!(current_target(&p, s), format!("releases/{}", r1.id));
        assert_eq!(version(&p, s), r1.run_id.to_string());
    }
    let r2 = build(&h, &mut rx, "main").await;
    assert_ne!(r1.digest, r2.digest);
    for s in ["edge-1", "edge-2"] {
        runs(&h, &mut rx, s, r2.id).await;
        assert_eq!(version(&p, s), r2.run_id.to_string());
    }

    // Roll back: both stations are pinned to the release before.
    let after: Vec<StationInfo> = h
        .ask(Request::Rollback {
            service: "web".into(),
        })
        .await
        .unwrap();
    assert!(
        after.iter().all(|s| s.pinned && s.pending == Some(r1.id)),
        "{after:#?}"
    );
    for s in ["edge-1", "edge-2"] {
        runs(&h, &mut rx, s, r1.id).await;
        assert_eq!(version(&p, s), r1.run_id.to_string());
    }
    // Pinned: a new build does not move them.
    let r3 = build(&h, &mut rx, "main").await;
    let now = stations(&h).await;
    assert!(
        now.iter()
            .all(|s| s.current == Some(r1.id) && s.pending.is_none()),
        "{now:#?}"
    );

    // The release they are pinned to cannot go; the message names them.
    let err = h
        .ask::<Release>(Request::DeleteRelease { release: r1.id })
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("edge-1 (pinned, runs it)") && err.contains("edge-2"),
        "{err}"
    );
    // One nobody holds can.
    let gone: Release = h
        .ask(Request::DeleteRelease { release: r2.id })
        .await
        .unwrap();
    assert_eq!(gone.id, r2.id);
    assert!(
        !p.data_dir()
            .join("artifacts/sha256")
            .join(format!("{}.tar", &r2.digest.unwrap()[7..]))
            .exists()
            || wait_gone(&p, &gone).await
    );

    // Unpinned, they follow again: the newest release they follow.
    h.ask::<Vec<StationInfo>>(Request::UnpinStations {
        stations: vec!["edge-1".into(), "edge-2".into()],
    })
    .await
    .unwrap();
    for s in ["edge-1", "edge-2"] {
        runs(&h, &mut rx, s, r3.id).await;
    }
    // Every operation is in the audit log, by who did it.
    let audit: Vec<pipedeck::store::AuditEntry> =
        h.ask(Request::AuditLog { limit: 100 }).await.unwrap();
    for action in [
        "release_rollback",
        "release_delete",
        "station_unpin",
        "station_switch",
    ] {
        assert!(
            audit.iter().any(|a| a.action == action),
            "{action}: {audit:#?}"
        );
    }
    assert!(
        audit
            .iter()
            .any(|a| a.action == "release_delete" && a.actor == "tester")
    );
}

/// The artifact file goes after the delete's commit (off the runner): bounded wait.
async fn wait_gone(p: &TestProject, r: &Release) -> bool {
    let path = p
        .data_dir()
        .join("artifacts/sha256")
        .join(format!("{}.tar", &r.digest.as_deref().unwrap()[7..]));
    for _ in 0..500 {
        if !path.exists() {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_builds_store_one_artifact() {
    let p = project(true, "");
    let h = p.start().await;
    let mut rx = h.subscribe();
    let a = build(&h, &mut rx, "main").await;
    let b = build(&h, &mut rx, "main").await;
    assert_ne!(a.id, b.id);
    assert_eq!(a.digest, b.digest);
    let stored = std::fs::read_dir(p.data_dir().join("artifacts/sha256"))
        .unwrap()
        .count();
    assert_eq!(stored, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_in_flight_keeps_its_release_while_the_switch_waits() {
    let p = admin_project();
    let (h, mut rx, r1) = on_a_first_release(&p).await;
    let err = h
        .as_caller("bob")
        .ask::<JobOutput>(Request::StationExec {
            station: "edge-1".into(),
            argv: vec!["true".into()],
        })
        .await
        .unwrap_err();
    assert!(err.to_string().contains("needs admin"), "{err}");

    // A job that reads its release's version, waits to be let go, then reads it again.
    let t = p.path().display().to_string();
    let job = {
        let h = h.clone();
        let script = format!(
            "cat dist/version; touch {t}/started; i=0; while [ ! -f {t}/go ]; do \
             i=$((i+1)); [ $i -gt 6000 ] && exit 9; sleep 0.01; done; cat dist/version; \
             echo $PIPEDECK_RELEASE_ID"
        );
        tokio::spawn(async move {
            h.ask::<JobOutput>(Request::StationExec {
                station: "edge-1".into(),
                argv: vec!["sh".into(), "-c".into(), script],
            })
            .await
        })
    };
    if !wait_file(&p.file("started")).await {
        panic!("the job never started: {:?}", job.await);
    }
    let r2 = build(&h, &mut rx, "main").await;
    // edge-2 has no job: it switches; edge-1 waits for its job.
    runs(&h, &mut rx, "edge-2", r2.id).await;
    let now = stations(&h).await;
    let e1 = now.iter().find(|s| s.name == "edge-1").unwrap();
    assert_eq!(
        (e1.current, e1.pending, e1.jobs),
        (Some(r1.id), Some(r2.id), 1),
        "{e1:#?}"
    );
    // The switch is a unit of the rollout run, queued behind the job, saying so.
    let rollout = e1.switch_run.expect("a rollout");
    assert_eq!(
        e1.waiting_for(),
        Some(format!("1 job in flight (rollout run {rollout})"))
    );
    wait_step(&mut rx, rollout, "switch/edge-2", "succeeded").await;
    let d: RunDetail = h.ask(Request::Detail { run_id: rollout }).await.unwrap();
    assert_eq!(d.run.kind, RunKind::Rollout);
    assert_eq!(d.run.release, Some(r2.id));
    let row = step(&d, "switch/edge-1");
    assert_eq!(row.status, StepStatus::Queued, "{row:#?}");
    assert_eq!(
        row.reason.as_deref(),
        Some("waits for 1 job in flight on station edge-1")
    );
    assert_eq!(current_target(&p, "edge-1"), format!("releases/{}", r1.id));

    std::fs::write(p.file("go"), "").unwrap();
    let out = job.await.unwrap().unwrap();
    assert_eq!(out.exit_code, Some(0), "{out:#?}");
    assert_eq!(out.release, r1.id);
    let v1 = r1.run_id.to_string();
    assert_eq!(out.stdout, format!("{v1}\n{v1}\n{}\n", r1.id));
    // Then the switch happens, and its log says what it did.
    runs(&h, &mut rx, "edge-1", r2.id).await;
    assert_eq!(version(&p, "edge-1"), r2.run_id.to_string());
    let done = wait_done(&h, &mut rx, rollout).await;
    assert_eq!(done.run.status, RunStatus::Succeeded, "{done:#?}");
    let log = log_text(&h, rollout, step(&done, "switch/edge-1").id).await;
    assert!(
        log.contains(&format!(
            "switching station edge-1 from release {} to release {}",
            r1.id, r2.id
        )),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_preview_is_promoted_to_the_production_stations() {
    let p = project(
        false,
        r#"
[stations.preview]
service = "web"
previews = true
dir = "stations/preview"
"#,
    );
    let h = p.start().await;
    let mut rx = h.subscribe();
    let r1 = build(&h, &mut rx, "main").await;
    runs(&h, &mut rx, "edge-1", r1.id).await;
    // A branch besides main: its builds are previews.
    let repo = p.data_dir().join("repos/web");
    let git = std::process::Command::new("git")
        .arg("-C")
        .arg(&repo)
        .args(["branch", "feature"])
        .status()
        .unwrap();
    assert!(git.success());
    let pr = build(&h, &mut rx, "feature").await;
    assert_eq!(pr.environment, ReleaseEnv::Preview);
    runs(&h, &mut rx, "preview", pr.id).await;
    let now = stations(&h).await;
    assert!(
        now.iter()
            .filter(|s| s.name != "preview")
            .all(|s| s.current == Some(r1.id) && s.pending.is_none()),
        "a preview does not reach production stations: {now:#?}"
    );
    // Only a ready preview can be promoted.
    let err = h
        .ask::<Release>(Request::PromoteRelease { release: r1.id })
        .await
        .unwrap_err();
    assert!(err.to_string().contains("only a ready preview"), "{err}");
    let promoted: Release = h
        .ask(Request::PromoteRelease { release: pr.id })
        .await
        .unwrap();
    assert_eq!(promoted.environment, ReleaseEnv::Production);
    assert_eq!(
        (promoted.promoted_from, &promoted.digest),
        (Some(pr.id), &pr.digest)
    );
    for s in ["edge-1", "edge-2"] {
        runs(&h, &mut rx, s, promoted.id).await;
        assert_eq!(version(&p, s), pr.run_id.to_string());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_build_is_a_failed_release_that_cannot_be_pinned() {
    let p = TestProject::new(&format!(
        r#"{HEADER}
[services.web]
repo_seed = "src"
artifact = ["dist/**"]
[[services.web.steps]]
name = "build"
run = "exit 3"
[stations.edge-1]
service = "web"
dir = "stations/edge-1"
"#
    ));
    let h = p.start().await;
    let mut rx = h.subscribe();
    let run = h.trigger(trigger("web")).await.unwrap();
    wait_done(&h, &mut rx, run.id).await;
    let rels: Vec<Release> = h
        .ask(Request::ListReleases {
            service: None,
            limit: None,
        })
        .await
        .unwrap();
    assert_eq!(rels.len(), 1);
    assert_eq!(rels[0].status, ReleaseStatus::Failed);
    let err = h
        .ask::<Vec<StationInfo>>(Request::PinRelease {
            release: rels[0].id,
            stations: vec!["edge-1".into()],
        })
        .await
        .unwrap_err();
    assert!(err.to_string().contains("only a ready release"), "{err}");
    assert_eq!(stations(&h).await[0].current, None);
}

/// The stations project where the test's account is an admin: a station job runs
/// any command as the engine's account, so only admins may start one.
fn admin_project() -> TestProject {
    project(
        false,
        "[access]\nusers = { tester = \"admin\" }\ndefault = \"operator\"\n",
    )
}

/// The engine on `p`, once both stations run a first release.
async fn on_a_first_release(
    p: &TestProject,
) -> (
    pipedeck::engine::EngineHandle,
    tokio::sync::broadcast::Receiver<pipedeck::domain::Event>,
    Release,
) {
    let h = p.start().await;
    let mut rx = h.subscribe();
    let r1 = build(&h, &mut rx, "main").await;
    for s in ["edge-1", "edge-2"] {
        runs(&h, &mut rx, s, r1.id).await;
    }
    (h, rx, r1)
}

/// Starts a station job on `station` that holds its release until the file `go`
/// appears in the project; returns once the job runs.
async fn hold_station(
    h: &pipedeck::engine::EngineHandle,
    p: &TestProject,
    station: &str,
) -> tokio::task::JoinHandle<Result<JobOutput, pipedeck::engine::EngineError>> {
    let t = p.path().display().to_string();
    let script = format!(
        "touch {t}/started; i=0; while [ ! -f {t}/go ]; do i=$((i+1)); \
         [ $i -gt 6000 ] && exit 9; sleep 0.01; done"
    );
    let job = {
        let (h, station) = (h.clone(), station.to_string());
        tokio::spawn(async move {
            h.ask::<JobOutput>(Request::StationExec {
                station,
                argv: vec!["sh".into(), "-c".into(), script],
            })
            .await
        })
    };
    assert!(wait_file(&p.file("started")).await, "the job never started");
    job
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_switch_waiting_for_its_idle_window_is_cancelled_or_outlives_a_restart() {
    let p = admin_project();
    let (h, mut rx, r1) = on_a_first_release(&p).await;
    let job = hold_station(&h, &p, "edge-1").await;

    // Cancelled while it waits: edge-1 stays on r1 and says why.
    let r2 = build(&h, &mut rx, "main").await;
    runs(&h, &mut rx, "edge-2", r2.id).await;
    let e1 = stations(&h).await.into_iter().find(|s| s.name == "edge-1");
    let rollout = e1.unwrap().switch_run.expect("a rollout");
    h.cancel(rollout).await.unwrap();
    let done = wait_done(&h, &mut rx, rollout).await;
    assert_eq!(done.run.status, RunStatus::Cancelled, "{done:#?}");
    let e1 = stations(&h).await.into_iter().find(|s| s.name == "edge-1");
    let e1 = e1.unwrap();
    assert_eq!((e1.current, e1.pending), (Some(r1.id), None), "{e1:#?}");
    let error = e1.error.unwrap_or_default();
    assert!(
        error.contains(&format!("the switch to release {} was cancelled", r2.id)),
        "{error}"
    );
    assert_eq!(current_target(&p, "edge-1"), format!("releases/{}", r1.id));

    // The next one waits too, and the engine stops meanwhile: the switch stays
    // pending, and the next engine makes it once the job has ended.
    let r3 = build(&h, &mut rx, "main").await;
    runs(&h, &mut rx, "edge-2", r3.id).await;
    h.shutdown().await;
    std::fs::write(p.file("go"), "").unwrap();
    assert_eq!(job.await.unwrap().unwrap().exit_code, Some(0));
    assert_eq!(current_target(&p, "edge-1"), format!("releases/{}", r1.id));
    let h = p.start().await;
    let mut rx = h.subscribe();
    runs(&h, &mut rx, "edge-1", r3.id).await;
    assert_eq!(version(&p, "edge-1"), r3.run_id.to_string());
}
