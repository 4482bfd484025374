//! Service pipelines on the real engine: real processes, real SQLite, events awaited.

mod common;

use common::*;
use pipedeck::api::EngineClient;
use pipedeck::domain::{Decision, Event, GateStatus, RunStatus, StepStatus};

fn project(services: &str) -> TestProject {
    TestProject::new(&format!("{HEADER}\n{services}"))
}

/// A step that waits (bounded) for another step's marker file: it can only finish
/// if both run at the same time.
fn rendezvous(me: &str, other: &str, dir: &std::path::Path) -> String {
    let d = dir.display();
    format!(
        "touch {d}/{me}.started; i=0; while [ ! -f {d}/{other}.started ]; do i=$((i+1)); \
         [ $i -gt 1000 ] && echo never overlapped && exit 9; sleep 0.01; done; echo overlapped"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn independent_steps_overlap_and_the_run_succeeds() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let p = project(&format!(
        r#"
[services.svc]
repo_seed = "src"
environments = ["dev"]
[[services.svc.steps]]
name = "a"
run = "{}"
[[services.svc.steps]]
name = "b"
run = "{}"
[[services.svc.steps]]
name = "c"
needs = ["a", "b"]
run = "echo after both; test -f {}/a.started && test -f {}/b.started"
[services.svc.deploy.dev]
run = "echo deploying to $PIPEDECK_ENV at $PIPEDECK_COMMIT"
"#,
        rendezvous("a", "b", d),
        rendezvous("b", "a", d),
        d.display(),
        d.display()
    ));
    let h = p.start().await;
    let mut rx = h.subscribe();
    let run = h.trigger(trigger("svc")).await.unwrap();
    let done = wait_done(&h, &mut rx, run.id).await;
    assert_eq!(done.run.status, RunStatus::Succeeded, "{done:#?}");
    for s in ["build/a", "build/b", "build/c", "deploy/dev"] {
        assert_eq!(step(&done, s).status, StepStatus::Succeeded, "{s}");
    }
    // c started only after both a and b ended.
    let c = step(&done, "build/c").started_at.unwrap();
    assert!(c >= step(&done, "build/a").ended_at.unwrap());
    assert!(c >= step(&done, "build/b").ended_at.unwrap());
    let dev = step(&done, "deploy/dev");
    let log = h.logs(run.id, dev.id, 0, 10).await.unwrap();
    assert_eq!(
        log[0].text,
        format!("deploying to dev at {}", done.run.commit_sha)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_failure_stops_the_build_and_skips_deploy() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().display();
    let p = project(&format!(
        r#"
[services.svc]
repo_seed = "src"
environments = ["dev", "staging"]
[[services.svc.steps]]
name = "slow"
run = "touch {d}/slow.started; sleep 1000"
[[services.svc.steps]]
name = "bad"
run = "while [ ! -f {d}/slow.started ]; do sleep 0.01; done; echo failing >&2; exit 3"
[[services.svc.steps]]
name = "after"
needs = ["slow"]
run = "echo never"
[services.svc.deploy.dev]
run = "echo never"
[services.svc.deploy.staging]
run = "echo never"
"#
    ));
    let h = p.start().await;
    let mut rx = h.subscribe();
    let run = h.trigger(trigger("svc")).await.unwrap();
    let done = wait_done(&h, &mut rx, run.id).await;
    assert_eq!(done.run.status, RunStatus::Failed);
    assert_eq!(done.run.reason.as_deref(), Some("build/bad failed"));
    let bad = step(&done, "build/bad");
    assert_eq!((bad.status, bad.exit_code), (StepStatus::Failed, Some(3)));
    let slow = step(&done, "build/slow");
    assert_eq!(slow.status, StepStatus::Skipped);
    assert_eq!(slow.reason.as_deref(), Some("stopped: build/bad failed"));
    for s in ["build/after", "deploy/dev", "deploy/staging"] {
        let st = step(&done, s);
        assert_eq!(st.status, StepStatus::Skipped, "{s}");
        assert_eq!(
            st.reason.as_deref(),
            Some("upstream failed: build/bad"),
            "{s}"
        );
    }
    let log = h.logs(run.id, bad.id, 0, 10).await.unwrap();
    assert_eq!((log[0].stream, log[0].text.as_str()), ('e', "failing"));
}

const GATED: &str = r#"
[services.svc]
repo_seed = "src"
environments = ["dev", "staging", "prod"]
[[services.svc.steps]]
name = "build"
run = "echo built"
[services.svc.deploy.dev]
run = "echo dev"
[services.svc.deploy.staging]
run = "echo staging"
approval = true
approvers = ["alice", "tester"]
[services.svc.deploy.prod]
run = "echo prod"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approving_a_gate_proceeds_and_is_recorded() {
    let p = project(GATED);
    let h = p.start().await;
    let mut rx = h.subscribe();
    let run = h.trigger(trigger("svc")).await.unwrap();
    wait_for(&mut rx, |e| matches!(e, Event::Run { run: r } if r.id == run.id && r.status == RunStatus::AwaitingApproval)).await;
    assert_eq!(h.waiting_gates().await.unwrap().len(), 1);
    // Not an approver: refused, nothing changes.
    let err = h
        .as_caller("mallory")
        .decide(run.id, "staging", Decision::Approve, None)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "mallory may not approve staging: not in approvers [alice, tester]"
    );
    let g = h
        .as_caller("alice")
        .decide(run.id, "staging", Decision::Approve, Some("ship it".into()))
        .await
        .unwrap();
    assert_eq!(g.status, GateStatus::Approved);
    let done = wait_done(&h, &mut rx, run.id).await;
    assert_eq!(done.run.status, RunStatus::Succeeded);
    assert_eq!(step(&done, "deploy/prod").status, StepStatus::Succeeded);
    let gate = &done.gates[0];
    assert_eq!(gate.decided_by.as_deref(), Some("alice"));
    assert_eq!(gate.comment.as_deref(), Some("ship it"));
    assert!(gate.decided_at.unwrap() >= gate.opened_at);
    let audit = h.audit(run.id).await.unwrap();
    let actions: Vec<_> = audit
        .iter()
        .map(|a| (a.actor.as_str(), a.action.as_str()))
        .collect();
    // mallory's refused attempt is in the run's audit log too, with the rule.
    assert_eq!(
        actions,
        [
            ("tester", "trigger"),
            ("mallory", "refused"),
            ("alice", "approve")
        ]
    );
    assert_eq!(
        audit[1].comment.as_deref(),
        Some("mallory may not approve staging: not in approvers [alice, tester]")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejecting_a_gate_skips_it_and_every_later_environment() {
    let p = project(GATED);
    let h = p.start().await;
    let mut rx = h.subscribe();
    let run = h.trigger(trigger("svc")).await.unwrap();
    wait_step(&mut rx, run.id, "deploy/staging", "awaiting_approval").await;
    h.as_caller("tester")
        .decide(
            run.id,
            "staging",
            Decision::Reject,
            Some("not today".into()),
        )
        .await
        .unwrap();
    let done = wait_done(&h, &mut rx, run.id).await;
    assert_eq!(done.run.status, RunStatus::Rejected);
    assert_eq!(done.run.status.exit_code(), 3);
    assert_eq!(step(&done, "deploy/dev").status, StepStatus::Succeeded);
    let staging = step(&done, "deploy/staging");
    assert_eq!(staging.status, StepStatus::Rejected);
    assert_eq!(
        staging.reason.as_deref(),
        Some("rejected by tester: not today")
    );
    let prod = step(&done, "deploy/prod");
    assert_eq!(prod.status, StepStatus::Skipped);
    assert_eq!(
        prod.reason.as_deref(),
        Some("gate rejected at deploy/staging")
    );
    // A decided gate cannot be decided again.
    assert!(
        h.as_caller("alice")
            .decide(run.id, "staging", Decision::Approve, None)
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_approval_can_be_forbidden_and_gates_expire() {
    let p = project(
        r#"
[services.svc]
repo_seed = "src"
environments = ["dev", "prod"]
[services.svc.deploy.dev]
run = "true"
approval = true
forbid_self_approval = true
[services.svc.deploy.prod]
run = "true"
approval = true
expires_after = "100ms"
"#,
    );
    let h = p.start().await;
    let mut rx = h.subscribe();
    let run = h.trigger(trigger("svc")).await.unwrap();
    wait_step(&mut rx, run.id, "deploy/dev", "awaiting_approval").await;
    let err = h
        .as_caller("tester")
        .decide(run.id, "dev", Decision::Approve, None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("forbids self-approval"), "{err}");
    h.as_caller("bob")
        .decide(run.id, "dev", Decision::Approve, None)
        .await
        .unwrap();
    let done = wait_done(&h, &mut rx, run.id).await;
    assert_eq!(done.run.status, RunStatus::Rejected);
    assert_eq!(done.gates[1].status, GateStatus::Expired);
    assert_eq!(
        step(&done, "deploy/prod").reason.as_deref(),
        Some("the gate expired before anyone decided")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_during_build_kills_the_whole_process_tree() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().display();
    let p = project(&format!(
        r#"
[services.svc]
repo_seed = "src"
environments = ["dev"]
[[services.svc.steps]]
name = "tree"
run = "(sleep 1000 & echo $! > {d}/sleeper.pid; wait) & echo spawned; wait"
[[services.svc.steps]]
name = "later"
needs = ["tree"]
run = "echo never"
[services.svc.deploy.dev]
run = "echo never"
"#
    ));
    let h = p.start().await;
    let mut rx = h.subscribe();
    let run = h.trigger(trigger("svc")).await.unwrap();
    // The step has printed, so the sleeper exists.
    wait_for(&mut rx, |e| matches!(e, Event::Log { run_id, total_lines, .. } if *run_id == run.id && *total_lines >= 1)).await;
    let pid: i32 = loop {
        if let Ok(s) = std::fs::read_to_string(tmp.path().join("sleeper.pid"))
            && let Ok(pid) = s.trim().parse()
        {
            break pid;
        }
        tokio::task::yield_now().await;
    };
    assert!(!process_gone(pid));
    let r = h.cancel(run.id).await.unwrap();
    assert_eq!(r.status, RunStatus::Cancelling);
    let done = wait_done(&h, &mut rx, run.id).await;
    assert_eq!(done.run.status, RunStatus::Cancelled);
    assert_eq!(step(&done, "build/tree").status, StepStatus::Cancelled);
    assert_eq!(step(&done, "build/later").status, StepStatus::Cancelled);
    assert_eq!(step(&done, "deploy/dev").status, StepStatus::Cancelled);
    assert!(
        process_gone(pid),
        "the grandchild sleep 1000 survived the cancel"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_during_deploy_lets_the_environment_in_flight_finish() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().display();
    let p = project(&format!(
        r#"
[services.svc]
repo_seed = "src"
environments = ["dev", "staging"]
[services.svc.deploy.dev]
run = "while [ ! -f {d}/release ]; do sleep 0.01; done; echo dev finished"
[services.svc.deploy.staging]
run = "echo never"
"#
    ));
    let h = p.start().await;
    let mut rx = h.subscribe();
    let run = h.trigger(trigger("svc")).await.unwrap();
    wait_step(&mut rx, run.id, "deploy/dev", "running").await;
    let r = h.cancel(run.id).await.unwrap();
    assert_eq!(r.status, RunStatus::Cancelling);
    std::fs::write(tmp.path().join("release"), "").unwrap();
    let done = wait_done(&h, &mut rx, run.id).await;
    assert_eq!(done.run.status, RunStatus::Cancelled);
    let dev = step(&done, "deploy/dev");
    assert_eq!(dev.status, StepStatus::Succeeded);
    assert_eq!(
        h.logs(run.id, dev.id, 0, 5).await.unwrap()[0].text,
        "dev finished"
    );
    assert_eq!(step(&done, "deploy/staging").status, StepStatus::Cancelled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_lines_is_stored_whole_in_order_and_masked() {
    let p = project(
        r#"
[services.svc]
repo_seed = "src"
[services.svc.secrets]
TOKEN = { file = "token.txt" }
[[services.svc.steps]]
name = "flood"
run = "awk -v t=\"$TOKEN\" 'BEGIN { for (i = 0; i < 200000; i++) print \"line \" i \" token=\" t }'"
"#,
    );
    std::fs::write(p.file("token.txt"), "s3cr3t-v4lue\n").unwrap();
    let h = p.start().await;
    let mut rx = h.subscribe();
    let run = h.trigger(trigger("svc")).await.unwrap();
    let done = wait_done(&h, &mut rx, run.id).await;
    assert_eq!(done.run.status, RunStatus::Succeeded);
    let id = step(&done, "build/flood").id;
    let mut n = 0u64;
    loop {
        let lines = h.logs(run.id, id, n, 50_000).await.unwrap();
        if lines.is_empty() {
            break;
        }
        for l in &lines {
            assert_eq!(l.n, n);
            assert_eq!(l.text, format!("line {n} token=***"));
            n += 1;
        }
    }
    assert_eq!(n, 200_000);
    // The whole stored log is searchable (issue 19), both ways; the secret is not in it.
    let find = |needle: &str, from: u64, backward: bool| {
        let needle = needle.to_string();
        let run_id = run.id;
        let h = h.clone();
        async move {
            let req = pipedeck::domain::Request::SearchLog {
                run_id,
                step_id: id,
                from,
                needle,
                backward,
            };
            h.ask::<Option<u64>>(req).await.unwrap()
        }
    };
    assert_eq!(find("line 17 ", 200_000, true).await, Some(17));
    assert_eq!(find("line 199999 ", 0, false).await, Some(199_999));
    assert_eq!(find("s3cr3t", 0, false).await, None);
    let raw = std::fs::read(p.data_dir().join(format!("logs/{}/{id}.log", run.id))).unwrap();
    assert!(
        memchr::memmem::find(&raw, b"s3cr3t").is_none(),
        "a secret reached the stored log"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rerun_is_a_new_linked_attempt_with_the_original_definition() {
    let p = project(
        r#"
[services.svc]
repo_seed = "src"
[[services.svc.steps]]
name = "one"
run = "echo first definition"
"#,
    );
    let h = p.start().await;
    let mut rx = h.subscribe();
    let first = h.trigger(trigger("svc")).await.unwrap();
    let done = wait_done(&h, &mut rx, first.id).await;
    assert_eq!(done.run.status, RunStatus::Succeeded);
    let again = h.rerun(first.id, false).await.unwrap();
    assert_eq!((again.rerun_of, again.attempt), (Some(first.id), 2));
    assert_eq!(again.commit_sha, done.run.commit_sha);
    let redone = wait_done(&h, &mut rx, again.id).await;
    let s = step(&redone, "build/one");
    assert_eq!(
        h.logs(again.id, s.id, 0, 1).await.unwrap()[0].text,
        "first definition"
    );
    // The original and its log are untouched.
    let orig = step(&done, "build/one");
    assert_eq!(h.logs(first.id, orig.id, 0, 5).await.unwrap().len(), 1);
    assert_eq!(
        h.detail(first.id).await.unwrap().run.status,
        RunStatus::Succeeded
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_pipelines_and_disabled_deployments() {
    let p = project(
        r#"
[services.off]
repo_seed = "src"
pipelines_enabled = false
[[services.off.steps]]
name = "one"
run = "true"

[services.builds]
repo_seed = "src"
deployments_enabled = false
environments = ["dev"]
[[services.builds.steps]]
name = "one"
run = "true"
[services.builds.deploy.dev]
run = "echo never"
"#,
    );
    let h = p.start().await;
    let err = h.trigger(trigger("off")).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("pipelines are disabled for service off"),
        "{err}"
    );
    let mut rx = h.subscribe();
    let run = h.trigger(trigger("builds")).await.unwrap();
    let done = wait_done(&h, &mut rx, run.id).await;
    assert_eq!(done.run.status, RunStatus::Succeeded);
    assert_eq!(step(&done, "build/one").status, StepStatus::Succeeded);
    let dev = step(&done, "deploy/dev");
    assert_eq!(dev.status, StepStatus::Skipped);
    assert_eq!(
        dev.reason.as_deref(),
        Some("deployments are disabled for service builds")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploys_to_one_environment_never_overlap_and_none_is_dropped() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().display();
    // Each deploy holds a lock file while it runs; a second holder fails the deploy.
    let p = project(&format!(
        r#"
[services.svc]
repo_seed = "src"
environments = ["dev"]
[services.svc.deploy.dev]
run = "mkdir {d}/lock || exit 7; echo $PIPEDECK_RUN_ID >> {d}/order; sleep 0.2; rmdir {d}/lock"
"#
    ));
    let h = p.start().await;
    let mut rx = h.subscribe();
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(h.trigger(trigger("svc")).await.unwrap().id);
    }
    for id in &ids {
        let done = wait_done(&h, &mut rx, *id).await;
        assert_eq!(done.run.status, RunStatus::Succeeded, "{done:#?}");
    }
    let order = std::fs::read_to_string(tmp.path().join("order")).unwrap();
    let mut got: Vec<i64> = order.lines().map(|l| l.parse().unwrap()).collect();
    got.sort();
    assert_eq!(got, ids);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_a_step_left_behind_is_stopped_when_the_step_ends() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().display();
    // The daemon leaves the step's process group (setsid) and keeps its stdout open.
    let p = project(&format!(
        r#"
[services.svc]
repo_seed = "src"
[[services.svc.steps]]
name = "daemonize"
run = "echo before; setsid sh -c 'echo $$ > {d}/daemon.tmp; mv {d}/daemon.tmp {d}/daemon.pid; exec sleep 30' & while [ ! -e {d}/daemon.pid ]; do sleep 0.01; done; echo after"
"#
    ));
    let h = p.start().await;
    let mut rx = h.subscribe();
    let run = h.trigger(trigger("svc")).await.unwrap();
    let done = wait_done(&h, &mut rx, run.id).await;
    let pid: i32 = std::fs::read_to_string(tmp.path().join("daemon.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // The engine (a subreaper) finds it by its step's token and stops it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !process_gone(pid) && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let gone = process_gone(pid);
    unsafe { libc::kill(pid, libc::SIGKILL) };
    assert!(gone, "the daemon outlived its step");
    assert_eq!(done.run.status, RunStatus::Succeeded, "{done:#?}");
    let s = step(&done, "build/daemonize");
    let log = h.logs(run.id, s.id, 0, 10).await.unwrap();
    let text: Vec<&str> = log.iter().map(|l| l.text.as_str()).collect();
    assert_eq!(text, ["before", "after"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steps_waiting_for_a_slot_are_reported_queued_and_run_one_at_a_time() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().display();
    // One slot; three ready steps that each hold it for a while and check they are alone.
    let body = format!("mkdir {d}/lock || exit 7; sleep 0.3; rmdir {d}/lock");
    let p = TestProject::new(&format!(
        r#"
[engine]
concurrency = 1
[services.svc]
repo_seed = "src"
[[services.svc.steps]]
name = "a"
run = "{body}"
[[services.svc.steps]]
name = "b"
run = "{body}"
[[services.svc.steps]]
name = "c"
run = "{body}"
"#
    ));
    let h = p.start().await;
    let mut rx = h.subscribe();
    let run = h.trigger(trigger("svc")).await.unwrap();
    let mut queued = std::collections::HashSet::new();
    let done = loop {
        match rx.recv().await.unwrap() {
            Event::Step { step } if step.run_id == run.id && step.status == StepStatus::Queued => {
                queued.insert(step.name.clone());
            }
            Event::Run { run: r } if r.id == run.id && r.status.is_terminal() => {
                break h.detail(run.id).await.unwrap();
            }
            _ => {}
        }
    };
    assert_eq!(done.run.status, RunStatus::Succeeded, "{done:#?}");
    // The first starts at once; the other two wait 300 ms or more, so are seen queued.
    assert_eq!(queued.len(), 2, "queued: {queued:?}");
    let mut spans: Vec<(i64, i64)> = ["build/a", "build/b", "build/c"]
        .iter()
        .map(|s| {
            (
                step(&done, s).started_at.unwrap(),
                step(&done, s).ended_at.unwrap(),
            )
        })
        .collect();
    spans.sort();
    assert!(
        spans[0].1 <= spans[1].0 && spans[1].1 <= spans[2].0,
        "{spans:?}"
    );
}

/// Issue 21: a step that hangs past its time limit is stopped (with what it started)
/// and fails with the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_step_times_out_with_its_reason_and_nothing_left() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().display();
    let p = project(&format!(
        r#"
[services.svc]
repo_seed = "src"
[[services.svc.steps]]
name = "hang"
timeout = "1s"
run = "sleep 1000 & echo $! > {d}/child.pid; echo started; wait"
"#
    ));
    let h = p.start().await;
    let mut rx = h.subscribe();
    let run = h.trigger(trigger("svc")).await.unwrap();
    let done = wait_done(&h, &mut rx, run.id).await;
    assert_eq!(done.run.status, RunStatus::Failed, "{done:#?}");
    let s = step(&done, "build/hang");
    assert_eq!(s.status, StepStatus::Failed);
    assert_eq!(s.reason.as_deref(), Some("timed out after 1s"));
    let pid: i32 = std::fs::read_to_string(tmp.path().join("child.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        process_gone(pid),
        "the step's child outlived its time limit"
    );
}

/// Issue 21: a flaky build step succeeds on its second attempt; both attempts' output
/// stays in its log, with a line saying why it ran again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flaky_step_succeeds_on_its_second_attempt_with_both_logs_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().display();
    let p = project(&format!(
        r#"
[services.svc]
repo_seed = "src"
[[services.svc.steps]]
name = "flaky"
retries = 2
run = "if [ -e {d}/tried ]; then echo second try; else touch {d}/tried; echo first try; exit 3; fi"
"#
    ));
    let h = p.start().await;
    let mut rx = h.subscribe();
    let run = h.trigger(trigger("svc")).await.unwrap();
    let done = wait_done(&h, &mut rx, run.id).await;
    assert_eq!(done.run.status, RunStatus::Succeeded, "{done:#?}");
    let s = step(&done, "build/flaky");
    let log = h.logs(run.id, s.id, 0, 10).await.unwrap();
    let text: Vec<&str> = log.iter().map(|l| l.text.as_str()).collect();
    assert_eq!(
        text,
        [
            "first try",
            "attempt 1 of 3 failed (exited with code 3): trying again in 1s",
            "second try",
            "attempt 2 of 3 succeeded",
        ]
    );
}
