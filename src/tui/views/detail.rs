//! Run detail and its keys: the run tree (stages, steps, environments, resources and
//! their stack-job operations; collapsible) beside the log of the selected step
//! ([`super::log`]).

use crate::domain::ansi::inert;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use tui_tree_widget::{Tree, TreeState};

use super::log::{current_top, follow, next_match, scroll_to};
use super::{accent, block, dialogs, duration, fit, selected};
use crate::domain::{RunDetail, RunKind, Stage, StepStatus};
use crate::tui::action::{Action, Effect};
use crate::tui::app::{AppState, NodeId, View, nodes};
use crate::tui::widgets::run_tree::{TreeLook, node_symbols};
use crate::tui::widgets::status::{badge, run_look};

/// Columns `<` and `>` scroll long lines sideways.
pub const SIDEWAYS: u16 = 8;

/// The run detail's keys.
pub fn update(s: &mut AppState, a: Action) -> Option<Effect> {
    match a {
        Action::Back => {
            let infra = s
                .detail
                .as_ref()
                .is_some_and(|d| d.run.kind == RunKind::Infra && !d.graph.is_empty());
            s.view = if infra { View::Graph } else { View::Runs };
            None
        }
        Action::Up => s.tree_move(-1),
        Action::Down => s.tree_move(1),
        Action::Left => s.tree_left(),
        Action::Right => s.tree_right(),
        Action::Toggle => s.tree_toggle(),
        Action::Top => scroll_to(s, 0),
        Action::Bottom | Action::Follow => follow(s),
        Action::PageUp => {
            let h = s.log_rows() as u64;
            let top = current_top(s).saturating_sub(h);
            scroll_to(s, top)
        }
        Action::PageDown => {
            if s.log.follow {
                return None;
            }
            let h = s.log_rows() as u64;
            let top = s.log.top + h;
            if top + h >= s.log.total {
                return follow(s);
            }
            scroll_to(s, top)
        }
        Action::Wrap => {
            s.log.wrap = !s.log.wrap;
            s.log.col = 0;
            s.info(if s.log.wrap {
                "long lines wrap (W cuts them; then < and > scroll sideways)"
            } else {
                "long lines are cut: < and > scroll sideways (W wraps)"
            });
            None
        }
        Action::ScrollLeft | Action::ScrollRight => {
            if s.log.wrap {
                s.error("lines wrap: nothing to scroll sideways (W cuts them)");
                return None;
            }
            s.log.col = if a == Action::ScrollRight {
                s.log.col.saturating_add(SIDEWAYS)
            } else {
                s.log.col.saturating_sub(SIDEWAYS)
            };
            None
        }
        Action::WriteLog => {
            let step = s.selected_step()?;
            let (run, step, what) = (step.run_id, step.id, step.path());
            let top = current_top(s);
            let end = (top + s.log_rows() as u64).min(s.log.total.max(top + 1));
            s.dialog = Some(crate::tui::app::Dialog::WriteLog {
                run,
                step,
                what,
                input: format!("{}-{end}", top + 1),
            });
            None
        }
        Action::Timestamps => {
            s.log.timestamps = !s.log.timestamps;
            None
        }
        Action::StreamMarker => {
            s.log.streams = !s.log.streams;
            None
        }
        Action::NextMatch | Action::PrevMatch => next_match(s, a == Action::NextMatch),
        Action::Cancel => {
            let (id, st) = s.detail.as_ref().map(|d| (d.run.id, d.run.status))?;
            dialogs::confirm_cancel(s, id, st);
            None
        }
        Action::Rerun => {
            let id = s.detail.as_ref()?.run.id;
            dialogs::confirm_rerun(s, id);
            None
        }
        Action::Approve | Action::Reject => {
            let Some(g) = s.waiting_gate_in_detail() else {
                s.error("no gate is waiting in this run");
                return None;
            };
            let (run, env) = (g.run_id, g.env.clone());
            s.open_decision(run, env, a)
        }
        _ => None,
    }
}

