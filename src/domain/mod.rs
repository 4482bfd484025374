//! Pure types shared by the engine, the store and every client.

pub mod ansi;
pub mod event;
pub mod run;

pub use event::Event;
pub use run::{
    Decision, GateInfo, GateStatus, RunDetail, RunInfo, RunKind, RunStatus, RunType, Stage,
    StepInfo, StepStatus, Trigger,
};

/// Milliseconds since the Unix epoch.
pub type Millis = i64;

/// The current wall-clock time in milliseconds since the Unix epoch.
pub fn now_ms() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
