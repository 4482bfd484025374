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

impl DriftReport {
    /// The resources that drifted.
    pub fn drifted(&self) -> impl Iterator<Item = &ResourceDrift> {
        self.resources
            .iter()
            .filter(|r| r.status == DriftStatus::Drifted)
    }
}

/// A resource's latest drift check, as stored: what the infra DAG view and the runs
/// table mark.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriftRecord {
    pub project: String,
    pub resource: String,
    pub status: DriftStatus,
    /// The plan's summary when drifted (see [`ResourceDrift::summary`]).
    #[serde(default)]
    pub summary: Option<Value>,
    /// Why it errored, or was not checked (untrusted).
    #[serde(default)]
    pub detail: Option<String>,
    pub checked_at: Millis,
}

impl DriftRecord {
    /// The records a report makes, one per resource.
    pub fn of(report: &DriftReport) -> Vec<DriftRecord> {
        report
            .resources
            .iter()
            .map(|r| DriftRecord {
                project: report.project.clone(),
                resource: r.resource.clone(),
                status: r.status,
                summary: r.summary.clone(),
                detail: r.detail.clone(),
                checked_at: report.checked_at,
            })
            .collect()
    }
}

/// `1 to add, 1 to change, 0 to destroy`: a drifted resource's plan in a few words.
pub fn counts(summary: &Value) -> String {
    format!(
        "{} to add, {} to change, {} to destroy",
        summary["add"], summary["change"], summary["destroy"]
    )
}
