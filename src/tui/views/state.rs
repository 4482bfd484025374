//! The state view (issue 22 part 3): the resources in a stack resource's Terraform
//! state, as its last `state list` job found them; mark several, then taint, untaint
//! or remove them behind a confirmation that names each. Every list and change is a
//! state job of the engine: `enter` opens the last one's log.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::widgets::{Paragraph, Row, Table, TableState, Wrap};

use super::{accent, block, fit, selected};
use crate::domain::ansi::inert;
use crate::tui::action::{Action, Effect};
use crate::tui::app::{AppState, StateChange, View};

pub fn update(s: &mut AppState, a: Action) -> Option<Effect> {
    let last = s.state.len().saturating_sub(1);
    match a {
        Action::Back => s.view = View::Runs,
        Action::Up => s.state.sel = s.state.sel.saturating_sub(1),
        Action::Down => s.state.sel = (s.state.sel + 1).min(last),
        Action::Top => s.state.sel = 0,
        Action::Bottom => s.state.sel = last,
        Action::Mark => s.toggle_state_mark(),
        Action::Taint => s.ask_state_change(StateChange::Taint),
        Action::Untaint => s.ask_state_change(StateChange::Untaint),
        Action::Delete => s.ask_state_change(StateChange::Rm),
        Action::Rerun => return s.relist_state(),
        // The last change's job (else the list's): its log.
        Action::Enter => {
            let id = s
                .state
                .change_job
                .as_ref()
                .map(|(id, _)| *id)
                .or(s.state.list_job)?;
            s.view = View::Detail;
            s.detail = None;
            return Some(s.open_detail(id));
        }
        _ => {}
    }
    None
}

/// A click on screen row `row` selects the address there (unscrolled list).
pub fn click(s: &mut AppState, row: u16) {
    if let Some(i) = row.checked_sub(2).map(usize::from)
        && i < s.state.len()
    {
        s.state.sel = i;
    }
}

pub fn render(f: &mut Frame, s: &AppState, area: Rect) {
    let st = &s.state;
    let [table, foot] = Layout::vertical([Constraint::Min(0), Constraint::Length(2)]).areas(area);
    let project = st
        .project
        .as_deref()
        .map(|p| format!(" ({})", inert(p)))
        .unwrap_or_default();
    let title = format!(
        " terraform state of {}{project} · {} marked ",
        inert(&st.resource),
        st.marked.len()
    );
    let b = block(s, title, true);
    match &st.addresses {
        None => f.render_widget(
            Paragraph::new(format!(" {}", inert(&st.status)))
                .wrap(Wrap { trim: true })
                .block(b),
            table,
        ),
        Some(list) if list.is_empty() => f.render_widget(
            Paragraph::new(" The state holds no resources (nothing deployed, or all removed).")
                .block(b),
            table,
        ),
        Some(list) => {
            let width = usize::from(table.width.saturating_sub(8));
            let rows: Vec<Row> = list
                .iter()
                .map(|a| {
                    let mark = if st.marked.contains(a) { "[x]" } else { "[ ]" };
                    Row::new(vec![mark.to_string(), fit(&inert(a), width)])
                })
                .collect();
            let t = Table::new(rows, [Constraint::Length(3), Constraint::Min(10)])
                .header(Row::new(vec!["", "ADDRESS"]).style(accent(s)))
                .row_highlight_style(selected(s))
                .block(b);
            let mut ts = TableState::default().with_selected(Some(st.sel));
            f.render_stateful_widget(t, table, &mut ts);
        }
    }
    let change = st
        .change_job
        .as_ref()
        .map(|(_, line)| line.clone())
        .unwrap_or_else(|| "no change made from this view yet".into());
    let text = format!(" {}\n {}", inert(&st.status), change);
    f.render_widget(Paragraph::new(text), foot);
}
