//! The run detail's log pane and its keys: follow, scroll through a window of lines
//! held in memory (the rest is read from the store through effects), search.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};

use super::block;
use crate::tui::action::Effect;
use crate::tui::app::{AppState, LOG_WINDOW, SearchFrom};
use crate::tui::widgets::log_pane::styled_line;

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
pub fn follow(s: &mut AppState) -> Option<Effect> {
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

/// `n`/`N`: the next (or previous) line matching the search, in the whole log.
pub fn next_match(s: &mut AppState, forward: bool) -> Option<Effect> {
    let from = if forward {
        SearchFrom::After
    } else {
        SearchFrom::Before
    };
    s.log_search(from)
}

/// The line at the top of the pane right now.
pub fn current_top(s: &AppState) -> u64 {
    s.log_top()
}

/// Stops following and shows line `top` at the top (loading it when not held).
pub fn scroll_to(s: &mut AppState, top: u64) -> Option<Effect> {
    s.scroll_log_to(top)
}

pub fn render(f: &mut Frame, s: &AppState, area: Rect) {
    let step = s.selected_step();
    let lv = &s.log;
    let mode = if lv.follow {
        "following"
    } else {
        "paused (G/f follows)"
    };
    let searching = match &lv.searching {
        Some(n) => format!(" · searching the whole log for `{n}`…"),
        None => String::new(),
    };
    let title = match step {
        Some(st) => format!(
            " {}{} · {} lines · {mode}{}{}{searching} ",
            st.path(),
            st.slurm_job
                .map(|j| format!(" · slurm job {j}"))
                .unwrap_or_default(),
            lv.total.max(lv.first + lv.lines.len() as u64),
            if lv.wrap {
                " · wrap".to_string()
            } else if lv.col > 0 {
                format!(" · from column {}", lv.col + 1)
            } else {
                String::new()
            },
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
    let mut lines: Vec<Line> = lv
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
    if lv.wrap && lv.follow {
        // Following with wrapped lines: the newest line must show, so leave out
        // older lines until the wrapped rows fit the pane.
        let width = area.width.saturating_sub(2).max(1) as usize;
        let rows = |l: &Line| l.width().div_ceil(width).max(1);
        let mut used: usize = lines.iter().map(rows).sum();
        while used > inner_h && lines.len() > 1 {
            used -= rows(&lines.remove(0));
        }
    }
    let empty = lines.is_empty();
    let mut p = Paragraph::new(lines).block(b);
    if lv.wrap {
        p = p.wrap(Wrap { trim: false });
    } else if lv.col > 0 {
        p = p.scroll((0, lv.col));
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
