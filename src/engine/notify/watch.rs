//! From committed events to outbound calls: which commit status or notification each
//! happening makes. Nothing is awaited but the events: calls go to bounded queues
//! with `try_send`, so a slow API never holds this task up, let alone a run.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde_json::json;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use super::Delivery;
use crate::config::outbound::{NotifyEvent, NotifyFormat, StatusReporting};
use crate::config::{Project, Service};
use crate::domain::{Event, GateInfo, GateStatus, RunInfo, RunKind, RunStatus, Stage, StepInfo};
use crate::domain::{StepStatus, deploy::short_sha};
use crate::engine::plan::deployed_env;

/// A commit status's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Pending,
    Success,
    Failure,
    Error,
}

impl State {
    fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Success => "success",
            State::Failure => "failure",
            State::Error => "error",
        }
    }
}

/// What this task knows of a live service run.
struct Track {
    run: RunInfo,
    /// Build steps that succeeded.
    built: usize,
    /// Contexts (`build`, `deploy/<env>`) told pending and not yet settled.
    open: HashSet<String>,
}

struct Watch {
    project: Arc<Project>,
    statuses: mpsc::Sender<Delivery>,
    notes: mpsc::Sender<Delivery>,
    runs: HashMap<i64, Track>,
    gates: HashSet<i64>,
}

