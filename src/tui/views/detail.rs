//! Run detail and its keys: the stage → step/environment tree beside the selected
//! step's log, which scrolls through a window of lines held in memory and loads the
//! rest from the store (through effects) as it moves.

use crate::domain::ansi::inert;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{List, ListItem, Paragraph, Wrap};

use super::{accent, block, dialogs, duration, fit, selected};
use crate::domain::Stage;
use crate::tui::action::{Action, Effect};
use crate::tui::app::{AppState, LOG_WINDOW, View};

/// The run detail's keys.
pub fn update(s: &mut AppState, a: Action) -> Option<Effect> {
    match a {
        Action::Back => {
            let infra = s.detail.as_ref().is_some_and(|d| !d.graph.is_empty());
            s.view = if infra { View::Graph } else { View::Runs };
            None
        }
        Action::Up => {
            s.detail_sel = s.detail_sel.saturating_sub(1);
            s.select_step()
        }
        Action::Down => {
            let n = s.detail.as_ref().map_or(0, |d| d.steps.len());
            s.detail_sel = (s.detail_sel + 1).min(n.saturating_sub(1));
            s.select_step()
        }
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
            s.dialog = Some(dialogs::decide(g.run_id, g.env.clone(), a));
            None
        }
        _ => None,
    }
}

/// Typing into the log search (`/`).
pub fn edit_search(s: &mut AppState, f: impl FnOnce(&mut String)) {
    f(s.log.search.get_or_insert_with(String::new));
}

/// The mouse wheel over the log: `lines` down (up when negative).
pub fn scroll(s: &mut AppState, lines: i64) -> Option<Effect> {
    let top = current_top(s);
    let end = s.log.first + s.log.lines.len() as u64;
    if lines > 0 && top + s.log_rows() as u64 + lines as u64 >= end.max(s.log.total) {
        return follow(s);
    }
    scroll_to(s, top.saturating_add_signed(lines))
}

/// Follows the log from its newest lines, loading them when they are not held.
fn follow(s: &mut AppState) -> Option<Effect> {
    s.log.follow = true;
    s.log.top = 0;
    let have = s.log.first + s.log.lines.len() as u64;
    if have < s.log.total || s.log.lines.is_empty() {
        // Jump to the tail of the log.
        let run = s.detail.as_ref()?.run.id;
        let step = s.log.step?;
        let from = s.log.total.saturating_sub(LOG_WINDOW as u64);
        s.log.loading = true;
        return Some(Effect::LoadLogs {
            run,
            step,
            from,
            limit: LOG_WINDOW,
        });
    }
    None
}

/// `n`/`N`: the next (or previous) line matching the search, in the loaded window.
fn next_match(s: &mut AppState, forward: bool) -> Option<Effect> {
    let needle = s.log.search.clone().filter(|n| !n.is_empty())?;
    let top = current_top(s);
    let hit = s
        .log
        .lines
        .iter()
        .filter(|l| l.text.contains(&needle))
        .map(|l| l.n)
        .filter(|&n| if forward { n > top } else { n < top });
    let hit = if forward { hit.min() } else { hit.max() };
    match hit {
        Some(n) => scroll_to(s, n),
        None => {
            s.info(format!(
                "no more matches for `{needle}` in the loaded window"
            ));
            None
        }
    }
}

/// The line at the top of the pane right now.
fn current_top(s: &AppState) -> u64 {
    if s.log.follow {
        let end = s.log.first + s.log.lines.len() as u64;
        end.saturating_sub(s.log_rows() as u64)
    } else {
        s.log.top
    }
}

/// Stops following and shows line `top` at the top, loading from the store when it is
/// outside the window held in memory.
fn scroll_to(s: &mut AppState, top: u64) -> Option<Effect> {
    s.log.follow = false;
    s.log.top = top;
    let end = s.log.first + s.log.lines.len() as u64;
    let h = s.log_rows() as u64;
    let inside = top >= s.log.first && (top + h <= end || end >= s.log.total);
    if inside {
        return None;
    }
    let run = s.detail.as_ref()?.run.id;
    let step = s.log.step?;
    let from = top.saturating_sub((LOG_WINDOW / 2) as u64);
    s.log.loading = true;
    Some(Effect::LoadLogs {
        run,
        step,
        from,
        limit: LOG_WINDOW,
    })
}
use crate::tui::widgets::log_pane::styled_line;
use crate::tui::widgets::status::{badge, run_look, step_look};

