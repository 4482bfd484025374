//! Infra resources whose Terraform operations run as Slurm batch jobs (issue 20),
//! against the real one-node cluster and the real binary, on modules built only from
//! `terraform_data` (no provider download).
//!
//! Ignored by a plain `cargo test`, with the reason: they need a running cluster
//! (`scripts/slurm-test-cluster.sh`) and `terraform` or `tofu` on PATH. `.ci/run`
//! runs them with `--ignored` where both are; run so where either is missing, they
//! fail saying so.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use pipedeck::api::EngineClient;
use pipedeck::config::load_project;
use pipedeck::domain::{RunStatus, StepStatus};
use pipedeck::engine::executor::terraform::find_binary;

fn needs() {
    find_binary("terraform", None).expect("neither terraform nor tofu is on PATH");
    slurm_cluster();
}

/// `scontrol show job -o ID`: the job as the controller knows it (this cluster keeps
/// ended jobs for ten minutes and has no accounting database for `sacct`).
fn scontrol(job: u64) -> String {
    let out = std::process::Command::new("scontrol")
        .args(["show", "job", "-o", &job.to_string()])
        .output()
        .unwrap();
    assert!(out.status.success(), "scontrol does not know job {job}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `a` on Slurm (its apply running `slow` in a provisioner after it touched
/// `applying` in its working dir), then `b`, local, taking `a`'s output.
fn project(dir: &Path, slow: Option<&str>, extra: &str) -> pipedeck::config::Project {
    std::fs::create_dir_all(dir.join("mod")).unwrap();
    let slow = match slow {
        Some(cmd) => format!(
            "resource \"terraform_data\" \"wait\" {{\n  input = var.value\n  provisioner \"local-exec\" {{ command = \"touch ${{path.cwd}}/applying && {cmd}\" }}\n}}\n"
        ),
        None => String::new(),
    };
    std::fs::write(
        dir.join("mod/main.tf"),
        format!("variable \"value\" {{ type = string }}\nresource \"terraform_data\" \"thing\" {{ input = var.value }}\n{slow}output \"value\" {{ value = terraform_data.thing.output }}\n"),
    )
    .unwrap();
    let toml = format!(
        r#"
[slurm]
poll = "500ms"

[environments.dev]

[infra.c]
environment = "dev"
driver = "terraform"
module = "mod"

[[infra.c.resources]]
id = "a"
kind = "terraform_data"
inputs = {{ value = "from slurm" }}
executor = "slurm"
slurm = {{ cpus = 1, memory = "256M" }}
{extra}

[[infra.c.resources]]
id = "b"
kind = "terraform_data"
inputs = {{ value = "${{a.outputs.value}}" }}
"#
    );
    std::fs::write(dir.join("pipedeck.toml"), toml).unwrap();
    load_project(&dir.join("pipedeck.toml")).unwrap()
}

#[ignore = "needs a Slurm cluster (scripts/slurm-test-cluster.sh) and terraform or tofu on PATH"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resource_on_slurm_deploys_as_batch_jobs_and_its_outputs_are_recorded() {
    needs();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let (h, _) = pipedeck::engine::start(project(tmp.path(), None, ""), &data)
        .await
        .unwrap();
    let mut rx = h.subscribe();
    let run = h.trigger_infra("c", false).await.unwrap();
    let done = wait_done(&h, &mut rx, run.id).await;
    assert_eq!(done.run.status, RunStatus::Succeeded, "{done:#?}");
    // Each of a's operations that ran was its own Slurm job, named after the run and
    // the operation's step, run in the resource's copy of the module.
    for op in ["init", "preview", "apply"] {
        let st = step(&done, &format!("operation/a.{op}"));
        assert_eq!(st.status, StepStatus::Succeeded, "{st:?}");
        let job = st
            .slurm_job
            .unwrap_or_else(|| panic!("a.{op} ran as no job"));
        let shown = scontrol(job);
        assert!(shown.contains("JobState=COMPLETED"), "{shown}");
        assert!(
            shown.contains(&format!("-r{}-s{} ", run.id, st.id)),
            "{shown}"
        );
        assert!(shown.contains("/infra/c/a/tree"), "{shown}");
        let log = h.logs(run.id, st.id, 0, 10_000).await.unwrap();
        assert!(
            log.iter()
                .any(|l| l.text.contains(&format!("Slurm job {job} submitted"))),
            "{log:?}"
        );
    }
    // Terraform's own output came through the job's output file.
    let apply = step(&done, "operation/a.apply");
    let log = h.logs(run.id, apply.id, 0, 10_000).await.unwrap();
    assert!(
        log.iter().any(|l| l.text.contains("Apply complete!")),
        "{log:?}"
    );
    // Its outputs are recorded, and the local dependent got them.
    assert_eq!(
        step(&done, "resource/a").outputs,
        Some(serde_json::json!({"value": "from slurm"}))
    );
    assert_eq!(step(&done, "operation/b.apply").slurm_job, None);
    assert_eq!(tfstate_value(&data.join("infra/c/a")), "from slurm");
    assert_eq!(tfstate_value(&data.join("infra/c/b")), "from slurm");
}

/// pipedeck's time limit stops a running apply the way a cancel of a local one does:
/// SIGINT first, so that Terraform stops and releases its state lock.
#[ignore = "needs a Slurm cluster (scripts/slurm-test-cluster.sh) and terraform or tofu on PATH"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apply_on_slurm_stopped_gets_sigint_first_and_releases_its_lock() {
    needs();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let p = project(
        tmp.path(),
        Some("sleep 120"),
        "timeout = \"12s\"\nkill_grace = \"20s\"",
    );
    let (h, _) = pipedeck::engine::start(p, &data).await.unwrap();
    let mut rx = h.subscribe();
    let run = h.trigger_infra("c", false).await.unwrap();
    let done = wait_done(&h, &mut rx, run.id).await;
    assert_eq!(done.run.status, RunStatus::Failed, "{done:#?}");
    let apply = step(&done, "operation/a.apply");
    assert_eq!(apply.status, StepStatus::Failed);
    let why = apply.reason.clone().unwrap_or_default();
    assert!(why.contains("timed out after 12s"), "{why}");
    let log: Vec<String> = h
        .logs(run.id, apply.id, 0, 10_000)
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.text)
        .collect();
    // Terraform itself got the interrupt (the job's shells ignore it) and stopped.
    assert!(
        log.iter().any(|l| l.contains("Interrupt received")),
        "{log:#?}"
    );
    assert!(
        !data.join("infra/c/a/.terraform.tfstate.lock.info").exists(),
        "a stale state lock was left"
    );
    let job = apply.slurm_job.unwrap();
    let shown = scontrol(job);
    assert!(!shown.contains("JobState=RUNNING"), "{shown}");
    assert_eq!(step(&done, "resource/b").status, StepStatus::Skipped);
}

