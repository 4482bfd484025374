//! Triggers (SP-7): what starts a run besides a person. Each is a client of the
//! engine like any other: it asks for a run through [`EngineHandle::fire`], which
//! checks the service as a manual trigger does, pins the definition and has the
//! runner create the run and store the fire in one commit, so a (service, source,
//! key) starts one run ever, across restarts. The caller it names (`trigger:push`,
//! `hook:github`, `schedule:nightly`) is who triggered the run, in its audit log.
//!
//! - [`git`]: a service's refs compared (`git ls-remote`) at its poll interval, and
//!   at once when a local repository's refs change; missed pushes fire on start.
//! - [`hooks`]: signed GitHub and GitLab webhooks (pushes, tags, pull requests).
//! - [`schedule`]: cron schedules, on an injectable clock.
//! - [`drift`]: infra pipelines' drift schedules (plan-only checks), on the same clock.

pub mod board;
pub mod clock;
pub mod drift;
mod git;
pub mod hooks;
mod ignored;
mod pull;
pub mod schedule;

use std::sync::Arc;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::runner::{Msg, TriggerMsg};
use super::{EngineError, EngineHandle, Result, workspace};
use crate::config::{Project, Service};
use crate::domain::deploy::short_sha;
use crate::domain::{RunInfo, RunSpec, RunType, Trigger};
use crate::store::NewRun;
use crate::store::triggers::FireKey;
pub(crate) use ignored::Ignored;

pub use board::{Board, TriggerInfo, TriggerStatus};
pub use clock::{Clock, ManualClock, SystemClock};

/// What a trigger asks for: one run of a service, once per key.
#[derive(Debug, Clone)]
pub(crate) struct Fire {
    pub service: String,
    /// The trigger as listed (`push`, `tag`, `pull_request`, `schedule:NAME`).
    pub trigger: String,
    pub source: String,
    pub key: String,
    /// The commit; `None`: the head of `branch`.
    pub commit: Option<String>,
    pub branch: String,
    pub tag: Option<String>,
    pub kind: Trigger,
    /// Who fired it (`trigger:push`, `hook:github`, `schedule:NAME`).
    pub by: String,
    /// A pull request's run.
    pub pull: Option<pull::PullRun>,
}

impl Fire {
    pub fn fire_key(&self) -> FireKey {
        FireKey {
            service: self.service.clone(),
            trigger: self.trigger.clone(),
            source: self.source.clone(),
            key: self.key.clone(),
        }
    }
}

/// A push to ref `r` (a head or a tag) at `sha`, if the service's globs match it
/// (else why not); `by(trigger)` names who fired it.
pub(crate) fn ref_fire(
    svc: &Service,
    r: &str,
    sha: &str,
    by: &dyn Fn(&str) -> String,
) -> std::result::Result<Fire, Ignored> {
    use crate::config::triggers::matches;
    let (branch, tag, trigger, kind) = if let Some(b) = r.strip_prefix("refs/heads/") {
        if !matches(&svc.branches, b) {
            return Err(Ignored::Branch {
                branch: b.into(),
                service: svc.name.clone(),
            });
        }
        (b.to_string(), None, "push", Trigger::Push)
    } else if let Some(t) = r.strip_prefix("refs/tags/") {
        if !matches(&svc.tags, t) {
            return Err(Ignored::Tag {
                tag: t.into(),
                service: svc.name.clone(),
            });
        }
        (
            svc.default_branch.clone(),
            Some(t.to_string()),
            "tag",
            Trigger::Tag,
        )
    } else {
        return Err(Ignored::NotARef(r.into()));
    };
    Ok(Fire {
        service: svc.name.clone(),
        trigger: trigger.into(),
        source: r.to_string(),
        key: sha.to_string(),
        commit: Some(sha.to_string()),
        branch,
        tag,
        kind,
        by: by(trigger),
        pull: None,
    })
}

/// Why a service's triggers do not fire, if they do not.
pub(crate) fn stopped_because(svc: &Service) -> Option<String> {
    (!svc.pipelines_enabled).then(|| {
        format!(
            "pipelines are disabled for service {} (pipelines_enabled = false): its triggers \
             do not fire",
            svc.name
        )
    })
}

impl EngineHandle {
    /// Starts the run `f` asks for, unless its key started one before (`None`).
    pub(crate) async fn fire(&self, f: Fire) -> Result<Option<RunInfo>> {
        use crate::engine::metrics::counters::{TriggerOutcome, TriggerSource};
        let source = if f.by.starts_with("hook:") {
            TriggerSource::Webhook
        } else if f.by.starts_with("schedule:") {
            TriggerSource::Cron
        } else {
            TriggerSource::GitPoll
        };
        let fired = self.fire_once(f).await;
        let outcome = match &fired {
            Ok(Some(_)) => TriggerOutcome::Started,
            Ok(None) => TriggerOutcome::Skipped,
            Err(_) => TriggerOutcome::Failed,
        };
        self.metrics().trigger(source, outcome);
        fired
    }

