//! Stack jobs on the real Terraform/OpenTofu binary, on the demo's modules (built only
//! from terraform_data, so no provider download). Skipped, saying why, without a binary.

mod common;

use std::path::Path;

use common::*;
use pipedeck::config::load_project;
use pipedeck::domain::{Decision, Event, RunStatus};
use pipedeck::engine::executor::terraform::find_binary;

fn state(data: &Path, id: &str) -> serde_json::Value {
    let p = data
        .join("infra/aws-staging")
        .join(id)
        .join("terraform.tfstate");
    serde_json::from_str(
        &std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_deploys_on_terraform_and_undeploys_to_empty_states() {
    let Some(bin) = find_binary("terraform", None) else {
        eprintln!("SKIPPED: neither terraform nor tofu is on PATH");
        return;
    };
    eprintln!("using {}", bin.display());
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let project = load_project(&root.join("assets/demo/pipedeck.toml")).unwrap();
    let data = tempfile::tempdir().unwrap();
    let (h, _) = pipedeck::engine::start(project, data.path()).await.unwrap();
    let mut rx = h.subscribe();

    let run = h
        .trigger_infra("aws-staging", false, "tester")
        .await
        .unwrap();
    wait_for(
        &mut rx,
        |e| matches!(e, Event::Gate { gate } if gate.env == "staging"),
    )
    .await;
    h.decide(run.id, "staging", Decision::Approve, "alice", None)
        .await
        .unwrap();
    wait_for(
        &mut rx,
        |e| matches!(e, Event::Gate { gate } if gate.env == "staging/db"),
    )
    .await;
    h.decide(run.id, "staging/db", Decision::Approve, "alice", None)
        .await
        .unwrap();
    let done = wait_done(&h, &mut rx, run.id).await;
    assert_eq!(done.run.status, RunStatus::Succeeded, "{done:#?}");

    // Every resource's own state file holds its resource.
    for (id, addr) in [
        ("vpc", "vpc"),
        ("subnet-public", "subnet"),
        ("subnet-private", "subnet"),
        ("db", "db"),
        ("lb", "lb"),
        ("dns", "record"),
    ] {
        let st = state(data.path(), id);
        let names: Vec<&str> = st["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, [addr], "{id}");
    }
    // A dependent's state holds the upstream's output value.
    let lb = step(&done, "resource/lb").outputs.clone().unwrap();
    let dns = state(data.path(), "dns");
    assert_eq!(
        dns["resources"][0]["instances"][0]["attributes"]["input"]["value"]["target"],
        lb["id"]
    );
    // The preview's plan summary, from `show -json`.
    let summary = step(&done, "operation/vpc.preview")
        .outputs
        .clone()
        .unwrap();
    assert_eq!(
        (
            summary["add"].as_i64(),
            summary["change"].as_i64(),
            summary["destroy"].as_i64()
        ),
        (Some(1), Some(0), Some(0))
    );
    assert_eq!(summary["changes"][0]["address"], "terraform_data.vpc");
    let logs = h
        .logs(run.id, step(&done, "operation/vpc.preview").id, 0, 200)
        .await
        .unwrap();
    assert!(
        logs.iter()
            .any(|l| l.text
                == "plan: 1 to add, 0 to change, 0 to destroy (create terraform_data.vpc)")
    );
    // Terraform's own colours are kept in the stored log.
    let apply = h
        .logs(run.id, step(&done, "operation/vpc.apply").id, 0, 200)
        .await
        .unwrap();
    assert!(
        apply.iter().any(|l| l.text.contains('\u{1b}')),
        "no colour in the apply log"
    );

    let un = h
        .trigger_infra("aws-staging", true, "tester")
        .await
        .unwrap();
    wait_for(
        &mut rx,
        |e| matches!(e, Event::Gate { gate } if gate.run_id == un.id),
    )
    .await;
    h.decide(un.id, "staging", Decision::Approve, "alice", None)
        .await
        .unwrap();
    let done = wait_done(&h, &mut rx, un.id).await;
    assert_eq!(done.run.status, RunStatus::Succeeded, "{done:#?}");
    for id in ["vpc", "subnet-public", "subnet-private", "db", "lb", "dns"] {
        let st = state(data.path(), id);
        assert!(st["resources"].as_array().unwrap().is_empty(), "{id}: {st}");
    }
}
