//! The data dir's disk: how much it uses, how much its file system has free, and the
//! free-space floor (`[retention] min_free`) under which no new run starts, so that a
//! full disk refuses runs up front instead of failing them half-way.
//!
//! Free space is asked of the file system (`statvfs`) each time; the data dir's own
//! usage is a walk of its files, done in the background every [`MEASURE_EVERY`] and
//! reported as of then.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::EngineError;
use crate::domain::bytes::format_bytes;
use crate::domain::command::DiskStatus;
use crate::domain::now_ms;

/// How often the data dir's usage is measured again.
const MEASURE_EVERY: Duration = Duration::from_secs(300);
/// How long after start the data dir is first measured. The walk grows with the
/// history kept (every log file is looked at), and a short-lived engine (a CLI
/// command's) would pay it at each start, competing with its steps for the CPU:
/// with five 2,000-step runs kept it took a core for 10-20 ms at every start.
const MEASURE_FIRST_AFTER: Duration = Duration::from_secs(5);

/// Bytes free to an unprivileged user on the file system holding `path`.
pub fn free_bytes(path: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `st` a writable statvfs.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

/// Bytes the files under `dir` take on disk (allocated blocks; symlinks not
/// followed). Files that vanish during the walk (a log pruned meanwhile) are skipped.
pub fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0u64;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(m) = e.path().symlink_metadata() else {
                continue;
            };
            total = total.saturating_add(m.blocks().saturating_mul(512));
            if m.is_dir() {
                stack.push(e.path());
            }
        }
    }
    total
}

/// The data dir's disk as the engine knows it, and its floor.
#[derive(Debug)]
pub struct Space {
    data_dir: PathBuf,
    /// The data dir's usage when last measured (`u64::MAX`: not yet).
    used: AtomicU64,
    measured_at: AtomicI64,
    /// The floor in bytes (0: none).
    min_free: AtomicU64,
}

impl Space {
    pub fn new(data_dir: &Path) -> Self {
        Self {
            data_dir: data_dir.to_path_buf(),
            used: AtomicU64::new(u64::MAX),
            measured_at: AtomicI64::new(0),
            min_free: AtomicU64::new(0),
        }
    }

    /// Sets the floor (from the project in force).
    pub fn set_min_free(&self, floor: Option<u64>) {
        self.min_free.store(floor.unwrap_or(0), Ordering::Relaxed);
    }

    /// Measures the data dir's usage now (blocking: it walks the files).
    pub fn measure(&self) {
        self.used
            .store(dir_bytes(&self.data_dir), Ordering::Relaxed);
        self.measured_at.store(now_ms(), Ordering::Relaxed);
    }

    /// Measures the usage if it never was (someone asks before the first look).
    pub fn measure_if_unknown(&self) {
        if self.used.load(Ordering::Relaxed) == u64::MAX {
            self.measure();
        }
    }

    /// Usage (as last measured), free space (now) and the floor.
    pub fn status(&self) -> DiskStatus {
        let used = self.used.load(Ordering::Relaxed);
        let floor = self.min_free.load(Ordering::Relaxed);
        DiskStatus {
            data_dir: self.data_dir.clone(),
            used_bytes: (used != u64::MAX).then_some(used),
            measured_at: (used != u64::MAX).then(|| self.measured_at.load(Ordering::Relaxed)),
            free_bytes: free_bytes(&self.data_dir).ok(),
            min_free: (floor > 0).then_some(floor),
        }
    }

    /// Refuses a new run while the free space is under the floor. A file system
    /// that cannot say how much is free does not stop runs (the error is logged).
    pub fn allows_new_run(&self) -> Result<(), EngineError> {
        let floor = self.min_free.load(Ordering::Relaxed);
        if floor == 0 {
            return Ok(());
        }
        match free_bytes(&self.data_dir) {
            Ok(free) if free < floor => Err(EngineError::Conflict(format!(
                "not starting a new run: the data dir {} has {} free, under the floor of {} \
                 (min_free in [retention]); free some space (pipedeck gc prunes old runs and \
                 logs) or lower min_free",
                self.data_dir.display(),
                format_bytes(free),
                format_bytes(floor)
            ))),
            Ok(_) => Ok(()),
            Err(e) => {
                tracing::error!(dir = %self.data_dir.display(), "cannot tell the free space: {e}");
                Ok(())
            }
        }
    }
}

/// Measures the data dir's usage [`MEASURE_FIRST_AFTER`] after start, then every
/// [`MEASURE_EVERY`] until `stop`.
pub fn watch(space: Arc<Space>, stop: CancellationToken) {
    tokio::spawn(async move {
        tokio::select! {
            _ = tokio::time::sleep(MEASURE_FIRST_AFTER) => {}
            _ = stop.cancelled() => return,
        }
        loop {
            let s = space.clone();
            if let Err(e) = tokio::task::spawn_blocking(move || s.measure()).await {
                tracing::error!("measuring the data dir failed: {e}");
            }
            tokio::select! {
                _ = tokio::time::sleep(MEASURE_EVERY) => {}
                _ = stop.cancelled() => return,
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_counts_files_and_the_floor_refuses_over_the_free_space() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("logs")).unwrap();
        std::fs::write(dir.path().join("logs/a.log"), vec![b'x'; 100_000]).unwrap();
        let s = Space::new(dir.path());
        assert_eq!(s.status().used_bytes, None);
        s.measure_if_unknown();
        assert!(s.status().used_bytes.unwrap() >= 100_000);
        // Measured once, it is not walked again until the next look.
        std::fs::write(dir.path().join("logs/b.log"), vec![b'x'; 100_000]).unwrap();
        let before = s.status().used_bytes;
        s.measure_if_unknown();
        assert_eq!(s.status().used_bytes, before);
        s.measure();
        assert!(s.status().used_bytes.unwrap() >= 200_000);
        let free = free_bytes(dir.path()).unwrap();
        assert!(free > 0);
        assert!(s.allows_new_run().is_ok());
        s.set_min_free(Some(free.saturating_mul(1000).max(u64::MAX / 2)));
        let e = s.allows_new_run().unwrap_err();
        assert!(
            matches!(&e, EngineError::Conflict(m) if m.contains("under the floor")),
            "{e:?}"
        );
        s.set_min_free(Some(1));
        assert!(s.allows_new_run().is_ok());
    }
}
