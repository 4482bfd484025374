//! The station executor (DP-2): switches each station to the release it should run,
//! in its idle window, and runs station jobs on the release that was current when
//! they started. What each station runs and should run is the runner's (stored); the
//! jobs in flight and the switches under way are this task's.

pub mod fsops;
pub(crate) mod job;

use std::collections::HashMap;
use std::path::PathBuf;

use tokio::sync::{mpsc, oneshot};

use super::runner::{Msg, ReleaseMsg};
use crate::config::station::Station;
use crate::domain::release::Release;
use crate::store::artifacts::ArtifactStore;

pub use job::{JobOutput, StationJob};

/// A station to switch: its definition and the release it should run.
#[derive(Debug, Clone)]
pub(crate) struct SwitchPlan {
    pub station: Station,
    pub release: Release,
    /// The releases it keeps unpacked once it runs this one; the others are removed
    /// after the switch (no job can start while it is under way).
    pub keep: Vec<i64>,
}

/// A job's hold on a station's release: the switch waits until it is given back.
#[derive(Debug)]
pub(crate) struct Lease {
    pub station: String,
    pub release: i64,
    pub dir: PathBuf,
    tx: mpsc::UnboundedSender<Cmd>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        // The switcher is gone only when the engine stopped.
        let _ = self.tx.send(Cmd::JobEnd(self.station.clone()));
    }
}

enum Cmd {
    /// Something changed: look at what each station should run.
    Kick,
    JobStart {
        station: Station,
        reply: oneshot::Sender<Result<Lease, String>>,
    },
    JobEnd(String),
    /// A switch ended (its outcome is stored).
    Switched(String),
    Jobs(oneshot::Sender<HashMap<String, u32>>),
}

/// The handle on the station executor.
#[derive(Clone)]
pub(crate) struct Stations {
    tx: mpsc::UnboundedSender<Cmd>,
}

impl Stations {
    /// Look again at what each station should run.
    pub fn kick(&self) {
        let _ = self.tx.send(Cmd::Kick);
    }

    /// Holds `station`'s current release for a job (waiting for a switch under way,
    /// or one that waits for the station's idle window, to finish first).
    pub async fn lease(&self, station: Station) -> Result<Lease, String> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Cmd::JobStart { station, reply })
            .map_err(|_| "the engine is stopping".to_string())?;
        rx.await.map_err(|_| "the engine is stopping".to_string())?
    }

    /// Jobs in flight by station.
    pub async fn jobs(&self) -> HashMap<String, u32> {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Cmd::Jobs(reply)).is_err() {
            return HashMap::new();
        }
        rx.await.unwrap_or_default()
    }
}

#[derive(Default)]
struct Slot {
    jobs: u32,
    switching: bool,
    /// A switch waits for the jobs in flight: new jobs wait for it.
    pending: bool,
    waiting: Vec<(Station, oneshot::Sender<Result<Lease, String>>)>,
}

struct Switcher {
    runner: mpsc::Sender<Msg>,
    artifacts: ArtifactStore,
    tx: mpsc::UnboundedSender<Cmd>,
    slots: HashMap<String, Slot>,
    stop: tokio_util::sync::CancellationToken,
}

/// Starts the station executor; it looks at every station at once (a fan-out a
/// stopped engine left half done is finished).
pub(crate) fn start(
    runner: mpsc::Sender<Msg>,
    data_dir: &std::path::Path,
    stop: tokio_util::sync::CancellationToken,
) -> Stations {
    let (tx, rx) = mpsc::unbounded_channel();
    let sw = Switcher {
        runner,
        artifacts: ArtifactStore::new(data_dir),
        tx: tx.clone(),
        slots: HashMap::new(),
        stop,
    };
    let _ = tx.send(Cmd::Kick);
    tokio::spawn(sw.run(rx));
    Stations { tx }
}

