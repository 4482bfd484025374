//! Why a stack job's operation that ran could not be carried through.

use std::path::PathBuf;

use super::files::OutputsError;
use crate::engine::executor::terraform as tf;

/// Why an operation that ran could not be carried through (the unit fails with it).
#[derive(Debug, thiserror::Error)]
pub(super) enum StackJobError {
    #[error("internal error: the resource was not made ready")]
    NotReady,
    #[error("no command for this operation")]
    NoCommand,
    #[error("internal error: a state job without its state operation")]
    NoStateOp,
    #[error("no terraform or tofu binary on PATH: state operations need one")]
    NoBinary,
    #[error(transparent)]
    Terraform(#[from] tf::TerraformError),
    /// Apply's outputs could not be written where the command driver's go.
    #[error("cannot write {}: {source}", path.display())]
    WriteOutputs {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Outputs(#[from] OutputsError),
    /// The blocking task reading Terraform's results panicked or was cancelled.
    #[error("{0}")]
    Join(#[from] tokio::task::JoinError),
}
