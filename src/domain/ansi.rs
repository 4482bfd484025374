//! Neutralising terminal control sequences in step output (UI-3): SGR colours may
//! stay; cursor movement, titles (OSC 0/2), clipboard (OSC 52), DCS, bells and every
//! other control never reach the operator's terminal.

/// `text` with every control sequence removed, except SGR (`ESC [ … m`) when `keep_sgr`.
pub fn sanitize(text: &str, keep_sgr: bool) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => match chars.next() {
                Some('[') => {
                    let mut seq = String::new();
                    let mut fin = None;
                    for c in chars.by_ref() {
                        if ('\u{40}'..='\u{7e}').contains(&c) {
                            fin = Some(c);
                            break;
                        }
                        seq.push(c);
                        if seq.len() > 64 {
                            break;
                        }
                    }
                    if keep_sgr
                        && fin == Some('m')
                        && seq
                            .chars()
                            .all(|c| c.is_ascii_digit() || c == ';' || c == ':')
                    {
                        out.push_str("\u{1b}[");
                        out.push_str(&seq);
                        out.push('m');
                    }
                }
                // OSC, DCS, SOS, PM, APC: a string up to BEL or ST (ESC \).
                Some(']' | 'P' | 'X' | '^' | '_') => {
                    while let Some(c) = chars.next() {
                        if c == '\u{7}' || c == '\u{9c}' {
                            break;
                        }
                        if c == '\u{1b}' && chars.peek() == Some(&'\\') {
                            chars.next();
                            break;
                        }
                    }
                }
                _ => {} // a two-byte escape: dropped whole
            },
            '\t' => out.push(c),
            c if c.is_control() => {} // C0, DEL and C1 (bells, backspace, CR, CSI 0x9b, …)
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_colours_and_nothing_else() {
        let line = "\u{1b}[31mred\u{1b}[0m \u{1b}[2J\u{1b}[10;5Hmoved \u{1b}]0;title\u{7}\
                    \u{1b}]52;c;aGVsbG8=\u{1b}\\clip \u{1b}P1$qm\u{1b}\\dcs\u{7}\u{8}done\r";
        assert_eq!(
            sanitize(line, true),
            "\u{1b}[31mred\u{1b}[0m moved clip dcsdone"
        );
        assert_eq!(sanitize(line, false), "red moved clip dcsdone");
    }

    #[test]
    fn unterminated_sequences_swallow_only_themselves() {
        assert_eq!(sanitize("a\u{1b}]0;never ends", true), "a");
        assert_eq!(sanitize("tab\there\u{9b}2J", true), "tab\there2J");
    }
}
