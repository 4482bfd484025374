//! A station's directory: `releases/<id>/` unpacked whole before its name appears, and
//! `current`, a symlink replaced by renaming a new one over it (atomic: a reader sees
//! the old release or the new one, never neither, never half of one).

use std::io;
use std::path::{Path, PathBuf};

use crate::store::artifacts::{ArtifactError, ArtifactStore, io_err, sync_dir};

/// Why a station could not be switched: its release could not be unpacked, or its
/// directory or symlink could not be written.
pub type SwitchError = ArtifactError;

pub fn release_dir(station: &Path, id: i64) -> PathBuf {
    station.join("releases").join(id.to_string())
}

pub fn current_link(station: &Path) -> PathBuf {
    station.join("current")
}

/// Release `id` unpacked in the station (already there: kept as it is).
pub fn ensure_release(
    artifacts: &ArtifactStore,
    station: &Path,
    id: i64,
    digest: &str,
) -> Result<PathBuf, SwitchError> {
    let dir = release_dir(station, id);
    if dir.is_dir() {
        return Ok(dir);
    }
    let releases = station.join("releases");
    std::fs::create_dir_all(&releases).map_err(io_err("cannot make", &releases))?;
    clear_partials(&releases);
    artifacts.unpack(digest, &dir)?;
    Ok(dir)
}

/// Half-unpacked releases a killed engine left.
fn clear_partials(releases: &Path) {
    let Ok(entries) = std::fs::read_dir(releases) else {
        return;
    };
    for e in entries.flatten() {
        if e.file_name().to_string_lossy().contains(".partial-")
            && let Err(err) = std::fs::remove_dir_all(e.path())
        {
            tracing::warn!("cannot remove {}: {err}", e.path().display());
        }
    }
}

/// Points `current` at release `id`: a new symlink renamed over the old one.
pub fn point_current(station: &Path, id: i64) -> Result<(), SwitchError> {
    let link = current_link(station);
    let tmp = station.join(format!(".current.new-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let target = Path::new("releases").join(id.to_string());
    std::os::unix::fs::symlink(&target, &tmp).map_err(io_err("cannot make", &tmp))?;
    std::fs::rename(&tmp, &link).map_err(io_err("cannot switch", &link))?;
    sync_dir(station).map_err(io_err("cannot sync", station))
}

/// The release `current` points at, if it points at one.
pub fn current_release(station: &Path) -> Option<i64> {
    let target = std::fs::read_link(current_link(station)).ok()?;
    let rest = target.strip_prefix("releases").ok()?;
    rest.to_str()?.parse().ok()
}

/// Removes a release's directory from a station (gone already is fine).
pub fn remove_release(station: &Path, id: i64) -> io::Result<()> {
    match std::fs::remove_dir_all(release_dir(station, id)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Removes every `releases/<id>/` of the station but those in `keep` and the one
/// `current` points at; returns the ids removed. Only unpacked releases (numeric
/// names) are looked at: a half-unpacked one is `ensure_release`'s to clear.
pub fn prune_releases(station: &Path, keep: &[i64]) -> io::Result<Vec<i64>> {
    let releases = station.join("releases");
    let entries = match std::fs::read_dir(&releases) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        r => r?,
    };
    let current = current_release(station);
    let mut removed = Vec::new();
    for e in entries {
        let e = e?;
        let Some(id) = e.file_name().to_str().and_then(|n| n.parse::<i64>().ok()) else {
            continue;
        };
        if keep.contains(&id) || current == Some(id) {
            continue;
        }
        remove_release(station, id)?;
        removed.push(id);
    }
    removed.sort_unstable();
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    /// A reader that resolves `current` over and over while it is switched many
    /// times never finds it missing, nor a release without all of its files.
    #[test]
    fn readers_never_see_current_missing_or_partial() {
        let tmp = tempfile::tempdir().unwrap();
        let artifacts = ArtifactStore::new(&tmp.path().join("data"));
        let mut digests = Vec::new();
        for v in 0..2 {
            let ws = tmp.path().join(format!("ws{v}"));
            std::fs::create_dir_all(ws.join("dist")).unwrap();
            for f in 0..20 {
                std::fs::write(ws.join(format!("dist/f{f}")), format!("v{v}")).unwrap();
            }
            digests.push(artifacts.pack(&ws, &["dist/**".into()]).unwrap().digest);
        }
        let station = tmp.path().join("station");
        std::fs::create_dir_all(&station).unwrap();
        ensure_release(&artifacts, &station, 1, &digests[0]).unwrap();
        point_current(&station, 1).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let reader = {
            let (station, stop) = (station.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut reads = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let cur = current_link(&station);
                    // Resolve once, then read the whole release through that path.
                    let dir = std::fs::canonicalize(&cur).expect("current is missing");
                    let first = std::fs::read_to_string(dir.join("dist/f0")).unwrap();
                    for f in 1..20 {
                        let got = std::fs::read_to_string(dir.join(format!("dist/f{f}")))
                            .unwrap_or_else(|e| panic!("{} partial: {e}", dir.display()));
                        assert_eq!(got, first, "a release mixes versions");
                    }
                    reads += 1;
                }
                reads
            })
        };
        for i in 2..100i64 {
            let d = &digests[(i % 2) as usize];
            ensure_release(&artifacts, &station, i, d).unwrap();
            point_current(&station, i).unwrap();
            assert_eq!(current_release(&station), Some(i));
        }
        stop.store(true, Ordering::Relaxed);
        let reads = reader.join().expect("the reader failed");
        assert!(reads > 0);
    }

    #[test]
    fn pruning_keeps_what_it_is_told_and_current() {
        let tmp = tempfile::tempdir().unwrap();
        let station = tmp.path();
        for id in 1..=6 {
            std::fs::create_dir_all(release_dir(station, id).join("dist")).unwrap();
        }
        std::fs::create_dir_all(station.join("releases/7.partial-1")).unwrap();
        point_current(station, 2).unwrap();
        // 2 is current although `keep` leaves it out.
        let removed = prune_releases(station, &[5, 6]).unwrap();
        assert_eq!(removed, vec![1, 3, 4]);
        let mut left: Vec<String> = std::fs::read_dir(station.join("releases"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["2", "5", "6", "7.partial-1"]);
        assert!(std::fs::canonicalize(current_link(station)).is_ok());
        // A station that has no release yet has nothing to prune.
        let empty = tmp.path().join("none");
        assert_eq!(prune_releases(&empty, &[]).unwrap(), Vec::<i64>::new());
    }
}
