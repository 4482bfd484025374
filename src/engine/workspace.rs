//! Service repositories and per-run workspaces checked out at the run's commit.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::config::Service;

/// Why a service's repository or a run's workspace could not be made ready.
#[derive(Debug, thiserror::Error)]
pub enum WorkspaceError {
    #[error("cannot run git: {0} (is git installed?)")]
    NoGit(#[source] io::Error),
    /// A git command exited with a failure; `stderr` is what it said.
    #[error("git {args} failed: {stderr}")]
    Git { args: String, stderr: String },
    #[error("the repository of service {service} does not exist: {repo}")]
    NoRepository { service: String, repo: String },
    #[error("commit {commit} is not in the repository {}", repo.display())]
    NoCommit { commit: String, repo: PathBuf },
    #[error("branch {branch} does not exist in the repository {}", repo.display())]
    NoBranch { branch: String, repo: PathBuf },
    /// A seed could not be copied into the data dir.
    #[error("cannot copy {}: {source}", from.display())]
    Copy { from: PathBuf, source: io::Error },
    /// A seeded repository could not be moved into place.
    #[error("cannot create {}: {source}", path.display())]
    Create { path: PathBuf, source: io::Error },
    /// A parent directory (mirrors, workspaces) could not be made.
    #[error("{0}")]
    Dir(#[from] io::Error),
}

/// A resolved commit.
#[derive(Debug, Clone, PartialEq)]
pub struct CommitInfo {
    pub sha: String,
    pub message: String,
    pub author: String,
}

fn git(dir: Option<&Path>, args: &[&str]) -> Result<String, WorkspaceError> {
    let mut cmd = Command::new("git");
    if let Some(d) = dir {
        cmd.arg("-C").arg(d);
    }
    cmd.args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE");
    let out = cmd.output().map_err(WorkspaceError::NoGit)?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_string())
    } else {
        Err(WorkspaceError::Git {
            args: args.join(" "),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// Whether commit `older` is an ancestor of commit `newer` in `repo` (the same commit
/// is not older than itself).
pub fn is_ancestor(repo: &Path, older: &str, newer: &str) -> Result<bool, WorkspaceError> {
    if older == newer {
        return Ok(false);
    }
    let out = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["merge-base", "--is-ancestor", older, newer])
        .env("GIT_TERMINAL_PROMPT", "0")
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .output()
        .map_err(WorkspaceError::NoGit)?;
    match out.status.code() {
        Some(0) => Ok(true),
        Some(1) => Ok(false),
        _ => Err(WorkspaceError::Git {
            args: format!("merge-base --is-ancestor {older} {newer}"),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        }),
    }
}

/// The local git repository for a service, created or fetched as needed:
/// a seeded repo lives in the data dir; a URL is mirrored there; a path is used as is.
pub fn ensure_repo(svc: &Service, data_dir: &Path) -> Result<PathBuf, WorkspaceError> {
    // Creating a repository (seeding, the first mirror clone) is done by one caller at
    // a time: a trigger's watcher and a person's run may ask at the same moment.
    static CREATING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    if let Some(seed) = &svc.repo_seed {
        let repo = data_dir.join("repos").join(&svc.name);
        if !repo.join(".git").exists() {
            let _one = CREATING.lock().unwrap_or_else(|p| p.into_inner());
            if !repo.join(".git").exists() {
                seed_repo(seed, &repo, &svc.default_branch)?;
            }
        }
        return Ok(repo);
    }
    if svc.repo.contains("://") || svc.repo.contains('@') {
        let mirror = data_dir.join("mirrors").join(format!("{}.git", svc.name));
        let _one = (!mirror.exists()).then(|| CREATING.lock().unwrap_or_else(|p| p.into_inner()));
        if mirror.exists() {
            git(Some(&mirror), &["fetch", "--prune", "--quiet", "origin"])?;
        } else {
            std::fs::create_dir_all(data_dir.join("mirrors"))?;
            git(
                None,
                &[
                    "clone",
                    "--mirror",
                    "--quiet",
                    &svc.repo,
                    &mirror.to_string_lossy(),
                ],
            )?;
        }
        return Ok(mirror);
    }
    let p = PathBuf::from(&svc.repo);
    if !p.exists() {
        return Err(WorkspaceError::NoRepository {
            service: svc.name.clone(),
            repo: svc.repo.clone(),
        });
    }
    Ok(p)
}

fn seed_repo(seed: &Path, repo: &Path, branch: &str) -> Result<(), WorkspaceError> {
    let tmp = repo.with_extension("seeding");
    // What an interrupted seeding left. Copying over it does not fail, so one that
    // could not be removed would have its stale files committed: say so.
    if let Err(e) = std::fs::remove_dir_all(&tmp)
        && e.kind() != io::ErrorKind::NotFound
    {
        tracing::warn!("cannot remove {}: {e}", tmp.display());
    }
    copy_dir(seed, &tmp).map_err(|source| WorkspaceError::Copy {
        from: seed.to_path_buf(),
        source,
    })?;
    let ident = [
        "-c",
        "user.name=pipedeck demo",
        "-c",
        "user.email=demo@pipedeck.invalid",
    ];
    git(Some(&tmp), &["init", "--quiet", "-b", branch])?;
    git(Some(&tmp), &["add", "-A"])?;
    let mut commit = ident.to_vec();
    commit.extend([
        "commit",
        "--quiet",
        "-m",
        "Initial import of the demo service",
    ]);
    git(Some(&tmp), &commit)?;
    std::fs::rename(&tmp, repo).map_err(|source| WorkspaceError::Create {
        path: repo.to_path_buf(),
        source,
    })
}

fn copy_dir(from: &Path, to: &Path) -> io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// Resolves `commit` (or the head of `branch`) to a full SHA with its message and author.
pub fn resolve_commit(
    repo: &Path,
    branch: &str,
    commit: Option<&str>,
) -> Result<CommitInfo, WorkspaceError> {
    let rev = match commit {
        Some(c) => format!("{c}^{{commit}}"),
        None => format!("refs/heads/{branch}^{{commit}}"),
    };
    // One git call resolves the revision and reads what the run records of it.
    let meta = git(
        Some(repo),
        &[
            "log",
            "-1",
            "--no-walk",
            "--format=%H%x00%an%x00%s",
            "--end-of-options",
            &rev,
            "--",
        ],
    )
    .map_err(|_| match commit {
        Some(c) => WorkspaceError::NoCommit {
            commit: c.to_string(),
            repo: repo.to_path_buf(),
        },
        None => WorkspaceError::NoBranch {
            branch: branch.to_string(),
            repo: repo.to_path_buf(),
        },
    })?;
    let mut parts = meta.splitn(3, '\0');
    let (sha, author, message) = (
        parts.next().unwrap_or_default().to_string(),
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    Ok(CommitInfo {
        sha,
        message: message.to_string(),
        author: author.to_string(),
    })
}

/// Checks out `sha` from `repo` into `dir` (a fresh clone; nothing shared with other runs).
pub fn checkout(repo: &Path, sha: &str, dir: &Path) -> Result<(), WorkspaceError> {
    if dir.join(".git").exists() {
        return Ok(()); // resumed run: its workspace is already there
    }
    // A half-made workspace (no `.git`) holds nothing to keep; if it cannot be removed,
    // the clone into it fails and says why.
    let _ = std::fs::remove_dir_all(dir);
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent)?;
    }
    git(
        None,
        &[
            "clone",
            "--quiet",
            "--no-checkout",
            &repo.to_string_lossy(),
            &dir.to_string_lossy(),
        ],
    )?;
    git(Some(dir), &["checkout", "--quiet", "--detach", sha])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages() {
        let gone = || io::Error::new(io::ErrorKind::NotFound, "gone");
        let cases = [
            (
                WorkspaceError::NoGit(gone()),
                "cannot run git: gone (is git installed?)",
            ),
            (
                WorkspaceError::Git {
                    args: "fetch --prune".into(),
                    stderr: "fatal: no remote".into(),
                },
                "git fetch --prune failed: fatal: no remote",
            ),
            (
                WorkspaceError::NoRepository {
                    service: "api".into(),
                    repo: "/src/api".into(),
                },
                "the repository of service api does not exist: /src/api",
            ),
            (
                WorkspaceError::Copy {
                    from: "/seed".into(),
                    source: gone(),
                },
                "cannot copy /seed: gone",
            ),
            (
                WorkspaceError::Create {
                    path: "/repos/api".into(),
                    source: gone(),
                },
                "cannot create /repos/api: gone",
            ),
            (WorkspaceError::Dir(gone()), "gone"),
        ];
        for (e, want) in cases {
            assert_eq!(e.to_string(), want);
        }
    }

    #[test]
    fn an_unknown_revision_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let e = resolve_commit(dir.path(), "main", None).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "branch main does not exist in the repository {}",
                dir.path().display()
            )
        );
        let e = resolve_commit(dir.path(), "main", Some("abc123")).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "commit abc123 is not in the repository {}",
                dir.path().display()
            )
        );
    }
}
