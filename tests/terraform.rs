//! Stack jobs on the real Terraform/OpenTofu binary, on the demo's modules (built only
//! from terraform_data, so no provider download).
//!
//! Ignored by a plain `cargo test`, with the reason: they need `terraform` or `tofu`
//! (1.4 or later, for terraform_data) on PATH, and no package registry this project
//! installs from provides one. `.ci/run` runs them (`--ignored`) where the machine has
//! one; run with `--ignored` where none is, they fail saying so, never pass silently.

mod common;

use std::path::Path;

use common::*;
use pipedeck::api::EngineClient;
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

/// The binary the tests run: a test run where there is none fails, saying so.
fn iac_binary() -> std::path::PathBuf {
    find_binary("terraform", None).expect(
        "neither terraform nor tofu is on PATH: install one (1.4 or later) or leave these tests ignored",
    )
}

/// Approves every gate of `run` as it opens, until the run ends; returns the gates' keys.
async fn approve_all(
    h: &pipedeck::engine::EngineHandle,
    rx: &mut tokio::sync::broadcast::Receiver<Event>,
    run: i64,
) -> (pipedeck::domain::RunDetail, Vec<String>) {
    let mut keys = Vec::new();
    loop {
        let e = wait_for(rx, |e| match e {
            Event::Gate { gate } => gate.run_id == run && gate.decided_by.is_none(),
            Event::Run { run: r } => r.id == run && r.status.is_terminal(),
            _ => false,
        })
        .await;
        match e {
            Event::Gate { gate } => {
                keys.push(gate.env.clone());
                h.as_caller("alice")
                    .decide(run, &gate.env, Decision::Approve, None)
                    .await
                    .unwrap();
            }
            _ => return (h.detail(run).await.unwrap(), keys),
        }
    }
}

#[ignore = "needs terraform or tofu >= 1.4 on PATH (no registry here provides one); .ci/run runs it with --ignored where one is"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_deploys_on_terraform_and_undeploys_to_empty_states() {
    let bin = iac_binary();
    eprintln!("using {}", bin.display());
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let project = load_project(&root.join("assets/demo/pipedeck.toml")).unwrap();
    let data = tempfile::tempdir().unwrap();
    let (h, _) = pipedeck::engine::start(project, data.path()).await.unwrap();
    let mut rx = h.subscribe();

    let run = h.trigger_infra("aws-staging", false).await.unwrap();
    let (done, gates) = approve_all(&h, &mut rx, run.id).await;
    // The environment gate, a pause before each apply (the staging policy), the db node gate.
    assert_eq!(gates[0], "staging");
    assert!(
        gates.contains(&"staging/vpc/apply".to_string())
            && gates.contains(&"staging/db".to_string()),
        "{gates:?}"
    );
    assert_eq!(gates.len(), 8, "{gates:?}");
    assert_eq!(done.run.status, RunStatus::Succeeded, "{done:#?}");

    // Every resource's own state file holds its resources (db's module calls a local
    // child module, which calls one of its own and renders a template).
    for (id, addrs) in [
        ("vpc", vec!["terraform_data.vpc"]),
        ("subnet-public", vec!["terraform_data.subnet"]),
        ("subnet-private", vec!["terraform_data.subnet"]),
        (
            "db",
            vec!["module.params.terraform_data.params", "terraform_data.db"],
        ),
        ("lb", vec!["terraform_data.lb"]),
        ("dns", vec!["terraform_data.record"]),
    ] {
        let st = state(data.path(), id);
        let mut names: Vec<String> = st["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let local = format!(
                    "{}.{}",
                    r["type"].as_str().unwrap(),
                    r["name"].as_str().unwrap()
                );
                match r["module"].as_str() {
                    Some(m) => format!("{m}.{local}"),
                    None => local,
                }
            })
            .collect();
        names.sort();
        assert_eq!(names, addrs, "{id}");
    }
    let db = step(&done, "resource/db").outputs.clone().unwrap();
    let params = db["params"].as_str().unwrap();
    assert!(
        params.contains("engine = postgres") && params.contains("tag.managed_by = pipedeck"),
        "{params}"
    );
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

    let un = h.trigger_infra("aws-staging", true).await.unwrap();
    let (done, _) = approve_all(&h, &mut rx, un.id).await;
    assert_eq!(done.run.status, RunStatus::Succeeded, "{done:#?}");
    for id in ["vpc", "subnet-public", "subnet-private", "db", "lb", "dns"] {
        let st = state(data.path(), id);
        assert!(st["resources"].as_array().unwrap().is_empty(), "{id}: {st}");
    }
}

