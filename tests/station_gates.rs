//! Gated station groups (DP-3) and old release directories (DP-2) on the real engine:
//! a switch of a gated group waits at an ordinary gate of its rollout run (the
//! build's downstream run), decided with `approve`/`reject` by the group's approvers; a station keeps only the
//! releases it may need and removes the others from disk after a switch.

mod common;

use common::stations::*;
use common::*;
use pipedeck::api::EngineClient;
use pipedeck::domain::command::{JobOutput, Request};
use pipedeck::domain::release::StationInfo;
use pipedeck::domain::{Decision, Event, GateInfo, GateStatus};
use pipedeck::engine::EngineHandle;
use tokio::sync::broadcast;

/// edge-1 is in the gated group `edge` (approver alice, who may not approve what she
/// built); edge-2 in no group.
const GATED_GROUP: &str = r#"
[station_groups.edge]
approval = true
approvers = ["alice", "carol"]
forbid_self_approval = true
"#;

fn gated_project() -> TestProject {
    gated_project_with("")
}

/// The gated project with more keys for the group.
fn gated_project_with(group_keys: &str) -> TestProject {
    let p = project(false, &format!("{GATED_GROUP}{group_keys}"));
    let toml = std::fs::read_to_string(p.project_file()).unwrap().replace(
        "dir = \"stations/edge-1\"",
        "dir = \"stations/edge-1\"\ngroup = \"edge\"",
    );
    std::fs::write(p.project_file(), toml).unwrap();
    p
}

fn decide(run_id: i64, decision: Decision, comment: Option<&str>) -> Request {
    Request::Decide {
        run_id,
        env: "stations:edge".into(),
        decision,
        comment: comment.map(str::to_string),
    }
}

fn station(list: &[StationInfo], name: &str) -> StationInfo {
    list.iter().find(|s| s.name == name).unwrap().clone()
}

/// edge-1 once `pred` holds for it (checked at each of its events, bounded).
async fn edge_1_until(
    h: &EngineHandle,
    rx: &mut broadcast::Receiver<Event>,
    pred: impl Fn(&StationInfo) -> bool,
) -> StationInfo {
    loop {
        let e1 = station(&stations(h).await, "edge-1");
        if pred(&e1) {
            return e1;
        }
        wait_for(
            rx,
            |e| matches!(e, Event::Station { name, .. } if name == "edge-1"),
        )
        .await;
    }
}

