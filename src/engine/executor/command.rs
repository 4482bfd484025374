//! The command executor: a unit is a shell command run as a process group in the
//! run's workspace, with the run's variables (EN-2). Service runs use it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::outputs;
use super::process::{self, ProcSpec};
use super::spawn::Env;
use crate::config::{SecretError, Service};
use crate::domain::chain::Upstream;
use crate::domain::{RunInfo, StepInfo};
use crate::engine::scheduler::{Executor, Finished, Outcome, UnitCtx};
use crate::engine::workspace::{self, WorkspaceError};

/// Why a service run could not start: no workspace, a secret unreadable, or no
/// environment.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PrepareError {
    #[error(transparent)]
    Workspace(#[from] WorkspaceError),
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error("cannot set the environment: {0}")]
    Env(#[source] std::io::Error),
    #[error("cannot make the folder for the steps' outputs: {0}")]
    Outputs(#[source] std::io::Error),
    /// The blocking task making the workspace panicked or was cancelled.
    #[error("{0}")]
    Join(#[from] tokio::task::JoinError),
}

/// One command to run.
pub(crate) struct Command {
    /// A shell command from the project file (trusted).
    pub run: String,
    pub kill_grace: Duration,
    /// The unit's own variables (`PIPEDECK_STEP`, `PIPEDECK_ENV`).
    pub env: Vec<(String, String)>,
    /// The run's row it reports to (its outputs are that row's).
    pub row: usize,
    /// Stopped and failed after this long.
    pub timeout: Option<Duration>,
    /// Run again this many times after a failure (build steps only).
    pub retries: u32,
    /// Runs as a Slurm job, not a local process.
    pub slurm: Option<crate::config::slurm::SlurmJob>,
}

/// Before attempt `n + 1` (n from 1): 1s, 2s, 4s ..., at most a minute.
fn backoff(n: u32) -> Duration {
    Duration::from_secs(1u64 << (n - 1).min(6)).min(Duration::from_secs(60))
}

/// One line of pipedeck's own in a unit's log (a failure to write it is only logged:
/// the attempt's own lines are what matter).
fn note(log: &process::LogTarget, text: &str) {
    if let Err(e) = process::note(log, text) {
        tracing::warn!("step {}: cannot write a note to its log: {e}", log.step_id);
    }
}

/// What one unit of a service run does: a command (a step, a deploy, a smoke test),
/// or an HTTP check after a deploy.
pub(crate) enum Work {
    Command(Command),
    Http(crate::config::HttpCheck),
    /// Pack the workspace's files matching these globs into the artifact store (DP-1).
    Pack(Vec<String>),
}

/// Runs a service run's commands in its workspace, checked out at the run's commit.
pub(crate) struct CommandExecutor {
    run: RunInfo,
    def: Service,
    data_dir: PathBuf,
    workspace: PathBuf,
    /// The run's variables, set by `prepare` and shared by every unit.
    env: std::sync::OnceLock<Arc<Env>>,
    /// Outputs between units.
    wiring: outputs::Wiring,
    /// The runs that started this one (a chain).
    upstream: Vec<Upstream>,
    /// The run's variables as pairs (a Slurm job's script exports them).
    vars: std::sync::OnceLock<Arc<Vec<(String, String)>>>,
    /// How Slurm jobs are recorded and re-attached.
    slurm: Option<super::slurm::Link>,
    /// Where a checkout made ahead of the run may wait.
    ahead: Option<Arc<crate::engine::prefetch::Ahead>>,
}

impl CommandExecutor {
    /// `wiring` says which rows come before which; the outputs rows already
    /// produced (a run resumed after a restart) are read from `steps`.
    pub fn new(
        run: RunInfo,
        def: Service,
        data_dir: PathBuf,
        steps: &[StepInfo],
        wiring: outputs::Wiring,
    ) -> Self {
        let workspace = data_dir.join("workspaces").join(run.id.to_string());
        for (row, s) in steps.iter().enumerate() {
            if let Some(serde_json::Value::Object(o)) = &s.outputs {
                let values = o
                    .iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                    .collect();
                wiring.record(row, values);
            }
        }
        Self {
            run,
            def,
            data_dir,
            workspace,
            env: Default::default(),
            wiring,
            upstream: Vec::new(),
            vars: Default::default(),
            slurm: None,
            ahead: None,
        }
    }

    pub fn with_ahead(mut self, ahead: Arc<crate::engine::prefetch::Ahead>) -> Self {
        self.ahead = Some(ahead);
        self
    }

    pub fn with_slurm(mut self, link: super::slurm::Link) -> Self {
        self.slurm = Some(link);
        self
    }

    pub fn with_upstream(mut self, upstream: Vec<Upstream>) -> Self {
        self.upstream = upstream;
        self
    }

    fn variables(&self) -> Vec<(String, String)> {
        let r = &self.run;
        [
            ("PIPEDECK_RUN_ID", r.id.to_string()),
            ("PIPEDECK_ATTEMPT", r.attempt.to_string()),
            ("PIPEDECK_SERVICE", r.service.clone()),
            ("PIPEDECK_COMMIT", r.commit_sha.clone()),
            ("PIPEDECK_COMMIT_MESSAGE", r.commit_message.clone()),
            ("PIPEDECK_AUTHOR", r.author.clone()),
            ("PIPEDECK_BRANCH", r.branch.clone()),
            ("PIPEDECK_TAG", r.tag.clone().unwrap_or_default()),
            ("PIPEDECK_RUN_TYPE", r.run_type.to_string()),
            ("PIPEDECK_TRIGGER", r.trigger.to_string()),
            ("PIPEDECK_TRIGGERED_BY", r.triggered_by.clone()),
            (
                "PIPEDECK_WORKSPACE",
                self.workspace.to_string_lossy().into_owned(),
            ),
            (
                "PIPEDECK_DATA_DIR",
                self.data_dir.to_string_lossy().into_owned(),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .chain(outputs::upstream_vars(&self.upstream))
        // A pull request's run: its number and its preview environment.
        .chain(self.def.pull_request.into_iter().flat_map(|n| {
            [
                ("PIPEDECK_PR".to_string(), n.to_string()),
                ("PIPEDECK_PREVIEW_ENV".to_string(), format!("preview-{n}")),
            ]
        }))
        .collect()
    }
}

impl CommandExecutor {
    /// One attempt as a local process.
    async fn local(
        &self,
        work: &Command,
        env: &Arc<Env>,
        extra_env: &[(String, String)],
        hold_slot: bool,
        ctx: &mut UnitCtx,
    ) -> (process::Outcome, i64) {
        let spec = ProcSpec {
            command: work.run.clone(),
            argv: None,
            cwd: self.workspace.clone(),
            env: env.clone(),
            extra_env: extra_env.to_vec(),
            kill_grace: work.kill_grace,
            interrupt_first: false,
            timeout: work.timeout,
            hold_slot,
        };
        process::run(spec, ctx).await
    }
}

impl Executor for CommandExecutor {
    type Work = Work;
    type PrepareError = PrepareError;

    /// A Slurm job waits in the cluster's queue: it says itself when it starts.
    fn queues_elsewhere(&self, work: &Work) -> bool {
        matches!(work, Work::Command(c) if c.slurm.is_some()) && self.slurm.is_some()
    }

    /// The workspace at the run's commit, the secrets read, the variables set.
    async fn prepare(&self) -> Result<Vec<String>, PrepareError> {
        let (def, data_dir, ws, sha) = (
            self.def.clone(),
            self.data_dir.clone(),
            self.workspace.clone(),
            self.run.commit_sha.clone(),
        );
        let taken = match &self.ahead {
            Some(ahead) => ahead.take(&def.name, &sha, &ws).await,
            None => false,
        };
        if !taken {
            tokio::task::spawn_blocking(move || {
                let repo = workspace::ensure_repo(&def, &data_dir)?;
                workspace::checkout(&repo, &sha, &ws)
            })
            .await??;
        }
        let mut secrets = Vec::new();
        let mut env = Vec::new();
        for secret in &self.def.secrets {
            let v = secret.resolve()?;
            env.push((secret.name.clone(), v.clone()));
            secrets.push(v);
        }
        env.extend(self.variables());
        let dir = outputs::file_for(&self.data_dir, self.run.id, 0);
        if let Some(dir) = dir.parent() {
            std::fs::create_dir_all(dir).map_err(PrepareError::Outputs)?;
        }
        let pairs = Env::new(&env).map_err(PrepareError::Env)?;
        // `prepare` runs once per walk; a second call keeps the first environment.
        let _ = self.env.set(Arc::new(pairs));
        let _ = self.vars.set(Arc::new(env));
        Ok(secrets)
    }

    async fn run(&self, work: &Work, ctx: UnitCtx) -> Finished {
        let work = match work {
            Work::Command(c) => c,
            Work::Http(check) => return super::http::run(check, ctx).await,
            Work::Pack(globs) => return self.pack(globs, ctx).await,
        };
        let Some(env) = self.env.get() else {
            return Finished {
                outcome: Outcome::Failed("internal error: the run was not prepared".into()),
                exit_code: None,
                ended_at: crate::domain::now_ms(),
            };
        };
        // The unit creates the file if it has outputs (its folder is made in `prepare`).
        let file = outputs::file_for(&self.data_dir, self.run.id, ctx.log.step_id);
        let mut extra_env = work.env.clone();
        extra_env.push((outputs::VAR.into(), file.to_string_lossy().into_owned()));
        extra_env.extend(self.wiring.inputs(work.row));
        let masker = ctx.log.masker.clone();
        let mut ctx = ctx;
        let attempts = work.retries + 1;
        let mut attempt = 1;
        let mut detail = None;
        let (outcome, ended_at) = loop {
            let (outcome, ended_at) = match (&work.slurm, &self.slurm) {
                (Some(job), Some(link)) => {
                    let vars = self.vars.get().map(|v| v.as_slice()).unwrap_or_default();
                    let spec = super::slurm::JobSpec {
                        job,
                        command: &work.run,
                        cwd: self.workspace.clone(),
                        vars: vars.iter().chain(&extra_env).cloned().collect(),
                        kill_grace: work.kill_grace,
                        interrupt_first: false,
                        timeout: work.timeout,
                        hold_slot: attempt < attempts,
                        attempt,
                    };
                    let end = super::slurm::run(spec, &mut ctx, link).await;
                    detail = end.detail;
                    (end.outcome, end.ended_at)
                }
                (Some(_), None) => (
                    process::Outcome::Error("internal error: no Slurm link for a Slurm job".into()),
                    crate::domain::now_ms(),
                ),
                (None, _) => {
                    self.local(work, env, &extra_env, attempt < attempts, &mut ctx)
                        .await
                }
            };
            let failed = matches!(
                outcome,
                process::Outcome::Exited(_)
                    | process::Outcome::Signalled(_)
                    | process::Outcome::TimedOut(_)
            ) && !outcome.success();
            if !failed || attempt == attempts {
                if attempt > 1 {
                    let how = if outcome.success() {
                        "succeeded"
                    } else {
                        "failed"
                    };
                    note(&ctx.log, &format!("attempt {attempt} of {attempts} {how}"));
                }
                break (outcome, ended_at);
            }
            // A failed attempt's outputs are not kept; its output stays in the log,
            // after a line that says why the step runs again.
            if file.exists() {
                let _ = std::fs::remove_file(&file);
            }
            let wait = backoff(attempt);
            note(
                &ctx.log,
                &format!(
                    "attempt {attempt} of {attempts} failed ({}): trying again in {}",
                    outcome.describe(),
                    crate::config::format_ms(wait.as_millis() as u64)
                ),
            );
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = ctx.stop.cancelled() => break (process::Outcome::Stopped, crate::domain::now_ms()),
            }
            attempt += 1;
        };
        let mut end = finished(outcome, ended_at);
        if let (Outcome::Failed(why), Some(d)) = (&mut end.outcome, detail) {
            why.push_str(&format!(" ({d})"));
        }
        let written = outputs::read(&file);
        if let Ok(Some(_)) | Err(_) = &written {
            // Read or not, it is of no more use.
            let _ = std::fs::remove_file(&file);
        }
        if matches!(end.outcome, Outcome::Succeeded { .. }) {
            end.outcome = match written {
                Ok(None) => end.outcome,
                Ok(Some(values)) if values.is_empty() => end.outcome,
                Ok(Some(values)) => {
                    // Shown masked; later units get the values themselves.
                    let shown = values
                        .iter()
                        .map(|(k, v)| {
                            let m = masker.apply(v.as_bytes());
                            (k.clone(), String::from_utf8_lossy(&m).into_owned().into())
                        })
                        .collect::<serde_json::Map<_, _>>();
                    self.wiring.record(work.row, values);
                    Outcome::Succeeded {
                        outputs: Some(serde_json::Value::Object(shown)),
                    }
                }
                Err(e) => Outcome::Failed(e.to_string()),
            };
        }
        end
    }
}

impl CommandExecutor {
    /// Packs the build's artifact; its digest and size are the row's outputs.
    async fn pack(&self, globs: &[String], ctx: UnitCtx) -> Finished {
        let store = crate::store::artifacts::ArtifactStore::new(&self.data_dir);
        let (ws, globs2) = (self.workspace.clone(), globs.to_vec());
        let packed = tokio::task::spawn_blocking(move || store.pack(&ws, &globs2)).await;
        let ended_at = crate::domain::now_ms();
        let outcome = match packed {
            Ok(Ok(p)) => {
                note(
                    &ctx.log,
                    &format!(
                        "packed {} files ({} bytes) as {}{}",
                        p.files,
                        p.size,
                        p.digest,
                        if p.shared {
                            ": an identical artifact was stored already"
                        } else {
                            ""
                        }
                    ),
                );
                Outcome::Succeeded {
                    outputs: Some(serde_json::json!({
                        "digest": p.digest,
                        "size": p.size.to_string(),
                    })),
                }
            }
            Ok(Err(e)) => {
                note(&ctx.log, &e.to_string());
                Outcome::Failed(e.to_string())
            }
            Err(e) => Outcome::Failed(format!("packing the artifact: {e}")),
        };
        Finished {
            outcome,
            exit_code: None,
            ended_at,
        }
    }
}

/// A process's end as the scheduler takes it.
pub(crate) fn finished(outcome: process::Outcome, ended_at: i64) -> Finished {
    let exit_code = outcome.exit_code();
    let outcome = if outcome.success() {
        Outcome::Succeeded { outputs: None }
    } else if outcome == process::Outcome::Stopped {
        Outcome::Stopped
    } else {
        Outcome::Failed(outcome.describe())
    };
    Finished {
        outcome,
        exit_code,
        ended_at,
    }
}
