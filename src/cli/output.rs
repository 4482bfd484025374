//! Human and JSON output helpers.

use super::color;
use std::io::Write;
use std::sync::atomic::{AtomicU8, Ordering};

use crate::domain::{Millis, RunDetail, RunInfo, StepInfo, now_ms};

/// The exit code when stdout's reader went away before all output was written
/// (`pipedeck runs | head -1`): what a shell reports for a process that SIGPIPE ended.
pub const PIPE_CLOSED: i32 = 141;

/// Stdout so far: writable, its reader gone (EPIPE), or another write error.
static STDOUT: AtomicU8 = AtomicU8::new(OPEN);
const OPEN: u8 = 0;
const READER_GONE: u8 = 1;
const FAILED: u8 = 2;

/// Writes command output to stdout (through the `outln!`/`out!` macros). Where
/// `println!` would panic on a closed pipe, this stops writing: the command goes on
/// (an engine it hosts is shut down as usual) and [`exit_code`] says what happened.
pub fn write_out(args: std::fmt::Arguments<'_>) {
    if STDOUT.load(Ordering::Relaxed) != OPEN {
        return;
    }
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.flush()) {
        stdout_failed(&e);
    }
}

/// Records that a write to stdout failed: quietly when its reader went away (EPIPE),
/// said once on stderr for any other error (a full disk, say).
pub fn stdout_failed(e: &std::io::Error) {
    let state = if e.kind() == std::io::ErrorKind::BrokenPipe {
        READER_GONE
    } else {
        FAILED
    };
    if STDOUT
        .compare_exchange(OPEN, state, Ordering::Relaxed, Ordering::Relaxed)
        .is_ok()
        && state == FAILED
    {
        eprintln!("error: cannot write to stdout: {e}");
    }
}

/// A command's exit code, given what became of its output: a command that would have
/// succeeded ends with [`PIPE_CLOSED`] when its reader went away, with 1 when stdout
/// could not be written; any other outcome keeps its code.
pub fn exit_code(code: i32) -> i32 {
    match (code, STDOUT.load(Ordering::Relaxed)) {
        (super::exit::OK, READER_GONE) => PIPE_CLOSED,
        (super::exit::OK, FAILED) => super::exit::RUN_FAILED,
        _ => code,
    }
}

pub fn json<T: serde::Serialize>(v: &T) {
    match serde_json::to_string_pretty(v) {
        Ok(s) => outln!("{s}"),
        Err(e) => eprintln!("error: cannot encode JSON: {e}"),
    }
}

pub use crate::domain::ansi::inert;
pub use crate::domain::format_duration as duration;

pub fn ago(at: Millis) -> String {
    crate::tui::views::ago(now_ms(), at)
}

pub fn short(sha: &str) -> &str {
    &sha[..sha.len().min(7)]
}

/// One step: its path, its status (coloured when `color`), how long, why.
///
/// Built by pushes, not `format!`s: `run --wait` prints four of these a node (its
/// operation and its resource, running then ended), and three `format!`s a line were
/// ~30 M of the 684 M instructions of a 2,000-node infra run.
pub fn step_line(s: &StepInfo, color: bool) -> String {
    let path = inert(&s.path());
    let status = s.status.as_str();
    let words = if status.contains('_') {
        std::borrow::Cow::Owned(status.replace('_', " "))
    } else {
        std::borrow::Cow::Borrowed(status)
    };
    let mut line = String::with_capacity(path.len() + 64);
    line.push_str("  ");
    line.push_str(&path);
    line.extend(std::iter::repeat_n(
        ' ',
        24usize.saturating_sub(path.chars().count()),
    ));
    line.push(' ');
    line.push_str(&color::step_status(s.status, &words, color));
    if let (Some(a), Some(b)) = (s.started_at, s.ended_at) {
        line.push_str(" (");
        line.push_str(&duration(b - a));
        line.push(')');
    }
    if let Some(r) = &s.reason {
        line.push_str(" — ");
        line.push_str(&inert(r));
    }
    line
}

