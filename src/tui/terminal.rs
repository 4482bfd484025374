//! Terminal setup and restore: on quit, on panic, and on SIGTERM/SIGHUP.

use std::io::{self, Stdout};

use crossterm::event::{DisableMouseCapture, EnableMouseCapture};
use crossterm::execute;
use crossterm::terminal::{
    EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;

pub type Term = Terminal<CrosstermBackend<Stdout>>;

/// Raw mode, alternate screen, mouse; and a panic hook that puts everything back first.
pub fn setup() -> io::Result<Term> {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore();
        previous(info);
    }));
    enable_raw_mode()?;
    execute!(io::stdout(), EnterAlternateScreen, EnableMouseCapture)?;
    let mut t = Terminal::new(CrosstermBackend::new(io::stdout()))?;
    t.hide_cursor()?;
    t.clear()?;
    Ok(t)
}

/// Leaves the terminal as we found it; safe to call more than once. There is no one
/// to tell on screen when this fails, so the log says it.
pub fn restore() {
    if let Err(e) = execute!(
        io::stdout(),
        DisableMouseCapture,
        LeaveAlternateScreen,
        crossterm::cursor::Show
    ) {
        tracing::warn!("restoring the terminal failed: {e}");
    }
    if let Err(e) = disable_raw_mode() {
        tracing::warn!("leaving raw mode failed: {e}");
    }
}
