//! Operations on releases and stations (DP-3): pin, unpin, promote, rollback and
//! delete, each stored and audited; the stations that move do so in a rollout run.

use std::collections::BTreeMap;

use super::releases::follows;
use super::rollouts::Asked;
use super::{After, EngineError, Out, Result, Runner};
use crate::config::station::Station;
use crate::domain::release::{Release, ReleaseEnv, ReleaseStatus, ReleaseTrigger, StationInfo};
use crate::domain::{Event, Trigger, now_ms};
use crate::store::releases::StationRow;

impl Runner {
    /// The configured stations named, or an error naming the unknown ones.
    fn named(&self, names: &[String]) -> Result<Vec<(Station, StationRow)>> {
        let rows = self.station_rows()?;
        let unknown: Vec<&str> = names
            .iter()
            .filter(|n| !rows.iter().any(|(s, _)| &s.name == *n))
            .map(String::as_str)
            .collect();
        if !unknown.is_empty() || names.is_empty() {
            let known: Vec<&str> = rows.iter().map(|(s, _)| s.name.as_str()).collect();
            return Err(EngineError::NotFound(format!(
                "no station {} (stations: {})",
                if names.is_empty() {
                    "named".to_string()
                } else {
                    unknown.join(", ")
                },
                known.join(", ")
            )));
        }
        Ok(rows
            .into_iter()
            .filter(|(s, _)| names.contains(&s.name))
            .collect())
    }

    /// Moves stations to releases on an operator's word: each release's stations in
    /// one rollout; a station already there stops any switch it had pending.
    fn move_to(
        &mut self,
        moves: Vec<(Release, Station, StationRow)>,
        by: &str,
        out: &mut Out,
    ) -> Result<()> {
        let mut by_release: BTreeMap<i64, (Release, Vec<(Station, StationRow)>)> = BTreeMap::new();
        for (rel, st, row) in moves {
            if row.current == Some(rel.id) {
                self.switch_none(&st, row, out)?;
            } else {
                let entry = by_release
                    .entry(rel.id)
                    .or_insert_with(|| (rel, Vec::new()));
                entry.1.push((st, row));
            }
        }
        for (_, (rel, stations)) in by_release {
            let asked = Asked {
                by,
                trigger: Trigger::Manual,
                allow_older: true,
            };
            self.roll_out(&rel, stations, asked, out)?;
        }
        Ok(())
    }

    fn pinned(rel: &Release, st: Station, mut row: StationRow) -> (Release, Station, StationRow) {
        row.pinned = true;
        row.error = None;
        (rel.clone(), st, row)
    }

    pub(super) fn pin(
        &mut self,
        id: i64,
        names: &[String],
        by: &str,
        out: &mut Out,
    ) -> Result<Vec<StationInfo>> {
        let rel = self.release(id)?;
        if rel.status != ReleaseStatus::Ready {
            return Err(EngineError::Conflict(format!(
                "release {id} is {}: only a ready release can be pinned",
                rel.status
            )));
        }
        let mut moves = Vec::new();
        for (st, row) in self.named(names)? {
            if st.service != rel.service {
                return Err(EngineError::Invalid(format!(
                    "station {} runs service {}, release {id} is of {}",
                    st.name, st.service, rel.service
                )));
            }
            moves.push(Self::pinned(&rel, st, row));
        }
        self.move_to(moves, by, out)?;
        let target = format!("release {id} on {}", names.join(", "));
        self.audit(by, "release_pin", rel.run_id, Some(&target), None)?;
        self.station_infos()
    }

    pub(super) fn unpin(
        &mut self,
        names: &[String],
        by: &str,
        out: &mut Out,
    ) -> Result<Vec<StationInfo>> {
        let releases = self.store.releases(None, 10_000)?;
        let mut run_id = 0;
        let mut moves = Vec::new();
        for (st, mut row) in self.named(names)? {
            row.pinned = false;
            self.put_station(&row, out)?;
            // It follows again: the newest release it follows, if it runs another.
            if let Some(latest) = releases.iter().find(|r| follows(&st, r)) {
                run_id = latest.run_id;
                moves.push((latest.clone(), st, row));
            }
        }
        self.move_to(moves, by, out)?;
        self.audit(by, "station_unpin", run_id, Some(&names.join(", ")), None)?;
        self.station_infos()
    }

