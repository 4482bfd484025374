//! The real binary end to end: hosting, the local API between processes, restart
//! after kill -9, exit codes.

mod common;

use std::process::Command;

use common::bin::*;
use common::*;

const SERVICES: &str = r#"
[services.plain]
repo_seed = "src"
environments = ["dev"]
[services.plain.deploy.dev]
run = "echo dev"

[services.slow]
repo_seed = "src"
[[services.slow.steps]]
name = "print-then-hang"
run = "echo $$ > \"$PIPEDECK_DATA_DIR/slow.pgid\"; i=1; while [ $i -le 50 ]; do echo line $i; i=$((i+1)); done; sleep 1000"
"#;

fn setup() -> TestProject {
    TestProject::new(&format!("{HEADER}\n{GATED}\n{SERVICES}"))
}

/// Starts `run gated --wait` and waits until it stops at the prod gate; returns the
/// waiting client and the run id (its first line).
fn run_to_gate(p: &TestProject) -> (Proc, String) {
    let mut c = pipedeck(p);
    c.args(["run", "gated", "--wait"]);
    let mut waiting = Proc::spawn(c, false);
    let id = waiting.until("").trim().to_string();
    waiting.until("gate prod is waiting");
    (waiting, id)
}

#[test]
fn run_wait_in_one_process_and_approve_from_another() {
    let p = setup();
    // No engine yet: read commands say so, with exit code 4.
    let out = run_out(&p, &["runs"]);
    assert_eq!(out.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no engine is running"));

    let (waiting, id) = run_to_gate(&p);
    assert!(
        id.parse::<i64>().is_ok(),
        "first line is the run id: {id:?}"
    );
    let shown = json(&p, &["show", &id]);
    assert_eq!(shown["run"]["status"], "awaiting_approval");
    assert_eq!(json(&p, &["runs"])[0]["id"].to_string(), id);

    let out = run_ok(&p, &["approve", &id, "prod", "--comment", "ship it"]);
    // The engine records the account the client runs as, read from the socket.
    let me = me();
    assert!(out.contains(&format!("approved by {me}")), "{out}");
    let (code, lines) = waiting.rest();
    assert_eq!(code, 0, "{lines:#?}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains(&format!("gate prod approved by {me}: ship it"))),
        "{lines:#?}"
    );
    assert!(!lines.iter().any(|l| l.contains("alice")), "{lines:#?}");
    assert!(
        lines
            .last()
            .unwrap()
            .contains(&format!("run {id} succeeded")),
        "{lines:#?}"
    );

    // Rejection ends `run --wait` with exit code 3.
    let (waiting, id2) = run_to_gate(&p);
    run_ok(&p, &["reject", &id2, "prod"]);
    assert_eq!(waiting.rest().0, 3);
}

#[test]
fn kill_9_mid_run_then_restart_interrupts_and_keeps_gates() {
    let p = setup();
    let mut engine = serve(&p);
    let (gated, gated_id) = run_to_gate(&p);

    let slow_id = run_ok(&p, &["run", "slow"]).trim().to_string();
    let mut c = pipedeck(&p);
    c.args(["logs", &slow_id, "--follow"]);
    let mut follow = Proc::spawn(c, false);
    follow.until("line 50");

    engine.child.kill().unwrap(); // SIGKILL: no chance to clean up
    engine.child.wait().unwrap();
    let _ = follow.child.kill();
    // The engine's clients notice it is gone.
    assert_eq!(gated.rest().0, 4);
    // The orphaned step still runs, until the new engine stops it: before it serves.
    let pgid: i32 = std::fs::read_to_string(p.data_dir().join("slow.pgid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(!process_gone(pgid), "the step ended with the engine");
    let engine = serve(&p);
    assert!(
        process_gone(pgid),
        "the new engine left the old step running"
    );
    let slow = json(&p, &["show", &slow_id]);
    assert_eq!(slow["run"]["status"], "interrupted", "{slow:#}");
    assert_eq!(slow["steps"][0]["status"], "interrupted");
    let logs = run_ok(&p, &["logs", &slow_id]);
    let want: Vec<String> = (1..=50).map(|i| format!("line {i}")).collect();
    assert_eq!(logs.lines().collect::<Vec<_>>(), want);

    let gated = json(&p, &["show", &gated_id]);
    assert_eq!(gated["run"]["status"], "awaiting_approval", "{gated:#}");
    run_ok(&p, &["approve", &gated_id, "prod"]);
    // `logs --follow` returns when the run ends.
    let out = run_ok(&p, &["logs", &gated_id, "--follow"]);
    assert!(out.contains("[deploy/prod] prod"), "{out}");
    let gated = json(&p, &["show", &gated_id]);
    assert_eq!(gated["run"]["status"], "succeeded", "{gated:#}");

    // SIGTERM stops the engine cleanly.
    let pid = engine.child.id() as i32;
    kill(pid, "TERM");
    assert_eq!(engine.rest().0, 0);
    assert_eq!(run_out(&p, &["runs"]).status.code(), Some(4));
}

fn kill(pid: i32, sig: &str) {
    let st = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(st.success());
}

/// Issue 24: a rerun that would take an environment back to an older commit is refused
/// (exit 2, saying why) unless it is asked for with `--allow-older`.
#[test]
fn a_rerun_of_an_old_run_is_refused_without_allow_older() {
    let p = setup();
    let _engine = serve(&p);
    let first = run_ok(&p, &["run", "plain", "--wait"]);
    let first = first.lines().next().unwrap().trim().to_string();
    let st = Command::new("git")
        .arg("-C")
        .arg(p.data_dir().join("repos/plain"))
        .args(["-c", "user.name=t", "-c", "user.email=t@t.invalid"])
        .args(["commit", "--quiet", "--allow-empty", "-m", "newer"])
        .status()
        .unwrap();
    assert!(st.success());
    let second = run_ok(&p, &["run", "plain", "--wait"]);
    let second = second.lines().next().unwrap().trim().to_string();
    let out = run_out(&p, &["rerun", &first]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("a rerun of run {first} (")), "{err}");
    assert!(
        err.contains("would deploy an older commit than dev runs "),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "(run {second}); pass --allow-older to roll back on purpose"
        )),
        "{err}"
    );
    let out = run_out(&p, &["rerun", &first, "--allow-older"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}

#[test]
fn exit_codes_for_usage_errors() {
    let p = setup();
    let _engine = serve(&p);
    // Unknown service: the engine refuses, exit 2.
    let out = run_out(&p, &["run", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no service `nope`"));
    // Approving a gate that is not waiting: exit 2 with the reason.
    let out = run_out(&p, &["approve", "999", "prod"]);
    assert_eq!(out.status.code(), Some(2));
    // A second host for the same data dir is refused.
    let out = run_out(&p, &["serve"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already running"));
    // A broken project file: exit 2 with file:line.
    std::fs::write(p.file("bad.toml"), "[engine]\nconcurency = 2\n").unwrap();
    let out = run_out(
        &p,
        &[
            "validate",
            "--project",
            p.file("bad.toml").to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("bad.toml:2:1: error: unknown field `concurency`")
    );
}

#[test]
fn serve_stops_on_sigterm_and_records_running_steps_as_cancelled() {
    let p = setup();
    let engine = serve(&p);
    let slow_id = run_ok(&p, &["run", "slow"]).trim().to_string();
    let mut c = pipedeck(&p);
    c.args(["logs", &slow_id, "--follow"]);
    let mut follow = Proc::spawn(c, false);
    follow.until("line 50");
    kill(engine.child.id() as i32, "TERM");
    assert_eq!(engine.rest().0, 0);
    let _ = follow.child.kill();
    let pgid: i32 = std::fs::read_to_string(p.data_dir().join("slow.pgid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(process_gone(pgid), "the step's process outlived the engine");

    let _engine = serve(&p);
    let slow = json(&p, &["show", &slow_id]);
    assert_eq!(slow["run"]["status"], "cancelled", "{slow:#}");
    assert_eq!(slow["run"]["reason"], "the engine shut down");
    assert_eq!(slow["steps"][0]["status"], "cancelled");
}

#[test]
fn serve_stops_on_sigterm_while_a_client_waits_at_a_gate() {
    let p = setup();
    let mut engine = serve(&p);
    let (waiting, id) = run_to_gate(&p);
    // The client's event stream is open; the engine still stops (it used to wait for
    // the client for ever), and the client says so.
    kill(engine.child.id() as i32, "TERM");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let status = loop {
        if let Some(st) = engine.child.try_wait().unwrap() {
            break st;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "serve did not stop on SIGTERM"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0));
    let (code, _) = waiting.rest();
    assert_eq!(code, 4, "the waiting client ends with 'no engine'");
    // The gate is still waiting, and approvable, with the next engine.
    let _engine = serve(&p);
    let shown = json(&p, &["show", &id]);
    assert_eq!(shown["run"]["status"], "awaiting_approval", "{shown:#}");
    run_ok(&p, &["approve", &id, "prod"]);
}

#[test]
fn stack_job_preflight_is_answered_by_the_engine() {
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
credentials = ["PIPEDECK_TEST_ENGINE_ONLY_CRED"]
commands = {{ apply = "true" }}
[[infra.one.resources]]
id = "b"
kind = "x"
credentials = ["PIPEDECK_TEST_NEVER_SET_CRED"]
commands = {{ apply = "true" }}
"#
        ),
    )
    .unwrap();
    // No engine: the CLI does not check anything itself.
    let out = run_out(&p, &["stack-job", "preflight", "a"]);
    assert_eq!(out.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no engine is running"));

    // The credential is set in the engine's environment only: the checks run there.
    let mut c = pipedeck(&p);
    c.arg("serve")
        .env("PIPEDECK_TEST_ENGINE_ONLY_CRED", "secret");
    let mut engine = Proc::spawn(c, true);
    engine.until("serving");
    let out = run_ok(&p, &["stack-job", "preflight", "a"]);
    assert!(
        out.starts_with("preflight for one/a (command driver)"),
        "{out}"
    );
    assert!(
        out.contains("pass credentials  PIPEDECK_TEST_ENGINE_ONLY_CRED"),
        "{out}"
    );
    let state_dir = p.data_dir().join("infra/one/a");
    assert!(
        out.contains(&format!(
            "pass state        {} is writable",
            state_dir.display()
        )),
        "{out}"
    );
    let checks = json(&p, &["stack-job", "preflight", "a"]);
    assert_eq!(checks[2]["name"], "credentials");
    assert_eq!(checks[2]["ok"], true);

    // A failed check: exit 1, the reason on stderr.
    let out = run_out(&p, &["stack-job", "preflight", "b"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("FAIL credentials"),
        "{out:?}"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(
            "preflight failed: credentials: not set in the engine's environment: PIPEDECK_TEST_NEVER_SET_CRED"
        ),
        "{out:?}"
    );
    // An unknown resource: the engine refuses, exit 2.
    let out = run_out(&p, &["stack-job", "preflight", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no resource `nope`"));
}

/// Runs `cmd` with stdout a pipe whose reader is already gone: its first write fails
/// with EPIPE. Returns the exit code and stderr.
fn with_stdout_closed(mut cmd: Command) -> (Option<i32>, String) {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = cmd
        .stdout(std::process::Stdio::from(writer))
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    let p = TestProject::new(&format!(
        "{HEADER}\n[services.big]\nrepo_seed = \"src\"\n[[services.big.steps]]\nname = \"print\"\nrun = \"seq 1 200000\"\n"
    ));
    let quiet = |args: &[&str]| {
        let mut c = pipedeck(&p);
        c.args(args);
        let (code, stderr) = with_stdout_closed(c);
        assert_eq!(code, Some(141), "{args:?}: {stderr}");
        assert!(stderr.is_empty(), "{args:?}: {stderr}");
    };
    quiet(&["validate"]);
    // No engine runs: this command hosts one, follows the run to its end with nobody
    // reading, and shuts the engine down.
    let mut c = pipedeck(&p);
    c.args(["run", "big", "--wait"]);
    let (code, stderr) = with_stdout_closed(c);
    assert_eq!(code, Some(141), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    let _engine = serve(&p);
    assert_eq!(json(&p, &["show", "1"])["run"]["status"], "succeeded");
    for args in [
        &["show", "1", "--json"][..],
        &["show", "1"],
        &["runs"],
        &["runs", "--json"],
        &["logs", "1"],
    ] {
        quiet(args);
    }
    // A reader that takes one line of 200,000 and goes away (`| head -1`).
    for json in [false, true] {
        let mut c = pipedeck(&p);
        c.args(["logs", "1"]);
        if json {
            c.arg("--json");
        }
        let mut child = c
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().unwrap()),
            &mut first,
        )
        .unwrap();
        assert!(first.contains('1'), "{first}");
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(141), "{stderr}");
        assert!(stderr.is_empty(), "{stderr}");
    }
}

/// A log that cannot be written (here: past the engine's file size limit, as on a full
/// disk) fails its step with the reason; the engine stays up and runs the next one.
#[test]
fn a_log_write_error_fails_the_step_and_the_engine_carries_on() {
    let p = TestProject::new(&format!(
        "{HEADER}\n{}",
        r#"
[services.flood]
repo_seed = "src"
[[services.flood.steps]]
name = "print"
run = "yes 0123456789012345678901234567890123456789 | head -c 20000000"

[services.small]
repo_seed = "src"
[[services.small.steps]]
name = "print"
run = "echo fine"
"#
    ));
    // Every file the engine writes may grow to 8 MB: the step's 20 MB log cannot.
    let mut c = Command::new("prlimit");
    c.arg("--fsize=8000000").arg(env!("CARGO_BIN_EXE_pipedeck"));
    c.args(pipedeck(&p).get_args());
    c.envs(pipedeck(&p).get_envs().filter_map(|(k, v)| Some((k, v?))));
    c.env_remove("PIPEDECK_DATA_DIR").arg("serve");
    let mut engine = Proc::spawn(c, true);
    engine.until("serving");
    let out = run_out(&p, &["run", "flood", "--wait"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let id = String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap()
        .to_string();
    let shown = json(&p, &["show", &id]);
    let reason = shown["steps"][0]["reason"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        reason.contains("writing the step's log failed"),
        "{shown:#}"
    );
    assert!(reason.contains("File too large"), "{reason}");
    // Still up: the next run succeeds.
    run_ok(&p, &["run", "small", "--wait"]);
    assert!(engine.child.try_wait().unwrap().is_none());
}

/// A descriptor the engine's process inherited (past 0-2) never reaches a step: a
/// step that leaves a daemon behind must not hold its caller's pipe open.
#[test]
fn a_step_holds_no_descriptor_its_engine_inherited() {
    let p = TestProject::new(&format!(
        "{HEADER}\n[services.fds]\nrepo_seed = \"src\"\n[[services.fds.steps]]\nname = \"list\"\nrun = \"ls /proc/self/fd > \\\"$PIPEDECK_DATA_DIR/fds\\\"\"\n"
    ));
    let engine = pipedeck(&p);
    // The shell opens descriptor 7 without close-on-exec and becomes pipedeck.
    let mut c = Command::new("sh");
    c.args(["-c", r#"exec 7>>"$0"; exec "$@""#])
        .arg(p.file("held"))
        .arg(engine.get_program())
        .args(engine.get_args())
        .args(["run", "fds", "--wait"]);
    for (k, v) in engine.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fds = std::fs::read_to_string(p.data_dir().join("fds")).unwrap();
    let fds: Vec<&str> = fds.lines().collect();
    // Its own: stdin, the two output pipes, and ls's listing.
    assert!(fds.contains(&"2"), "{fds:?}");
    assert!(
        !fds.contains(&"7"),
        "the step holds the engine's inherited descriptor: {fds:?}"
    );
}

/// `run --wait` with no engine up hosts one, which others' clients use meanwhile:
/// when its own run ends, it stops only once their running steps have ended.
#[test]
fn a_hosting_run_wait_stops_its_engine_only_after_the_others_steps_end() {
    // Each step waits (bounded) for its file to appear.
    let waits = |svc: &str| {
        format!(
            "[services.{svc}]\nrepo_seed = \"src\"\n[[services.{svc}.steps]]\nname = \"wait\"\n\
             run = \"i=0; while [ ! -e \\\"$PIPEDECK_DATA_DIR/{svc}-go\\\" ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done\"\n"
        )
    };
    let p = TestProject::new(&format!("{HEADER}\n{}\n{}", waits("mine"), waits("theirs")));
    let mut c = pipedeck(&p);
    c.args(["run", "mine", "--wait"]);
    let mut host = Proc::spawn(c, false);
    // Its first line (the run's id) comes once the engine it hosts is up.
    assert_eq!(host.until(""), "1");
    let mut stderr = host.child.stderr.take().unwrap();
    // Another client's run, in the engine that command hosts.
    assert_eq!(run_ok(&p, &["run", "theirs"]).lines().next(), Some("2"));
    wait_status(&p, "2", &["running"]);
    std::fs::write(p.data_dir().join("mine-go"), "").unwrap();
    host.until("run 1 succeeded");
    // Still answering: its engine waits for run 2's step.
    assert_eq!(json(&p, &["show", "2"])["run"]["status"], "running");
    std::fs::write(p.data_dir().join("theirs-go"), "").unwrap();
    let (code, said) = host.rest();
    assert_eq!(code, 0, "{said:?}");
    let mut told = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut told).unwrap();
    assert!(told.contains("other runs have steps running (2)"), "{told}");
    let _engine = serve(&p);
    assert_eq!(json(&p, &["show", "2"])["run"]["status"], "succeeded");
}
