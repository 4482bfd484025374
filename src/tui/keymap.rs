//! Keys are defined once: this table drives dispatch, the `?` help and the status-bar hints.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::action::Action;
use super::app::View;

/// Where a binding applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Global,
    In(View),
}

#[derive(Debug, Clone)]
pub struct Binding {
    pub scope: Scope,
    pub key: KeyCode,
    pub ctrl: bool,
    pub action: Action,
    pub help: &'static str,
    /// Shown in the status bar of its view.
    pub hint: bool,
}

fn b(scope: Scope, key: KeyCode, action: Action, help: &'static str, hint: bool) -> Binding {
    Binding {
        scope,
        key,
        ctrl: false,
        action,
        help,
        hint,
    }
}

pub struct Keymap {
    pub bindings: Vec<Binding>,
}

/// A keymap override in the user config that cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeymapError {
    #[error("keymap: `{0}` is not a key")]
    NotAKey(String),
    #[error("keymap: no binding named `{0}` (e.g. runs.cancel, global.quit)")]
    NoBinding(String),
}

impl Default for Keymap {
    fn default() -> Self {
        use Action::*;
        use KeyCode::Char;
        use Scope::*;
        let runs = In(View::Runs);
        let detail = In(View::Detail);
        let inbox = In(View::Approvals);
        let graph = In(View::Graph);
        let deploys = In(View::Deployments);
        let stations = In(View::Stations);
        let state = In(View::State);
        let mut v = vec![
            b(Global, Char('j'), Down, "move down", false),
            b(Global, KeyCode::Down, Down, "move down", false),
            b(Global, Char('k'), Up, "move up", false),
            b(Global, KeyCode::Up, Up, "move up", false),
            b(Global, Char('g'), Top, "go to the top", false),
            b(
                Global,
                Char('G'),
                Bottom,
                "go to the bottom (logs: follow)",
                false,
            ),
            b(Global, KeyCode::PageUp, PageUp, "page up", false),
            b(Global, KeyCode::PageDown, PageDown, "page down", false),
            b(Global, KeyCode::Enter, Enter, "open", true),
            b(Global, KeyCode::Esc, Back, "back", true),
            b(Global, Char('/'), Search, "filter runs / search logs", true),
            b(Global, Char('n'), NextMatch, "next match", false),
            b(Global, Char('N'), PrevMatch, "previous match", false),
            b(
                Global,
                Char(':'),
                CommandLine,
                "jump to a view (:runs :approvals :audit :triggers :deployments :stations)",
                false,
            ),
            b(Global, Char('?'), Help, "help", true),
            b(Global, Char('q'), Quit, "quit", true),
            b(Global, Char('t'), Trigger, "trigger a run", true),
            b(Global, Char('i'), Approvals, "approvals inbox", false),
            b(runs, Char('c'), Cancel, "cancel the selected run", true),
            b(runs, Char('r'), Rerun, "rerun the selected run", true),
            b(runs, Char('s'), Sort, "sort by the next column", false),
            b(detail, Char('c'), Cancel, "cancel this run", true),
            b(detail, Char('r'), Rerun, "rerun this run", false),
            b(detail, Char('a'), Approve, "approve the waiting gate", true),
            b(detail, Char('x'), Reject, "reject the waiting gate", false),
            b(detail, Char('f'), Follow, "follow the log", true),
            b(
                detail,
                Char('W'),
                Wrap,
                "long log lines: wrap them, or cut them and scroll sideways with < and >",
                false,
            ),
            b(
                detail,
                Char('<'),
                ScrollLeft,
                "scroll long log lines left",
                false,
            ),
            b(
                detail,
                Char('>'),
                ScrollRight,
                "scroll long log lines right",
                false,
            ),
            b(
                detail,
                Char('w'),
                WriteLog,
                "write a range of log lines to a file to share (escapes removed)",
                false,
            ),
            b(detail, Char('T'), Timestamps, "show timestamps", false),
            b(
                detail,
                Char('s'),
                StreamMarker,
                "show stdout/stderr marker",
                false,
            ),
            b(
                detail,
                Char('h'),
                Left,
                "collapse the node, or go to its parent",
                false,
            ),
            b(
                detail,
                KeyCode::Left,
                Left,
                "collapse the node, or go to its parent",
                false,
            ),
            b(
                detail,
                Char('l'),
                Right,
                "expand the node, or go to its first child",
                false,
            ),
            b(
                detail,
                KeyCode::Right,
                Right,
                "expand the node, or go to its first child",
                false,
            ),
            b(
                detail,
                Char(' '),
                Toggle,
                "collapse or expand the node",
                false,
            ),
            b(graph, Char('h'), Left, "node to the left", false),
            b(graph, KeyCode::Left, Left, "node to the left", false),
            b(graph, Char('l'), Right, "node to the right", false),
            b(graph, KeyCode::Right, Right, "node to the right", false),
            b(graph, Char('c'), Cancel, "cancel this run", true),
            b(
                graph,
                Char('a'),
                Approve,
                "approve the gate at this node (or the environment's)",
                true,
            ),
            b(
                graph,
                Char('x'),
                Reject,
                "reject the gate at this node (or the environment's)",
                false,
            ),
            b(
                graph,
                Char('S'),
                StateOf,
                "the Terraform state of this node's resource (list, taint, untaint, remove)",
                true,
            ),
            b(state, Char(' '), Mark, "mark or unmark the address", true),
            b(
                state,
                Char('t'),
                Taint,
                "taint the marked addresses (or the selected one): replaced at the next apply",
                true,
            ),
            b(
                state,
                Char('u'),
                Untaint,
                "untaint the marked addresses (or the selected one)",
                true,
            ),
            b(
                state,
                Char('d'),
                Delete,
                "remove the marked addresses from the state (the objects stay)",
                true,
            ),
            b(state, Char('r'), Rerun, "list the state again", true),
            b(inbox, Char('a'), Approve, "approve the selected gate", true),
            b(inbox, Char('x'), Reject, "reject the selected gate", true),
            b(
                deploys,
                Char('p'),
                Pin,
                "pin the deployment to the marked stations (none marked: all of its service)",
                true,
            ),
            b(
                deploys,
                Char('P'),
                Promote,
                "promote the preview deployment to production",
                true,
            ),
            b(
                deploys,
                Char('b'),
                Rollback,
                "rollback: pin its service's production stations to the deployment before",
                true,
            ),
            b(deploys, Char('d'), Delete, "delete the deployment", true),
            b(
                stations,
                Char(' '),
                Mark,
                "mark or unmark the station (for pin and unpin)",
                true,
            ),
            b(
                stations,
                Char('p'),
                Pin,
                "pin: choose the deployment for the marked stations",
                false,
            ),
            b(
                stations,
                Char('u'),
                Unpin,
                "unpin the marked stations (or the selected one)",
                true,
            ),
            b(
                stations,
                Char('b'),
                Rollback,
                "rollback: pin the station's service to the deployment before",
                true,
            ),
        ];
        v.push(Binding {
            scope: detail,
            key: Char('u'),
            ctrl: true,
            action: PageUp,
            help: "scroll the log up",
            hint: false,
        });
        v.push(Binding {
            scope: detail,
            key: Char('d'),
            ctrl: true,
            action: PageDown,
            help: "scroll the log down",
            hint: false,
        });
        Self { bindings: v }
    }
}