pub fn render(f: &mut Frame, s: &AppState, area: Rect) {
    let Some(d) = &s.detail else {
        f.render_widget(
            Paragraph::new("loading…").block(block(s, " run ", true)),
            area,
        );
        return;
    };
    let r = &d.run;
    let stack_job = r.kind == RunKind::StackJob;
    let head_h = if stack_job { 4 } else { 3 };
    let [head, body] =
        Layout::vertical([Constraint::Length(head_h), Constraint::Min(0)]).areas(area);
    let dur = r
        .duration_ms(s.now)
        .map(duration)
        .unwrap_or_else(|| "-".into());
    let msg = inert(&r.commit_message);
    let what = if stack_job {
        format!(
            "{} in {}@{}",
            inert(&r.what()),
            inert(&r.service),
            inert(r.place())
        )
    } else if r.kind == RunKind::Rollout {
        // `rollout of release 3 · web@main a1b2c3d · production · chain`
        format!(
            "{} · {}@{} {} · {} · {}",
            inert(&r.what()),
            inert(&r.service),
            inert(r.place()),
            inert(&r.commit_sha[..r.commit_sha.len().min(7)]),
            r.run_type,
            r.trigger,
        )
    } else {
        format!(
            "{}@{} {} {}  · {} · {}",
            inert(&r.service),
            inert(r.place()),
            inert(&r.commit_sha[..r.commit_sha.len().min(7)]),
            fit(&msg, 40),
            r.run_type,
            r.trigger,
        )
    };
    let mut line = vec![
        badge(run_look(r.status), r.status.as_str(), s.ascii, s.color),
        Span::raw(format!("  {what} · {dur} · by {}", inert(&r.triggered_by))),
    ];
    if let Some(reason) = &r.reason {
        line.push(Span::raw(format!(" · {}", inert(reason))));
    }
    let mut lines = vec![Line::from(line)];
    if stack_job {
        // A state lock that stopped the job comes first: who holds it, how to free it.
        let first = lock_reason(d)
            .or_else(|| plan_summary(d))
            .unwrap_or_else(|| "plan: not yet".into());
        lines.push(Line::from(vec![
            Span::raw(first),
            Span::styled(
                "  · a: resume (apply the reviewed plan) · c: cancel · r: rerun",
                accent(s),
            ),
        ]));
    }
    let title = format!(
        " {} {}{} ",
        if stack_job { "stack job" } else { "run" },
        r.id,
        if r.attempt > 1 {
            format!(" (attempt {})", r.attempt)
        } else {
            String::new()
        }
    );
    f.render_widget(Paragraph::new(lines).block(block(s, title, false)), head);

    let tree_w = (body.width / 3).clamp(30, 48);
    let [left, right] =
        Layout::horizontal([Constraint::Length(tree_w), Constraint::Min(0)]).areas(body);
    tree(f, s, left);
    match s.tree.selected.last() {
        Some(NodeId::Section(stage)) => section_summary(f, s, *stage, right),
        _ => super::log::render(f, s, right),
    }
}

/// Why an operation failed on a state lock (the holder and how an admin frees it).
fn lock_reason(d: &RunDetail) -> Option<String> {
    d.steps
        .iter()
        .filter(|st| st.stage == Stage::Operation)
        .filter_map(|st| st.reason.as_deref())
        .find(|r| r.starts_with(crate::domain::state_lock::LOCKED))
        .map(inert)
}

/// The plan summary of a stack job's preview (`plan: 1 to add, …`), once it ran.
fn plan_summary(d: &RunDetail) -> Option<String> {
    d.steps
        .iter()
        .rev()
        .filter(|st| st.stage == Stage::Operation)
        .find_map(|st| st.outputs.as_ref().filter(|o| o.get("add").is_some()))
        .map(crate::engine::executor::terraform::summary_line)
}

/// A click on a node of the run tree (as last drawn) selects it.
pub fn click(s: &mut AppState, col: u16, row: u16) -> Option<Effect> {
    let path = {
        let st = s.tree.widget.try_borrow().ok()?;
        st.rendered_at(ratatui::layout::Position::new(col, row))?
            .to_vec()
    };
    s.tree.selected = path;
    s.select_step()
}

/// The run tree, drawn by `tui-tree-widget` with the operator's choices applied.
fn tree(f: &mut Frame, s: &AppState, area: Rect) {
    let Some(d) = &s.detail else { return };
    let look = TreeLook {
        ascii: s.ascii,
        color: s.color,
        now: s.now,
        width: area.width.saturating_sub(2),
        accent: accent(s),
        queues: &s.queues,
    };
    let items = s.tree_items(&look);
    let (open, closed, leaf) = node_symbols(s.ascii);
    let Ok(widget) = Tree::new(&items) else {
        return;
    };
    let widget = widget
        .block(block(s, " run tree (h/l/space) ", false))
        .highlight_style(selected(s))
        .highlight_symbol(if s.ascii { "*" } else { "›" })
        .node_open_symbol(open)
        .node_closed_symbol(closed)
        .node_no_children_symbol(leaf);
    // The widget keeps its scroll offset between frames; a fresh state otherwise.
    let mut fresh = TreeState::default();
    let mut kept = s.tree.widget.try_borrow_mut();
    let state = match kept.as_deref_mut() {
        Ok(st) => st,
        Err(_) => &mut fresh,
    };
    state.close_all();
    for n in nodes(d) {
        if n.children && !s.tree.closed.contains(&n.path) {
            state.open(n.path);
        }
    }
    state.select(s.tree.selected.clone());
    f.render_stateful_widget(widget, area, state);
}

/// A section selected: what its steps did, in place of a log.
fn section_summary(f: &mut Frame, s: &AppState, stage: crate::domain::Stage, area: Rect) {
    let Some(d) = &s.detail else { return };
    let steps: Vec<_> = d
        .steps
        .iter()
        .filter(|st| crate::tui::app::section_of(st.stage) == stage)
        .collect();
    let mut counts: Vec<(StepStatus, usize)> = Vec::new();
    for st in &steps {
        match counts.iter_mut().find(|(k, _)| *k == st.status) {
            Some((_, n)) => *n += 1,
            None => counts.push((st.status, 1)),
        }
    }
    let mut lines = vec![Line::from(format!(
        "{} steps: {}",
        steps.len(),
        counts
            .iter()
            .map(|(k, n)| format!("{n} {}", k.as_str().replace('_', " ")))
            .collect::<Vec<_>>()
            .join(", ")
    ))];
    lines.push(Line::from(""));
    lines.push(Line::styled(
        "select a step (j/k, l) to see its log; h/space collapses this section",
        accent(s),
    ));
    let title = format!(" {stage} ");
    f.render_widget(Paragraph::new(lines).block(block(s, title, true)), area);
}
