//! One module a view: how it draws (`render(&AppState, ...)`, which only reads the
//! state) and the keys it takes (`update(&mut AppState, Action) -> Option<Effect>`,
//! pure). [`crate::tui::update`] routes global actions and hands the rest here.

mod approvals;
mod audit;
mod banner;
mod deployments;
mod detail;
mod dialogs;
mod gate_context;
mod graph;
mod help;
mod log;
mod runs;
mod state;
mod stations;
mod trigger;
mod triggers;

use crossterm::event::KeyEvent;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::symbols::border;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Wrap};

use super::action::{Action, Effect};
use super::app::{AppState, View};
use super::keymap::{Keymap, Scope, key_name};

pub use audit::AUDIT_LIMIT;
pub use banner::height as banner_height;
pub use dialogs::{confirm_cancel, confirm_rerun, decide, text_input};

/// An action for the view on screen.
pub fn update(s: &mut AppState, a: Action) -> Option<Effect> {
    match s.view {
        View::Runs => runs::update(s, a),
        View::Detail => detail::update(s, a),
        View::Approvals => approvals::update(s, a),
        View::Graph => graph::update(s, a),
        View::Audit => audit::update(s, a),
        View::Triggers => triggers::update(s, a),
        View::Deployments => deployments::update(s, a),
        View::Stations => stations::update(s, a),
        View::State => state::update(s, a),
    }
}

/// A key while a dialog is open.
pub fn dialog_key(s: &mut AppState, key: KeyEvent) -> Option<Effect> {
    dialogs::on_key(s, key)
}

/// Typing into the search field: the log search in the run detail, else the runs filter.
pub fn edit_search(s: &mut AppState, f: impl FnOnce(&mut String)) {
    match s.view {
        View::Detail => log::edit_search(s, f),
        _ => runs::edit_filter(s, f),
    }
}

/// Esc in the search field clears it.
pub fn clear_search(s: &mut AppState) {
    match s.view {
        View::Detail => {
            s.log.search = None;
            s.log.searching = None;
        }
        _ => s.filter.clear(),
    }
}

/// The mouse wheel: scrolls the log in the run detail, moves the selection elsewhere.
pub fn scroll(s: &mut AppState, lines: i64) -> Option<Effect> {
    match s.view {
        View::Detail => log::scroll(s, lines),
        _ => update(s, if lines < 0 { Action::Up } else { Action::Down }),
    }
}

/// A click selects the row under the pointer (runs table, inbox) or the run tree's
/// node there (run detail).
pub fn click(s: &mut AppState, col: u16, row: u16) -> Option<Effect> {
    // The views below the banner count rows as if it were not there.
    let row = match row.checked_sub(banner::height(s)) {
        Some(r) if row > 0 => r.max(1),
        _ => row,
    };
    match s.view {
        View::Runs => runs::click(s, row),
        View::Approvals => approvals::click(s, row),
        View::Detail => return detail::click(s, col, row),
        View::Audit => audit::click(s, row),
        View::Graph => {}
        View::Triggers => triggers::click(s, row),
        View::Deployments => deployments::click(s, row),
        View::Stations => stations::click(s, row),
        View::State => state::click(s, row),
    }
    None
}

pub const MIN_WIDTH: u16 = 80;
pub const MIN_HEIGHT: u16 = 24;

const ASCII_BORDER: border::Set = border::Set {
    top_left: "+",
    top_right: "+",
    bottom_left: "+",
    bottom_right: "+",
    vertical_left: "|",
    vertical_right: "|",
    horizontal_top: "-",
    horizontal_bottom: "-",
};

/// A bordered block with a title, in box glyphs or plain ASCII.
pub fn block<'a>(s: &AppState, title: impl Into<Line<'a>>, focused: bool) -> Block<'a> {
    let b = Block::default().borders(Borders::ALL).title(title);
    let b = if s.ascii {
        b.border_set(ASCII_BORDER)
    } else {
        b
    };
    if focused && s.color {
        b.border_style(Style::new().fg(s.theme.border))
    } else {
        b
    }
}

pub fn accent(s: &AppState) -> Style {
    if s.color {
        Style::new().fg(s.theme.accent).add_modifier(Modifier::BOLD)
    } else {
        Style::new().add_modifier(Modifier::BOLD)
    }
}

/// A marker on a row or box (`[drift: …]`, `[targeted: …]`): the waiting colour, bold.
pub fn marker(s: &AppState) -> Style {
    if s.color {
        Style::new()
            .fg(s.theme.waiting)
            .add_modifier(Modifier::BOLD)
    } else {
        Style::new().add_modifier(Modifier::BOLD)
    }
}

pub fn selected(s: &AppState) -> Style {
    if s.color {
        let st = Style::new()
            .bg(s.theme.selection)
            .add_modifier(Modifier::BOLD);
        match s.theme.selection_text {
            Some(c) => st.fg(c),
            None => st,
        }
    } else {
        Style::new().add_modifier(Modifier::REVERSED)
    }
}

pub use crate::domain::format_duration as duration;

