//! Each step's process, recorded so that a restarted engine can stop what the
//! previous one left running (never a process that merely reused the pid).

use rusqlite::params;

use super::{Result, Store};

impl Store {
    /// Records the process a step started (migration 6).
    pub fn set_step_process(&self, step_id: i64, pid: i32, start: u64) -> Result<()> {
        self.conn
            .prepare_cached("UPDATE steps SET pid = ?2, pid_start = ?3 WHERE id = ?1")?
            .execute(params![step_id, pid, start as i64])?;
        Ok(())
    }

    /// The processes (pid and start time) of steps that were executing when the
    /// engine stopped: runs still marked running or cancelling, steps not ended.
    pub fn leftover_processes(&self) -> Result<Vec<(i32, u64)>> {
        let mut stmt = self.conn.prepare(
            "SELECT s.pid, s.pid_start FROM steps s JOIN runs r ON r.id = s.run_id \
             WHERE r.status IN ('running', 'cancelling') AND s.pid IS NOT NULL \
             AND s.ended_at IS NULL",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((r.get::<_, i32>(0)?, r.get::<_, i64>(1)? as u64))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Records the Slurm job a step submitted (migration 8).
    pub fn set_step_slurm_job(&self, step_id: i64, job: u64) -> Result<()> {
        self.conn
            .prepare_cached("UPDATE steps SET slurm_job = ?2 WHERE id = ?1")?
            .execute(params![step_id, job as i64])?;
        Ok(())
    }

    /// The Slurm jobs of a run's steps, by step id.
    pub fn slurm_jobs(&self, run_id: i64) -> Result<Vec<(i64, u64)>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, slurm_job FROM steps WHERE run_id = ?1 AND slurm_job IS NOT NULL \
             ORDER BY id",
        )?;
        let rows = stmt.query_map([run_id], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)? as u64))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}
