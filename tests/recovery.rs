//! Start-up recovery with damaged state: one run whose stored definition cannot be
//! read ends with the reason, and the other runs recover all the same.

mod common;

use common::*;
use pipedeck::api::EngineClient;
use pipedeck::domain::{Decision, GateStatus, RunStatus, StepStatus};
use pipedeck::store::Store;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_definition_does_not_stop_the_other_runs_from_recovering() {
    let p = TestProject::new(&format!("{HEADER}\n{GATED}"));
    let h = p.start().await;
    let mut rx = h.subscribe();
    let mut ids = Vec::new();
    for _ in 0..3 {
        let run = h.trigger(trigger("gated")).await.unwrap();
        wait_step(&mut rx, run.id, "deploy/prod", "awaiting_approval").await;
        ids.push(run.id);
    }
    h.shutdown().await;
    drop(h);

    // The middle run's pinned definition is damaged in the database.
    let db = Store::open(&p.data_dir().join("state.db")).unwrap();
    let changed = db
        .execute_raw(&format!(
            "UPDATE definitions SET definition = '{{\"name\": \"gated\", \"steps\": [' WHERE run_id = {}",
            ids[1]
        ))
        .unwrap();
    assert_eq!(changed, 1);
    drop(db);

    let h = p.start().await;
    let mut rx = h.subscribe();
    let broken = h.detail(ids[1]).await.unwrap();
    assert_eq!(broken.run.status, RunStatus::Failed);
    let reason = broken.run.reason.clone().unwrap_or_default();
    assert!(
        reason.starts_with("cannot resume after the engine restarted: "),
        "{reason}"
    );
    let prod = step(&broken, "deploy/prod");
    assert_eq!(prod.status, StepStatus::Failed);
    assert_eq!(prod.reason.as_deref(), Some(reason.as_str()));
    assert_eq!(broken.gates.len(), 1);
    assert_eq!(broken.gates[0].status, GateStatus::Cancelled);
    // Its gate can no longer be decided.
    let err = h
        .as_caller("alice")
        .decide(ids[1], "prod", Decision::Approve, None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no gate is waiting"), "{err}");

    // The runs before and after it recovered: both wait at prod and go on when approved.
    for &id in [ids[0], ids[2]].iter() {
        assert_eq!(
            h.detail(id).await.unwrap().run.status,
            RunStatus::AwaitingApproval
        );
        h.as_caller("alice")
            .decide(id, "prod", Decision::Approve, None)
            .await
            .unwrap();
        let done = wait_done(&h, &mut rx, id).await;
        assert_eq!(done.run.status, RunStatus::Succeeded, "{done:#?}");
    }
    // And a restart after that finds nothing left to do for the broken run.
    h.shutdown().await;
    let h = p.start().await;
    assert_eq!(
        h.detail(ids[1]).await.unwrap().run.status,
        RunStatus::Failed
    );
}
