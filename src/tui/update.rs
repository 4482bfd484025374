//! `update(state, input) -> effect`: pure, so every key path is unit-tested.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::action::{Action, Effect};
use super::app::{AppState, Dialog, LOG_WINDOW, TriggerField, View};
use super::keymap::Keymap;
use crate::domain::{Decision, RunStatus};

/// A key press: dialogs and text fields first, then the keymap.
pub fn on_key(s: &mut AppState, km: &Keymap, key: KeyEvent) -> Option<Effect> {
    if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
        return update(s, Action::Quit);
    }
    if s.dialog.is_some() {
        return dialog_key(s, key);
    }
    if s.help {
        s.help = false;
        return None;
    }
    if s.filter_editing {
        match key.code {
            KeyCode::Enter => s.filter_editing = false,
            KeyCode::Esc => {
                s.filter_editing = false;
                clear_search(s);
            }
            KeyCode::Backspace => {
                edit_search(s, |t| {
                    t.pop();
                });
            }
            KeyCode::Char(c) => edit_search(s, |t| t.push(c)),
            _ => {}
        }
        return None;
    }
    let action = km.lookup(s.view, &key)?;
    s.message = None;
    update(s, action)
}

fn clear_search(s: &mut AppState) {
    match s.view {
        View::Detail => s.log.search = None,
        _ => s.filter.clear(),
    }
}

fn edit_search(s: &mut AppState, f: impl FnOnce(&mut String)) {
    match s.view {
        View::Detail => f(s.log.search.get_or_insert_with(String::new)),
        _ => {
            f(&mut s.filter);
            s.runs_sel = 0;
        }
    }
}

fn text_input(input: &mut String, code: KeyCode) {
    match code {
        KeyCode::Backspace => {
            input.pop();
        }
        KeyCode::Char(c) => input.push(c),
        _ => {}
    }
}

