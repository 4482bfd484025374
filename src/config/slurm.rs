//! Running steps on a Slurm cluster (issue 20): the project's `[slurm]` table (the
//! cluster), a step's, deploy's or infra resource's `executor` and `slurm = { ... }`
//! (its job), and what they resolve to: a [`SlurmJob`] stored with the run's
//! definition.

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::json_schema::Duration;
use super::validate::{Ctx, DurationRange};

/// The cluster: where pipedeck's job files go, the default partition, how often a
/// job's state is read, and whether steps run there unless they say otherwise.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SlurmFile {
    /// Run every step, deploy and infra resource's operations as Slurm jobs unless it says `executor = "local"` (default false). The one setting that moves a project onto the cluster.
    pub default: Option<bool>,
    /// A directory every node of the cluster sees at the same path (a shared filesystem): each job's batch script and output file go there. Default: `slurm` in the engine's data dir (right for a one-node cluster). The run's workspace and data dir must be visible to the nodes as well.
    #[schemars(with = "Option<String>")]
    pub shared_dir: Option<Spanned<String>>,
    /// The partition of jobs that name none (default: the cluster's default partition).
    pub partition: Option<String>,
    /// The longest wait between two reads of a job's state and output (default 2s; from 100ms to 1m). A job is read more often in its first seconds.
    #[schemars(with = "Option<Duration>")]
    pub poll: Option<Spanned<String>>,
}

/// One job's resources on the cluster (`slurm = { cpus = 2, memory = "4G" }`).
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SlurmJobFile {
    /// The partition (default: `[slurm] partition`, else the cluster's default).
    pub partition: Option<String>,
    /// CPUs for the job (`--cpus-per-task`), from 1 to 4096.
    #[schemars(with = "Option<u32>", range(min = 1, max = 4096))]
    pub cpus: Option<Spanned<i64>>,
    /// Memory for the job (`--mem`): a whole number with an optional unit K, M, G or T (`512M`, `4G`).
    #[schemars(with = "Option<String>", regex(pattern = r"^[0-9]+[KMGT]?$"))]
    pub memory: Option<Spanned<String>>,
    /// Slurm's own time limit for the job (`--time`, whole minutes at least 1m); a job past it ends as TIMEOUT, reported as timed out.
    #[schemars(with = "Option<Duration>")]
    pub time_limit: Option<Spanned<String>>,
    /// Extra `sbatch` options, each one argument (`["--qos=high", "--constraint=ssd"]`); each must be a long option `--name` or `--name=value`. Options pipedeck sets itself (output, script, working directory, job name) are refused.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub sbatch: Vec<Spanned<String>>,
}

/// Where a step or deploy runs: `"local"` (a process on the engine's machine) or `"slurm"` (a job on the cluster of `[slurm]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExecutorName {
    Local,
    Slurm,
}

/// A unit that runs as a Slurm job, resolved (stored with each run's definition).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlurmJob {
    pub partition: Option<String>,
    pub cpus: Option<u32>,
    /// `--mem`, as written (checked).
    pub memory: Option<String>,
    /// `--time`, in whole minutes.
    pub time_limit_min: Option<u64>,
    /// Extra `sbatch` arguments, each checked to be one long option.
    pub sbatch: Vec<String>,
    /// Job files go here (None: `<data dir>/slurm`).
    pub shared_dir: Option<PathBuf>,
    /// The longest wait between two reads of the job's state.
    pub poll_ms: u64,
}

/// The cluster as the project file sets it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SlurmCluster {
    /// Steps, deploys and infra resources run on the cluster unless they say
    /// `executor = "local"`.
    pub default: bool,
    pub shared_dir: Option<PathBuf>,
    pub partition: Option<String>,
    pub poll_ms: u64,
}

const POLL: DurationRange = DurationRange {
    key: "slurm.poll",
    min_ms: 100,
    max_ms: 60_000,
};
const TIME_LIMIT: DurationRange = DurationRange {
    key: "time_limit",
    min_ms: 60_000,
    max_ms: 365 * 24 * 3_600_000,
};
const DEFAULT_POLL_MS: u64 = 2_000;

/// Options pipedeck passes itself: a job's own would break how it follows the job.
const RESERVED: &[&str] = &[
    "--output",
    "--error",
    "--input",
    "--chdir",
    "--job-name",
    "--parsable",
    "--wrap",
    "--open-mode",
    "--array",
    "--wait",
    "--export",
    "--export-file",
    "--partition",
    "--cpus-per-task",
    "--mem",
    "--time",
];

/// `[slurm]`, resolved.
pub(super) fn resolve_cluster(cx: &mut Ctx, file: &Option<SlurmFile>) -> Option<SlurmCluster> {
    let file = file.as_ref()?;
    if let Some(p) = &file.partition {
        check_partition(cx, None, p);
    }
    Some(SlurmCluster {
        default: file.default.unwrap_or(false),
        shared_dir: file.shared_dir.as_ref().map(|d| cx.path(d.get_ref())),
        partition: file.partition.clone(),
        poll_ms: cx.duration(&file.poll, DEFAULT_POLL_MS, &POLL),
    })
}