    pub(super) fn promote(&mut self, id: i64, by: &str, out: &mut Out) -> Result<Release> {
        let rel = self.release(id)?;
        if rel.status != ReleaseStatus::Ready || rel.environment != ReleaseEnv::Preview {
            return Err(EngineError::Conflict(format!(
                "release {id} is a {} {} release: only a ready preview release can be promoted",
                rel.status, rel.environment
            )));
        }
        let now = now_ms();
        let promoted = self.store.insert_release(&Release {
            environment: ReleaseEnv::Production,
            trigger: ReleaseTrigger::Manual,
            started_at: now,
            ended_at: Some(now),
            promoted_from: Some(id),
            ..rel.clone()
        })?;
        out.event(Event::Release {
            release: promoted.clone(),
        });
        let target = format!("release {id} as release {}", promoted.id);
        self.audit(by, "release_promote", rel.run_id, Some(&target), None)?;
        let asked = Asked {
            by,
            trigger: Trigger::Manual,
            allow_older: true,
        };
        self.fan_out(&promoted, asked, out)?;
        Ok(promoted)
    }

    /// Every production station of `service` is pinned to the ready production
    /// release before the one it runs.
    pub(super) fn rollback(
        &mut self,
        service: &str,
        by: &str,
        out: &mut Out,
    ) -> Result<Vec<StationInfo>> {
        let releases = self.store.releases(Some(service), 10_000)?;
        let rows: Vec<_> = self
            .station_rows()?
            .into_iter()
            .filter(|(s, _)| s.service == service && s.is_production())
            .collect();
        if rows.is_empty() {
            return Err(EngineError::NotFound(format!(
                "no production station runs service {service}"
            )));
        }
        let mut moved = Vec::new();
        let mut moves = Vec::new();
        for (st, row) in rows {
            let Some(cur) = row.current else { continue };
            let Some(prev) = releases
                .iter()
                .find(|r| r.id < cur && r.environment == ReleaseEnv::Production && follows(&st, r))
            else {
                continue;
            };
            moved.push(format!("{} {cur} -> {}", st.name, prev.id));
            let run_id = prev.run_id;
            moves.push(Self::pinned(prev, st, row));
            self.audit(
                by,
                "release_rollback",
                run_id,
                Some(moved.last().map_or("", |s| s)),
                None,
            )?;
        }
        if moved.is_empty() {
            return Err(EngineError::Conflict(format!(
                "no production station of {service} has an earlier ready release to go back to"
            )));
        }
        self.move_to(moves, by, out)?;
        self.station_infos()
    }

    pub(super) fn delete_release(&mut self, id: i64, by: &str, out: &mut Out) -> Result<Release> {
        let rel = self.release(id)?;
        if matches!(rel.status, ReleaseStatus::Pending | ReleaseStatus::Building) {
            return Err(EngineError::Conflict(format!(
                "release {id} is {} (run {}): cancel the run first",
                rel.status, rel.run_id
            )));
        }
        let holders: Vec<String> = self
            .station_rows()?
            .into_iter()
            .filter(|(_, r)| r.current == Some(id) || r.pending == Some(id))
            .map(|(s, r)| {
                let how = match (r.pinned, r.current == Some(id)) {
                    (true, true) => "pinned, runs it",
                    (true, false) => "pinned, switching to it",
                    (false, true) => "runs it",
                    (false, false) => "switching to it",
                };
                format!("{} ({how})", s.name)
            })
            .collect();
        if !holders.is_empty() {
            return Err(EngineError::Conflict(format!(
                "release {id} cannot be deleted: stations {} hold it; move them to another \
                 release first (pipedeck station pin RELEASE STATION)",
                holders.join(", ")
            )));
        }
        self.store.delete_release(id)?;
        if let Some(d) = &rel.digest
            && self.store.digest_users(d)? == 0
        {
            out.after(After::DropArtifact(d.clone()));
        }
        self.audit(
            by,
            "release_delete",
            rel.run_id,
            Some(&format!("release {id}")),
            None,
        )?;
        Ok(rel)
    }
}
