//! The stations view (`:stations`): each station's service, what it follows, the
//! deployment it runs and the one it switches to next (and what that switch waits
//! for), pinned or not, jobs in flight and its last error. `space` marks stations for
//! pin (from `:deployments`) and unpin; `u` unpins, `b` rolls the service back.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::widgets::{Paragraph, Row, Table, TableState};

use super::{accent, block, selected};
use crate::domain::ansi::inert;
use crate::domain::release::StationInfo;
use crate::tui::action::{Action, Effect};
use crate::tui::app::{AppState, View};

pub fn update(s: &mut AppState, a: Action) -> Option<Effect> {
    let d = &mut s.deploys;
    let last = d.stations.len().saturating_sub(1);
    match a {
        Action::Back => s.view = View::Runs,
        Action::Up => d.station_sel = d.station_sel.saturating_sub(1),
        Action::Down => d.station_sel = (d.station_sel + 1).min(last),
        Action::Top => d.station_sel = 0,
        Action::Bottom => d.station_sel = last,
        Action::Mark => s.toggle_mark(),
        Action::Unpin => s.ask_unpin(),
        Action::Rollback => s.ask_rollback(true),
        // Pin works on a deployment: pick it in :deployments with these marks.
        Action::Pin => {
            s.view = View::Deployments;
            s.info("select a deployment and press p to pin it to the marked stations");
        }
        Action::Enter => return s.load_releases(),
        _ => {}
    }
    None
}

/// A click on screen row `row` selects the station there (unscrolled list).
pub fn click(s: &mut AppState, row: u16) {
    let rows = usize::from(s.table_rows());
    let d = &mut s.deploys;
    if let Some(i) = row.checked_sub(3).map(usize::from)
        && i < d.stations.len()
        && d.station_sel < rows
    {
        d.station_sel = i;
    }
}

/// The state column: the last switch's error, a pending switch and what it waits
/// for, or idle.
fn state(st: &StationInfo) -> String {
    match (&st.error, st.waiting_for()) {
        (Some(e), _) => format!("error: {}", inert(e)),
        (None, Some(w)) => format!("pending: {w}"),
        (None, None) => "idle".into(),
    }
}

pub fn render(f: &mut Frame, s: &AppState, area: Rect) {
    let d = &s.deploys;
    let [table, foot] = Layout::vertical([Constraint::Min(0), Constraint::Length(3)]).areas(area);
    let marked = if d.marked.is_empty() {
        String::new()
    } else {
        format!(", {} marked", d.marked.len())
    };
    let b = block(
        s,
        format!(" stations ({}{marked}) ", d.stations.len()),
        true,
    );
    if d.stations.is_empty() {
        f.render_widget(
            Paragraph::new("No stations: add a [stations.NAME] table to the project file.")
                .block(b),
            area,
        );
        return;
    }
    let id = |v: Option<i64>| v.map_or("-".to_string(), |v| v.to_string());
    let rows: Vec<Row> = d
        .stations
        .iter()
        .map(|st| {
            let mark = if d.marked.contains(&st.name) {
                "*"
            } else {
                " "
            };
            Row::new(vec![
                format!("{mark}{}", inert(&st.name)),
                inert(&st.service),
                inert(&st.follows),
                id(st.current),
                id(st.pending),
                if st.pinned { "yes" } else { "no" }.to_string(),
                st.jobs.to_string(),
                state(st),
            ])
        })
        .collect();
    let widths = [
        Constraint::Length(12),
        Constraint::Length(8),
        Constraint::Length(12),
        Constraint::Length(7),
        Constraint::Length(5),
        Constraint::Length(6),
        Constraint::Length(4),
        Constraint::Min(10),
    ];
    let header = [
        "STATION", "SERVICE", "FOLLOWS", "CURRENT", "NEXT", "PINNED", "JOBS", "STATE",
    ];
    let t = Table::new(rows, widths)
        .header(Row::new(header).style(accent(s)))
        .row_highlight_style(selected(s))
        .block(b);
    let mut ts = TableState::default().with_selected(Some(d.station_sel));
    f.render_stateful_widget(t, table, &mut ts);
    if let Some(st) = d.selected_station() {
        let what = |v: Option<i64>| {
            v.and_then(|v| d.releases.iter().find(|r| r.id == v))
                .map(crate::tui::app::describe)
                .unwrap_or_else(|| id(v))
        };
        let text = format!(
            " runs: {}\n next: {}\n {}",
            what(st.current),
            what(st.pending),
            state(st)
        );
        f.render_widget(Paragraph::new(text), foot);
    }
}
