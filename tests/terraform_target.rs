//! Targeted plans (issue 22, part 4) on the real Terraform/OpenTofu binary, through the
//! real `pipedeck` binary: a module with two resources, both edited after the deploy;
//! `stack-job create --target` one of them changes only that one, and the job is
//! shown as targeted in `runs`, `stack-job list`, `show`, their JSON and the audit log.
//! The resource's recorded outputs stay those of the last complete apply until an
//! update without `--target` converges the module.
//!
//! Ignored by a plain `cargo test`: it needs `terraform` or `tofu` (1.4 or later, for
//! terraform_data) on PATH; `.ci/run` runs it with `--ignored` where one is.

mod common;

use std::path::Path;

use common::bin::{json, run_ok, run_out, serve};
use common::*;
use pipedeck::engine::executor::terraform::find_binary;

const PROJECT: &str = "[environments.dev]\n\n[infra.d]\nenvironment = \"dev\"\ndriver = \"terraform\"\n\n\
     [[infra.d.resources]]\nid = \"pair\"\nkind = \"terraform_data\"\nmodule = \"pair\"\n\
     inputs = { value = \"1\" }\n\n\
     [[infra.d.resources]]\nid = \"script\"\nkind = \"script\"\ndriver = \"command\"\n\
     commands = { apply = \"true\" }\n";

/// Two resources in one module; an output from each.
fn module(dir: &Path, a: &str, b: &str) {
    std::fs::create_dir_all(dir.join("pair")).unwrap();
    std::fs::write(
        dir.join("pair/main.tf"),
        format!(
            "variable \"value\" {{ type = string }}\n\
             resource \"terraform_data\" \"a\" {{ input = \"{a}-${{var.value}}\" }}\n\
             resource \"terraform_data\" \"b\" {{ input = \"{b}-${{var.value}}\" }}\n\
             output \"a\" {{ value = terraform_data.a.output }}\n\
             output \"b\" {{ value = terraform_data.b.output }}\n"
        ),
    )
    .unwrap();
}

/// The `input` of resource `name` in the local state.
fn state_input(state: &Path, name: &str) -> String {
    let text = std::fs::read_to_string(state).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {text}"))["instances"][0]["attributes"]["input"]["value"]
        .as_str()
        .unwrap()
        .to_string()
}

fn outputs(p: &TestProject, job: &str) -> serde_json::Value {
    let d = json(p, &["show", job]);
    d["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stage"] == "resource")
        .unwrap()["outputs"]
        .clone()
}

#[ignore = "needs terraform or tofu >= 1.4 on PATH (no registry here provides one); .ci/run runs it with --ignored where one is"]
#[test]
fn a_targeted_update_changes_only_its_address_and_is_marked_everywhere() {
    find_binary("terraform", None).expect("neither terraform nor tofu is on PATH");
    let p = TestProject::new(PROJECT);
    module(p.path(), "one", "one");
    let _engine = serve(&p);
    let first = run_ok(&p, &["infra", "run", "d", "--wait"]);
    assert!(!first.contains("targeted"), "{first}");
    let state = p.data_dir().join("infra/d/pair/terraform.tfstate");
    assert_eq!(state_input(&state, "a"), "one-1");
    assert_eq!(state_input(&state, "b"), "one-1");

    // Both resources change in the module; the job is limited to `a`.
    module(p.path(), "two", "two");
    let out = run_ok(
        &p,
        &[
            "stack-job",
            "create",
            "pair",
            "--target",
            "terraform_data.a",
            "--wait",
        ],
    );
    let job = out.lines().next().unwrap().trim().to_string();
    assert_eq!(state_input(&state, "a"), "two-1", "the target changed");
    assert_eq!(state_input(&state, "b"), "one-1", "nothing else changed");

    // Marked as targeted: the run's JSON, the tables, the detail and the audit log.
    let runs = json(&p, &["runs"]);
    let r = runs
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"].as_i64() == job.parse::<i64>().ok())
        .unwrap();
    assert_eq!(r["targets"], serde_json::json!(["terraform_data.a"]), "{r}");
    assert_eq!(r["status"], "succeeded", "{r}");
    let table = run_ok(&p, &["runs"]);
    let line = table
        .lines()
        .find(|l| l.trim_start().starts_with(&job))
        .unwrap();
    assert!(line.contains("[targeted: terraform_data.a]"), "{table}");
    let first_run = table.lines().find(|l| l.contains("deploy d")).unwrap();
    assert!(!first_run.contains("targeted"), "{table}");
    let jobs = run_ok(&p, &["stack-job", "list"]);
    assert!(
        jobs.lines()
            .any(|l| l.trim_start().starts_with(&job) && l.ends_with("terraform_data.a")),
        "{jobs}"
    );
    let shown = run_ok(&p, &["show", &job]);
    assert!(shown.contains("targeted: terraform_data.a"), "{shown}");
    let audit = json(&p, &["audit", "--run", &job]);
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "trigger" && e["target"] == "targeted: terraform_data.a"),
        "{audit:#}"
    );
    // b is still to apply: the outputs of the last complete apply stay recorded.
    let logs = run_ok(&p, &["logs", &job]);
    assert!(
        logs.contains("targeted apply: changes outside the targets are still to apply"),
        "{logs}"
    );
    assert_eq!(outputs(&p, &job)["b"], "one-1");
    assert_eq!(outputs(&p, &job)["a"], "one-1", "kept from the full apply");

    // Targeting the other one converges the module: its outputs are recorded now.
    let out = run_ok(
        &p,
        &[
            "stack-job",
            "create",
            "pair",
            "--target",
            "terraform_data.b",
            "--wait",
        ],
    );
    let last = out.lines().next().unwrap().trim().to_string();
    assert_eq!(state_input(&state, "b"), "two-1");
    assert_eq!(outputs(&p, &last)["a"], "two-1");
    assert_eq!(outputs(&p, &last)["b"], "two-1");

    // A targeted destroy removes its address only; the resource stays deployed with
    // its recorded outputs.
    let out = run_ok(
        &p,
        &[
            "stack-job",
            "create",
            "pair",
            "--operation",
            "destroy",
            "--target",
            "terraform_data.a",
            "--wait",
        ],
    );
    let destroyed = out.lines().next().unwrap().trim().to_string();
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    let names: Vec<&str> = v["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert_eq!(names, ["b"], "{v:#}");
    assert_eq!(state_input(&state, "b"), "two-1");
    assert_eq!(outputs(&p, &destroyed)["b"], "two-1");
    let shown = run_ok(&p, &["show", &destroyed]);
    assert!(shown.contains("targeted: terraform_data.a"), "{shown}");

    // A text that is no Terraform address never reaches Terraform.
    let bad = run_out(
        &p,
        &["stack-job", "create", "pair", "--target", "a.b; rm -rf /"],
    );
    assert_eq!(bad.status.code(), Some(2), "{bad:?}");
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("is not a Terraform resource address"), "{err}");
    // A command-driver resource has no Terraform addresses.
    let cmd = run_out(&p, &["stack-job", "create", "script", "--target", "x.y"]);
    assert!(!cmd.status.success());
    let err = String::from_utf8_lossy(&cmd.stderr);
    assert!(err.contains("--target takes Terraform addresses"), "{err}");
}
