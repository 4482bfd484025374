//! Log lines as ratatui text: SGR colours rendered, every other control neutralised
//! (through [`crate::domain::ansi::sanitize`]).

use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};

use crate::domain::ansi::sanitize;

fn basic(n: u16) -> Color {
    match n {
        0 => Color::Black,
        1 => Color::Red,
        2 => Color::Green,
        3 => Color::Yellow,
        4 => Color::Blue,
        5 => Color::Magenta,
        6 => Color::Cyan,
        7 => Color::Gray,
        8 => Color::DarkGray,
        9 => Color::LightRed,
        10 => Color::LightGreen,
        11 => Color::LightYellow,
        12 => Color::LightBlue,
        13 => Color::LightMagenta,
        14 => Color::LightCyan,
        _ => Color::White,
    }
}

/// Applies one SGR parameter list to `style`.
fn apply_sgr(style: Style, params: &str) -> Style {
    let nums: Vec<u16> = params
        .split([';', ':'])
        .map(|p| p.parse().unwrap_or(0))
        .collect();
    let mut st = style;
    let mut i = 0;
    while i < nums.len() {
        match nums[i] {
            0 => st = Style::new(),
            1 => st = st.add_modifier(Modifier::BOLD),
            2 => st = st.add_modifier(Modifier::DIM),
            3 => st = st.add_modifier(Modifier::ITALIC),
            4 => st = st.add_modifier(Modifier::UNDERLINED),
            7 => st = st.add_modifier(Modifier::REVERSED),
            22 => st = st.remove_modifier(Modifier::BOLD | Modifier::DIM),
            23 => st = st.remove_modifier(Modifier::ITALIC),
            24 => st = st.remove_modifier(Modifier::UNDERLINED),
            27 => st = st.remove_modifier(Modifier::REVERSED),
            n @ 30..=37 => st = st.fg(basic(n - 30)),
            n @ 90..=97 => st = st.fg(basic(n - 90 + 8)),
            39 => st = st.fg(Color::Reset),
            n @ 40..=47 => st = st.bg(basic(n - 40)),
            n @ 100..=107 => st = st.bg(basic(n - 100 + 8)),
            49 => st = st.bg(Color::Reset),
            n @ (38 | 48) => {
                let color = match nums.get(i + 1) {
                    Some(5) => {
                        let c = nums.get(i + 2).copied().unwrap_or(0).min(255) as u8;
                        i += 2;
                        Some(Color::Indexed(c))
                    }
                    Some(2) => {
                        let c = |k: usize| nums.get(i + k).copied().unwrap_or(0).min(255) as u8;
                        let rgb = Color::Rgb(c(2), c(3), c(4));
                        i += 4;
                        Some(rgb)
                    }
                    _ => None,
                };
                if let Some(c) = color {
                    st = if n == 38 { st.fg(c) } else { st.bg(c) };
                }
            }
            _ => {}
        }
        i += 1;
    }
    st
}

/// One log line as styled spans. With `color` off, SGR is dropped too.
pub fn styled_line(text: &str, color: bool, highlight: Option<&str>) -> Line<'static> {
    let clean = sanitize(text, color);
    let mut spans: Vec<Span<'static>> = Vec::new();
    let mut style = Style::new();
    let mut rest = clean.as_str();
    while !rest.is_empty() {
        match rest.find('\u{1b}') {
            Some(0) => {
                // sanitize() leaves only complete `ESC [ params m` sequences.
                let end = rest.find('m').unwrap_or(rest.len() - 1);
                style = apply_sgr(style, &rest[2.min(end)..end]);
                rest = &rest[end + 1..];
            }
            Some(k) => {
                push_text(&mut spans, &rest[..k], style, highlight);
                rest = &rest[k..];
            }
            None => {
                push_text(&mut spans, rest, style, highlight);
                rest = "";
            }
        }
    }
    Line::from(spans)
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
        assert_eq!(l.spans[1].style, Style::new());
        let ok = l.spans.last().unwrap();
        assert_eq!(ok.style.fg, Some(Color::Green));
        assert!(ok.style.add_modifier.contains(Modifier::BOLD));
        // Without colour nothing but the text remains.
        let plain = styled_line(line, false, None);
        assert!(plain.spans.iter().all(|s| s.style == Style::new()));
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
