//! Chain links: which runs started which (SP-7a), with what each got from upstream.

use rusqlite::params;

use super::{Result, Store, word};
use crate::domain::RunStatus;
use crate::domain::chain::{ChainLinks, Downstream, Upstream};

impl Store {
    /// Records that `run_id` was started by `upstream` (in the run's commit).
    pub(crate) fn insert_links(&self, run_id: i64, upstream: &[Upstream]) -> Result<()> {
        let mut stmt = self.conn.prepare_cached(
            "INSERT INTO chain_links (downstream, upstream, data) VALUES (?1, ?2, ?3)",
        )?;
        for u in upstream {
            // Serializing plain strings and maps cannot fail.
            let data = serde_json::to_string(u).unwrap_or_default();
            stmt.execute(params![run_id, u.run_id, data])?;
        }
        Ok(())
    }

    /// The runs that started `run_id`, as they were then.
    pub fn upstream(&self, run_id: i64) -> Result<Vec<Upstream>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT data FROM chain_links WHERE downstream = ?1 ORDER BY rowid")?;
        let rows = stmt.query_map([run_id], |r| r.get::<_, String>(0))?;
        let mut out = Vec::new();
        for data in rows {
            if let Ok(u) = serde_json::from_str(&data?) {
                out.push(u);
            }
        }
        Ok(out)
    }

    /// Both directions of `run_id`'s chains.
    pub fn chain_links(&self, run_id: i64) -> Result<ChainLinks> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT r.id, r.service, r.status, r.created_at FROM chain_links l \
             JOIN runs r ON r.id = l.downstream WHERE l.upstream = ?1 ORDER BY r.id",
        )?;
        let downstream = stmt
            .query_map([run_id], |r| {
                Ok(Downstream {
                    run_id: r.get(0)?,
                    service: r.get(1)?,
                    status: word(RunStatus::parse, r.get(2)?, 2)?,
                    created_at: r.get(3)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        Ok(ChainLinks {
            upstream: self.upstream(run_id)?,
            downstream,
        })
    }
}
