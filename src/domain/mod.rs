//! Pure types shared by the engine, the store and every client.

/// `as_str`, `parse`, `ALL` and `Display` for an enum of snake_case words.
macro_rules! words {
    ($name:ident { $($variant:ident => $word:literal),+ $(,)? }) => {
        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The snake_case word used in the store, the API and `--json` output.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $word),+ }
            }

            /// Parses the word written by [`Self::as_str`].
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($word => Some($name::$variant),)+ _ => None }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

pub mod access;
pub mod ansi;
pub mod bytes;
pub mod chain;
pub mod command;
pub mod deploy;
pub mod drift;
pub mod event;
pub mod gate;
pub mod operation;
pub mod release;
pub mod run;
#[cfg(test)]
mod samples;
pub mod state_lock;
pub mod state_op;
pub mod target;
pub mod trigger;

pub use command::{Request, Response, TriggerRequest};
pub use deploy::{
    DeployStatus, Deployment, EnvQueue, QueueEntry, QueueKey, QueuePolicy, QueueState, Supersession,
};
pub use event::Event;
pub use gate::{GateKey, SwitchGateKey};
pub use operation::{InfraAction, Operation};
pub use run::{
    Decision, GateInfo, GateStatus, GraphNode, RunDetail, RunInfo, RunKind, RunSpec, RunStatus,
    RunType, Stage, StepInfo, StepStatus, Trigger,
};

/// Milliseconds since the Unix epoch.
pub type Millis = i64;

/// `1.2s`, `3m04s`, `2h05m`.
pub fn format_duration(ms: i64) -> String {
    let ms = ms.max(0);
    if ms < 60_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else if ms < 3_600_000 {
        format!("{}m{:02}s", ms / 60_000, (ms / 1000) % 60)
    } else {
        format!("{}h{:02}m", ms / 3_600_000, (ms / 60_000) % 60)
    }
}

/// The current wall-clock time in milliseconds since the Unix epoch.
pub fn now_ms() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
