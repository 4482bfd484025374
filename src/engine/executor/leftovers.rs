//! What a previous engine's steps left running, stopped before a restarted engine
//! marks their runs `interrupted`.
//!
//! Two ways find them: the processes carrying a token of this store (every process
//! of a step, whatever group or session it moved to, unless it cleared its
//! environment), and the process groups of the steps recorded as running whose
//! leader is still the same process (pid and start time both match: a pid that was
//! merely reused is never signalled). Each is asked to stop (SIGINT for Terraform,
//! else SIGTERM), given its step's grace, then killed.

use std::path::Path;
use std::time::{Duration, Instant};

use super::token::{self, Proc};

/// The longest a restarted engine waits for leftovers to stop by themselves.
const MAX_GRACE: Duration = Duration::from_secs(30);
/// A group found only through the store (its processes lost their token).
const GROUP_GRACE: Duration = Duration::from_secs(5);

/// Names a store in its steps' tokens: a hash of its data dir's path (stable across
/// engine versions, so an upgraded engine finds what the old one left).
pub fn store_id(data_dir: &Path) -> String {
    let path = std::fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.to_path_buf());
    // FNV-1a, 64 bits.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in path.as_os_str().as_encoded_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// What was found and stopped.
#[derive(Debug, Default, PartialEq)]
pub struct Stopped {
    /// Processes that stopped when asked.
    pub asked: usize,
    /// Processes that had to be killed after the grace.
    pub killed: usize,
}

/// The processes carrying a token of `store` (a walk of `/proc`).
pub fn scan(store: &str) -> Vec<Proc> {
    token::scan(store)
}

/// Stops the leftovers [`scan`] found, and the groups of `leaders` (pid, start time)
/// that still run; returns once they are gone (or killed).
pub fn stop(found: Vec<Proc>, leaders: &[(i32, u64)]) -> Stopped {
    let mut targets: Vec<(Proc, i32)> = found
        .into_iter()
        .map(|p| {
            let sig = p.token.as_ref().map_or(libc::SIGTERM, |t| t.first_signal());
            (p, sig)
        })
        .collect();
    let mut groups = Vec::new();
    for &(pid, start) in leaders {
        if let Some(p) = Proc::read(pid).filter(|p| p.start == start && !p.zombie) {
            groups.push(p.pid);
            if !targets.iter().any(|(t, _)| t.pid == pid) {
                targets.push((p, libc::SIGTERM));
            }
        }
    }
    if targets.is_empty() {
        return Stopped::default();
    }
    let grace = targets
        .iter()
        .map(|(p, _)| p.token.as_ref().map_or(GROUP_GRACE, |t| t.grace))
        .max()
        .unwrap_or(GROUP_GRACE)
        .min(MAX_GRACE);
    tracing::warn!(
        count = targets.len(),
        "stopping processes a previous engine's steps left running"
    );
    for (p, sig) in &targets {
        // SAFETY: kill/killpg have no memory-safety preconditions; each pid was just
        // seen to be the same process.
        unsafe {
            if groups.contains(&p.pid) {
                libc::killpg(p.pid, *sig);
            } else {
                libc::kill(p.pid, *sig);
            }
        }
    }
    let alive = |targets: &[(Proc, i32)]| -> Vec<Proc> {
        targets
            .iter()
            .filter(|(p, _)| Proc::read(p.pid).is_some_and(|q| q.start == p.start && !q.zombie))
            .map(|(p, _)| p.clone())
            .collect()
    };
    let deadline = Instant::now() + grace;
    let mut left = alive(&targets);
    while !left.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        left = alive(&targets);
    }
    for p in &left {
        // SAFETY: as above; still the same process (pid and start time matched).
        unsafe {
            if groups.contains(&p.pid) {
                libc::killpg(p.pid, libc::SIGKILL);
            }
            libc::kill(p.pid, libc::SIGKILL);
        }
    }
    Stopped {
        asked: targets.len() - left.len(),
        killed: left.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::executor::token::{StepToken, VAR};

    #[test]
    fn store_ids_name_data_dirs() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        assert_eq!(store_id(a.path()), store_id(a.path()));
        assert_ne!(store_id(a.path()), store_id(b.path()));
        assert_eq!(store_id(a.path()).len(), 16);
    }

    #[test]
    fn leftovers_are_asked_then_killed_and_a_reused_pid_is_left_alone() {
        let store = format!("leftover-test-{}", std::process::id());
        let token = |interrupt_first| StepToken {
            store: store.clone(),
            run: 1,
            step: 1,
            interrupt_first,
            grace: Duration::from_millis(300),
        };
        // Each says when it is ready (its environment set, its trap in place).
        let spawn = |script: &str, t: &StepToken| {
            use std::io::BufRead;
            let mut child = std::process::Command::new("sh")
                .args(["-c", script])
                .env(VAR, t.to_string())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            let mut line = String::new();
            std::io::BufReader::new(child.stdout.take().unwrap())
                .read_line(&mut line)
                .unwrap();
            assert_eq!(line, "ready\n");
            child
        };
        // One stops when asked (SIGINT, as Terraform would be), one ignores it.
        let mut polite = spawn("echo ready; exec sleep 30", &token(true));
        // (An ignored signal stays ignored across exec.)
        let mut stubborn = spawn("trap '' TERM; echo ready; exec sleep 30", &token(false));
        // A process recorded as a leader, but with another start time: a reused pid.
        let mut stranger = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let me = Proc::read(stranger.id() as i32).unwrap();
        let got = stop(scan(&store), &[(me.pid, me.start + 1)]);
        assert_eq!(
            got,
            Stopped {
                asked: 1,
                killed: 1
            }
        );
        assert!(polite.wait().unwrap().code().is_none());
        assert!(stubborn.wait().unwrap().code().is_none());
        assert!(
            stranger.try_wait().unwrap().is_none(),
            "a reused pid was signalled"
        );
        stranger.kill().unwrap();
        stranger.wait().unwrap();
        assert_eq!(stop(scan(&store), &[]), Stopped::default());
    }
}
