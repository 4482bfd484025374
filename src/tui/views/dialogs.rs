//! Modal dialogs and the help overlay: how they draw, and the keys they take while
//! open (a dialog takes every key). Destructive actions go through [`Dialog::Confirm`],
//! which carries the effect and says exactly what will happen.

use crossterm::event::{KeyCode, KeyEvent};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::Line;
use ratatui::widgets::{Clear, Paragraph, Wrap};

use super::{accent, block};
use crate::domain::{Decision, GateKey, RunStatus};
use crate::tui::action::{Action, Effect};
use crate::tui::app::{AppState, Dialog, View};

/// Asks to cancel run `run` (or says it has ended).
pub fn confirm_cancel(s: &mut AppState, run: i64, status: RunStatus) {
    if status.is_terminal() {
        s.error(format!("run {run} has already ended ({status})"));
        return;
    }
    s.dialog = Some(Dialog::Confirm {
        text: format!(
            "Cancel run {run}? Build steps still running are stopped now; a deploy in flight \
             finishes, and later environments are cancelled."
        ),
        effect: Effect::Cancel(run),
    });
}

/// Asks to rerun run `run`.
pub fn confirm_rerun(s: &mut AppState, run: i64) {
    s.dialog = Some(Dialog::Confirm {
        text: format!(
            "Rerun run {run}? A new attempt starts at the same commit with the same pipeline definition."
        ),
        effect: Effect::Rerun(run),
    });
}

/// The comment step of approving (`a` is [`Action::Approve`]) or rejecting a gate.
pub fn decide(run: i64, env: String, a: Action) -> Dialog {
    Dialog::Comment {
        run,
        env,
        decision: if a == Action::Approve {
            Decision::Approve
        } else {
            Decision::Reject
        },
        input: String::new(),
    }
}

/// Editing a one-line text field.
pub fn text_input(input: &mut String, code: KeyCode) {
    match code {
        KeyCode::Backspace => {
            input.pop();
        }
        KeyCode::Char(c) => input.push(c),
        _ => {}
    }
}

/// What a gate decision will do, stated in full for the confirmation.
pub fn decision_text(run: i64, env: &str, decision: Decision) -> String {
    let verb = match decision {
        Decision::Approve => "Approve",
        Decision::Reject => "Reject",
    };
    if let Some(k) = crate::domain::SwitchGateKey::parse(env) {
        let group = crate::domain::ansi::inert(&k.group);
        let what = match decision {
            Decision::Approve => "switch to its release in their idle windows",
            Decision::Reject => "stay on the release they run now",
        };
        return format!(
            "{verb} the switch of station group {group} in rollout run {run}? \
             The stations of {group} {what}."
        );
    }
    // Service gates stand before an environment; infra gates stand before an
    // environment, after a node, or before a node's operation (a reviewed plan).
    let key = GateKey::parse(env).unwrap_or_else(|| GateKey::env(env));
    let (what_gate, what) = match (&key.node, key.op, decision) {
        (None, _, Decision::Approve) => (
            format!("the gate before {}", key.env),
            format!("run {run} deploys to {} and continues", key.env),
        ),
        (None, _, Decision::Reject) => (
            format!("the gate before {}", key.env),
            format!(
                "{} and everything after it in run {run} are skipped",
                key.env
            ),
        ),
        (Some(n), None, Decision::Approve) => (
            format!("the gate after {n}"),
            format!("{n}'s dependents start"),
        ),
        (Some(n), None, Decision::Reject) => (
            format!("the gate after {n}"),
            format!("{n}'s dependents are skipped"),
        ),
        (Some(n), Some(op), Decision::Approve) => (
            format!("the reviewed plan of {n}"),
            format!("{n} runs {op} with exactly the plan that was previewed"),
        ),
        (Some(n), Some(_), Decision::Reject) => (
            format!("the plan of {n}"),
            "the plan is discarded and nothing is applied".to_string(),
        ),
    };
    format!("{verb} {what_gate} in run {run}? {what}.")
}

