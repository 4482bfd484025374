//! Pushes to a service's branches and tags, seen by comparing its repository's refs
//! (`git ls-remote`) with what was seen last. The comparison runs at the service's
//! poll interval (doubling after each failure, up to 16 times, the error shown), and
//! at once when a local repository's refs change (inotify through `notify`). What
//! was seen is stored: a push made while the engine was down fires on start, once.
//! The first look at a repository only records it: what was there before is not new.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::{TriggerStatus, stopped_because};
use crate::config::Service;
use crate::domain::now_ms;
use crate::engine::{EngineError, EngineHandle, workspace};

/// Marks that a service's refs were recorded once (its first look).
const BASELINE: &str = "refs:baseline";

/// The most the interval grows after failures.
const MAX_BACKOFF: u32 = 16;

pub(super) fn spawn(
    h: EngineHandle,
    svc: Service,
    status: watch::Sender<TriggerStatus>,
    stop: CancellationToken,
) {
    tokio::spawn(async move {
        let (wake_tx, mut wake) = mpsc::channel::<()>(1);
        // Kept alive with the task; dropping it stops the watching.
        let _watcher =
            local_git_dir(&h, &svc)
                .await
                .and_then(|dir| match watch_refs(&dir, wake_tx) {
                    Ok(w) => Some(w),
                    Err(e) => {
                        tracing::warn!(
                            service = svc.name,
                            "cannot watch {} for changes ({e}); polling only",
                            dir.display()
                        );
                        None
                    }
                });
        let mut failures = 0u32;
        loop {
            let project = h.project();
            let current = project.service(&svc.name).cloned().unwrap_or(svc.clone());
            let r = check(&h, &current).await;
            let error = match r {
                Ok(()) => {
                    failures = 0;
                    None
                }
                Err(EngineError::Stopped) => return,
                Err(e) => {
                    failures = (failures + 1).min(MAX_BACKOFF);
                    Some(crate::domain::ansi::sanitize(&e.to_string(), false))
                }
            };
            status.send_modify(|s| {
                s.last_error = error;
                s.checked_at = Some(now_ms());
            });
            let wait = Duration::from_millis(current.triggers.poll_ms)
                * failures.max(1).next_power_of_two().min(MAX_BACKOFF);
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                Some(()) = wake.recv() => {}
                _ = stop.cancelled() => return,
            }
        }
    });
}

/// The git dir of a service's repository when it is on this machine.
async fn local_git_dir(h: &EngineHandle, svc: &Service) -> Option<PathBuf> {
    if is_url(&svc.repo) {
        return None;
    }
    let (svc, data_dir) = (svc.clone(), h.data_dir().to_path_buf());
    tokio::task::spawn_blocking(move || {
        let repo = workspace::ensure_repo(&svc, &data_dir).ok()?;
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(&repo)
            .args(["rev-parse", "--absolute-git-dir"])
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
    })
    .await
    .ok()
    .flatten()
}

fn is_url(repo: &str) -> bool {
    repo.contains("://") || repo.contains('@')
}

/// Wakes `tx` whenever something under the git dir's refs (or its packed refs) changes.
fn watch_refs(dir: &Path, tx: mpsc::Sender<()>) -> notify::Result<notify::RecommendedWatcher> {
    use notify::{RecursiveMode, Watcher};
    let mut w = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
        if ev.is_ok_and(|e| changes(&e.kind)) {
            // Full: a look is already due, and it will see this change too.
            let _ = tx.try_send(());
        }
    })?;
    w.watch(&dir.join("refs"), RecursiveMode::Recursive)?;
    // `packed-refs` is replaced by a rename into the git dir itself.
    w.watch(dir, RecursiveMode::NonRecursive)?;
    Ok(w)
}

/// Whether an event under the git dir may be a change of its refs. Reading them is
/// not: `git ls-remote` (the look itself) opens them, and waking on that made an idle
/// engine look again and again (measured: about half a core on the demo).
fn changes(kind: &notify::EventKind) -> bool {
    !matches!(kind, notify::EventKind::Access(_))
}

