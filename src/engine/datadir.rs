//! The data dir's safety: created owner-only (0700), and refused when anyone but
//! its owner could write into it (they could replace the database, the logs or
//! the socket).

use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    #[error(
        "refusing to start: the data dir {path} is writable by other users (mode {mode:04o})\n  hint: chmod 700 {path}",
        path = .path.display()
    )]
    WritableByOthers { path: PathBuf, mode: u32 },
    #[error(
        "refusing to start: the data dir {path} belongs to uid {owner}, not to the engine's account (uid {me})\n  hint: run the engine as its owner, or choose another --data-dir",
        path = .path.display()
    )]
    NotOwned { path: PathBuf, owner: u32, me: u32 },
    #[error("cannot create the data dir {}: {source}", path.display())]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Creates the data dir (0700, parents too when missing) or checks the one there.
pub fn prepare(dir: &Path) -> Result<(), DataDirError> {
    create(dir)?;
    check(dir)
}

/// `path` (a file the engine keeps: its database, say) and its SQLite companions
/// (`-wal`, `-shm`) made readable and writable by the engine's account alone.
pub fn owner_only(path: &Path) -> std::io::Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    for ext in ["-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(ext);
        match std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

/// Creates the data dir, 0700, when it is missing (whatever the umask).
pub fn create(dir: &Path) -> Result<(), DataDirError> {
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|source| DataDirError::Create {
                path: dir.to_path_buf(),
                source,
            })?;
        // The mode given to mkdir is masked by the umask; set it whole.
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(
            |source| DataDirError::Create {
                path: dir.to_path_buf(),
                source,
            },
        )?;
    }
    Ok(())
}

/// Refuses a data dir that another user owns or could write to.
pub fn check(dir: &Path) -> Result<(), DataDirError> {
    let meta = std::fs::metadata(dir).map_err(|source| DataDirError::Create {
        path: dir.to_path_buf(),
        source,
    })?;
    // SAFETY: geteuid cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me {
        return Err(DataDirError::NotOwned {
            path: dir.to_path_buf(),
            owner: meta.uid(),
            me,
        });
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(DataDirError::WritableByOthers {
            path: dir.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_data_dir_is_owner_only_and_a_shared_one_is_refused() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("a/b");
        prepare(&dir).unwrap();
        let mode = std::fs::metadata(&dir).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o700);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o775)).unwrap();
        let e = prepare(&dir).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "refusing to start: the data dir {0} is writable by other users (mode 0775)\n  hint: chmod 700 {0}",
                dir.display()
            )
        );
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        prepare(&dir).unwrap();
    }
}
