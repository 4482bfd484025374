//! The project file as the engine uses it now: reloaded when it changes.
//!
//! The engine looks at the file's modification time and size every [`CHECK_EVERY`]
//! (and when asked: `pipedeck reload`). A valid new version applies to runs started
//! from then on; runs already started keep the definition pinned when they started.
//! An invalid one leaves the last good version in force, and its error (file:line)
//! is kept for `pipedeck status`, the dashboard and the tool log. `engine.concurrency`
//! is read once, at start.

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;

use crate::config::{Project, load_project};
use crate::domain::command::ConfigStatus;
use crate::domain::now_ms;

/// How often the file is looked at.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// The project in force, swapped whole when the file changes.
pub struct LiveProject {
    current: RwLock<Arc<Project>>,
    status: Mutex<ConfigStatus>,
    /// The file's modification time and size when last looked at.
    seen: Mutex<Option<(SystemTime, u64)>>,
    /// Called with each version that comes into force (engine-wide settings follow it).
    hook: std::sync::OnceLock<Hook>,
}

type Hook = Box<dyn Fn(&Project) + Send + Sync>;

fn stamp(path: &std::path::Path) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

impl LiveProject {
    pub fn new(project: Project) -> Self {
        let path = project.path.clone();
        Self {
            seen: Mutex::new(stamp(&path)),
            status: Mutex::new(ConfigStatus {
                path,
                loaded_at: now_ms(),
                error: None,
                error_at: None,
                disk: None,
            }),
            hook: std::sync::OnceLock::new(),
            current: RwLock::new(Arc::new(project)),
        }
    }

    /// Calls `f` with the project in force now and with each version loaded later.
    pub fn on_load(&self, f: impl Fn(&Project) + Send + Sync + 'static) {
        f(&self.get());
        if self.hook.set(Box::new(f)).is_err() {
            tracing::error!("a second on_load hook was ignored");
        }
    }

    /// The project in force.
    pub fn get(&self) -> Arc<Project> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn status(&self) -> ConfigStatus {
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Loads the file again (blocking: it reads and validates the file).
    pub fn reload(&self) -> ConfigStatus {
        let path = self.status().path;
        *self.seen.lock().unwrap_or_else(|p| p.into_inner()) = stamp(&path);
        let loaded = load_project(&path);
        let mut status = self.status.lock().unwrap_or_else(|p| p.into_inner());
        match loaded {
            Ok(p) => {
                let mut current = self.current.write().unwrap_or_else(|p| p.into_inner());
                if **current != p {
                    tracing::info!(path = %path.display(), "the project file changed: new runs use it");
                    if let Some(f) = self.hook.get() {
                        f(&p);
                    }
                    *current = Arc::new(p);
                    status.loaded_at = now_ms();
                }
                status.error = None;
                status.error_at = None;
            }
            Err(e) => {
                let why = e.to_string();
                tracing::error!(path = %path.display(), "the project file is invalid, the last good version stays in force: {why}");
                status.error = Some(why);
                status.error_at = Some(now_ms());
            }
        }
        status.clone()
    }

    /// Whether the file changed since it was last looked at.
    fn changed(&self) -> bool {
        let path = self.status().path;
        *self.seen.lock().unwrap_or_else(|p| p.into_inner()) != stamp(&path)
    }
}

/// Looks at the file every [`CHECK_EVERY`] until `stop` fires; reloads what changed.
pub fn watch(live: Arc<LiveProject>, stop: CancellationToken) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(CHECK_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.cancelled() => return,
            }
            if live.changed() {
                let l = live.clone();
                // Reading and validating a large project is file I/O: off the runtime.
                if let Err(e) = tokio::task::spawn_blocking(move || l.reload()).await {
                    tracing::error!("reloading the project file failed: {e}");
                }
            }
        }
    });
}
