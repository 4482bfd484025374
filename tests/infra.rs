//! Infra pipelines on the real engine with the `command` driver.

mod common;

use common::*;
use pipedeck::api::EngineClient;
use pipedeck::domain::{Decision, Event, RunStatus, StepStatus};
use pipedeck::engine::EngineHandle;

/// The reference example; `apply` records what it got and offers `id` as output;
/// subnets meet at a rendezvous so the test proves they overlap.
fn reference(extra_db: &str) -> TestProject {
    let tmp = TestProject::new("");
    let d = tmp.path().display().to_string();
    let toml = format!(
        r#"{HEADER}
[infra.net]
environment = "staging"

[infra.net.commands]
init = "echo init $PIPEDECK_RESOURCE"
preview = "echo preview $PIPEDECK_RESOURCE"
apply = '''
case $PIPEDECK_RESOURCE in subnet-*) touch {d}/$PIPEDECK_RESOURCE.started; other=subnet-public; [ $PIPEDECK_RESOURCE = subnet-public ] && other=subnet-private; i=0; while [ ! -f {d}/$other.started ]; do i=$((i+1)); [ $i -gt 1000 ] && exit 9; sleep 0.01; done;; esac
echo "inputs $(cat $PIPEDECK_INPUTS)"
printf '{{"id": "%s-id"}}' $PIPEDECK_RESOURCE > $PIPEDECK_OUTPUTS
'''
destroy = "echo $PIPEDECK_RESOURCE >> {d}/destroyed"

[[infra.net.resources]]
id = "vpc"
kind = "vpc"

[[infra.net.resources]]
id = "subnet-public"
kind = "subnet"
inputs = {{ vpc = "${{vpc.outputs.id}}" }}

[[infra.net.resources]]
id = "subnet-private"
kind = "subnet"
inputs = {{ vpc = "${{vpc.outputs.id}}" }}

[[infra.net.resources]]
id = "db"
kind = "db"
inputs = {{ subnet = "${{subnet-private.outputs.id}}", url = "pg://${{subnet-private.outputs.id}}:5432" }}
{extra_db}

[[infra.net.resources]]
id = "lb"
kind = "lb"
depends_on = ["subnet-public"]

[[infra.net.resources]]
id = "dns"
kind = "dns"
inputs = {{ target = "${{lb.outputs.id}}" }}
"#
    );
    std::fs::write(tmp.project_file(), toml).unwrap();
    tmp
}

fn res<'a>(d: &'a pipedeck::domain::RunDetail, id: &str) -> &'a pipedeck::domain::StepInfo {
    step(d, &format!("resource/{id}"))
}

