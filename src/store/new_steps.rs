//! A new run's steps, all stored by one statement.

use std::borrow::Cow;
use std::sync::LazyLock;

use super::{Result, Store};
use crate::domain::{Stage, StepInfo, StepStatus};

/// A step a new run starts with (pending).
pub struct NewStep<'a> {
    pub stage: Stage,
    pub name: &'a str,
    /// Index of this step's parent (an operation's resource) among the run's new steps:
    /// an earlier one.
    pub parent: Option<usize>,
}

/// Rows a statement: 5 parameters each, well under SQLite's 32,766.
const CHUNK: usize = 128;

/// The INSERT of `n` new steps: `?1` the run, then 5 parameters a row.
fn insert_sql(n: usize) -> String {
    let mut sql = String::from(
        "INSERT INTO steps (id, run_id, stage, name, position, status, parent_id) VALUES ",
    );
    for i in 0..n {
        let at = 2 + 5 * i;
        if i > 0 {
            sql.push(',');
        }
        sql.push_str(&format!(
            "(?{at}, ?1, ?{}, ?{}, ?{}, 'pending', ?{})",
            at + 1,
            at + 2,
            at + 3,
            at + 4
        ));
    }
    sql
}

impl Store {
    /// Stores run `run_id`'s first steps, pending, at positions 0, 1, … in order.
    ///
    /// Many rows a statement, with the ids chosen here (one past the highest ever
    /// given, as AUTOINCREMENT would, then in order) so that a step can name its parent
    /// before either is stored. A 10,000-resource infra run starts with 20,000 steps:
    /// one INSERT each took ~17,000 instructions a row, ~70 M of the 340 M a
    /// 2,000-resource run costs its engine thread.
    pub fn insert_steps(&self, run_id: i64, steps: &[NewStep<'_>]) -> Result<Vec<StepInfo>> {
        let last: i64 = self.conn.query_row(
            "SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'steps'), 0), \
                        coalesce((SELECT max(id) FROM steps), 0))",
            [],
            |r| r.get(0),
        )?;
        let first = last + 1;
        let rows: Vec<StepInfo> = steps
            .iter()
            .enumerate()
            .map(|(pos, s)| StepInfo {
                id: first + pos as i64,
                run_id,
                stage: s.stage,
                name: s.name.to_string(),
                position: pos as i64,
                status: StepStatus::Pending,
                reason: None,
                exit_code: None,
                started_at: None,
                ended_at: None,
                parent_id: s.parent.map(|p| first + p as i64),
                outputs: None,
                superseded_by: None,
                slurm_job: None,
            })
            .collect();
        // The statement of a full chunk is written once (building its text took a
        // quarter as long as running it).
        static FULL: LazyLock<String> = LazyLock::new(|| insert_sql(CHUNK));
        for chunk in rows.chunks(CHUNK) {
            let sql = if chunk.len() == CHUNK {
                Cow::Borrowed(FULL.as_str())
            } else {
                Cow::Owned(insert_sql(chunk.len()))
            };
            let mut stmt = self.conn.prepare_cached(&sql)?;
            stmt.raw_bind_parameter(1, run_id)?;
            for (i, row) in chunk.iter().enumerate() {
                let at = 2 + 5 * i;
                stmt.raw_bind_parameter(at, row.id)?;
                stmt.raw_bind_parameter(at + 1, row.stage.as_str())?;
                stmt.raw_bind_parameter(at + 2, row.name.as_str())?;
                stmt.raw_bind_parameter(at + 3, row.position)?;
                stmt.raw_bind_parameter(at + 4, row.parent_id)?;
            }
            stmt.raw_execute()?;
        }
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::RunSpec;
    use crate::store::NewRun;

    #[test]
    fn steps_are_stored_in_order_with_their_parents_after_earlier_ids() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("state.db")).unwrap();
        let run = s.insert_run(&NewRun::sample(RunSpec::sample()), 0).unwrap();
        // A step stored by a plain INSERT, since deleted: its id is not given again
        // (AUTOINCREMENT).
        let plain = |name: &str| -> i64 {
            s.conn
                .execute(
                    "INSERT INTO steps (run_id, stage, name, position, status) \
                     VALUES (?1, 'build', ?2, 0, 'pending')",
                    rusqlite::params![run.id, name],
                )
                .unwrap();
            s.conn.last_insert_rowid()
        };
        let old = plain("old");
        s.conn
            .execute("DELETE FROM steps WHERE id = ?1", [old])
            .unwrap();
        let made = s
            .insert_steps(
                run.id,
                &[
                    NewStep {
                        stage: Stage::Resource,
                        name: "vpc",
                        parent: None,
                    },
                    NewStep {
                        stage: Stage::Operation,
                        name: "vpc.apply",
                        parent: Some(0),
                    },
                ],
            )
            .unwrap();
        assert_eq!(made[0].id, old + 1);
        assert_eq!(made[1].parent_id, Some(made[0].id));
        let stored = s.steps(run.id).unwrap();
        assert_eq!(stored, made);
        // The next step stored by a plain INSERT comes after them.
        let next = plain("x");
        assert_eq!(next, made[1].id + 1);
    }
}
