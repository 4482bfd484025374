//! The content-addressed artifact store (DP-1): a build's files packed once into a tar
//! named by the sha256 of its bytes, under `artifacts/sha256/` in the data dir.
//! Identical builds share one file. A pack is written to a temporary file, synced and
//! renamed into place, so a crash never leaves half an artifact under its name.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Why packing or unpacking failed.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("artifact glob `{0}`: {1}")]
    Glob(String, globset::Error),
    #[error("no file in the workspace matches the artifact globs {0:?}")]
    Empty(Vec<String>),
    #[error("`{0}` is not an artifact digest (sha256:<64 hex digits>)")]
    BadDigest(String),
    #[error("artifact {digest} is damaged: its content hashes to {found}")]
    Damaged { digest: String, found: String },
}

type Result<T> = std::result::Result<T, ArtifactError>;

pub(crate) fn io_err<'a>(
    what: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> ArtifactError + 'a {
    move |source| ArtifactError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// A stored artifact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packed {
    /// `sha256:<hex>`.
    pub digest: String,
    pub size: u64,
    pub files: usize,
    /// An identical artifact was stored already (this pack was dropped).
    pub shared: bool,
}

/// Hashes what passes through it.
struct Hashing<W> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Syncs a directory, so that a rename in it survives a power loss.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The artifact store of a data dir.
#[derive(Debug, Clone)]
pub struct ArtifactStore {
    root: PathBuf,
}

impl ArtifactStore {
    pub fn new(data_dir: &Path) -> Self {
        Self {
            root: data_dir.join("artifacts"),
        }
    }

    /// Where the artifact `digest` is (or would be) stored.
    pub fn path(&self, digest: &str) -> Result<PathBuf> {
        let h = digest
            .strip_prefix("sha256:")
            .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| ArtifactError::BadDigest(digest.to_string()))?;
        Ok(self.root.join("sha256").join(format!("{h}.tar")))
    }

    /// Packs the files of `workspace` that match `globs` (relative paths, `/`
    /// separated), in path order with fixed owners and times, so identical files make
    /// an identical artifact.
    pub fn pack(&self, workspace: &Path, globs: &[String]) -> Result<Packed> {
        let mut set = globset::GlobSetBuilder::new();
        for g in globs {
            let glob = globset::GlobBuilder::new(g)
                .literal_separator(true)
                .build()
                .map_err(|e| ArtifactError::Glob(g.clone(), e))?;
            set.add(glob);
        }
        let set = set
            .build()
            .map_err(|e| ArtifactError::Glob(globs.join(", "), e))?;
        let mut files = Vec::new();
        walk(workspace, workspace, &set, &mut files)?;
        if files.is_empty() {
            return Err(ArtifactError::Empty(globs.to_vec()));
        }
        files.sort();
        let tmp_dir = self.root.join("tmp");
        let final_dir = self.root.join("sha256");
        for d in [&tmp_dir, &final_dir] {
            fs::create_dir_all(d).map_err(io_err("cannot make", d))?;
        }
        let tmp = tmp_dir.join(format!(
            "{}-{}.tar",
            std::process::id(),
            crate::domain::now_ms()
        ));
        let written = write_tar(workspace, &files, &tmp);
        let (digest, size) = match written {
            Ok(v) => v,
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                return Err(e);
            }
        };
        let dest = self.path(&digest)?;
        let shared = dest.exists();
        if shared {
            fs::remove_file(&tmp).map_err(io_err("cannot remove", &tmp))?;
        } else {
            fs::rename(&tmp, &dest).map_err(io_err("cannot store", &dest))?;
            sync_dir(&final_dir).map_err(io_err("cannot sync", &final_dir))?;
        }
        Ok(Packed {
            digest,
            size,
            files: files.len(),
            shared,
        })
    }

    /// Unpacks artifact `digest` into the new directory `dest` (through a temporary
    /// sibling renamed into place), checking its content against the digest.
    pub fn unpack(&self, digest: &str, dest: &Path) -> Result<()> {
        let src = self.path(digest)?;
        let file = File::open(&src).map_err(io_err("cannot open", &src))?;
        let parent = dest.parent().unwrap_or(Path::new("."));
        let name = dest.file_name().map(|n| n.to_string_lossy().into_owned());
        let tmp = parent.join(format!(
            ".{}.partial-{}",
            name.unwrap_or_default(),
            std::process::id()
        ));
        if tmp.exists() {
            fs::remove_dir_all(&tmp).map_err(io_err("cannot clear", &tmp))?;
        }
        fs::create_dir_all(&tmp).map_err(io_err("cannot make", &tmp))?;
        let mut reader = Hashing {
            inner: io::BufReader::with_capacity(64 << 10, file),
            hasher: Sha256::new(),
            bytes: 0,
        };
        let result = (|| {
            let mut archive = tar::Archive::new(&mut reader);
            archive.set_preserve_mtime(false);
            archive
                .unpack(&tmp)
                .map_err(io_err("cannot unpack into", &tmp))?;
            // What tar did not read (the end padding) counts for the digest too.
            io::copy(&mut reader, &mut io::sink()).map_err(io_err("cannot read", &src))?;
            let found = format!("sha256:{}", hex(&reader.hasher.clone().finalize()));
            if found != digest {
                return Err(ArtifactError::Damaged {
                    digest: digest.to_string(),
                    found,
                });
            }
            // The release's files reach the disk before its name appears.
            sync_tree(&tmp).map_err(io_err("cannot sync", &tmp))?;
            fs::rename(&tmp, dest).map_err(io_err("cannot move into place", dest))?;
            sync_dir(parent).map_err(io_err("cannot sync", parent))
        })();
        if result.is_err() {
            let _ = fs::remove_dir_all(&tmp);
        }
        result
    }

    /// Removes a stored artifact (already gone is fine).
    pub fn remove(&self, digest: &str) -> Result<()> {
        let p = self.path(digest)?;
        match fs::remove_file(&p) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err("cannot remove", &p)(e)),
            _ => Ok(()),
        }
    }
}

