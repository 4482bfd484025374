//! Stations at run time (DP-2): the jobs in flight on each station, and its idle
//! window. A station job holds the release that was current when it started (a
//! [`Lease`]); a switch (a unit of a rollout run, `executor::switch`) waits until no
//! job is in flight, and holds the station (a [`Hold`]) while it switches. New jobs
//! wait behind a switch that waits, so that a busy station still gets its turn.

pub mod fsops;
pub(crate) mod job;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::station::Station;

pub use job::{JobOutput, StationJob};

#[derive(Default)]
struct Slot {
    jobs: u32,
    switching: bool,
    /// Switches waiting for the jobs in flight: new jobs wait for them.
    pending: u32,
    /// The rollout run whose switch the station should make next, as the runner
    /// last stored it: a switch of another run finds itself not needed any more.
    wanted: Option<i64>,
}

#[derive(Default)]
struct Inner {
    slots: Mutex<HashMap<String, Slot>>,
    /// Bumped at every change of a slot: whoever waits looks again.
    changed: watch::Sender<u64>,
}

/// The engine's stations at run time: cheap to clone, shared by the station jobs and
/// the switch executor.
#[derive(Clone, Default)]
pub(crate) struct Stations {
    inner: Arc<Inner>,
}

/// Why a job cannot hold a station's release.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error("station {station} runs no release yet ({} points nowhere)", link.display())]
    NoRelease { station: String, link: PathBuf },
    #[error("the engine is stopping")]
    Stopping,
}

/// A job's hold on a station's release: a switch waits until it is given back.
#[derive(Debug)]
pub(crate) struct Lease {
    pub release: i64,
    pub dir: PathBuf,
    _end: Release,
}

/// A switch's hold on a station: no job starts on it until this drops.
#[derive(Debug)]
pub(crate) struct Hold {
    _end: Release,
}

/// Gives a lease or a hold back when dropped.
#[derive(Debug)]
struct Release {
    stations: Stations,
    station: String,
    what: Held,
}

#[derive(Debug, Clone, Copy)]
enum Held {
    Job,
    Switch,
    /// A switch's place in the queue, before it holds the station.
    Waiting,
}

impl Drop for Release {
    fn drop(&mut self) {
        self.stations.change(&self.station, |s| match self.what {
            Held::Job => s.jobs = s.jobs.saturating_sub(1),
            Held::Switch => s.switching = false,
            Held::Waiting => s.pending = s.pending.saturating_sub(1),
        });
    }
}

impl std::fmt::Debug for Stations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Stations")
    }
}

impl Stations {
    fn slots(&self) -> MutexGuard<'_, HashMap<String, Slot>> {
        self.inner
            .slots
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn change(&self, station: &str, f: impl FnOnce(&mut Slot)) {
        f(self.slots().entry(station.to_string()).or_default());
        self.inner.changed.send_modify(|v| *v = v.wrapping_add(1));
    }

    fn release(&self, station: &str, what: Held) -> Release {
        Release {
            stations: self.clone(),
            station: station.to_string(),
            what,
        }
    }

    /// Holds `station`'s current release for a job, once no switch is under way or
    /// waiting for the station's idle window.
    pub async fn lease(&self, station: &Station) -> Result<Lease, LeaseError> {
        let mut changed = self.inner.changed.subscribe();
        loop {
            changed.borrow_and_update();
            {
                let mut slots = self.slots();
                let slot = slots.entry(station.name.clone()).or_default();
                if !slot.switching && slot.pending == 0 {
                    let Some(release) = fsops::current_release(&station.dir) else {
                        return Err(LeaseError::NoRelease {
                            station: station.name.clone(),
                            link: fsops::current_link(&station.dir),
                        });
                    };
                    slot.jobs += 1;
                    return Ok(Lease {
                        release,
                        dir: fsops::release_dir(&station.dir, release),
                        _end: self.release(&station.name, Held::Job),
                    });
                }
            }
            changed.changed().await.map_err(|_| LeaseError::Stopping)?;
        }
    }

