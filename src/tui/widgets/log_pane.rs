//! Log lines as ratatui text: carriage returns applied as a terminal would (a progress
//! line shows its last state), every control but SGR removed by
//! [`crate::domain::ansi::sanitize`], then SGR colours turned into styles by
//! `ansi-to-tui`. Blink and conceal never survive: a log cannot flash or hide text.

use std::borrow::Cow;

use ansi_to_tui::IntoText as _;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};

use crate::domain::ansi::sanitize;

/// Modifiers a log may not set.
const FORBIDDEN: Modifier = Modifier::SLOW_BLINK
    .union(Modifier::RAPID_BLINK)
    .union(Modifier::HIDDEN);

/// What a terminal shows for `text` after its carriage returns: each part after a `\r`
/// overwrites the line from its first column. A trailing `\r` (a CRLF's half) changes
/// nothing. Parts with escapes are not measured: the last non-empty part wins.
pub fn after_carriage_returns(text: &str) -> Cow<'_, str> {
    if !text.contains('\r') {
        return Cow::Borrowed(text);
    }
    let mut parts = text.split('\r').filter(|p| !p.is_empty());
    if text.contains('\u{1b}') {
        return Cow::Owned(parts.next_back().unwrap_or("").to_string());
    }
    let mut cells: Vec<char> = Vec::new();
    for part in parts {
        for (i, c) in part.chars().enumerate() {
            match cells.get_mut(i) {
                Some(cell) => *cell = c,
                None => cells.push(c),
            }
        }
    }
    Cow::Owned(cells.into_iter().collect())
}

/// One log line as styled spans. With `color` off, SGR is dropped too.
pub fn styled_line(text: &str, color: bool, highlight: Option<&str>) -> Line<'static> {
    let text = after_carriage_returns(text);
    let clean = sanitize(&text, color);
    let spans: Vec<(String, Style)> = if color && clean.contains('\u{1b}') {
        match clean.into_text() {
            Ok(t) => t
                .lines
                .into_iter()
                .flat_map(|l| {
                    let line_style = l.style;
                    l.spans.into_iter().map(move |s| {
                        let st = line_style.patch(s.style);
                        (s.content.into_owned(), st.remove_modifier(FORBIDDEN))
                    })
                })
                .collect(),
            // The sanitiser leaves only SGR, which parses; plain text all the same.
            Err(_) => vec![(sanitize(&text, false), Style::new())],
        }
    } else {
        vec![(clean, Style::new())]
    };
    let mut out = Vec::new();
    for (t, style) in spans {
        push_text(&mut out, &t, style, highlight);
    }
    Line::from(out)
}

fn push_text(spans: &mut Vec<Span<'static>>, text: &str, style: Style, highlight: Option<&str>) {
    let Some(needle) = highlight.filter(|n| !n.is_empty()) else {
        spans.push(Span::styled(text.to_string(), style));
        return;
    };
    let mut rest = text;
    while let Some(at) = rest.find(needle) {
        if at > 0 {
            spans.push(Span::styled(rest[..at].to_string(), style));
        }
        spans.push(Span::styled(
            needle.to_string(),
            style
                .bg(Color::Yellow)
                .fg(Color::Black)
                .add_modifier(Modifier::BOLD),
        ));
        rest = &rest[at + needle.len()..];
    }
    if !rest.is_empty() {
        spans.push(Span::styled(rest.to_string(), style));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_render_and_controls_vanish() {
        let line = "\u{1b}[31mred\u{1b}[0m plain\u{1b}[2J\u{1b}[5;5H\u{1b}]0;title\u{7}\u{1b}]52;c;ZXZpbA==\u{7} \u{1b}[1;32mok\u{7}";
        let l = styled_line(line, true, None);
        let text: String = l.spans.iter().map(|s| s.content.as_ref()).collect();
        assert_eq!(text, "red plain ok");
        assert_eq!(l.spans[0].style.fg, Some(Color::Red));
        // After a reset: the terminal's own colours, no modifier.
        let plain = l.spans[1].style;
        assert!(matches!(plain.fg, None | Some(Color::Reset)), "{plain:?}");
        assert!(plain.add_modifier.is_empty(), "{plain:?}");
        let ok = l.spans.last().unwrap();
        assert_eq!(ok.style.fg, Some(Color::Green));
        assert!(ok.style.add_modifier.contains(Modifier::BOLD));
        // Without colour nothing but the text remains.
        let plain = styled_line(line, false, None);
        assert!(plain.spans.iter().all(|s| s.style == Style::new()));
    }

    #[test]
    fn blink_and_conceal_never_survive() {
        let l = styled_line(
            "\u{1b}[5;31mflash\u{1b}[0m \u{1b}[8mhidden\u{1b}[6;1m fast",
            true,
            None,
        );
        let text: String = l.spans.iter().map(|s| s.content.as_ref()).collect();
        assert_eq!(text, "flash hidden fast");
        for s in &l.spans {
            assert!(!s.style.add_modifier.intersects(FORBIDDEN), "{s:?}");
        }
        assert_eq!(l.spans[0].style.fg, Some(Color::Red));
        assert!(
            l.spans
                .last()
                .unwrap()
                .style
                .add_modifier
                .contains(Modifier::BOLD)
        );
    }

    #[test]
    fn carriage_returns_leave_the_last_state() {
        assert_eq!(after_carriage_returns("no return"), "no return");
        assert_eq!(after_carriage_returns(" 10%\r 55%\r100%"), "100%");
        // A shorter overwrite leaves the tail of what was there, as on a terminal.
        assert_eq!(after_carriage_returns("downloading\rdone"), "doneloading");
        assert_eq!(after_carriage_returns("line\r"), "line");
        assert_eq!(
            after_carriage_returns("\u{1b}[32m 10%\u{1b}[0m\r\u{1b}[32m100%\u{1b}[0m\r"),
            "\u{1b}[32m100%\u{1b}[0m"
        );
        let l = styled_line("[#   ] 25%\r[####] 100%", true, None);
        let text: String = l.spans.iter().map(|s| s.content.as_ref()).collect();
        assert_eq!(text, "[####] 100%");
    }

    #[test]
    fn search_matches_are_highlighted() {
        let l = styled_line("one two one", false, Some("one"));
        let hits: Vec<_> = l
            .spans
            .iter()
            .filter(|s| s.style.bg == Some(Color::Yellow))
            .collect();
        assert_eq!(hits.len(), 2);
    }
}