impl Keymap {
    /// The action for `key` in `view`: a view's own binding wins over a global one.
    pub fn lookup(&self, view: View, key: &KeyEvent) -> Option<Action> {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        let code = match key.code {
            // Some terminals report shifted letters with SHIFT and the lowercase char.
            KeyCode::Char(c) if key.modifiers.contains(KeyModifiers::SHIFT) => {
                KeyCode::Char(c.to_ascii_uppercase())
            }
            c => c,
        };
        let matches = |b: &&Binding| b.key == code && b.ctrl == ctrl;
        self.bindings
            .iter()
            .filter(matches)
            .find(|b| b.scope == Scope::In(view))
            .or_else(|| {
                self.bindings
                    .iter()
                    .filter(matches)
                    .find(|b| b.scope == Scope::Global)
            })
            .map(|b| b.action)
    }

    /// Rebinds from the user config: `"view.action" = "key"` (view: global, runs, detail, approvals, graph, audit, triggers, deployments, stations, state).
    pub fn apply_overrides(
        &mut self,
        overrides: &std::collections::BTreeMap<String, String>,
    ) -> Result<(), KeymapError> {
        for (name, key) in overrides {
            let code = parse_key(key).ok_or_else(|| KeymapError::NotAKey(key.clone()))?;
            let found = self
                .bindings
                .iter_mut()
                .filter(|b| format!("{}.{}", scope_name(b.scope), action_name(b.action)) == *name)
                .map(|b| b.key = code)
                .count();
            if found == 0 {
                return Err(KeymapError::NoBinding(name.clone()));
            }
        }
        Ok(())
    }
}

