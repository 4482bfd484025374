//! The real binary in a real terminal (tmux): trigger a run with `t`, watch it reach
//! the prod gate, approve it from the inbox, see it succeed; cancel a second run.
//! Trigger an infra deploy and a stack job from the dashboard, collapse and expand the
//! stack job's run tree. The deployments and stations views on the demo, and a refused delete.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::tmux::Tmux;

#[test]
fn trigger_approve_and_cancel_from_the_dashboard() {
    let (t, data) = dashboard("test", "");

    // Trigger with `t`, accept the dialog's defaults.
    t.keys(&["t"]);
    t.wait_for("trigger a run");
    t.keys(&["Enter"]);
    t.wait_for("awaiting approval");
    // The prod gate, and the demo's gated station group's in the rollout of the
    // build's deployment (run 2).
    t.wait_for("2 gates waiting");

    // Approve the prod gate from the inbox, with a comment and the confirmation.
    t.keys(&["i"]);
    t.wait_for("approvals inbox (2 waiting)");
    t.select_row("ENV", " prod ");
    t.keys(&["a"]);
    t.wait_for("Comment");
    t.keys(&["-l", "ship it"]);
    t.keys(&["Enter"]);
    t.wait_for("Approve the gate before prod in run 1?");
    t.keys(&["y"]);
    t.wait_for("approvals inbox (1 waiting)");
    t.keys(&["Escape"]);
    t.wait_for("✓ succeeded");

    // The run detail shows the decided gate.
    t.keys(&["Enter"]);
    // Recorded as the account the dashboard runs as (its engine reads it from the socket).
    let me = String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout).unwrap();
    t.wait_for(&format!("gate approved by {},", me.trim()));
    t.wait_for("  : ship it");
    // Back in the runs table before the next key: an escape followed at once by `t`
    // reads as Alt-t.
    t.keys(&["Escape"]);
    t.wait_for("sort: newest");

    // A second run, cancelled with `c` while it waits at the gate, and the rollout of
    // its deployment (run 4, above it) while that waits at the station group's gate.
    t.keys(&["t"]);
    t.wait_for("trigger a run");
    t.keys(&["Enter"]);
    t.wait_for("awaiting approval 4 ");
    t.keys(&["c"]);
    t.wait_for("Cancel run 3?");
    t.keys(&["y"]);
    t.wait_for("⊘ cancelled");
    t.keys(&["Up", "c"]);
    t.wait_for("Cancel run 4?");
    t.keys(&["y"]);
    let screen = t.wait_until("both cancelled", |s| s.matches("⊘ cancelled").count() == 2);
    assert!(screen.contains("✓ succeeded"), "{screen}");

    // Quit: nothing is active, so the dashboard stops the engine it started.
    t.keys(&["q"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while pipedeck::api::client::Client::connect(&data.path().join("engine.sock")).is_ok() {
        assert!(
            Instant::now() < deadline,
            "the engine kept running after quit"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The dashboard on the demo (with `args`) in tmux session `pd`, with its data dir.
fn dashboard(name: &str, args: &str) -> (Tmux, tempfile::TempDir) {
    let data = tempfile::tempdir().unwrap();
    let t = open_dashboard(
        name,
        &format!("--demo --data-dir {} {args}", data.path().display()),
        data.path(),
    );
    t.owns_engine(data.path());
    (t, data)
}

/// The dashboard with `args` in tmux session `pd`, started in directory `cwd`.
fn open_dashboard(name: &str, args: &str, cwd: &std::path::Path) -> Tmux {
    // `.ci/run` installs tmux; a machine without it fails here, saying so.
    let tmux = Command::new("tmux").arg("-V").output();
    assert!(
        tmux.is_ok_and(|o| o.status.success()),
        "tmux is not installed: install it (apt-get install tmux; .ci/run does)"
    );
    let t = Tmux::new(format!("pipedeck-{name}-{}", std::process::id()));
    let cmd = format!("{} {args}", env!("CARGO_BIN_EXE_pipedeck"));
    let out = t.cmd(&[
        "new-session",
        "-d",
        "-s",
        "pd",
        "-x",
        "120",
        "-y",
        "36",
        "-c",
        &cwd.display().to_string(),
        &cmd,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    t.wait_for("No runs yet");
    t
}

#[test]
fn infra_deploy_and_stack_job_from_the_dashboard() {
    let (t, data) = dashboard("infra", "");
    // The kind row, one to the right: the infra pipeline; enter deploys it.
    t.keys(&["t"]);
    t.wait_for("trigger a run");
    t.keys(&["Up", "Right"]);
    t.wait_for("infra pipeline");
    t.keys(&["Enter"]);
    t.wait_for("triggered run 1: deploy aws-staging");
    // The kind row, one to the left: a stack job; preview of the first resource.
    t.keys(&["t"]);
    t.wait_for("trigger a run");
    t.keys(&["Up", "Left"]);
    t.wait_for("stack job");
    t.keys(&["Enter"]);
    t.wait_for("triggered run 2: stack job: preview");
    // The new run is selected: enter opens the stack-job view, on its run tree.
    t.keys(&["Enter"]);
    t.wait_for("stack job 2");
    t.wait_for("resources (1)");
    // h walks up and collapses: the section closes (▸), l opens it again (▾).
    for _ in 0..4 {
        t.keys(&["h"]);
    }
    let section = |mark: &'static str| {
        move |s: &str| {
            s.lines()
                .any(|l| l.contains(mark) && l.contains("resources (1)"))
        }
    };
    t.wait_until("the section collapsed", section("▸ "));
    t.keys(&["l"]);
    t.wait_until("the section open again", section("▾ "));
    // Quit, stopping the engine (the deploy may still wait at its gate).
    t.keys(&["Escape"]);
    t.wait_for("sort: newest");
    t.keys(&["q"]);
    std::thread::sleep(Duration::from_millis(300));
    if t.screen().contains("still active") {
        t.keys(&["s"]);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while pipedeck::api::client::Client::connect(data.path()).is_ok() {
        assert!(
            Instant::now() < deadline,
            "the engine kept running after quit"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A 1,000,000-line log: `/` then `N` searches the whole stored log and lands on a
/// line near its start; a carriage-return progress step shows its last state; `W`
/// cuts long lines and `>` scrolls them sideways; `w` writes a line range to a file
/// in the directory the dashboard started in, without escapes.
#[test]
fn big_logs_progress_lines_long_lines_and_writing_a_range() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("src")).unwrap();
    std::fs::write(dir.path().join("src/README"), "logs\n").unwrap();
    std::fs::write(
        dir.path().join("pipedeck.toml"),
        r#"
[services.logs]
repo_seed = "src"
[[services.logs.steps]]
name = "progress"
run = '''printf 'fetching\n'; for p in 10 55 100; do printf '\r[%3d%%] fetched' $p; done; printf '\n'; printf '\033]0;owned\007\033[31mred\033[0m done\n''''
[[services.logs.steps]]
name = "big"
needs = ["progress"]
run = '''echo header; echo needle-near-start; seq 1 1000000; printf 'wide:%0200d:END\n' 0'''
"#,
    )
    .unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let t = open_dashboard(
        "logs",
        &format!(
            "--project {} --data-dir {}",
            dir.path().join("pipedeck.toml").display(),
            dir.path().join("data").display()
        ),
        &out,
    );
    t.owns_engine(&dir.path().join("data"));
    t.keys(&["t"]);
    t.wait_for("trigger a run");
    t.keys(&["Enter"]);
    t.wait_for("✓ succeeded");
    t.keys(&["Enter"]);
    // The detail of a run that succeeded opens on its first step: the progress line
    // shows its last state; its escapes are gone, also from the file its lines are
    // written to.
    t.wait_for("build/progress · 3 lines");
    let s = t.wait_for("[100%] fetched");
    assert!(!s.contains("10%] fetched") && !s.contains("55%"), "{s}");
    assert!(s.contains("│red done"), "{s}");
    assert_eq!(
        write_lines(&t, &out, "build/progress", "1-3"),
        "fetching\n[100%] fetched\nred done\n"
    );
    // The big step, followed: its last line, wide, is cut.
    t.keys(&["j"]);
    t.wait_for("build/big · 1000003 lines");
    let s = t.wait_for("wide:0000");
    assert!(!s.contains(":END"), "{s}");
    // Sideways: the cut part shows after enough `>`.
    for _ in 0..25 {
        t.keys(&[">"]);
    }
    t.wait_for("0000:END");
    t.keys(&["W"]);
    t.wait_until("wrapped", |s| s.contains("· wrap") && s.contains(":END"));
    // Search the whole log: nothing after the tail, so N looks back to the start.
    t.keys(&["/"]);
    t.keys(&["-l", "needle-near-start"]);
    t.keys(&["Enter"]);
    t.wait_for("no more matches for `needle-near-start`");
    t.keys(&["N"]);
    t.wait_until("the match near the start, at the top of the pane", |s| {
        s.lines()
            .nth(5)
            .is_some_and(|l| l.contains("│needle-near-start"))
    });
    // Write lines 1-3 to a file.
    assert_eq!(
        write_lines(&t, &out, "build/big", "1-3"),
        "header\nneedle-near-start\n1\n"
    );
    t.keys(&["Escape"]);
    t.wait_for("sort: newest");
    t.keys(&["q"]);
}

/// `w` on step `step` (`build/big`) of run 1, lines `range` (`1-3`): what the file in
/// `out` holds once the dashboard says it wrote it.
fn write_lines(t: &Tmux, out: &std::path::Path, step: &str, range: &str) -> String {
    t.keys(&["w"]);
    t.wait_for(&format!("write {step}'s log to a file"));
    for _ in 0..12 {
        t.keys(&["BSpace"]);
    }
    t.keys(&["-l", range]);
    t.keys(&["Enter"]);
    let (from, to) = range.split_once('-').unwrap();
    t.wait_for(&format!("lines ({from}-{to}) to"));
    let name = format!("run1-{}-L{from}-{to}.log", step.replace('/', "-"));
    std::fs::read_to_string(out.join(name)).unwrap()
}

#[test]
fn deployments_and_stations_views_in_the_demo_and_a_refused_delete() {
    let (t, _data) = dashboard("deploys", "");
    // A run of web: its build becomes deployment 1, which both demo stations switch to.
    t.keys(&["t"]);
    t.wait_for("trigger a run");
    t.keys(&["Enter"]);
    t.wait_for("triggered run 1");
    t.keys(&[":", "-l", "deployments"]);
    t.keys(&["Enter"]);
    t.wait_for("deployments (1)");
    t.wait_for("edge-1, edge-2");
    t.keys(&[":", "-l", "stations"]);
    t.keys(&["Enter"]);
    // edge-1 switches; edge-2, in the gated group `fleet`, waits for an approval.
    t.wait_for("pending: approval (pipedeck approve 2 stations:fleet)");
    t.keys(&["i"]);
    // Oldest first: the station group's gate (the ENV column cuts it to 12 columns).
    t.wait_for("stations:fle");
    t.keys(&["a"]);
    t.wait_for("Comment");
    t.keys(&["Enter"]);
    t.wait_for("Approve the switch of station group fleet in rollout run 2?");
    t.keys(&["y"]);
    t.keys(&["Escape", ":", "-l", "stations"]);
    t.keys(&["Enter"]);
    t.wait_until("both stations on deployment 1", |s| {
        s.lines()
            .filter(|l| l.contains("edge-") && l.contains(" 1 ") && l.contains("idle"))
            .count()
            == 2
    });
    // Deleting the deployment both stations run: asked first, then refused by the engine.
    t.keys(&[":", "-l", "deploys"]);
    t.keys(&["Enter"]);
    t.wait_for("deployments (1)");
    t.keys(&["d"]);
    t.wait_for("Delete deployment 1");
    t.keys(&["y"]);
    let screen =
        t.wait_for("release 1 cannot be deleted: stations edge-1 (runs it), edge-2 (runs it)");
    assert!(screen.contains("deployments (1)"), "{screen}");
    // Still listed after a fresh read.
    t.keys(&["Escape", ":", "-l", "deploys"]);
    t.keys(&["Enter"]);
    t.wait_for("deployments (1)");
}
