//! A rollout run (DP-2): one release switched to on some stations, one unit per
//! station, each run by the switch executor in its station's idle window.
//!
//! - Units are independent: one station's failed switch skips nothing else.
//! - Cancel stops what has not switched yet (a switch waiting for its idle window
//!   gives up; one in its hooks is stopped and switches back).
//! - A gated station group's stations wait at one gate of the run, `stations:GROUP`.
//! - Each station has a line (like an environment's): switches never overlap, a newer
//!   rollout supersedes an older one that has not started (at the gate too), and an
//!   automatic rollout never puts an older build of a branch over a newer one.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::Planned;
use crate::config::GatePolicy;
use crate::config::station::Station;
use crate::domain::release::Release;
use crate::domain::{GateKey, QueueKey, QueuePolicy, RunInfo, Stage, SwitchGateKey};
use crate::engine::executor::switch::Switch;
use crate::engine::queue::Deployed;
use crate::engine::scheduler::{GateSpec, OnCancel, OnFailure, Plan, Policy, QueueSpec, Unit};

/// A rollout's definition, pinned when the run is made.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RolloutDef {
    pub release: Release,
    pub switches: Vec<SwitchDef>,
    /// An operator's move (pin, unpin, rollback, promote): it may go back to an older
    /// build on purpose.
    pub allow_older: bool,
    pub kill_grace_ms: u64,
}

/// One station's switch in a rollout.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SwitchDef {
    pub station: Station,
    /// The releases it keeps unpacked once it runs the new one.
    pub keep: Vec<i64>,
    /// Its group's gate, if the group is gated.
    pub gate: Option<GatePolicy>,
    /// What it ran when the rollout was made.
    pub before: Option<Release>,
}

/// A release as a station's line compares it: newer releases have greater ids.
fn deployed(run_id: i64, r: &Release) -> Deployed {
    Deployed {
        run_id,
        rank: r.id,
        branch: r.branch.clone(),
        commit: r.commit_sha.clone(),
    }
}

/// The line a station's switches go through.
fn line(st: &Station) -> QueueKey {
    QueueKey {
        service: st.service.clone(),
        env: format!("station {}", st.name),
    }
}

pub(super) fn rows(def: &RolloutDef) -> Vec<Planned> {
    def.switches
        .iter()
        .map(|s| Planned {
            stage: Stage::Switch,
            name: s.station.name.clone(),
            parent: None,
        })
        .collect()
}

pub(super) fn graph(run: &RunInfo, def: &RolloutDef) -> Plan<Switch> {
    let units = def
        .switches
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let gate = s.station.group.as_ref().zip(s.gate.as_ref());
            Unit {
                step: i,
                needs: Vec::new(),
                group: None,
                policy: Policy {
                    on_failure: OnFailure::SkipDownstream,
                    on_cancel: OnCancel::Terminate,
                    gate_before: gate.map(|(g, policy)| GateSpec {
                        key: GateKey::env(&SwitchGateKey::new(g).to_string()),
                        policy: policy.clone(),
                        what: "station gate".into(),
                    }),
                    gate_after: None,
                    queue: Some(QueueSpec {
                        key: line(&s.station),
                        policy: QueuePolicy::Latest,
                        me: deployed(run.id, &def.release),
                        allow_older: def.allow_older,
                        // Only its build order counts, not a run id.
                        last: s.before.as_ref().map(|r| deployed(0, r)),
                    }),
                },
                work: Arc::new(Switch {
                    station: s.station.clone(),
                    keep: s.keep.clone(),
                }),
            }
        })
        .collect();
    Plan {
        units,
        groups: Vec::new(),
        run_gate: None,
        settled: Vec::new(),
    }
}
