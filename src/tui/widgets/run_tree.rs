//! The run tree as `tui-tree-widget` items: a section per stage, a row per step,
//! environment or resource (its notes dimmed under it: gate decisions, queue, outputs,
//! why it was skipped), a resource's stack-job operations under it. Status glyphs
//! fall back to ASCII.

use crate::domain::ansi::inert;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span, Text};
use tui_tree_widget::TreeItem;

use crate::domain::{EnvQueue, GateInfo, Millis, RunDetail, Stage, StepInfo, StepStatus};
use crate::tui::app::{NodeId, sections};
use crate::tui::views::fit;
use crate::tui::widgets::status::{Look, step_look};

/// What the items are drawn with.
pub struct TreeLook<'a> {
    pub ascii: bool,
    pub color: bool,
    pub now: Millis,
    /// Columns inside the tree's border.
    pub width: u16,
    pub accent: Style,
    /// Deploy queues (their summary goes under each environment).
    pub queues: &'a [EnvQueue],
}

/// The symbols before a node with children: open, closed, leaf.
pub fn node_symbols(ascii: bool) -> (&'static str, &'static str, &'static str) {
    if ascii {
        // Bracketed: a bare `+`, `-` or `>` is a status glyph in ASCII.
        ("[-] ", "[+] ", "    ")
    } else {
        ("▾ ", "▸ ", "  ")
    }
}

/// `3.0s`, or the time so far for a step still going.
fn step_duration(st: &StepInfo, now: Millis) -> String {
    match (st.started_at, st.ended_at) {
        (Some(a), Some(b)) => crate::domain::format_duration(b - a),
        (Some(a), None) => crate::domain::format_duration(now.max(a) - a),
        _ => String::new(),
    }
}

/// The status a section shows: the most pressing of its steps.
fn section_status(steps: &[&StepInfo]) -> StepStatus {
    use StepStatus::*;
    for s in [
        Failed,
        Running,
        AwaitingApproval,
        Interrupted,
        Cancelled,
        Rejected,
    ] {
        if steps.iter().any(|x| x.status == s) {
            return s;
        }
    }
    if !steps.is_empty() && steps.iter().all(|x| x.status == Succeeded) {
        Succeeded
    } else if steps.iter().any(|x| x.status == Queued) {
        Queued
    } else if steps.iter().any(|x| x.status == Succeeded) {
        Running
    } else {
        Pending
    }
}

fn glyph(look: Look, lk: &TreeLook) -> Span<'static> {
    let sym = if lk.ascii { look.ascii } else { look.symbol };
    let style = if lk.color {
        Style::new().fg(look.color)
    } else {
        Style::new()
    };
    Span::styled(sym, style)
}

/// The dimmed lines under a step: its Slurm job, then its gate, its reason, its
/// outputs or plan summary.
fn notes(d: &RunDetail, st: &StepInfo, now: Millis) -> Vec<String> {
    let job = st.slurm_job.map(|j| format!("slurm job {j}"));
    job.into_iter().chain(more_notes(d, st, now)).collect()
}

fn more_notes(d: &RunDetail, st: &StepInfo, now: Millis) -> Vec<String> {
    let gate: Option<&GateInfo> = d
        .gates
        .iter()
        .rev()
        .find(|g| st.stage == Stage::Deploy && g.env == st.name);
    match gate {
        Some(g) if g.decided_by.is_some() => {
            let mut v = vec![format!(
                "gate {} by {}, {} ago",
                g.status,
                inert(g.decided_by.as_deref().unwrap_or("")),
                crate::tui::views::span(now - g.decided_at.unwrap_or(now)),
            )];
            v.extend(g.comment.as_ref().map(|c| format!(": {}", inert(c))));
            v
        }
        Some(g) => vec![format!(
            "gate waiting {}",
            crate::tui::views::span(now - g.opened_at)
        )],
        None => {
            let mut v: Vec<String> = st.reason.iter().map(|r| inert(r)).collect();
            if st.stage == Stage::Operation
                && let Some(summary) = st.outputs.as_ref().filter(|o| o.get("add").is_some())
            {
                // A preview's plan summary.
                v.push(crate::engine::executor::terraform::summary_line(summary));
            } else if let Some(serde_json::Value::Object(o)) = &st.outputs {
                let kv: Vec<String> = o
                    .iter()
                    .map(|(k, v)| match v {
                        serde_json::Value::String(s) => format!("{k}={s}"),
                        other => format!("{k}={other}"),
                    })
                    .collect();
                if !kv.is_empty() {
                    // Outputs are a step's own text: inert like its log.
                    v.push(inert(&format!("out: {}", kv.join(" "))));
                }
            }
            v
        }
    }
}