/// One terraform resource whose module takes `value`, paused before apply by policy.
fn paused_project(dir: &Path) -> pipedeck::config::Project {
    std::fs::create_dir_all(dir.join("mod")).unwrap();
    std::fs::write(
        dir.join("mod/main.tf"),
        "variable \"value\" { type = string }\nresource \"terraform_data\" \"thing\" { input = var.value }\noutput \"value\" { value = terraform_data.thing.output }\n",
    )
    .unwrap();
    let toml = r#"
[policy]
pause_before_apply = false

[environments.staging.policy]
pause_before_apply = true

[infra.p]
environment = "staging"
driver = "terraform"

[[infra.p.resources]]
id = "thing"
kind = "terraform_data"
module = "mod"
inputs = { value = "reviewed" }
"#;
    std::fs::write(dir.join("pipedeck.toml"), toml).unwrap();
    load_project(&dir.join("pipedeck.toml")).unwrap()
}

#[ignore = "needs terraform or tofu >= 1.4 on PATH (no registry here provides one); .ci/run runs it with --ignored where one is"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plan_approved_is_the_plan_applied_and_a_stale_plan_is_refused() {
    let bin = iac_binary();
    let tmp = tempfile::tempdir().unwrap();
    let project = paused_project(tmp.path());
    let data = tmp.path().join("data");
    let (h, _) = pipedeck::engine::start(project, &data).await.unwrap();
    let mut rx = h.subscribe();
    let work = data.join("infra/p/thing");

    // 1. Change the configuration after the preview: the reviewed plan is what applies.
    let run = h.trigger_infra("p", false).await.unwrap();
    wait_for(
        &mut rx,
        |e| matches!(e, Event::Gate { gate } if gate.env == "staging/thing/apply"),
    )
    .await;
    let d = h.detail(run.id).await.unwrap();
    assert_eq!(
        step(&d, "resource/thing").reason.as_deref(),
        Some("plan: 1 to add, 0 to change, 0 to destroy (create terraform_data.thing)")
    );
    // (Terraform runs in the state dir's copy of the module tree.)
    std::fs::write(
        work.join("tree/pipedeck.auto.tfvars.json"),
        r#"{"value": "edited"}"#,
    )
    .unwrap();
    h.as_caller("alice")
        .decide(run.id, "staging/thing/apply", Decision::Approve, None)
        .await
        .unwrap();
    let done = wait_done(&h, &mut rx, run.id).await;
    assert_eq!(done.run.status, RunStatus::Succeeded, "{done:#?}");
    let tfstate: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(work.join("terraform.tfstate")).unwrap())
            .unwrap();
    assert_eq!(
        tfstate["resources"][0]["instances"][0]["attributes"]["input"]["value"],
        "reviewed"
    );
    assert_eq!(
        step(&done, "resource/thing").outputs.as_ref().unwrap()["value"],
        "reviewed"
    );

    // 2. The state changes between preview and apply: apply is refused as stale.
    let input = std::fs::read_to_string(tmp.path().join("pipedeck.toml"))
        .unwrap()
        .replace("reviewed", "second");
    std::fs::write(tmp.path().join("pipedeck.toml"), input).unwrap();
    h.shutdown().await;
    let (h, _) = pipedeck::engine::start(
        load_project(&tmp.path().join("pipedeck.toml")).unwrap(),
        &data,
    )
    .await
    .unwrap();
    let mut rx = h.subscribe();
    let run = h.trigger_infra("p", false).await.unwrap();
    wait_for(
        &mut rx,
        |e| matches!(e, Event::Gate { gate } if gate.run_id == run.id),
    )
    .await;
    // Another job applies in between, on the same state.
    let out = std::process::Command::new(&bin)
        .args([
            "apply",
            "-auto-approve",
            "-input=false",
            "-var",
            "value=interloper",
        ])
        .current_dir(work.join("tree"))
        .env("TF_CLI_CONFIG_FILE", "/dev/null")
        .env("TF_DATA_DIR", work.join(".terraform"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    h.as_caller("alice")
        .decide(run.id, "staging/thing/apply", Decision::Approve, None)
        .await
        .unwrap();
    let done = wait_done(&h, &mut rx, run.id).await;
    assert_eq!(done.run.status, RunStatus::Failed);
    let apply = step(&done, "operation/thing.apply");
    assert!(
        apply
            .reason
            .as_deref()
            .unwrap_or("")
            .starts_with("the saved plan is stale"),
        "{apply:#?}"
    );
    let tfstate: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(work.join("terraform.tfstate")).unwrap())
            .unwrap();
    assert_eq!(
        tfstate["resources"][0]["instances"][0]["attributes"]["input"]["value"],
        "interloper"
    );
}

