//! Run detail: the stage → step/environment tree beside the selected step's log.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{List, ListItem, Paragraph, Wrap};

use super::{accent, block, duration, fit, selected};
use crate::domain::Stage;
use crate::tui::app::AppState;
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
    let msg = crate::domain::ansi::sanitize(&r.commit_message, false);
    let mut line = vec![
        badge(run_look(r.status), r.status.as_str(), s.ascii, s.color),
        Span::raw(format!(
            "  {}@{} {} {}  · {} · {} · {dur} · by {}",
            r.service,
            r.branch,
            &r.commit_sha[..r.commit_sha.len().min(7)],
            fit(&msg, 40),
            r.run_type,
            r.trigger,
            r.triggered_by
        )),
    ];
    if let Some(reason) = &r.reason {
        line.push(Span::raw(format!(" · {reason}")));
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
        let branch = match (st.stage == Stage::Operation, s.ascii) {
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
                    g.decided_by.as_deref().unwrap_or(""),
                    super::span(s.now - g.decided_at.unwrap_or(s.now)),
                )];
                v.extend(g.comment.as_ref().map(|c| format!(": {c}")));
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
        for n in notes {
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
