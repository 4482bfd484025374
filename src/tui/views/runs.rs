//! The runs table and its keys: only the visible rows are built, so thousands scroll
//! smoothly; the filtered, sorted order is computed when the runs, filter or sort change.

use crate::domain::ansi::inert;
use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table};

use super::{ago, block, dialogs, duration, fit, selected};
use crate::tui::action::{Action, Effect};
use crate::tui::app::{AppState, LogView, View};
use crate::tui::widgets::status::{badge, run_look};

/// Rows a page key moves.
const PAGE: usize = 20;

/// The runs table's keys.
pub fn update(s: &mut AppState, a: Action) -> Option<Effect> {
    let last = s.visible_len().saturating_sub(1);
    match a {
        Action::Back => s.filter.clear(),
        Action::Up => s.runs_sel = s.runs_sel.saturating_sub(1),
        Action::Down => s.runs_sel = (s.runs_sel + 1).min(last),
        Action::Top => s.runs_sel = 0,
        Action::Bottom => s.runs_sel = last,
        Action::PageUp => s.runs_sel = s.runs_sel.saturating_sub(PAGE),
        Action::PageDown => s.runs_sel = (s.runs_sel + PAGE).min(last),
        Action::Sort => {
            s.sort = s.sort.next();
            s.info(format!("sorted by {}", s.sort.name()));
        }
        Action::Enter => {
            let (id, kind) = s.selected_run().map(|r| (r.id, r.kind))?;
            // Infra pipelines open on their DAG; stack jobs and service runs on their tree.
            s.view = if kind == crate::domain::RunKind::Infra {
                s.graph_sel = 0;
                View::Graph
            } else {
                View::Detail
            };
            if s.detail.as_ref().is_none_or(|d| d.run.id != id) {
                s.detail = None;
                s.log = LogView {
                    follow: true,
                    wrap: s.log.wrap,
                    timestamps: s.log.timestamps,
                    streams: s.log.streams,
                    ..Default::default()
                };
            }
            return Some(s.open_detail(id));
        }
        Action::Cancel => {
            let (id, st) = s.selected_run().map(|r| (r.id, r.status))?;
            dialogs::confirm_cancel(s, id, st);
        }
        Action::Rerun => {
            let id = s.selected_run()?.id;
            dialogs::confirm_rerun(s, id);
        }
        _ => {}
    }
    None
}

/// Typing into the filter (`/`): the selection goes back to the top.
pub fn edit_filter(s: &mut AppState, f: impl FnOnce(&mut String)) {
    f(&mut s.filter);
    s.runs_sel = 0;
}

/// A click on screen row `row` selects the run there.
pub fn click(s: &mut AppState, row: u16) {
    // Title bar (1) + block border (1) + header (1).
    let Some(i) = row.checked_sub(3) else { return };
    let h = s.table_rows() as usize;
    let offset = (s.runs_sel / h) * h;
    if offset + (i as usize) < s.visible_len() {
        s.runs_sel = offset + i as usize;
    }
}

pub fn render(f: &mut Frame, s: &AppState, area: Rect) {
    let shown = s.visible_len();
    let title = if s.filter.is_empty() {
        format!(" runs ({shown}) · sort: {} ", s.sort.name())
    } else {
        format!(
            " runs ({shown} of {}) · filter: {} · sort: {} ",
            s.runs.len(),
            s.filter,
            s.sort.name()
        )
    };
    let b = block(s, title, true);
    if shown == 0 {
        let text = if s.runs.is_empty() && s.reloading {
            "loading runs…"
        } else if s.runs.is_empty() {
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
    // Each drifted pipeline's newest infra run carries its drift marker.
    let drift = s.drift.marked_runs(&s.runs);
    let rows: Vec<Row> = s
        .visible_window(offset, h)
        .into_iter()
        .enumerate()
        .map(|(k, r)| {
            let i = offset + k;
            let status = badge(run_look(r.status), r.status.as_str(), s.ascii, s.color);
            let dur = r
                .duration_ms(s.now)
                .map(duration)
                .unwrap_or_else(|| "-".into());
            let msg = inert(&r.commit_message);
            let mut commit = vec![Span::raw(format!(
                "{} ",
                &r.commit_sha[..r.commit_sha.len().min(7)]
            ))];
            // Markers first: a targeted stack job or a rollout, a drifted pipeline.
            for m in [Some(r.marker()), drift.get(&r.id).cloned()]
                .into_iter()
                .flatten()
                .filter(|m| !m.is_empty())
            {
                commit.push(Span::styled(format!("[{}] ", inert(&m)), super::marker(s)));
            }
            commit.push(Span::raw(fit(&msg, 60)));
            let mut cells = vec![
                Cell::from(Line::from(status)),
                Cell::from(r.id.to_string()),
                Cell::from(inert(&r.service)),
                Cell::from(Line::from(commit)),
                Cell::from(r.run_type.as_str()),
                Cell::from(dur),
                Cell::from(ago(s.now, r.created_at)),
            ];
            if wide {
                cells.push(Cell::from(inert(r.place())));
                cells.push(Cell::from(inert(&r.author)));
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
