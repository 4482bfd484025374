//! Human and JSON output helpers.

use super::color;
use crate::domain::{Millis, RunDetail, RunInfo, StepInfo, now_ms};

pub fn json<T: serde::Serialize>(v: &T) {
    match serde_json::to_string_pretty(v) {
        Ok(s) => println!("{s}"),
        Err(e) => eprintln!("error: cannot encode JSON: {e}"),
    }
}

pub use crate::domain::format_duration as duration;

pub fn ago(at: Millis) -> String {
    crate::tui::views::ago(now_ms(), at)
}

pub fn short(sha: &str) -> &str {
    &sha[..sha.len().min(7)]
}

/// One step: its path, its status (coloured when `color`), how long, why.
pub fn step_line(s: &StepInfo, color: bool) -> String {
    let dur = match (s.started_at, s.ended_at) {
        (Some(a), Some(b)) => format!(" ({})", duration(b - a)),
        _ => String::new(),
    };
    let reason = s
        .reason
        .as_deref()
        .map(|r| format!(" — {r}"))
        .unwrap_or_default();
    format!(
        "  {:<24} {}{dur}{reason}",
        s.path(),
        color::step_status(s.status, &s.status.as_str().replace('_', " "), color)
    )
}

pub fn run_header(r: &RunInfo) -> String {
    format!(
        "run {} {}@{} {} \"{}\" ({}, {}, by {})",
        r.id,
        r.service,
        r.place(),
        short(&r.commit_sha),
        crate::domain::ansi::sanitize(&r.commit_message, false),
        r.run_type,
        r.trigger,
        r.triggered_by
    )
}

pub fn print_detail(d: &RunDetail, color: bool) {
    let r = &d.run;
    println!("{}", run_header(r));
    let dur = r
        .duration_ms(now_ms())
        .map(duration)
        .unwrap_or_else(|| "-".into());
    println!(
        "status: {}  duration: {dur}  attempt: {}{}",
        color::run_status(r.status, &r.status.as_str().replace('_', " "), color),
        r.attempt,
        r.rerun_of
            .map(|o| format!(" (rerun of {o})"))
            .unwrap_or_default()
    );
    if let Some(reason) = &r.reason {
        println!("reason: {reason}");
    }
    for s in &d.steps {
        println!("{}", step_line(s, color));
    }
    for g in &d.gates {
        let who = g
            .decided_by
            .as_deref()
            .map(|w| format!(" by {w}"))
            .unwrap_or_default();
        let c = g
            .comment
            .as_deref()
            .map(|c| format!(": {c}"))
            .unwrap_or_default();
        println!("  gate {:<19} {}{who}{c}", g.env, g.status);
    }
}
