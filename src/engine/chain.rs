//! Chained pipelines (SP-7a): a client of the engine like any other. It follows the
//! committed events; when a service run ends (or passes its deploy to an environment)
//! the way another service's `after` names, it starts that service's run through the
//! engine's own trigger path, recorded as triggered by `chain`, with the upstream
//! runs' ids, commits and outputs. It never sits on a scheduler's path: the runner
//! publishes and moves on; this task reads at its own pace.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::{Caller, EngineHandle, TriggerRequest};
use crate::config::{ChainOn, Project};
use crate::domain::chain::Upstream;
use crate::domain::command::{Request, Response};
use crate::domain::{Event, RunInfo, RunKind, RunStatus, StepInfo};

/// Who chained runs are triggered by.
pub const CHAIN_CALLER: &str = "chain";

/// One upstream happening: service, what, where, which run.
struct Happened<'a> {
    service: &'a str,
    on: ChainOn,
    environment: Option<&'a str>,
    run_id: i64,
}

struct Watch {
    h: EngineHandle,
    project: Arc<Project>,
    /// Service runs seen, by id: their service.
    services: HashMap<i64, String>,
    /// Per downstream service with `all`: per `after` entry, the run that satisfied it
    /// since its last chained run.
    pending: HashMap<String, Vec<Option<i64>>>,
    /// What already counted, per run (a run counts once per happening).
    counted: HashMap<i64, HashSet<(ChainOn, Option<String>)>>,
}

/// Whether any service of `project` is chained.
pub(crate) fn any(project: &Project) -> bool {
    project.services.values().any(|s| !s.chain.after.is_empty())
}

