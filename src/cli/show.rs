//! `pipedeck runs` and `pipedeck show RUN`.

use super::output::{self, ago, duration, inert, short};
use super::{Ctx, color, exit, fail};
use crate::api::EngineClient;
use crate::domain::{Request, RunDetail, RunInfo, RunStatus, ansi::sanitize, now_ms};
use crate::store::{AuditEntry, RunFilter};

pub async fn runs(ctx: &Ctx, service: Option<String>, status: Option<String>, limit: usize) -> i32 {
    let status = match status.as_deref().map(|s| (s, RunStatus::parse(s))) {
        None => None,
        Some((_, Some(s))) => Some(s),
        Some((s, None)) => {
            let words: Vec<&str> = RunStatus::ALL.iter().map(|s| s.as_str()).collect();
            eprintln!(
                "error: unknown status `{s}`\n  hint: use one of {}",
                words.join(", ")
            );
            return exit::USAGE;
        }
    };
    let c = match ctx.connect() {
        Ok(c) => c,
        Err(code) => return code,
    };
    let filter = RunFilter {
        id: None,
        service,
        status,
        limit: Some(limit),
    };
    let runs = match c.ask::<Vec<RunInfo>>(Request::ListRuns { filter }).await {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    if ctx.json {
        output::json(&runs);
        return exit::OK;
    }
    outln!(
        "{:>5}  {:<12} {:<8} {:<40} {:<11} {:<18} {:>8}  {:<9} BRANCH / AUTHOR",
        "RUN",
        "SERVICE",
        "COMMIT",
        "MESSAGE",
        "TYPE",
        "STATUS",
        "DURATION",
        "STARTED",
    );
    let now = now_ms();
    for r in runs {
        // A targeted stack job or a rollout says so first (`[targeted: a.b] …`).
        let msg = match r.marker() {
            t if t.is_empty() => inert(&r.commit_message),
            t => format!("[{}] {}", inert(&t), inert(&r.commit_message)),
        };
        let msg: String = msg.chars().take(40).collect();
        outln!(
            "{:>5}  {:<12} {:<8} {:<40} {:<11} {} {:>8}  {:<9} {} / {}",
            r.id,
            inert(&r.service),
            inert(short(&r.commit_sha)),
            msg,
            r.run_type.as_str(),
            color::run_status(r.status, &format!("{:<18}", r.status.as_str()), ctx.color),
            r.duration_ms(now)
                .map(duration)
                .unwrap_or_else(|| "-".into()),
            ago(r.created_at),
            inert(r.place()),
            inert(&r.author)
        );
    }
    exit::OK
}

pub async fn show(ctx: &Ctx, run: i64) -> i32 {
    let c = match ctx.connect() {
        Ok(c) => c,
        Err(code) => return code,
    };
    match c.ask::<RunDetail>(Request::Detail { run_id: run }).await {
        Ok(d) => {
            if ctx.json {
                output::json(&d);
            } else {
                output::print_detail(&d, ctx.color);
                // Outbound calls given up (commit statuses, notifications).
                let audit = c
                    .ask::<Vec<AuditEntry>>(Request::Audit { run_id: run })
                    .await;
                for e in audit.unwrap_or_default() {
                    if e.action == "outbound_failed" {
                        let what = e.target.unwrap_or_default();
                        let why = e.comment.unwrap_or_default();
                        outln!("  outbound {what}: {}", sanitize(&why, false));
                    }
                }
            }
            exit::OK
        }
        Err(e) => fail(e),
    }
}