pub fn scope_name(s: Scope) -> &'static str {
    match s {
        Scope::Global => "global",
        Scope::In(View::Runs) => "runs",
        Scope::In(View::Detail) => "detail",
        Scope::In(View::Approvals) => "approvals",
        Scope::In(View::Graph) => "graph",
        Scope::In(View::Audit) => "audit",
        Scope::In(View::Triggers) => "triggers",
        Scope::In(View::Deployments) => "deployments",
        Scope::In(View::Stations) => "stations",
        Scope::In(View::State) => "state",
    }
}

pub fn action_name(a: Action) -> String {
    let s = format!("{a:?}");
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

pub fn parse_key(s: &str) -> Option<KeyCode> {
    Some(match s {
        "enter" => KeyCode::Enter,
        "esc" => KeyCode::Esc,
        "up" => KeyCode::Up,
        "down" => KeyCode::Down,
        "pageup" => KeyCode::PageUp,
        "pagedown" => KeyCode::PageDown,
        "tab" => KeyCode::Tab,
        "space" => KeyCode::Char(' '),
        "left" => KeyCode::Left,
        "right" => KeyCode::Right,
        s if s.chars().count() == 1 => KeyCode::Char(s.chars().next()?),
        _ => return None,
    })
}

pub fn key_name(b: &Binding) -> String {
    let k = match b.key {
        KeyCode::Char(' ') => "space".into(),
        KeyCode::Char(c) => c.to_string(),
        KeyCode::Enter => "enter".into(),
        KeyCode::Esc => "esc".into(),
        KeyCode::Up => "↑".into(),
        KeyCode::Left => "←".into(),
        KeyCode::Right => "→".into(),
        KeyCode::Down => "↓".into(),
        KeyCode::PageUp => "pgup".into(),
        KeyCode::PageDown => "pgdn".into(),
        other => format!("{other:?}"),
    };
    if b.ctrl { format!("ctrl-{k}") } else { k }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(c: char) -> KeyEvent {
        KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE)
    }

    #[test]
    fn view_bindings_win_over_global_ones() {
        let km = Keymap::default();
        assert_eq!(km.lookup(View::Runs, &key('s')), Some(Action::Sort));
        assert_eq!(
            km.lookup(View::Detail, &key('s')),
            Some(Action::StreamMarker)
        );
        assert_eq!(km.lookup(View::Runs, &key('q')), Some(Action::Quit));
        assert_eq!(km.lookup(View::Runs, &key('a')), None);
    }

    #[test]
    fn overrides_rebind_and_reject_unknown_names() {
        let mut km = Keymap::default();
        let mut o = std::collections::BTreeMap::new();
        o.insert("runs.cancel".to_string(), "C".to_string());
        km.apply_overrides(&o).unwrap();
        assert_eq!(km.lookup(View::Runs, &key('C')), Some(Action::Cancel));
        assert_eq!(km.lookup(View::Runs, &key('c')), None);
        o.insert("runs.nope".to_string(), "z".to_string());
        assert!(km.apply_overrides(&o).is_err());
    }
}
