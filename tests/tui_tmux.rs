//! The real binary in a real terminal (tmux): trigger a run with `t`, watch it reach
//! the prod gate, approve it from the inbox, see it succeed; cancel a second run.
//! Trigger an infra deploy and a stack job from the dashboard, collapse and expand the
//! stack job's run tree.

use std::process::Command;
use std::time::{Duration, Instant};

struct Tmux {
    socket: String,
}

impl Tmux {
    fn cmd(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .expect("tmux runs")
    }

    fn keys(&self, keys: &[&str]) {
        for k in keys {
            assert!(self.cmd(&["send-keys", "-t", "pd", k]).status.success());
        }
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.cmd(&["capture-pane", "-t", "pd", "-p"]).stdout).into_owned()
    }

    /// Reads the screen until it shows `needle` (a bound guards against hangs).
    fn wait_for(&self, needle: &str) -> String {
        self.wait_until(&format!("{needle:?}"), |s| s.contains(needle))
    }

    /// Reads the screen until `shows` holds for it (`what` says what was awaited).
    fn wait_until(&self, what: &str, shows: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let s = self.screen();
            if shows(&s) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "the screen never showed {what}:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]);
    }
}

#[test]
fn trigger_approve_and_cancel_from_the_dashboard() {
    let (t, data) = dashboard("test", "");

    // Trigger with `t`, accept the dialog's defaults.
    t.keys(&["t"]);
    t.wait_for("trigger a run");
    t.keys(&["Enter"]);
    t.wait_for("awaiting approval");
    t.wait_for("1 gate waiting");

    // Approve from the inbox, with a comment and the confirmation.
    t.keys(&["i"]);
    t.wait_for("approvals inbox (1 waiting)");
    t.keys(&["a"]);
    t.wait_for("Comment");
    t.keys(&["-l", "ship it"]);
    t.keys(&["Enter"]);
    t.wait_for("Approve the gate before prod in run 1?");
    t.keys(&["y"]);
    t.wait_for("approvals inbox (0 waiting)");
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

    // A second run, cancelled with `c` while it waits at the gate.
    t.keys(&["t"]);
    t.wait_for("trigger a run");
    t.keys(&["Enter"]);
    t.wait_for("awaiting approval");
    t.keys(&["c"]);
    t.wait_for("Cancel run 2?");
    t.keys(&["y"]);
    let screen = t.wait_for("⊘ cancelled");
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
    // `.ci/run` installs tmux; a machine without it fails here, saying so.
    let tmux = Command::new("tmux").arg("-V").output();
    assert!(
        tmux.is_ok_and(|o| o.status.success()),
        "tmux is not installed: install it (apt-get install tmux; .ci/run does)"
    );
    let data = tempfile::tempdir().unwrap();
    let t = Tmux {
        socket: format!("pipedeck-{name}-{}", std::process::id()),
    };
    let cmd = format!(
        "{} --demo --data-dir {} {args}",
        env!("CARGO_BIN_EXE_pipedeck"),
        data.path().display()
    );
    let out = t.cmd(&[
        "new-session",
        "-d",
        "-s",
        "pd",
        "-x",
        "120",
        "-y",
        "36",
        &cmd,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    t.wait_for("No runs yet");
    (t, data)
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