async fn log_text(h: &EngineHandle, d: &pipedeck::domain::RunDetail, path: &str) -> String {
    let s = step(d, path);
    h.logs(d.run.id, s.id, 0, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.text)
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reference_example_deploys_in_order_and_undeploys_in_reverse() {
    let p = reference("");
    let h = p.start().await;
    let mut rx = h.subscribe();
    let run = h.trigger_infra("net", false).await.unwrap();
    let done = wait_done(&h, &mut rx, run.id).await;
    assert_eq!(done.run.status, RunStatus::Succeeded, "{done:#?}");
    for id in ["vpc", "subnet-public", "subnet-private", "db", "lb", "dns"] {
        let r = res(&done, id);
        assert_eq!(r.status, StepStatus::Succeeded, "{id}");
        assert_eq!(r.outputs.as_ref().unwrap()["id"], format!("{id}-id"));
    }
    // Dependencies finished before their dependents started.
    let end = |id: &str| res(&done, id).ended_at.unwrap();
    let start = |id: &str| res(&done, id).started_at.unwrap();
    assert!(start("subnet-public") >= end("vpc") && start("subnet-private") >= end("vpc"));
    assert!(
        start("db") >= end("subnet-private")
            && start("lb") >= end("subnet-public")
            && start("dns") >= end("lb")
    );
    // Outputs reached dependents, whole and spliced into text.
    let db = log_text(&h, &done, "operation/db.apply").await;
    assert!(db.contains(r#""subnet":"subnet-private-id""#), "{db}");
    assert!(
        db.contains(r#""url":"pg://subnet-private-id:5432""#),
        "{db}"
    );
    assert!(
        log_text(&h, &done, "operation/dns.apply")
            .await
            .contains(r#""target":"lb-id""#)
    );
    // No refresh command: that operation is not part of the stack job.
    assert!(!done.steps.iter().any(|s| s.name == "vpc.refresh"));

    let un = h.trigger_infra("net", true).await.unwrap();
    let done = wait_done(&h, &mut rx, un.id).await;
    assert_eq!(done.run.status, RunStatus::Succeeded, "{done:#?}");
    let order: Vec<String> = std::fs::read_to_string(p.file("destroyed"))
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    let pos = |id: &str| order.iter().position(|x| x == id).unwrap();
    assert_eq!(order.len(), 6);
    // Every resource is destroyed only after everything that depends on it.
    for (dependent, dependency) in [
        ("subnet-public", "vpc"),
        ("subnet-private", "vpc"),
        ("db", "subnet-private"),
        ("lb", "subnet-public"),
        ("dns", "lb"),
    ] {
        assert!(pos(dependent) < pos(dependency), "{order:?}");
    }
    assert_eq!(order.last().unwrap(), "vpc");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_stops_exactly_its_downstream_set() {
    let p = reference("");
    // subnet-public fails its preview: lb and dns are skipped; the other branch succeeds.
    let text = std::fs::read_to_string(p.project_file()).unwrap().replace(
        r#"preview = "echo preview $PIPEDECK_RESOURCE""#,
        r#"preview = "[ $PIPEDECK_RESOURCE != subnet-public ] || exit 4""#,
    );
    let text = text.replace("i=0; while", "i=0; [ $PIPEDECK_RESOURCE = subnet-private ] && other=none && touch {}/none.started; while");
    std::fs::write(
        p.project_file(),
        text.replace("{}", &p.path().display().to_string()),
    )
    .unwrap();
    let h = p.start().await;
    let mut rx = h.subscribe();
    let run = h.trigger_infra("net", false).await.unwrap();
    let done = wait_done(&h, &mut rx, run.id).await;
    assert_eq!(done.run.status, RunStatus::Failed);
    assert_eq!(
        done.run.reason.as_deref(),
        Some("resource/subnet-public failed")
    );
    let sp = res(&done, "subnet-public");
    assert_eq!(sp.status, StepStatus::Failed);
    assert_eq!(
        step(&done, "operation/subnet-public.preview").exit_code,
        Some(4)
    );
    assert_eq!(
        step(&done, "operation/subnet-public.apply").status,
        StepStatus::Skipped
    );
    for id in ["lb", "dns"] {
        let r = res(&done, id);
        assert_eq!(r.status, StepStatus::Skipped, "{id}");
        assert_eq!(
            r.reason.as_deref(),
            Some("upstream failed: resource/subnet-public")
        );
    }
    for id in ["vpc", "subnet-private", "db"] {
        assert_eq!(res(&done, id).status, StepStatus::Succeeded, "{id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environment_and_node_gates_survive_engine_restarts() {
    let p = reference("approval = true");
    let text = std::fs::read_to_string(p.project_file()).unwrap().replace(
        "[infra.net]\nenvironment = \"staging\"",
        "[infra.net]\nenvironment = \"staging\"\napproval = true",
    );
    std::fs::write(p.project_file(), text).unwrap();
    let h = p.start().await;
    let mut rx = h.subscribe();
    let run = h.trigger_infra("net", false).await.unwrap();
    wait_for(
        &mut rx,
        |e| matches!(e, Event::Gate { gate } if gate.env == "staging"),
    )
    .await;
    assert!(
        h.detail(run.id)
            .await
            .unwrap()
            .steps
            .iter()
            .all(|s| s.status == StepStatus::Pending)
    );
    // Restart while the environment gate waits.
    h.shutdown().await;
    let h = p.start().await;
    let mut rx = h.subscribe();
    assert_eq!(
        h.detail(run.id).await.unwrap().run.status,
        RunStatus::AwaitingApproval
    );
    h.as_caller("alice")
        .decide(run.id, "staging", Decision::Approve, None)
        .await
        .unwrap();
    // The node gate on db: the db's dependents (none) wait; the lb branch finishes.
    wait_for(
        &mut rx,
        |e| matches!(e, Event::Gate { gate } if gate.env == "staging/db"),
    )
    .await;
    let mut lb_done = h.detail(run.id).await.unwrap();
    while res(&lb_done, "dns").status != StepStatus::Succeeded {
        wait_for(&mut rx, |e| matches!(e, Event::Step { .. })).await;
        lb_done = h.detail(run.id).await.unwrap();
    }
    assert_eq!(res(&lb_done, "db").status, StepStatus::AwaitingApproval);
    h.shutdown().await;
    let h = p.start().await;
    let mut rx = h.subscribe();
    h.as_caller("bob")
        .decide(
            run.id,
            "staging/db",
            Decision::Approve,
            Some("db ok".into()),
        )
        .await
        .unwrap();
    let done = wait_done(&h, &mut rx, run.id).await;
    assert_eq!(done.run.status, RunStatus::Succeeded, "{done:#?}");
    assert_eq!(res(&done, "db").status, StepStatus::Succeeded);
    let gates: Vec<_> = done
        .gates
        .iter()
        .map(|g| (g.env.as_str(), g.decided_by.as_deref()))
        .collect();
    assert_eq!(
        gates,
        [("staging", Some("alice")), ("staging/db", Some("bob"))]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejecting_a_node_gate_skips_its_dependents() {
    let p = reference("");
    let text = std::fs::read_to_string(p.project_file()).unwrap().replace(
        "id = \"lb\"\nkind = \"lb\"",
        "id = \"lb\"\nkind = \"lb\"\napproval = true",
    );
    std::fs::write(p.project_file(), text).unwrap();
    let h = p.start().await;
    let mut rx = h.subscribe();
    let run = h.trigger_infra("net", false).await.unwrap();
    wait_for(
        &mut rx,
        |e| matches!(e, Event::Gate { gate } if gate.env == "staging/lb"),
    )
    .await;
    h.as_caller("alice")
        .decide(run.id, "staging/lb", Decision::Reject, None)
        .await
        .unwrap();
    let done = wait_done(&h, &mut rx, run.id).await;
    assert_eq!(done.run.status, RunStatus::Rejected);
    assert_eq!(res(&done, "lb").status, StepStatus::Rejected);
    assert_eq!(res(&done, "dns").status, StepStatus::Skipped);
    assert_eq!(res(&done, "db").status, StepStatus::Succeeded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_lets_the_operation_in_flight_finish_and_cancels_the_rest() {
    let p = TestProject::new("");
    let d = p.path().display().to_string();
    std::fs::write(
        p.project_file(),
        format!(
            r#"{HEADER}
[infra.one]
environment = "dev"
[[infra.one.resources]]
id = "a"
kind = "x"
commands = {{ preview = "touch {d}/in-flight; while [ ! -f {d}/release ]; do sleep 0.01; done; echo preview done", apply = "echo never" }}
[[infra.one.resources]]
id = "b"
kind = "x"
depends_on = ["a"]
commands = {{ apply = "echo never" }}
"#
        ),
    )
    .unwrap();
    let h = p.start().await;
    let mut rx = h.subscribe();
    let run = h.trigger_infra("one", false).await.unwrap();
    wait_step(&mut rx, run.id, "operation/a.preview", "running").await;
    assert_eq!(
        h.cancel(run.id).await.unwrap().status,
        RunStatus::Cancelling
    );
    std::fs::write(p.file("release"), "").unwrap();
    let done = wait_done(&h, &mut rx, run.id).await;
    assert_eq!(done.run.status, RunStatus::Cancelled);
    assert_eq!(
        step(&done, "operation/a.preview").status,
        StepStatus::Succeeded
    );
    assert_eq!(
        log_text(&h, &done, "operation/a.preview").await,
        "preview done"
    );
    assert_eq!(
        step(&done, "operation/a.apply").status,
        StepStatus::Cancelled
    );
    assert_eq!(res(&done, "a").status, StepStatus::Cancelled);
    assert_eq!(res(&done, "b").status, StepStatus::Cancelled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_preflight_stops_the_job_before_anything_runs() {
    let p = TestProject::new("");
    std::fs::write(
        p.project_file(),
        format!(
            r#"{HEADER}
[infra.one]
environment = "dev"
[[infra.one.resources]]
id = "a"
kind = "x"
credentials = ["PIPEDECK_TEST_NEVER_SET_TOKEN"]
commands = {{ init = "touch {d}/ran", apply = "touch {d}/ran" }}
"#,
            d = p.path().display()
        ),
    )
    .unwrap();
    let h = p.start().await;
    let mut rx = h.subscribe();
    let run = h.trigger_infra("one", false).await.unwrap();
    let done = wait_done(&h, &mut rx, run.id).await;
    assert_eq!(done.run.status, RunStatus::Failed);
    let a = res(&done, "a");
    assert_eq!(
        a.reason.as_deref(),
        Some(
            "preflight failed: credentials: not set in the engine's environment: PIPEDECK_TEST_NEVER_SET_TOKEN"
        )
    );
    assert_eq!(step(&done, "operation/a.init").status, StepStatus::Skipped);
    assert!(
        !p.file("ran").exists(),
        "an operation ran despite the failed preflight"
    );
    let report = log_text(&h, &done, "operation/a.init").await;
    assert!(report.contains("preflight FAIL credentials"), "{report}");
    assert!(report.contains("preflight pass state"), "{report}");
}

/// Masking covers every executor's output: a named credential's value never reaches
/// a stack job's log (the log shows `***`). PATH stands in for a credential because
/// every engine has it set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credential_values_are_masked_in_stack_job_logs() {
    let p = TestProject::new("");
    std::fs::write(
        p.project_file(),
        format!(
            r#"{HEADER}
[infra.one]
environment = "dev"
[[infra.one.resources]]
id = "a"
kind = "x"
credentials = ["PATH"]
commands = {{ apply = "echo \"the credential is $PATH\"" }}
"#
        ),
    )
    .unwrap();
    let h = p.start().await;
    let mut rx = h.subscribe();
    let run = h.trigger_infra("one", false).await.unwrap();
    let done = wait_done(&h, &mut rx, run.id).await;
    assert_eq!(done.run.status, RunStatus::Succeeded, "{done:#?}");
    let text = log_text(&h, &done, "operation/a.apply").await;
    assert_eq!(text, "the credential is ***");
}

/// No gate bypass: a stack job that changes a resource behind an environment gate,
/// or a node gate, waits for that approval (with its approvers); a preview does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stack_job_that_changes_a_gated_resource_waits_for_its_approval() {
    let p = reference("");
    let text = std::fs::read_to_string(p.project_file())
        .unwrap()
        .replace(
            "[infra.net]\nenvironment = \"staging\"",
            "[infra.net]\nenvironment = \"staging\"\napprovers = [\"bob\"]",
        )
        .replace(
            "id = \"vpc\"\nkind = \"vpc\"",
            "id = \"vpc\"\nkind = \"vpc\"\napproval = true",
        );
    std::fs::write(p.project_file(), text).unwrap();
    let h = p.start().await;
    let mut rx = h.subscribe();
    // vpc has a node gate: updating it alone asks for the same approval.
    let job = h.trigger_stack_job("vpc", None, "update").await.unwrap();
    wait_for(
        &mut rx,
        |e| matches!(e, Event::Run { run } if run.id == job.id && run.status == RunStatus::AwaitingApproval),
    )
    .await;
    let err = h
        .as_caller("alice")
        .decide(job.id, "staging", Decision::Approve, None)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "alice may not approve staging: not in approvers [bob]"
    );
    h.as_caller("bob")
        .decide(job.id, "staging", Decision::Approve, None)
        .await
        .unwrap();
    let done = wait_done(&h, &mut rx, job.id).await;
    assert_eq!(done.run.status, RunStatus::Succeeded, "{done:#?}");
    assert_eq!(done.gates[0].decided_by.as_deref(), Some("bob"));
    // lb has no gate and its environment none: an update runs at once; a preview of
    // the gated vpc too.
    for (res, op) in [("lb", "update"), ("vpc", "preview")] {
        let job = h.trigger_stack_job(res, None, op).await.unwrap();
        let done = wait_done(&h, &mut rx, job.id).await;
        assert_eq!(
            done.run.status,
            RunStatus::Succeeded,
            "{res} {op}: {done:#?}"
        );
        assert!(done.gates.is_empty(), "{res} {op}: {:?}", done.gates);
    }
}
