//! State jobs (issue 22 part 3): a deployed resource's Terraform state listed, shown,
//! tainted, untainted, removed from, imported into and moved in, each as a stack job
//! with its log, gated like apply and audited with who and what; viewers refused.
//!
//! The tests that run Terraform are ignored by a plain `cargo test`: they need
//! `terraform` or `tofu` (1.4 or later, for terraform_data) on PATH; `.ci/run` runs
//! them with `--ignored` where one is. The refusals need no binary and always run.

mod common;

use common::tfstate::*;
use common::*;

use pipedeck::api::EngineClient;
use pipedeck::domain::state_op::{ImportId, LockId, StateOp};
use pipedeck::domain::{Decision, Event, Request, RunStatus, StepStatus};
use pipedeck::store::AuditEntry;

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
    // A local state's lock ends with its process: nothing stale to force.
    let e = h
        .as_caller("dave")
        .state_job(
            "a",
            None,
            StateOp::Unlock {
                lock_id: LockId::parse("x").unwrap(),
            },
        )
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("keeps its state in a local file"),
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
