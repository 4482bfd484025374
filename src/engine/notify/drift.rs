//! Drift notifications (issue 22, part 5): a check that found drifted resources tells
//! each `[[notify]]` entry listening for `drifted` (and naming the pipeline, or
//! nothing), with each drifted resource and its plan summary. A check that found
//! nothing drifted sends nothing.

use serde_json::json;

use super::Delivery;
use crate::config::Project;
use crate::config::outbound::{NotifyEvent, NotifyFormat};
use crate::domain::drift::{DriftReport, counts};
use crate::engine::executor::terraform::summary_line;
use crate::store::AuditEntry;

/// `net (prod): drift in db (0 to add, 1 to change, 0 to destroy)`.
pub(crate) fn text(report: &DriftReport) -> String {
    let list: Vec<String> = report
        .drifted()
        .map(|r| match &r.summary {
            Some(s) => format!("{} ({})", r.resource, counts(s)),
            None => r.resource.clone(),
        })
        .collect();
    format!(
        "{} ({}): drift in {}",
        report.project,
        report.environment,
        list.join(", ")
    )
}

/// The body posted.
pub(crate) fn payload(format: NotifyFormat, report: &DriftReport) -> serde_json::Value {
    let text = text(report);
    match format {
        NotifyFormat::Slack => json!({ "text": text }),
        NotifyFormat::Json => json!({
            "event": NotifyEvent::Drifted,
            "text": text,
            "project": report.project,
            "environment": report.environment,
            "checked_at": report.checked_at,
            "drifted": report.drifted().map(|r| json!({
                "resource": r.resource,
                "plan": r.summary.as_ref().map(summary_line),
                "summary": r.summary,
            })).collect::<Vec<_>>(),
        }),
    }
}

/// The calls a check makes: none when nothing drifted.
pub(super) fn deliveries(project: &Project, report: &DriftReport) -> Vec<Delivery> {
    if report.drifted().next().is_none() {
        return Vec::new();
    }
    let mut out = Vec::new();
    for (n, url) in super::listening(project, NotifyEvent::Drifted, &report.project) {
        out.push(Delivery {
            run_id: AuditEntry::NO_RUN,
            what: format!("notify {} (drift of {})", n.name, report.project),
            url: url.clone(),
            bearer: None,
            body: payload(n.format, report),
            retry: n.retry,
            secrets: vec![url],
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::drift::{DriftStatus, ResourceDrift};

    #[test]
    fn names_each_drifted_resource_with_its_plan() {
        let report = DriftReport {
            project: "net".into(),
            environment: "prod".into(),
            checked_at: 7,
            elapsed_ms: 0,
            resources: vec![ResourceDrift {
                resource: "db".into(),
                status: DriftStatus::Drifted,
                summary: Some(json!({"add": 0, "change": 1, "destroy": 0,
                    "changes": [{"address": "terraform_data.x", "action": "update"}]})),
                detail: None,
                elapsed_ms: 0,
            }],
        };
        assert_eq!(
            text(&report),
            "net (prod): drift in db (0 to add, 1 to change, 0 to destroy)"
        );
        let v = payload(NotifyFormat::Json, &report);
        assert_eq!(v["event"], "drifted");
        assert_eq!(
            v["drifted"][0]["plan"],
            "plan: 0 to add, 1 to change, 0 to destroy (update terraform_data.x)"
        );
        assert_eq!(payload(NotifyFormat::Slack, &report)["text"], text(&report));
    }
}
