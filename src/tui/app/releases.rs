//! The deployments (releases, DP-1) and stations (DP-2) as the dashboard last read
//! them, and the operations on them (DP-3: pin, unpin, promote, rollback, delete),
//! each offered as a confirmation that says what will change before it goes to the
//! engine as a typed request.

use std::collections::BTreeSet;

use super::{AppState, Dialog};
use crate::domain::ansi::inert;
use crate::domain::release::{Release, ReleaseEnv, ReleaseStatus, StationInfo};
use crate::tui::action::{Effect, ReleaseOp};

/// Releases and stations, with the views' selections.
#[derive(Debug, Clone, Default)]
pub struct Releases {
    /// Newest first.
    pub releases: Vec<Release>,
    pub stations: Vec<StationInfo>,
    pub release_sel: usize,
    pub station_sel: usize,
    /// Stations marked in the stations view (`space`): what pin and unpin act on.
    pub marked: BTreeSet<String>,
    /// A read of both is in flight; `stale`: something changed since it was asked
    /// for, so one more follows it (a fan-out's many events cost at most two reads).
    loading: bool,
    stale: bool,
}

impl Releases {
    pub fn selected_release(&self) -> Option<&Release> {
        self.releases.get(self.release_sel)
    }

    pub fn selected_station(&self) -> Option<&StationInfo> {
        self.stations.get(self.station_sel)
    }

    /// A fresh read of both lists: selections stay in range, marks of gone stations go.
    pub fn replace(&mut self, releases: Vec<Release>, stations: Vec<StationInfo>) {
        self.loading = false;
        self.release_sel = self.release_sel.min(releases.len().saturating_sub(1));
        self.station_sel = self.station_sel.min(stations.len().saturating_sub(1));
        self.marked
            .retain(|m| stations.iter().any(|s| &s.name == m));
        self.releases = releases;
        self.stations = stations;
    }

    /// A release event: the release changed or is new (newest first).
    pub fn upsert(&mut self, r: Release) {
        match self.releases.iter_mut().find(|x| x.id == r.id) {
            Some(x) => *x = r,
            None => {
                let pos = self
                    .releases
                    .iter()
                    .position(|x| x.id < r.id)
                    .unwrap_or(self.releases.len());
                self.releases.insert(pos, r);
                if pos <= self.release_sel && self.releases.len() > 1 {
                    self.release_sel += 1;
                }
            }
        }
    }

    /// The stations that run (or switch to) release `id`: `edge-1, edge-2 (next)`.
    pub fn running_on(&self, id: i64) -> String {
        crate::domain::release::running_on(&self.stations, id)
    }

    /// The stations an operation from the stations view acts on: the marked ones, else
    /// the selected one.
    fn chosen_stations(&self) -> Vec<String> {
        if self.marked.is_empty() {
            self.selected_station()
                .map(|s| vec![s.name.clone()])
                .unwrap_or_default()
        } else {
            self.marked.iter().cloned().collect()
        }
    }
}

/// `deployment 4 (web 1a2b3c4, production)`.
pub fn describe(r: &Release) -> String {
    format!(
        "deployment {} ({} {}, {})",
        r.id,
        inert(&r.service),
        inert(&r.commit_sha.chars().take(7).collect::<String>()),
        r.environment
    )
}

fn names(list: &[String]) -> String {
    list.iter().map(|n| inert(n)).collect::<Vec<_>>().join(", ")
}

impl AppState {
    fn confirm(&mut self, text: String, op: ReleaseOp) {
        self.dialog = Some(Dialog::Confirm {
            text,
            effect: Effect::Release(op),
        });
    }

    /// `p`: pin the selected deployment to the marked stations (none marked: every
    /// station of its service).
    pub fn ask_pin(&mut self) {
        let d = &self.deploys;
        let Some(r) = d.selected_release() else {
            self.error("no deployment selected (:deployments)");
            return;
        };
        if r.status != ReleaseStatus::Ready {
            self.error(format!(
                "{} is {}: only a ready deployment can be pinned",
                describe(r),
                r.status
            ));
            return;
        }
        let stations: Vec<String> = if d.marked.is_empty() {
            d.stations
                .iter()
                .filter(|s| s.service == r.service)
                .map(|s| s.name.clone())
                .collect()
        } else {
            d.marked.iter().cloned().collect()
        };
        let foreign: Vec<String> = stations
            .iter()
            .filter(|n| {
                d.stations
                    .iter()
                    .any(|s| &s.name == *n && s.service != r.service)
            })
            .cloned()
            .collect();
        if !foreign.is_empty() {
            self.error(format!(
                "{} runs another service than {}: unmark it (space in :stations)",
                names(&foreign),
                inert(&r.service)
            ));
            return;
        }
        if stations.is_empty() {
            self.error(format!("no station runs {}", inert(&r.service)));
            return;
        }
        let text = format!(
            "Pin {} to {}? They switch to it in their idle window (jobs in flight finish on \
             the old version) and stop following new deployments until unpinned.",
            describe(r),
            names(&stations)
        );
        let op = ReleaseOp::Pin {
            release: r.id,
            stations,
        };
        self.confirm(text, op);
    }

