//! The gate before a gated station group's switches (DP-3): a gate of the rollout
//! run, keyed `stations:GROUP`, before the switches of the group's stations (they
//! wait at it together). It is opened, expired, superseded and decided by the gate
//! code every other gate goes through (`pipedeck approve RUN stations:GROUP`, the
//! group's approvers and self-approval rule, audited); a refusal leaves the stations
//! where they are and says why.

use super::*;
use crate::config::station::Station;
use crate::domain::SwitchGateKey;
use crate::store::releases::StationRow;

impl Runner {
    /// The gate `st`'s pending switch waits at, if one does.
    pub(super) fn awaiting(&self, st: &Station, row: &StationRow) -> Result<Option<GateInfo>> {
        let (Some(group), Some(run)) = (&st.group, row.switch_run) else {
            return Ok(None);
        };
        let env = SwitchGateKey::new(group).to_string();
        Ok(self
            .store
            .last_gate(run, &env)?
            .filter(|g| g.status == GateStatus::Waiting))
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
