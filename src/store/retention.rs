//! Pruning old history (`pipedeck gc`): which runs go, which stay and why.
//!
//! A run stays while it is among the last `keep_runs` of its service or younger than
//! `keep_days`. Whatever the setting, a run also stays while it has not ended (waiting
//! at a gate, queued, running), while it made the newest deployment of its service to
//! an environment, and while a kept run is a rerun of it. Audit entries always stay.

use std::collections::{BTreeMap, HashMap, HashSet};

use rusqlite::params;
use serde::{Deserialize, Serialize};

use super::{Result, Store};
use crate::config::Retention;
use crate::domain::{Millis, RunStatus};

/// Why a run stays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Keep {
    /// It has not ended.
    NotEnded,
    /// It made the newest deployment of its service to an environment.
    NewestDeployment,
    /// A kept run is a rerun of it.
    RerunKept,
    /// Among the last `keep_runs` of its service.
    Recent,
    /// Younger than `keep_days`.
    Young,
    /// No retention is set.
    NoRetention,
}

/// What `gc` does (or would do, with `--dry-run`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GcReport {
    /// The runs that go (went), oldest first.
    pub removed: Vec<i64>,
    /// How many runs stay, by their first reason.
    pub kept: BTreeMap<Keep, usize>,
    pub dry_run: bool,
    /// Kept runs whose logs are old enough for `compress` (`[retention]`).
    #[serde(skip)]
    pub aging: Vec<i64>,
    /// What aging did to their logs (or would do).
    #[serde(default)]
    pub logs: super::logs::AgedLogs,
}

const DAY_MS: i64 = 86_400_000;

