//! The audit log: appended to, never changed (triggers refuse updates and deletes);
//! read a run's entries, or the newest of all of them.

use rusqlite::{Row, params};

use super::{AuditEntry, Result, Store};

const COLS: &str = "at, actor, action, run_id, target, comment";

fn audit_row(r: &Row<'_>) -> rusqlite::Result<AuditEntry> {
    Ok(AuditEntry {
        at: r.get(0)?,
        actor: r.get(1)?,
        action: r.get(2)?,
        run_id: r.get(3)?,
        target: r.get(4)?,
        comment: r.get(5)?,
    })
}

impl Store {
    pub fn append_audit(&self, e: &AuditEntry) -> Result<()> {
        self.conn
            .prepare_cached(&format!(
                "INSERT INTO audit ({COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
            ))?
            .execute(params![
                e.at, e.actor, e.action, e.run_id, e.target, e.comment
            ])?;
        Ok(())
    }

    /// Run `run_id`'s entries, oldest first.
    pub fn audit(&self, run_id: i64) -> Result<Vec<AuditEntry>> {
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT {COLS} FROM audit WHERE run_id = ?1 ORDER BY id"
        ))?;
        let rows = st.query_map([run_id], audit_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The newest `limit` entries of the audit log, oldest first.
    pub fn audit_log(&self, limit: usize) -> Result<Vec<AuditEntry>> {
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT {COLS} FROM audit ORDER BY id DESC LIMIT ?1"
        ))?;
        let rows = st.query_map([limit as i64], audit_row)?;
        let mut v = rows.collect::<rusqlite::Result<Vec<_>>>()?;
        v.reverse();
        Ok(v)
    }
}
