//! Drift detection on the real Terraform/OpenTofu binary: a module edited after the
//! deploy shows up as drift for exactly that resource, and nothing is applied.
//!
//! Ignored by a plain `cargo test`: it needs `terraform` or `tofu` (1.4 or later, for
//! terraform_data) on PATH; `.ci/run` runs it with `--ignored` where one is.

mod common;

use std::path::Path;

use common::*;
use pipedeck::api::EngineClient;
use pipedeck::config::load_project;
use pipedeck::domain::RunStatus;
use pipedeck::domain::drift::DriftStatus;
use pipedeck::engine::executor::terraform::find_binary;

fn module(dir: &Path, name: &str, input: &str) {
    std::fs::create_dir_all(dir.join(name)).unwrap();
    std::fs::write(
        dir.join(name).join("main.tf"),
        format!(
            "variable \"value\" {{ type = string }}\n\
             resource \"terraform_data\" \"thing\" {{ input = \"{input}-${{var.value}}\" }}\n\
             output \"id\" {{ value = terraform_data.thing.id }}\n"
        ),
    )
    .unwrap();
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[ignore = "needs terraform or tofu >= 1.4 on PATH (no registry here provides one); .ci/run runs it with --ignored where one is"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_module_is_drift_for_that_resource_only_and_nothing_is_applied() {
    find_binary("terraform", None).expect("neither terraform nor tofu is on PATH");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    module(dir, "a", "first");
    module(dir, "b", "second");
    std::fs::write(
        dir.join("pipedeck.toml"),
        "[environments.dev]\n\n[infra.d]\nenvironment = \"dev\"\ndriver = \"terraform\"\n\n\
         [[infra.d.resources]]\nid = \"a\"\nkind = \"terraform_data\"\nmodule = \"a\"\ninputs = { value = \"1\" }\n\n\
         [[infra.d.resources]]\nid = \"b\"\nkind = \"terraform_data\"\nmodule = \"b\"\ndepends_on = [\"a\"]\ninputs = { value = \"${a.outputs.id}\" }\n\n\
         [[infra.d.resources]]\nid = \"c\"\nkind = \"script\"\ndriver = \"command\"\ncommands = { apply = \"true\" }\n",
    )
    .unwrap();
    let project = load_project(&dir.join("pipedeck.toml")).unwrap();
    let data = dir.join("data");
    let (h, _) = pipedeck::engine::start(project, &data).await.unwrap();

    // Before anything is deployed, nothing can have drifted.
    let before = h.drift("d").await.unwrap();
    let status = |r: &pipedeck::domain::drift::DriftReport, id: &str| {
        r.resources
            .iter()
            .find(|x| x.resource == id)
            .unwrap()
            .status
    };
    assert_eq!(
        status(&before, "a"),
        DriftStatus::NotDeployed,
        "{before:#?}"
    );
    assert_eq!(status(&before, "c"), DriftStatus::NotChecked, "{before:#?}");

    let mut rx = h.subscribe();
    let run = h.trigger_infra("d", false).await.unwrap();
    let done = wait_done(&h, &mut rx, run.id).await;
    assert_eq!(done.run.status, RunStatus::Succeeded, "{done:#?}");

    // Just deployed: in sync.
    let fresh = h.drift("d").await.unwrap();
    assert_eq!(status(&fresh, "a"), DriftStatus::InSync, "{fresh:#?}");
    assert_eq!(status(&fresh, "b"), DriftStatus::InSync, "{fresh:#?}");
    assert!(fresh.clean());

    // b's module changes an input of its terraform_data: b drifts, a does not.
    let state_b = data.join("infra/d/b/terraform.tfstate");
    let state_a = data.join("infra/d/a/terraform.tfstate");
    let (sa, sb) = (read(&state_a), read(&state_b));
    module(dir, "b", "edited");
    let report = h.drift("d").await.unwrap();
    assert_eq!(status(&report, "a"), DriftStatus::InSync, "{report:#?}");
    assert_eq!(status(&report, "c"), DriftStatus::NotChecked, "{report:#?}");
    let b = report.resources.iter().find(|x| x.resource == "b").unwrap();
    assert_eq!(b.status, DriftStatus::Drifted, "{report:#?}");
    let s = b.summary.as_ref().unwrap();
    // A changed `input` updates terraform_data in place.
    assert_eq!(
        (
            s["add"].as_i64(),
            s["change"].as_i64(),
            s["destroy"].as_i64()
        ),
        (Some(0), Some(1), Some(0)),
        "{s}"
    );
    assert_eq!(s["changes"][0]["address"], "terraform_data.thing", "{s}");
    assert!(!report.clean());

    // Nothing was applied: both states are byte for byte what the deploy left, no
    // drift plan is left behind, and no run was created.
    assert_eq!(read(&state_a), sa);
    assert_eq!(read(&state_b), sb);
    assert!(!data.join("infra/d/b/pipedeck.drift.tfplan").exists());
    let runs = h.runs(Default::default()).await.unwrap();
    assert_eq!(runs.len(), 1, "{runs:#?}");

    // An unknown pipeline is an error naming the ones there are.
    let e = h.drift("nope").await.unwrap_err().to_string();
    assert!(
        e.contains("no infra project `nope`") && e.contains("d"),
        "{e}"
    );
}
