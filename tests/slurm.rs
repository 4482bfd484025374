//! Steps as Slurm batch jobs (issue 20), against a real one-node cluster.
//!
//! Ignored by a plain `cargo test`, with the reason: they need a running cluster,
//! which `scripts/slurm-test-cluster.sh` installs and starts (root, apt). `.ci/run`
//! starts it and runs these with `--ignored`; run with `--ignored` where no cluster
//! answers, they fail saying so.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::bin::*;
use common::*;
use pipedeck::api::EngineClient;
use pipedeck::domain::{Event, RunStatus, StepStatus};

const NEEDS: &str = "needs a Slurm cluster (scripts/slurm-test-cluster.sh)";

/// `squeue -h -o FORMAT`, one line a job still queued or running.
fn squeue(format: &str) -> Vec<String> {
    let out = std::process::Command::new("squeue")
        .args(["-h", "-o", format])
        .output()
        .unwrap();
    assert!(out.status.success(), "squeue failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// One test engine's jobs (named after its store); whatever of them a failed test
/// leaves in the queue is cancelled when this is dropped.
struct Jobs(String);

impl Jobs {
    fn of(p: &TestProject) -> Self {
        let store = pipedeck::engine::executor::leftovers::store_id(&p.data_dir());
        Self(pipedeck::engine::executor::slurm::job_name(&store, 0, 0).replace("-r0-s0", "-"))
    }

    /// The state of each job of `run`'s `step` still queued or running.
    fn in_queue(&self, run: impl std::fmt::Display, step: i64) -> Vec<String> {
        let name = format!("{}r{run}-s{step}", self.0);
        squeue("%j %T")
            .into_iter()
            .filter_map(|l| Some(l.strip_prefix(&format!("{name} "))?.to_string()))
            .collect()
    }
}

impl Drop for Jobs {
    fn drop(&mut self) {
        for line in squeue("%i %j") {
            if let Some((id, name)) = line.split_once(' ')
                && name.starts_with(&self.0)
            {
                let _ = std::process::Command::new("scancel").arg(id).status();
            }
        }
    }
}

fn project(dir: &Path, steps: &str) -> TestProject {
    let _ = dir;
    TestProject::new(&format!(
        "{HEADER}\n[slurm]\ndefault = true\npoll = \"500ms\"\n\n[services.hpc]\nrepo_seed = \"src\"\n{steps}"
    ))
}

async fn log_text(h: &pipedeck::engine::EngineHandle, run: i64, step: i64) -> String {
    h.logs(run, step, 0, 10_000)
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.text)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Waits (by log events, bounded) until step `step` of `run` has a line containing `text`.
async fn wait_line(
    h: &pipedeck::engine::EngineHandle,
    rx: &mut tokio::sync::broadcast::Receiver<Event>,
    run: i64,
    step: i64,
    text: &str,
) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !log_text(h, run, step).await.contains(text) {
        assert!(Instant::now() < deadline, "`{text}` never came in the log");
        let _ = tokio::time::timeout(
            Duration::from_secs(2),
            wait_for(rx, |e| matches!(e, Event::Log { run_id, step_id, .. } if *run_id == run && *step_id == step)),
        )
        .await;
    }
}

#[ignore = "needs a Slurm cluster (scripts/slurm-test-cluster.sh)"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steps_run_as_parallel_jobs_with_their_output_streamed_while_they_run() {
    let _ = NEEDS;
    slurm_cluster();
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().display();
    // Both wait for the same file: they can only both print `waiting` if they run at once.
    let def = |n: &str| {
        format!(
            "[[services.hpc.steps]]\nname = \"{n}\"\nrun = 'echo \"waiting $PIPEDECK_STEP in $PWD\"; while [ ! -e {d}/go ]; do sleep 0.1; done; echo \"done $PIPEDECK_RUN_ID\"'\nslurm = {{ cpus = 1, memory = \"64M\", sbatch = [\"--comment=pipedeck test\"] }}\n"
        )
    };
    let p = project(tmp.path(), &format!("{}{}", def("a"), def("b")));
    let h = p.start().await;
    let jobs = Jobs::of(&p);
    let mut rx = h.subscribe();
    let run = h.trigger(trigger("hpc")).await.unwrap();
    let d0 = h.detail(run.id).await.unwrap();
    let (a, b) = (step(&d0, "build/a").id, step(&d0, "build/b").id);
    wait_line(&h, &mut rx, run.id, a, "waiting a").await;
    wait_line(&h, &mut rx, run.id, b, "waiting b").await;
    // Both are Slurm jobs, running now.
    let queued: Vec<String> = [a, b]
        .iter()
        .flat_map(|&s| jobs.in_queue(run.id, s))
        .collect();
    assert_eq!(queued, ["RUNNING", "RUNNING"]);
    std::fs::write(tmp.path().join("go"), "").unwrap();
    let done = wait_done(&h, &mut rx, run.id).await;
    assert_eq!(done.run.status, RunStatus::Succeeded, "{done:?}");
    for s in [a, b] {
        let text = log_text(&h, run.id, s).await;
        assert!(text.contains(&format!("done {}", run.id)), "{text}");
        assert!(text.contains("Slurm job "), "{text}");
        assert!(
            text.contains("/workspaces/1"),
            "the job runs in the run's workspace: {text}"
        );
        assert!(text.contains("COMPLETED"), "{text}");
    }
}