/// Follows `rx` until `shutdown`, starting from what the `all` chains waited with
/// when the engine last stopped (`saved`, as stored: per downstream service, the
/// satisfied `after` entries by position).
pub(crate) async fn watch(
    h: EngineHandle,
    project: Arc<Project>,
    saved: HashMap<String, Vec<(usize, i64)>>,
    mut rx: broadcast::Receiver<Event>,
    shutdown: CancellationToken,
) {
    let pending = restore(&project, saved);
    let mut w = Watch {
        h,
        project,
        services: HashMap::new(),
        pending,
        counted: HashMap::new(),
    };
    loop {
        let ev = tokio::select! {
            ev = rx.recv() => ev,
            _ = shutdown.cancelled() => return,
        };
        match ev {
            Ok(Event::Run { run }) => w.run(&run).await,
            Ok(Event::Step { step }) => w.step(&step).await,
            Ok(_) => {}
            Err(broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!("chains: {n} events were missed; a chained run may not start")
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

impl Watch {
    async fn run(&mut self, run: &RunInfo) {
        if run.kind != RunKind::Service {
            return;
        }
        self.services.insert(run.id, run.service.clone());
        let on = match run.status {
            RunStatus::Succeeded => ChainOn::Succeeded,
            RunStatus::Failed => ChainOn::Failed,
            s if s.is_terminal() => {
                self.forget(run.id);
                return;
            }
            _ => return,
        };
        self.happened(Happened {
            service: &run.service,
            on,
            environment: None,
            run_id: run.id,
        })
        .await;
        self.forget(run.id);
    }

    /// An ended run no longer deploys. What it counted for stays (a few bytes a run),
    /// so that its end published again never counts twice.
    fn forget(&mut self, run_id: i64) {
        self.services.remove(&run_id);
    }

    /// A deploy's last unit (its last check, or the deploy) succeeded: the service
    /// deployed there.
    async fn step(&mut self, step: &StepInfo) {
        let Some(service) = self.services.get(&step.run_id).cloned() else {
            return;
        };
        let Some(svc) = self.project.service(&service) else {
            return;
        };
        if let Some(env) = crate::engine::plan::deployed_env(svc, step).map(String::from) {
            self.happened(Happened {
                service: &service,
                on: ChainOn::Deployed,
                environment: Some(&env),
                run_id: step.run_id,
            })
            .await;
        }
    }

    async fn happened(&mut self, what: Happened<'_>) {
        let key = (what.on, what.environment.map(String::from));
        if !self.counted.entry(what.run_id).or_default().insert(key) {
            return;
        }
        let project = self.project.clone();
        for (name, svc) in &project.services {
            for (i, cond) in svc.chain.after.iter().enumerate() {
                if cond.service != what.service
                    || cond.on != what.on
                    || cond.environment.as_deref() != what.environment
                {
                    continue;
                }
                if !svc.chain.all {
                    self.start(name, vec![what.run_id]).await;
                    continue;
                }
                let slots = self
                    .pending
                    .entry(name.clone())
                    .or_insert_with(|| vec![None; svc.chain.after.len()]);
                slots[i] = Some(what.run_id);
                if slots.iter().all(Option::is_some) {
                    let mut ids: Vec<i64> = slots.drain(..).flatten().collect();
                    ids.dedup();
                    self.pending.remove(name);
                    // The run's creation clears what was stored, in its commit; a
                    // start refused clears it here.
                    if !self.start(name, ids).await {
                        self.save(name, Vec::new()).await;
                    }
                } else {
                    let slots = slots.clone();
                    self.save(name, slots).await;
                }
            }
        }
    }

    /// Stores what `downstream` waits with, so that a restart keeps it.
    async fn save(&self, downstream: &str, slots: Vec<Option<i64>>) {
        if let Err(e) = self.h.save_chain_pending(downstream, slots).await {
            tracing::error!("chains: cannot store what {downstream} waits for: {e}");
        }
    }

    /// Starts `service` after the runs `ids`, as a client would; false if it did not.
    async fn start(&self, service: &str, ids: Vec<i64>) -> bool {
        let caller = Caller::new(CHAIN_CALLER);
        let mut upstream = Vec::new();
        for id in &ids {
            match self
                .h
                .handle(&caller, Request::Detail { run_id: *id })
                .await
            {
                Ok(Response::Detail(d)) => upstream.push(Upstream {
                    run_id: d.run.id,
                    service: d.run.service.clone(),
                    commit_sha: d.run.commit_sha.clone(),
                    branch: d.run.branch.clone(),
                    outputs: outputs_of(&d.steps),
                }),
                other => {
                    tracing::error!("chains: cannot read run {id} to start {service}: {other:?}");
                    return false;
                }
            }
        }
        let req = TriggerRequest {
            service: service.to_string(),
            branch: None,
            commit: None,
            allow_older: false,
        };
        match self.h.start_service(&caller, req, upstream).await {
            Ok(run) => {
                tracing::info!("chains: run {} of {service} after {ids:?}", run.id);
                true
            }
            Err(e) => {
                tracing::error!("chains: cannot start {service} after {ids:?}: {e}");
                false
            }
        }
    }
}

/// What was stored, for the `all` chains of `project` as it is now: an entry past
/// the end of a service's `after` list (the list was shortened) is dropped.
fn restore(
    project: &Project,
    saved: HashMap<String, Vec<(usize, i64)>>,
) -> HashMap<String, Vec<Option<i64>>> {
    let mut out = HashMap::new();
    for (name, filled) in saved {
        let Some(svc) = project.service(&name).filter(|s| s.chain.all) else {
            continue;
        };
        let mut slots = vec![None; svc.chain.after.len()];
        for (i, run) in filled {
            if let Some(s) = slots.get_mut(i) {
                *s = Some(run);
            }
        }
        if slots.iter().any(Option::is_some) {
            out.insert(name, slots);
        }
    }
    out
}

/// A run's outputs as stored (masked), by step name.
fn outputs_of(steps: &[StepInfo]) -> BTreeMap<String, BTreeMap<String, String>> {
    steps
        .iter()
        .filter_map(|s| {
            let serde_json::Value::Object(o) = s.outputs.as_ref()? else {
                return None;
            };
            let values: BTreeMap<String, String> = o
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect();
            (!values.is_empty()).then(|| (s.name.clone(), values))
        })
        .collect()
}
