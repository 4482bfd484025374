//! Rollouts in the runner (DP-2): a release to switch some stations to becomes a run
//! of its own (the rollout planner makes one unit per station); each station's row
//! says which rollout switches it next, and follows its switch's row when it ends.

use super::{After, Out, Result, Runner};
use crate::config::station::Station;
use crate::domain::chain::Upstream;
use crate::domain::release::{Release, ReleaseEnv};
use crate::domain::{
    GateStatus, RunSpec, RunStatus, RunType, Stage, StepInfo, StepStatus, SwitchGateKey, Trigger,
};
use crate::engine::plan::rollout::{RolloutDef, SwitchDef};
use crate::store::NewRun;
use crate::store::releases::StationRow;

/// Who asked for a rollout, and how.
pub(super) struct Asked<'a> {
    pub by: &'a str,
    pub trigger: Trigger,
    /// An operator's move: it may put an older build on a station.
    pub allow_older: bool,
}

impl Runner {
    /// Makes a rollout run that switches `stations` to `rel`; each station's pending
    /// switch is that run's from now on (an older rollout's switch of it gives way).
    pub(super) fn roll_out(
        &mut self,
        rel: &Release,
        stations: Vec<(Station, StationRow)>,
        asked: Asked<'_>,
        out: &mut Out,
    ) -> Result<()> {
        if stations.is_empty() {
            return Ok(());
        }
        let project = self.project.as_ref().map(|p| p.get());
        // The service's releases, read once for every station of the rollout.
        let releases = self.store.releases(Some(&rel.service), 10_000)?;
        let mut switches = Vec::with_capacity(stations.len());
        for (st, row) in &stations {
            let gate = st
                .group
                .as_ref()
                .and_then(|g| project.as_ref()?.station_groups.get(g))
                .filter(|g| g.gate.approval)
                .map(|g| g.gate.clone());
            let before = row
                .current
                .and_then(|id| releases.iter().find(|r| r.id == id).cloned());
            switches.push(SwitchDef {
                station: st.clone(),
                keep: Self::kept_releases(st, rel.id, &releases),
                gate,
                before,
            });
        }
        let def = RolloutDef {
            release: rel.clone(),
            switches,
            allow_older: asked.allow_older,
            kill_grace_ms: project.as_ref().map_or(10_000, |p| p.engine.kill_grace_ms),
        };
        let build = self.store.run(rel.run_id)?;
        let new = NewRun {
            spec: RunSpec::Rollout {
                service: rel.service.clone(),
                release: rel.id,
                branch: rel.branch.clone(),
                commit: rel.commit_sha.clone(),
            },
            run_type: match rel.environment {
                ReleaseEnv::Preview => RunType::Preview,
                _ => RunType::Production,
            },
            trigger: asked.trigger,
            commit_message: build
                .as_ref()
                .map_or(String::new(), |r| r.commit_message.clone()),
            author: build.as_ref().map_or(String::new(), |r| r.author.clone()),
            triggered_by: asked.by.to_string(),
            rerun_of: None,
            attempt: 1,
            allow_older: asked.allow_older,
            definition: serde_json::to_string(&def).map_err(|e| {
                super::EngineError::Internal(format!("cannot store a rollout: {e}"))
            })?,
            // A rollout of a build's release shows as that build's downstream run.
            upstream: match (&build, asked.trigger) {
                (Some(b), Trigger::Chain) => vec![Upstream {
                    run_id: b.id,
                    service: b.service.clone(),
                    commit_sha: b.commit_sha.clone(),
                    branch: b.branch.clone(),
                    outputs: Default::default(),
                }],
                _ => Vec::new(),
            },
        };
        let run = self.create(&new, None, out)?;
        for (st, mut row) in stations {
            row.pending = Some(rel.id);
            row.error = None;
            row.switch_run = Some(run.id);
            self.put_station(&row, out)?;
            out.after(After::Want(st.name, Some(run.id)));
        }
        Ok(())
    }

