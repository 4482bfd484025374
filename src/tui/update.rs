//! `update(state, input) -> effect`: pure, so every key path is unit-tested.
//!
//! This module routes: dialogs and text fields first, then the keymap; global actions
//! are handled here, and every other action goes to the view on screen
//! ([`super::views`]: each view module owns its keys).

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::action::{Action, Effect};
use super::app::{AppState, Dialog, View};
use super::keymap::Keymap;
use super::views;

/// A key press: dialogs and text fields first, then the keymap.
pub fn on_key(s: &mut AppState, km: &Keymap, key: KeyEvent) -> Option<Effect> {
    if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
        return update(s, Action::Quit);
    }
    if s.dialog.is_some() {
        return views::dialog_key(s, key);
    }
    if s.help {
        // j/k and the page keys scroll the help; any other key closes it.
        match key.code {
            KeyCode::Char('j') | KeyCode::Down => s.help_top = s.help_top.saturating_add(1),
            KeyCode::Char('k') | KeyCode::Up => s.help_top = s.help_top.saturating_sub(1),
            KeyCode::PageDown => s.help_top = s.help_top.saturating_add(10),
            KeyCode::PageUp => s.help_top = s.help_top.saturating_sub(10),
            _ => s.help = false,
        }
        return None;
    }
    if s.filter_editing {
        match key.code {
            KeyCode::Enter => {
                s.filter_editing = false;
                // A log search jumps to its first match from the top line down.
                if s.view == View::Detail {
                    return s.log_search(super::app::SearchFrom::Here);
                }
            }
            KeyCode::Esc => {
                s.filter_editing = false;
                views::clear_search(s);
            }
            KeyCode::Backspace => views::edit_search(s, |t| {
                t.pop();
            }),
            KeyCode::Char(c) => views::edit_search(s, |t| t.push(c)),
            _ => {}
        }
        return None;
    }
    let action = km.lookup(s.view, &key)?;
    s.message = None;
    update(s, action)
}

/// Applies one action: global ones here, the rest in the view on screen.
pub fn update(s: &mut AppState, a: Action) -> Option<Effect> {
    match a {
        Action::Quit => {
            let active = s.active_runs();
            if s.hosting && active > 0 {
                s.dialog = Some(Dialog::Quit { active });
                None
            } else {
                Some(Effect::Quit { stop_engine: true })
            }
        }
        Action::Help => {
            s.help = true;
            s.help_top = 0;
            None
        }
        Action::CommandLine => {
            s.dialog = Some(Dialog::CommandLine(String::new()));
            None
        }
        Action::Approvals => {
            s.view = View::Approvals;
            None
        }
        Action::Trigger => {
            s.open_trigger();
            None
        }
        Action::Search => {
            s.filter_editing = true;
            if s.view == View::Detail {
                s.log.search = Some(String::new());
            }
            None
        }
        _ => views::update(s, a),
    }
}

/// The mouse wheel: scrolls the log in the run detail, moves the selection elsewhere.
pub fn scroll(s: &mut AppState, lines: i64) -> Option<Effect> {
    views::scroll(s, lines)
}

