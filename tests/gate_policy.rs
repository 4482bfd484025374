//! A gate is decided under the stricter of the policy recorded with its run and the
//! one the project file sets now: both must allow the person deciding.

mod common;

use common::*;
use pipedeck::api::EngineClient;
use pipedeck::domain::{Decision, Event, GateStatus, RunStatus};

fn gated(approvers: &str) -> String {
    format!(
        r#"{HEADER}
[services.svc]
repo_seed = "src"
environments = ["prod"]
[[services.svc.steps]]
name = "build"
run = "true"
[services.svc.deploy.prod]
run = "true"
approval = true
approvers = [{approvers}]
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tightened_policy_holds_for_a_run_recorded_under_the_old_one() {
    let p = TestProject::new(&gated(r#""alice", "bob""#));
    let h = p.start().await;
    let mut rx = h.subscribe();
    let run = h.trigger(trigger("svc")).await.unwrap();
    wait_for(&mut rx, |e| matches!(e, Event::Run { run: r } if r.id == run.id && r.status == RunStatus::AwaitingApproval)).await;
    h.shutdown().await;

    // The project now lets bob alone approve prod: alice, allowed when the run was
    // recorded, is refused.
    std::fs::write(p.project_file(), gated(r#""bob""#)).unwrap();
    let h = p.start().await;
    let err = h
        .as_caller("alice")
        .decide(run.id, "prod", Decision::Approve, None)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "alice may not approve prod: not in approvers [bob]"
    );
    // Loosened again to anyone: the run's recorded list still holds (carol is in neither).
    h.shutdown().await;
    std::fs::write(p.project_file(), gated("")).unwrap();
    let h = p.start().await;
    let err = h
        .as_caller("carol")
        .decide(run.id, "prod", Decision::Approve, None)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "carol may not approve prod: not in approvers [alice, bob]"
    );
    let g = h
        .as_caller("bob")
        .decide(run.id, "prod", Decision::Approve, None)
        .await
        .unwrap();
    assert_eq!(g.status, GateStatus::Approved);
    h.shutdown().await;
}

/// With `[access]` and no default, someone not listed may not even read; a listed
/// viewer reads but may not cancel; the engine's own account is admin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_rules_refuse_the_unlisted_and_cap_the_viewer() {
    let p = TestProject::new(&format!(
        "{}\n[access.users]\nalice = \"operator\"\ncarol = \"viewer\"\n",
        gated(r#""alice""#)
    ));
    let h = p.start().await;
    let err = h
        .as_caller("eve")
        .runs(Default::default())
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "eve may not use this engine: not listed in the project's [access] table, which sets no default role"
    );
    let run = h.as_caller("alice").trigger(trigger("svc")).await.unwrap();
    assert_eq!(run.triggered_by, "alice");
    let carol = h.as_caller("carol");
    assert_eq!(carol.runs(Default::default()).await.unwrap().len(), 1);
    let err = carol.cancel(run.id).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "carol may not cancel runs: role viewer, needs operator (roles: [access] in the project file)"
    );
    // The handle's own caller is the engine's account: admin, whatever [access] says.
    let me = pipedeck::engine::Caller::local();
    h.as_caller(me).cancel(run.id).await.unwrap();
}

/// `require_comment = true`: the engine refuses a decision without a comment (or with
/// a blank one), whichever client sends it; with one, the gate is decided and the
/// comment recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gate_that_requires_a_comment_refuses_a_decision_without_one() {
    let p = TestProject::new(&format!("{}require_comment = true\n", gated("")));
    let h = p.start().await;
    let mut rx = h.subscribe();
    let run = h.trigger(trigger("svc")).await.unwrap();
    wait_for(&mut rx, |e| matches!(e, Event::Run { run: r } if r.id == run.id && r.status == RunStatus::AwaitingApproval)).await;
    for comment in [None, Some("   ".to_string())] {
        let err = h
            .decide(run.id, "prod", Decision::Reject, comment)
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .ends_with("may not reject prod without a comment: prod requires one (--comment)"),
            "{err}"
        );
    }
    let g = h
        .decide(
            run.id,
            "prod",
            Decision::Approve,
            Some("release 4.2, checked with QA".into()),
        )
        .await
        .unwrap();
    assert_eq!(g.status, GateStatus::Approved);
    assert_eq!(g.comment.as_deref(), Some("release 4.2, checked with QA"));
    h.shutdown().await;
}
