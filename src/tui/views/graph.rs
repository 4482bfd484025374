//! The infra DAG view (IP-8): live boxes and edges, the selected node kept in view.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout as Split, Rect};
use ratatui::text::Line;
use ratatui::widgets::Paragraph;

use super::{block, duration};
use crate::domain::{GateStatus, Stage, StepInfo};
use crate::tui::app::AppState;
use crate::tui::widgets::dag_graph::{self, BOX_H, BOX_W, Label, Layout, Node};
use crate::tui::widgets::status::step_look;

/// The DAG of the open infra run, with each resource's step.
pub fn graph_of(s: &AppState) -> Option<(Layout, Vec<Option<&StepInfo>>)> {
    let d = s.detail.as_ref()?;
    if d.graph.is_empty() {
        return None;
    }
    let nodes: Vec<Node> = d
        .graph
        .iter()
        .map(|g| Node {
            id: g.id.clone(),
            deps: g.depends_on.clone(),
        })
        .collect();
    let steps = d
        .graph
        .iter()
        .map(|g| {
            d.steps
                .iter()
                .find(|st| st.stage == Stage::Resource && st.name == g.id)
        })
        .collect();
    Some((Layout::new(&nodes), steps))
}

pub fn render(f: &mut Frame, s: &AppState, area: Rect) {
    let Some(d) = &s.detail else {
        f.render_widget(
            Paragraph::new("loading…").block(block(s, " graph ", true)),
            area,
        );
        return;
    };
    let [head, body] = Split::vertical([Constraint::Length(3), Constraint::Min(0)]).areas(area);
    let r = &d.run;
    let env_gate = d.gates.iter().rev().find(|g| !g.env.contains('/'));
    let gate_note = match env_gate {
        Some(g) if g.status == GateStatus::Waiting => {
            format!(" · environment gate {} waiting (a approves)", g.env)
        }
        Some(g) => format!(" · environment gate {} {}", g.env, g.status),
        None => String::new(),
    };
    let dur = r
        .duration_ms(s.now)
        .map(duration)
        .unwrap_or_else(|| "-".into());
    let line = Line::from(vec![
        crate::tui::widgets::status::badge(
            crate::tui::widgets::status::run_look(r.status),
            r.status.as_str(),
            s.ascii,
            s.color,
        ),
        ratatui::text::Span::raw(format!(
            "  {} {} → {} · {dur}{gate_note}",
            r.operation.as_deref().unwrap_or("deploy"),
            r.service,
            r.branch
        )),
    ]);
    f.render_widget(
        Paragraph::new(line).block(block(s, format!(" infra run {} ", r.id), false)),
        head,
    );
    let Some((layout, steps)) = graph_of(s) else {
        f.render_widget(
            Paragraph::new("this run has no graph").block(block(s, " graph ", true)),
            body,
        );
        return;
    };
    let labels: Vec<Label> = d
        .graph
        .iter()
        .zip(&steps)
        .map(|(g, st)| {
            let waiting = d.gates.iter().any(|x| {
                (x.env.ends_with(&format!("/{}", g.id)) || x.env.contains(&format!("/{}/", g.id)))
                    && x.status == GateStatus::Waiting
            });
            let (status, color) = match st {
                Some(st) => {
                    let look = step_look(st.status);
                    let dur = match (st.started_at, st.ended_at) {
                        (Some(a), Some(b)) => format!(" {}", duration(b - a)),
                        (Some(a), None) => format!(" {}", duration(s.now.max(a) - a)),
                        _ => String::new(),
                    };
                    let sym = if s.ascii { look.ascii } else { look.symbol };
                    (
                        format!("{sym} {}{dur}", st.status.as_str().replace('_', " ")),
                        look.color,
                    )
                }
                None => ("?".into(), ratatui::style::Color::Reset),
            };
            Label {
                title: if waiting {
                    format!("{} [gate]", g.id)
                } else {
                    g.id.clone()
                },
                status,
                color,
            }
        })
        .collect();
    let sel = s.graph_sel.min(layout.nodes.len().saturating_sub(1));
    let canvas = dag_graph::draw(&layout, &labels, Some(sel), s.ascii, s.color);
    let inner_w = body.width.saturating_sub(2);
    let inner_h = body.height.saturating_sub(2);
    // Scroll so the selected box is in view.
    let p = layout.nodes[sel];
    let x0 = if p.x + BOX_W + 2 > inner_w {
        (p.x + BOX_W + 2).saturating_sub(inner_w)
    } else {
        0
    };
    let y0 = if p.y + BOX_H > inner_h {
        (p.y + BOX_H).saturating_sub(inner_h)
    } else {
        0
    };
    let title = format!(
        " {} resources · {} · enter: stack job · hjkl: move ",
        layout.nodes.len(),
        d.graph[sel].id
    );
    f.render_widget(
        Paragraph::new(canvas.lines(x0, y0, inner_w, inner_h, s.ascii))
            .block(block(s, title, true)),
        body,
    );
}
