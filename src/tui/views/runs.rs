//! The runs table: only the visible rows are built, so thousands scroll smoothly.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table};

use super::{ago, block, duration, fit, selected};
use crate::tui::app::AppState;
use crate::tui::widgets::status::{badge, run_look};

pub fn render(f: &mut Frame, s: &AppState, area: Rect) {
    let runs = s.visible_runs();
    let title = if s.filter.is_empty() {
        format!(" runs ({}) · sort: {} ", runs.len(), s.sort.name())
    } else {
        format!(
            " runs ({} of {}) · filter: {} · sort: {} ",
            runs.len(),
            s.runs.len(),
            s.filter,
            s.sort.name()
        )
    };
    let b = block(s, title, true);
    if runs.is_empty() {
        let text = if s.runs.is_empty() {
            "No runs yet. Press t to trigger one."
        } else {
            "No run matches the filter. Press esc to clear it."
        };
        f.render_widget(Paragraph::new(text).block(b), area);
        return;
    }
    let h = area.height.saturating_sub(3).max(1) as usize; // borders + header: s.table_rows()
    let offset = (s.runs_sel / h) * h;
    let wide = area.width >= 120;
    let rows: Vec<Row> = runs
        .iter()
        .enumerate()
        .skip(offset)
        .take(h)
        .map(|(i, r)| {
            let status = badge(run_look(r.status), r.status.as_str(), s.ascii, s.color);
            let dur = r
                .duration_ms(s.now)
                .map(duration)
                .unwrap_or_else(|| "-".into());
            let msg = crate::domain::ansi::sanitize(&r.commit_message, false);
            let mut cells = vec![
                Cell::from(Line::from(status)),
                Cell::from(r.id.to_string()),
                Cell::from(r.service.clone()),
                Cell::from(Line::from(vec![
                    Span::raw(format!("{} ", &r.commit_sha[..r.commit_sha.len().min(7)])),
                    Span::raw(fit(&msg, 60)),
                ])),
                Cell::from(r.run_type.as_str()),
                Cell::from(dur),
                Cell::from(ago(s.now, r.created_at)),
            ];
            if wide {
                cells.push(Cell::from(r.branch.clone()));
                cells.push(Cell::from(r.author.clone()));
            }
            let row = Row::new(cells);
            if i == s.runs_sel {
                row.style(selected(s))
            } else {
                row
            }
        })
        .collect();
    let mut widths = vec![
        Constraint::Length(19),
        Constraint::Length(4),
        Constraint::Length(if wide { 12 } else { 8 }),
        Constraint::Min(15),
        Constraint::Length(10),
        Constraint::Length(8),
        Constraint::Length(7),
    ];
    let mut header = vec![
        "STATUS", "RUN", "SERVICE", "COMMIT", "TYPE", "DURATION", "STARTED",
    ];
    if wide {
        widths.push(Constraint::Length(14));
        widths.push(Constraint::Length(16));
        header.push("BRANCH");
        header.push("AUTHOR");
    }
    let table = Table::new(rows, widths)
        .header(Row::new(header).style(super::accent(s)))
        .block(b);
    f.render_widget(table, area);
}
