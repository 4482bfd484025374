//! The dashboard's triggers view (`:triggers`), drawn into a `TestBackend`: each
//! trigger with its last run, next fire and state; keys move and open the last run;
//! a new run while the view is open reads the triggers again.

#[path = "common/tui.rs"]
mod fixtures;
use crossterm::event::KeyCode;
use fixtures::*;
use pipedeck::domain::Event;
use pipedeck::domain::trigger::{LastFired, TriggerInfo};
use pipedeck::tui::action::{Effect, Reply};
use pipedeck::tui::app::View;

fn info(service: &str, trigger: &str, watches: &str) -> TriggerInfo {
    TriggerInfo {
        service: service.into(),
        trigger: trigger.into(),
        watches: watches.into(),
        stopped: None,
        last_fired: None,
        next_fire: None,
        last_error: None,
        checked_at: None,
    }
}

fn triggers_state() -> pipedeck::tui::app::AppState {
    let mut s = state();
    let mut push = info("api", "push", "/srv/git/api: branches main, release/*");
    push.last_fired = Some(LastFired {
        run_id: 7,
        at: NOW - 90_000,
    });
    let mut tag = info("api", "tag", "/srv/git/api: tags v*");
    // Untrusted text (a git error) is drawn inert.
    tag.last_error = Some("git ls-remote failed: \u{1b}[31mfatal\u{1b}[0m".into());
    let mut nightly = info(
        "api",
        "schedule:nightly",
        "cron \"0 3 * * *\" (UTC) on main",
    );
    nightly.next_fire = Some(NOW + 3 * 3_600_000);
    let mut off = info("web", "push", "/srv/git/web: branches main");
    off.stopped = Some("pipelines are disabled for service web".into());
    s.apply_reply(Reply::Triggers(vec![push, tag, nightly, off]));
    s
}

fn open(s: &mut pipedeck::tui::app::AppState) -> Option<Effect> {
    key(s, KeyCode::Char(':'));
    for c in "triggers".chars() {
        key(s, KeyCode::Char(c));
    }
    pipedeck::tui::update::on_key(
        s,
        &pipedeck::tui::keymap::Keymap::default(),
        crossterm::event::KeyEvent::new(KeyCode::Enter, crossterm::event::KeyModifiers::NONE),
    )
}

#[test]
fn the_triggers_view_lists_each_trigger_with_its_run_next_fire_and_state() {
    let mut s = triggers_state();
    assert_eq!(open(&mut s), Some(Effect::LoadTriggers));
    assert_eq!(s.view, View::Triggers);
    let screen = draw(&s, 100, 24);
    insta::assert_snapshot!("triggers_100x24", screen);
    assert!(screen.contains("run 7 1m ago"), "{screen}");
    assert!(screen.contains("in 3h"), "{screen}");
    assert!(
        screen.contains("stopped: pipelines are disabled"),
        "{screen}"
    );
    assert!(!screen.contains('\u{1b}'), "no live escape sequences");

    // Down to the tag (never fired): Enter says so; up to the push: Enter opens run 7.
    key(&mut s, KeyCode::Down);
    key(&mut s, KeyCode::Enter);
    assert_eq!(s.view, View::Triggers);
    key(&mut s, KeyCode::Up);
    key(&mut s, KeyCode::Enter);
    assert_eq!(s.view, View::Detail);
}

#[test]
fn a_new_run_while_the_view_is_open_reads_the_triggers_again() {
    let mut s = triggers_state();
    open(&mut s);
    let new = run(99, pipedeck::domain::RunStatus::Queued, "pushed", 0, 0);
    assert_eq!(
        s.apply_event(Event::Run { run: new }),
        Some(Effect::LoadTriggers)
    );
}
