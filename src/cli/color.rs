//! When CLI output is coloured: `--color`, then `NO_COLOR` (no-color.org), then
//! `CLICOLOR_FORCE` / `CLICOLOR` (bixense.com/clicolors), then whether stdout is a
//! terminal. The same order as the `anstream` crate (cargo, clap) and ripgrep: an
//! explicit flag wins over the environment, and `NO_COLOR` wins over a force.

use std::ffi::OsString;

use ratatui::style::Color;

use crate::domain::{RunStatus, StepStatus};
use crate::tui::widgets::status::{run_look, step_look};

/// The `--color` flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ColorChoice {
    /// Colour on a terminal, unless the environment says otherwise.
    #[default]
    Auto,
    /// Colour even into a pipe or file.
    Always,
    /// Never colour.
    Never,
}

/// The environment variables that bear on colour.
#[derive(Debug, Default, Clone)]
pub struct ColorEnv {
    pub no_color: Option<OsString>,
    pub clicolor_force: Option<OsString>,
    pub clicolor: Option<OsString>,
    pub term: Option<OsString>,
}

impl ColorEnv {
    pub fn from_process() -> Self {
        Self {
            no_color: std::env::var_os("NO_COLOR"),
            clicolor_force: std::env::var_os("CLICOLOR_FORCE"),
            clicolor: std::env::var_os("CLICOLOR"),
            term: std::env::var_os("TERM"),
        }
    }
}

/// Set to something other than empty (or, for the CLICOLOR pair, other than `0`).
fn set(v: &Option<OsString>) -> bool {
    v.as_ref().is_some_and(|v| !v.is_empty())
}

fn set_not_zero(v: &Option<OsString>) -> bool {
    set(v) && v.as_deref() != Some("0".as_ref())
}

/// Whether to colour, given the flag, the environment and whether stdout is a terminal.
pub fn use_color(choice: ColorChoice, env: &ColorEnv, stdout_is_terminal: bool) -> bool {
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            if set(&env.no_color) {
                false
            } else if set_not_zero(&env.clicolor_force) {
                true
            } else if env.clicolor.as_deref() == Some("0".as_ref())
                || env.term.as_deref() == Some("dumb".as_ref())
            {
                false
            } else {
                stdout_is_terminal
            }
        }
    }
}

/// The SGR foreground code of a dashboard colour (bold, as the dashboard draws badges).
fn sgr(c: Color) -> &'static str {
    match c {
        Color::Red => "1;31",
        Color::Green => "1;32",
        Color::Yellow => "1;33",
        Color::Blue => "1;34",
        Color::Magenta => "1;35",
        Color::Cyan => "1;36",
        Color::Gray => "37",
        Color::DarkGray => "90",
        Color::LightRed => "1;91",
        _ => "1",
    }
}

fn paint(c: Color, text: &str, on: bool) -> String {
    if on {
        format!("\x1b[{}m{text}\x1b[0m", sgr(c))
    } else {
        text.to_string()
    }
}

/// `text` (a status word, already padded) in the colour the dashboard gives `s`.
pub fn run_status(s: RunStatus, text: &str, on: bool) -> String {
    paint(run_look(s).color, text, on)
}

/// As [`run_status`], for a step.
pub fn step_status(s: StepStatus, text: &str, on: bool) -> String {
    paint(step_look(s).color, text, on)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> ColorEnv {
        let get = |k: &str| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| OsString::from(v))
        };
        ColorEnv {
            no_color: get("NO_COLOR"),
            clicolor_force: get("CLICOLOR_FORCE"),
            clicolor: get("CLICOLOR"),
            term: get("TERM"),
        }
    }

    /// The flag, the variables set, whether stdout is a terminal, and the answer.
    type Case = (
        ColorChoice,
        &'static [(&'static str, &'static str)],
        bool,
        bool,
    );

    #[test]
    fn precedence() {
        use ColorChoice::*;
        let cases: &[Case] = &[
            // auto: a terminal colours, a pipe does not.
            (Auto, &[], true, true),
            (Auto, &[], false, false),
            // NO_COLOR (any non-empty value) turns it off, even with a force.
            (Auto, &[("NO_COLOR", "1")], true, false),
            (
                Auto,
                &[("NO_COLOR", "1"), ("CLICOLOR_FORCE", "1")],
                false,
                false,
            ),
            // An empty NO_COLOR counts as unset (no-color.org).
            (Auto, &[("NO_COLOR", "")], true, true),
            // CLICOLOR_FORCE colours a pipe; `0` or empty does not force.
            (Auto, &[("CLICOLOR_FORCE", "1")], false, true),
            (Auto, &[("CLICOLOR_FORCE", "0")], false, false),
            (Auto, &[("CLICOLOR_FORCE", "")], false, false),
            // CLICOLOR=0 and TERM=dumb turn a terminal's colour off, unless forced.
            (Auto, &[("CLICOLOR", "0")], true, false),
            (Auto, &[("TERM", "dumb")], true, false),
            (
                Auto,
                &[("CLICOLOR", "0"), ("CLICOLOR_FORCE", "1")],
                true,
                true,
            ),
            // The flag wins over everything.
            (Always, &[("NO_COLOR", "1")], false, true),
            (Never, &[("CLICOLOR_FORCE", "1")], true, false),
        ];
        for (choice, vars, tty, want) in cases {
            assert_eq!(
                use_color(*choice, &env(vars), *tty),
                *want,
                "{choice:?} {vars:?} tty={tty}"
            );
        }
    }

    #[test]
    fn statuses_are_painted_only_when_on() {
        assert_eq!(
            run_status(RunStatus::Failed, "failed", true),
            "\x1b[1;31mfailed\x1b[0m"
        );
        assert_eq!(run_status(RunStatus::Failed, "failed", false), "failed");
        assert_eq!(
            step_status(StepStatus::Succeeded, "ok", true),
            "\x1b[1;32mok\x1b[0m"
        );
    }
}
