//! Each infra resource's latest drift check (issue 22, part 5): drifted or not, the
//! plan summary, when. A check of a pipeline replaces what its previous check said.

use rusqlite::params;

use super::{Result, Store};
use crate::domain::drift::{DriftRecord, DriftReport, DriftStatus};

impl Store {
    /// Records what a check of a pipeline found; resources it no longer has are
    /// forgotten.
    pub(crate) fn record_drift(&self, report: &DriftReport) -> Result<()> {
        self.conn
            .prepare_cached("DELETE FROM drift WHERE project = ?1")?
            .execute(params![report.project])?;
        for r in DriftRecord::of(report) {
            let summary = r.summary.as_ref().map(|s| s.to_string());
            self.conn
                .prepare_cached(
                    "INSERT INTO drift (project, resource, status, summary, detail, checked_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )?
                .execute(params![
                    r.project,
                    r.resource,
                    r.status.as_str(),
                    summary,
                    r.detail,
                    r.checked_at
                ])?;
        }
        Ok(())
    }

    /// The latest check of every resource (of one pipeline, or of all), by pipeline and
    /// resource.
    pub fn drift(&self, project: Option<&str>) -> Result<Vec<DriftRecord>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT project, resource, status, summary, detail, checked_at FROM drift \
             WHERE ?1 IS NULL OR project = ?1 ORDER BY project, resource",
        )?;
        let rows = stmt.query_map(params![project], |r| {
            Ok(DriftRecord {
                project: r.get(0)?,
                resource: r.get(1)?,
                status: super::word(DriftStatus::parse, r.get(2)?, 2)?,
                summary: r
                    .get::<_, Option<String>>(3)?
                    .and_then(|s| serde_json::from_str(&s).ok()),
                detail: r.get(4)?,
                checked_at: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Millis;
    use crate::domain::drift::ResourceDrift;
    use crate::domain::target::parse_all;
    use crate::domain::{Operation, RunSpec};
    use crate::store::NewRun;

    fn report(at: Millis, resources: &[(&str, DriftStatus)]) -> DriftReport {
        DriftReport {
            project: "net".into(),
            environment: "prod".into(),
            checked_at: at,
            elapsed_ms: 1,
            resources: resources
                .iter()
                .map(|(id, st)| ResourceDrift {
                    resource: id.to_string(),
                    status: *st,
                    summary: (*st == DriftStatus::Drifted)
                        .then(|| serde_json::json!({"add": 0, "change": 1, "destroy": 0})),
                    detail: None,
                    elapsed_ms: 1,
                })
                .collect(),
        }
    }

    #[test]
    fn a_check_replaces_the_previous_one() {
        let s = Store::in_memory().unwrap();
        s.record_drift(&report(
            5,
            &[("a", DriftStatus::InSync), ("b", DriftStatus::Drifted)],
        ))
        .unwrap();
        let d = s.drift(Some("net")).unwrap();
        assert_eq!(d.len(), 2);
        assert_eq!(d[1].status, DriftStatus::Drifted);
        assert_eq!(d[1].summary.as_ref().unwrap()["change"], 1);
        s.record_drift(&report(9, &[("a", DriftStatus::InSync)]))
            .unwrap();
        let d = s.drift(None).unwrap();
        assert_eq!(d.len(), 1, "b is no longer a resource: forgotten");
        assert_eq!(d[0].checked_at, 9);
        assert!(s.drift(Some("other")).unwrap().is_empty());
    }

    #[test]
    fn a_targeted_stack_job_keeps_its_addresses() {
        let s = Store::in_memory().unwrap();
        let targets = parse_all(&["terraform_data.a".into(), "module.m.x.y[0]".into()]).unwrap();
        let new = |targets| {
            NewRun::sample(RunSpec::StackJob {
                project: "net".into(),
                environment: "prod".into(),
                resource: "db".into(),
                operation: Operation::Apply,
                state: None,
                targets,
            })
        };
        let run = s.insert_run(&new(targets.clone()), 1).unwrap();
        assert_eq!(run.targets, targets);
        assert_eq!(
            run.targeted(),
            "targeted: terraform_data.a, module.m.x.y[0]"
        );
        let RunSpec::StackJob { targets: back, .. } = run.spec() else {
            panic!("not a stack job")
        };
        assert_eq!(back, targets, "a rerun repeats the same targets");
        let plain = s.insert_run(&new(Vec::new()), 2).unwrap();
        assert!(plain.targets.is_empty());
        assert_eq!(plain.targeted(), "");
    }
}
