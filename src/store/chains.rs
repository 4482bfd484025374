//! Chain links: which runs started which (SP-7a), with what each got from upstream.

use std::collections::HashMap;

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

    /// What each `all` chain waits with: per downstream service, the `after`
    /// entries (by position) satisfied so far, and by which run.
    pub(crate) fn chain_pending(&self) -> Result<HashMap<String, Vec<(usize, i64)>>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT downstream, slot, upstream FROM chain_pending")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })?;
        let mut out: HashMap<String, Vec<(usize, i64)>> = HashMap::new();
        for row in rows {
            let (down, slot, up) = row?;
            if let Ok(slot) = usize::try_from(slot) {
                out.entry(down).or_default().push((slot, up));
            }
        }
        Ok(out)
    }

    /// Replaces what `downstream`'s `all` chain waits with (`None`: not yet).
    pub(crate) fn set_chain_pending(&self, downstream: &str, slots: &[Option<i64>]) -> Result<()> {
        self.conn
            .prepare_cached("DELETE FROM chain_pending WHERE downstream = ?1")?
            .execute([downstream])?;
        let mut stmt = self.conn.prepare_cached(
            "INSERT INTO chain_pending (downstream, slot, upstream) VALUES (?1, ?2, ?3)",
        )?;
        for (slot, up) in slots.iter().enumerate() {
            if let Some(up) = up {
                stmt.execute(params![downstream, slot as i64, up])?;
            }
        }
        Ok(())
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
