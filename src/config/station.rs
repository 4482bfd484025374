//! Stations (DP-2) and artifacts (DP-1) as the project file declares them, resolved.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::Service;
use super::schema::StationFile;
use super::validate::{Ctx, check_name};

/// The row of a service run that packs its artifact (a build row after every step).
pub const ARTIFACT_ROW: &str = "artifact";

/// Which releases a station follows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StationBinding {
    /// Production releases built from this branch.
    Branch(String),
    /// Preview releases: built from any other branch than the service's default.
    Previews,
}

/// A station: a directory that runs one release of one service at a time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Station {
    pub name: String,
    pub service: String,
    pub binding: StationBinding,
    /// Holds `releases/<id>/` and the `current` symlink.
    pub dir: PathBuf,
    /// Run in the new release's directory after the switch.
    pub activate: Option<String>,
    /// Run after `activate`; a failure switches back.
    pub health: Option<String>,
}

impl Station {
    /// Whether a new release of `service` built from `branch` is for this station.
    pub fn follows(&self, svc: &Service, branch: &str) -> bool {
        self.service == svc.name
            && match &self.binding {
                StationBinding::Branch(b) => b == branch,
                StationBinding::Previews => branch != svc.default_branch,
            }
    }

    /// Bound to a branch (production) rather than to previews.
    pub fn is_production(&self) -> bool {
        matches!(self.binding, StationBinding::Branch(_))
    }
}

/// A service's `artifact` globs, checked; empty when it declares none.
pub(super) fn resolve_artifact(
    cx: &mut Ctx<'_>,
    sname: &str,
    globs: &[Spanned<String>],
    step_names: &[&str],
) -> Vec<String> {
    let mut out = Vec::new();
    for g in globs {
        match globset::Glob::new(g.get_ref()) {
            Ok(_) if g.get_ref().starts_with('/') || g.get_ref().contains("..") => cx.err(
                g.span(),
                format!("artifact glob `{}` leaves the workspace", g.get_ref()),
                "use a path relative to the workspace, e.g. \"dist/**\"",
            ),
            Ok(_) => out.push(g.get_ref().clone()),
            Err(e) => cx.err(
                g.span(),
                format!(
                    "artifact glob `{}` of service `{sname}` is not a glob: {e}",
                    g.get_ref()
                ),
                "use a glob relative to the workspace, e.g. \"dist/**\"",
            ),
        }
    }
    if !out.is_empty()
        && step_names.contains(&ARTIFACT_ROW)
        && let Some(g) = globs.first()
    {
        cx.err(
            g.span(),
            format!("service `{sname}` has a step named `{ARTIFACT_ROW}` and declares `artifact`"),
            "rename the step: the row that packs the artifact is called `artifact`",
        );
    }
    out
}

/// The project's stations, checked against its services.
pub(super) fn resolve_stations(
    cx: &mut Ctx<'_>,
    file: &BTreeMap<Spanned<String>, StationFile>,
    services: &BTreeMap<String, Service>,
) -> BTreeMap<String, Station> {
    let mut out = BTreeMap::new();
    for (name, f) in file {
        check_name(cx, name, "station");
        let sname = f.service.get_ref();
        let Some(svc) = services.get(sname) else {
            let names: Vec<&str> = services.keys().map(String::as_str).collect();
            cx.err(
                f.service.span(),
                format!(
                    "station `{}` runs service `{sname}`, which is not defined",
                    name.get_ref()
                ),
                &format!("use one of: {}", names.join(", ")),
            );
            continue;
        };
        if svc.artifact.is_empty() {
            cx.err(
                f.service.span(),
                format!(
                    "station `{}` runs service `{sname}`, which declares no artifact",
                    name.get_ref()
                ),
                &format!(
                    "add `artifact = [\"dist/**\"]` (what its build produces) to services.{sname}"
                ),
            );
            continue;
        }
        let binding = match (f.previews.unwrap_or(false), &f.branch) {
            (true, Some(_)) => {
                cx.err(
                    name.span(),
                    format!(
                        "station `{}` sets both `branch` and `previews = true`",
                        name.get_ref()
                    ),
                    "a station follows one branch or the previews: remove one of them",
                );
                continue;
            }
            (true, None) => StationBinding::Previews,
            (false, b) => {
                StationBinding::Branch(b.clone().unwrap_or_else(|| svc.default_branch.clone()))
            }
        };
        out.insert(
            name.get_ref().clone(),
            Station {
                name: name.get_ref().clone(),
                service: sname.clone(),
                binding,
                dir: cx.path(f.dir.get_ref()),
                activate: f.activate.clone(),
                health: f.health.clone(),
            },
        );
    }
    out
}