/// Two terraform resources, `a` then `b`, no pauses.
fn chain_project(dir: &Path, value: &str, apply_sleep: bool) -> pipedeck::config::Project {
    std::fs::create_dir_all(dir.join("mod")).unwrap();
    let slow = if apply_sleep {
        "resource \"terraform_data\" \"wait\" {\n  input = var.value\n  provisioner \"local-exec\" { command = \"touch ${path.cwd}/applying && sleep 2\" }\n}\n"
    } else {
        ""
    };
    std::fs::write(
        dir.join("mod/main.tf"),
        format!("variable \"value\" {{ type = string }}\nresource \"terraform_data\" \"thing\" {{ input = var.value }}\n{slow}output \"value\" {{ value = terraform_data.thing.output }}\n"),
    )
    .unwrap();
    let toml = format!(
        r#"
[environments.dev]

[infra.c]
environment = "dev"
driver = "terraform"
module = "mod"

[[infra.c.resources]]
id = "a"
kind = "terraform_data"
inputs = {{ value = "{value}" }}

[[infra.c.resources]]
id = "b"
kind = "terraform_data"
inputs = {{ value = "${{a.outputs.value}}" }}
"#
    );
    std::fs::write(dir.join("pipedeck.toml"), toml).unwrap();
    load_project(&dir.join("pipedeck.toml")).unwrap()
}

#[ignore = "needs terraform or tofu >= 1.4 on PATH (no registry here provides one); .ci/run runs it with --ignored where one is"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_input_shows_in_the_next_preview_and_applies_exactly() {
    iac_binary();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let (h, _) = pipedeck::engine::start(chain_project(tmp.path(), "one", false), &data)
        .await
        .unwrap();
    let mut rx = h.subscribe();
    let run = h.trigger_infra("c", false).await.unwrap();
    assert_eq!(
        wait_done(&h, &mut rx, run.id).await.run.status,
        RunStatus::Succeeded
    );
    h.shutdown().await;

    // Edit the input in the project file; the next preview shows the change.
    let (h, _) = pipedeck::engine::start(chain_project(tmp.path(), "two", false), &data)
        .await
        .unwrap();
    let mut rx = h.subscribe();
    let run = h.trigger_infra("c", false).await.unwrap();
    let done = wait_done(&h, &mut rx, run.id).await;
    assert_eq!(done.run.status, RunStatus::Succeeded, "{done:#?}");
    let summary = step(&done, "operation/a.preview").outputs.clone().unwrap();
    assert_eq!(summary["changes"][0]["address"], "terraform_data.thing");
    let action = summary["changes"][0]["action"].as_str().unwrap();
    assert!(action == "update" || action == "replace", "{summary}");
    assert_eq!(summary["changes"].as_array().unwrap().len(), 1, "{summary}");
    assert_eq!(tfstate_value(&data.join("infra/c/a")), "two");
    // …and the dependent follows the new output.
    assert_eq!(tfstate_value(&data.join("infra/c/b")), "two");
}

