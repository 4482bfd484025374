//! The gate before a gated station group's switches (DP-3). It is an ordinary gate of
//! the release's build run, keyed `stations:GROUP`: opened, expired and decided by the
//! gate code every other gate goes through (`pipedeck approve RUN stations:GROUP`, the
//! group's approvers and self-approval rule, audited). What is particular to stations
//! is only when one opens (a station of the group has a release to switch to that the
//! group has not approved) and what a refusal does (the stations stay where they are).

use super::*;
use crate::config::station::Station;
use crate::domain::SwitchGateKey;
use crate::domain::release::Release;

/// Where a station's switch to a release stands at its group's gate.
pub(super) enum Clearance {
    /// No gate, or the group approved this build.
    Clear,
    /// Waiting for a decision at the group's gate.
    Waiting,
}

impl Runner {
    /// The gate policy of `st`'s group, if that group is gated.
    fn switch_gate_of(&self, st: &Station) -> Option<(SwitchGateKey, GatePolicy)> {
        let group = st.group.as_ref()?;
        let project = self.project.as_ref()?.get();
        let g = project.station_groups.get(group)?;
        g.gate
            .approval
            .then(|| (SwitchGateKey::new(group), g.gate.clone()))
    }

    /// The gate `st`'s pending switch waits at, if one does.
    pub(super) fn awaiting(&self, st: &Station, pending: Option<i64>) -> Result<Option<GateInfo>> {
        let (Some((key, _)), Some(pending)) = (self.switch_gate_of(st), pending) else {
            return Ok(None);
        };
        let Some(rel) = self.store.release_by_id(pending)? else {
            return Ok(None);
        };
        let env = key.to_string();
        Ok(self
            .store
            .gates(rel.run_id)?
            .into_iter()
            .rev()
            .find(|g| g.env == env)
            .filter(|g| g.status == GateStatus::Waiting))
    }

    /// Whether `st` may switch to `rel` now: a gated group needs its gate for `rel`'s
    /// build approved; without one waiting, a new one opens (the first request, or
    /// one again after a refusal, a cancel or a restart that ended the build run).
    pub(super) fn switch_clearance(
        &mut self,
        st: &Station,
        rel: &Release,
        out: &mut Out,
    ) -> Result<Clearance> {
        let Some((key, policy)) = self.switch_gate_of(st) else {
            return Ok(Clearance::Clear);
        };
        let env = key.to_string();
        let last = self
            .store
            .gates(rel.run_id)?
            .into_iter()
            .rev()
            .find(|g| g.env == env);
        let gate = match last {
            Some(g) if g.status == GateStatus::Approved => return Ok(Clearance::Clear),
            Some(g) if g.status == GateStatus::Waiting => {
                if self.waiters.contains_key(&g.id) {
                    return Ok(Clearance::Waiting);
                }
                g // opened by an engine before a restart: its expiry is timed again
            }
            _ => {
                let now = now_ms();
                let expires = policy.expires_after_ms.map(|ms| now + ms as i64);
                let g = self.store.insert_gate(rel.run_id, &env, now, expires)?;
                let target = format!("{env} for release {} ({})", rel.id, st.name);
                self.audit(
                    "pipedeck",
                    "open_switch_gate",
                    rel.run_id,
                    Some(&target),
                    None,
                )?;
                out.event(Event::Gate { gate: g.clone() });
                g
            }
        };
        // Nobody waits on the answer but the expiry timer; the decision is acted on
        // in `switch_gate_closed`.
        let (tx, _) = oneshot::channel();
        out.after(After::Wait(gate.clone(), tx));
        Ok(Clearance::Waiting)
    }

    /// Waiting switch gates no station of their group switches to any more (a newer
    /// release came, or the station was pinned elsewhere) are closed as superseded.
    pub(super) fn close_stale_switch_gates(
        &mut self,
        waiting: &[(String, i64)],
        out: &mut Out,
    ) -> Result<()> {
        for gate in self.store.waiting_gates()? {
            let Some(key) = SwitchGateKey::parse(&gate.env) else {
                continue;
            };
            if waiting
                .iter()
                .any(|(g, run)| *g == key.group && *run == gate.run_id)
            {
                continue;
            }
            let why = "no station of the group switches to this build any more".to_string();
            self.close_gate(gate, GateStatus::Superseded, "pipedeck", Some(why), out)?;
        }
        Ok(())
    }

    /// A switch gate was decided: approved, the stations switch; refused (rejected,
    /// expired, or cancelled with its build run), the group's stations drop that
    /// switch and say why (it is not tried again on its own).
    pub(super) fn switch_gate_closed(&mut self, gate: &GateInfo, out: &mut Out) -> Result<()> {
        let Some(key) = SwitchGateKey::parse(&gate.env) else {
            return Ok(());
        };
        let by = gate.decided_by.as_deref().unwrap_or("someone");
        let how = match gate.status {
            GateStatus::Expired => Some("expired".to_string()),
            GateStatus::Rejected => Some(format!("rejected by {by}")),
            GateStatus::Cancelled => Some(format!("cancelled with its build run by {by}")),
            _ => None,
        };
        if let Some(how) = how {
            let why = gate
                .comment
                .as_deref()
                .filter(|c| !c.trim().is_empty())
                .map(|c| format!(": {c}"))
                .unwrap_or_default();
            for (st, mut row) in self.station_rows()? {
                if st.group.as_deref() != Some(key.group.as_str()) {
                    continue;
                }
                let Some(pending) = row.pending else { continue };
                let of_run = self
                    .store
                    .release_by_id(pending)?
                    .is_some_and(|r| r.run_id == gate.run_id);
                if !of_run {
                    continue;
                }
                row.pending = None;
                row.error = Some(format!(
                    "the switch to release {pending} was {how} at gate {}{why}",
                    gate.env
                ));
                self.put_station(&row, out)?;
            }
        }
        out.after(After::KickStations);
        Ok(())
    }

    /// The policy of a switch gate as the project sets it now (stations follow the
    /// project in force, not a run's pinned definition).
    pub(super) fn switch_gate_policy(&self, key: &SwitchGateKey) -> Result<GatePolicy> {
        let project = self.project.as_ref().map(|p| p.get());
        project
            .as_ref()
            .and_then(|p| p.switch_gate(key))
            .cloned()
            .ok_or_else(|| {
                EngineError::NotFound(format!(
                    "no station group `{}` in the project any more: nothing to decide",
                    key.group
                ))
            })
    }
}