#[ignore = "needs a Slurm cluster (scripts/slurm-test-cluster.sh)"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_job_fails_its_step_with_slurms_reason() {
    slurm_cluster();
    let tmp = tempfile::tempdir().unwrap();
    let p = project(
        tmp.path(),
        "[[services.hpc.steps]]\nname = \"bad\"\nrun = \"echo about to fail; exit 3\"\n",
    );
    let h = p.start().await;
    let _jobs = Jobs::of(&p);
    let mut rx = h.subscribe();
    let run = h.trigger(trigger("hpc")).await.unwrap();
    let done = wait_done(&h, &mut rx, run.id).await;
    assert_eq!(done.run.status, RunStatus::Failed);
    let bad = step(&done, "build/bad");
    assert_eq!(bad.status, StepStatus::Failed);
    assert_eq!(bad.exit_code, Some(3));
    let why = bad.reason.clone().unwrap_or_default();
    assert!(why.contains("exited with code 3"), "{why}");
    assert!(why.contains("FAILED: NonZeroExitCode"), "{why}");
    assert!(log_text(&h, run.id, bad.id).await.contains("about to fail"));
}

#[ignore = "needs a Slurm cluster (scripts/slurm-test-cluster.sh)"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_past_its_slurm_time_limit_is_reported_as_timed_out() {
    slurm_cluster();
    let tmp = tempfile::tempdir().unwrap();
    // Slurm's limits are whole minutes, and it checks them every half minute or so.
    let p = project(
        tmp.path(),
        "[[services.hpc.steps]]\nname = \"slow\"\nrun = \"echo started; exec sleep 600\"\nslurm = { time_limit = \"1m\" }\n",
    );
    let h = p.start().await;
    let _jobs = Jobs::of(&p);
    let mut rx = h.subscribe();
    let run = h.trigger(trigger("hpc")).await.unwrap();
    let done = wait_done(&h, &mut rx, run.id).await;
    let slow = step(&done, "build/slow");
    assert_eq!(slow.status, StepStatus::Failed);
    let why = slow.reason.clone().unwrap_or_default();
    assert!(why.contains("timed out after 1m"), "{why}");
    assert!(why.contains("TIMEOUT"), "{why}");
}

