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
}

impl Event {
    /// The run this event belongs to.
    pub fn run_id(&self) -> i64 {
        match self {
            Event::Run { run } => run.id,
            Event::Step { step } => step.run_id,
            Event::Gate { gate } => gate.run_id,
            Event::Log { run_id, .. } => *run_id,
        }
    }
}