    /// Waits for `station`'s idle window (no job in flight, no other switch), then
    /// holds it; `waiting` is told how many jobs it waits for whenever that changes.
    /// `None` if `stop` fired first.
    pub async fn hold(
        &self,
        station: &str,
        stop: &CancellationToken,
        mut waiting: impl FnMut(u32),
    ) -> Option<Hold> {
        let mut changed = self.inner.changed.subscribe();
        self.change(station, |s| s.pending += 1);
        let queued = self.release(station, Held::Waiting);
        let mut told = None;
        loop {
            changed.borrow_and_update();
            {
                let mut slots = self.slots();
                let slot = slots.entry(station.to_string()).or_default();
                if slot.jobs == 0 && !slot.switching {
                    slot.switching = true;
                    drop(slots);
                    drop(queued);
                    return Some(Hold {
                        _end: self.release(station, Held::Switch),
                    });
                }
                if told != Some(slot.jobs) {
                    told = Some(slot.jobs);
                    waiting(slot.jobs);
                }
            }
            tokio::select! {
                r = changed.changed() => r.ok()?,
                _ = stop.cancelled() => return None,
            }
        }
    }

    /// The runner stored that `station` should be switched by rollout `run` (or by
    /// none: pinned where it is).
    pub fn want(&self, station: &str, run: Option<i64>) {
        self.change(station, |s| s.wanted = run);
    }

    /// The rollout run `station` should be switched by.
    pub fn wanted(&self, station: &str) -> Option<i64> {
        self.slots().get(station).and_then(|s| s.wanted)
    }

    /// Jobs in flight by station.
    pub fn jobs(&self) -> HashMap<String, u32> {
        self.slots()
            .iter()
            .filter(|(_, s)| s.jobs > 0)
            .map(|(k, s)| (k.clone(), s.jobs))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn station(dir: &std::path::Path) -> Station {
        Station {
            name: "edge".into(),
            service: "web".into(),
            binding: crate::config::station::StationBinding::Branch("main".into()),
            dir: dir.to_path_buf(),
            activate: None,
            health: None,
            group: None,
            keep_releases: 3,
        }
    }

    #[tokio::test]
    async fn a_switch_waits_for_the_jobs_in_flight_and_new_jobs_wait_for_it() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("releases/1")).unwrap();
        fsops::point_current(tmp.path(), 1).unwrap();
        let st = station(tmp.path());
        let s = Stations::default();
        let job = s.lease(&st).await.unwrap();
        assert_eq!(job.release, 1);
        assert_eq!(s.jobs()["edge"], 1);

        let stop = CancellationToken::new();
        let (told_tx, mut told) = tokio::sync::mpsc::unbounded_channel();
        let s2 = s.clone();
        let stop2 = stop.clone();
        let switch = tokio::spawn(async move {
            s2.hold("edge", &stop2, move |n| told_tx.send(n).unwrap())
                .await
        });
        assert_eq!(told.recv().await, Some(1));
        // A job that comes now waits behind the switch.
        let (s3, st3) = (s.clone(), st.clone());
        let later = tokio::spawn(async move { s3.lease(&st3).await });
        tokio::task::yield_now().await;
        assert!(!switch.is_finished() && !later.is_finished());
        drop(job);
        let hold = switch.await.unwrap().expect("the idle window");
        assert!(!later.is_finished());
        drop(hold);
        assert_eq!(later.await.unwrap().unwrap().release, 1);

        // A switch stopped while it waits leaves no trace.
        let job = s.lease(&st).await.unwrap();
        let s4 = s.clone();
        let stop4 = stop.clone();
        let waiting = tokio::spawn(async move { s4.hold("edge", &stop4, |_| {}).await });
        tokio::task::yield_now().await;
        stop.cancel();
        assert!(waiting.await.unwrap().is_none());
        drop(job);
        let again = s.lease(&st).await.unwrap();
        assert_eq!(again.release, 1);
    }
}