/// Cancels a job when dropped (whatever a failed test leaves in the queue).
struct Scancel(u64);

impl Drop for Scancel {
    fn drop(&mut self) {
        let _ = std::process::Command::new("scancel")
            .arg(self.0.to_string())
            .status();
    }
}

/// Polls `what` (bounded) until it holds.
fn until(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(240);
    while !ok() {
        assert!(Instant::now() < deadline, "{what}: never");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[ignore = "needs a Slurm cluster (scripts/slurm-test-cluster.sh) and terraform or tofu on PATH"]
#[test]
fn a_killed_engine_reattaches_to_a_running_apply_and_finishes_the_deploy() {
    use common::bin::{json, run_ok, serve};
    needs();
    let p = TestProject::new("");
    let go = p.file("go");
    let wait = format!(
        "while [ ! -e {} ]; do sleep 0.2; done; echo let go",
        go.display()
    );
    project(p.path(), Some(&wait), "");
    let tree = p.data_dir().join("infra/c/a/tree");
    let mut engine = serve(&p);
    let id = run_ok(&p, &["infra", "run", "c"]).trim().to_string();
    until("the apply job started", || tree.join("applying").exists());
    let shown = json(&p, &["show", &id]);
    let apply = shown["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "a.apply")
        .unwrap_or_else(|| panic!("{shown:#}"));
    let job = apply["slurm_job"]
        .as_u64()
        .unwrap_or_else(|| panic!("no job recorded: {apply}"));
    let _cancel = Scancel(job);
    engine.child.kill().unwrap();
    engine.child.wait().unwrap();
    // The apply outlives the engine.
    assert!(scontrol(job).contains("JobState=RUNNING"));
    let _engine = serve(&p);
    std::fs::write(&go, "").unwrap();
    until("the run succeeded", || {
        json(&p, &["show", &id])["run"]["status"] == "succeeded"
    });
    let log = run_ok(&p, &["logs", &id, "--step", "operation/a.apply"]);
    assert!(
        log.contains(&format!("Slurm job {job} re-attached")),
        "{log}"
    );
    // `pipedeck show` names each operation's job.
    let text = run_ok(&p, &["show", &id]);
    assert!(text.contains(&format!("slurm job {job}")), "{text}");
    assert!(log.contains("Apply complete!"), "{log}");
    // One job, submitted once: the restarted engine submitted none of its own.
    assert_eq!(log.matches("submitted").count(), 1, "{log}");
    assert!(log.contains(&format!("Slurm job {job} submitted")), "{log}");
    // The job's working copy of the module was left as it was (not copied again
    // under it), and what it applied is recorded and reached the dependent.
    assert!(tree.join("applying").exists());
    let shown = json(&p, &["show", &id]);
    let a = shown["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stage"] == "resource" && s["name"] == "a")
        .unwrap();
    assert_eq!(
        a["outputs"],
        serde_json::json!({"value": "from slurm"}),
        "{a}"
    );
    assert_eq!(tfstate_value(&p.data_dir().join("infra/c/b")), "from slurm");
}
