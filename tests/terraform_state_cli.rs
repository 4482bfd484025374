//! State operations from the command line and from the dashboard in a real terminal
//! (tmux), on real Terraform.
//!
//! Ignored by a plain `cargo test`: they need `terraform` or `tofu` (1.4 or later) on
//! PATH (and tmux); `.ci/run` runs them with `--ignored` where one is.

mod common;

use common::tfstate::*;

#[ignore = "needs terraform or tofu >= 1.4 on PATH (no registry here provides one); .ci/run runs it with --ignored where one is"]
#[test]
fn the_cli_lists_and_taints_and_refuses_what_is_not_an_address() {
    iac_binary();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    project(dir, "");
    // Nothing deployed: an empty state lists as nothing.
    let out = cli(dir, &["stack-job", "state", "a", "list"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        !text(&out.stdout).contains("terraform_data."),
        "{}",
        text(&out.stdout)
    );

    let out = cli(dir, &["infra", "run", "d", "--wait"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    let out = cli(dir, &["stack-job", "state", "a", "list"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    // Terraform's own output follows the job's progress.
    assert!(
        stdout.contains("\nterraform_data.other\nterraform_data.thing\n"),
        "{stdout}"
    );
    let out = cli(
        dir,
        &["stack-job", "state", "a", "taint", "terraform_data.thing"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout)
            .contains("Resource instance terraform_data.thing has been marked as tainted."),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(
        local_state(&dir.join("data"), "d", "a"),
        vec![
            ("terraform_data.other".into(), false),
            ("terraform_data.thing".into(), true)
        ]
    );
    // Not an address: refused before anything is sent, exit 2.
    let out = cli(dir, &["stack-job", "state", "a", "rm", "thing; rm -rf /"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("is not a Terraform resource address"),
        "{}",
        text(&out.stderr)
    );
    let out = cli(dir, &["stack-job", "unlock", "a", "not an id"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("is not a lock id"),
        "{}",
        text(&out.stderr)
    );
}

#[ignore = "needs terraform or tofu >= 1.4 on PATH (no registry here provides one) and tmux; .ci/run runs it with --ignored where one is"]
#[test]
fn the_state_view_taints_what_was_marked_in_a_real_terminal() {
    iac_binary();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    project(dir, "");
    let out = cli(dir, &["infra", "run", "d", "--wait"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));

    let t = common::tmux::Tmux::new(format!("pipedeck-state-{}", std::process::id()));
    t.owns_engine(&dir.join("data"));
    let cmd = format!(
        "{} --data-dir {} --project {}",
        env!("CARGO_BIN_EXE_pipedeck"),
        dir.join("data").display(),
        dir.join("pipedeck.toml").display()
    );
    let started = t.cmd(&[
        "new-session",
        "-d",
        "-s",
        "pd",
        "-x",
        "120",
        "-y",
        "36",
        "-c",
        &dir.display().to_string(),
        "-e",
        &format!("PIPEDECK_CONFIG={}", dir.join("none.toml").display()),
        &cmd,
    ]);
    assert!(started.status.success(), "tmux: {}", text(&started.stderr));
    t.wait_for("runs (");
    t.keys(&[":"]);
    t.wait_for("jump to");
    t.keys(&["-l", "state a"]);
    t.keys(&["Enter"]);
    // A list job fills the view.
    t.wait_for("[ ] terraform_data.thing");
    t.wait_for("2 resources, listed by job 2");
    t.keys(&["Space", "j", "Space"]);
    t.wait_for("2 marked");
    t.keys(&["t"]);
    t.wait_for("Taint 2 resources in the state of a:");
    t.keys(&["y"]);
    // The change runs, then the view lists again.
    t.wait_for(
        "job 3: state job: taint terraform_data.other, terraform_data.thing on a (succeeded)",
    );
    t.wait_for("listed by job 4");
    assert_eq!(
        local_state(&dir.join("data"), "d", "a"),
        vec![
            ("terraform_data.other".into(), true),
            ("terraform_data.thing".into(), true)
        ]
    );
    // enter: the change job's log.
    t.keys(&["Enter"]);
    t.wait_for("stack job 3");
    t.keys(&["q"]);
}
