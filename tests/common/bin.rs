//! Driving the real binary: its commands, and an engine served by another process.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};

use std::time::{Duration, Instant};

use super::TestProject;

pub fn pipedeck(p: &TestProject) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_pipedeck"));
    c.arg("--data-dir")
        .arg(p.data_dir())
        .arg("--project")
        .arg(p.project_file())
        .env_remove("PIPEDECK_DATA_DIR")
        .env_remove("PIPEDECK_SOCKET")
        .env("PIPEDECK_CONFIG", p.file("no-user-config.toml"))
        .stdin(Stdio::null());
    c
}

/// The account this test runs as: who the engine records as acting.
pub fn me() -> String {
    let out = Command::new("id").arg("-un").output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

pub fn run_ok(p: &TestProject, args: &[&str]) -> String {
    let out = pipedeck(p).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

pub fn run_out(p: &TestProject, args: &[&str]) -> Output {
    pipedeck(p).args(args).output().unwrap()
}

pub fn json(p: &TestProject, args: &[&str]) -> serde_json::Value {
    let mut a = args.to_vec();
    a.push("--json");
    serde_json::from_str(&run_ok(p, &a)).unwrap()
}

/// Starts a process and reads its stdout (or stderr) until a line contains `needle`.
pub struct Proc {
    pub child: Child,
    lines: std::io::Lines<BufReader<Box<dyn std::io::Read + Send>>>,
    pub seen: Vec<String>,
}

impl Proc {
    pub fn spawn(mut cmd: Command, stderr: bool) -> Self {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let src: Box<dyn std::io::Read + Send> = if stderr {
            Box::new(child.stderr.take().unwrap())
        } else {
            Box::new(child.stdout.take().unwrap())
        };
        Self {
            child,
            lines: BufReader::new(src).lines(),
            seen: Vec::new(),
        }
    }

    pub fn until(&mut self, needle: &str) -> String {
        for line in self.lines.by_ref() {
            let line = line.unwrap();
            self.seen.push(line.clone());
            if line.contains(needle) {
                return line;
            }
        }
        panic!("never saw {needle:?}; saw {:#?}", self.seen);
    }

    pub fn rest(mut self) -> (i32, Vec<String>) {
        for l in self.lines.by_ref() {
            self.seen.push(l.unwrap());
        }
        let st = self.child.wait().unwrap();
        (st.code().unwrap_or(-1), std::mem::take(&mut self.seen))
    }
}

/// A process a test started does not outlive it (an engine left serving would).
impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub fn serve(p: &TestProject) -> Proc {
    let mut c = pipedeck(p);
    c.arg("serve");
    let mut s = Proc::spawn(c, true);
    s.until("serving");
    s
}

/// Polls `show RUN` until the run has one of `statuses` (bounded).
pub fn wait_status(p: &TestProject, id: &str, statuses: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let shown = json(p, &["show", id]);
        if statuses.iter().any(|s| shown["run"]["status"] == *s) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "run {id} never got to {statuses:?}: {shown:#}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
