//! Status badges: colour, symbol and word, so they read with NO_COLOR and for
//! colour-blind operators.

use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Span;

use crate::domain::{RunStatus, StepStatus};

pub struct Look {
    pub symbol: &'static str,
    pub ascii: &'static str,
    pub color: Color,
}

pub fn run_look(s: RunStatus) -> Look {
    use RunStatus::*;
    let (symbol, ascii, color) = match s {
        Queued => ("◷", ".", Color::Gray),
        Running => ("●", ">", Color::Cyan),
        AwaitingApproval => ("⏸", "?", Color::Yellow),
        Cancelling => ("…", "~", Color::Magenta),
        Succeeded => ("✓", "+", Color::Green),
        Failed => ("✗", "x", Color::Red),
        Cancelled => ("⊘", "-", Color::Magenta),
        Rejected => ("⊗", "!", Color::Red),
        Skipped => ("↷", "_", Color::DarkGray),
        Interrupted => ("↯", "#", Color::LightRed),
    };
    Look {
        symbol,
        ascii,
        color,
    }
}

pub fn step_look(s: StepStatus) -> Look {
    use StepStatus::*;
    let as_run = |r| run_look(r);
    match s {
        Pending => Look {
            symbol: "·",
            ascii: ".",
            color: Color::DarkGray,
        },
        Queued => as_run(RunStatus::Queued),
        Running => as_run(RunStatus::Running),
        AwaitingApproval => as_run(RunStatus::AwaitingApproval),
        Succeeded => as_run(RunStatus::Succeeded),
        Failed => as_run(RunStatus::Failed),
        Skipped => as_run(RunStatus::Skipped),
        Cancelled => as_run(RunStatus::Cancelled),
        Rejected => as_run(RunStatus::Rejected),
        Interrupted => as_run(RunStatus::Interrupted),
    }
}

/// `✓ succeeded` (or `+ succeeded` in ASCII), coloured unless `color` is off.
pub fn badge(look: Look, word: &str, ascii: bool, color: bool) -> Span<'static> {
    let sym = if ascii { look.ascii } else { look.symbol };
    let style = if color {
        Style::new().fg(look.color).add_modifier(Modifier::BOLD)
    } else {
        Style::new()
    };
    Span::styled(format!("{sym} {}", word.replace('_', " ")), style)
}
