//! `pipedeck infra drift PROJECT`: the engine checks every resource for drift now.

use super::{Ctx, exit, fail};
use crate::api::EngineClient;
use crate::domain::Request;
use crate::domain::ansi::sanitize;
use crate::domain::drift::{DriftRecord, DriftReport, DriftStatus, ResourceDrift};
use crate::engine::executor::terraform::summary_line;

pub async fn drift(ctx: &Ctx, project: String) -> i32 {
    let c = match ctx.connect() {
        Ok(c) => c,
        Err(code) => return code,
    };
    let report = match c.ask::<DriftReport>(Request::InfraDrift { project }).await {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    if ctx.json {
        super::output::json(&report);
    } else {
        out!("{}", text(&report));
    }
    if report.clean() {
        exit::OK
    } else {
        exit::RUN_FAILED
    }
}

/// `pipedeck infra drift PROJECT --last`: the latest check of each resource, as stored.
pub async fn last(ctx: &Ctx, project: String) -> i32 {
    let c = match ctx.connect() {
        Ok(c) => c,
        Err(code) => return code,
    };
    let req = Request::DriftResults {
        project: Some(project.clone()),
    };
    let records = match c.ask::<Vec<DriftRecord>>(req).await {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    if ctx.json {
        super::output::json(&records);
    } else if records.is_empty() {
        outln!(
            "{project} has not been checked for drift yet (pipedeck infra drift {project} checks now)"
        );
    } else {
        for r in &records {
            let what = what(&ResourceDrift {
                resource: r.resource.clone(),
                status: r.status,
                summary: r.summary.clone(),
                detail: r.detail.clone(),
                elapsed_ms: 0,
            });
            let line = format!(
                "  {:<16} {:<13} {:<9} {}",
                r.resource,
                r.status.as_str(),
                super::output::ago(r.checked_at),
                what
            );
            outln!("{}", line.trim_end());
        }
    }
    let clean = records
        .iter()
        .all(|r| !matches!(r.status, DriftStatus::Drifted | DriftStatus::Error));
    if clean { exit::OK } else { exit::RUN_FAILED }
}

/// The report as lines: one per resource, with the plan summary or why.
pub fn text(report: &DriftReport) -> String {
    let mut out = format!(
        "drift check of {} → {} ({} ms)\n",
        report.project, report.environment, report.elapsed_ms
    );
    for r in &report.resources {
        let line = format!("  {:<16} {:<13} {}", r.resource, r.status.as_str(), what(r));
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn what(r: &ResourceDrift) -> String {
    match (r.status, &r.summary, &r.detail) {
        (DriftStatus::Drifted, Some(s), _) => summary_line(s),
        // Terraform's words (and a module's strings in them) are untrusted.
        (_, _, Some(d)) => sanitize(&d.replace('\n', " "), false),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_shows_summary_and_sanitised_detail() {
        let report = DriftReport {
            project: "net".into(),
            environment: "prod".into(),
            checked_at: 0,
            elapsed_ms: 5,
            resources: vec![
                ResourceDrift {
                    resource: "vpc".into(),
                    status: DriftStatus::Drifted,
                    summary: Some(serde_json::json!({"add": 1, "change": 0, "destroy": 1,
                        "changes": [{"address": "terraform_data.x", "action": "replace"}]})),
                    detail: None,
                    elapsed_ms: 1,
                },
                ResourceDrift {
                    resource: "db".into(),
                    status: DriftStatus::Error,
                    summary: None,
                    detail: Some("bad \u{1b}]0;owned\u{7}\nthing".into()),
                    elapsed_ms: 1,
                },
            ],
        };
        let t = text(&report);
        assert!(t.contains("vpc              drifted       plan: 1 to add, 0 to change, 1 to destroy (replace terraform_data.x)"), "{t}");
        assert!(!t.contains('\u{1b}'), "{t}");
        assert!(t.contains("db               error"), "{t}");
        assert!(!report.clean());
    }
}