#[ignore = "needs a Slurm cluster (scripts/slurm-test-cluster.sh)"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_leaves_no_job_in_the_queue() {
    slurm_cluster();
    let tmp = tempfile::tempdir().unwrap();
    let p = project(
        tmp.path(),
        "[[services.hpc.steps]]\nname = \"long\"\nrun = \"trap 'echo got TERM; exit 143' TERM; echo up; while true; do sleep 0.1; done\"\n",
    );
    let h = p.start().await;
    let jobs = Jobs::of(&p);
    let mut rx = h.subscribe();
    let run = h.trigger(trigger("hpc")).await.unwrap();
    let long = step(&h.detail(run.id).await.unwrap(), "build/long").id;
    wait_line(&h, &mut rx, run.id, long, "up").await;
    assert_eq!(jobs.in_queue(run.id, long), ["RUNNING"]);
    h.cancel(run.id).await.unwrap();
    let done = wait_done(&h, &mut rx, run.id).await;
    assert_eq!(done.run.status, RunStatus::Cancelled, "{done:?}");
    assert_eq!(step(&done, "build/long").status, StepStatus::Cancelled);
    assert_eq!(jobs.in_queue(run.id, long), Vec::<String>::new());
    // SIGTERM first: the step's trap ran.
    assert!(log_text(&h, run.id, long).await.contains("got TERM"));
}

#[ignore = "needs a Slurm cluster (scripts/slurm-test-cluster.sh)"]
#[test]
fn a_killed_engine_reattaches_to_its_jobs_after_a_restart() {
    slurm_cluster();
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().display();
    let p = project(
        tmp.path(),
        &format!(
            "[[services.hpc.steps]]\nname = \"job\"\nrun = 'echo one; while [ ! -e {d}/go ]; do sleep 0.1; done; echo two'\n[[services.hpc.steps]]\nname = \"after\"\nneeds = [\"job\"]\nrun = \"echo after\"\n"
        ),
    );
    let mut engine = serve(&p);
    let jobs = Jobs::of(&p);
    let id = run_ok(&p, &["run", "hpc"]).trim().to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !run_ok(&p, &["logs", &id, "--step", "build/job"]).contains("one") {
        assert!(Instant::now() < deadline, "the job never started");
        std::thread::sleep(Duration::from_millis(100));
    }
    let shown = json(&p, &["show", &id]);
    let job = shown["steps"][0]["slurm_job"]
        .as_u64()
        .unwrap_or_else(|| panic!("no Slurm job recorded: {shown}"));
    let first = shown["steps"][0]["id"].as_i64().unwrap();
    engine.child.kill().unwrap();
    engine.child.wait().unwrap();
    // The job outlives the engine.
    assert_eq!(jobs.in_queue(&id, first), ["RUNNING"]);
    let _engine = serve(&p);
    std::fs::write(tmp.path().join("go"), "").unwrap();
    wait_status(&p, &id, &["succeeded"]);
    let log = run_ok(&p, &["logs", &id, "--step", "build/job"]);
    assert_eq!(log.matches("one").count(), 1, "{log}");
    assert!(log.contains("two"), "{log}");
    assert!(
        log.contains(&format!("Slurm job {job} re-attached")),
        "{log}"
    );
    assert!(run_ok(&p, &["logs", &id, "--step", "build/after"]).contains("after"));
}

/// A job of our own holding every CPU of the one-node cluster, cancelled when dropped.
struct Holder(String);