/// A key while a dialog is open.
pub fn on_key(s: &mut AppState, key: KeyEvent) -> Option<Effect> {
    let dialog = s.dialog.take()?;
    match dialog {
        Dialog::Confirm { text, effect } => match key.code {
            KeyCode::Char('y') | KeyCode::Enter => Some(effect),
            KeyCode::Char('n') | KeyCode::Esc => None,
            _ => {
                s.dialog = Some(Dialog::Confirm { text, effect });
                None
            }
        },
        Dialog::Comment {
            run,
            env,
            decision,
            mut input,
        } => match key.code {
            KeyCode::Esc => None,
            KeyCode::Enter => {
                let comment = (!input.trim().is_empty()).then(|| input.trim().to_string());
                let required =
                    super::gate_context::rule_of(s, run, &env).is_some_and(|r| r.require_comment);
                if required && comment.is_none() {
                    s.error(format!("{env} requires a comment: say why, then enter"));
                    s.dialog = Some(Dialog::Comment {
                        run,
                        env,
                        decision,
                        input,
                    });
                    return None;
                }
                s.dialog = Some(Dialog::Confirm {
                    text: decision_text(run, &env, decision),
                    effect: Effect::Decide {
                        run,
                        env,
                        decision,
                        comment,
                    },
                });
                None
            }
            code => {
                text_input(&mut input, code);
                s.dialog = Some(Dialog::Comment {
                    run,
                    env,
                    decision,
                    input,
                });
                None
            }
        },
        Dialog::Trigger(form) => s.trigger_key(form, key.code),
        Dialog::WriteLog {
            run,
            step,
            what,
            mut input,
        } => match key.code {
            KeyCode::Esc => None,
            KeyCode::Enter => {
                let top = s.log_top();
                let rows = s.log_rows() as u64;
                let total = s.log.total.max(s.log.first + s.log.lines.len() as u64);
                match crate::tui::export::parse_range(&input, top, rows, total) {
                    Ok(range) => {
                        let name = crate::tui::export::file_name(run, &what, range);
                        Some(Effect::WriteLog {
                            run,
                            step,
                            range,
                            name,
                        })
                    }
                    Err(why) => {
                        s.error(why.to_string());
                        s.dialog = Some(Dialog::WriteLog {
                            run,
                            step,
                            what,
                            input,
                        });
                        None
                    }
                }
            }
            code => {
                text_input(&mut input, code);
                s.dialog = Some(Dialog::WriteLog {
                    run,
                    step,
                    what,
                    input,
                });
                None
            }
        },
        Dialog::CommandLine(mut input) => match key.code {
            KeyCode::Esc => None,
            KeyCode::Enter => {
                match input.trim() {
                    "runs" | "r" => s.view = View::Runs,
                    "approvals" | "inbox" | "a" | "gates" => s.view = View::Approvals,
                    "audit" => {
                        s.view = View::Audit;
                        return Some(Effect::LoadAudit);
                    }
                    "triggers" | "tr" => {
                        s.view = View::Triggers;
                        return Some(Effect::LoadTriggers);
                    }
                    "deployments" | "deploys" => {
                        s.view = View::Deployments;
                        return s.load_releases();
                    }
                    "stations" | "st" => {
                        s.view = View::Stations;
                        return s.load_releases();
                    }
                    "detail" | "d" if s.detail.is_some() => s.view = View::Detail,
                    cmd if cmd.starts_with("state ") => {
                        let resource = cmd["state ".len()..].trim().to_string();
                        return s.open_state(None, resource);
                    }
                    "q" | "quit" => return crate::tui::update::update(s, Action::Quit),
                    other => s.error(format!(
                        "no view `{other}`: try :runs, :approvals, :audit, :triggers, :deployments, :stations or :state RESOURCE"
                    )),
                }
                None
            }
            code => {
                text_input(&mut input, code);
                s.dialog = Some(Dialog::CommandLine(input));
                None
            }
        },
        Dialog::Quit { active } => match key.code {
            KeyCode::Char('k') => Some(Effect::Quit { stop_engine: false }),
            KeyCode::Char('s') => Some(Effect::Quit { stop_engine: true }),
            KeyCode::Esc | KeyCode::Char('n') => None,
            _ => {
                s.dialog = Some(Dialog::Quit { active });
                None
            }
        },
    }
}