/// A mouse click at screen column `col`, row `row`.
pub fn click(s: &mut AppState, col: u16, row: u16) -> Option<Effect> {
    views::click(s, col, row)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Decision, GateInfo, GateStatus, RunStatus};

    use crate::tui::app::tests::run;

    fn press(s: &mut AppState, c: KeyCode) -> Option<Effect> {
        on_key(s, &Keymap::default(), KeyEvent::new(c, KeyModifiers::NONE))
    }

    fn state() -> AppState {
        let mut s = AppState::new(vec!["web".into()], true, "/d".into());
        s.runs = vec![
            run(2, RunStatus::AwaitingApproval),
            run(1, RunStatus::Succeeded),
        ];
        s.gates = vec![GateInfo {
            id: 9,
            run_id: 2,
            env: "prod".into(),
            status: GateStatus::Waiting,
            opened_at: 0,
            expires_at: None,
            decided_by: None,
            decided_at: None,
            comment: None,
        }];
        s
    }

    #[test]
    fn destructive_actions_need_confirmation() {
        let mut s = state();
        assert_eq!(press(&mut s, KeyCode::Char('c')), None);
        assert!(
            matches!(&s.dialog, Some(Dialog::Confirm { text, .. }) if text.contains("deploy in flight finishes"))
        );
        assert_eq!(press(&mut s, KeyCode::Char('n')), None);
        assert!(s.dialog.is_none());
        press(&mut s, KeyCode::Char('c'));
        assert_eq!(press(&mut s, KeyCode::Char('y')), Some(Effect::Cancel(2)));
        // A finished run is not cancellable.
        press(&mut s, KeyCode::Char('j'));
        assert_eq!(press(&mut s, KeyCode::Char('c')), None);
        assert!(s.dialog.is_none() && s.message.as_ref().is_some_and(|m| m.0));
    }

    #[test]
    fn approving_from_the_inbox_carries_the_comment() {
        let mut s = state();
        press(&mut s, KeyCode::Char('i'));
        assert_eq!(s.view, View::Approvals);
        press(&mut s, KeyCode::Char('a'));
        for c in "ok".chars() {
            press(&mut s, KeyCode::Char(c));
        }
        press(&mut s, KeyCode::Enter);
        assert_eq!(
            press(&mut s, KeyCode::Char('y')),
            Some(Effect::Decide {
                run: 2,
                env: "prod".into(),
                decision: Decision::Approve,
                comment: Some("ok".into())
            })
        );
    }

    #[test]
    fn a_gate_that_requires_a_comment_keeps_asking_for_one() {
        let mut s = state();
        s.gate_rules = vec![crate::domain::command::GateRule {
            owner: "web".into(),
            env: "prod".into(),
            require_comment: true,
            ..Default::default()
        }];
        press(&mut s, KeyCode::Char('i'));
        press(&mut s, KeyCode::Char('x'));
        assert_eq!(press(&mut s, KeyCode::Enter), None);
        assert!(matches!(s.dialog, Some(Dialog::Comment { .. })));
        assert!(
            s.message
                .as_ref()
                .is_some_and(|(err, m)| *err && m.contains("requires a comment"))
        );
        for c in "bad".chars() {
            press(&mut s, KeyCode::Char(c));
        }
        press(&mut s, KeyCode::Enter);
        assert_eq!(
            press(&mut s, KeyCode::Char('y')),
            Some(Effect::Decide {
                run: 2,
                env: "prod".into(),
                decision: Decision::Reject,
                comment: Some("bad".into())
            })
        );
    }

    #[test]
    fn quitting_a_hosting_dashboard_with_active_runs_asks() {
        let mut s = state();
        assert_eq!(press(&mut s, KeyCode::Char('q')), None);
        assert!(matches!(s.dialog, Some(Dialog::Quit { active: 1 })));
        assert_eq!(
            press(&mut s, KeyCode::Char('k')),
            Some(Effect::Quit { stop_engine: false })
        );
        let mut s = state();
        s.hosting = false;
        assert_eq!(
            press(&mut s, KeyCode::Char('q')),
            Some(Effect::Quit { stop_engine: true })
        );
    }

    #[test]
    fn filter_as_you_type_and_trigger() {
        let mut s = state();
        press(&mut s, KeyCode::Char('/'));
        for c in "succ".chars() {
            press(&mut s, KeyCode::Char(c));
        }
        assert_eq!(s.visible_runs().len(), 1);
        press(&mut s, KeyCode::Esc);
        assert_eq!(s.visible_runs().len(), 2);
        press(&mut s, KeyCode::Char('t'));
        press(&mut s, KeyCode::Tab);
        for c in "dev".chars() {
            press(&mut s, KeyCode::Char(c));
        }
        assert_eq!(
            press(&mut s, KeyCode::Enter),
            Some(Effect::Trigger {
                service: "web".into(),
                branch: Some("dev".into()),
                commit: None
            })
        );
    }
}
