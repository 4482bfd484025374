//! Stations and station groups as the project file writes them (serde types; the
//! doc comments are the JSON Schema's descriptions). [`super::station`] resolves them.

use schemars::JsonSchema;
use serde::Deserialize;
use toml::Spanned;

use super::json_schema::{Duration, NameKey};
use super::schema::Name;

/// A station: where one service's releases are unpacked and switched to.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StationFile {
    /// The service whose releases this station runs; it must declare `artifact`.
    #[schemars(with = "String")]
    pub service: Name,
    /// Follow new releases built from this branch (production). Default: the service's default branch, unless `previews = true`.
    pub branch: Option<String>,
    /// Follow releases built from branches other than the service's default branch (previews) instead of a branch.
    pub previews: Option<bool>,
    /// The station's directory (relative to this file): releases go to `releases/<id>/`, `current` points at the active one.
    #[schemars(with = "String")]
    pub dir: Spanned<String>,
    /// Run (as `sh -c`, in the new release's directory) after `current` points at it.
    pub activate: Option<String>,
    /// Run after `activate`; a failure switches `current` back to the release before.
    pub health: Option<String>,
    /// The station group it belongs to (a `[station_groups.NAME]` table): a gated group's switches wait for an approval.
    #[schemars(with = "Option<NameKey>")]
    pub group: Option<Name>,
    /// How many earlier ready releases it follows stay unpacked under `releases/` for a rollback (0 to 100), and as many later ones after a rollback; the others are removed after a switch (never the current one). Default 3.
    #[schemars(with = "Option<u32>", range(min = 0, max = 100))]
    pub keep_releases: Option<Spanned<i64>>,
}

/// A station group: one gate before its stations switch to a new release.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StationGroupFile {
    /// Switching the group's stations to a release waits until someone approves (`pipedeck approve RUN stations:GROUP`, RUN being the release's build run); one approval covers every station of the group.
    pub approval: Option<bool>,
    /// Who may approve or reject: Unix user names, or `@group` for a Unix group's members; empty or absent means any operator.
    pub approvers: Option<Vec<String>>,
    /// The person who triggered the build may not approve its switch.
    pub forbid_self_approval: Option<bool>,
    /// Approving or rejecting needs a comment (`--comment WHY`).
    pub require_comment: Option<bool>,
    /// Without a decision for this long, the gate counts as rejected: the stations stay where they are.
    #[schemars(with = "Option<Duration>")]
    pub expires_after: Option<Spanned<String>>,
}