#[ignore = "needs terraform or tofu >= 1.4 on PATH (no registry here provides one); .ci/run runs it with --ignored where one is"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_during_apply_lets_terraform_finish_and_skips_the_rest() {
    iac_binary();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let (h, _) = pipedeck::engine::start(chain_project(tmp.path(), "one", true), &data)
        .await
        .unwrap();
    let mut rx = h.subscribe();
    let run = h.trigger_infra("c", false).await.unwrap();
    wait_step(&mut rx, run.id, "operation/a.apply", "running").await;
    // The apply is under way (its provisioner has started) when the cancel comes.
    while !data.join("infra/c/a/tree/applying").exists() {
        wait_for(&mut rx, |e| matches!(e, Event::Log { .. })).await;
    }
    h.cancel(run.id).await.unwrap();
    let done = wait_done(&h, &mut rx, run.id).await;
    assert_eq!(done.run.status, RunStatus::Cancelled);
    assert_eq!(
        step(&done, "operation/a.apply").status,
        pipedeck::domain::StepStatus::Succeeded
    );
    assert_eq!(tfstate_value(&data.join("infra/c/a")), "one");
    assert!(
        !data.join("infra/c/a/.terraform.tfstate.lock.info").exists(),
        "a stale state lock was left"
    );
    assert_eq!(
        step(&done, "resource/b").status,
        pipedeck::domain::StepStatus::Cancelled
    );
    assert!(!data.join("infra/c/b/terraform.tfstate").exists());
}

/// A Terraform output marked sensitive is `***` in the database, the logs and the CLI
/// (as the run shows it), while a dependent still gets its value.
#[ignore = "needs terraform or tofu >= 1.4 on PATH (no registry here provides one); .ci/run runs it with --ignored where one is"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sensitive_output_is_never_stored_logged_or_printed() {
    use common::bin::run_ok;
    iac_binary();
    const SECRET: &str = "pw-7Hq2-never-shown";
    let p = TestProject::new("");
    let dir = p.path();
    std::fs::create_dir_all(dir.join("db")).unwrap();
    std::fs::write(
        dir.join("db/main.tf"),
        format!(
            "resource \"terraform_data\" \"db\" {{ input = \"db-1\" }}\n\
             output \"name\" {{ value = terraform_data.db.output }}\n\
             output \"password\" {{\n  value = \"{SECRET}\"\n  sensitive = true\n}}\n"
        ),
    )
    .unwrap();
    std::fs::write(
        p.project_file(),
        r#"
[environments.dev]

[infra.s]
environment = "dev"

[[infra.s.resources]]
id = "db"
kind = "terraform_data"
driver = "terraform"
module = "db"

[[infra.s.resources]]
id = "app"
kind = "command"
depends_on = ["db"]
inputs = { password = "${db.outputs.password}" }
[infra.s.resources.commands]
apply = 'grep -q "$(printf "pw-7Hq2-%s" never-shown)" "$PIPEDECK_INPUTS" && echo got the password'
"#,
    )
    .unwrap();
    let data = p.data_dir();
    let (h, _) = pipedeck::engine::start(p.project(), &data).await.unwrap();
    let mut rx = h.subscribe();
    let run = h.trigger_infra("s", false).await.unwrap();
    let done = wait_done(&h, &mut rx, run.id).await;
    assert_eq!(done.run.status, RunStatus::Succeeded, "{done:#?}");
    let db = step(&done, "resource/db").outputs.clone().unwrap();
    assert_eq!(db["password"], "***");
    assert_eq!(db["name"], "db-1");
    // The dependent got the value (its command found it in its inputs).
    let app = step(&done, "operation/app.apply");
    let log = h.logs(run.id, app.id, 0, 10).await.unwrap();
    assert!(log.iter().any(|l| l.text == "got the password"), "{log:?}");
    h.shutdown().await;

    // Not in the database (with its WAL) nor in any log. (The check above spells the
    // secret in two pieces, so that the project file's copy in the run holds none.)
    let mut leaks = Vec::new();
    for e in walk(&data) {
        let name = e.to_string_lossy();
        let is_state = name.contains("/infra/");
        let bytes = std::fs::read(&e).unwrap();
        if !is_state && memchr::memmem::find(&bytes, SECRET.as_bytes()).is_some() {
            leaks.push(e);
        }
    }
    assert!(leaks.is_empty(), "the secret is in {leaks:?}");
    // Nor in what the CLI prints (from an engine it serves).
    let _engine = common::bin::serve(&p);
    let out = run_ok(&p, &["show", &run.id.to_string()]);
    assert!(!out.contains(SECRET), "{out}");
    let out = run_ok(&p, &["--json", "show", &run.id.to_string()]);
    assert!(!out.contains(SECRET) && out.contains("***"), "{out}");
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
