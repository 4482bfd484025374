//! Neutralising terminal control sequences in step output (UI-3): SGR colours may
//! stay; cursor movement, titles (OSC 0/2), clipboard (OSC 52), DCS, bells and every
//! other control never reach the operator's terminal.

/// `text` with every control sequence removed, except SGR (`ESC [ … m`) when `keep_sgr`.
/// The 8-bit introducers (CSI 0x9b; OSC, DCS, SOS, PM, APC) are taken like their
/// `ESC` forms, so their parameters go too.
pub fn sanitize(text: &str, keep_sgr: bool) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => match chars.next() {
                Some('[') => csi(&mut chars, keep_sgr, &mut out),
                // OSC, DCS, SOS, PM, APC: a string up to BEL or ST (ESC \).
                Some(']' | 'P' | 'X' | '^' | '_') => string(&mut chars),
                _ => {} // a two-byte escape: dropped whole
            },
            '\u{9b}' => csi(&mut chars, keep_sgr, &mut out),
            '\u{9d}' | '\u{90}' | '\u{98}' | '\u{9e}' | '\u{9f}' => string(&mut chars),
            '\t' => out.push(c),
            c if c.is_control() => {} // C0, DEL and C1 (bells, backspace, CR, …)
            c => out.push(c),
        }
    }
    out
}

type Chars<'a> = std::iter::Peekable<std::str::Chars<'a>>;

/// The rest of a CSI sequence: dropped, or kept when it is SGR and `keep_sgr`.
fn csi(chars: &mut Chars<'_>, keep_sgr: bool, out: &mut String) {
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
        let kept = without_blink_or_conceal(&seq);
        if !kept.is_empty() || seq.is_empty() {
            out.push_str("\u{1b}[");
            out.push_str(&kept);
            out.push('m');
        }
    }
}

/// SGR parameters without blink (5, 6) and conceal (8): text that flashes or hides
/// itself has no place in a log. The colour selectors `38;5;N` and `38;2;R;G;B`
/// (and 48, 58) keep their own 5s and 2s.
fn without_blink_or_conceal(params: &str) -> String {
    let mut kept: Vec<&str> = Vec::new();
    let mut it = params.split(';');
    while let Some(p) = it.next() {
        match p {
            "38" | "48" | "58" => {
                kept.push(p);
                let n = match it.next() {
                    Some(sel @ "5") => {
                        kept.push(sel);
                        1
                    }
                    Some(sel @ "2") => {
                        kept.push(sel);
                        3
                    }
                    Some(other) => {
                        kept.push(other);
                        0
                    }
                    None => 0,
                };
                kept.extend(it.by_ref().take(n));
            }
            "5" | "6" | "8" | "05" | "06" | "08" => {}
            p => kept.push(p),
        }
    }
    kept.join(";")
}

/// The rest of a control string, up to BEL or ST (ESC \ or 0x9c): dropped.
fn string(chars: &mut Chars<'_>) {
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

/// Bidirectional overrides and isolates (U+202A–U+202E, U+2066–U+2069): they can
/// make a terminal show text in another order than it is (`Trojan Source`).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Untrusted text (a commit message, an author, a branch, a reason, a comment) made
/// inert for a terminal: no C0 or C1 controls, no escape sequences, no bidi
/// overrides; a line break becomes a space, so one field stays one line.
pub fn inert(text: &str) -> String {
    // Printable ASCII has nothing to remove, and nearly every name, reason and message
    // is that. `run --wait` prints a line for each row that ends; the three passes and
    // three strings below were more than half of what those lines cost (callgrind, a
    // 2,000-node infra DAG: the lines' instructions 52.8 M -> 23.8 M with this).
    if text.bytes().all(|b| (b' '..=b'~').contains(&b)) {
        return text.to_string();
    }
    let flat: String = text
        .chars()
        .map(|c| {
            if c == '\n' || c == '\r' || c == '\t' {
                ' '
            } else {
                c
            }
        })
        .collect();
    sanitize(&flat, false)
        .chars()
        .filter(|&c| !is_bidi_control(c))
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn logs_keep_colours_but_not_blink_or_conceal() {
        use super::sanitize;
        assert_eq!(
            sanitize("\u{1b}[1;5;31mx\u{1b}[0m", true),
            "\u{1b}[1;31mx\u{1b}[0m"
        );
        assert_eq!(sanitize("\u{1b}[8mhidden", true), "hidden");
        assert_eq!(sanitize("\u{1b}[6mfast", true), "fast");
        assert_eq!(
            sanitize("\u{1b}[38;5;208;48;2;5;8;5mc", true),
            "\u{1b}[38;5;208;48;2;5;8;5mc"
        );
        assert_eq!(sanitize("\u{1b}[mreset", true), "\u{1b}[mreset");
    }

    #[test]
    fn untrusted_text_is_inert() {
        let evil = "feat\u{1b}]0;pwned\u{7}/x\u{1b}[2J\u{1b}[31mred\u{9b}1;1H\u{202e}gnp.exe\nnext";
        assert_eq!(super::inert(evil), "feat/xredgnp.exe next");
        assert_eq!(super::inert("plain main"), "plain main");
        // Each of the slow path's changes, one at a time.
        assert_eq!(super::inert("a\tb\nc"), "a b c");
        assert_eq!(super::inert("x\u{7f}y\u{7}z"), "xyz");
        assert_eq!(super::inert("\u{2066}é\u{2069}"), "é");
    }

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
        // The 8-bit CSI takes its parameters with it, as `ESC [` does.
        assert_eq!(sanitize("tab\there\u{9b}2J", true), "tab\there");
        assert_eq!(sanitize("a\u{9d}0;title\u{9c}b", true), "ab");
    }
}
