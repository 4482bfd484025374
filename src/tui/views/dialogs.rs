//! Modal dialogs and the help overlay.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::Line;
use ratatui::widgets::{Clear, Paragraph, Wrap};

use super::{accent, block, fit};
use crate::domain::Decision;
use crate::tui::app::{AppState, Dialog, TriggerField};
use crate::tui::keymap::{Keymap, Scope, key_name, scope_name};

fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    let [_, v, _] = Layout::vertical([
        Constraint::Fill(1),
        Constraint::Length(h),
        Constraint::Fill(1),
    ])
    .areas(area);
    let [_, c, _] = Layout::horizontal([
        Constraint::Fill(1),
        Constraint::Length(w),
        Constraint::Fill(1),
    ])
    .areas(v);
    c
}

fn popup(f: &mut Frame, s: &AppState, area: Rect, title: &str, lines: Vec<Line>, h: u16) {
    let r = centered(area, 70, h);
    f.render_widget(Clear, r);
    f.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(block(s, format!(" {title} "), true)),
        r,
    );
}

pub fn render(f: &mut Frame, s: &AppState, d: &Dialog, area: Rect) {
    match d {
        Dialog::Confirm { text, .. } => popup(
            f,
            s,
            area,
            "confirm",
            vec![
                Line::from(text.clone()),
                Line::from(""),
                Line::styled("y: yes, do it    n/esc: no", accent(s)),
            ],
            8,
        ),
        Dialog::Comment {
            run,
            env,
            decision,
            input,
        } => {
            let verb = if *decision == Decision::Approve {
                "approve"
            } else {
                "reject"
            };
            popup(
                f,
                s,
                area,
                &format!("{verb} {env} of run {run}"),
                vec![
                    Line::from("Comment (optional, recorded in the audit log):"),
                    Line::from(format!("> {input}▏")),
                    Line::from(""),
                    Line::styled("enter: continue    esc: cancel", accent(s)),
                ],
                8,
            )
        }
        Dialog::Trigger {
            service,
            branch,
            commit,
            field,
        } => {
            let mark = |f: &TriggerField| if f == field { "▶ " } else { "  " };
            let svc = s.services.get(*service).cloned().unwrap_or_default();
            popup(
                f,
                s,
                area,
                "trigger a run",
                vec![
                    Line::from(format!(
                        "{}service: ◀ {svc} ▶",
                        mark(&TriggerField::Service)
                    )),
                    Line::from(format!(
                        "{}branch:  {}",
                        mark(&TriggerField::Branch),
                        if branch.is_empty() {
                            "(the service's default branch)".to_string()
                        } else {
                            branch.clone()
                        }
                    )),
                    Line::from(format!(
                        "{}commit:  {}",
                        mark(&TriggerField::Commit),
                        if commit.is_empty() {
                            "(the head of the branch)".to_string()
                        } else {
                            commit.clone()
                        }
                    )),
                    Line::from(""),
                    Line::styled(
                        "tab: next field  ←/→: service  enter: trigger  esc: cancel",
                        accent(s),
                    ),
                ],
                9,
            )
        }
        Dialog::CommandLine(input) => popup(
            f,
            s,
            area,
            "jump to",
            vec![
                Line::from(format!(":{input}▏")),
                Line::styled("runs · approvals · detail · quit", accent(s)),
            ],
            5,
        ),
        Dialog::Quit { active } => popup(
            f,
            s,
            area,
            "quit",
            vec![
                Line::from(format!(
                    "This dashboard hosts the engine and {active} run(s) are still active."
                )),
                Line::from(""),
                Line::styled("k: keep the engine running in the background", accent(s)),
                Line::styled(
                    "s: stop the engine (running steps are cancelled; waiting gates stay)",
                    accent(s),
                ),
                Line::styled("esc: stay", accent(s)),
            ],
            9,
        ),
    }
}

pub fn help(f: &mut Frame, s: &AppState, km: &Keymap, area: Rect) {
    let mut lines = Vec::new();
    for scope in [Scope::Global, Scope::In(s.view)] {
        lines.push(Line::styled(format!("{}:", scope_name(scope)), accent(s)));
        // One line per action, with every key bound to it.
        let mut seen: Vec<(crate::tui::action::Action, String, &str)> = Vec::new();
        for b in km.bindings.iter().filter(|b| b.scope == scope) {
            match seen.iter_mut().find(|(a, _, _)| *a == b.action) {
                Some((_, keys, _)) => {
                    keys.push(' ');
                    keys.push_str(&key_name(b));
                }
                None => seen.push((b.action, key_name(b), b.help)),
            }
        }
        for (_, keys, help) in seen {
            lines.push(Line::from(format!("  {keys:<10} {}", fit(help, 24))));
        }
    }
    lines.push(Line::styled("any key closes this help", accent(s)));
    // Two columns when one does not fit the screen.
    let rows = area.height.saturating_sub(2) as usize;
    if lines.len() <= rows {
        let r = centered(area, 64, lines.len() as u16 + 2);
        f.render_widget(Clear, r);
        f.render_widget(Paragraph::new(lines).block(block(s, " keys ", true)), r);
        return;
    }
    let half = lines.len().div_ceil(2);
    let right = lines.split_off(half);
    let r = centered(area, 78, half as u16 + 2);
    f.render_widget(Clear, r);
    f.render_widget(block(s, " keys ", true), r);
    let inner = r.inner(ratatui::layout::Margin::new(1, 1));
    let [a, b] = Layout::horizontal([Constraint::Fill(1), Constraint::Fill(1)]).areas(inner);
    f.render_widget(Paragraph::new(lines), a);
    f.render_widget(Paragraph::new(right), b);
}
