//! The whole audit log, newest entries first from the store, shown oldest first.

use super::{AuditEntry, Result, Store};

impl Store {
    /// The newest `limit` entries of the audit log, oldest first.
    pub fn audit_log(&self, limit: usize) -> Result<Vec<AuditEntry>> {
        let mut st = self.conn.prepare_cached(
            "SELECT at, actor, action, run_id, target, comment FROM audit ORDER BY id DESC LIMIT ?1",
        )?;
        let rows = st.query_map([limit as i64], |r| {
            Ok(AuditEntry {
                at: r.get(0)?,
                actor: r.get(1)?,
                action: r.get(2)?,
                run_id: r.get(3)?,
                target: r.get(4)?,
                comment: r.get(5)?,
            })
        })?;
        let mut v = rows.collect::<rusqlite::Result<Vec<_>>>()?;
        v.reverse();
        Ok(v)
    }
}
