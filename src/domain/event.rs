//! Events the engine publishes after each committed change.

use serde::{Deserialize, Serialize};

use super::{GateInfo, RunInfo, StepInfo};

/// One committed change. Events carry the new state itself, so a client applies
/// them without reading the store again.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A run was created or its row changed.
    Run { run: RunInfo },
    /// A step (build step or environment deploy) changed.
    Step { step: StepInfo },
    /// A gate opened or was decided.
    Gate { gate: GateInfo },
    /// New log lines were appended (durably written) to a step's log.
    /// Readers fetch them from the store; the event says how many exist now.
    Log {
        run_id: i64,
        step_id: i64,
        total_lines: u64,
    },
    /// A release (DP-1) was created or changed.
    Release { release: super::release::Release },
    /// A station's stored state changed: what it runs, switches to, and whether it is
    /// pinned (jobs in flight are not stored; `ListStations` has them).
    Station {
        name: String,
        current: Option<i64>,
        pending: Option<i64>,
        pinned: bool,
        error: Option<String>,
    },
    /// A drift check of an infra pipeline was stored (on demand or on its schedule).
    Drift { report: super::drift::DriftReport },
}

impl Event {
    /// The run this event belongs to (a station's belongs to none).
    pub fn run_id(&self) -> Option<i64> {
        match self {
            Event::Run { run } => Some(run.id),
            Event::Step { step } => Some(step.run_id),
            Event::Gate { gate } => Some(gate.run_id),
            Event::Log { run_id, .. } => Some(*run_id),
            Event::Release { release } => Some(release.run_id),
            Event::Station { .. } | Event::Drift { .. } => None,
        }
    }
}
