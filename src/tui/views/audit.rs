//! The audit log (`:audit`): who did what, when, to which run, and every refusal with
//! its reason, oldest first; the selection scrolls it. Every field is untrusted text
//! (names, targets, comments) and shown sanitised.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::widgets::{Paragraph, Row, Table, TableState};

use super::{accent, ago, block, selected};
use crate::domain::ansi::inert;
use crate::tui::action::{Action, Effect};
use crate::tui::app::{AppState, View};

/// The newest entries the view reads.
pub const AUDIT_LIMIT: usize = 1000;

/// The view's keys.
pub fn update(s: &mut AppState, a: Action) -> Option<Effect> {
    let last = s.audit.len().saturating_sub(1);
    let page = usize::from(s.table_rows().max(1));
    match a {
        Action::Back => s.view = View::Runs,
        Action::Up => s.audit_sel = s.audit_sel.saturating_sub(1),
        Action::Down => s.audit_sel = (s.audit_sel + 1).min(last),
        Action::PageUp => s.audit_sel = s.audit_sel.saturating_sub(page),
        Action::PageDown => s.audit_sel = (s.audit_sel + page).min(last),
        Action::Top => s.audit_sel = 0,
        Action::Bottom => s.audit_sel = last,
        // Read it again.
        Action::Enter => return Some(Effect::LoadAudit),
        _ => {}
    }
    None
}

pub fn render(f: &mut Frame, s: &AppState, area: Rect) {
    let refused = s.audit.iter().filter(|e| e.action == "refused").count();
    let b = block(
        s,
        format!(" audit log ({} entries, {refused} refused) ", s.audit.len()),
        true,
    );
    if s.audit.is_empty() {
        f.render_widget(
            Paragraph::new("Nothing in the audit log yet.").block(b),
            area,
        );
        return;
    }
    let rows: Vec<Row> = s
        .audit
        .iter()
        .map(|e| {
            let what = match (&e.target, &e.comment) {
                (Some(t), Some(c)) => format!("{}: {}", inert(t), inert(c)),
                (Some(t), None) => inert(t),
                (None, Some(c)) => inert(c),
                (None, None) => String::new(),
            };
            let row = Row::new(vec![
                ago(s.now, e.at),
                inert(&e.actor),
                inert(&e.action),
                e.run().map(|r| r.to_string()).unwrap_or_else(|| "-".into()),
                what,
            ]);
            if e.action == "refused" && s.color {
                row.style(ratatui::style::Style::new().fg(ratatui::style::Color::Red))
            } else {
                row
            }
        })
        .collect();
    let widths = [
        Constraint::Length(9),
        Constraint::Length(18),
        Constraint::Length(9),
        Constraint::Length(6),
        Constraint::Min(20),
    ];
    let t = Table::new(rows, widths)
        .header(Row::new(["WHEN", "WHO", "ACTION", "RUN", "WHAT"]).style(accent(s)))
        .row_highlight_style(selected(s))
        .block(b);
    let mut state = TableState::default().with_selected(Some(s.audit_sel));
    f.render_stateful_widget(t, area, &mut state);
}

/// A click on screen row `row` selects the entry there (when the list is not
/// scrolled; a scrolled list keeps its selection).
pub fn click(s: &mut AppState, row: u16) {
    if let Some(i) = row.checked_sub(3).map(usize::from)
        && i < s.audit.len()
        && s.audit_sel < usize::from(s.table_rows())
    {
        s.audit_sel = i;
    }
}
