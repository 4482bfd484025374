//! Chained pipelines (SP-7a): a run that an upstream run's end (or its deploy to an
//! environment) started, and what it got from it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Millis, RunStatus};

/// One upstream run of a chained run: who it was and what it produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Upstream {
    pub run_id: i64,
    pub service: String,
    pub commit_sha: String,
    pub branch: String,
    /// What the upstream run's steps wrote to `$PIPEDECK_OUTPUT` (as stored: masked),
    /// by step name, then key.
    pub outputs: BTreeMap<String, BTreeMap<String, String>>,
}

/// A run started by another, as the upstream run's detail lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Downstream {
    pub run_id: i64,
    pub service: String,
    pub status: RunStatus,
    pub created_at: Millis,
}

/// A run's place in its chains.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainLinks {
    pub upstream: Vec<Upstream>,
    pub downstream: Vec<Downstream>,
}