fn dialog_key(s: &mut AppState, key: KeyEvent) -> Option<Effect> {
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
                let verb = match decision {
                    Decision::Approve => "Approve",
                    Decision::Reject => "Reject",
                };
                // Service gates stand before an environment; infra gates are keyed
                // `env` (environment gate), `env/node` (node gate) or `env/node/apply`
                // (a pause before applying a reviewed plan).
                let parts: Vec<&str> = env.split('/').collect();
                let (what_gate, what) = match (parts.as_slice(), decision) {
                    ([e], Decision::Approve) => (
                        format!("the gate before {e}"),
                        format!("run {run} deploys to {e} and continues"),
                    ),
                    ([e], Decision::Reject) => (
                        format!("the gate before {e}"),
                        format!("{e} and everything after it in run {run} are skipped"),
                    ),
                    ([_, n], Decision::Approve) => (
                        format!("the gate after {n}"),
                        format!("{n}'s dependents start"),
                    ),
                    ([_, n], Decision::Reject) => (
                        format!("the gate after {n}"),
                        format!("{n}'s dependents are skipped"),
                    ),
                    ([_, n, op], Decision::Approve) => (
                        format!("the reviewed plan of {n}"),
                        format!("{n} runs {op} with exactly the plan that was previewed"),
                    ),
                    (_, _) => (
                        format!("the plan of {}", parts.get(1).unwrap_or(&"")),
                        "the plan is discarded and nothing is applied".to_string(),
                    ),
                };
                let comment = (!input.trim().is_empty()).then(|| input.trim().to_string());
                s.dialog = Some(Dialog::Confirm {
                    text: format!("{verb} {what_gate} in run {run}? {what}."),
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
        Dialog::Trigger {
            mut service,
            mut branch,
            mut commit,
            mut field,
        } => {
            match (key.code, &field) {
                (KeyCode::Esc, _) => return None,
                (KeyCode::Enter, _) => {
                    let name = s.services.get(service)?.clone();
                    return Some(Effect::Trigger {
                        service: name,
                        branch: (!branch.trim().is_empty()).then(|| branch.trim().to_string()),
                        commit: (!commit.trim().is_empty()).then(|| commit.trim().to_string()),
                    });
                }
                (KeyCode::Tab | KeyCode::Down, _) => {
                    field = match field {
                        TriggerField::Service => TriggerField::Branch,
                        TriggerField::Branch => TriggerField::Commit,
                        TriggerField::Commit => TriggerField::Service,
                    }
                }
                (KeyCode::Up | KeyCode::BackTab, _) => {
                    field = match field {
                        TriggerField::Service => TriggerField::Commit,
                        TriggerField::Branch => TriggerField::Service,
                        TriggerField::Commit => TriggerField::Branch,
                    }
                }
                (KeyCode::Left, TriggerField::Service) => service = service.saturating_sub(1),
                (KeyCode::Right | KeyCode::Char(' '), TriggerField::Service) => {
                    service = (service + 1) % s.services.len().max(1)
                }
                (code, TriggerField::Branch) => text_input(&mut branch, code),
                (code, TriggerField::Commit) => text_input(&mut commit, code),
                _ => {}
            }
            s.dialog = Some(Dialog::Trigger {
                service,
                branch,
                commit,
                field,
            });
            None
        }
        Dialog::CommandLine(mut input) => match key.code {
            KeyCode::Esc => None,
            KeyCode::Enter => {
                match input.trim() {
                    "runs" | "r" => s.view = View::Runs,
                    "approvals" | "inbox" | "a" | "gates" => s.view = View::Approvals,
                    "detail" | "d" if s.detail.is_some() => s.view = View::Detail,
                    "q" | "quit" => return update(s, Action::Quit),
                    other => s.error(format!("no view `{other}`: try :runs or :approvals")),
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

fn cancel_dialog(s: &mut AppState, run: i64, status: RunStatus) {
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

/// Applies one action.
pub fn update(s: &mut AppState, a: Action) -> Option<Effect> {
    match (a, s.view) {
        (Action::Quit, _) => {
            let active = s.active_runs();
            if s.hosting && active > 0 {
                s.dialog = Some(Dialog::Quit { active });
                None
            } else {
                Some(Effect::Quit { stop_engine: true })
            }
        }
        (Action::Help, _) => {
            s.help = true;
            None
        }
        (Action::CommandLine, _) => {
            s.dialog = Some(Dialog::CommandLine(String::new()));
            None
        }
        (Action::Approvals, _) => {
            s.view = View::Approvals;
            None
        }
        (Action::Trigger, _) => {
            if s.services.is_empty() {
                s.error("the project defines no services");
                return None;
            }
            let service = s
                .selected_run()
                .and_then(|r| s.services.iter().position(|n| *n == r.service))
                .unwrap_or(0);
            s.dialog = Some(Dialog::Trigger {
                service,
                branch: String::new(),
                commit: String::new(),
                field: TriggerField::Service,
            });
            None
        }
        (Action::Search, _) => {
            s.filter_editing = true;
            if s.view == View::Detail {
                s.log.search = Some(String::new());
            }
            None
        }
        (Action::Back, View::Detail) => {
            let infra = s.detail.as_ref().is_some_and(|d| !d.graph.is_empty());
            s.view = if infra { View::Graph } else { View::Runs };
            None
        }
        (Action::Back, View::Approvals) | (Action::Back, View::Graph) => {
            s.view = View::Runs;
            None
        }
        // The infra DAG.
        (Action::Up | Action::Down | Action::Left | Action::Right, View::Graph) => {
            let (layout, _) = super::views::graph_of(s)?;
            let (dx, dy) = match a {
                Action::Left => (-1, 0),
                Action::Right => (1, 0),
                Action::Up => (0, -1),
                _ => (0, 1),
            };
            if let Some(n) = layout.neighbour(s.graph_sel, dx, dy) {
                s.graph_sel = n;
            }
            None
        }
        (Action::Enter, View::Graph) => {
            let d = s.detail.as_ref()?;
            let id = &d.graph.get(s.graph_sel)?.id;
            s.detail_sel = d
                .steps
                .iter()
                .position(|st| st.stage == crate::domain::Stage::Resource && st.name == *id)?;
            // Open the node's stack job on its latest operation.
            let rid = d.steps[s.detail_sel].id;
            if let Some(last) = d
                .steps
                .iter()
                .rposition(|st| st.parent_id == Some(rid) && st.started_at.is_some())
            {
                s.detail_sel = last;
            }
            s.view = View::Detail;
            s.select_step()
        }
        (Action::Approve | Action::Reject, View::Graph) => {
            let d = s.detail.as_ref()?;
            let node = d
                .graph
                .get(s.graph_sel)
                .map(|g| g.id.clone())
                .unwrap_or_default();
            let waiting: Vec<&crate::domain::GateInfo> =
                s.gates.iter().filter(|g| g.run_id == d.run.id).collect();
            let pick = waiting
                .iter()
                .find(|g| {
                    g.env.ends_with(&format!("/{node}")) || g.env.contains(&format!("/{node}/"))
                })
                .or_else(|| waiting.iter().find(|g| !g.env.contains('/')));
            let Some(g) = pick else {
                s.error(format!(
                    "no gate is waiting at {node} or before the environment"
                ));
                return None;
            };
            let (run, env) = (g.run_id, g.env.clone());
            s.dialog = Some(comment_dialog(run, env, a));
            None
        }
        (Action::Cancel, View::Graph) => {
            let (id, st) = s.detail.as_ref().map(|d| (d.run.id, d.run.status))?;
            cancel_dialog(s, id, st);
            None
        }
        (Action::Back, View::Runs) => {
            s.filter.clear();
            None
        }
        // The runs table.
        (Action::Up, View::Runs) => {
            s.runs_sel = s.runs_sel.saturating_sub(1);
            None
        }
        (Action::Down, View::Runs) => {
            s.runs_sel = (s.runs_sel + 1).min(s.visible_runs().len().saturating_sub(1));
            None
        }
        (Action::Top, View::Runs) => {
            s.runs_sel = 0;
            None
        }
        (Action::Bottom, View::Runs) => {
            s.runs_sel = s.visible_runs().len().saturating_sub(1);
            None
        }
        (Action::PageUp, View::Runs) => {
            s.runs_sel = s.runs_sel.saturating_sub(20);
            None
        }
        (Action::PageDown, View::Runs) => {
            s.runs_sel = (s.runs_sel + 20).min(s.visible_runs().len().saturating_sub(1));
            None
        }
        (Action::Sort, View::Runs) => {
            s.sort = s.sort.next();
            s.info(format!("sorted by {}", s.sort.name()));
            None
        }
        (Action::Enter, View::Runs) => {
            let (id, kind) = s.selected_run().map(|r| (r.id, r.kind))?;
            s.view = if kind == crate::domain::RunKind::Infra {
                s.graph_sel = 0;
                View::Graph
            } else {
                View::Detail
            };
            if s.detail.as_ref().is_none_or(|d| d.run.id != id) {
                s.detail = None;
                s.log = super::app::LogView {
                    follow: true,
                    wrap: s.log.wrap,
                    timestamps: s.log.timestamps,
                    streams: s.log.streams,
                    ..Default::default()
                };
            }
            Some(Effect::LoadDetail(id))
        }
        (Action::Cancel, View::Runs) => {
            let (id, st) = s.selected_run().map(|r| (r.id, r.status))?;
            cancel_dialog(s, id, st);
            None
        }
        (Action::Rerun, View::Runs) | (Action::Rerun, View::Detail) => {
            let id = match s.view {
                View::Runs => s.selected_run()?.id,
                _ => s.detail.as_ref()?.run.id,
            };
            s.dialog = Some(Dialog::Confirm {
                text: format!(
                    "Rerun run {id}? A new attempt starts at the same commit with the same pipeline definition."
                ),
                effect: Effect::Rerun(id),
            });
            None
        }
        // The run detail.
        (Action::Up, View::Detail) => {
            s.detail_sel = s.detail_sel.saturating_sub(1);
            s.select_step()
        }
        (Action::Down, View::Detail) => {
            let n = s.detail.as_ref().map_or(0, |d| d.steps.len());
            s.detail_sel = (s.detail_sel + 1).min(n.saturating_sub(1));
            s.select_step()
        }
        (Action::Top, View::Detail) => scroll_to(s, 0),
        (Action::Bottom, View::Detail) | (Action::Follow, View::Detail) => {
            s.log.follow = true;
            s.log.top = 0;
            let have = s.log.first + s.log.lines.len() as u64;
            if have < s.log.total || s.log.lines.is_empty() {
                // Jump to the tail of the log.
                let run = s.detail.as_ref()?.run.id;
                let step = s.log.step?;
                let from = s.log.total.saturating_sub(LOG_WINDOW as u64);
                s.log.loading = true;
                return Some(Effect::LoadLogs {
                    run,
                    step,
                    from,
                    limit: LOG_WINDOW,
                });
            }
            None
        }
        (Action::PageUp, View::Detail) => {
            let h = s.log_rows() as u64;
            let top = current_top(s).saturating_sub(h);
            scroll_to(s, top)
        }
        (Action::PageDown, View::Detail) => {
            if s.log.follow {
                return None;
            }
            let h = s.log_rows() as u64;
            let top = s.log.top + h;
            if top + h >= s.log.total {
                return update(s, Action::Follow);
            }
            scroll_to(s, top)
        }
        (Action::Wrap, View::Detail) => {
            s.log.wrap = !s.log.wrap;
            None
        }
        (Action::Timestamps, View::Detail) => {
            s.log.timestamps = !s.log.timestamps;
            None
        }
        (Action::StreamMarker, View::Detail) => {
            s.log.streams = !s.log.streams;
            None
        }
        (Action::NextMatch, View::Detail) | (Action::PrevMatch, View::Detail) => {
            let needle = s.log.search.clone().filter(|n| !n.is_empty())?;
            let top = current_top(s);
            let forward = a == Action::NextMatch;
            let hit = s
                .log
                .lines
                .iter()
                .filter(|l| l.text.contains(&needle))
                .map(|l| l.n)
                .filter(|&n| if forward { n > top } else { n < top });
            let hit = if forward { hit.min() } else { hit.max() };
            match hit {
                Some(n) => scroll_to(s, n),
                None => {
                    s.info(format!(
                        "no more matches for `{needle}` in the loaded window"
                    ));
                    None
                }
            }
        }
        (Action::Cancel, View::Detail) => {
            let (id, st) = s.detail.as_ref().map(|d| (d.run.id, d.run.status))?;
            cancel_dialog(s, id, st);
            None
        }
        (Action::Approve | Action::Reject, View::Detail) => {
            let Some(g) = s.waiting_gate_in_detail() else {
                s.error("no gate is waiting in this run");
                return None;
            };
            let (run, env) = (g.run_id, g.env.clone());
            s.dialog = Some(comment_dialog(run, env, a));
            None
        }
        // The approvals inbox.
        (Action::Up, View::Approvals) => {
            s.gate_sel = s.gate_sel.saturating_sub(1);
            None
        }
        (Action::Down, View::Approvals) => {
            s.gate_sel = (s.gate_sel + 1).min(s.gates.len().saturating_sub(1));
            None
        }
        (Action::Approve | Action::Reject, View::Approvals) => {
            let Some(g) = s.gates.get(s.gate_sel) else {
                s.error("no gate is waiting");
                return None;
            };
            let (run, env) = (g.run_id, g.env.clone());
            s.dialog = Some(comment_dialog(run, env, a));
            None
        }
        (Action::Enter, View::Approvals) => {
            let id = s.gates.get(s.gate_sel)?.run_id;
            if let Some(pos) = s.visible_runs().iter().position(|r| r.id == id) {
                s.runs_sel = pos;
            }
            let infra = s
                .runs
                .iter()
                .any(|r| r.id == id && r.kind == crate::domain::RunKind::Infra);
            s.view = if infra { View::Graph } else { View::Detail };
            s.detail = None;
            Some(Effect::LoadDetail(id))
        }
        _ => None,
    }
}

/// The mouse wheel: scrolls the log in the run detail, moves the selection elsewhere.
pub fn scroll(s: &mut AppState, lines: i64) -> Option<Effect> {
    if s.view != View::Detail {
        let a = if lines < 0 { Action::Up } else { Action::Down };
        return update(s, a);
    }
    let top = current_top(s);
    let end = s.log.first + s.log.lines.len() as u64;
    if lines > 0 && top + s.log_rows() as u64 + lines as u64 >= end.max(s.log.total) {
        return update(s, Action::Follow);
    }
    scroll_to(s, top.saturating_add_signed(lines))
}

fn comment_dialog(run: i64, env: String, a: Action) -> Dialog {
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

/// The line at the top of the pane right now.
fn current_top(s: &AppState) -> u64 {
    if s.log.follow {
        let end = s.log.first + s.log.lines.len() as u64;
        end.saturating_sub(s.log_rows() as u64)
    } else {
        s.log.top
    }
}

/// Stops following and shows line `top` at the top, loading from the store when it is
/// outside the window held in memory.
fn scroll_to(s: &mut AppState, top: u64) -> Option<Effect> {
    s.log.follow = false;
    s.log.top = top;
    let end = s.log.first + s.log.lines.len() as u64;
    let h = s.log_rows() as u64;
    let inside = top >= s.log.first && (top + h <= end || end >= s.log.total);
    if inside {
        return None;
    }
    let run = s.detail.as_ref()?.run.id;
    let step = s.log.step?;
    let from = top.saturating_sub((LOG_WINDOW / 2) as u64);
    s.log.loading = true;
    Some(Effect::LoadLogs {
        run,
        step,
        from,
        limit: LOG_WINDOW,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{GateInfo, GateStatus, RunInfo, RunKind, RunType, Trigger};

    fn run(id: i64, status: RunStatus) -> RunInfo {
        RunInfo {
            id,
            kind: RunKind::Service,
            service: "web".into(),
            run_type: RunType::Production,
            trigger: Trigger::Manual,
            branch: "main".into(),
            tag: None,
            commit_sha: "abcdef0123".into(),
            commit_message: "msg".into(),
            author: "a".into(),
            triggered_by: "a".into(),
            status,
            reason: None,
            created_at: 0,
            started_at: Some(0),
            ended_at: None,
            rerun_of: None,
            attempt: 1,
            operation: None,
        }
    }

    fn press(s: &mut AppState, c: KeyCode) -> Option<Effect> {
        on_key(s, &Keymap::default(), KeyEvent::new(c, KeyModifiers::NONE))
    }

    fn state() -> AppState {
        let mut s = AppState::new(vec!["web".into()], true, "/d".into());
        s.runs = vec![
            run(2, RunStatus::AwaitingApproval),
            run(1, RunStatus::Succeeded),
        ];
        s.gates = vec![GateInfo {
            id: 9,
            run_id: 2,
            env: "prod".into(),
            status: GateStatus::Waiting,
            opened_at: 0,
            expires_at: None,
            decided_by: None,
            decided_at: None,
            comment: None,
        }];
        s
    }

    #[test]
    fn destructive_actions_need_confirmation() {
        let mut s = state();
        assert_eq!(press(&mut s, KeyCode::Char('c')), None);
        assert!(
            matches!(&s.dialog, Some(Dialog::Confirm { text, .. }) if text.contains("deploy in flight finishes"))
        );
        assert_eq!(press(&mut s, KeyCode::Char('n')), None);
        assert!(s.dialog.is_none());
        press(&mut s, KeyCode::Char('c'));
        assert_eq!(press(&mut s, KeyCode::Char('y')), Some(Effect::Cancel(2)));
        // A finished run is not cancellable.
        press(&mut s, KeyCode::Char('j'));
        assert_eq!(press(&mut s, KeyCode::Char('c')), None);
        assert!(s.dialog.is_none() && s.message.as_ref().is_some_and(|m| m.0));
    }

    #[test]
    fn approving_from_the_inbox_carries_the_comment() {
        let mut s = state();
        press(&mut s, KeyCode::Char('i'));
        assert_eq!(s.view, View::Approvals);
        press(&mut s, KeyCode::Char('a'));
        for c in "ok".chars() {
            press(&mut s, KeyCode::Char(c));
        }
        press(&mut s, KeyCode::Enter);
        assert_eq!(
            press(&mut s, KeyCode::Char('y')),
            Some(Effect::Decide {
                run: 2,
                env: "prod".into(),
                decision: Decision::Approve,
                comment: Some("ok".into())
            })
        );
    }

    #[test]
    fn quitting_a_hosting_dashboard_with_active_runs_asks() {
        let mut s = state();
        assert_eq!(press(&mut s, KeyCode::Char('q')), None);
        assert!(matches!(s.dialog, Some(Dialog::Quit { active: 1 })));
        assert_eq!(
            press(&mut s, KeyCode::Char('k')),
            Some(Effect::Quit { stop_engine: false })
        );
        let mut s = state();
        s.hosting = false;
        assert_eq!(
            press(&mut s, KeyCode::Char('q')),
            Some(Effect::Quit { stop_engine: true })
        );
    }

    #[test]
    fn filter_as_you_type_and_trigger() {
        let mut s = state();
        press(&mut s, KeyCode::Char('/'));
        for c in "succ".chars() {
            press(&mut s, KeyCode::Char(c));
        }
        assert_eq!(s.visible_runs().len(), 1);
        press(&mut s, KeyCode::Esc);
        assert_eq!(s.visible_runs().len(), 2);
        press(&mut s, KeyCode::Char('t'));
        press(&mut s, KeyCode::Tab);
        for c in "dev".chars() {
            press(&mut s, KeyCode::Char(c));
        }
        assert_eq!(
            press(&mut s, KeyCode::Enter),
            Some(Effect::Trigger {
                service: "web".into(),
                branch: Some("dev".into()),
                commit: None
            })
        );
    }
}