pub fn run_header(r: &RunInfo) -> String {
    format!(
        "run {} {}@{} {} \"{}\" ({}, {}, by {})",
        r.id,
        inert(&r.service),
        inert(r.place()),
        inert(short(&r.commit_sha)),
        inert(&r.commit_message),
        r.run_type,
        r.trigger,
        inert(&r.triggered_by)
    )
}

pub fn print_detail(d: &RunDetail, color: bool) {
    let r = &d.run;
    outln!("{}", run_header(r));
    let dur = r
        .duration_ms(now_ms())
        .map(duration)
        .unwrap_or_else(|| "-".into());
    outln!(
        "status: {}  duration: {dur}  attempt: {}{}",
        color::run_status(r.status, &r.status.as_str().replace('_', " "), color),
        r.attempt,
        r.rerun_of
            .map(|o| format!(" (rerun of {o})"))
            .unwrap_or_default()
    );
    if let Some(reason) = &r.reason {
        outln!("reason: {}", inert(reason));
    }
    if r.kind == crate::domain::RunKind::Rollout {
        outln!(
            "{}: each station below switches in its idle window",
            r.what()
        );
    }
    if !r.targets.is_empty() {
        // Addresses are checked against Terraform's grammar; inert all the same.
        outln!(
            "{} (preview and apply were limited to these addresses)",
            inert(&r.targeted())
        );
    }
    for u in &d.chain.upstream {
        outln!(
            "upstream: run {} {}@{} {}",
            u.run_id,
            u.service,
            u.branch,
            short(&u.commit_sha)
        );
    }
    for dn in &d.chain.downstream {
        outln!(
            "downstream: run {} {} ({})",
            dn.run_id,
            dn.service,
            dn.status.as_str().replace('_', " ")
        );
    }
    for s in &d.steps {
        outln!("{}", step_line(s, color));
        if let Some(job) = s.slurm_job {
            outln!("      slurm job {job}");
        }
        // What the step wrote to $PIPEDECK_OUTPUT (masked), or a resource's outputs.
        if let Some(serde_json::Value::Object(o)) = &s.outputs {
            for (k, v) in o {
                let v = v.as_str().map_or_else(|| v.to_string(), str::to_string);
                outln!("      {k}={}", crate::domain::ansi::sanitize(&v, false));
            }
        }
    }
    for g in &d.gates {
        let who = g
            .decided_by
            .as_deref()
            .map(|w| format!(" by {}", inert(w)))
            .unwrap_or_default();
        let c = g
            .comment
            .as_deref()
            .map(|c| format!(": {}", inert(c)))
            .unwrap_or_default();
        outln!("  gate {:<19} {}{who}{c}", inert(&g.env), g.status);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Stage, StepStatus};

    #[test]
    fn a_step_line_pads_the_path_and_says_how_long_and_why() {
        let mut s = StepInfo::sample(1, 1, StepStatus::AwaitingApproval);
        s.stage = Stage::Operation;
        s.name = "vpc.apply".into();
        assert_eq!(
            step_line(&s, false),
            "  operation/vpc.apply      awaiting approval"
        );
        s.status = StepStatus::Failed;
        s.started_at = Some(1_000);
        s.ended_at = Some(3_500);
        s.reason = Some("exit 2\\x1b[31m".into());
        assert_eq!(
            step_line(&s, false),
            "  operation/vpc.apply      failed (2.5s) — exit 2\\x1b[31m"
        );
        // A path past the column is not cut; untrusted text stays inert.
        s.name = "a-resource-with-a-long-name.apply".into();
        s.reason = Some("bad\x1b[2Jthing".into());
        assert_eq!(
            step_line(&s, false),
            format!(
                "  operation/a-resource-with-a-long-name.apply failed (2.5s) — {}",
                inert("bad\x1b[2Jthing")
            )
        );
        assert!(!step_line(&s, false).contains('\x1b'));
    }
}