    /// `u` (stations view): unpin the marked stations, else the selected one.
    pub fn ask_unpin(&mut self) {
        let stations = self.deploys.chosen_stations();
        if stations.is_empty() {
            self.error("no station selected");
            return;
        }
        let text = format!(
            "Unpin {}? They follow new deployments again and switch to the newest one they \
             follow.",
            names(&stations)
        );
        self.confirm(text, ReleaseOp::Unpin { stations });
    }

    /// `P`: promote the selected preview deployment to production.
    pub fn ask_promote(&mut self) {
        let Some(r) = self.deploys.selected_release() else {
            self.error("no deployment selected");
            return;
        };
        if r.environment != ReleaseEnv::Preview || r.status != ReleaseStatus::Ready {
            self.error(format!(
                "{} is {} and {}: only a ready preview deployment can be promoted",
                describe(r),
                r.environment,
                r.status
            ));
            return;
        }
        let following: Vec<String> = self
            .deploys
            .stations
            .iter()
            .filter(|s| s.service == r.service && !s.pinned && s.follows.starts_with("branch"))
            .map(|s| s.name.clone())
            .collect();
        let text = format!(
            "Promote {}? A new production deployment of the same artifact is made; it fans \
             out to the production stations that are not pinned ({}).",
            describe(r),
            if following.is_empty() {
                "none now".to_string()
            } else {
                names(&following)
            }
        );
        let op = ReleaseOp::Promote { release: r.id };
        self.confirm(text, op);
    }

    /// `b`: roll back the selected deployment's (or station's) service.
    pub fn ask_rollback(&mut self, from_stations: bool) {
        let service = if from_stations {
            self.deploys.selected_station().map(|s| s.service.clone())
        } else {
            self.deploys.selected_release().map(|r| r.service.clone())
        };
        let Some(service) = service else {
            self.error("nothing selected to roll back");
            return;
        };
        let prod: Vec<&StationInfo> = self
            .deploys
            .stations
            .iter()
            .filter(|s| s.service == service && s.follows.starts_with("branch"))
            .collect();
        let now: Vec<String> = prod
            .iter()
            .map(|s| {
                let at = s.current.map_or("nothing".to_string(), |c| c.to_string());
                format!("{} runs {at}", inert(&s.name))
            })
            .collect();
        let text = format!(
            "Roll back {}? Every production station ({}) is pinned to the ready production \
             deployment before the one it runs, and stays there until unpinned.",
            inert(&service),
            if now.is_empty() {
                "none".to_string()
            } else {
                now.join(", ")
            }
        );
        self.confirm(text, ReleaseOp::Rollback { service });
    }

    /// `d`: delete the selected deployment (refused when a station uses it).
    pub fn ask_delete(&mut self) {
        let Some(r) = self.deploys.selected_release() else {
            self.error("no deployment selected");
            return;
        };
        let on = self.deploys.running_on(r.id);
        let text = if on == "-" {
            format!(
                "Delete {}? Its record goes, and its artifact too unless another deployment \
                 shares it. This cannot be undone.",
                describe(r)
            )
        } else {
            format!(
                "Delete {}? Stations use it ({on}): the engine refuses while any station \
                 runs it, is pinned to it or switches to it.",
                describe(r)
            )
        };
        let op = ReleaseOp::Delete { release: r.id };
        self.confirm(text, op);
    }

    /// `space` (stations view): marks or unmarks the selected station.
    pub fn toggle_mark(&mut self) {
        let Some(name) = self.deploys.selected_station().map(|s| s.name.clone()) else {
            return;
        };
        if !self.deploys.marked.remove(&name) {
            self.deploys.marked.insert(name);
        }
    }

    /// A station event: its stored fields change in place.
    pub fn station_changed(
        &mut self,
        name: &str,
        current: Option<i64>,
        pending: Option<i64>,
        pinned: bool,
        error: Option<String>,
    ) {
        if let Some(st) = self.deploys.stations.iter_mut().find(|s| s.name == name) {
            st.current = current;
            st.pending = pending;
            st.pinned = pinned;
            st.error = error;
        }
    }
}

impl AppState {
    /// The deployments or stations view is on screen (events read them again).
    pub fn release_views_open(&self) -> bool {
        matches!(self.view, super::View::Deployments | super::View::Stations)
    }

    /// Reads the deployments and stations again, unless a read is in flight (then one
    /// more follows it).
    pub fn load_releases(&mut self) -> Option<Effect> {
        let d = &mut self.deploys;
        if d.loading {
            d.stale = true;
            return None;
        }
        d.loading = true;
        d.stale = false;
        Some(Effect::LoadReleases)
    }

    /// A read ended (with the lists or an error): the one owed, if anything changed
    /// meanwhile.
    pub fn releases_loaded(&mut self) -> Option<Effect> {
        self.deploys.loading = false;
        if std::mem::take(&mut self.deploys.stale) {
            return self.load_releases();
        }
        None
    }
}