fn walk(root: &Path, dir: &Path, set: &globset::GlobSet, out: &mut Vec<String>) -> Result<()> {
    let entries = fs::read_dir(dir).map_err(io_err("cannot list", dir))?;
    for entry in entries {
        let entry = entry.map_err(io_err("cannot list", dir))?;
        let path = entry.path();
        let ty = entry.file_type().map_err(io_err("cannot stat", &path))?;
        if ty.is_dir() {
            if entry.file_name() != ".git" {
                walk(root, &path, set, out)?;
            }
        } else if ty.is_file()
            && let Ok(rel) = path.strip_prefix(root)
            && let Some(rel) = rel.to_str()
            && set.is_match(rel)
        {
            out.push(rel.to_string());
        }
    }
    Ok(())
}

fn write_tar(workspace: &Path, files: &[String], tmp: &Path) -> Result<(String, u64)> {
    let file = File::create(tmp).map_err(io_err("cannot create", tmp))?;
    let out = BufWriter::with_capacity(
        1 << 20,
        Hashing {
            inner: file,
            hasher: Sha256::new(),
            bytes: 0,
        },
    );
    let mut tar = tar::Builder::new(out);
    tar.mode(tar::HeaderMode::Deterministic);
    for rel in files {
        let path = workspace.join(rel);
        let mut f = File::open(&path).map_err(io_err("cannot read", &path))?;
        let meta = f.metadata().map_err(io_err("cannot stat", &path))?;
        let mut h = tar::Header::new_gnu();
        h.set_size(meta.len());
        h.set_mode(if is_executable(&meta) { 0o755 } else { 0o644 });
        h.set_mtime(0);
        h.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut h, rel, &mut f)
            .map_err(io_err("cannot pack", &path))?;
    }
    let out = tar.into_inner().map_err(io_err("cannot write", tmp))?;
    let hashing = out
        .into_inner()
        .map_err(|e| io_err("cannot write", tmp)(e.into_error()))?;
    hashing
        .inner
        .sync_all()
        .map_err(io_err("cannot sync", tmp))?;
    Ok((
        format!("sha256:{}", hex(&hashing.hasher.finalize())),
        hashing.bytes,
    ))
}

