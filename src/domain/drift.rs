//! A drift check's answer: per resource of an infra pipeline, whether the real world
//! still matches its state and module (a plan-only `terraform plan
//! -detailed-exitcode`, refresh on; nothing is ever applied).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Millis;

/// What a drift check found for one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DriftStatus {
    /// The plan is empty: nothing would change.
    InSync,
    /// The plan would change something (the summary says what).
    Drifted,
    /// The plan could not be made (the detail says why).
    Error,
    /// Nothing deployed yet: there is no state to compare.
    NotDeployed,
    /// A `command`-driver resource: only Terraform/OpenTofu ones are checked.
    NotChecked,
}

words!(DriftStatus {
    InSync => "in_sync",
    Drifted => "drifted",
    Error => "error",
    NotDeployed => "not_deployed",
    NotChecked => "not_checked",
});

/// One resource's drift.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceDrift {
    pub resource: String,
    pub status: DriftStatus,
    /// The plan's summary (`add`, `change`, `destroy`, `changes`) when drifted.
    #[serde(default)]
    pub summary: Option<Value>,
    /// Why it errored, or was not checked (untrusted: Terraform's own words).
    #[serde(default)]
    pub detail: Option<String>,
    pub elapsed_ms: u64,
}

/// A drift check of one infra pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriftReport {
    pub project: String,
    pub environment: String,
    pub checked_at: Millis,
    pub elapsed_ms: u64,
    pub resources: Vec<ResourceDrift>,
}

impl DriftReport {
    /// Whether any resource drifted or could not be checked.
    pub fn clean(&self) -> bool {
        self.resources
            .iter()
            .all(|r| !matches!(r.status, DriftStatus::Drifted | DriftStatus::Error))
    }
}
