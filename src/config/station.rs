//! Stations (DP-2) and artifacts (DP-1) as the project file declares them, resolved.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::schema::{StationFile, StationGroupFile};
use super::validate::{Ctx, EXPIRES_AFTER, check_name};
use super::{GatePolicy, Service};

/// How many earlier releases a station keeps unpacked when it does not say.
pub const KEEP_RELEASES: usize = 3;
/// The most earlier releases a station may keep unpacked.
const MAX_KEEP_RELEASES: i64 = 100;

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
    /// Its station group, if it names one.
    #[serde(default)]
    pub group: Option<String>,
    /// Earlier releases kept unpacked for a rollback.
    #[serde(default = "keep_default")]
    pub keep_releases: usize,
}

fn keep_default() -> usize {
    KEEP_RELEASES
}

/// A station group: what its stations share.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StationGroup {
    pub name: String,
    /// The gate before a switch of its stations to a release (`approval` says
    /// whether there is one).
    pub gate: GatePolicy,
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

/// The project's station groups, checked.
pub(super) fn resolve_groups(
    cx: &mut Ctx<'_>,
    file: &BTreeMap<Spanned<String>, StationGroupFile>,
) -> BTreeMap<String, StationGroup> {
    let mut out = BTreeMap::new();
    for (name, f) in file {
        check_name(cx, name, "station group");
        let expires = f
            .expires_after
            .as_ref()
            .map(|_| cx.duration(&f.expires_after, 0, &EXPIRES_AFTER));
        let gate = GatePolicy {
            approval: f.approval.unwrap_or(false),
            approvers: f.approvers.clone().unwrap_or_default(),
            forbid_self_approval: f.forbid_self_approval.unwrap_or(false),
            expires_after_ms: expires,
            require_comment: f.require_comment.unwrap_or(false),
        };
        let name = name.get_ref().clone();
        out.insert(name.clone(), StationGroup { name, gate });
    }
    out
}

/// How many earlier releases a station keeps: 0 to [`MAX_KEEP_RELEASES`].
fn keep_releases(cx: &mut Ctx<'_>, v: &Option<Spanned<i64>>) -> usize {
    let Some(v) = v else { return KEEP_RELEASES };
    match usize::try_from(*v.get_ref()) {
        Ok(n) if n as i64 <= MAX_KEEP_RELEASES => n,
        _ => {
            cx.err(
                v.span(),
                format!(
                    "keep_releases = {} is out of range: it must be from 0 to {MAX_KEEP_RELEASES}",
                    v.get_ref()
                ),
                "write how many earlier releases stay unpacked for a rollback (default 3)",
            );
            KEEP_RELEASES
        }
    }
}

/// The project's stations, checked against its services and station groups.
pub(super) fn resolve_stations(
    cx: &mut Ctx<'_>,
    file: &BTreeMap<Spanned<String>, StationFile>,
    groups: &BTreeMap<String, StationGroup>,
    services: &BTreeMap<String, Service>,
) -> BTreeMap<String, Station> {
    let mut out = BTreeMap::new();
    for (name, f) in file {
        if let Some(g) = &f.group
            && !groups.contains_key(g.get_ref())
        {
            let names: Vec<&str> = groups.keys().map(String::as_str).collect();
            cx.err(
                g.span(),
                format!(
                    "station `{}` is in group `{}`, which is not defined",
                    name.get_ref(),
                    g.get_ref()
                ),
                &if names.is_empty() {
                    format!("add a `[station_groups.{}]` table", g.get_ref())
                } else {
                    format!(
                        "use one of: {}, or add a `[station_groups.{}]` table",
                        names.join(", "),
                        g.get_ref()
                    )
                },
            );
        }
        let keep_releases = keep_releases(cx, &f.keep_releases);
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
                group: f.group.as_ref().map(|g| g.get_ref().clone()),
                keep_releases,
            },
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::parse_project;

    const BASE: &str = r#"
[services.web]
repo = "."
artifact = ["dist/**"]
[[services.web.steps]]
name = "build"
run = "true"
"#;

    fn parse(extra: &str) -> Result<super::super::Project, Vec<super::super::ConfigError>> {
        parse_project(Path::new("/p/pipedeck.toml"), &format!("{BASE}{extra}"))
    }

    #[test]
    fn a_station_names_its_group_and_keeps_three_releases_by_default() {
        let p = parse(
            r#"
[station_groups.edge]
approval = true
approvers = ["alice"]
expires_after = "1h"

[stations.edge-1]
service = "web"
dir = "s1"
group = "edge"

[stations.edge-2]
service = "web"
dir = "s2"
keep_releases = 0
"#,
        )
        .unwrap();
        let e1 = &p.stations["edge-1"];
        assert_eq!((e1.group.as_deref(), e1.keep_releases), (Some("edge"), 3));
        assert_eq!(p.stations["edge-2"].keep_releases, 0);
        let g = &p.station_groups["edge"].gate;
        assert!(g.approval);
        assert_eq!(g.approvers, ["alice"]);
        assert_eq!(g.expires_after_ms, Some(3_600_000));
        let key = crate::domain::SwitchGateKey::new("edge");
        assert_eq!(p.switch_gate(&key), Some(g));
        // The approvals inbox knows who may decide it.
        let cat = p.catalog();
        assert!(
            cat.gates
                .iter()
                .any(|r| r.owner == "web" && r.env == "stations:edge" && r.approvers == ["alice"])
        );
    }

    #[test]
    fn an_unknown_group_and_a_keep_out_of_range_are_errors_with_their_line() {
        let errs = parse(
            r#"
[station_groups.edge]
approval = true

[stations.edge-1]
service = "web"
dir = "s1"
group = "egde"
keep_releases = 101
"#,
        )
        .unwrap_err();
        let text: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        assert!(
            errs.iter().any(|e| e.line == 15
                && e.message.contains("group `egde`, which is not defined")
                && e.hint.contains("use one of: edge")),
            "{text:#?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.line == 16 && e.message.contains("keep_releases = 101 is out of range")),
            "{text:#?}"
        );
    }
}
