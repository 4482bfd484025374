//! Releases and stations in the runner (DP-1..DP-3): a service run's release follows
//! its build rows; a ready release fans out to the stations that follow it; pin,
//! unpin, promote, rollback and delete are stored and audited here, then the station
//! executor is told to look.

use std::collections::HashMap;

use super::switch_gates::Clearance;
use super::{After, EngineError, Out, Reply, Result, Runner};
use crate::config::station::{ARTIFACT_ROW, Station, StationBinding};
use crate::domain::release::{Release, ReleaseEnv, ReleaseStatus, ReleaseTrigger, StationInfo};
use crate::domain::{Event, RunInfo, Stage, StepInfo, StepStatus, Trigger, now_ms};
use crate::engine::stations::SwitchPlan;
use crate::store::releases::StationRow;

/// What the runner does for releases and stations.
pub(crate) enum ReleaseMsg {
    /// What each station should switch to now (the station executor asks).
    Plan(Reply<Vec<SwitchPlan>>),
    /// A switch ended: with `error`, `current` still points at what it did before.
    Switched {
        station: String,
        release: i64,
        error: Option<String>,
        reply: Reply<()>,
    },
    List {
        service: Option<String>,
        limit: usize,
        reply: Reply<Vec<Release>>,
    },
    Show(i64, Reply<Release>),
    /// Stations as stored (jobs in flight are the station executor's).
    Stations(Reply<Vec<StationInfo>>),
    Pin {
        release: i64,
        stations: Vec<String>,
        by: String,
        reply: Reply<Vec<StationInfo>>,
    },
    Unpin {
        stations: Vec<String>,
        by: String,
        reply: Reply<Vec<StationInfo>>,
    },
    Promote {
        release: i64,
        by: String,
        reply: Reply<Release>,
    },
    Rollback {
        service: String,
        by: String,
        reply: Reply<Vec<StationInfo>>,
    },
    Delete {
        release: i64,
        by: String,
        reply: Reply<Release>,
    },
}

impl ReleaseMsg {
    /// A person's decision (stored durably before it is answered).
    pub(super) fn is_decision(&self) -> bool {
        matches!(
            self,
            ReleaseMsg::Pin { .. }
                | ReleaseMsg::Unpin { .. }
                | ReleaseMsg::Promote { .. }
                | ReleaseMsg::Rollback { .. }
                | ReleaseMsg::Delete { .. }
                | ReleaseMsg::Switched { .. }
        )
    }
}

fn station_event(r: &StationRow) -> Event {
    Event::Station {
        name: r.name.clone(),
        current: r.current,
        pending: r.pending,
        pinned: r.pinned,
        error: r.error.clone(),
    }
}

fn follows_text(st: &Station) -> String {
    match &st.binding {
        StationBinding::Branch(b) => format!("branch {b}"),
        StationBinding::Previews => "previews".into(),
    }
}

/// Whether `st` follows `rel` when it is not pinned.
pub(super) fn follows(st: &Station, rel: &Release) -> bool {
    rel.service == st.service
        && rel.status == ReleaseStatus::Ready
        && match &st.binding {
            StationBinding::Branch(b) => {
                rel.environment == ReleaseEnv::Production
                    && (&rel.branch == b || rel.promoted_from.is_some())
            }
            StationBinding::Previews => rel.environment == ReleaseEnv::Preview,
        }
}

impl Runner {
    pub(super) fn handle_release(&mut self, msg: ReleaseMsg, out: &mut Out) -> bool {
        macro_rules! answer {
            ($reply:expr, $r:expr) => {{
                let r = $r;
                let ok = r.is_ok();
                out.reply($reply, r);
                ok
            }};
        }
        match msg {
            ReleaseMsg::Plan(reply) => answer!(reply, self.switch_plan(out)),
            ReleaseMsg::Switched {
                station,
                release,
                error,
                reply,
            } => answer!(reply, self.switched(&station, release, error, out)),
            ReleaseMsg::List {
                service,
                limit,
                reply,
            } => answer!(
                reply,
                self.store
                    .releases(service.as_deref(), limit)
                    .map_err(Into::into)
            ),
            ReleaseMsg::Show(id, reply) => answer!(reply, self.release(id)),
            ReleaseMsg::Stations(reply) => answer!(reply, self.station_infos()),
            ReleaseMsg::Pin {
                release,
                stations,
                by,
                reply,
            } => answer!(reply, self.pin(release, &stations, &by, out)),
            ReleaseMsg::Unpin {
                stations,
                by,
                reply,
            } => answer!(reply, self.unpin(&stations, &by, out)),
            ReleaseMsg::Promote { release, by, reply } => {
                answer!(reply, self.promote(release, &by, out))
            }
            ReleaseMsg::Rollback { service, by, reply } => {
                answer!(reply, self.rollback(&service, &by, out))
            }
            ReleaseMsg::Delete { release, by, reply } => {
                answer!(reply, self.delete_release(release, &by, out))
            }
        }
    }