/// One step's item text: glyph, name, duration, then its notes.
fn step_text(d: &RunDetail, st: &StepInfo, depth: usize, lk: &TreeLook) -> Text<'static> {
    // The selection mark, the indent, the node symbol, then the text.
    let symbol = if lk.ascii { 4 } else { 2 };
    let w = (lk.width as usize).saturating_sub(1 + depth * 2 + symbol);
    let dur = step_duration(st, lk.now);
    let shown = match st.stage {
        Stage::Operation => st.name.rsplit('.').next().unwrap_or(&st.name),
        _ => st.name.as_str(),
    };
    let name_w = w.saturating_sub(dur.chars().count() + 3);
    let mut lines = vec![Line::from(vec![
        glyph(step_look(st.status), lk),
        Span::raw(format!(" {:<name_w$} {dur}", fit(&inert(shown), name_w))),
    ])];
    // The environment's queue, a state a line: the tree is narrow.
    let queue: Vec<String> = (st.stage == Stage::Deploy)
        .then(|| {
            let key = crate::domain::QueueKey {
                service: d.run.service.clone(),
                env: st.name.clone(),
            };
            lk.queues.iter().find(|q| q.key == key)
        })
        .flatten()
        .map(|q| q.summary())
        .unwrap_or_default()
        .split(" · ")
        .filter(|part| !part.is_empty())
        .enumerate()
        .map(|(i, part)| format!("{}{part}", if i == 0 { "queue: " } else { "       " }))
        .collect();
    for n in notes(d, st, lk.now).into_iter().chain(queue) {
        lines.push(Line::from(Span::styled(
            format!("  {}", fit(&n, w.saturating_sub(2))),
            Style::new().add_modifier(Modifier::DIM),
        )));
    }
    Text::from(lines)
}

fn section_name(st: Stage) -> &'static str {
    match st {
        Stage::Resource | Stage::Operation => "resources",
        other => other.as_str(),
    }
}

/// The tree's items for run `d`.
pub fn items(d: &RunDetail, lk: &TreeLook) -> Vec<TreeItem<'static, NodeId>> {
    let mut out = Vec::new();
    for (section, steps) in sections(d) {
        let mut children = Vec::new();
        let mut all: Vec<&StepInfo> = Vec::new();
        for (i, ops) in steps {
            let st = &d.steps[i];
            all.push(st);
            let text = step_text(d, st, 1, lk);
            let leaves: Vec<TreeItem<'static, NodeId>> = ops
                .iter()
                .map(|&o| {
                    let op = &d.steps[o];
                    TreeItem::new_leaf(NodeId::Step(op.id), step_text(d, op, 2, lk))
                })
                .collect();
            let item = if leaves.is_empty() {
                Some(TreeItem::new_leaf(NodeId::Step(st.id), text))
            } else {
                TreeItem::new(NodeId::Step(st.id), text, leaves).ok()
            };
            children.extend(item);
        }
        let title = Line::from(vec![
            glyph(step_look(section_status(&all)), lk),
            Span::styled(
                format!(" {} ({})", section_name(section), all.len()),
                lk.accent,
            ),
        ]);
        // Identifiers are unique by construction (step ids, one section each).
        if let Ok(item) = TreeItem::new(NodeId::Section(section), title, children) {
            out.push(item);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(status: StepStatus) -> StepInfo {
        StepInfo {
            name: "x".into(),
            position: 0,
            ..StepInfo::sample(1, 1, status)
        }
    }

    #[test]
    fn a_section_shows_its_most_pressing_status() {
        use StepStatus::*;
        let s = |v: &[StepStatus]| {
            let steps: Vec<StepInfo> = v.iter().map(|&x| st(x)).collect();
            section_status(&steps.iter().collect::<Vec<_>>())
        };
        assert_eq!(s(&[Succeeded, Failed, Running]), Failed);
        assert_eq!(s(&[Succeeded, Running]), Running);
        assert_eq!(s(&[Succeeded, Succeeded]), Succeeded);
        assert_eq!(s(&[Succeeded, Pending]), Running);
        assert_eq!(s(&[Pending, Pending]), Pending);
        assert_eq!(s(&[]), Pending);
    }
}