impl Switcher {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Cmd>) {
        // A command found behind a run of kicks, handled next.
        let mut held = None;
        loop {
            let cmd = match held.take() {
                Some(c) => Some(c),
                None => tokio::select! {
                    c = rx.recv() => c,
                    _ = self.stop.cancelled() => None,
                },
            };
            let Some(cmd) = cmd else { return };
            match cmd {
                Cmd::Kick => {
                    // Many kicks at once need one look; what comes after them is
                    // kept (a lost `Switched` would hold its station for good).
                    while let Ok(c) = rx.try_recv() {
                        if !matches!(c, Cmd::Kick) {
                            held = Some(c);
                            break;
                        }
                    }
                    self.look().await
                }
                Cmd::JobStart { station, reply } => {
                    let slot = self.slots.entry(station.name.clone()).or_default();
                    if slot.switching || slot.pending {
                        slot.waiting.push((station, reply));
                    } else {
                        let lease = self.lease(&station);
                        let _ = reply.send(lease);
                    }
                }
                Cmd::JobEnd(name) => {
                    let slot = self.slots.entry(name).or_default();
                    slot.jobs = slot.jobs.saturating_sub(1);
                    if slot.jobs == 0 {
                        self.look().await;
                    }
                }
                Cmd::Switched(name) => {
                    let slot = self.slots.entry(name.clone()).or_default();
                    slot.switching = false;
                    slot.pending = false;
                    self.look().await;
                }
                Cmd::Jobs(reply) => {
                    let jobs = self
                        .slots
                        .iter()
                        .filter(|(_, s)| s.jobs > 0)
                        .map(|(k, s)| (k.clone(), s.jobs))
                        .collect();
                    let _ = reply.send(jobs);
                }
            }
        }
    }

    /// A job's hold on what `current` points at now.
    fn lease(&mut self, station: &Station) -> Result<Lease, String> {
        let Some(release) = fsops::current_release(&station.dir) else {
            return Err(format!(
                "station {} runs no release yet ({} points nowhere)",
                station.name,
                fsops::current_link(&station.dir).display()
            ));
        };
        self.slots.entry(station.name.clone()).or_default().jobs += 1;
        Ok(Lease {
            station: station.name.clone(),
            release,
            dir: fsops::release_dir(&station.dir, release),
            tx: self.tx.clone(),
        })
    }

    /// Starts the switches that may start: a station with a release to switch to,
    /// no switch under way and no job in flight.
    async fn look(&mut self) {
        let (reply, rx) = oneshot::channel();
        if self
            .runner
            .send(Msg::Release(ReleaseMsg::Plan(reply)))
            .await
            .is_err()
        {
            return;
        }
        let Ok(Ok(plans)) = rx.await else { return };
        for slot in self.slots.values_mut() {
            slot.pending = false;
        }
        for plan in plans {
            let slot = self.slots.entry(plan.station.name.clone()).or_default();
            if slot.switching {
                continue;
            }
            slot.pending = true;
            if slot.jobs > 0 {
                continue;
            }
            slot.switching = true;
            let (runner, artifacts, tx) =
                (self.runner.clone(), self.artifacts.clone(), self.tx.clone());
            tokio::spawn(async move {
                let name = plan.station.name.clone();
                let error = switch(&artifacts, &plan).await.err();
                if error.is_none() {
                    // Still switching: no job runs on this station while its old
                    // releases go, and the switch is reported once they have.
                    prune(&plan.station, plan.keep.clone()).await;
                }
                if let Some(e) = &error {
                    tracing::warn!(
                        "station {name}: switch to release {} failed: {e}",
                        plan.release.id
                    );
                }
                let (reply, rx) = oneshot::channel();
                let msg = ReleaseMsg::Switched {
                    station: name.clone(),
                    release: plan.release.id,
                    error,
                    reply,
                };
                if runner.send(Msg::Release(msg)).await.is_ok() {
                    let _ = rx.await;
                }
                let _ = tx.send(Cmd::Switched(name));
            });
        }
        // Jobs that waited for a switch no longer planned start now.
        let free: Vec<String> = self
            .slots
            .iter()
            .filter(|(_, s)| !s.switching && !s.pending && !s.waiting.is_empty())
            .map(|(k, _)| k.clone())
            .collect();
        for name in free {
            let waiting = self
                .slots
                .get_mut(&name)
                .map(|s| std::mem::take(&mut s.waiting));
            for (station, reply) in waiting.unwrap_or_default() {
                let lease = self.lease(&station);
                let _ = reply.send(lease);
            }
        }
    }
}

/// Removes the station's releases it need not keep (see `Runner::switched`).
async fn prune(station: &Station, keep: Vec<i64>) {
    let (dir, name) = (station.dir.clone(), station.name.clone());
    let done = tokio::task::spawn_blocking(move || fsops::prune_releases(&dir, &keep)).await;
    match done {
        Ok(Ok(removed)) if !removed.is_empty() => {
            tracing::info!("station {name}: removed old releases {removed:?}")
        }
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::warn!("station {name}: cannot remove old releases: {e}"),
        Err(e) => tracing::warn!("station {name}: removing old releases was lost: {e}"),
    }
}

/// Unpacks the release, points `current` at it, then runs `activate` and `health`;
/// a failure of either points `current` back at the release before.
async fn switch(artifacts: &ArtifactStore, plan: &SwitchPlan) -> Result<(), String> {
    let Some(digest) = plan.release.digest.clone() else {
        return Err(format!("release {} has no artifact", plan.release.id));
    };
    let (artifacts, dir, id) = (artifacts.clone(), plan.station.dir.clone(), plan.release.id);
    let before = tokio::task::spawn_blocking(move || {
        let before = fsops::current_release(&dir);
        fsops::ensure_release(&artifacts, &dir, id, &digest)?;
        fsops::point_current(&dir, id)?;
        Ok::<_, fsops::SwitchError>(before)
    })
    .await
    .map_err(|e| format!("switching: {e}"))?
    .map_err(|e| e.to_string())?;
    let st = &plan.station;
    let release_dir = fsops::release_dir(&st.dir, id);
    for (what, cmd) in [("activate", &st.activate), ("health", &st.health)] {
        let Some(cmd) = cmd else { continue };
        let out = job::run_sh(cmd, &release_dir, &st.name, id).await;
        if out.exit_code != Some(0) {
            let why = format!(
                "{what} `{cmd}` failed ({}){}",
                out.describe(),
                match before {
                    Some(b) if b != id => format!("; switched back to release {b}"),
                    _ => String::new(),
                }
            );
            if let Some(b) = before.filter(|b| *b != id) {
                let dir = st.dir.clone();
                let back = tokio::task::spawn_blocking(move || fsops::point_current(&dir, b)).await;
                if let Ok(Err(e)) = back {
                    return Err(format!("{why}, but switching back failed: {e}"));
                }
            }
            return Err(why);
        }
    }
    Ok(())
}
