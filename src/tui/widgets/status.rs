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

/// The engine this dashboard talks to and who it takes the user for:
/// `engine: local (hosted here) · root (admin)`, `engine: shared socket (svc) · alice
/// (operator)`, `engine: remote (opsbox) · alice (viewer)`.
pub fn engine_text(
    hosting: bool,
    who: Option<&crate::domain::command::Identity>,
    host: &str,
) -> String {
    use crate::domain::ansi::inert;
    let Some(id) = who else {
        return if hosting {
            "engine: hosted here".into()
        } else {
            "engine: attached".into()
        };
    };
    let kind = if !id.engine_host.is_empty() && id.engine_host != host {
        format!("remote ({})", inert(&id.engine_host))
    } else if id.engine_user != id.user {
        format!("shared socket ({})", inert(&id.engine_user))
    } else if hosting {
        "local (hosted here)".into()
    } else {
        "local".into()
    };
    let role = id.role.map_or("not listed".to_string(), |r| r.to_string());
    format!("engine: {kind} · {} ({role})", inert(&id.user))
}

#[cfg(test)]
mod tests {
    use super::engine_text;
    use crate::domain::access::Role;
    use crate::domain::command::Identity;

    fn id(user: &str, engine_user: &str, host: &str, role: Option<Role>) -> Identity {
        Identity {
            user: user.into(),
            groups: vec![],
            role,
            engine_user: engine_user.into(),
            engine_host: host.into(),
        }
    }

    #[test]
    fn the_engine_is_local_shared_or_remote_as_the_engine_says() {
        assert_eq!(engine_text(true, None, "box"), "engine: hosted here");
        let me = id("root", "root", "box", Some(Role::Admin));
        assert_eq!(
            engine_text(true, Some(&me), "box"),
            "engine: local (hosted here) · root (admin)"
        );
        assert_eq!(
            engine_text(false, Some(&me), "box"),
            "engine: local · root (admin)"
        );
        let shared = id("alice", "pipedeck", "box", Some(Role::Operator));
        assert_eq!(
            engine_text(false, Some(&shared), "box"),
            "engine: shared socket (pipedeck) · alice (operator)"
        );
        let remote = id("alice", "pipedeck", "ops\x1b]0;x\x07box", None);
        assert_eq!(
            engine_text(false, Some(&remote), "laptop"),
            "engine: remote (opsbox) · alice (not listed)"
        );
    }
}
