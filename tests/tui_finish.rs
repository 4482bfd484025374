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

fn with_long_line() -> AppState {
    let mut s = detail_state();
    let last = s.log.lines.back_mut().unwrap();
    last.text = format!("wide:{}:END", "0".repeat(200));
    s
}

#[test]
fn long_lines_are_cut_and_scroll_sideways_or_wrap() {
    use crossterm::event::KeyCode;
    let mut s = with_long_line();
    let first = draw(&s, 160, 48);
    assert!(
        first.contains("wide:000") && !first.contains(":END"),
        "{first}"
    );
    for _ in 0..25 {
        key(&mut s, KeyCode::Char('>'));
    }
    assert_eq!(s.log.col, 200);
    both("log_sideways", &s);
    key(&mut s, KeyCode::Char('<'));
    assert_eq!(s.log.col, 192);
    // W wraps (and forgets the sideways scroll); following, the wide last line
    // still shows whole.
    key(&mut s, KeyCode::Char('W'));
    assert!(s.log.wrap && s.log.col == 0);
    both("log_wrapped_following", &s);
    let wrapped = draw(&s, 80, 24);
    assert!(wrapped.contains(":END"), "{wrapped}");
}

#[test]
fn w_asks_which_lines_to_write_and_names_the_file() {
    use crossterm::event::KeyCode;
    use pipedeck::tui::action::Effect;
    use pipedeck::tui::export::LineRange;
    let mut s = detail_state();
    s.screen_height = 24;
    key(&mut s, KeyCode::Char('w'));
    both("write_log_dialog", &s);
    // The dialog offers the lines on screen; typed over, it writes what was asked.
    for _ in 0..12 {
        key(&mut s, KeyCode::Backspace);
    }
    for c in "99".chars() {
        key(&mut s, KeyCode::Char(c));
    }
    let e = pipedeck::tui::update::on_key(
        &mut s,
        &pipedeck::tui::keymap::Keymap::default(),
        crossterm::event::KeyEvent::from(KeyCode::Enter),
    );
    assert_eq!(e, None, "line 99 of a 40-line log is refused");
    assert!(
        s.message
            .as_ref()
            .is_some_and(|(err, m)| *err && m.contains("40 lines"))
    );
    key(&mut s, KeyCode::Backspace);
    key(&mut s, KeyCode::Backspace);
    for c in "+3".chars() {
        key(&mut s, KeyCode::Char(c));
    }
    let e = pipedeck::tui::update::on_key(
        &mut s,
        &pipedeck::tui::keymap::Keymap::default(),
        crossterm::event::KeyEvent::from(KeyCode::Enter),
    );
    let top = s.log_top();
    match e {
        Some(Effect::WriteLog { range, name, .. }) => {
            assert_eq!(
                range,
                LineRange {
                    from: top,
                    to: top + 3
                }
            );
            assert!(
                name.starts_with("run")
                    && name.ends_with(&format!("-L{}-{}.log", top + 1, top + 3)),
                "{name}"
            );
        }
        other => panic!("expected a write, got {other:?}"),
    }
    assert!(s.dialog.is_none());
}

/// The colour of the cell at (`x`, `y`) as drawn.
fn cell(s: &AppState, x: u16, y: u16) -> (ratatui::style::Color, ratatui::style::Color) {
    let mut s = s.clone();
    s.screen_height = 24;
    let mut t = ratatui::Terminal::new(ratatui::backend::TestBackend::new(80, 24)).unwrap();
    let km = pipedeck::tui::keymap::Keymap::default();
    t.draw(|f| pipedeck::tui::views::render(f, &s, &km))
        .unwrap();
    let c = &t.backend().buffer()[(x, y)];
    (c.fg, c.bg)
}

#[test]
fn themes_paint_the_frame_and_no_color_paints_nothing() {
    use pipedeck::config::user::{ColorRole, NamedColor, ThemeName};
    use pipedeck::tui::theme::Theme;
    use ratatui::style::Color;
    let mut s = state();
    // (0, 1): the runs table's focused border; (1, 0): the title bar's accent.
    assert_eq!(cell(&s, 0, 1).0, Color::Cyan);
    s.theme = Theme::named(ThemeName::Light);
    assert_eq!(cell(&s, 0, 1).0, Color::Blue);
    let mut colors = std::collections::BTreeMap::new();
    colors.insert(ColorRole::Border, NamedColor(Color::Magenta));
    colors.insert(ColorRole::Accent, NamedColor(Color::Indexed(208)));
    s.theme = Theme::from_config(Some(ThemeName::Light), &colors);
    assert_eq!(cell(&s, 0, 1).0, Color::Magenta);
    assert_eq!(cell(&s, 1, 0).0, Color::Indexed(208));
    // NO_COLOR: the theme is not used at all.
    s.color = false;
    assert_eq!(cell(&s, 0, 1), (Color::Reset, Color::Reset));
    assert_eq!(cell(&s, 1, 0).0, Color::Reset);
}

#[test]
fn the_approve_dialog_lists_the_commits_since_the_current_deployment() {
    use crossterm::event::KeyCode;
    use pipedeck::tui::action::Effect;
    use pipedeck::tui::commits::{Commit, GateCommits};
    let mut s = state();
    s.repos.insert("web".into(), "/srv/git/web".into());
    key(&mut s, KeyCode::Char('i'));
    let g = s.gates[s.gate_sel].clone();
    let e = pipedeck::tui::update::on_key(
        &mut s,
        &pipedeck::tui::keymap::Keymap::default(),
        crossterm::event::KeyEvent::from(KeyCode::Char('a')),
    );
    match e {
        Some(Effect::LoadCommits { run, env, repo, .. }) => {
            assert_eq!((run, env.as_str()), (g.run_id, g.env.as_str()));
            assert_eq!(repo, std::path::PathBuf::from("/srv/git/web"));
        }
        other => panic!("expected the commits to be read, got {other:?}"),
    }
    s.gate_commits = Some(GateCommits {
        run: g.run_id,
        env: g.env.clone(),
        current: Some("1a2b3c4d5e".into()),
        commits: (0..3)
            .map(|i| Commit {
                sha: format!("c0ffee{i}"),
                author: "Ann".into(),
                subject: format!("change {i} \u{1b}]0;owned\u{7}"),
            })
            .collect(),
        total: 23,
    });
    both("approve_commits", &s);
    let big = draw(&s, 160, 48);
    assert!(big.contains("23 commits since prod runs 1a2b3c4"), "{big}");
    assert!(
        big.contains("… and 20 more") && !big.contains("owned"),
        "{big}"
    );
}
