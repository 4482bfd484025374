//! The triggers view (`:triggers`): each trigger, what it watches, when it last fired
//! (and the run), when it fires next, its last error, and why it is stopped.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::widgets::{Paragraph, Row, Table};

use super::{accent, ago, block, selected, span};
use crate::domain::ansi::inert;
use crate::tui::action::{Action, Effect};
use crate::tui::app::{AppState, View};

pub fn update(s: &mut AppState, a: Action) -> Option<Effect> {
    match a {
        Action::Back => s.view = View::Runs,
        Action::Up => s.trigger_sel = s.trigger_sel.saturating_sub(1),
        Action::Down => s.trigger_sel = (s.trigger_sel + 1).min(s.triggers.len().saturating_sub(1)),
        // The selected trigger's last run.
        Action::Enter => {
            let Some(id) = s
                .triggers
                .get(s.trigger_sel)
                .and_then(|t| t.last_fired.as_ref())
                .map(|l| l.run_id)
            else {
                s.error("this trigger has not fired yet");
                return None;
            };
            if let Some(pos) = s.visible_position(id) {
                s.runs_sel = pos;
            }
            s.view = View::Detail;
            s.detail = None;
            return Some(s.open_detail(id));
        }
        _ => {}
    }
    None
}

/// A click on screen row `row` selects the trigger there.
pub fn click(s: &mut AppState, row: u16) {
    // Title bar (1) + block border (1) + header (1).
    if let Some(i) = row.checked_sub(3).map(usize::from)
        && i < s.triggers.len()
    {
        s.trigger_sel = i;
    }
}

/// The state column: stopped (why), the last error, or active.
fn state(t: &crate::domain::trigger::TriggerInfo) -> String {
    match (&t.stopped, &t.last_error) {
        (Some(why), _) => format!("stopped: {}", inert(why)),
        (None, Some(e)) => format!("error: {}", inert(e)),
        (None, None) => "active".into(),
    }
}

pub fn render(f: &mut Frame, s: &AppState, area: Rect) {
    // The selected trigger's watch and state in full, under the table.
    let [table, foot] = Layout::vertical([Constraint::Min(0), Constraint::Length(2)]).areas(area);
    let b = block(s, format!(" triggers ({}) ", s.triggers.len()), true);
    if s.triggers.is_empty() {
        f.render_widget(
            Paragraph::new(
                "No triggers: give a service `branches`, `tags`, a `webhook` or `schedules`.",
            )
            .block(b),
            area,
        );
        return;
    }
    let rows: Vec<Row> = s
        .triggers
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let row = Row::new(vec![
                inert(&t.service),
                inert(&t.trigger),
                t.last_fired
                    .as_ref()
                    .map(|l| format!("run {} {}", l.run_id, ago(s.now, l.at)))
                    .unwrap_or_else(|| "-".into()),
                t.next_fire
                    .map(|n| format!("in {}", span(n - s.now)))
                    .unwrap_or_else(|| "-".into()),
                state(t),
            ]);
            if i == s.trigger_sel {
                row.style(selected(s))
            } else {
                row
            }
        })
        .collect();
    let widths = [
        Constraint::Length(12),
        Constraint::Length(18),
        Constraint::Length(16),
        Constraint::Length(10),
        Constraint::Min(10),
    ];
    let t = Table::new(rows, widths)
        .header(Row::new(["SERVICE", "TRIGGER", "LAST FIRED", "NEXT", "STATE"]).style(accent(s)))
        .block(b);
    f.render_widget(t, table);
    if let Some(t) = s.triggers.get(s.trigger_sel) {
        let text = format!(" watches: {}\n {}", inert(&t.watches), state(t));
        f.render_widget(Paragraph::new(text), foot);
    }
}
