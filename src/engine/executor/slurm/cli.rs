//! The Slurm commands pipedeck runs: `sbatch --parsable` to submit, `scontrol show job`
//! (then `sacct`, where the cluster keeps accounting) to follow, `scancel` to stop.
//! Every value goes as its own argument; nothing passes through a shell.

use std::path::Path;
use std::process::Stdio;

use crate::config::slurm::SlurmJob;

/// A Slurm job id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct JobId(pub u64);

impl std::fmt::Display for JobId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Why a Slurm command did not do its part.
#[derive(Debug, thiserror::Error)]
pub enum SlurmError {
    #[error("cannot run `{0}` (is Slurm installed and on PATH?): {1}")]
    Spawn(&'static str, #[source] std::io::Error),
    #[error("`{0}` failed: {1}")]
    Refused(&'static str, String),
    #[error("`sbatch --parsable` answered `{0}`, not a job id")]
    BadId(String),
}

/// A job's state as Slurm reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobInfo {
    /// `PENDING`, `RUNNING`, `COMPLETED`, `FAILED`, `TIMEOUT`, `CANCELLED`, ...
    pub state: String,
    /// Why it waits or why it ended (`Resources`, `NonZeroExitCode`, `None`).
    pub reason: String,
    /// The exit code and the signal (`ExitCode=3:0`).
    pub exit: (i32, i32),
    /// Where it runs (empty while pending).
    pub nodes: String,
}

impl JobInfo {
    /// The job waits in the cluster's queue (or for its nodes to boot): it has not
    /// started.
    pub fn waits(&self) -> bool {
        matches!(
            self.state.as_str(),
            "PENDING" | "CONFIGURING" | "REQUEUED" | "REQUEUE_HOLD" | "REQUEUE_FED"
        )
    }

    /// Slurm is done with the job.
    pub fn ended(&self) -> bool {
        !matches!(
            self.state.as_str(),
            "PENDING"
                | "RUNNING"
                | "CONFIGURING"
                | "COMPLETING"
                | "SUSPENDED"
                | "REQUEUED"
                | "REQUEUE_HOLD"
                | "REQUEUE_FED"
                | "RESIZING"
                | "SIGNALING"
                | "STAGE_OUT"
                | "STOPPED"
        )
    }
}

async fn output(program: &'static str, args: &[&str]) -> Result<String, SlurmError> {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    // A short command, run on a blocking thread (the runtime's own spawning is for
    // steps).
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(program)
            .args(&args)
            .stdin(Stdio::null())
            .output()
    })
    .await
    .map_err(|e| SlurmError::Spawn(program, std::io::Error::other(e)))?
    .map_err(|e| SlurmError::Spawn(program, e))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let err = err.trim();
        let why = if err.is_empty() {
            out.status.to_string()
        } else {
            err.to_string()
        };
        return Err(SlurmError::Refused(program, why));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The `sbatch` arguments for `job`: ours, the job's resources, its extra options,
/// then the script.
pub fn sbatch_args(
    job: &SlurmJob,
    name: &str,
    output: &Path,
    cwd: &Path,
    script: &Path,
) -> Vec<String> {
    let mut args = vec![
        "--parsable".to_string(),
        format!("--job-name={name}"),
        format!("--output={}", output.display()),
        format!("--chdir={}", cwd.display()),
    ];
    if let Some(p) = &job.partition {
        args.push(format!("--partition={p}"));
    }
    if let Some(c) = job.cpus {
        args.push(format!("--cpus-per-task={c}"));
    }
    if let Some(m) = &job.memory {
        args.push(format!("--mem={m}"));
    }
    if let Some(t) = job.time_limit_min {
        args.push(format!("--time={t}"));
    }
    args.extend(job.sbatch.iter().cloned());
    args.push(script.display().to_string());
    args
}

/// Submits the job; its id.
pub async fn submit(args: &[String]) -> Result<JobId, SlurmError> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = output("sbatch", &args).await?;
    // `--parsable` prints `id` or `id;cluster`.
    let first = out.trim().split(';').next().unwrap_or_default();
    first
        .parse()
        .map(JobId)
        .map_err(|_| SlurmError::BadId(out.trim().to_string()))
}

/// The job's state: `None` once Slurm no longer knows it.
pub async fn query(job: JobId) -> Result<Option<JobInfo>, SlurmError> {
    let id = job.to_string();
    match output("scontrol", &["show", "job", "-o", &id]).await {
        Ok(out) => return Ok(parse_scontrol(&out)),
        Err(SlurmError::Refused(_, why)) if why.contains("Invalid job id") => {}
        Err(e) => return Err(e),
    }
    // Gone from the controller's memory: accounting may still know it.
    match output(
        "sacct",
        &[
            "-n",
            "-P",
            "-X",
            "-j",
            &id,
            "-o",
            "State,ExitCode,Reason,NodeList",
        ],
    )
    .await
    {
        Ok(out) => Ok(parse_sacct(&out)),
        Err(_) => Ok(None),
    }
}

