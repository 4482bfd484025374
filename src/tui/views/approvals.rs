//! The approvals inbox and its keys: every gate waiting, across runs, oldest first.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::widgets::{Paragraph, Row, Table};

use super::{accent, block, selected, span};
use crate::tui::action::{Action, Effect};
use crate::tui::app::{AppState, View};

/// The inbox's keys.
pub fn update(s: &mut AppState, a: Action) -> Option<Effect> {
    match a {
        Action::Back => s.view = View::Runs,
        Action::Up => s.gate_sel = s.gate_sel.saturating_sub(1),
        Action::Down => s.gate_sel = (s.gate_sel + 1).min(s.gates.len().saturating_sub(1)),
        Action::Approve | Action::Reject => {
            let Some(g) = s.gates.get(s.gate_sel) else {
                s.error("no gate is waiting");
                return None;
            };
            let (run, env) = (g.run_id, g.env.clone());
            return s.open_decision(run, env, a);
        }
        Action::Enter => {
            let id = s.gates.get(s.gate_sel)?.run_id;
            if let Some(pos) = s.visible_position(id) {
                s.runs_sel = pos;
            }
            // Infra pipelines open on their DAG; stack jobs and service runs on their tree.
            let infra = s
                .runs
                .iter()
                .any(|r| r.id == id && r.kind == crate::domain::RunKind::Infra);
            s.view = if infra { View::Graph } else { View::Detail };
            s.detail = None;
            return Some(s.open_detail(id));
        }
        _ => {}
    }
    None
}

/// A click on screen row `row` selects the gate there.
pub fn click(s: &mut AppState, row: u16) {
    // Title bar (1) + block border (1) + header (1).
    if let Some(i) = row.checked_sub(3).map(usize::from)
        && i < s.gates.len()
    {
        s.gate_sel = i;
    }
}

pub fn render(f: &mut Frame, s: &AppState, area: Rect) {
    // The selected gate's environment queue, under the table.
    let queue = s.gates.get(s.gate_sel).and_then(|g| {
        let run = s.runs.iter().find(|r| r.id == g.run_id)?;
        s.queue(&run.service, &g.env)
            .map(|q| format!(" {} queue: {}", g.env, q.summary()))
    });
    let area = match queue {
        Some(q) => {
            let [table, foot] =
                Layout::vertical([Constraint::Min(0), Constraint::Length(1)]).areas(area);
            f.render_widget(Paragraph::new(q), foot);
            table
        }
        None => area,
    };
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
                // The commit and its message (sanitised: untrusted text).
                run.map(|r| {
                    format!(
                        "{} {} {}",
                        &r.commit_sha[..r.commit_sha.len().min(7)],
                        r.place(),
                        crate::domain::ansi::inert(&r.commit_message)
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
