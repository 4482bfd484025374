//! The infra DAG view (IP-8) and its keys: live boxes and edges, the selected node kept
//! in view. The layout is computed when the run's graph changes (see
//! [`AppState::graph_layout`]); a frame draws only the boxes and edges in the window,
//! each box showing the status the engine reported for its resource.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout as Split, Rect};
use ratatui::style::Color;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::{block, dialogs, duration};
use crate::domain::ansi::inert;
use crate::domain::{GateInfo, GateStatus, RunDetail, Stage, StepInfo};
use crate::tui::action::{Action, Effect};
use crate::tui::app::{AppState, View};
use crate::tui::widgets::dag_graph::{self, BOX_H, BOX_W, Label, Window};
use crate::tui::widgets::status::{badge, run_look, step_look};

/// Whether gate key `env` belongs to graph node `node` (`env/node`, `env/node/op`).
fn gate_of_node(env: &str, node: &str) -> bool {
    env.ends_with(&format!("/{node}")) || env.contains(&format!("/{node}/"))
}

/// The resource step of graph node `i`, as the engine reported it.
fn resource_step(d: &RunDetail, i: usize) -> Option<&StepInfo> {
    let id = &d.graph.get(i)?.id;
    d.steps
        .iter()
        .find(|st| st.stage == Stage::Resource && st.name == *id)
}

/// The DAG view's keys.
pub fn update(s: &mut AppState, a: Action) -> Option<Effect> {
    match a {
        Action::Back => s.view = View::Runs,
        Action::Up | Action::Down | Action::Left | Action::Right => {
            let layout = s.graph_layout()?;
            let (dx, dy) = match a {
                Action::Left => (-1, 0),
                Action::Right => (1, 0),
                Action::Up => (0, -1),
                _ => (0, 1),
            };
            if let Some(n) = layout.neighbour(s.graph_sel, dx, dy) {
                s.graph_sel = n;
            }
        }
        Action::Enter => {
            // Open the node's stack job on its latest operation.
            let d = s.detail.as_ref()?;
            let id = &d.graph.get(s.graph_sel)?.id;
            let resource = d
                .steps
                .iter()
                .position(|st| st.stage == Stage::Resource && st.name == *id)?;
            let rid = d.steps[resource].id;
            let step = d
                .steps
                .iter()
                .rfind(|st| st.parent_id == Some(rid) && st.started_at.is_some())
                .map_or(rid, |st| st.id);
            s.view = View::Detail;
            return s.select_step_id(step);
        }
        Action::StateOf => {
            let d = s.detail.as_ref()?;
            let node = d.graph.get(s.graph_sel)?.id.clone();
            let project = d.run.service.clone();
            return s.open_state(Some(project), node);
        }
        Action::Approve | Action::Reject => {
            let d = s.detail.as_ref()?;
            let node = d
                .graph
                .get(s.graph_sel)
                .map(|g| g.id.clone())
                .unwrap_or_default();
            let waiting: Vec<&GateInfo> = s.gates.iter().filter(|g| g.run_id == d.run.id).collect();
            let pick = waiting
                .iter()
                .find(|g| gate_of_node(&g.env, &node))
                .or_else(|| waiting.iter().find(|g| !g.env.contains('/')));
            let Some(g) = pick else {
                s.error(format!(
                    "no gate is waiting at {node} or before the environment"
                ));
                return None;
            };
            s.dialog = Some(dialogs::decide(g.run_id, g.env.clone(), a));
        }
        Action::Cancel => {
            let (id, st) = s.detail.as_ref().map(|d| (d.run.id, d.run.status))?;
            dialogs::confirm_cancel(s, id, st);
        }
        _ => {}
    }
    None
}

/// What node `i`'s box shows: its id (marked when a gate waits at it, or when its
/// latest drift check found it drifted) and the status of its resource step.
fn label(s: &AppState, d: &RunDetail, i: usize) -> Option<Label> {
    let g = d.graph.get(i)?;
    let waiting = d
        .gates
        .iter()
        .any(|x| gate_of_node(&x.env, &g.id) && x.status == GateStatus::Waiting);
    let drifted = s.drift.drifted(&d.run.service, &g.id).is_some();
    let (status, color) = match resource_step(d, i) {
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
        None => ("?".into(), Color::Reset),
    };
    let mut title = g.id.clone();
    if waiting {
        title.push_str(" [gate]");
    }
    if drifted {
        title.push_str(" [drift]");
    }
    Some(Label {
        title,
        status,
        color,
    })
}

/// The drifted resources of the run's pipeline, each with its plan summary
/// (`drift: db 0 to add, 1 to change, 0 to destroy (checked 5m ago)`), or nothing.
fn drift_line(s: &AppState, d: &RunDetail) -> Option<Line<'static>> {
    let drifted = s.drift.drifted_in(&d.run.service);
    let first = drifted.first()?;
    let list: Vec<String> = drifted
        .iter()
        .map(|r| {
            let plan = r
                .summary
                .as_ref()
                .map(|x| format!(" {}", crate::domain::drift::counts(x)))
                .unwrap_or_default();
            format!("{}{plan}", inert(&r.resource))
        })
        .collect();
    Some(Line::from(vec![
        Span::styled("drift: ", super::marker(s)),
        Span::raw(format!(
            "{} (checked {} ago; pipedeck infra drift {} checks again)",
            list.join(" · "),
            super::duration(s.now.saturating_sub(first.checked_at)),
            inert(&d.run.service)
        )),
    ]))
}

pub fn render(f: &mut Frame, s: &AppState, area: Rect) {
    let Some(d) = &s.detail else {
        f.render_widget(
            Paragraph::new("loading…").block(block(s, " graph ", true)),
            area,
        );
        return;
    };
    let drift = drift_line(s, d);
    let head_h = if drift.is_some() { 4 } else { 3 };
    let [head, body] =
        Split::vertical([Constraint::Length(head_h), Constraint::Min(0)]).areas(area);
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
        badge(run_look(r.status), r.status.as_str(), s.ascii, s.color),
        Span::raw(format!(
            "  {} {} → {} · {dur}{gate_note}",
            r.what(),
            r.service,
            r.place()
        )),
    ]);
    let lines: Vec<Line> = std::iter::once(line).chain(drift).collect();
    f.render_widget(
        Paragraph::new(lines).block(block(s, format!(" infra run {} ", r.id), false)),
        head,
    );
    let Some(layout) = s.graph_layout() else {
        f.render_widget(
            Paragraph::new("this run has no graph").block(block(s, " graph ", true)),
            body,
        );
        return;
    };
    let sel = s.graph_sel.min(layout.nodes.len().saturating_sub(1));
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
    let window = Window {
        x: x0,
        y: y0,
        w: inner_w,
        h: inner_h,
    };
    let canvas = dag_graph::draw_window(
        &layout,
        |i| label(s, d, i),
        Some(sel),
        s.ascii,
        s.color,
        window,
    );
    let title = format!(
        " {} resources · {} · enter: stack job · hjkl: move ",
        layout.nodes.len(),
        d.graph[sel].id
    );
    f.render_widget(
        Paragraph::new(canvas.lines(0, 0, inner_w, inner_h, s.ascii)).block(block(s, title, true)),
        body,
    );
}
