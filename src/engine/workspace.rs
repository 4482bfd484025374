//! Service repositories and per-run workspaces checked out at the run's commit.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::config::Service;

/// A resolved commit.
#[derive(Debug, Clone, PartialEq)]
pub struct CommitInfo {
    pub sha: String,
    pub message: String,
    pub author: String,
}

fn git(dir: Option<&Path>, args: &[&str]) -> Result<String, String> {
    let mut cmd = Command::new("git");
    if let Some(d) = dir {
        cmd.arg("-C").arg(d);
    }
    cmd.args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE");
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run git: {e} (is git installed?)"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_string())
    } else {
        Err(format!(
            "git {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The local git repository for a service, created or fetched as needed:
/// a seeded repo lives in the data dir; a URL is mirrored there; a path is used as is.
pub fn ensure_repo(svc: &Service, data_dir: &Path) -> Result<PathBuf, String> {
    if let Some(seed) = &svc.repo_seed {
        let repo = data_dir.join("repos").join(&svc.name);
        if !repo.join(".git").exists() {
            seed_repo(seed, &repo, &svc.default_branch)?;
        }
        return Ok(repo);
    }
    if svc.repo.contains("://") || svc.repo.contains('@') {
        let mirror = data_dir.join("mirrors").join(format!("{}.git", svc.name));
        if mirror.exists() {
            git(Some(&mirror), &["fetch", "--prune", "--quiet", "origin"])?;
        } else {
            std::fs::create_dir_all(data_dir.join("mirrors")).map_err(|e| e.to_string())?;
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
        return Err(format!(
            "the repository of service {} does not exist: {}",
            svc.name, svc.repo
        ));
    }
    Ok(p)
}

fn seed_repo(seed: &Path, repo: &Path, branch: &str) -> Result<(), String> {
    let tmp = repo.with_extension("seeding");
    let _ = std::fs::remove_dir_all(&tmp);
    copy_dir(seed, &tmp).map_err(|e| format!("cannot copy {}: {e}", seed.display()))?;
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
    std::fs::rename(&tmp, repo).map_err(|e| format!("cannot create {}: {e}", repo.display()))
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
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
) -> Result<CommitInfo, String> {
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
        Some(c) => format!("commit {c} is not in the repository {}", repo.display()),
        None => format!(
            "branch {branch} does not exist in the repository {}",
            repo.display()
        ),
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
pub fn checkout(repo: &Path, sha: &str, dir: &Path) -> Result<(), String> {
    if dir.join(".git").exists() {
        return Ok(()); // resumed run: its workspace is already there
    }
    let _ = std::fs::remove_dir_all(dir);
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
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
