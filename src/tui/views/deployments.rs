//! The deployments view (`:deployments`, `:deploys`): each release (the issue's
//! deployment) with its status, short digest, size and the stations it runs on; keys
//! pin it, promote it, roll its service back or delete it, each after a confirmation.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::widgets::{Paragraph, Row, Table, TableState};

use super::{accent, ago, block, selected};
use crate::domain::ansi::inert;
use crate::domain::bytes::format_bytes;
use crate::tui::action::{Action, Effect};
use crate::tui::app::{AppState, View};

pub fn update(s: &mut AppState, a: Action) -> Option<Effect> {
    let d = &mut s.deploys;
    let last = d.releases.len().saturating_sub(1);
    match a {
        Action::Back => s.view = View::Runs,
        Action::Up => d.release_sel = d.release_sel.saturating_sub(1),
        Action::Down => d.release_sel = (d.release_sel + 1).min(last),
        Action::Top => d.release_sel = 0,
        Action::Bottom => d.release_sel = last,
        Action::Pin => s.ask_pin(),
        Action::Promote => s.ask_promote(),
        Action::Rollback => s.ask_rollback(false),
        Action::Delete => s.ask_delete(),
        // The run that built it.
        Action::Enter => {
            let id = d.selected_release()?.run_id;
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

/// A click on screen row `row` selects the deployment there (unscrolled list).
pub fn click(s: &mut AppState, row: u16) {
    let rows = usize::from(s.table_rows());
    let d = &mut s.deploys;
    if let Some(i) = row.checked_sub(3).map(usize::from)
        && i < d.releases.len()
        && d.release_sel < rows
    {
        d.release_sel = i;
    }
}

/// `sha256:0123…` cut to its first 12 hex digits.
pub fn digest_short(d: Option<&str>) -> String {
    d.map(|d| {
        inert(
            &d.trim_start_matches("sha256:")
                .chars()
                .take(12)
                .collect::<String>(),
        )
    })
    .unwrap_or_else(|| "-".into())
}

pub fn render(f: &mut Frame, s: &AppState, area: Rect) {
    let d = &s.deploys;
    let [table, foot] = Layout::vertical([Constraint::Min(0), Constraint::Length(2)]).areas(area);
    let b = block(s, format!(" deployments ({}) ", d.releases.len()), true);
    if d.releases.is_empty() {
        f.render_widget(
            Paragraph::new(
                "No deployments yet: give a service `artifact = [\"dist/**\"]`; each successful \
                 build becomes one.",
            )
            .wrap(ratatui::widgets::Wrap { trim: true })
            .block(b),
            area,
        );
        return;
    }
    // The start column only where there is room for it.
    let wide = area.width >= 120;
    let rows: Vec<Row> = d
        .releases
        .iter()
        .map(|r| {
            let mut cells = vec![
                r.id.to_string(),
                inert(&r.service),
                inert(&r.commit_sha.chars().take(7).collect::<String>()),
                r.environment.to_string(),
                r.status.to_string(),
                digest_short(r.digest.as_deref()),
                r.size.map(format_bytes).unwrap_or_else(|| "-".into()),
            ];
            if wide {
                cells.push(ago(s.now, r.started_at));
            }
            cells.push(d.running_on(r.id));
            Row::new(cells)
        })
        .collect();
    let mut widths = vec![
        Constraint::Length(3),
        Constraint::Length(if wide { 12 } else { 8 }),
        Constraint::Length(7),
        Constraint::Length(10),
        Constraint::Length(8),
        Constraint::Length(12),
        Constraint::Length(9),
    ];
    let mut header = vec!["ID", "SERVICE", "COMMIT", "ENV", "STATUS", "DIGEST", "SIZE"];
    if wide {
        widths.push(Constraint::Length(9));
        header.push("STARTED");
    }
    widths.push(Constraint::Min(8));
    header.push("RUNS ON");
    let t = Table::new(rows, widths)
        .header(Row::new(header).style(accent(s)))
        .row_highlight_style(selected(s))
        .block(b);
    let mut state = TableState::default().with_selected(Some(d.release_sel));
    f.render_stateful_widget(t, table, &mut state);
    if let Some(r) = d.selected_release() {
        let branch = match &r.tag {
            Some(t) => format!("{} tag {}", inert(&r.branch), inert(t)),
            None => inert(&r.branch),
        };
        let promoted = r
            .promoted_from
            .map(|p| format!(", promoted from {p}"))
            .unwrap_or_default();
        let text = format!(
            " {} · {branch} · {} · run {}{promoted}\n runs on: {}",
            crate::tui::app::describe(r),
            r.trigger,
            r.run_id,
            d.running_on(r.id)
        );
        f.render_widget(Paragraph::new(text), foot);
    }
}
