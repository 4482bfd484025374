//! Releases (DP-1) and stations (DP-2): what each release is, and what each station
//! runs, switches to next, and whether it is pinned.

use rusqlite::{OptionalExtension, Row, params};

use super::{Result, Store, word};
use crate::domain::Millis;
use crate::domain::release::{Release, ReleaseEnv, ReleaseStatus, ReleaseTrigger};

const COLS: &str = "id, run_id, service, commit_sha, branch, tag, environment, trigger, status, \
                    runtime, platform, started_at, ended_at, digest, size, promoted_from";

fn release_row(r: &Row<'_>) -> rusqlite::Result<Release> {
    Ok(Release {
        id: r.get(0)?,
        run_id: r.get(1)?,
        service: r.get(2)?,
        commit_sha: r.get(3)?,
        branch: r.get(4)?,
        tag: r.get(5)?,
        environment: word(ReleaseEnv::parse, r.get(6)?, 6)?,
        trigger: word(ReleaseTrigger::parse, r.get(7)?, 7)?,
        status: word(ReleaseStatus::parse, r.get(8)?, 8)?,
        runtime: r.get(9)?,
        platform: r.get(10)?,
        started_at: r.get(11)?,
        ended_at: r.get(12)?,
        digest: r.get(13)?,
        size: r.get::<_, Option<i64>>(14)?.map(|n| n.max(0) as u64),
        promoted_from: r.get(15)?,
    })
}

/// A station's stored state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StationRow {
    pub name: String,
    pub service: String,
    pub current: Option<i64>,
    pub pending: Option<i64>,
    pub pinned: bool,
    pub error: Option<String>,
    /// The rollout run that switches it to `pending`.
    pub switch_run: Option<i64>,
}

fn station_row(r: &Row<'_>) -> rusqlite::Result<StationRow> {
    Ok(StationRow {
        name: r.get(0)?,
        service: r.get(1)?,
        current: r.get(2)?,
        pending: r.get(3)?,
        pinned: r.get(4)?,
        error: r.get(5)?,
        switch_run: r.get(6)?,
    })
}

impl Store {
    /// Records a new release (its id is ignored).
    pub fn insert_release(&self, r: &Release) -> Result<Release> {
        self.conn
            .prepare_cached(&format!(
                "INSERT INTO releases ({COLS}) VALUES \
                 (NULL, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"
            ))?
            .execute(params![
                r.run_id,
                r.service,
                r.commit_sha,
                r.branch,
                r.tag,
                r.environment.as_str(),
                r.trigger.as_str(),
                r.status.as_str(),
                r.runtime,
                r.platform,
                r.started_at,
                r.ended_at,
                r.digest,
                r.size.map(|n| n as i64),
                r.promoted_from,
            ])?;
        Ok(Release {
            id: self.conn.last_insert_rowid(),
            ..r.clone()
        })
    }

    /// Sets a release's status (and its end, digest and size when it has them).
    pub fn set_release(
        &self,
        id: i64,
        status: ReleaseStatus,
        ended_at: Option<Millis>,
        artifact: Option<(&str, u64)>,
    ) -> Result<()> {
        self.conn
            .prepare_cached(
                "UPDATE releases SET status = ?2, ended_at = COALESCE(?3, ended_at), \
                 digest = COALESCE(?4, digest), size = COALESCE(?5, size) WHERE id = ?1",
            )?
            .execute(params![
                id,
                status.as_str(),
                ended_at,
                artifact.map(|a| a.0),
                artifact.map(|a| a.1 as i64),
            ])?;
        Ok(())
    }

    pub fn release_by_id(&self, id: i64) -> Result<Option<Release>> {
        Ok(self
            .conn
            .prepare_cached(&format!("SELECT {COLS} FROM releases WHERE id = ?1"))?
            .query_row([id], release_row)
            .optional()?)
    }