    fn stations_config(&self) -> Vec<Station> {
        self.project
            .as_ref()
            .map(|p| p.get().stations.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Every configured station with its stored state.
    pub(super) fn station_rows(&self) -> Result<Vec<(Station, StationRow)>> {
        let mut stored: HashMap<String, StationRow> = self
            .store
            .stations()?
            .into_iter()
            .map(|r| (r.name.clone(), r))
            .collect();
        Ok(self
            .stations_config()
            .into_iter()
            .map(|st| {
                let row = stored.remove(&st.name).unwrap_or_else(|| StationRow {
                    name: st.name.clone(),
                    service: st.service.clone(),
                    ..Default::default()
                });
                (st, row)
            })
            .collect())
    }

    pub(super) fn station_infos(&self) -> Result<Vec<StationInfo>> {
        let mut out = Vec::new();
        for (st, r) in self.station_rows()? {
            out.push(StationInfo {
                follows: follows_text(&st),
                awaiting: self.awaiting(&st, r.pending.filter(|p| Some(*p) != r.current))?,
                name: r.name,
                service: r.service,
                current: r.current,
                pending: r.pending,
                pinned: r.pinned,
                jobs: 0,
                error: r.error,
            });
        }
        Ok(out)
    }

    pub(super) fn release(&self, id: i64) -> Result<Release> {
        self.store
            .release_by_id(id)?
            .ok_or_else(|| EngineError::NotFound(format!("no release {id}")))
    }

    pub(super) fn put_station(&self, row: &StationRow, out: &mut Out) -> Result<()> {
        self.store.put_station(row)?;
        out.event(station_event(row));
        Ok(())
    }

    /// The switches that may start: a pending release, cleared by the station
    /// group's gate if it has one (a switch at a gate waiting is left out, and jobs
    /// on the station carry on meanwhile).
    fn switch_plan(&mut self, out: &mut Out) -> Result<Vec<SwitchPlan>> {
        let mut plans = Vec::new();
        let mut at_gates = Vec::new();
        for (station, row) in self.station_rows()? {
            let Some(p) = row.pending.filter(|p| Some(*p) != row.current) else {
                continue;
            };
            let Some(release) = self.store.release_by_id(p)? else {
                continue;
            };
            match self.switch_clearance(&station, &release, out)? {
                Clearance::Clear => {
                    let keep = self.kept_releases(&station, release.id)?;
                    plans.push(SwitchPlan {
                        station,
                        release,
                        keep,
                    })
                }
                Clearance::Waiting => {
                    if let Some(g) = &station.group {
                        at_gates.push((g.clone(), release.run_id));
                    }
                }
            }
        }
        self.close_stale_switch_gates(&at_gates, out)?;
        Ok(plans)
    }

    fn switched(
        &mut self,
        station: &str,
        release: i64,
        error: Option<String>,
        out: &mut Out,
    ) -> Result<()> {
        let Some((_, mut row)) = self
            .station_rows()?
            .into_iter()
            .find(|(s, _)| s.name == station)
        else {
            return Ok(()); // gone from the project meanwhile
        };
        if error.is_none() {
            row.current = Some(release);
        }
        if row.pending == Some(release) {
            // A failed switch is not tried again on its own (DP-3).
            row.pending = None;
        }
        row.error = error.clone();
        self.put_station(&row, out)?;
        let run_id = self.store.release_by_id(release)?.map_or(0, |r| r.run_id);
        let action = if error.is_some() {
            "station_switch_failed"
        } else {
            "station_switch"
        };
        let target = format!("station {station} to release {release}");
        self.audit("pipedeck", action, run_id, Some(&target), error.as_deref())
    }

    /// The releases a station keeps unpacked once it runs release `cur`: that one,
    /// the `keep_releases` newest ready ones before it that it follows (what a
    /// rollback goes back to) and, after a rollback, as many of the newest after it
    /// (what an unpin goes forward to). Whatever it is told to switch to later is
    /// unpacked again from the artifact store if it had gone.
    fn kept_releases(&self, st: &Station, cur: i64) -> Result<Vec<i64>> {
        let followed: Vec<i64> = self
            .store
            .releases(Some(&st.service), 10_000)?
            .iter()
            .filter(|r| r.id != cur && follows(st, r))
            .map(|r| r.id)
            .collect();
        let n = st.keep_releases;
        let mut keep = vec![cur];
        keep.extend(followed.iter().filter(|id| **id > cur).take(n));
        keep.extend(followed.iter().filter(|id| **id < cur).take(n));
        Ok(keep)
    }

    /// A new service run's release, if its service declares an artifact.
    pub(super) fn release_for_run(
        &mut self,
        run: &RunInfo,
        svc: &crate::config::Service,
        out: &mut Out,
    ) -> Result<()> {
        if svc.artifact.is_empty() {
            return Ok(());
        }
        let preview = run.branch != svc.default_branch || run.trigger == Trigger::PullRequest;
        let rel = self.store.insert_release(&Release {
            id: 0,
            run_id: run.id,
            service: run.service.clone(),
            commit_sha: run.commit_sha.clone(),
            branch: run.branch.clone(),
            tag: run.tag.clone(),
            environment: if preview {
                ReleaseEnv::Preview
            } else {
                ReleaseEnv::Production
            },
            trigger: match run.trigger {
                Trigger::Manual | Trigger::Rerun => ReleaseTrigger::Manual,
                _ => ReleaseTrigger::Auto,
            },
            status: ReleaseStatus::Pending,
            runtime: "sh".into(),
            platform: crate::domain::release::platform(),
            started_at: run.created_at,
            ended_at: None,
            digest: None,
            size: None,
            promoted_from: None,
        })?;
        out.event(Event::Release { release: rel });
        Ok(())
    }

    /// A build row changed: its run's release follows.
    pub(super) fn record_release(&mut self, step: &StepInfo, out: &mut Out) -> Result<()> {
        if step.stage != Stage::Build {
            return Ok(());
        }
        // A run's release is made with the run, before any of its steps change: a run
        // found without one never has one.
        if self.has_release.get(&step.run_id) == Some(&false) {
            return Ok(());
        }
        let found = self.store.release_of_run(step.run_id)?;
        self.has_release.insert(step.run_id, found.is_some());
        let Some(rel) = found else {
            return Ok(());
        };
        if matches!(rel.status, ReleaseStatus::Ready | ReleaseStatus::Failed) {
            return Ok(());
        }
        let at = step.ended_at.unwrap_or_else(now_ms);
        match step.status {
            StepStatus::Running if rel.status == ReleaseStatus::Pending => {
                self.store
                    .set_release(rel.id, ReleaseStatus::Building, None, None)?;
            }
            StepStatus::Succeeded if step.name == ARTIFACT_ROW => {
                let field = |k: &str| {
                    step.outputs
                        .as_ref()
                        .and_then(|o| o.get(k))
                        .and_then(|v| v.as_str())
                        .map(str::to_string)
                };
                let (Some(digest), Some(size)) = (field("digest"), field("size")) else {
                    return Err(EngineError::Internal(format!(
                        "run {}: the artifact row has no digest",
                        step.run_id
                    )));
                };
                let size = size.parse().unwrap_or(0);
                self.store.set_release(
                    rel.id,
                    ReleaseStatus::Ready,
                    Some(at),
                    Some((&digest, size)),
                )?;
            }
            s if s.is_terminal() && s != StepStatus::Succeeded => {
                self.store
                    .set_release(rel.id, ReleaseStatus::Failed, Some(at), None)?;
            }
            _ => return Ok(()),
        }
        let rel = self.release(rel.id)?;
        out.event(Event::Release {
            release: rel.clone(),
        });
        if rel.status == ReleaseStatus::Ready {
            self.fan_out(&rel, out)?;
        }
        Ok(())
    }

    /// A run ended: a release it had not finished fails.
    pub(super) fn end_release_of_run(&mut self, run_id: i64, out: &mut Out) -> Result<()> {
        let Some(rel) = self.store.release_of_run(run_id)? else {
            return Ok(());
        };
        if matches!(rel.status, ReleaseStatus::Pending | ReleaseStatus::Building) {
            self.store
                .set_release(rel.id, ReleaseStatus::Failed, Some(now_ms()), None)?;
            out.event(Event::Release {
                release: self.release(rel.id)?,
            });
        }
        Ok(())
    }

    /// At start: a release whose run the last engine left ended (interrupted) fails.
    pub(super) fn fail_stale_releases(&mut self) -> Result<()> {
        for rel in self.store.releases(None, 10_000)? {
            if !matches!(rel.status, ReleaseStatus::Pending | ReleaseStatus::Building) {
                continue;
            }
            let ended = self
                .store
                .run(rel.run_id)?
                .is_none_or(|r| r.status.is_terminal());
            if ended {
                self.store
                    .set_release(rel.id, ReleaseStatus::Failed, Some(now_ms()), None)?;
            }
        }
        Ok(())
    }

    /// Every station that follows `rel` and is not pinned switches to it next.
    pub(super) fn fan_out(&mut self, rel: &Release, out: &mut Out) -> Result<()> {
        for (st, mut row) in self.station_rows()? {
            if row.pinned || !follows(&st, rel) || row.current == Some(rel.id) {
                continue;
            }
            row.pending = Some(rel.id);
            row.error = None;
            self.put_station(&row, out)?;
        }
        out.after(After::KickStations);
        Ok(())
    }
}
