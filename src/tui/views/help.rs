//! The `?` help: every binding of the global scope and the view on screen, each with
//! its whole description (wrapped under itself, never cut), scrolling with j/k when
//! the window is too small to show it all.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::Line;
use ratatui::widgets::{Clear, Paragraph};

use super::dialogs::centered;
use super::{accent, block};
use crate::tui::action::Action;
use crate::tui::app::AppState;
use crate::tui::keymap::{Keymap, Scope, key_name, scope_name};

/// Width of the keys column.
const KEYS: usize = 12;

/// `text` in lines of at most `width` characters, broken at spaces (a word longer
/// than the width is cut into pieces).
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let width = width.max(1);
    let mut out = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        let mut word: Vec<char> = word.chars().collect();
        while word.len() > width {
            if !line.is_empty() {
                out.push(std::mem::take(&mut line));
            }
            out.push(word.drain(..width).collect());
        }
        let word: String = word.into_iter().collect();
        let need = line.chars().count() + usize::from(!line.is_empty()) + word.chars().count();
        if need > width && !line.is_empty() {
            out.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(&word);
    }
    if !line.is_empty() || out.is_empty() {
        out.push(line);
    }
    out
}

/// The help's lines for `width` columns of text.
pub fn lines(s: &AppState, km: &Keymap, width: usize) -> Vec<Line<'static>> {
    let mut lines = Vec::new();
    for scope in [Scope::Global, Scope::In(s.view)] {
        lines.push(Line::styled(format!("{}:", scope_name(scope)), accent(s)));
        // One entry per action, with every key bound to it.
        let mut seen: Vec<(Action, String, &str)> = Vec::new();
        for b in km.bindings.iter().filter(|b| b.scope == scope) {
            match seen.iter_mut().find(|(a, _, _)| *a == b.action) {
                Some((_, keys, _)) => {
                    keys.push(' ');
                    keys.push_str(&key_name(b));
                }
                None => seen.push((b.action, key_name(b), b.help)),
            }
        }
        for (_, keys, help) in seen {
            let text = wrap(help, width.saturating_sub(KEYS + 3));
            for (i, part) in text.into_iter().enumerate() {
                let k = if i == 0 { keys.as_str() } else { "" };
                lines.push(Line::from(format!("  {k:<KEYS$} {part}")));
            }
        }
    }
    lines
}

pub fn render(f: &mut Frame, s: &AppState, km: &Keymap, area: Rect) {
    let w = area.width.min(90);
    let inner_w = w.saturating_sub(2) as usize;
    let mut all = lines(s, km, inner_w);
    let rows = area.height.saturating_sub(3) as usize;
    let scrolls = all.len() > rows;
    let last_top = all.len().saturating_sub(rows);
    let top = (s.help_top as usize).min(last_top);
    let foot = if scrolls {
        format!(
            "rows {}-{} of {} · j/k scroll · any other key closes",
            top + 1,
            (top + rows).min(all.len()),
            all.len()
        )
    } else {
        "any key closes this help".to_string()
    };
    let shown: Vec<Line> = all.drain(top..(top + rows).min(all.len())).collect();
    let h = shown.len() as u16 + 3;
    let r = centered(area, w, h);
    f.render_widget(Clear, r);
    let mut text = shown;
    text.push(Line::styled(foot, accent(s)));
    f.render_widget(Paragraph::new(text).block(block(s, " keys ", true)), r);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapping_keeps_every_word() {
        assert_eq!(
            wrap("collapse the node, or go to its parent", 16),
            ["collapse the", "node, or go to", "its parent"]
        );
        assert_eq!(wrap("abcdefghij", 4), ["abcd", "efgh", "ij"]);
        assert_eq!(wrap("", 4), [""]);
    }

    #[test]
    fn no_description_is_cut() {
        let s = AppState::new(vec![], false, "/d".into());
        let km = Keymap::default();
        let text: String = lines(&s, &km, 40)
            .iter()
            .map(|l| {
                l.spans
                    .iter()
                    .map(|x| x.content.as_ref())
                    .collect::<String>()
            })
            .collect::<Vec<_>>()
            .join(" ");
        let words: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
        for b in km.bindings.iter().filter(|b| b.scope == Scope::Global) {
            assert!(words.contains(b.help), "{} is cut: {words}", b.help);
        }
    }
}