pub(super) async fn watch(
    project: Arc<Project>,
    mut events: broadcast::Receiver<Event>,
    statuses: mpsc::Sender<Delivery>,
    notes: mpsc::Sender<Delivery>,
    shutdown: CancellationToken,
) {
    let mut w = Watch {
        project,
        statuses,
        notes,
        runs: HashMap::new(),
        gates: HashSet::new(),
    };
    loop {
        let ev = tokio::select! {
            ev = events.recv() => ev,
            _ = shutdown.cancelled() => return,
        };
        match ev {
            Ok(Event::Run { run }) => w.run(run),
            Ok(Event::Step { step }) => w.step(&step),
            Ok(Event::Gate { gate }) => w.gate(&gate),
            Ok(Event::Drift { report }) => w.drift(&report),
            Ok(Event::Log { .. } | Event::Release { .. } | Event::Station { .. }) => {}
            Err(broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!("outbound: {n} events were missed; statuses may lag")
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

impl Watch {
    fn service(&self, name: &str) -> Option<&Service> {
        self.project.service(name)
    }

    fn run(&mut self, run: RunInfo) {
        if run.kind != RunKind::Service {
            return;
        }
        let id = run.id;
        match self.runs.entry(id) {
            std::collections::hash_map::Entry::Occupied(mut t) => t.get_mut().run = run.clone(),
            std::collections::hash_map::Entry::Vacant(v) => {
                if run.status.is_terminal() {
                    return;
                }
                v.insert(Track {
                    run: run.clone(),
                    built: 0,
                    open: HashSet::new(),
                });
                self.status(id, "build", State::Pending, "building");
            }
        }
        if !run.status.is_terminal() {
            return;
        }
        // Whatever is still pending ends with the run.
        let open: Vec<String> = self
            .runs
            .get(&id)
            .map(|t| t.open.iter().cloned().collect())
            .unwrap_or_default();
        let why = run
            .reason
            .clone()
            .unwrap_or_else(|| format!("run {}", run.status));
        for ctx in open {
            let state = match run.status {
                RunStatus::Succeeded => State::Success,
                RunStatus::Failed => State::Failure,
                _ => State::Error,
            };
            self.status(id, &ctx, state, &why);
        }
        match run.status {
            RunStatus::Succeeded => self.notify(&run, NotifyEvent::RunSucceeded, None),
            RunStatus::Failed => self.notify(&run, NotifyEvent::RunFailed, None),
            _ => {}
        }
        self.runs.remove(&id);
    }

    fn step(&mut self, step: &StepInfo) {
        let Some(t) = self.runs.get(&step.run_id) else {
            return;
        };
        let run = t.run.clone();
        let Some(svc) = self.service(&run.service).cloned() else {
            return;
        };
        match (step.stage, step.status) {
            (Stage::Build, StepStatus::Succeeded) => {
                let built = self.runs.get_mut(&run.id).map_or(0, |t| {
                    t.built += 1;
                    t.built
                });
                if built == svc.steps.len() {
                    self.status(run.id, "build", State::Success, "built");
                }
            }
            (Stage::Build, StepStatus::Failed) => {
                let why = format!("{} failed", step.path());
                self.status(run.id, "build", State::Failure, &why);
            }
            (Stage::Deploy, StepStatus::Running) => {
                let ctx = format!("deploy/{}", step.name);
                self.status(run.id, &ctx, State::Pending, "deploying");
            }
            (Stage::Deploy | Stage::Verify, StepStatus::Failed) => {
                let env = match step.stage {
                    Stage::Deploy => step.name.as_str(),
                    _ => svc
                        .environments
                        .iter()
                        .find(|e| step.name.starts_with(&format!("{}.", e.name)))
                        .map_or(step.name.as_str(), |e| e.name.as_str()),
                };
                let why = step
                    .reason
                    .clone()
                    .unwrap_or_else(|| format!("{} failed", step.path()));
                self.status(run.id, &format!("deploy/{env}"), State::Failure, &why);
            }
            _ => {}
        }
        if let Some(env) = deployed_env(&svc, step) {
            let ctx = format!("deploy/{env}");
            let what = format!("deployed {}", short_sha(&run.commit_sha));
            self.status(run.id, &ctx, State::Success, &what);
            self.notify(&run, NotifyEvent::Deployed, Some(env));
        }
    }

    fn gate(&mut self, gate: &GateInfo) {
        if gate.status != GateStatus::Waiting || !self.gates.insert(gate.id) {
            return;
        }
        if let Some(t) = self.runs.get(&gate.run_id) {
            let run = t.run.clone();
            self.notify(&run, NotifyEvent::GateWaiting, Some(&gate.env));
        }
    }

    /// A drift check stored: drifted resources are notified.
    fn drift(&self, report: &crate::domain::drift::DriftReport) {
        for d in super::drift::deliveries(&self.project, report) {
            if let Err(e) = self.notes.try_send(d) {
                tracing::warn!("outbound: the notification queue is full, one dropped: {e}");
            }
        }
    }

    /// Queues a commit status for run `id`'s context `ctx` (`build`, `deploy/<env>`).
    fn status(&mut self, id: i64, ctx: &str, state: State, description: &str) {
        let Some(t) = self.runs.get_mut(&id) else {
            return;
        };
        if state == State::Pending {
            if !t.open.insert(ctx.to_string()) {
                return;
            }
        } else if !t.open.remove(ctx) {
            return;
        }
        let run = t.run.clone();
        let Some(sr) = self
            .service(&run.service)
            .and_then(|s| s.status_reporting.clone())
        else {
            return;
        };
        let Some(d) = status_delivery(&self.project, &run, &sr, ctx, state, description) else {
            return;
        };
        if let Err(e) = self.statuses.try_send(d) {
            tracing::warn!("outbound: the status queue is full, one status dropped: {e}");
        }
    }

    fn notify(&self, run: &RunInfo, event: NotifyEvent, env: Option<&str>) {
        for (n, url) in super::listening(&self.project, event, &run.service) {
            let body = payload(n.format, event, run, env);
            let d = Delivery {
                run_id: run.id,
                what: format!("notify {}", n.name),
                url: url.clone(),
                bearer: None,
                body,
                retry: n.retry,
                secrets: vec![url],
            };
            if let Err(e) = self.notes.try_send(d) {
                tracing::warn!("outbound: the notification queue is full, one dropped: {e}");
            }
        }
    }
}

fn status_delivery(
    project: &Project,
    run: &RunInfo,
    sr: &StatusReporting,
    ctx: &str,
    state: State,
    description: &str,
) -> Option<Delivery> {
    let svc = project.service(&run.service)?;
    let token = match svc
        .secrets
        .iter()
        .find(|s| s.name == sr.token_secret)?
        .resolve()
    {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!("status for run {}: {e}", run.id);
            return None;
        }
    };
    let context = format!("{}/{ctx}", sr.context);
    let mut body = json!({
        "state": state.as_str(),
        "context": context,
        // GitHub keeps 140 characters.
        "description": description.chars().take(140).collect::<String>(),
    });
    if let Some(u) = &sr.target_url {
        body["target_url"] = json!(u.replace("{run}", &run.id.to_string()));
    }
    Some(Delivery {
        run_id: run.id,
        what: format!("status {context}"),
        url: format!(
            "{}/repos/{}/{}/statuses/{}",
            sr.api, sr.owner, sr.repo, run.commit_sha
        ),
        bearer: Some(token.clone()),
        body,
        retry: sr.retry,
        secrets: vec![token],
    })
}

/// The words a notification says.
pub(crate) fn text(event: NotifyEvent, run: &RunInfo, env: Option<&str>) -> String {
    let who = format!("{} run {}", run.service, run.id);
    let env = env.unwrap_or("");
    match event {
        NotifyEvent::GateWaiting => format!(
            "{who} waits for approval before {env}: pipedeck approve {} {env}",
            run.id
        ),
        NotifyEvent::RunFailed => match &run.reason {
            Some(r) => format!("{who} failed: {r}"),
            None => format!("{who} failed"),
        },
        NotifyEvent::RunSucceeded => format!("{who} succeeded"),
        NotifyEvent::Deployed => {
            format!("{who} deployed {} to {env}", short_sha(&run.commit_sha))
        }
        // Drift is a pipeline's, not a run's: `notify::drift` words it.
        NotifyEvent::Drifted => format!("{who}: drift"),
    }
}

/// The body posted for `event`.
pub(crate) fn payload(
    format: NotifyFormat,
    event: NotifyEvent,
    run: &RunInfo,
    env: Option<&str>,
) -> serde_json::Value {
    let text = text(event, run, env);
    match format {
        NotifyFormat::Slack => json!({ "text": text }),
        NotifyFormat::Json => {
            let mut v = json!({
                "event": event,
                "text": text,
                "run": {
                    "id": run.id,
                    "service": run.service,
                    "status": run.status,
                    "commit": run.commit_sha,
                    "branch": run.branch,
                    "triggered_by": run.triggered_by,
                    "reason": run.reason,
                },
            });
            if let Some(e) = env {
                v["environment"] = json!(e);
            }
            if event == NotifyEvent::GateWaiting {
                v["approve"] = json!(format!("pipedeck approve {} {}", run.id, env.unwrap_or("")));
            }
            v
        }
    }
}