impl Holder {
    fn start() -> Self {
        let cpus = std::process::Command::new("sinfo")
            .args(["-h", "-o", "%c"])
            .output()
            .unwrap();
        let cpus = String::from_utf8_lossy(&cpus.stdout).trim().to_string();
        let out = std::process::Command::new("sbatch")
            .args([
                "--parsable",
                "--job-name=pipedeck-test-holder",
                &format!("--cpus-per-task={cpus}"),
                "--mem=64M",
                "--output=/dev/null",
                "--wrap=sleep 600",
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let holder = Self(id);
        let deadline = Instant::now() + Duration::from_secs(60);
        while holder.state() != "RUNNING" {
            assert!(Instant::now() < deadline, "the holder job never started");
            std::thread::sleep(Duration::from_millis(200));
        }
        holder
    }

    fn state(&self) -> String {
        squeue("%i %T")
            .into_iter()
            .find_map(|l| Some(l.strip_prefix(&format!("{} ", self.0))?.to_string()))
            .unwrap_or_default()
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = std::process::Command::new("scancel").arg(&self.0).status();
    }
}

#[ignore = "needs a Slurm cluster (scripts/slurm-test-cluster.sh)"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_job_shows_as_queued_then_running_when_slurm_starts_it() {
    slurm_cluster();
    let tmp = tempfile::tempdir().unwrap();
    let p = project(
        tmp.path(),
        "[[services.hpc.steps]]\nname = \"wait\"\nrun = \"echo started\"\ntimeout = \"5s\"\nslurm = { cpus = 1, memory = \"64M\" }\n",
    );
    // Every CPU is taken: our job waits in the cluster's queue.
    let holder = Holder::start();
    let h = p.start().await;
    let jobs = Jobs::of(&p);
    let mut rx = h.subscribe();
    let run = h.trigger(trigger("hpc")).await.unwrap();
    let queued = wait_for(&mut rx, |e| {
        matches!(e, Event::Step { step } if step.run_id == run.id
            && step.status == StepStatus::Queued
            && step.reason.as_deref().is_some_and(|r| r.starts_with("in Slurm's queue")))
    })
    .await;
    let Event::Step { step: queued } = queued else {
        unreachable!()
    };
    assert_eq!(jobs.in_queue(run.id, queued.id), ["PENDING"]);
    assert!(queued.slurm_job.is_some(), "{queued:?}");
    assert_eq!(queued.started_at, None, "a pending job has not started");
    // The store (and so the CLI and the dashboard) says queued, with the job.
    let shown = step(&h.detail(run.id).await.unwrap(), "build/wait").clone();
    assert_eq!(shown.status, StepStatus::Queued);
    assert_eq!(shown.slurm_job, queued.slurm_job);
    assert_eq!(
        h.detail(run.id).await.unwrap().run.status,
        RunStatus::Running
    );
    // Its time limit counts from when it starts: waiting longer in the queue is fine.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(jobs.in_queue(run.id, queued.id), ["PENDING"]);
    // The CPUs come free: Slurm starts the job, and the step turns running.
    drop(holder);
    wait_step(&mut rx, run.id, "build/wait", "running").await;
    let done = wait_done(&h, &mut rx, run.id).await;
    assert_eq!(done.run.status, RunStatus::Succeeded, "{done:?}");
    let wait = step(&done, "build/wait");
    assert!(wait.started_at.is_some());
    assert_eq!(wait.slurm_job, queued.slurm_job);
    let text = log_text(&h, run.id, wait.id).await;
    assert!(text.contains("PENDING"), "{text}");
    assert!(text.contains("started"), "{text}");
}

#[ignore = "needs a Slurm cluster (scripts/slurm-test-cluster.sh)"]
#[test]
fn a_killed_engine_reattaches_to_a_job_still_waiting_in_the_queue() {
    slurm_cluster();
    let tmp = tempfile::tempdir().unwrap();
    let p = project(
        tmp.path(),
        "[[services.hpc.steps]]\nname = \"job\"\nrun = \"echo ran\"\nslurm = { cpus = 1, memory = \"64M\" }\n",
    );
    let holder = Holder::start();
    let mut engine = serve(&p);
    let jobs = Jobs::of(&p);
    let id = run_ok(&p, &["run", "hpc"]).trim().to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    let (step_id, job) = loop {
        let shown = json(&p, &["show", &id]);
        let st = &shown["steps"][0];
        if st["status"] == "queued"
            && let Some(job) = st["slurm_job"].as_u64()
        {
            break (st["id"].as_i64().unwrap(), job);
        }
        assert!(Instant::now() < deadline, "never queued on Slurm: {shown}");
        std::thread::sleep(Duration::from_millis(100));
    };
    engine.child.kill().unwrap();
    engine.child.wait().unwrap();
    assert_eq!(jobs.in_queue(&id, step_id), ["PENDING"]);
    let _engine = serve(&p);
    drop(holder);
    wait_status(&p, &id, &["succeeded"]);
    let log = run_ok(&p, &["logs", &id, "--step", "build/job"]);
    // The job it had submitted ran; no second one was.
    assert!(
        log.contains(&format!("Slurm job {job} re-attached")),
        "{log}"
    );
    assert_eq!(log.matches("submitted").count(), 1, "{log}");
    assert!(log.contains("ran"), "{log}");
}