/// `42s ago`, `3m ago`.
pub fn ago(now: i64, at: i64) -> String {
    format!("{} ago", span(now - at))
}

/// A coarse length of time: `42s`, `3m`, `5h`, `2d`.
pub fn span(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86400 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}

/// Cuts `s` to `n` characters, marking the cut.
pub fn fit(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

pub fn render(f: &mut Frame, s: &AppState, km: &Keymap) {
    let area = f.area();
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        let msg = format!(
            "pipedeck needs at least {MIN_WIDTH}x{MIN_HEIGHT}; this terminal is {}x{}. Enlarge it, or press q to quit.",
            area.width, area.height
        );
        f.render_widget(Paragraph::new(msg).wrap(Wrap { trim: true }), area);
        return;
    }
    let [top, main, bottom] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(0),
        Constraint::Length(1),
    ])
    .areas(area);
    title_bar(f, s, top);
    let [banner, main] =
        Layout::vertical([Constraint::Length(banner::height(s)), Constraint::Min(0)]).areas(main);
    banner::render(f, s, banner);
    match s.view {
        View::Runs => runs::render(f, s, main),
        View::Detail => detail::render(f, s, main),
        View::Approvals => approvals::render(f, s, main),
        View::Graph => graph::render(f, s, main),
        View::Audit => audit::render(f, s, main),
        View::Triggers => triggers::render(f, s, main),
        View::Deployments => deployments::render(f, s, main),
        View::Stations => stations::render(f, s, main),
        View::State => state::render(f, s, main),
    }
    status_bar(f, s, km, bottom);
    if s.help {
        help::render(f, s, km, main);
    }
    if let Some(d) = &s.dialog {
        dialogs::render(f, s, d, main);
    }
}

fn title_bar(f: &mut Frame, s: &AppState, area: Rect) {
    let view = match s.view {
        View::Runs => "runs",
        View::Detail => "run detail",
        View::Approvals => "approvals",
        View::Graph => "infra graph",
        View::Audit => "audit log",
        View::Triggers => "triggers",
        View::Deployments => "deployments",
        View::Stations => "stations",
        View::State => "terraform state",
    };
    let mut spans = vec![
        Span::styled(" pipedeck ", accent(s)),
        Span::raw(format!("· {view} ")),
    ];
    if !s.gates.is_empty() {
        let style = if s.color {
            Style::new()
                .fg(Color::Black)
                .bg(s.theme.waiting)
                .add_modifier(Modifier::BOLD)
        } else {
            Style::new().add_modifier(Modifier::REVERSED)
        };
        spans.push(Span::styled(
            format!(
                " {} gate{} waiting (i) ",
                s.gates.len(),
                if s.gates.len() == 1 { "" } else { "s" }
            ),
            style,
        ));
    }
    let engine = crate::tui::widgets::status::engine_text(s.hosting, s.identity.as_ref(), &s.host);
    let disk = s
        .engine_status
        .as_ref()
        .and_then(|st| st.disk.as_ref())
        .map(|d| format!(" · {}", d.summary_short()))
        .unwrap_or_default();
    let right = format!("{engine} · {}{disk} ", s.data_dir);
    let left_len: usize = spans.iter().map(|s| s.content.chars().count()).sum();
    let pad = (area.width as usize).saturating_sub(left_len + right.chars().count());
    spans.push(Span::raw(" ".repeat(pad)));
    spans.push(Span::raw(fit(
        &right,
        (area.width as usize).saturating_sub(left_len),
    )));
    f.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn status_bar(f: &mut Frame, s: &AppState, km: &Keymap, area: Rect) {
    let line = if let Some((is_err, msg)) = &s.message {
        let style = if *is_err && s.color {
            Style::new().fg(Color::Red).add_modifier(Modifier::BOLD)
        } else {
            Style::new().add_modifier(Modifier::BOLD)
        };
        Line::from(Span::styled(fit(msg, area.width as usize), style))
    } else if s.filter_editing {
        let (what, text) = match s.view {
            View::Detail => ("search", s.log.search.clone().unwrap_or_default()),
            _ => ("filter", s.filter.clone()),
        };
        Line::from(format!("{what}: {text}▏ (enter keeps, esc clears)"))
    } else {
        let hints: Vec<String> =
            km.bindings
                .iter()
                .filter(|b| b.hint && (b.scope == Scope::Global || b.scope == Scope::In(s.view)))
                // A global key the view takes for itself is the view's here.
                .filter(|b| {
                    b.scope != Scope::Global
                        || !km.bindings.iter().any(|v| {
                            v.scope == Scope::In(s.view) && v.key == b.key && v.ctrl == b.ctrl
                        })
                })
                .map(|b| format!("{} {}", key_name(b), b.help.split(' ').next().unwrap_or("")))
                .collect();
        Line::from(Span::styled(
            fit(&hints.join("  "), area.width as usize),
            Style::new().add_modifier(Modifier::DIM),
        ))
    };
    f.render_widget(Paragraph::new(line), area);
}