fn is_executable(meta: &fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o111 != 0
}

/// Syncs every file and directory under `dir`.
fn sync_tree(dir: &Path) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let ty = entry.file_type()?;
        if ty.is_dir() {
            sync_tree(&entry.path())?;
        } else if ty.is_file() {
            File::open(entry.path())?.sync_all()?;
        }
    }
    sync_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(ws: &Path, content: &str) {
        fs::create_dir_all(ws.join("dist/js")).unwrap();
        fs::write(ws.join("dist/index.html"), content).unwrap();
        fs::write(ws.join("dist/js/app.js"), "console.log(1)").unwrap();
        fs::write(ws.join("README"), "not packed").unwrap();
    }

    #[test]
    fn identical_builds_store_one_artifact_and_unpack_whole() {
        let tmp = tempfile::tempdir().unwrap();
        let store = ArtifactStore::new(&tmp.path().join("data"));
        let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
        build(&a, "v1");
        build(&b, "v1");
        let globs = vec!["dist/**".to_string()];
        let pa = store.pack(&a, &globs).unwrap();
        let pb = store.pack(&b, &globs).unwrap();
        assert_eq!(pa.digest, pb.digest);
        assert_eq!((pa.files, pa.shared, pb.shared), (2, false, true));
        let stored: Vec<_> = fs::read_dir(tmp.path().join("data/artifacts/sha256"))
            .unwrap()
            .collect();
        assert_eq!(stored.len(), 1);
        assert!(
            fs::read_dir(tmp.path().join("data/artifacts/tmp"))
                .unwrap()
                .next()
                .is_none()
        );
        // The digest is the sha256 of the stored bytes.
        let bytes = fs::read(store.path(&pa.digest).unwrap()).unwrap();
        assert_eq!(bytes.len() as u64, pa.size);
        assert_eq!(
            pa.digest,
            format!("sha256:{}", hex(&Sha256::digest(&bytes)))
        );

        build(&b, "v2");
        assert_ne!(store.pack(&b, &globs).unwrap().digest, pa.digest);

        let dest = tmp.path().join("rel/1");
        fs::create_dir_all(dest.parent().unwrap()).unwrap();
        store.unpack(&pa.digest, &dest).unwrap();
        assert_eq!(
            fs::read_to_string(dest.join("dist/index.html")).unwrap(),
            "v1"
        );
        assert!(!dest.join("README").exists());
    }

    #[test]
    fn a_damaged_artifact_is_refused_and_leaves_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let store = ArtifactStore::new(tmp.path());
        let ws = tmp.path().join("ws");
        build(&ws, "v1");
        let p = store.pack(&ws, &["dist/**".into()]).unwrap();
        let path = store.path(&p.digest).unwrap();
        let mut bytes = fs::read(&path).unwrap();
        let at = bytes.windows(2).position(|w| w == b"v1").unwrap();
        bytes[at + 1] = b'9';
        fs::write(&path, bytes).unwrap();
        let dest = tmp.path().join("out");
        let err = store.unpack(&p.digest, &dest).unwrap_err();
        assert!(matches!(err, ArtifactError::Damaged { .. }), "{err}");
        assert!(!dest.exists());
        assert_eq!(
            fs::read_dir(tmp.path()).unwrap().count(),
            2,
            "no partial dir left"
        );
    }

    #[test]
    fn nothing_matching_is_an_error_and_digests_are_checked() {
        let tmp = tempfile::tempdir().unwrap();
        let store = ArtifactStore::new(tmp.path());
        let err = store.pack(tmp.path(), &["dist/**".into()]).unwrap_err();
        assert!(err.to_string().contains("no file"), "{err}");
        assert!(store.path("sha256:../../etc").is_err());
    }
}
