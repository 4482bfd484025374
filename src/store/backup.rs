//! A consistent snapshot of a data dir, taken while the engine runs, and its restore.
//!
//! The database is copied with SQLite's online backup API (a consistent state, whatever
//! the engine commits meanwhile); then the step logs and the infra state dirs are
//! copied. A log that grows during the copy is taken as far as it was written: it is
//! append-only, and the restored engine repairs a torn last line as after a crash. A
//! `manifest.json` lists every file with its size and sha256; restore refuses a snapshot
//! that does not match it. Repositories and workspaces are not copied: they are made
//! again from the project file when a run needs them.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The folders of a data dir a snapshot holds, besides the database.
const TREES: &[&str] = &["logs", "infra"];
const DB: &str = "state.db";
const MANIFEST: &str = "manifest.json";

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{0} exists and is not empty: choose a new folder")]
    NotEmpty(PathBuf),
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error("copying the database: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("{0} is not a pipedeck snapshot (no readable {MANIFEST}: {1})")]
    NoManifest(PathBuf, String),
    #[error("the snapshot does not match its manifest: {0}; it was changed or is incomplete")]
    Mismatch(String),
}

type Result<T> = std::result::Result<T, BackupError>;

/// One file of a snapshot, relative to its root.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub path: String,
    pub size: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Unix milliseconds.
    pub created_at: i64,
    pub files: Vec<Entry>,
}

impl Manifest {
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}

fn io<T>(path: &Path, r: std::io::Result<T>) -> Result<T> {
    r.map_err(|e| BackupError::Io(path.to_path_buf(), e))
}

/// Refuses a destination that holds anything but `allowed` names; creates it.
fn fresh_dir(dir: &Path, allowed: &[&str]) -> Result<()> {
    if let Ok(entries) = std::fs::read_dir(dir)
        && entries
            .flatten()
            .any(|e| !allowed.iter().any(|a| e.file_name() == *a))
    {
        return Err(BackupError::NotEmpty(dir.to_path_buf()));
    }
    io(dir, std::fs::create_dir_all(dir))?;
    // What it holds is the engine's (its history, logs and state): its account's alone.
    use std::os::unix::fs::PermissionsExt;
    io(
        dir,
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)),
    )
}

/// Copies `from` to `to` (at most `limit` bytes), fsynced; its size and sha256.
fn copy(from: &Path, to: &Path, limit: u64) -> Result<(u64, String)> {
    if let Some(parent) = to.parent() {
        io(parent, std::fs::create_dir_all(parent))?;
    }
    let mut src = io(from, std::fs::File::open(from))?.take(limit);
    let mut dst = io(to, std::fs::File::create(to))?;
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0;
    loop {
        let n = io(from, src.read(&mut buf))?;
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
        io(to, dst.write_all(&buf[..n]))?;
        size += n as u64;
    }
    Ok((size, hex(&hash.finalize())))
}

