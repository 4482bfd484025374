//! Real git repositories for trigger tests: commit, tag, push to a bare remote.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use pipedeck::api::EngineClient;
use pipedeck::domain::trigger::TriggerInfo;
use pipedeck::engine::EngineHandle;

/// Runs git in `dir`; panics with its stderr when it fails.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            "user.name=Tester",
            "-c",
            "user.email=t@example.invalid",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A work tree at `dir` with one commit on `main`.
pub fn init_repo(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    git(dir, &["init", "-q", "-b", "main"]);
    commit(dir, "first");
    dir.to_path_buf()
}

/// A bare remote (`DIR/remote.git`) and a work tree (`DIR/clone`) that pushed `main`
/// to it.
pub fn bare_remote(dir: &Path) -> (PathBuf, PathBuf) {
    let remote = dir.join("remote.git");
    std::fs::create_dir_all(&remote).unwrap();
    git(&remote, &["init", "-q", "--bare", "-b", "main"]);
    let clone = init_repo(&dir.join("clone"));
    git(
        &clone,
        &["remote", "add", "origin", &remote.to_string_lossy()],
    );
    git(&clone, &["push", "-q", "origin", "main"]);
    (remote, clone)
}

/// Commits a change; returns the new commit's sha.
pub fn commit(dir: &Path, msg: &str) -> String {
    std::fs::write(dir.join("file.txt"), format!("{msg}\n")).unwrap();
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", msg]);
    git(dir, &["rev-parse", "HEAD"])
}

/// The project's triggers, as `pipedeck triggers --json` lists them.
pub async fn triggers(h: &EngineHandle) -> Vec<TriggerInfo> {
    h.triggers().await.expect("triggers")
}

/// Polls `cond` until it holds, for at most a minute (a hang guard, not a timing
/// assertion).
pub async fn until<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !cond().await {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until every git watcher of the engine has looked once (its baseline).
pub async fn watchers_looked(h: &EngineHandle) {
    until("every git watcher looked", || async {
        triggers(h)
            .await
            .iter()
            .filter(|t| t.trigger == "push" || t.trigger == "tag")
            .all(|t| t.checked_at.is_some())
    })
    .await;
}
