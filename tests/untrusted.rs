//! Untrusted text prints inert: a commit author, message and branch carrying
//! terminal escape sequences, 8-bit controls and bidi overrides reach the CLI's
//! output as plain text, so a repository cannot retitle, clear or reorder the
//! operator's terminal.

mod common;

use std::process::Command;

use common::bin::*;
use common::*;

/// A git repository whose head commit, on `branch`, has `author` and `message`.
fn evil_repo(dir: &std::path::Path, branch: &str, author: &str, message: &str) {
    let git = |args: &[&str]| {
        let out = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .env("GIT_AUTHOR_NAME", author)
            .env("GIT_AUTHOR_EMAIL", "evil@example.com")
            .env("GIT_COMMITTER_NAME", author)
            .env("GIT_COMMITTER_EMAIL", "evil@example.com")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    std::fs::create_dir_all(dir).unwrap();
    git(&["init", "-q", "-b", branch]);
    std::fs::write(dir.join("README"), "evil\n").unwrap();
    git(&["add", "README"]);
    git(&["commit", "-q", "-m", message]);
}

/// No escape, no C0 or C1 control but the line breaks, no bidi override.
fn assert_inert(what: &str, text: &str) {
    for (i, c) in text.chars().enumerate() {
        let bad = (c.is_control() && c != '\n')
            || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
        assert!(!bad, "{what}: {c:?} at {i} in {text:?}");
    }
}

#[test]
fn escape_sequences_in_a_branch_author_and_message_print_inert() {
    // ESC cannot be in a ref name (git refuses controls below 0x20), but an 8-bit
    // CSI and a bidi override can.
    let branch = "feat/\u{9b}2Jx\u{202e}gnp";
    let author = "Mallory\u{1b}]0;pwned\u{7}\u{1b}[2J\u{1b}[5mBlink";
    let message = "fix\u{1b}]52;c;ZXZpbA==\u{7} things\u{1b}[1A\u{202e}txt.exe";
    let p = TestProject::new(&format!(
        r#"{HEADER}
[services.evil]
repo = "{}"
default_branch = "main"
[[services.evil.steps]]
name = "build"
run = "true"
"#,
        "evil-repo"
    ));
    evil_repo(&p.path().join("evil-repo"), branch, author, message);

    let out = run_out(&p, &["run", "evil", "--branch", branch, "--wait"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_inert("run --wait", &text);
    let id = text.lines().next().unwrap().trim().to_string();

    let _engine = serve(&p);
    let runs = run_ok(&p, &["runs"]);
    assert_inert("runs", &runs);
    assert!(runs.contains("MalloryBlink"), "{runs}");
    assert!(runs.contains("feat/xgnp"), "{runs}");
    let shown = run_ok(&p, &["show", &id]);
    assert_inert("show", &shown);
    assert!(shown.contains("\"fix thingstxt.exe\""), "{shown}");
    assert!(shown.contains("evil@feat/xgnp"), "{shown}");
    // The JSON keeps the data as it is (escaped by JSON itself), for scripts.
    let json = json(&p, &["show", &id]);
    assert_eq!(json["run"]["author"], author);
    assert_eq!(json["run"]["branch"], branch);
}

/// The dashboard draws the same fields inert: the runs table (wide, with branch and
/// author) and a run's header and gate notes.
#[test]
fn escape_sequences_draw_inert_in_the_dashboard() {
    use pipedeck::domain::{RunDetail, RunInfo};
    use pipedeck::tui::action::Reply;
    use pipedeck::tui::app::{AppState, View};
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    const NOW: i64 = 1_800_000_000_000;
    let run: RunInfo = serde_json::from_value(serde_json::json!({
        "id": 1, "kind": "service", "service": "evil", "run_type": "production",
        "trigger": "manual", "branch": "feat/\u{9b}2Jx\u{202e}gnp", "tag": null,
        "commit_sha": "0123456789abcdef0123456789abcdef01234567",
        "commit_message": "fix\u{1b}]52;c;ZXZpbA==\u{7} things",
        "author": "Mallory\u{1b}]0;pwned\u{7}\u{1b}[2JBlink",
        "triggered_by": "eve\u{1b}[31m", "status": "succeeded",
        "reason": "why\u{1b}[1Anot", "created_at": NOW - 1000, "started_at": NOW - 1000,
        "ended_at": NOW, "rerun_of": null, "attempt": 1, "environment": null,
        "resource": null, "operation": null
    }))
    .unwrap();
    let draw = |s: &AppState| {
        let (w, h) = (200, 40);
        let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
        let km = pipedeck::tui::keymap::Keymap::default();
        t.draw(|f| pipedeck::tui::views::render(f, s, &km)).unwrap();
        let buf = t.backend().buffer().clone();
        (0..h)
            .map(|y| {
                (0..w)
                    .map(|x| buf[(x, y)].symbol().to_string())
                    .collect::<String>()
                    + "\n"
            })
            .collect::<String>()
    };
    let mut s = AppState::new(vec!["evil".into()], false, "/data".into());
    s.now = NOW;
    s.runs = vec![run.clone()];
    let table = draw(&s);
    assert_inert("runs table", &table);
    assert!(
        table.contains("MalloryBlink") && table.contains("feat/xgnp"),
        "{table}"
    );
    s.view = View::Detail;
    s.apply_reply(Reply::Detail(Box::new(RunDetail {
        run,
        steps: Vec::new(),
        gates: Vec::new(),
        graph: Default::default(),
        chain: Default::default(),
    })));
    let detail = draw(&s);
    assert_inert("run detail", &detail);
    assert!(
        detail.contains("by eve") && detail.contains("whynot"),
        "{detail}"
    );
}
