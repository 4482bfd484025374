//! The approvals inbox: every gate waiting, across runs, oldest first.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::widgets::{Paragraph, Row, Table};

use super::{accent, block, selected, span};
use crate::tui::app::AppState;

pub fn render(f: &mut Frame, s: &AppState, area: Rect) {
    let b = block(
        s,
        format!(" approvals inbox ({} waiting) ", s.gates.len()),
        true,
    );
    if s.gates.is_empty() {
        f.render_widget(Paragraph::new("No gate is waiting.").block(b), area);
        return;
    }
    let rows: Vec<Row> = s
        .gates
        .iter()
        .enumerate()
        .map(|(i, g)| {
            let run = s.runs.iter().find(|r| r.id == g.run_id);
            let row = Row::new(vec![
                g.run_id.to_string(),
                run.map(|r| r.service.clone()).unwrap_or_default(),
                g.env.clone(),
                run.map(|r| {
                    format!(
                        "{} {}",
                        &r.commit_sha[..r.commit_sha.len().min(7)],
                        r.branch
                    )
                })
                .unwrap_or_default(),
                run.map(|r| r.triggered_by.clone()).unwrap_or_default(),
                span(s.now - g.opened_at),
                g.expires_at
                    .map(|e| format!("in {}", span(e - s.now)))
                    .unwrap_or_else(|| "-".into()),
            ]);
            if i == s.gate_sel {
                row.style(selected(s))
            } else {
                row
            }
        })
        .collect();
    let widths = [
        Constraint::Length(6),
        Constraint::Length(12),
        Constraint::Length(12),
        Constraint::Min(16),
        Constraint::Length(14),
        Constraint::Length(9),
        Constraint::Length(9),
    ];
    let t = Table::new(rows, widths)
        .header(
            Row::new([
                "RUN",
                "SERVICE",
                "ENV",
                "COMMIT",
                "TRIGGERED BY",
                "WAITING",
                "EXPIRES",
            ])
            .style(accent(s)),
        )
        .block(b);
    f.render_widget(t, area);
}