/// Sends `signal` to every process of the job (the batch script's too).
pub async fn signal(job: JobId, signal: &str) -> Result<(), SlurmError> {
    let sig = format!("--signal={signal}");
    output("scancel", &["--full", &sig, &job.to_string()])
        .await
        .map(drop)
}

/// Cancels the job (a pending one never starts; a running one is killed).
pub async fn cancel(job: JobId) -> Result<(), SlurmError> {
    output("scancel", &[&job.to_string()]).await.map(drop)
}

/// `3:0` as (3, 0).
fn exit_pair(s: &str) -> (i32, i32) {
    let mut it = s.split(':').map(|p| p.trim().parse().unwrap_or(0));
    (it.next().unwrap_or(0), it.next().unwrap_or(0))
}

/// One line of `scontrol show job -o`: `Key=Value` pairs; a value may hold spaces
/// (words without `=` belong to the value before).
pub fn parse_scontrol(out: &str) -> Option<JobInfo> {
    let line = out.lines().find(|l| l.contains("JobState="))?;
    let mut fields: Vec<(&str, String)> = Vec::new();
    for word in line.split_whitespace() {
        match word.split_once('=') {
            Some((k, v))
                if !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == ':') =>
            {
                fields.push((k, v.to_string()))
            }
            _ => {
                if let Some((_, v)) = fields.last_mut() {
                    v.push(' ');
                    v.push_str(word);
                }
            }
        }
    }
    let get = |k: &str| {
        fields
            .iter()
            .find(|(key, _)| *key == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    Some(JobInfo {
        state: get("JobState"),
        reason: get("Reason"),
        exit: exit_pair(&get("ExitCode")),
        nodes: get("NodeList").replace("(null)", ""),
    })
}

/// The job's line of `sacct -n -P -X`: `State|ExitCode|Reason|NodeList`.
fn parse_sacct(out: &str) -> Option<JobInfo> {
    let line = out.lines().find(|l| !l.trim().is_empty())?;
    let mut f = line.split('|');
    // `CANCELLED by 0`: the state is the first word.
    let state = f.next()?.split_whitespace().next()?.to_string();
    Some(JobInfo {
        state,
        exit: exit_pair(f.next().unwrap_or_default()),
        reason: f.next().unwrap_or_default().to_string(),
        nodes: f.next().unwrap_or_default().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scontrol_lines_are_read_with_spaces_in_values() {
        let line = "JobId=7 JobName=pipedeck-r1-s2 UserId=root(0) JobState=FAILED \
                    Reason=NonZeroExitCode Dependency=(null) ExitCode=3:0 \
                    Command=/tmp/a dir/step.sh WorkDir=/tmp NodeList=vm\n";
        let info = parse_scontrol(line).unwrap();
        assert_eq!(info.state, "FAILED");
        assert_eq!(info.reason, "NonZeroExitCode");
        assert_eq!(info.exit, (3, 0));
        assert_eq!(info.nodes, "vm");
        assert!(info.ended());
        let pending =
            parse_scontrol("JobId=8 JobState=PENDING Reason=Resources NodeList=(null)").unwrap();
        assert!(!pending.ended());
        assert!(pending.waits());
        assert!(!info.waits());
        assert_eq!(pending.nodes, "");
        assert_eq!(
            parse_scontrol("slurm_load_jobs error: Invalid job id"),
            None
        );
    }

    #[test]
    fn sacct_lines_are_read() {
        let info = parse_sacct("CANCELLED by 0|0:15|None|vm\n").unwrap();
        assert_eq!(info.state, "CANCELLED");
        assert_eq!(info.exit, (0, 15));
        assert_eq!(parse_sacct(""), None);
    }

    #[test]
    fn every_value_is_its_own_argument() {
        let job = SlurmJob {
            partition: Some("debug".into()),
            cpus: Some(2),
            memory: Some("1G".into()),
            time_limit_min: Some(5),
            sbatch: vec!["--comment=a b; rm -rf /".into()],
            shared_dir: None,
            poll_ms: 1000,
        };
        let args = sbatch_args(
            &job,
            "pipedeck-r1-s1",
            Path::new("/s/o.out"),
            Path::new("/w s"),
            Path::new("/s/x.sh"),
        );
        assert_eq!(
            args,
            [
                "--parsable",
                "--job-name=pipedeck-r1-s1",
                "--output=/s/o.out",
                "--chdir=/w s",
                "--partition=debug",
                "--cpus-per-task=2",
                "--mem=1G",
                "--time=5",
                "--comment=a b; rm -rf /",
                "/s/x.sh"
            ]
        );
    }
}