    /// The release a run builds, if it builds one.
    pub fn release_of_run(&self, run_id: i64) -> Result<Option<Release>> {
        Ok(self
            .conn
            .prepare_cached(&format!(
                "SELECT {COLS} FROM releases WHERE run_id = ?1 AND promoted_from IS NULL \
                 ORDER BY id LIMIT 1"
            ))?
            .query_row([run_id], release_row)
            .optional()?)
    }

    /// Releases, newest first, of one service or of all.
    pub fn releases(&self, service: Option<&str>, limit: usize) -> Result<Vec<Release>> {
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT {COLS} FROM releases WHERE ?1 IS NULL OR service = ?1 ORDER BY id DESC LIMIT ?2"
        ))?;
        let rows = st.query_map(params![service, limit as i64], release_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Deletes a release's record.
    pub fn delete_release(&self, id: i64) -> Result<()> {
        self.conn
            .prepare_cached("DELETE FROM releases WHERE id = ?1")?
            .execute([id])?;
        Ok(())
    }

    /// How many releases share an artifact.
    pub fn digest_users(&self, digest: &str) -> Result<i64> {
        Ok(self
            .conn
            .prepare_cached("SELECT COUNT(*) FROM releases WHERE digest = ?1")?
            .query_row([digest], |r| r.get(0))?)
    }

    /// Every stored station.
    pub fn stations(&self) -> Result<Vec<StationRow>> {
        let mut st = self.conn.prepare_cached(
            "SELECT name, service, current, pending, pinned, error, switch_run FROM stations \
             ORDER BY name",
        )?;
        let rows = st.query_map([], station_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Writes a station's state whole.
    pub fn put_station(&self, s: &StationRow) -> Result<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO stations (name, service, current, pending, pinned, error, switch_run) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT(name) DO UPDATE SET \
                 service = ?2, current = ?3, pending = ?4, pinned = ?5, error = ?6, \
                 switch_run = ?7",
            )?
            .execute(params![
                s.name,
                s.service,
                s.current,
                s.pending,
                s.pinned,
                s.error,
                s.switch_run
            ])?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn release(run_id: i64) -> Release {
        Release {
            id: 0,
            run_id,
            service: "web".into(),
            commit_sha: "abc".into(),
            branch: "main".into(),
            tag: None,
            environment: ReleaseEnv::Production,
            trigger: ReleaseTrigger::Manual,
            status: ReleaseStatus::Pending,
            runtime: "sh".into(),
            platform: "linux-x86_64".into(),
            started_at: 5,
            ended_at: None,
            digest: None,
            size: None,
            promoted_from: None,
        }
    }

    #[test]
    fn releases_and_stations_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db")).unwrap();
        let a = store.insert_release(&release(1)).unwrap();
        let b = store.insert_release(&release(2)).unwrap();
        assert!(b.id > a.id);
        store
            .set_release(a.id, ReleaseStatus::Ready, Some(9), Some(("sha256:x", 42)))
            .unwrap();
        let got = store.release_by_id(a.id).unwrap().unwrap();
        assert_eq!(got.status, ReleaseStatus::Ready);
        assert_eq!(
            (got.digest.as_deref(), got.size),
            (Some("sha256:x"), Some(42))
        );
        assert_eq!(store.release_of_run(2).unwrap().unwrap().id, b.id);
        let list = store.releases(Some("web"), 10).unwrap();
        assert_eq!(
            list.iter().map(|r| r.id).collect::<Vec<_>>(),
            vec![b.id, a.id]
        );
        assert_eq!(store.digest_users("sha256:x").unwrap(), 1);
        store.delete_release(a.id).unwrap();
        assert!(store.release_by_id(a.id).unwrap().is_none());

        let mut s = StationRow {
            name: "edge-1".into(),
            service: "web".into(),
            current: Some(b.id),
            ..Default::default()
        };
        store.put_station(&s).unwrap();
        s.pinned = true;
        s.pending = Some(7);
        store.put_station(&s).unwrap();
        assert_eq!(store.stations().unwrap(), vec![s]);
    }
}
