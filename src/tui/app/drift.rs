//! What the dashboard knows of drift (issue 22, part 5): each resource's latest check,
//! loaded once and then kept by `drift` events. The infra DAG view marks drifted
//! nodes; the runs table marks each pipeline's newest infra run.

use std::collections::{BTreeMap, HashMap};

use crate::domain::drift::{DriftRecord, DriftReport, DriftStatus};
use crate::domain::{Operation, RunInfo, RunKind};

/// Each pipeline's resources' latest drift check.
#[derive(Debug, Default, Clone)]
pub struct DriftMarks {
    by_project: BTreeMap<String, BTreeMap<String, DriftRecord>>,
}

impl DriftMarks {
    /// Replaces everything (a fresh read).
    pub fn load(&mut self, records: Vec<DriftRecord>) {
        self.by_project.clear();
        for r in records {
            self.by_project
                .entry(r.project.clone())
                .or_default()
                .insert(r.resource.clone(), r);
        }
    }

    /// A check of one pipeline replaces what its last one said.
    pub fn apply(&mut self, report: &DriftReport) {
        let map = self.by_project.entry(report.project.clone()).or_default();
        map.clear();
        for r in DriftRecord::of(report) {
            map.insert(r.resource.clone(), r);
        }
    }

    /// Resource `resource` of `project`, if its latest check found it drifted.
    pub fn drifted(&self, project: &str, resource: &str) -> Option<&DriftRecord> {
        self.by_project
            .get(project)?
            .get(resource)
            .filter(|r| r.status == DriftStatus::Drifted)
    }

    /// The drifted resources of `project`, by id.
    pub fn drifted_in(&self, project: &str) -> Vec<&DriftRecord> {
        self.by_project
            .get(project)
            .into_iter()
            .flat_map(|m| m.values())
            .filter(|r| r.status == DriftStatus::Drifted)
            .collect()
    }

    /// The runs that carry a pipeline's drift marker in the runs table: its newest
    /// deploy (`runs` newest first), for pipelines with drift.
    pub fn marked_runs(&self, runs: &[RunInfo]) -> HashMap<i64, String> {
        let mut out = HashMap::new();
        if self.by_project.is_empty() {
            return out;
        }
        let mut seen = std::collections::HashSet::new();
        for r in runs {
            if seen.len() == self.by_project.len() {
                break;
            }
            // The pipeline's deploys, not one resource's stack job nor an undeploy.
            if r.kind != RunKind::Infra
                || r.operation == Some(Operation::Destroy)
                || !self.by_project.contains_key(&r.service)
                || !seen.insert(r.service.as_str())
            {
                continue;
            }
            if let Some(m) = self.marker(&r.service) {
                out.insert(r.id, m);
            }
        }
        out
    }

    /// `drift: db (1 to change), vpc (1 to add)`, if `project` has drifted resources.
    pub fn marker(&self, project: &str) -> Option<String> {
        let list: Vec<String> = self
            .drifted_in(project)
            .into_iter()
            .map(|r| match &r.summary {
                Some(s) => format!("{} ({})", r.resource, short_counts(s)),
                None => r.resource.clone(),
            })
            .collect();
        (!list.is_empty()).then(|| format!("drift: {}", list.join(", ")))
    }
}

/// `1 to add, 1 to change`: the counts that are not zero.
pub fn short_counts(s: &serde_json::Value) -> String {
    let parts: Vec<String> = [
        ("add", "to add"),
        ("change", "to change"),
        ("destroy", "to destroy"),
    ]
    .iter()
    .filter_map(|(k, w)| {
        let n = s[k].as_i64().unwrap_or(0);
        (n > 0).then(|| format!("{n} {w}"))
    })
    .collect();
    if parts.is_empty() {
        "changes".into()
    } else {
        parts.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::drift::ResourceDrift;

    #[test]
    fn marks_the_newest_infra_run_of_a_drifted_pipeline() {
        let mut m = DriftMarks::default();
        m.apply(&DriftReport {
            project: "net".into(),
            environment: "prod".into(),
            checked_at: 1,
            elapsed_ms: 0,
            resources: vec![
                ResourceDrift {
                    resource: "db".into(),
                    status: DriftStatus::Drifted,
                    summary: Some(serde_json::json!({"add": 0, "change": 1, "destroy": 0})),
                    detail: None,
                    elapsed_ms: 0,
                },
                ResourceDrift {
                    resource: "vpc".into(),
                    status: DriftStatus::InSync,
                    summary: None,
                    detail: None,
                    elapsed_ms: 0,
                },
            ],
        });
        assert!(m.drifted("net", "db").is_some());
        assert!(m.drifted("net", "vpc").is_none());
        assert_eq!(m.marker("net").unwrap(), "drift: db (1 to change)");
        let mut a = crate::tui::app::tests::run(3, crate::domain::RunStatus::Succeeded);
        a.kind = RunKind::Infra;
        a.service = "net".into();
        a.operation = Some(crate::domain::Operation::Apply);
        let mut b = a.clone();
        b.id = 2;
        let svc = crate::tui::app::tests::run(4, crate::domain::RunStatus::Succeeded);
        let marked = m.marked_runs(&[svc, a, b]);
        assert_eq!(marked.len(), 1);
        assert_eq!(marked[&3], "drift: db (1 to change)");
    }
}