    /// A station no longer switches (pinned where it is): an older rollout's switch
    /// of it gives way, and so does its group's gate there once no station of the
    /// group waits at it any more.
    pub(super) fn switch_none(
        &mut self,
        st: &Station,
        mut row: StationRow,
        out: &mut Out,
    ) -> Result<()> {
        let old = row.switch_run.take();
        row.pending = None;
        out.after(After::Want(row.name.clone(), None));
        self.put_station(&row, out)?;
        let (Some(old), Some(group)) = (old, &st.group) else {
            return Ok(());
        };
        let still = self
            .station_rows()?
            .into_iter()
            .any(|(s, r)| r.switch_run == Some(old) && s.group.as_deref() == Some(group.as_str()));
        let env = SwitchGateKey::new(group).to_string();
        let waiting = self.store.last_gate(old, &env)?;
        if let Some(gate) = waiting.filter(|g| g.status == GateStatus::Waiting && !still) {
            let why = format!("no station of group {group} switches in this rollout any more");
            self.close_gate(gate, GateStatus::Superseded, "pipedeck", Some(why), out)?;
        }
        Ok(())
    }

    /// A switch row ended: its station runs the release, or says why it does not.
    pub(super) fn record_switch(&mut self, step: &StepInfo, out: &mut Out) -> Result<()> {
        if step.stage != Stage::Switch || !step.status.is_terminal() {
            return Ok(());
        }
        let Some(run) = self.store.run(step.run_id)? else {
            return Ok(());
        };
        let Some(release) = run.release else {
            return Ok(());
        };
        let Some((_, mut row)) = self
            .station_rows()?
            .into_iter()
            .find(|(s, _)| s.name == step.name)
        else {
            return Ok(()); // gone from the project meanwhile
        };
        // A switch the engine's shutdown stopped stays pending: the next engine
        // finishes it (`resume_rollouts`).
        let stopped = self.shutdown.is_some()
            && !matches!(step.status, StepStatus::Succeeded | StepStatus::Failed);
        let mine = row.switch_run == Some(run.id) && !stopped;
        let why = step.reason.clone().unwrap_or_default();
        match step.status {
            StepStatus::Succeeded => {
                row.current = Some(release);
                row.error = None;
            }
            // Waived or superseded: another rollout (or a pin) took over.
            StepStatus::Skipped if !mine => {}
            // A failed switch is not tried again on its own (DP-3).
            StepStatus::Failed if mine => {
                row.error = Some(format!("the switch to release {release} failed: {why}"));
            }
            status if mine => {
                row.error = Some(format!(
                    "the switch to release {release} was {status}: {why}"
                ));
            }
            _ => {}
        }
        if mine {
            row.pending = None;
            row.switch_run = None;
        }
        self.put_station(&row, out)?;
        let action = match step.status {
            StepStatus::Succeeded => "station_switch",
            StepStatus::Failed | StepStatus::Interrupted => "station_switch_failed",
            _ => return Ok(()),
        };
        let target = format!("station {} to release {release}", step.name);
        let error = (step.status != StepStatus::Succeeded).then_some(why);
        self.audit("pipedeck", action, run.id, Some(&target), error.as_deref())
    }

    /// At start, once the stored runs resumed: a station whose switch has no live
    /// rollout any more (its run ended without a word, or an earlier version of the
    /// engine left it pending) gets a rollout that finishes it.
    pub(super) fn resume_rollouts(&mut self) -> Result<()> {
        let mut out = Out::default();
        let mut orphans: Vec<(i64, Station, StationRow)> = Vec::new();
        for (st, row) in self.station_rows()? {
            let live = match row.switch_run {
                Some(id) => self
                    .store
                    .run(id)?
                    .is_some_and(|r| !r.status.is_terminal() && r.status != RunStatus::Cancelling),
                None => false,
            };
            if let Some(p) = row.pending.filter(|p| Some(*p) != row.current)
                && !live
            {
                orphans.push((p, st, row));
            }
        }
        for (p, st, row) in orphans {
            let Some(rel) = self.store.release_by_id(p)? else {
                self.switch_none(&st, row, &mut out)?;
                continue;
            };
            let asked = Asked {
                by: "pipedeck",
                trigger: Trigger::Manual,
                allow_older: true,
            };
            self.roll_out(&rel, vec![(st, row)], asked, &mut out)?;
        }
        self.publish(out, None);
        Ok(())
    }
}
