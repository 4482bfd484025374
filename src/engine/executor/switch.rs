//! The switch executor (DP-2): one unit of a rollout run switches one station to the
//! release. It waits for the station's idle window (reported as queued, with the jobs
//! it waits for), unpacks the release, points `current` at it, runs `activate` and
//! `health` into the unit's log, and removes the releases the station need not keep.
//! A failed or stopped hook points `current` back at the release before. Every step
//! is idempotent: a switch the engine died in is run again when its rollout resumes.

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::process::{self, LogTarget, ProcSpec};
use super::spawn;
use crate::config::station::Station;
use crate::domain::now_ms;
use crate::domain::release::Release;
use crate::engine::scheduler::{Executor, Finished, Outcome, UnitCtx};
use crate::engine::stations::{Stations, fsops};
use crate::store::artifacts::ArtifactStore;

/// One station's switch.
#[derive(Debug, Clone)]
pub(crate) struct Switch {
    pub station: Station,
    /// The releases it keeps unpacked once it runs this one (the others are removed
    /// while the switch still holds the station).
    pub keep: Vec<i64>,
}

pub(crate) struct SwitchExecutor {
    run_id: i64,
    release: Release,
    stations: Stations,
    artifacts: ArtifactStore,
    kill_grace: Duration,
}

impl SwitchExecutor {
    pub fn new(
        run_id: i64,
        release: Release,
        stations: Stations,
        data_dir: &std::path::Path,
        kill_grace: Duration,
    ) -> Self {
        Self {
            run_id,
            release,
            stations,
            artifacts: ArtifactStore::new(data_dir),
            kill_grace,
        }
    }
}

/// A line of the switch's own in its log (not waited for: the switch goes on).
fn note(log: &LogTarget, text: &str) {
    process::note_later(log, text);
}

fn ended(outcome: Outcome) -> Finished {
    Finished {
        outcome,
        exit_code: None,
        ended_at: now_ms(),
    }
}

/// Why a switch's file work failed.
#[derive(Debug, thiserror::Error)]
enum FileWork {
    #[error(transparent)]
    Failed(#[from] fsops::SwitchError),
    #[error("the file work was lost: {0}")]
    Lost(#[from] tokio::task::JoinError),
}

/// Runs blocking file work off the runtime.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, fsops::SwitchError> + Send + 'static,
) -> Result<T, FileWork> {
    Ok(tokio::task::spawn_blocking(f).await??)
}

impl SwitchExecutor {
    /// A hook from the project file, in the release's directory, into the unit's log.
    fn hook(&self, cmd: &str, st: &Station, dir: PathBuf) -> ProcSpec {
        let id = self.release.id.to_string();
        ProcSpec {
            command: cmd.to_string(),
            argv: None,
            extra_env: vec![
                ("PIPEDECK_STATION".into(), st.name.clone()),
                ("PIPEDECK_RELEASE_ID".into(), id),
                ("PIPEDECK_RELEASE_DIR".into(), dir.display().to_string()),
            ],
            cwd: dir,
            env: Arc::new(spawn::Env::default()),
            kill_grace: self.kill_grace,
            interrupt_first: false,
            timeout: None,
            // Both hooks and the switch back run in the unit's one slot.
            hold_slot: true,
        }
    }

    /// Unpacks and points `current` at the release, then runs the hooks; a hook that
    /// fails (or is stopped) points `current` back at `before`.
    async fn switch(&self, st: &Station, before: Option<i64>, ctx: &mut UnitCtx) -> Outcome {
        let id = self.release.id;
        let Some(digest) = self.release.digest.clone() else {
            return Outcome::Failed(format!("release {id} has no artifact"));
        };
        let (artifacts, dir) = (self.artifacts.clone(), st.dir.clone());
        let done = blocking(move || {
            fsops::ensure_release(&artifacts, &dir, id, &digest)?;
            fsops::point_current(&dir, id)
        })
        .await;
        if let Err(e) = done {
            return Outcome::Failed(e.to_string());
        }
        note(&ctx.log, &format!("{}: current -> releases/{id}", st.name));
        let release_dir = fsops::release_dir(&st.dir, id);
        for (what, cmd) in [("activate", &st.activate), ("health", &st.health)] {
            let Some(cmd) = cmd else { continue };
            note(&ctx.log, &format!("{what}: {cmd}"));
            let (how, _) = process::run(self.hook(cmd, st, release_dir.clone()), ctx).await;
            if how.success() {
                continue;
            }
            let mut why = format!("{what} `{cmd}` {}", how.describe());
            if let Some(b) = before.filter(|b| *b != id) {
                let dir = st.dir.clone();
                match blocking(move || fsops::point_current(&dir, b)).await {
                    Ok(()) => why.push_str(&format!("; switched back to release {b}")),
                    Err(e) => why.push_str(&format!(", and switching back failed: {e}")),
                }
            }
            return match how {
                process::Outcome::Stopped => {
                    note(&ctx.log, &why);
                    Outcome::Stopped
                }
                _ => Outcome::Failed(why),
            };
        }
        Outcome::Succeeded {
            outputs: Some(json!({ "station": st.name, "release": id, "previous": before })),
        }
    }
}

impl Executor for SwitchExecutor {
    type Work = Switch;
    type PrepareError = Infallible;

    async fn prepare(&self) -> Result<Vec<String>, Infallible> {
        Ok(Vec::new())
    }

    /// It waits for the station's idle window, and says so.
    fn queues_elsewhere(&self, _work: &Switch) -> bool {
        true
    }

    async fn run(&self, w: &Switch, mut ctx: UnitCtx) -> Finished {
        let st = &w.station;
        let status = ctx.status.clone();
        let name = st.name.clone();
        let waiting = move |jobs: u32| {
            status.waiting(format!(
                "waits for {jobs} job{} in flight on station {name}",
                if jobs == 1 { "" } else { "s" }
            ))
        };
        let Some(hold) = self.stations.hold(&st.name, &ctx.stop, waiting).await else {
            return ended(Outcome::Stopped);
        };
        if self.stations.wanted(&st.name) != Some(self.run_id) {
            return ended(Outcome::Waived(format!(
                "station {} no longer switches to release {} (pinned meanwhile, or a newer \
                 rollout took over)",
                st.name, self.release.id
            )));
        }
        ctx.status.running();
        let before = fsops::current_release(&st.dir);
        let from = before.map_or("nothing".into(), |b| format!("release {b}"));
        note(
            &ctx.log,
            &format!(
                "switching station {} from {from} to release {}",
                st.name, self.release.id
            ),
        );
        let outcome = self.switch(st, before, &mut ctx).await;
        if matches!(outcome, Outcome::Succeeded { .. }) {
            // Still held: no job starts on the station while its old releases go.
            let (dir, keep) = (st.dir.clone(), w.keep.clone());
            match tokio::task::spawn_blocking(move || fsops::prune_releases(&dir, &keep)).await {
                Ok(Ok(gone)) if !gone.is_empty() => {
                    note(&ctx.log, &format!("removed old releases {gone:?}"))
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => note(&ctx.log, &format!("cannot remove old releases: {e}")),
                Err(e) => note(&ctx.log, &format!("removing old releases was lost: {e}")),
            }
        }
        drop(hold);
        ended(outcome)
    }
}
