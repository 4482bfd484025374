//! A dashboard in a real terminal: a tmux server of the test's own, its session `pd`.

use std::process::Command;
use std::time::{Duration, Instant};

pub struct Tmux {
    pub socket: String,
    /// Data dirs whose engine the dashboard started: stopped when this drops.
    engines: std::sync::Mutex<Vec<std::path::PathBuf>>,
}

impl Tmux {
    pub fn new(socket: String) -> Self {
        Self {
            socket,
            engines: Default::default(),
        }
    }

    /// The engine the dashboard starts in `data_dir` stops with this session (a
    /// dashboard leaves its engine running while runs wait, as it should).
    pub fn owns_engine(&self, data_dir: &std::path::Path) {
        let mut e = self.engines.lock().unwrap_or_else(|p| p.into_inner());
        e.push(data_dir.to_path_buf());
    }

    pub fn cmd(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .expect("tmux runs")
    }

    pub fn keys(&self, keys: &[&str]) {
        for k in keys {
            assert!(self.cmd(&["send-keys", "-t", "pd", k]).status.success());
        }
    }

    pub fn screen(&self) -> String {
        String::from_utf8_lossy(&self.cmd(&["capture-pane", "-t", "pd", "-p"]).stdout).into_owned()
    }

    /// Moves the selection from a table's first row down to the first row that shows
    /// `needle`; the table is the one under the header line that shows `header`.
    pub fn select_row(&self, header: &str, needle: &str) {
        let s = self.screen();
        let rows: Vec<&str> = s
            .lines()
            .skip_while(|l| !l.contains(header))
            .skip(1)
            .collect();
        let Some(n) = rows.iter().position(|l| l.contains(needle)) else {
            panic!("no row under {header:?} shows {needle:?}:\n{s}");
        };
        for _ in 0..n {
            self.keys(&["Down"]);
        }
    }

    /// Reads the screen until it shows `needle` (a bound guards against hangs).
    pub fn wait_for(&self, needle: &str) -> String {
        self.wait_until(&format!("{needle:?}"), |s| s.contains(needle))
    }

    /// Reads the screen until `shows` holds for it (`what` says what was awaited).
    pub fn wait_until(&self, what: &str, shows: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let s = self.screen();
            if shows(&s) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "the screen never showed {what}:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]);
        let dirs = std::mem::take(self.engines.get_mut().unwrap_or_else(|p| p.into_inner()));
        for dir in dirs {
            stop_engine(&dir);
        }
    }
}

/// Sends SIGTERM to the `serve` process hosting `data_dir`'s engine, and waits
/// (bounded) until it is gone.
fn stop_engine(data_dir: &std::path::Path) {
    let needle = format!("--data-dir\0{}\0", data_dir.display());
    let hosts = |pid: &str| {
        std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|c| {
                let c = String::from_utf8_lossy(&c).into_owned();
                c.contains(&needle) && c.contains("\0serve")
            })
            .unwrap_or(false)
    };
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return;
    };
    let pids: Vec<String> = procs
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|p| p.bytes().all(|b| b.is_ascii_digit()) && hosts(p))
        .collect();
    for pid in &pids {
        let _ = Command::new("kill").args(["-TERM", pid]).status();
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while pids.iter().any(|p| hosts(p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
}