pub fn render(f: &mut Frame, s: &AppState, area: Rect) {
    let Some(d) = &s.detail else {
        f.render_widget(
            Paragraph::new("loading…").block(block(s, " run ", true)),
            area,
        );
        return;
    };
    let r = &d.run;
    let [head, body] = Layout::vertical([Constraint::Length(3), Constraint::Min(0)]).areas(area);
    let dur = r
        .duration_ms(s.now)
        .map(duration)
        .unwrap_or_else(|| "-".into());
    let msg = inert(&r.commit_message);
    let mut line = vec![
        badge(run_look(r.status), r.status.as_str(), s.ascii, s.color),
        Span::raw(format!(
            "  {}@{} {} {}  · {} · {} · {dur} · by {}",
            inert(&r.service),
            inert(r.place()),
            inert(&r.commit_sha[..r.commit_sha.len().min(7)]),
            fit(&msg, 40),
            r.run_type,
            r.trigger,
            inert(&r.triggered_by)
        )),
    ];
    if let Some(reason) = &r.reason {
        line.push(Span::raw(format!(" · {}", inert(reason))));
    }
    let title = format!(
        " run {}{} ",
        r.id,
        if r.attempt > 1 {
            format!(" (attempt {})", r.attempt)
        } else {
            String::new()
        }
    );
    f.render_widget(
        Paragraph::new(Line::from(line)).block(block(s, title, false)),
        head,
    );

    let tree_w = (body.width / 3).clamp(30, 48);
    let [left, right] =
        Layout::horizontal([Constraint::Length(tree_w), Constraint::Min(0)]).areas(body);
    // The tree: stage headers, then their steps; the selection is over steps.
    let mut items = Vec::new();
    let mut sel_row = 0;
    let mut last_stage = None;
    for (i, st) in d.steps.iter().enumerate() {
        // Operations sit under their resource, inside the resources section.
        let section = match st.stage {
            Stage::Operation => Stage::Resource,
            Stage::Verify => Stage::Deploy,
            other => other,
        };
        if last_stage != Some(section) {
            let name = match section {
                Stage::Resource => "resources",
                other => other.as_str(),
            };
            items.push(ListItem::new(Line::from(Span::styled(name, accent(s)))));
            last_stage = Some(section);
        }
        if i == s.detail_sel {
            sel_row = items.len();
        }
        let dur = match (st.started_at, st.ended_at) {
            (Some(a), Some(b)) => duration(b - a),
            (Some(a), None) => duration(s.now.max(a) - a),
            _ => String::new(),
        };
        let branch = match (
            matches!(st.stage, Stage::Operation | Stage::Verify),
            s.ascii,
        ) {
            (true, true) => "   `-",
            (true, false) => "   └",
            (false, true) => "`-",
            (false, false) => "└",
        };
        let shown_name = match st.stage {
            Stage::Operation => st.name.rsplit('.').next().unwrap_or(&st.name),
            _ => st.name.as_str(),
        };
        let look = step_look(st.status);
        let sym = if s.ascii { look.ascii } else { look.symbol };
        let sym_style = if s.color {
            Style::new().fg(look.color)
        } else {
            Style::new()
        };
        let w = tree_w.saturating_sub(4) as usize;
        let name_w = w.saturating_sub(dur.len() + 3 + branch.chars().count());
        let mut lines = vec![Line::from(vec![
            Span::raw(format!("{branch} ")),
            Span::styled(sym, sym_style),
            Span::raw(format!(" {:<name_w$} {dur}", fit(shown_name, name_w))),
        ])];
        let gate = d
            .gates
            .iter()
            .rev()
            .find(|g| st.stage == Stage::Deploy && g.env == st.name);
        let notes: Vec<String> = match gate {
            Some(g) if g.decided_by.is_some() => {
                let mut v = vec![format!(
                    "gate {} by {}, {} ago",
                    g.status,
                    inert(g.decided_by.as_deref().unwrap_or("")),
                    super::span(s.now - g.decided_at.unwrap_or(s.now)),
                )];
                v.extend(g.comment.as_ref().map(|c| format!(": {}", inert(c))));
                v
            }
            Some(g) => vec![format!("gate waiting {}", super::span(s.now - g.opened_at))],
            None => {
                let mut v: Vec<String> = st.reason.iter().cloned().collect();
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
                        v.push(format!("out: {}", kv.join(" ")));
                    }
                }
                v
            }
        };
        // The environment's queue, a state a line: the tree is narrow.
        let queue: Vec<String> = (st.stage == Stage::Deploy)
            .then(|| s.queue(&r.service, &st.name))
            .flatten()
            .map(|q| q.summary())
            .unwrap_or_default()
            .split(" · ")
            .filter(|part| !part.is_empty())
            .enumerate()
            .map(|(i, part)| format!("{}{part}", if i == 0 { "queue: " } else { "       " }))
            .collect();
        for n in notes.into_iter().chain(queue) {
            lines.push(Line::from(Span::styled(
                format!("    {}", fit(&n, w)),
                Style::new().add_modifier(Modifier::DIM),
            )));
        }
        let item = ListItem::new(lines);
        items.push(if i == s.detail_sel {
            item.style(selected(s))
        } else {
            item
        });
    }
    let h = left.height.saturating_sub(2) as usize;
    let skip = sel_row.saturating_sub(h.saturating_sub(2));
    let items: Vec<ListItem> = items.into_iter().skip(skip).collect();
    f.render_widget(List::new(items).block(block(s, " stages ", false)), left);
    log_pane(f, s, right);
}

