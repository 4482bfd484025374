//! What drift checks ask of the runner (issue 22, part 5): a check's findings stored
//! per resource and audited in one commit, then published; the latest findings read.

use super::{Out, Reply, Runner};
use crate::domain::Event;
use crate::domain::drift::{DriftRecord, DriftReport, DriftStatus};
use crate::engine::Result;
use crate::store::AuditEntry;

pub(crate) enum DriftMsg {
    /// Store what a check found (`by`: who asked, or `schedule:drift`).
    Record {
        report: Box<DriftReport>,
        by: String,
        reply: Reply<()>,
    },
    /// The latest findings, of one pipeline or of all.
    Latest(Option<String>, Reply<Vec<DriftRecord>>),
}

impl DriftMsg {
    /// Whether the message changes state (committed durably before it is answered).
    pub(super) fn is_decision(&self) -> bool {
        matches!(self, Self::Record { .. })
    }
}

/// The audit entry's comment: `drifted: db (0 to add, 1 to change, 0 to destroy); 2 in sync`.
fn comment(report: &DriftReport) -> String {
    let drifted: Vec<String> = report
        .drifted()
        .map(|r| match &r.summary {
            Some(s) => format!("{} ({})", r.resource, crate::domain::drift::counts(s)),
            None => r.resource.clone(),
        })
        .collect();
    let count = |st: DriftStatus| report.resources.iter().filter(|r| r.status == st).count();
    let mut parts = Vec::new();
    if !drifted.is_empty() {
        parts.push(format!("drifted: {}", drifted.join(", ")));
    }
    for st in [
        DriftStatus::InSync,
        DriftStatus::Error,
        DriftStatus::NotDeployed,
        DriftStatus::NotChecked,
    ] {
        if count(st) > 0 {
            parts.push(format!("{} {}", count(st), st.as_str().replace('_', " ")));
        }
    }
    parts.join("; ")
}

impl Runner {
    pub(super) fn drift_msg(&mut self, msg: DriftMsg, out: &mut Out) -> bool {
        match msg {
            DriftMsg::Record { report, by, reply } => {
                let r = self.record_drift(&report, &by);
                let ok = r.is_ok();
                if ok {
                    out.event(Event::Drift { report: *report });
                }
                out.reply(reply, r);
                ok
            }
            DriftMsg::Latest(project, reply) => {
                let r = self.store.drift(project.as_deref()).map_err(Into::into);
                out.reply(reply, r);
                true
            }
        }
    }

    fn record_drift(&mut self, report: &DriftReport, by: &str) -> Result<()> {
        self.store.record_drift(report)?;
        self.store.append_audit(&AuditEntry {
            at: report.checked_at,
            actor: by.to_string(),
            action: "drift_check".into(),
            run_id: AuditEntry::NO_RUN,
            target: Some(report.project.clone()),
            comment: Some(comment(report)),
        })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::drift::ResourceDrift;

    #[test]
    fn the_audit_comment_names_what_drifted() {
        let r = |id: &str, status| ResourceDrift {
            resource: id.into(),
            status,
            summary: (status == DriftStatus::Drifted)
                .then(|| serde_json::json!({"add": 0, "change": 1, "destroy": 0})),
            detail: None,
            elapsed_ms: 0,
        };
        let report = DriftReport {
            project: "net".into(),
            environment: "prod".into(),
            checked_at: 0,
            elapsed_ms: 0,
            resources: vec![
                r("db", DriftStatus::Drifted),
                r("vpc", DriftStatus::InSync),
                r("dns", DriftStatus::InSync),
                r("app", DriftStatus::NotChecked),
            ],
        };
        assert_eq!(
            comment(&report),
            "drifted: db (0 to add, 1 to change, 0 to destroy); 2 in sync; 1 not checked"
        );
    }
}
