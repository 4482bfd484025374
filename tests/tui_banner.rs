//! The dashboard's banner (issue 21): a broken edit of the project file shows its
//! file:line error (the last good version stays in force), a data dir under its
//! free-space floor says no new runs start, and the title bar shows the disk.

use pipedeck::domain::command::{ConfigStatus, DiskStatus};
use pipedeck::tui::action::Reply;

#[path = "common/tui.rs"]
mod fixtures;
use fixtures::*;

/// The error the loader gives for a broken file, its folder written as `/project`.
fn broken_file_error() -> String {
    let root = env!("CARGO_MANIFEST_DIR");
    let path = std::path::Path::new(root).join("tests/fixtures/invalid/bad_duration.toml");
    let e = pipedeck::config::load_project(&path)
        .unwrap_err()
        .to_string();
    e.replace(&format!("{root}/tests/fixtures/invalid"), "/project")
}

fn status(error: Option<String>, free: u64, min_free: Option<u64>) -> Reply {
    Reply::Status(Box::new(ConfigStatus {
        path: "/project/pipedeck.toml".into(),
        loaded_at: 0,
        error,
        error_at: Some(0),
        disk: Some(DiskStatus {
            data_dir: "/data".into(),
            used_bytes: Some(3 << 30),
            measured_at: Some(0),
            free_bytes: Some(free),
            min_free,
        }),
    }))
}

#[test]
fn a_broken_project_file_shows_a_banner_with_its_file_and_line() {
    let mut s = state();
    let e = broken_file_error();
    assert!(e.starts_with("/project/bad_duration.toml:2:14: "), "{e}");
    s.apply_reply(status(Some(e), 40 << 30, None));
    let screen = draw(&s, 120, 24);
    assert!(screen.contains("bad_duration.toml:2:14"), "{screen}");
    insta::assert_snapshot!("banner_broken_config_120x24", screen);

    // Fixed: the banner goes; the title bar still shows the disk.
    s.apply_reply(status(None, 40 << 30, None));
    let screen = draw(&s, 120, 24);
    assert!(!screen.contains("not reloaded"), "{screen}");
    assert!(
        screen
            .lines()
            .next()
            .unwrap()
            .contains("3.0 GiB used, 40.0 GiB free"),
        "{screen}"
    );
}

#[test]
fn under_the_free_space_floor_the_banner_says_no_new_runs() {
    let mut s = state();
    s.ascii = true;
    s.color = false;
    s.apply_reply(status(None, 512 << 20, Some(1 << 30)));
    let screen = draw(&s, 120, 24);
    insta::assert_snapshot!("banner_under_floor_120x24", screen);
}
