//! Where each trigger's task publishes its status (one owner each: the task), read
//! by `pipedeck triggers` and the dashboard.

use tokio::sync::watch;

use crate::config::triggers::Schedule;
use crate::config::{Project, PullRequestLevel, Service};
use crate::domain::Millis;
pub use crate::domain::trigger::{LastFired, TriggerInfo};
use crate::store::triggers::LastFire;

/// What a trigger's task last found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TriggerStatus {
    pub last_error: Option<String>,
    pub next_fire: Option<Millis>,
    pub checked_at: Option<Millis>,
}

struct Entry {
    service: String,
    trigger: String,
    watches: String,
    status: Option<watch::Receiver<TriggerStatus>>,
}

/// Every trigger the engine started with.
#[derive(Default)]
pub struct Board {
    entries: Vec<Entry>,
}

impl Board {
    pub(super) fn add_git(&mut self, svc: &Service, rx: watch::Receiver<TriggerStatus>) {
        let repo = if svc.repo.is_empty() {
            format!("the seeded repository of {}", svc.name)
        } else {
            svc.repo.clone()
        };
        for (trigger, globs) in [("push", &svc.branches), ("tag", &svc.tags)] {
            if globs.is_empty() {
                continue;
            }
            let what = if trigger == "push" {
                "branches"
            } else {
                "tags"
            };
            self.entries.push(Entry {
                service: svc.name.clone(),
                trigger: trigger.into(),
                watches: format!("{repo}: {what} {}", globs.join(", ")),
                status: Some(rx.clone()),
            });
        }
    }

    pub(super) fn add_webhook(&mut self, svc: &Service) {
        let repo = svc
            .triggers
            .webhook
            .as_ref()
            .map(|w| format!("webhooks of {}", w.repository))
            .unwrap_or_else(|| "webhooks (no [services.NAME.webhook]: none accepted)".into());
        let level = match svc.pull_requests {
            PullRequestLevel::Off => "pull requests ignored",
            PullRequestLevel::Build => "pull requests: build",
            PullRequestLevel::Deploy => "pull requests: build and preview",
        };
        self.entries.push(Entry {
            service: svc.name.clone(),
            trigger: "pull_request".into(),
            watches: format!("{repo}; {level}"),
            status: None,
        });
    }

    pub(super) fn add_schedule(
        &mut self,
        svc: &Service,
        s: &Schedule,
        rx: watch::Receiver<TriggerStatus>,
    ) {
        self.entries.push(Entry {
            service: svc.name.clone(),
            trigger: format!("schedule:{}", s.name),
            watches: format!(
                "cron \"{}\" ({}) on {}, catch-up {:?}",
                s.cron, s.timezone, s.branch, s.catch_up
            )
            .replace("Skip", "skip")
            .replace("Once", "once"),
            status: Some(rx),
        });
    }

    /// Each trigger as shown, with the project in force (which says whether its
    /// service's pipelines are disabled) and the stored fires.
    /// An infra pipeline's drift schedule (its "service" is the pipeline).
    pub(super) fn add_drift(
        &mut self,
        pipeline: &str,
        s: &crate::config::drift::DriftSchedule,
        rx: watch::Receiver<TriggerStatus>,
    ) {
        self.entries.push(Entry {
            service: pipeline.to_string(),
            trigger: super::drift::TRIGGER.into(),
            watches: format!("drift of infra {pipeline}: {} (plan only)", s.describe()),
            status: Some(rx),
        });
    }

    pub fn infos(&self, project: &Project, fires: &[LastFire]) -> Vec<TriggerInfo> {
        self.entries
            .iter()
            .map(|e| {
                let status = e
                    .status
                    .as_ref()
                    .map(|rx| rx.borrow().clone())
                    .unwrap_or_default();
                let stopped = match project.service(&e.service) {
                    _ if e.trigger == super::drift::TRIGGER => (!project
                        .infra
                        .contains_key(&e.service))
                    .then(|| format!("infra {} is no longer in the project file", e.service)),
                    Some(svc) => super::stopped_because(svc),
                    None => Some(format!(
                        "service {} is no longer in the project file",
                        e.service
                    )),
                };
                let last_fired = fires
                    .iter()
                    .find(|f| f.service == e.service && f.trigger == e.trigger)
                    .map(|f| LastFired {
                        run_id: f.run_id,
                        at: f.at,
                    });
                TriggerInfo {
                    service: e.service.clone(),
                    trigger: e.trigger.clone(),
                    watches: e.watches.clone(),
                    next_fire: if stopped.is_some() {
                        None
                    } else {
                        status.next_fire
                    },
                    stopped,
                    last_fired,
                    last_error: status.last_error,
                    checked_at: status.checked_at,
                }
            })
            .collect()
    }
}