pub fn centered(area: Rect, w: u16, h: u16) -> Rect {
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

/// How wide a popup is.
const CONFIRM_WIDTH: usize = 70;

/// How many rows `text` takes, word-wrapped at `width` (as the popup wraps it).
fn wrapped_lines(text: &str, width: usize) -> usize {
    let (mut lines, mut col) = (1, 0);
    for word in text.split(' ') {
        let n = word.chars().count();
        if col > 0 && col + 1 + n > width {
            lines += 1;
            col = 0;
        }
        col += if col > 0 { 1 } else { 0 } + n;
        while col > width {
            lines += 1;
            col -= width;
        }
    }
    lines
}

pub fn popup(f: &mut Frame, s: &AppState, area: Rect, title: &str, lines: Vec<Line>, h: u16) {
    let r = centered(area, CONFIRM_WIDTH as u16, h);
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
            // A long text (many names) still leaves the answer keys in view.
            (wrapped_lines(text, CONFIRM_WIDTH - 2) + 4).max(8) as u16,
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
            let mut lines = super::gate_context::lines(s, *run, env, *decision);
            lines.extend([
                Line::from(""),
                Line::from(
                    if super::gate_context::rule_of(s, *run, env).is_some_and(|r| r.require_comment)
                    {
                        "Comment (required by this gate, recorded in the audit log):"
                    } else {
                        "Comment (optional, recorded in the audit log):"
                    },
                ),
                Line::from(format!("> {input}▏")),
                Line::from(""),
                Line::styled("enter: continue    esc: cancel", accent(s)),
            ]);
            lines.extend(super::gate_context::commit_lines(s, *run, env));
            // Wrapped lines take more rows than there are lines.
            let h = lines
                .iter()
                .map(|l| (l.width() as u16).div_ceil(68).max(1))
                .sum::<u16>()
                + 2;
            popup(f, s, area, &format!("{verb} {env} of run {run}"), lines, h)
        }
        Dialog::Trigger(form) => super::trigger::render(f, s, form, area),
        Dialog::WriteLog { what, input, .. } => popup(
            f,
            s,
            area,
            &format!("write {what}'s log to a file"),
            vec![
                Line::from(format!(
                    "Lines (FROM-TO, one line, or +COUNT from the top of the pane; the log has {}):",
                    s.log.total.max(s.log.first + s.log.lines.len() as u64)
                )),
                Line::from(format!("> {input}▏")),
                Line::from(""),
                Line::from(
                    "Written without colours or escapes to the directory pipedeck was started \
                     in (else the temp dir); the status line says where.",
                ),
                Line::styled("enter: write    esc: cancel", accent(s)),
            ],
            10,
        ),
        Dialog::CommandLine(input) => popup(
            f,
            s,
            area,
            "jump to",
            vec![
                Line::from(format!(":{input}▏")),
                Line::styled(
                    "runs · approvals · audit · triggers · deployments · stations · state RESOURCE · detail · quit",
                    accent(s),
                ),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_station_group_gate_says_what_its_decision_does() {
        assert_eq!(
            decision_text(13, "stations:edge", Decision::Approve),
            "Approve the switch of station group edge in rollout run 13? \
             The stations of edge switch to its release in their idle windows."
        );
        assert_eq!(
            decision_text(13, "stations:edge", Decision::Reject),
            "Reject the switch of station group edge in rollout run 13? \
             The stations of edge stay on the release they run now."
        );
    }
}