fn check_partition(cx: &mut Ctx, span: Option<std::ops::Range<usize>>, p: &str) {
    let ok = !p.is_empty()
        && p.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.,".contains(c));
    if !ok {
        // A partition has no span of its own (a plain string): point at the table.
        cx.err(
            span.unwrap_or(0..0),
            format!("partition `{p}` is not a Slurm partition name"),
            "write the partition's name as `sinfo` lists it (letters, digits, _ - . ,)",
        );
    }
}

/// A step's or deploy's executor: `None` runs it locally. `at` names it in errors
/// (`services.api.steps.test`); `span` is where its table starts.
pub(super) fn resolve_job(
    cx: &mut Ctx,
    cluster: &Option<SlurmCluster>,
    executor: &Option<Spanned<ExecutorName>>,
    job: &Option<SlurmJobFile>,
    at: &str,
    span: std::ops::Range<usize>,
) -> Option<SlurmJob> {
    let wanted = match executor {
        Some(e) => *e.get_ref() == ExecutorName::Slurm,
        None => cluster.as_ref().is_some_and(|c| c.default) || job.is_some(),
    };
    if !wanted {
        return None;
    }
    let Some(cluster) = cluster else {
        let span = executor.as_ref().map(|e| e.span()).unwrap_or(span);
        cx.err(
            span,
            format!("{at} runs on Slurm, but the project has no [slurm] table"),
            "add a [slurm] table (it may be empty: the cluster's defaults apply), or remove executor = \"slurm\"",
        );
        return None;
    };
    let empty = SlurmJobFile::default();
    let job = job.as_ref().unwrap_or(&empty);
    if let Some(p) = &job.partition {
        check_partition(cx, Some(span.clone()), p);
    }
    let cpus = job
        .cpus
        .as_ref()
        .and_then(|c| match u32::try_from(*c.get_ref()) {
            Ok(n) if (1..=4096).contains(&n) => Some(n),
            _ => {
                cx.err(
                    c.span(),
                    format!("cpus = {} is out of range", c.get_ref()),
                    "write how many CPUs the job needs, from 1 to 4096",
                );
                None
            }
        });
    let memory = job.memory.as_ref().and_then(|m| {
        let text = m.get_ref();
        let digits = text.bytes().take_while(u8::is_ascii_digit).count();
        let ok = digits > 0 && ["", "K", "M", "G", "T"].contains(&&text[digits..]);
        if !ok {
            cx.err(
                m.span(),
                format!("memory = \"{text}\" is not an amount Slurm reads"),
                "write a whole number with an optional unit K, M, G or T, like \"512M\" or \"4G\"",
            );
        }
        ok.then(|| text.clone())
    });
    let time_limit_min = job.time_limit.as_ref().map(|_| {
        cx.duration(&job.time_limit, TIME_LIMIT.min_ms, &TIME_LIMIT)
            .div_ceil(60_000)
    });
    let mut sbatch = Vec::new();
    for o in &job.sbatch {
        match check_option(o.get_ref()) {
            Ok(()) => sbatch.push(o.get_ref().clone()),
            Err(why) => cx.err(
                o.span(),
                format!("sbatch option `{}` {why}", o.get_ref().escape_debug()),
                "write each option as one `--name=value` string; set partition, cpus, memory and time_limit with their own keys",
            ),
        }
    }
    Some(SlurmJob {
        partition: job.partition.clone().or_else(|| cluster.partition.clone()),
        cpus,
        memory,
        time_limit_min,
        sbatch,
        shared_dir: cluster.shared_dir.clone(),
        poll_ms: cluster.poll_ms,
    })
}

/// One extra `sbatch` argument: a long option, printable, and none of pipedeck's own.
fn check_option(o: &str) -> Result<(), &'static str> {
    if !o.starts_with("--") || o.len() < 3 {
        return Err("is not a long option (`--name` or `--name=value`)");
    }
    if o.chars().any(|c| c.is_control()) {
        return Err("contains a control character");
    }
    let name = o.split('=').next().unwrap_or(o);
    if !name[2..]
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        return Err("has a name that is not a Slurm option name");
    }
    if RESERVED.contains(&name) {
        return Err("is set by pipedeck itself");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_single_long_options_and_never_pipedecks_own() {
        assert!(check_option("--qos=high").is_ok());
        assert!(check_option("--exclusive").is_ok());
        assert!(check_option("--constraint=a b").is_ok());
        assert!(check_option("-p").is_err());
        assert!(check_option("--").is_err());
        assert!(check_option("--output=/tmp/x").is_err());
        assert!(check_option("--chdir").is_err());
        assert!(check_option("--qos=a\nb").is_err());
        assert!(check_option("--q;s=1").is_err());
    }
}