/// Waits until edge-1's switch to `id` waits at the group's gate; returns the gate.
async fn at_gate(h: &EngineHandle, rx: &mut broadcast::Receiver<Event>, id: i64) -> GateInfo {
    loop {
        let e1 = station(&stations(h).await, "edge-1");
        if e1.pending == Some(id)
            && let Some(g) = e1.awaiting
        {
            return g;
        }
        wait_for(rx, |e| {
            matches!(e, Event::Gate { gate } if gate.env == "stations:edge" && gate.status == GateStatus::Waiting)
                || matches!(e, Event::Station { .. })
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gated_group_switches_after_approval_and_stays_put_after_a_rejection() {
    let p = gated_project();
    let h = p.start().await;
    let alice = h.as_caller("alice");
    let mut rx = h.subscribe();

    // The ungated station switches at once; the gated one waits at its group's gate.
    let r1 = build(&h, &mut rx, "main").await;
    runs(&h, &mut rx, "edge-2", r1.id).await;
    let gate = at_gate(&h, &mut rx, r1.id).await;
    let e1 = station(&stations(&h).await, "edge-1");
    assert_eq!(
        (Some(gate.run_id), gate.env.as_str()),
        (e1.switch_run, "stations:edge")
    );
    assert_ne!(gate.run_id, r1.run_id);
    assert_eq!((e1.current, e1.pending), (None, Some(r1.id)), "{e1:#?}");
    assert_eq!(
        e1.waiting_for().unwrap(),
        format!("approval (pipedeck approve {} stations:edge)", gate.run_id)
    );
    assert!(!p.path().join("stations/edge-1/current").exists());
    // The approvals inbox lists it like every other gate.
    let waiting: Vec<GateInfo> = h.ask(Request::WaitingGates).await.unwrap();
    assert!(waiting.iter().any(|g| g.id == gate.id), "{waiting:#?}");

    // Only the group's approvers may decide it.
    let err = h
        .ask::<GateInfo>(decide(gate.run_id, Decision::Approve, None))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("not in approvers"), "{err}");
    let approved: GateInfo = alice
        .ask(decide(gate.run_id, Decision::Approve, None))
        .await
        .unwrap();
    assert_eq!(approved.status, GateStatus::Approved);
    runs(&h, &mut rx, "edge-1", r1.id).await;
    assert_eq!(version(&p, "edge-1"), r1.run_id.to_string());

    // The next build waits again; alice built it, so she may not approve it.
    let mut t = trigger("web");
    t.branch = Some("main".into());
    let run2 = alice.trigger(t).await.unwrap();
    wait_done(&h, &mut rx, run2.id).await;
    let r2 = build_release(&h, run2.id).await;
    let g2 = at_gate(&h, &mut rx, r2.id).await;
    let err = alice
        .ask::<GateInfo>(decide(g2.run_id, Decision::Approve, None))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("forbids self-approval"), "{err}");
    // carol rejects it: edge-1 stays on r1, says why, and does not try again.
    let rejected: GateInfo = h
        .as_caller("carol")
        .ask(decide(g2.run_id, Decision::Reject, Some("bad build")))
        .await
        .unwrap();
    assert_eq!(rejected.status, GateStatus::Rejected);
    let e1 = edge_1_until(&h, &mut rx, |s| s.pending.is_none()).await;
    assert_eq!(e1.current, Some(r1.id), "{e1:#?}");
    let error = e1.error.unwrap();
    assert!(
        error.contains("rejected by carol") && error.contains("bad build"),
        "{error}"
    );
    assert_eq!(version(&p, "edge-1"), r1.run_id.to_string());
    runs(&h, &mut rx, "edge-2", r2.id).await;

    // A build that comes while one waits supersedes its gate.
    let r3 = build(&h, &mut rx, "main").await;
    let g3 = at_gate(&h, &mut rx, r3.id).await;
    let r4 = build(&h, &mut rx, "main").await;
    let g4 = at_gate(&h, &mut rx, r4.id).await;
    // The older run's walk hears of the newer build and closes its gate: it may not
    // have yet when the newer gate opens.
    loop {
        let waiting: Vec<GateInfo> = h.ask(Request::WaitingGates).await.unwrap();
        assert!(waiting.iter().any(|g| g.id == g4.id), "{waiting:#?}");
        if !waiting.iter().any(|g| g.id == g3.id) {
            break;
        }
        wait_for(
            &mut rx,
            |e| matches!(e, Event::Gate { gate } if gate.id == g3.id),
        )
        .await;
    }

    // Every step is audited.
    let audit: Vec<pipedeck::store::AuditEntry> =
        h.ask(Request::AuditLog { limit: 200 }).await.unwrap();
    let has = |actor: &str, action: &str| {
        audit.iter().any(|a| {
            a.actor == actor
                && a.action == action
                && a.target
                    .as_deref()
                    .is_some_and(|t| t.starts_with("stations:edge"))
        })
    };
    assert!(has("alice", "approve"), "{audit:#?}");
    assert!(has("carol", "reject"), "{audit:#?}");
    assert!(has("pipedeck", "supersede_gate"), "{audit:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_switch_gate_outlives_a_restart() {
    let p = gated_project();
    let h = p.start().await;
    let mut rx = h.subscribe();
    let r1 = build(&h, &mut rx, "main").await;
    let gate = at_gate(&h, &mut rx, r1.id).await;
    h.shutdown().await;

    // The next engine finds the same gate waiting (not a second one), and it decides.
    let h = p.start().await;
    let mut rx = h.subscribe();
    let again = at_gate(&h, &mut rx, r1.id).await;
    assert_eq!(again.id, gate.id);
    let waiting: Vec<GateInfo> = h.ask(Request::WaitingGates).await.unwrap();
    assert_eq!(waiting.len(), 1, "{waiting:#?}");
    h.as_caller("alice")
        .ask::<GateInfo>(decide(gate.run_id, Decision::Approve, None))
        .await
        .unwrap();
    runs(&h, &mut rx, "edge-1", r1.id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_switch_gate_leaves_the_station_where_it_was() {
    let p = gated_project_with("expires_after = \"1ms\"\n");
    let h = p.start().await;
    let mut rx = h.subscribe();
    let r1 = build(&h, &mut rx, "main").await;
    runs(&h, &mut rx, "edge-2", r1.id).await;
    let e1 = edge_1_until(&h, &mut rx, |s| s.error.is_some()).await;
    assert_eq!((e1.current, e1.pending), (None, None), "{e1:#?}");
    let error = e1.error.unwrap();
    assert!(
        error.contains(&format!("the switch to release {} was rejected", r1.id))
            && error.contains("expired before anyone decided"),
        "{error}"
    );
    assert!(!p.path().join("stations/edge-1/current").exists());
}

/// The ready release of run `run_id`.
async fn build_release(h: &EngineHandle, run_id: i64) -> pipedeck::domain::release::Release {
    let rels: Vec<pipedeck::domain::release::Release> = h
        .ask(Request::ListReleases {
            service: Some("web".into()),
            limit: None,
        })
        .await
        .unwrap();
    rels.into_iter().find(|r| r.run_id == run_id).unwrap()
}

fn unpacked(p: &TestProject, station: &str) -> Vec<i64> {
    let mut ids: Vec<i64> =
        std::fs::read_dir(p.path().join(format!("stations/{station}/releases")))
            .unwrap()
            .filter_map(|e| e.unwrap().file_name().to_str()?.parse().ok())
            .collect();
    ids.sort_unstable();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_release_dirs_go_after_a_switch_but_not_while_a_job_uses_one() {
    // A station job runs any command as the engine's account: admins only.
    let p = project(
        false,
        "[access]\nusers = { tester = \"admin\" }\ndefault = \"operator\"\n",
    );
    let toml = std::fs::read_to_string(p.project_file())
        .unwrap()
        .replace(
            "dir = \"stations/edge-1\"",
            "dir = \"stations/edge-1\"\nkeep_releases = 1",
        )
        .replace(
            "dir = \"stations/edge-2\"",
            "dir = \"stations/edge-2\"\nkeep_releases = 0",
        );
    std::fs::write(p.project_file(), toml).unwrap();
    let h = p.start().await;
    let mut rx = h.subscribe();
    let mut ids = Vec::new();
    for _ in 0..4 {
        let r = build(&h, &mut rx, "main").await;
        for s in ["edge-1", "edge-2"] {
            runs(&h, &mut rx, s, r.id).await;
        }
        ids.push(r.id);
    }
    // Pruned before the switch is reported: what the stations run is on disk, and
    // nothing older than they keep.
    assert_eq!(unpacked(&p, "edge-1"), ids[2..].to_vec());
    assert_eq!(unpacked(&p, "edge-2"), ids[3..].to_vec());

    // A rollback goes to the release kept for it.
    h.ask::<Vec<StationInfo>>(Request::Rollback {
        service: "web".into(),
    })
    .await
    .unwrap();
    runs(&h, &mut rx, "edge-1", ids[2]).await;
    runs(&h, &mut rx, "edge-2", ids[2]).await;
    // edge-1 keeps one before it (gone already) and one after it.
    assert_eq!(unpacked(&p, "edge-1"), ids[2..].to_vec());
    assert_eq!(unpacked(&p, "edge-2"), vec![ids[2]]);
    h.ask::<Vec<StationInfo>>(Request::UnpinStations {
        stations: vec!["edge-2".into()],
    })
    .await
    .unwrap();
    runs(&h, &mut rx, "edge-2", ids[3]).await;

    // A job on edge-2's release: the next switch waits for it, and its release is
    // there until it ends (it checks at its end), then goes with the switch.
    let t = p.path().display().to_string();
    let script = format!(
        "touch {t}/started; i=0; while [ ! -f {t}/go ]; do i=$((i+1)); \
         [ $i -gt 6000 ] && exit 9; sleep 0.01; done; test -f dist/version && pwd"
    );
    let job = {
        let h = h.clone();
        tokio::spawn(async move {
            h.ask::<JobOutput>(Request::StationExec {
                station: "edge-2".into(),
                argv: vec!["sh".into(), "-c".into(), script],
            })
            .await
        })
    };
    if !wait_file(&p.file("started")).await {
        panic!("the job never started: {:?}", job.await);
    }
    let r5 = build(&h, &mut rx, "main").await;
    let e2 = station(&stations(&h).await, "edge-2");
    assert_eq!((e2.current, e2.jobs), (Some(ids[3]), 1), "{e2:#?}");
    assert!(unpacked(&p, "edge-2").contains(&ids[3]));
    std::fs::write(p.file("go"), "").unwrap();
    let out = job.await.unwrap().unwrap();
    assert_eq!(out.exit_code, Some(0), "{out:#?}");
    assert!(
        out.stdout
            .trim_end()
            .ends_with(&format!("releases/{}", ids[3])),
        "{out:#?}"
    );
    runs(&h, &mut rx, "edge-2", r5.id).await;
    assert_eq!(unpacked(&p, "edge-2"), vec![r5.id]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pinning_a_station_where_it_is_closes_the_gate_its_switch_waited_at() {
    let p = gated_project();
    let h = p.start().await;
    let alice = h.as_caller("alice");
    let mut rx = h.subscribe();
    let r1 = build(&h, &mut rx, "main").await;
    let g1 = at_gate(&h, &mut rx, r1.id).await;
    alice
        .ask::<GateInfo>(decide(g1.run_id, Decision::Approve, None))
        .await
        .unwrap();
    runs(&h, &mut rx, "edge-1", r1.id).await;

    // The next build's switch waits at the gate; edge-1 is pinned where it is.
    let r2 = build(&h, &mut rx, "main").await;
    let g2 = at_gate(&h, &mut rx, r2.id).await;
    let after: Vec<StationInfo> = h
        .ask(Request::PinRelease {
            release: r1.id,
            stations: vec!["edge-1".into()],
        })
        .await
        .unwrap();
    let e1 = station(&after, "edge-1");
    assert_eq!(
        (e1.current, e1.pending, e1.pinned, e1.switch_run),
        (Some(r1.id), None, true, None),
        "{e1:#?}"
    );
    // Nothing is left to approve, and the rollout ends without switching it.
    let done = wait_done(&h, &mut rx, g2.run_id).await;
    assert_eq!(
        step(&done, "switch/edge-1").status,
        pipedeck::domain::StepStatus::Skipped,
        "{done:#?}"
    );
    let waiting: Vec<GateInfo> = h.ask(Request::WaitingGates).await.unwrap();
    assert!(!waiting.iter().any(|g| g.id == g2.id), "{waiting:#?}");
    assert_eq!(version(&p, "edge-1"), r1.run_id.to_string());
    assert!(station(&stations(&h).await, "edge-1").error.is_none());
}
