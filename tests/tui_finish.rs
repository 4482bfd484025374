//! Issue 19's finish: the status line (engine and user), long log lines (wrap or
//! scroll sideways), copying a log range, themes; snapshots at 80x24 and 160x48.

use pipedeck::domain::access::Role;
use pipedeck::domain::command::Identity;
use pipedeck::tui::app::AppState;

#[path = "common/tui.rs"]
mod fixtures;
use fixtures::*;

fn both(name: &str, s: &AppState) {
    insta::assert_snapshot!(format!("{name}_80x24"), draw(s, 80, 24));
    insta::assert_snapshot!(format!("{name}_160x48"), draw(s, 160, 48));
}

#[test]
fn the_status_line_names_the_engine_and_the_user_it_sees() {
    let mut s = state();
    s.hosting = false;
    s.host = "opsbox".into();
    s.identity = Some(Identity {
        user: "alice".into(),
        groups: vec!["release".into()],
        role: Some(Role::Operator),
        engine_user: "pipedeck".into(),
        engine_host: "opsbox".into(),
    });
    both("status_shared_socket", &s);
    let top = draw(&s, 160, 48);
    assert!(
        top.lines()
            .next()
            .unwrap()
            .contains("engine: shared socket (pipedeck) · alice (operator)"),
        "{top}"
    );
}
