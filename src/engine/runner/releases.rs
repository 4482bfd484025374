//! Releases and stations in the runner (DP-1..DP-3): a service run's release follows
//! its build rows; a ready release fans out (a rollout run) to the stations that
//! follow it; pin, unpin, promote, rollback and delete are stored and audited here.

use std::collections::HashMap;

use super::rollouts::Asked;
use super::{EngineError, Out, Reply, Result, Runner};
use crate::config::station::{ARTIFACT_ROW, Station, StationBinding};
use crate::domain::release::{Release, ReleaseEnv, ReleaseStatus, ReleaseTrigger, StationInfo};
use crate::domain::{Event, RunInfo, Stage, StepInfo, StepStatus, Trigger, now_ms};
use crate::store::releases::StationRow;

/// What the runner does for releases and stations.
pub(crate) enum ReleaseMsg {
    List {
        service: Option<String>,
        limit: usize,
        reply: Reply<Vec<Release>>,
    },
    Show(i64, Reply<Release>),
    /// Stations as stored (jobs in flight are `engine::stations`').
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
                awaiting: self.awaiting(&st, &r)?,
                name: r.name,
                service: r.service,
                current: r.current,
                pending: r.pending,
                pinned: r.pinned,
                jobs: 0,
                error: r.error,
                switch_run: r.switch_run,
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

    /// The releases a station keeps unpacked once it runs release `cur`: that one,
    /// the `keep_releases` newest ready ones before it that it follows (what a
    /// rollback goes back to) and, after a rollback, as many of the newest after it
    /// (what an unpin goes forward to). Whatever it is told to switch to later is
    /// unpacked again from the artifact store if it had gone.
    pub(super) fn kept_releases(st: &Station, cur: i64, releases: &[Release]) -> Vec<i64> {
        let followed: Vec<i64> = releases
            .iter()
            .filter(|r| r.id != cur && follows(st, r))
            .map(|r| r.id)
            .collect();
        let n = st.keep_releases;
        let mut keep = vec![cur];
        keep.extend(followed.iter().filter(|id| **id > cur).take(n));
        keep.extend(followed.iter().filter(|id| **id < cur).take(n));
        keep
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
            // The rollout is the build's: whoever started the build asked for it.
            let by = self
                .store
                .run(rel.run_id)?
                .map_or_else(|| "pipedeck".to_string(), |r| r.triggered_by);
            let asked = Asked {
                by: &by,
                trigger: Trigger::Chain,
                allow_older: false,
            };
            self.fan_out(&rel, asked, out)?;
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

    /// Every station that follows `rel` and is not pinned switches to it next, in
    /// one rollout run.
    pub(super) fn fan_out(&mut self, rel: &Release, asked: Asked<'_>, out: &mut Out) -> Result<()> {
        let to: Vec<_> = self
            .station_rows()?
            .into_iter()
            .filter(|(st, row)| !row.pinned && follows(st, rel) && row.current != Some(rel.id))
            .collect();
        self.roll_out(rel, to, asked, out)
    }
}