/// Makes everything written under `dir` durable with one `syncfs` of its file system
/// (the data and the directory entries of every file copied), not an fsync a file:
/// on a data dir of thousands of small logs that is most of the time a backup takes.
fn sync_tree(dir: &Path) -> Result<()> {
    use std::os::fd::AsRawFd;
    let f = io(dir, std::fs::File::open(dir))?;
    // SAFETY: `f` is an open file descriptor for the call's duration.
    if unsafe { libc::syncfs(f.as_raw_fd()) } != 0 {
        return Err(BackupError::Io(
            dir.to_path_buf(),
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Every file under `root/tree`, as paths relative to `root`.
fn files(root: &Path, tree: &str) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut todo = vec![root.join(tree)];
    while let Some(dir) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries {
            let e = io(&dir, e)?;
            let kind = io(&e.path(), e.file_type())?;
            if kind.is_dir() {
                todo.push(e.path());
            } else if kind.is_file()
                // A compressed log being written (retention) is not one yet.
                && !e.file_name().to_string_lossy().ends_with(".zst.tmp")
                && let Ok(rel) = e.path().strip_prefix(root)
            {
                out.push(rel.to_path_buf());
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Takes a snapshot of `data_dir` into the new folder `out`.
pub fn backup(data_dir: &Path, out: &Path) -> Result<Manifest> {
    fresh_dir(out, &[])?;
    let mut entries = Vec::new();
    // The database first: the logs are then at least as long as it says.
    {
        let src = rusqlite::Connection::open_with_flags(
            data_dir.join(DB),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )?;
        src.busy_timeout(std::time::Duration::from_secs(5))?;
        let mut dst = rusqlite::Connection::open(out.join(DB))?;
        let b = rusqlite::backup::Backup::new(&src, &mut dst)?;
        b.run_to_completion(4096, std::time::Duration::ZERO, None)?;
    }
    let (size, sha256) = digest(&out.join(DB))?;
    entries.push(Entry {
        path: DB.into(),
        size,
        sha256,
    });
    for tree in TREES {
        let mut todo = files(data_dir, tree)?;
        todo.reverse();
        while let Some(rel) = todo.pop() {
            let from = data_dir.join(&rel);
            let len = match std::fs::metadata(&from) {
                Ok(m) => m.len(),
                // Gone since the listing: a pruned run's (skipped), or a log that
                // retention compressed meanwhile (its `.zst` is taken instead).
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    if rel.extension().is_some_and(|x| x == "log") {
                        let mut z = rel.clone().into_os_string();
                        z.push(".zst");
                        let z = PathBuf::from(z);
                        if data_dir.join(&z).is_file() && !todo.contains(&z) {
                            todo.push(z);
                        }
                    }
                    continue;
                }
                Err(e) => return Err(BackupError::Io(from, e)),
            };
            let (size, sha256) = copy(&from, &out.join(&rel), len)?;
            entries.push(Entry {
                path: rel.to_string_lossy().into_owned(),
                size,
                sha256,
            });
        }
    }
    // The files are durable before the manifest that vouches for them is written.
    sync_tree(out)?;
    let manifest = Manifest {
        created_at: crate::domain::now_ms(),
        files: entries,
    };
    let text = serde_json::to_vec_pretty(&manifest).map_err(std::io::Error::other);
    let path = out.join(MANIFEST);
    io(&path, text.and_then(|t| std::fs::write(&path, t)))?;
    sync_tree(out)?;
    Ok(manifest)
}

/// A file's size and sha256.
fn digest(path: &Path) -> Result<(u64, String)> {
    let mut f = io(path, std::fs::File::open(path))?;
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0;
    loop {
        let n = io(path, f.read(&mut buf))?;
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
        size += n as u64;
    }
    Ok((size, hex(&hash.finalize())))
}

/// Rebuilds a data dir in the new folder `data_dir` from the snapshot in `from`, after
/// checking every file against the manifest.
pub fn restore(from: &Path, data_dir: &Path) -> Result<Manifest> {
    let path = from.join(MANIFEST);
    let manifest: Manifest = std::fs::read(&path)
        .map_err(|e| e.to_string())
        .and_then(|t| serde_json::from_slice(&t).map_err(|e| e.to_string()))
        .map_err(|e| BackupError::NoManifest(from.to_path_buf(), e))?;
    for f in &manifest.files {
        let rel = Path::new(&f.path);
        if rel.is_absolute()
            || rel
                .components()
                .any(|c| c == std::path::Component::ParentDir)
        {
            return Err(BackupError::Mismatch(format!(
                "{} leaves the snapshot",
                f.path
            )));
        }
        let (size, sha256) = digest(&from.join(rel))
            .map_err(|e| BackupError::Mismatch(format!("{}: {e}", f.path)))?;
        if size != f.size || sha256 != f.sha256 {
            return Err(BackupError::Mismatch(format!(
                "{} is {size} bytes with sha256 {sha256}, the manifest says {} bytes with {}",
                f.path, f.size, f.sha256
            )));
        }
    }
    // (The tool's own log folder may be there already: this command writes to it.)
    fresh_dir(data_dir, &["log"])?;
    for f in &manifest.files {
        copy(&from.join(&f.path), &data_dir.join(&f.path), f.size)?;
    }
    // The processes the snapshot recorded are the original engine's, which may still
    // run them: the restored engine must never stop them.
    let db = rusqlite::Connection::open(data_dir.join(DB))?;
    db.execute("UPDATE steps SET pid = NULL, pid_start = NULL", [])?;
    drop(db);
    sync_tree(data_dir)?;
    Ok(manifest)
}
