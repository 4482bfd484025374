//! What a gate decision is about, for the approve and reject dialogs: the run, its
//! commit and author, who triggered it, what approving does, how long the gate has
//! waited and when it expires, and for infra gates the plan summary. Text from
//! commits is sanitised: no escape sequence from it reaches the terminal.

use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};

use super::dialogs::decision_text;
use super::{fit, span};
use crate::domain::ansi::{inert, sanitize};
use crate::domain::{Decision, GateKey, RunInfo, Stage};
use crate::tui::app::AppState;

/// The run `id` as the dashboard knows it (the table, or the open detail).
fn run_of(s: &AppState, id: i64) -> Option<&RunInfo> {
    s.runs
        .iter()
        .find(|r| r.id == id)
        .or_else(|| s.detail.as_ref().map(|d| &d.run).filter(|r| r.id == id))
}

/// Who may decide gate `env` of run `run`, as the engine's project defines it now.
pub fn rule_of<'a>(
    s: &'a AppState,
    run: i64,
    env: &str,
) -> Option<&'a crate::domain::command::GateRule> {
    let r = run_of(s, run)?;
    let key = GateKey::parse(env).unwrap_or_else(|| GateKey::env(env));
    s.gate_rules
        .iter()
        .find(|g| g.owner == r.service && g.env == key.env)
}

/// The plan summary the open run's stack job previewed for node `env`'s resource.
fn plan_of(s: &AppState, run: i64, env: &str) -> Option<String> {
    let d = s.detail.as_ref().filter(|d| d.run.id == run)?;
    let node = env.split('/').nth(1)?;
    d.steps
        .iter()
        .filter(|st| st.stage == Stage::Operation && st.name.starts_with(&format!("{node}.")))
        .find_map(|st| st.outputs.as_ref().filter(|o| o.get("add").is_some()))
        .map(crate::engine::executor::terraform::summary_line)
}

fn row(label: &str, value: String) -> Line<'static> {
    Line::from(vec![
        Span::styled(
            format!("{label:<10}"),
            Style::new().add_modifier(Modifier::DIM),
        ),
        Span::raw(value),
    ])
}

/// The context lines of deciding gate `env` of run `run`.
pub fn lines(s: &AppState, run: i64, env: &str, decision: Decision) -> Vec<Line<'static>> {
    let mut out = vec![Line::from(decision_text(run, env, decision))];
    out.push(Line::from(""));
    if let Some(r) = run_of(s, run) {
        let what = match r.kind {
            crate::domain::RunKind::Service => {
                format!("{}@{} · {}", r.service, r.place(), r.run_type)
            }
            _ => format!("{} · {}@{}", r.what(), r.service, r.place()),
        };
        out.push(row("run", format!("{run} · {what}")));
        if !r.commit_sha.is_empty() {
            let msg = sanitize(&r.commit_message, false);
            out.push(row(
                "commit",
                format!(
                    "{} {}",
                    &r.commit_sha[..r.commit_sha.len().min(7)],
                    fit(msg.lines().next().unwrap_or(""), 48)
                ),
            ));
            out.push(row("author", inert(&r.author)));
        }
        out.push(row("triggered", inert(&r.triggered_by)));
        if let Some(rule) = rule_of(s, run, env) {
            let who = if rule.approvers.is_empty() {
                "anyone".to_string()
            } else {
                rule.approvers.join(", ")
            };
            let not_self = if rule.forbid_self_approval {
                format!(" (not {}, who triggered it)", inert(&r.triggered_by))
            } else {
                String::new()
            };
            out.push(row("approvers", format!("{who}{not_self}")));
        }
    }
    if let Some(g) = s.gates.iter().find(|g| g.run_id == run && g.env == env) {
        let expiry = match g.expires_at {
            Some(e) if e > s.now => format!(" · expires in {}", span(e - s.now)),
            Some(_) => " · expired".to_string(),
            None => " · no expiry".to_string(),
        };
        out.push(row(
            "waiting",
            format!("{}{expiry}", span(s.now - g.opened_at)),
        ));
    }
    if let Some(plan) = plan_of(s, run, env) {
        out.push(row("plan", plan));
    }
    out
}

/// The commits gate `env` of run `run` lets through (from git, when the service's
/// repository is local): a count, then newest first, at most 20, with the rest counted.
pub fn commit_lines(s: &AppState, run: i64, env: &str) -> Vec<Line<'static>> {
    let Some(c) = s
        .gate_commits
        .as_ref()
        .filter(|c| c.run == run && c.env == env)
    else {
        return Vec::new();
    };
    let since = match &c.current {
        Some(sha) => format!("since {} runs {}", inert(env), &sha[..sha.len().min(7)]),
        None => format!("(nothing deployed to {} yet)", inert(env)),
    };
    let mut out = vec![
        Line::from(""),
        row(
            "changes",
            format!(
                "{} commit{} {since}",
                c.total,
                if c.total == 1 { "" } else { "s" }
            ),
        ),
    ];
    for k in &c.commits {
        out.push(Line::from(format!(
            "  {} {} ({})",
            inert(&k.sha),
            fit(&inert(&k.subject), 44),
            fit(&inert(&k.author), 16)
        )));
    }
    if c.total > c.commits.len() {
        out.push(Line::from(format!(
            "  … and {} more",
            c.total - c.commits.len()
        )));
    }
    out
}