    async fn fire_once(&self, f: Fire) -> Result<Option<RunInfo>> {
        let project = self.project.get();
        let svc = project
            .service(&f.service)
            .ok_or_else(|| EngineError::NotFound(format!("no service `{}`", f.service)))?;
        if let Some(why) = stopped_because(svc) {
            return Err(EngineError::Invalid(why));
        }
        let def = match &f.pull {
            Some(p) => p.definition(svc, &project)?,
            None => svc.clone(),
        };
        let (def2, data_dir, branch, commit) = (
            svc.clone(),
            self.data_dir().to_path_buf(),
            f.branch.clone(),
            f.commit.clone(),
        );
        let info = tokio::task::spawn_blocking(move || {
            let repo = workspace::ensure_repo(&def2, &data_dir)?;
            workspace::resolve_commit(&repo, &branch, commit.as_deref())
        })
        .await
        .map_err(|e| EngineError::Internal(e.to_string()))?
        .map_err(|e| EngineError::Invalid(e.to_string()))?;
        let run_type = if f.pull.is_some() {
            RunType::Preview
        } else {
            RunType::Production
        };
        // Production runs keep the rule a person's trigger keeps: never older over
        // newer without asking.
        if run_type == RunType::Production {
            let what = format!("{} of {} at {}", f.trigger, svc.name, short_sha(&info.sha));
            self.goes_back(svc, &info.sha, &what, false).await?;
        }
        let new = NewRun {
            spec: RunSpec::Service {
                service: svc.name.clone(),
                branch: f.branch.clone(),
                tag: f.tag.clone(),
                commit: info.sha,
            },
            run_type,
            trigger: f.kind,
            commit_message: info.message,
            author: info.author,
            triggered_by: f.by.clone(),
            rerun_of: None,
            attempt: 1,
            allow_older: false,
            definition: serde_json::to_string(&def)
                .map_err(|e| EngineError::Internal(e.to_string()))?,
            upstream: Vec::new(),
        };
        let key = f.fire_key();
        self.runner(|reply| {
            Msg::Trigger(TriggerMsg::Fire {
                new: Box::new(new),
                key,
                reply,
            })
        })
        .await
    }

    /// What the watchers of `service` last saw.
    pub(crate) async fn seen(
        &self,
        service: &str,
    ) -> Result<std::collections::BTreeMap<String, String>> {
        let s = service.to_string();
        self.runner(|r| Msg::Trigger(TriggerMsg::Seen(s, r))).await
    }

    /// Sets or forgets what was seen.
    pub(crate) async fn set_seen(
        &self,
        service: &str,
        changes: Vec<(String, Option<String>)>,
    ) -> Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        let service = service.to_string();
        self.runner(|reply| {
            Msg::Trigger(TriggerMsg::SetSeen {
                service,
                changes,
                reply,
            })
        })
        .await
    }
}

/// Starts every trigger of `project`: a git watcher per service with `branches` or
/// `tags`, a task per schedule. Their statuses go on the returned board.
pub(crate) fn start(
    h: &EngineHandle,
    project: &Project,
    clock: Arc<dyn Clock>,
    stop: CancellationToken,
) -> Board {
    let mut board = Board::default();
    for svc in project.services.values() {
        if !svc.branches.is_empty() || !svc.tags.is_empty() {
            let (tx, rx) = watch::channel(TriggerStatus::default());
            board.add_git(svc, rx);
            git::spawn(h.clone(), svc.clone(), tx, stop.clone());
        }
        if svc.pull_requests != crate::config::PullRequestLevel::Off
            || svc.triggers.webhook.is_some()
        {
            board.add_webhook(svc);
        }
        for s in &svc.triggers.schedules {
            let (tx, rx) = watch::channel(TriggerStatus::default());
            board.add_schedule(svc, s, rx);
            schedule::spawn(
                h.clone(),
                svc.name.clone(),
                s.clone(),
                clock.clone(),
                tx,
                stop.clone(),
            );
        }
    }
    for p in project.infra.values() {
        if let Some(s) = &p.drift {
            let (tx, rx) = watch::channel(TriggerStatus::default());
            board.add_drift(&p.name, s, rx);
            drift::spawn(
                h.clone(),
                p.name.clone(),
                s.clone(),
                clock.clone(),
                tx,
                stop.clone(),
            );
        }
    }
    board
}
