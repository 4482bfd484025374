//! Station jobs: real child processes in a release's directory, in their own
//! process group, with the station and release as variables (never in the command).

use std::path::Path;
use std::process::Stdio;

use serde::{Deserialize, Serialize};

/// The most output a station job returns (the rest is cut, and says so).
const MAX_OUTPUT: usize = 1 << 20;

/// A station job to run: an argv, never a shell string built from it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StationJob {
    pub station: String,
    pub argv: Vec<String>,
}

/// How a station job or hook ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobOutput {
    pub station: String,
    /// The release it ran on (what `current` was when it started).
    pub release: i64,
    pub exit_code: Option<i32>,
    /// stdout then stderr, cut at 1 MiB each (untrusted: shown inert).
    pub stdout: String,
    pub stderr: String,
}

impl JobOutput {
    pub fn describe(&self) -> String {
        match self.exit_code {
            Some(c) => format!("exit code {c}"),
            None => "killed by a signal, or could not start".into(),
        }
    }
}

fn cut(mut b: Vec<u8>) -> String {
    if b.len() > MAX_OUTPUT {
        b.truncate(MAX_OUTPUT);
        b.extend_from_slice(b"\n[output cut at 1 MiB]\n");
    }
    String::from_utf8_lossy(&b).into_owned()
}

/// Runs `argv` in `dir` to its end. It stays in the engine's process group, where the
/// engine's reaper leaves it to be waited for here (see `executor::children`).
pub(crate) async fn run_argv(
    argv: &[String],
    dir: &Path,
    station: &str,
    release: i64,
) -> JobOutput {
    let mut cmd = std::process::Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .current_dir(dir)
        .env("PIPEDECK_STATION", station)
        .env("PIPEDECK_RELEASE_ID", release.to_string())
        .env("PIPEDECK_RELEASE_DIR", dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let not_run = |why: String| JobOutput {
        station: station.to_string(),
        release,
        exit_code: None,
        stdout: String::new(),
        stderr: why,
    };
    let out = match tokio::task::spawn_blocking(move || cmd.output()).await {
        Ok(Ok(o)) => o,
        Ok(Err(e)) => return not_run(format!("cannot start `{}`: {e}", argv[0])),
        Err(e) => return not_run(format!("`{}` was lost: {e}", argv[0])),
    };
    JobOutput {
        station: station.to_string(),
        release,
        exit_code: out.status.code(),
        stdout: cut(out.stdout),
        stderr: cut(out.stderr),
    }
}
