//! The banner under the title bar: what an operator must know about the engine now.
//! A broken edit of the project file (its file:line error; the last good version
//! stays in force), and a data dir under its free-space floor (no new runs).

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::Paragraph;

use super::fit;
use crate::domain::ansi::inert;
use crate::domain::bytes::format_bytes;
use crate::tui::app::AppState;

/// The banner's lines (none: no banner).
fn lines(s: &AppState) -> Vec<String> {
    let Some(st) = &s.engine_status else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if let Some(e) = &st.error {
        let mut parts = e.lines();
        let first = parts.next().unwrap_or_default();
        out.push(format!(" ⚠ project file not reloaded: {}", inert(first)));
        let hint = parts
            .find(|l| !l.trim().is_empty())
            .map(|h| format!(" · {}", inert(h.trim())))
            .unwrap_or_default();
        out.push(format!("   the last good version stays in force{hint}"));
    }
    if let Some(d) = &st.disk
        && d.under_floor()
        && let (Some(free), Some(floor)) = (d.free_bytes, d.min_free)
    {
        out.push(format!(
            " ⚠ no new runs: the data dir's disk has {} free, under min_free {} ([retention]); free space (pipedeck gc) or lower the floor",
            format_bytes(free),
            format_bytes(floor)
        ));
    }
    if s.ascii {
        out = out.into_iter().map(|l| l.replace('⚠', "!")).collect();
    }
    out
}

/// Rows the banner takes.
pub fn height(s: &AppState) -> u16 {
    lines(s).len() as u16
}

pub fn render(f: &mut Frame, s: &AppState, area: Rect) {
    let style = if s.color {
        Style::new()
            .fg(Color::White)
            .bg(Color::Red)
            .add_modifier(Modifier::BOLD)
    } else {
        Style::new().add_modifier(Modifier::REVERSED)
    };
    let w = area.width as usize;
    let text: Vec<Line> = lines(s)
        .into_iter()
        .map(|l| {
            let l = fit(&l, w);
            let pad = w.saturating_sub(l.chars().count());
            Line::styled(format!("{l}{}", " ".repeat(pad)), style)
        })
        .collect();
    f.render_widget(Paragraph::new(text), area);
}
