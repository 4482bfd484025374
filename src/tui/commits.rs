//! What a gate lets through: the commits between the environment's current deployment
//! and the run's commit, read with `git log` from the service's local repository (the
//! path it names, the seeded repo or the mirror in the data dir), when there is one.
//! At most [`SHOWN`] commits, with a count of the rest. Commit text is untrusted: the
//! dialog draws it inert.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Commits listed; the rest are counted.
pub const SHOWN: usize = 20;

/// One commit of the range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    pub sha: String,
    pub author: String,
    pub subject: String,
}

/// The commits a gate lets through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GateCommits {
    pub run: i64,
    pub env: String,
    /// The commit the environment runs now (`None`: nothing deployed yet).
    pub current: Option<String>,
    /// Newest first, at most [`SHOWN`].
    pub commits: Vec<Commit>,
    /// How many in all.
    pub total: usize,
}

/// Where the service's git repository is on this machine, if anywhere: a path the
/// project names, else the seeded repo or the mirror the engine keeps in `data_dir`.
pub fn local_repo(svc: &crate::config::Service, data_dir: &Path) -> Option<PathBuf> {
    let candidates = [
        svc.repo_seed
            .as_ref()
            .map(|_| data_dir.join("repos").join(&svc.name)),
        (!svc.repo.contains("://") && !svc.repo.contains('@') && !svc.repo.is_empty())
            .then(|| PathBuf::from(&svc.repo)),
        Some(data_dir.join("mirrors").join(format!("{}.git", svc.name))),
    ];
    candidates.into_iter().flatten().find(|p| p.exists())
}

/// Why the commits could not be read.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("cannot run git: {0}")]
    Spawn(#[source] std::io::Error),
    #[error("git {args}: {stderr}")]
    Failed { args: String, stderr: String },
    #[error("git rev-list --count said no number")]
    NoCount,
}

fn git(repo: &Path, args: &[&str]) -> Result<String, GitError> {
    let out = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .output()
        .map_err(GitError::Spawn)?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(GitError::Failed {
            args: args.join(" "),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// The commits in `repo` reachable from `to` and not from `from` (all of `to`'s
/// history when nothing is deployed), newest first: at most [`SHOWN`], and the count.
pub fn between(
    repo: &Path,
    from: Option<&str>,
    to: &str,
) -> Result<(Vec<Commit>, usize), GitError> {
    let range = match from {
        Some(f) => format!("{f}..{to}"),
        None => to.to_string(),
    };
    let total: usize = git(repo, &["rev-list", "--count", &range, "--"])?
        .trim()
        .parse()
        .map_err(|_| GitError::NoCount)?;
    let shown = format!("--max-count={SHOWN}");
    let log = git(
        repo,
        &["log", &shown, "--format=%h%x1f%an%x1f%s", &range, "--"],
    )?;
    let commits = log
        .lines()
        .filter_map(|l| {
            let mut f = l.splitn(3, '\u{1f}');
            Some(Commit {
                sha: f.next()?.to_string(),
                author: f.next()?.to_string(),
                subject: f.next().unwrap_or("").to_string(),
            })
        })
        .collect();
    Ok((commits, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(repo: &Path, args: &[&str]) -> String {
        git(repo, args).unwrap().trim().to_string()
    }

    #[test]
    fn the_commits_since_the_deployed_one_newest_first_at_most_twenty() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        run(r, &["init", "-q", "-b", "main"]);
        let commit = |msg: &str| {
            run(
                r,
                &[
                    "-c",
                    "user.name=Ann",
                    "-c",
                    "user.email=a@x",
                    "commit",
                    "-q",
                    "--allow-empty",
                    "-m",
                    msg,
                ],
            );
            run(r, &["rev-parse", "HEAD"])
        };
        let deployed = commit("deployed");
        for i in 0..24 {
            commit(&format!("change {i}"));
        }
        let head = commit("evil \x1b]0;title\x07 subject");
        let (list, total) = between(r, Some(&deployed), &head).unwrap();
        assert_eq!(total, 25);
        assert_eq!(list.len(), SHOWN);
        assert_eq!(list[0].author, "Ann");
        assert!(list[0].subject.starts_with("evil"));
        assert_eq!(list[1].subject, "change 23");
        let (_, all) = between(r, None, &head).unwrap();
        assert_eq!(all, 26);
        assert!(between(r, Some("nosuchcommit"), &head).is_err());
    }
}