impl Store {
    /// Which runs go under `r` at `now`, and why the others stay.
    pub fn gc_plan(&self, r: &Retention, now: Millis) -> Result<GcReport> {
        struct Row {
            id: i64,
            service: String,
            ended: bool,
            created_at: Millis,
            ended_at: Option<Millis>,
            rerun_of: Option<i64>,
        }
        let mut stmt = self.conn.prepare(
            "SELECT id, service, status, created_at, rerun_of, ended_at FROM runs ORDER BY id DESC",
        )?;
        let rows: Vec<Row> = stmt
            .query_map([], |row| {
                let status: String = row.get(2)?;
                Ok(Row {
                    id: row.get(0)?,
                    service: row.get(1)?,
                    ended: RunStatus::parse(&status).is_some_and(RunStatus::is_terminal),
                    created_at: row.get(3)?,
                    rerun_of: row.get(4)?,
                    ended_at: row.get(5)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        let newest: HashSet<i64> = self
            .conn
            .prepare(
                "SELECT run_id FROM deployments WHERE id IN \
                 (SELECT MAX(id) FROM deployments GROUP BY service, env)",
            )?
            .query_map([], |row| row.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let mut keep: HashMap<i64, Keep> = HashMap::new();
        let mut rank: HashMap<&str, u32> = HashMap::new();
        for row in &rows {
            let n = rank.entry(&row.service).or_default();
            *n += 1;
            let why = if !row.ended {
                Some(Keep::NotEnded)
            } else if newest.contains(&row.id) {
                Some(Keep::NewestDeployment)
            } else if r.keep_runs.is_none() && r.keep_days.is_none() {
                Some(Keep::NoRetention)
            } else if r.keep_runs.is_some_and(|k| *n <= k) {
                Some(Keep::Recent)
            } else if r
                .keep_days
                .is_some_and(|d| row.created_at > now - i64::from(d) * DAY_MS)
            {
                Some(Keep::Young)
            } else {
                None
            };
            if let Some(w) = why {
                keep.insert(row.id, w);
            }
        }
        // The originals of kept reruns stay (a rerun names its original), and theirs.
        let of: HashMap<i64, i64> = rows
            .iter()
            .filter_map(|r| r.rerun_of.map(|o| (r.id, o)))
            .collect();
        let mut todo: Vec<i64> = keep.keys().copied().collect();
        while let Some(id) = todo.pop() {
            if let Some(&o) = of.get(&id)
                && !keep.contains_key(&o)
            {
                keep.insert(o, Keep::RerunKept);
                todo.push(o);
            }
        }
        let mut report = GcReport::default();
        let aged_before = r.old_logs.map(|o| now - i64::from(o.after_days) * DAY_MS);
        for row in rows.iter().rev() {
            match keep.get(&row.id) {
                Some(w) => {
                    *report.kept.entry(*w).or_default() += 1;
                    if row.ended
                        && let (Some(cut), Some(at)) = (aged_before, row.ended_at)
                        && at < cut
                    {
                        report.aging.push(row.id);
                    }
                }
                None => report.removed.push(row.id),
            }
        }
        Ok(report)
    }

    /// Deletes the runs `ids` and everything stored with them but their audit entries
    /// (in the caller's transaction).
    pub fn gc_remove(&self, ids: &[i64]) -> Result<()> {
        let s = self;
        {
            for table in ["deployments", "gates", "definitions"] {
                let mut stmt = s
                    .conn
                    .prepare_cached(&format!("DELETE FROM {table} WHERE run_id = ?1"))?;
                for id in ids {
                    stmt.execute(params![id])?;
                }
            }
            // Operations before the resources they belong to.
            let mut ops = s
                .conn
                .prepare_cached("DELETE FROM steps WHERE run_id = ?1 AND parent_id IS NOT NULL")?;
            let mut steps = s
                .conn
                .prepare_cached("DELETE FROM steps WHERE run_id = ?1")?;
            let mut runs = s.conn.prepare_cached("DELETE FROM runs WHERE id = ?1")?;
            // Newest first: a rerun goes before the original it names.
            let mut newest_first = ids.to_vec();
            newest_first.sort_unstable_by(|a, b| b.cmp(a));
            for id in newest_first {
                ops.execute(params![id])?;
                steps.execute(params![id])?;
                runs.execute(params![id])?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{RunSpec, Stage};
    use crate::store::NewRun;

    const HOUR: i64 = 3_600_000;

    fn new_run(service: &str, rerun_of: Option<i64>) -> NewRun {
        let spec = RunSpec::Service {
            service: service.into(),
            branch: "main".into(),
            tag: None,
            commit: "abc".into(),
        };
        NewRun {
            rerun_of,
            ..NewRun::sample(spec)
        }
    }

    /// 5,000 runs of two services, one an hour: gc keeps exactly what it promises.
    #[test]
    fn gc_keeps_what_it_promises_over_five_thousand_runs() {
        let mut s = Store::in_memory().unwrap();
        let now = 10_000 * HOUR;
        let n = 5_000;
        for i in 1..=n {
            let service = if i % 2 == 0 { "a" } else { "b" };
            // Run 4990 is a rerun of run 3; run 12 of run 6.
            let rerun_of = match i {
                4990 => Some(3),
                12 => Some(6),
                _ => None,
            };
            let run = s
                .insert_run(&new_run(service, rerun_of), now - (n - i) * HOUR)
                .unwrap();
            assert_eq!(run.id, i);
        }
        s.execute_raw("UPDATE runs SET status = 'succeeded'")
            .unwrap();
        // Waiting at a gate, long ago; the newest deployment of a to dev, long ago.
        s.execute_raw("UPDATE runs SET status = 'awaiting_approval' WHERE id IN (8, 1000)")
            .unwrap();
        let dev = crate::store::NewStep {
            stage: Stage::Deploy,
            name: "dev",
            parent: None,
        };
        let step = s.insert_steps(100, &[dev]).unwrap().remove(0);
        s.execute_raw(&format!(
            "INSERT INTO deployments (run_id, step_id, service, env, commit_sha, branch, status, \
             started_at) VALUES (50, {0}, 'a', 'dev', 'abc', 'main', 'succeeded', 0), \
             (100, {0}, 'a', 'dev', 'abc', 'main', 'succeeded', 1)",
            step.id
        ))
        .unwrap();
        let audit = crate::store::AuditEntry {
            at: 0,
            actor: "alice".into(),
            action: "approve".into(),
            run_id: 2,
            target: Some("prod".into()),
            comment: None,
        };
        s.append_audit(&audit).unwrap();

        let r = Retention {
            keep_runs: Some(50),
            keep_days: Some(30),
            ..Default::default()
        };
        let plan = s.gc_plan(&r, now).unwrap();
        // What should stay, worked out on its own: the last 50 of each service, the
        // last 30 days (720 runs), the two waiting, run 100, and run 3 (4990's original).
        let mut want: HashSet<i64> = ((n - 99)..=n).collect();
        want.extend((n - 719)..=n);
        want.extend([8, 1000, 100, 3]);
        let kept: HashSet<i64> = (1..=n).filter(|i| !plan.removed.contains(i)).collect();
        assert_eq!(kept, want);
        assert_eq!(plan.kept.get(&Keep::NotEnded), Some(&2));
        assert_eq!(plan.kept.get(&Keep::NewestDeployment), Some(&1));
        assert_eq!(plan.kept.get(&Keep::RerunKept), Some(&1));
        assert_eq!(plan.kept.values().sum::<usize>(), want.len());
        // Run 12 went, and with it its original 6.
        assert!(plan.removed.contains(&12) && plan.removed.contains(&6));

        s.batch(|st| st.gc_remove(&plan.removed)).unwrap();
        let left: i64 = s
            .conn
            .query_row("SELECT COUNT(*) FROM runs", [], |r| r.get(0))
            .unwrap();
        assert_eq!(left as usize, want.len());
        assert!(s.run(2).unwrap().is_none());
        assert!(s.run(100).unwrap().is_some());
        assert_eq!(s.audit(2).unwrap(), vec![audit]);
        // Nothing more to prune, and no retention prunes nothing.
        assert!(s.gc_plan(&r, now).unwrap().removed.is_empty());
        let none = s.gc_plan(&Retention::default(), now + 1000 * HOUR).unwrap();
        assert!(none.removed.is_empty());
    }
}
