//! What triggers (SP-7) remember: each fire (one run per service, source and key),
//! what each watcher last saw, and webhook deliveries (a replay is refused).

use std::collections::BTreeMap;

use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};

use super::{Result, Store};
use crate::domain::Millis;

/// What makes a fire unique: one run per (service, source, key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FireKey {
    pub service: String,
    /// The trigger, as `pipedeck triggers` lists it (`push`, `tag`, `pull_request`,
    /// `schedule:NAME`).
    pub trigger: String,
    /// What fired: a ref (`refs/heads/main`), a pull request (`pr/42`), a schedule.
    pub source: String,
    /// Which state of it: a commit, a pull request's head and action, a due time.
    pub key: String,
}

/// A trigger's last fire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastFire {
    pub service: String,
    pub trigger: String,
    pub run_id: i64,
    pub at: Millis,
    pub key: String,
}

impl Store {
    /// The run a fire with `key` already started, if any.
    pub(crate) fn fired(&self, key: &FireKey) -> Result<Option<i64>> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT run_id FROM trigger_fires WHERE service = ?1 AND source = ?2 AND key = ?3",
            )?
            .query_row(params![key.service, key.source, key.key], |r| r.get(0))
            .optional()?)
    }

    /// Records that `key` started run `run_id`.
    pub(crate) fn insert_fire(&self, key: &FireKey, run_id: i64, at: Millis) -> Result<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO trigger_fires (service, trigger, source, key, run_id, at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                key.service,
                key.trigger,
                key.source,
                key.key,
                run_id,
                at
            ])?;
        Ok(())
    }

    /// Each trigger's newest fire.
    pub fn last_fires(&self) -> Result<Vec<LastFire>> {
        let mut st = self.conn.prepare_cached(
            "SELECT service, trigger, run_id, at, key FROM trigger_fires
             WHERE id IN (SELECT max(id) FROM trigger_fires GROUP BY service, trigger)
             ORDER BY service, trigger",
        )?;
        let rows = st.query_map([], |r| {
            Ok(LastFire {
                service: r.get(0)?,
                trigger: r.get(1)?,
                run_id: r.get(2)?,
                at: r.get(3)?,
                key: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// What the watchers of `service` last saw, by name (a ref, a schedule).
    pub fn seen(&self, service: &str) -> Result<BTreeMap<String, String>> {
        let mut st = self
            .conn
            .prepare_cached("SELECT name, value FROM trigger_seen WHERE service = ?1")?;
        let rows = st.query_map([service], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Sets (or, with `None`, forgets) what was seen of `name`.
    pub(crate) fn set_seen(&self, service: &str, name: &str, value: Option<&str>) -> Result<()> {
        match value {
            Some(v) => self
                .conn
                .prepare_cached(
                    "INSERT INTO trigger_seen (service, name, value) VALUES (?1, ?2, ?3)
                 ON CONFLICT (service, name) DO UPDATE SET value = excluded.value",
                )?
                .execute(params![service, name, v])?,
            None => self
                .conn
                .prepare_cached("DELETE FROM trigger_seen WHERE service = ?1 AND name = ?2")?
                .execute(params![service, name])?,
        };
        Ok(())
    }

    /// Claims a webhook delivery id: false if it was seen before (a replay).
    pub(crate) fn claim_delivery(&self, source: &str, delivery: &str, at: Millis) -> Result<bool> {
        let n = self
            .conn
            .prepare_cached(
                "INSERT OR IGNORE INTO hook_deliveries (source, delivery, at) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![source, delivery, at])?;
        Ok(n == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(k: &str) -> FireKey {
        FireKey {
            service: "api".into(),
            trigger: "push".into(),
            source: "refs/heads/main".into(),
            key: k.into(),
        }
    }

    #[test]
    fn a_fire_is_found_again_and_the_last_one_listed() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("s.db")).unwrap();
        assert_eq!(s.fired(&key("a")).unwrap(), None);
        s.insert_fire(&key("a"), 1, 10).unwrap();
        s.insert_fire(&key("b"), 2, 20).unwrap();
        assert!(s.insert_fire(&key("b"), 3, 30).is_err(), "one run per key");
        assert_eq!(s.fired(&key("a")).unwrap(), Some(1));
        let last = s.last_fires().unwrap();
        assert_eq!(last.len(), 1);
        assert_eq!((last[0].run_id, last[0].key.as_str()), (2, "b"));
    }

    #[test]
    fn seen_values_and_deliveries() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("s.db")).unwrap();
        s.set_seen("api", "refs/heads/main", Some("a")).unwrap();
        s.set_seen("api", "refs/heads/main", Some("b")).unwrap();
        s.set_seen("api", "refs/tags/v1", Some("c")).unwrap();
        s.set_seen("api", "refs/tags/v1", None).unwrap();
        let seen = s.seen("api").unwrap();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen["refs/heads/main"], "b");
        assert!(s.claim_delivery("github", "d1", 1).unwrap());
        assert!(!s.claim_delivery("github", "d1", 2).unwrap(), "a replay");
        assert!(s.claim_delivery("gitlab", "d1", 3).unwrap());
    }
}