/// One look: the refs now against those seen; each new head or tag that a glob
/// matches fires (once per ref and commit); what was seen is then stored.
async fn check(h: &EngineHandle, svc: &Service) -> crate::engine::Result<()> {
    let (svc2, data_dir) = (svc.clone(), h.data_dir().to_path_buf());
    let refs = tokio::task::spawn_blocking(move || ls_remote(&svc2, &data_dir))
        .await
        .map_err(|e| EngineError::Internal(e.to_string()))??;
    let seen = h.seen(&svc.name).await?;
    let mut changes = Vec::new();
    if !seen.contains_key(BASELINE) {
        changes.push((BASELINE.to_string(), Some(now_ms().to_string())));
        changes.extend(refs.iter().map(|(r, sha)| (r.clone(), Some(sha.clone()))));
        return h.set_seen(&svc.name, changes).await;
    }
    let stopped = stopped_because(svc).is_some();
    let mut errors = Vec::new();
    for (name, sha) in &refs {
        if seen.get(name) == Some(sha) {
            continue;
        }
        let by = |t: &str| format!("trigger:{t}");
        if !stopped && let Ok(fire) = super::ref_fire(svc, name, sha, &by) {
            match h.fire(fire).await {
                Ok(Some(run)) => tracing::info!(
                    service = svc.name,
                    "{name} at {}: run {}",
                    crate::domain::deploy::short_sha(sha),
                    run.id
                ),
                Ok(None) => {}
                Err(e @ (EngineError::Stopped | EngineError::Internal(_))) => {
                    // Not recorded as seen: the next look tries again.
                    errors.push(format!("{name}: {e}"));
                    continue;
                }
                Err(e) => errors.push(format!("{name}: {e}")),
            }
        }
        changes.push((name.clone(), Some(sha.clone())));
    }
    for name in seen.keys() {
        if name.starts_with("refs/") && !refs.contains_key(name) {
            changes.push((name.clone(), None));
        }
    }
    h.set_seen(&svc.name, changes).await?;
    if errors.is_empty() {
        Ok(())
    } else {
        Err(EngineError::Invalid(errors.join("; ")))
    }
}

/// The repository's heads and tags (a tag's commit for an annotated tag).
fn ls_remote(svc: &Service, data_dir: &Path) -> crate::engine::Result<BTreeMap<String, String>> {
    let repo = if svc.repo_seed.is_some() {
        workspace::ensure_repo(svc, data_dir)
            .map_err(|e| EngineError::Invalid(e.to_string()))?
            .to_string_lossy()
            .into_owned()
    } else {
        svc.repo.clone()
    };
    let out = std::process::Command::new("git")
        .args(["ls-remote", "--heads", "--tags", "--end-of-options", &repo])
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| EngineError::Internal(format!("cannot run git: {e}")))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(EngineError::Invalid(format!(
            "git ls-remote {repo} failed: {}",
            err.trim()
        )));
    }
    Ok(parse_ls_remote(&String::from_utf8_lossy(&out.stdout)))
}

fn parse_ls_remote(text: &str) -> BTreeMap<String, String> {
    let mut refs = BTreeMap::new();
    for line in text.lines() {
        let Some((sha, name)) = line.split_once('\t') else {
            continue;
        };
        match name.strip_suffix("^{}") {
            // The peeled commit of an annotated tag wins over the tag object.
            Some(tag) => {
                refs.insert(tag.to_string(), sha.to_string());
            }
            None => {
                refs.entry(name.to_string())
                    .or_insert_with(|| sha.to_string());
            }
        }
    }
    refs
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `git ls-remote` does to a watched repository is all reading: none of it
    /// wakes the watcher. A ref written afterwards does (inotify keeps the order).
    #[test]
    fn reading_the_refs_is_no_change_and_writing_one_is() {
        use notify::Watcher;
        let tmp = tempfile::tempdir().unwrap();
        let git = |args: &[&str]| {
            let out = std::process::Command::new("git")
                .arg("-C")
                .arg(tmp.path())
                .args(args)
                .output()
                .unwrap();
            assert!(out.status.success(), "{out:?}");
        };
        git(&["init", "-q", "--bare"]);
        let (tx, rx) = std::sync::mpsc::channel();
        let mut w = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
            let _ = tx.send(ev.unwrap());
        })
        .unwrap();
        w.watch(&tmp.path().join("refs"), notify::RecursiveMode::Recursive)
            .unwrap();
        w.watch(tmp.path(), notify::RecursiveMode::NonRecursive)
            .unwrap();
        let repo = tmp.path().display().to_string();
        for _ in 0..3 {
            let out = std::process::Command::new("git")
                .args(["ls-remote", "--heads", "--tags", &repo])
                .output()
                .unwrap();
            assert!(out.status.success());
        }
        let sentinel = tmp.path().join("refs/tags/sentinel");
        std::fs::write(&sentinel, "0000000000000000000000000000000000000000\n").unwrap();
        let mut before = Vec::new();
        loop {
            let ev = rx
                .recv_timeout(std::time::Duration::from_secs(30))
                .expect("the sentinel's event");
            if ev.paths.contains(&sentinel) && changes(&ev.kind) {
                break;
            }
            before.push(ev);
        }
        let woke: Vec<_> = before.iter().filter(|e| changes(&e.kind)).collect();
        assert!(woke.is_empty(), "reading woke the watcher: {woke:#?}");
    }

    #[test]
    fn annotated_tags_are_peeled() {
        let refs = parse_ls_remote(
            "aaa\trefs/heads/main\nbbb\trefs/tags/v1\nccc\trefs/tags/v1^{}\nddd\trefs/tags/v2\n",
        );
        assert_eq!(refs["refs/heads/main"], "aaa");
        assert_eq!(refs["refs/tags/v1"], "ccc");
        assert_eq!(refs["refs/tags/v2"], "ddd");
    }
}