fn log_pane(f: &mut Frame, s: &AppState, area: Rect) {
    let step = s.selected_step();
    let lv = &s.log;
    let mode = if lv.follow {
        "following"
    } else {
        "paused (G/f follows)"
    };
    let title = match step {
        Some(st) => format!(
            " {} · {} lines · {mode}{}{} ",
            st.path(),
            lv.total.max(lv.first + lv.lines.len() as u64),
            if lv.wrap { " · wrap" } else { "" },
            lv.search
                .as_deref()
                .filter(|x| !x.is_empty())
                .map(|x| format!(" · /{x}"))
                .unwrap_or_default()
        ),
        None => " log ".to_string(),
    };
    let b = block(s, title.clone(), true);
    let inner_h = area.height.saturating_sub(2) as usize;
    let end = lv.first + lv.lines.len() as u64;
    let top = if lv.follow {
        end.saturating_sub(inner_h as u64)
    } else {
        lv.top
    };
    let start = top.saturating_sub(lv.first) as usize;
    let lines: Vec<Line> = lv
        .lines
        .iter()
        .skip(start)
        .take(inner_h)
        .map(|l| {
            let mut prefix = Vec::new();
            if lv.timestamps {
                let secs = (l.ts / 1000) % 86400;
                prefix.push(Span::styled(
                    format!(
                        "{:02}:{:02}:{:02}.{:03} ",
                        secs / 3600,
                        (secs / 60) % 60,
                        secs % 60,
                        l.ts % 1000
                    ),
                    Style::new().add_modifier(Modifier::DIM),
                ));
            }
            if lv.streams {
                prefix.push(Span::styled(
                    format!("{} ", l.stream),
                    Style::new().add_modifier(Modifier::DIM),
                ));
            }
            let mut line = styled_line(&l.text, s.color, lv.search.as_deref());
            prefix.append(&mut line.spans);
            Line::from(prefix)
        })
        .collect();
    let empty = lines.is_empty();
    let mut p = Paragraph::new(lines).block(b);
    if lv.wrap {
        p = p.wrap(Wrap { trim: false });
    }
    if empty {
        let text = match step {
            Some(st) if st.started_at.is_none() => format!(
                "{} has not started: {}",
                st.path(),
                st.status.as_str().replace('_', " ")
            ),
            Some(_) if lv.loading => "loading…".to_string(),
            Some(_) => "(no output)".to_string(),
            None => String::new(),
        };
        p = Paragraph::new(text).block(block(s, title, true));
    }
    f.render_widget(p, area);
}
