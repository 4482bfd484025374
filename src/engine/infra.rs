//! One task per infra run (IP-2..IP-7): the environment gate, then the resource DAG —
//! every resource whose dependencies are done starts at once (bounded by the global
//! slots), outputs flow to dependents, a failure stops exactly its downstream set,
//! node gates hold a resource's dependents. Undeploy walks the DAG in reverse.
//! Each resource runs as a stack job: its operations in order (SJ-1), through the
//! `command` driver.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::Shared;
use super::executor::process::{self, LogTarget, Masker, ProcSpec};
use super::plan::command;
use super::runner::Msg;
use crate::config::infra::{InfraProject, Resource, references};
use crate::domain::{GateStatus, RunInfo, RunStatus, Stage, StepInfo, StepStatus, now_ms};

const SHUTDOWN: &str = "the engine shut down";
const CANCELLED: &str = "cancelled by an operator";

/// Sends step changes to the runner.
#[derive(Clone)]
struct Reporter {
    tx: mpsc::Sender<Msg>,
}

impl Reporter {
    async fn step(&self, s: &mut StepInfo, status: StepStatus, reason: Option<String>) {
        self.step_at(s, status, reason, now_ms()).await
    }

    /// As `step`, as of `now` (unix ms): an operation's end is when its process exited.
    async fn step_at(
        &self,
        s: &mut StepInfo,
        status: StepStatus,
        reason: Option<String>,
        now: i64,
    ) {
        s.status = status;
        s.reason = reason;
        if status == StepStatus::Running && s.started_at.is_none() {
            s.started_at = Some(now);
        }
        if status.is_terminal() {
            s.started_at.get_or_insert(now);
            s.ended_at = Some(now);
        }
        let _ = self.tx.send(Msg::Step(s.clone())).await;
    }

    async fn run(&self, run_id: i64, status: RunStatus, reason: Option<String>) {
        let _ = self
            .tx
            .send(Msg::RunStatus {
                run_id,
                status,
                reason,
            })
            .await;
    }

    /// Opens (or finds again) a gate and waits for its decision; `None` on shutdown.
    async fn gate(
        &self,
        run_id: i64,
        key: &str,
        shared: &Shared,
    ) -> Option<crate::domain::GateInfo> {
        let (reply, rx) = oneshot::channel();
        let _ = self
            .tx
            .send(Msg::OpenGate {
                run_id,
                env: key.to_string(),
                policy: Default::default(),
                reply,
            })
            .await;
        tokio::select! {
            g = rx => g.ok(),
            _ = shared.shutdown.cancelled() => None,
        }
    }
}

/// How one resource's stack job ended.
enum Outcome {
    Succeeded,
    Failed,
    Rejected(String),
    Cancelled,
    /// The engine is shutting down while its gate waits: leave it waiting.
    Park,
}

pub(crate) struct InfraDriver {
    run: RunInfo,
    def: InfraProject,
    steps: Vec<StepInfo>,
    shared: Arc<Shared>,
    rep: Reporter,
    cancel: CancellationToken,
}

/// Everything a resource's task needs.
struct Job {
    run: RunInfo,
    env: String,
    project: String,
    resource: Resource,
    step: StepInfo,
    ops: Vec<StepInfo>,
    inputs: Result<serde_json::Map<String, Value>, String>,
    undeploy: bool,
    shared: Arc<Shared>,
    rep: Reporter,
    cancel: CancellationToken,
}

impl InfraDriver {
    pub fn new(
        run: RunInfo,
        def: InfraProject,
        steps: Vec<StepInfo>,
        shared: Arc<Shared>,
        tx: mpsc::Sender<Msg>,
        cancel: CancellationToken,
    ) -> Self {
        Self {
            run,
            def,
            steps,
            shared,
            rep: Reporter { tx },
            cancel,
        }
    }

    pub async fn drive(mut self) {
        let id = self.run.id;
        if let Some((status, reason)) = self.execute().await {
            self.rep.run(id, status, reason).await;
        }
        let _ = self.rep.tx.send(Msg::Done(id)).await;
    }

    fn stopped_why(&self) -> String {
        if self.shared.shutdown.is_cancelled() {
            SHUTDOWN
        } else {
            CANCELLED
        }
        .to_string()
    }

    /// Ends every step not yet ended.
    async fn end_rest(&mut self, status: StepStatus, reason: &str) {
        for s in self.steps.iter_mut().filter(|s| !s.status.is_terminal()) {
            self.rep.step(s, status, Some(reason.to_string())).await;
        }
    }

    async fn execute(&mut self) -> Option<(RunStatus, Option<String>)> {
        let id = self.run.id;
        if self.run.status != RunStatus::AwaitingApproval {
            self.rep.run(id, RunStatus::Running, None).await;
        }
        let undeploy = super::plan::destroys(self.run.operation.as_deref());
        // The environment gate: before any resource starts (IP-5).
        if self.def.gate.approval {
            let gate = self
                .rep
                .gate(id, &self.def.environment, &self.shared)
                .await?;
            match gate.status {
                GateStatus::Approved => self.rep.run(id, RunStatus::Running, None).await,
                GateStatus::Rejected | GateStatus::Expired => {
                    let why = format!(
                        "environment gate {} rejected by {}{}",
                        self.def.environment,
                        gate.decided_by.unwrap_or_default(),
                        gate.comment.map(|c| format!(": {c}")).unwrap_or_default()
                    );
                    self.end_rest(StepStatus::Skipped, &why).await;
                    return Some((RunStatus::Rejected, Some(why)));
                }
                GateStatus::Cancelled | GateStatus::Waiting => {
                    let why = self.stopped_why();
                    self.end_rest(StepStatus::Cancelled, &why).await;
                    return Some((RunStatus::Cancelled, Some(why)));
                }
            }
        }
        self.dag(undeploy).await
    }

    async fn dag(&mut self, undeploy: bool) -> Option<(RunStatus, Option<String>)> {
        let res_idx: HashMap<String, usize> = (0..self.steps.len())
            .filter(|&i| self.steps[i].stage == Stage::Resource)
            .map(|i| (self.steps[i].name.clone(), i))
            .collect();
        // What each resource waits for: its dependencies, or for undeploy its dependents.
        let mut waits: HashMap<String, Vec<String>> = HashMap::new();
        for r in &self.def.resources {
            if undeploy {
                for d in &r.depends_on {
                    waits.entry(d.clone()).or_default().push(r.id.clone());
                }
                waits.entry(r.id.clone()).or_default();
            } else {
                waits.insert(r.id.clone(), r.depends_on.clone());
            }
        }
        let mut outputs: HashMap<String, Value> = HashMap::new();
        let stack_job = self
            .run
            .operation
            .as_deref()
            .is_some_and(|o| o.starts_with("stack-job:"));
        if undeploy || stack_job {
            // Destroy takes the inputs it was applied with, and a lone stack job its
            // upstream's: outputs as last applied, from every resource's state dir.
            let project_dir = self.shared.data_dir.join("infra").join(&self.def.name);
            for e in std::fs::read_dir(&project_dir)
                .into_iter()
                .flatten()
                .flatten()
            {
                if let Ok(o) = read_outputs(&e.path().join(LAST_OUTPUTS))
                    && o.as_object().is_some_and(|m| !m.is_empty())
                {
                    outputs.insert(e.file_name().to_string_lossy().into_owned(), o);
                }
            }
        }
        let mut done: HashSet<String> = HashSet::new();
        for (rid, &i) in &res_idx {
            if self.steps[i].status == StepStatus::Succeeded {
                done.insert(rid.clone());
                if let Some(o) = &self.steps[i].outputs {
                    outputs.insert(rid.clone(), o.clone());
                }
            }
        }
        if !undeploy {
            // A first deploy makes a state dir per resource, the largest part of a
            // small resource's own cost on the engine's thread. A thread of its own
            // makes them ahead, in declaration order, while the first resources start
            // (a job still makes its own if it gets there first). Only this run's.
            let dirs: Vec<PathBuf> = self
                .def
                .resources
                .iter()
                .filter(|r| res_idx.contains_key(&r.id) && !done.contains(&r.id))
                .map(|r| state_dir(&self.shared, &self.def.name, &r.id))
                .collect();
            std::thread::spawn(move || {
                for d in dirs {
                    let _ = std::fs::create_dir_all(d);
                }
            });
        }
        let mut set: JoinSet<JobEnd> = JoinSet::new();
        let mut started: HashSet<String> = done.clone();
        let mut failed: Vec<String> = Vec::new();
        let mut rejected: Option<String> = None;
        // Indexes so that each completion costs O(its neighbours), not O(graph).
        let pos_of: HashMap<i64, usize> = self
            .steps
            .iter()
            .enumerate()
            .map(|(k, s)| (s.id, k))
            .collect();
        let mut children: HashMap<i64, Vec<usize>> = HashMap::new();
        for (k, s) in self.steps.iter().enumerate() {
            if let Some(p) = s.parent_id {
                children.entry(p).or_default().push(k);
            }
        }
        let mut unblocks: HashMap<&str, Vec<&str>> = HashMap::new();
        let mut remaining: HashMap<&str, usize> = HashMap::new();
        for (rid, ws) in &waits {
            let left = ws.iter().filter(|d| !done.contains(*d)).count();
            remaining.insert(rid, left);
            for d in ws {
                unblocks.entry(d).or_default().push(rid);
            }
        }
        let by_id: HashMap<String, usize> = self
            .def
            .resources
            .iter()
            .enumerate()
            .map(|(k, r)| (r.id.clone(), k))
            .collect();
        // Declaration order among the first ready set.
        let mut ready: std::collections::VecDeque<String> = self
            .def
            .resources
            .iter()
            .filter(|r| remaining[r.id.as_str()] == 0 && !done.contains(&r.id))
            .map(|r| r.id.clone())
            .collect();
        loop {
            while !self.cancel.is_cancelled()
                && let Some(rid) = ready.pop_front()
            {
                let i = res_idx[&rid];
                if started.contains(&rid) || self.steps[i].status.is_terminal() {
                    continue;
                }
                let r = &self.def.resources[by_id[&rid]];
                {
                    started.insert(r.id.clone());
                    let ops: Vec<StepInfo> = children
                        .get(&self.steps[i].id)
                        .map(|ks| ks.iter().map(|&k| self.steps[k].clone()).collect())
                        .unwrap_or_default();
                    let job = Job {
                        run: self.run.clone(),
                        env: self.def.environment.clone(),
                        project: self.def.name.clone(),
                        resource: r.clone(),
                        step: self.steps[i].clone(),
                        ops,
                        inputs: substitute_all(&r.inputs, &outputs),
                        undeploy,
                        shared: self.shared.clone(),
                        rep: self.rep.clone(),
                        cancel: self.cancel.clone(),
                    };
                    set.spawn(run_job(job));
                }
            }
            let Some(joined) = set.join_next().await else {
                break;
            };
            let Ok(JobEnd {
                rid,
                outcome,
                outputs: outs,
                steps,
            }) = joined
            else {
                continue;
            };
            // The task's view of its steps is the current one.
            for s in steps {
                if let Some(&k) = pos_of.get(&s.id) {
                    self.steps[k] = s;
                }
            }
            let i = res_idx[&rid];
            match outcome {
                Outcome::Succeeded => {
                    self.steps[i].status = StepStatus::Succeeded;
                    if let Some(o) = outs {
                        outputs.insert(rid.clone(), o);
                    }
                    for next in unblocks.get(rid.as_str()).into_iter().flatten() {
                        if let Some(n) = remaining.get_mut(next) {
                            *n -= 1;
                            if *n == 0 {
                                ready.push_back(next.to_string());
                            }
                        }
                    }
                    done.insert(rid);
                }
                Outcome::Park => return None,
                other => {
                    // The task already reported the resource's own status and reason.
                    let status = match other {
                        Outcome::Failed => {
                            failed.push(rid.clone());
                            StepStatus::Failed
                        }
                        Outcome::Rejected(w) => {
                            rejected.get_or_insert(format!("resource/{rid}: {w}"));
                            StepStatus::Rejected
                        }
                        _ => StepStatus::Cancelled,
                    };
                    // Its downstream set is skipped; unrelated branches carry on (IP-3).
                    // (A cancelled resource's dependents are cancelled with the run.)
                    if status != StepStatus::Cancelled {
                        self.skip_downstream(&rid, &waits, &res_idx, &mut started)
                            .await;
                    }
                }
            }
        }
        if self.cancel.is_cancelled() {
            let why = self.stopped_why();
            self.end_rest(StepStatus::Cancelled, &why).await;
            return Some((RunStatus::Cancelled, Some(why)));
        }
        if !failed.is_empty() {
            let list: Vec<String> = failed.iter().map(|f| format!("resource/{f}")).collect();
            return Some((
                RunStatus::Failed,
                Some(format!("{} failed", list.join(", "))),
            ));
        }
        if let Some(r) = rejected {
            return Some((RunStatus::Rejected, Some(r)));
        }
        Some((RunStatus::Succeeded, None))
    }

    /// Skips every resource that (transitively) waits for `failed`, with its operations.
    async fn skip_downstream(
        &mut self,
        failed: &str,
        waits: &HashMap<String, Vec<String>>,
        res_idx: &HashMap<String, usize>,
        started: &mut HashSet<String>,
    ) {
        let mut queue = vec![failed.to_string()];
        while let Some(cur) = queue.pop() {
            for (rid, deps) in waits {
                if !deps.contains(&cur) || started.contains(rid) {
                    continue;
                }
                started.insert(rid.clone());
                let i = res_idx[rid];
                let why = format!("upstream failed: resource/{failed}");
                let rid_step = self.steps[i].id;
                let rep = self.rep.clone();
                rep.step(&mut self.steps[i], StepStatus::Skipped, Some(why.clone()))
                    .await;
                for s in self
                    .steps
                    .iter_mut()
                    .filter(|s| s.parent_id == Some(rid_step))
                {
                    if !s.status.is_terminal() {
                        rep.step(s, StepStatus::Skipped, Some(why.clone())).await;
                    }
                }
                queue.push(rid.clone());
            }
        }
    }
}

/// Replaces `${id.outputs.key}` references with upstream outputs. A string that is one
/// whole reference takes the output's JSON value; otherwise values are spliced as text.
pub fn substitute(v: &Value, outputs: &HashMap<String, Value>) -> Result<Value, String> {
    Ok(match v {
        Value::String(s) => {
            let refs = references(s);
            if refs.is_empty() {
                return Ok(v.clone());
            }
            let lookup = |id: &str, key: &str| -> Result<Value, String> {
                outputs
                    .get(id)
                    .and_then(|o| o.get(key))
                    .cloned()
                    .ok_or_else(|| {
                        format!("`${{{id}.outputs.{key}}}`: resource {id} has no output `{key}`")
                    })
            };
            if let [(id, key)] = refs.as_slice()
                && s == &format!("${{{id}.outputs.{key}}}")
            {
                return lookup(id, key);
            }
            let mut out = s.clone();
            for (id, key) in refs {
                let val = match lookup(&id, &key)? {
                    Value::String(t) => t,
                    other => other.to_string(),
                };
                out = out.replace(&format!("${{{id}.outputs.{key}}}"), &val);
            }
            Value::String(out)
        }
        Value::Array(a) => Value::Array(
            a.iter()
                .map(|x| substitute(x, outputs))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, x)| Ok((k.clone(), substitute(x, outputs)?)))
                .collect::<Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}

fn substitute_all(
    inputs: &std::collections::BTreeMap<String, Value>,
    outputs: &HashMap<String, Value>,
) -> Result<serde_json::Map<String, Value>, String> {
    inputs
        .iter()
        .map(|(k, v)| {
            Ok((
                k.clone(),
                substitute(v, outputs).map_err(|e| format!("input {k}: {e}"))?,
            ))
        })
        .collect()
}

fn env_name(key: &str) -> String {
    key.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// One resource's stack job: its operations in order, outputs after apply, then its
/// node gate. Returns the outcome and, after apply, the outputs.
/// What a resource's task hands back: its outcome, outputs, and its steps as they ended.
struct JobEnd {
    rid: String,
    outcome: Outcome,
    outputs: Option<Value>,
    steps: Vec<StepInfo>,
}

async fn run_job(mut j: Job) -> JobEnd {
    let (outcome, outputs) = job_body(&mut j).await;
    let mut steps = vec![j.step];
    steps.extend(j.ops);
    JobEnd {
        rid: j.resource.id,
        outcome,
        outputs,
        steps,
    }
}

async fn job_body(j: &mut Job) -> (Outcome, Option<Value>) {
    let rep = j.rep.clone();
    let mut outputs = j.step.outputs.clone();
    if j.step.status != StepStatus::AwaitingApproval {
        let inputs = match j.inputs.clone() {
            Ok(i) => i,
            Err(e) => {
                rep.step(&mut j.step, StepStatus::Failed, Some(e.clone()))
                    .await;
                end_ops(
                    &rep,
                    &mut j.ops,
                    0,
                    StepStatus::Skipped,
                    &format!("upstream failed: resource/{}", j.resource.id),
                )
                .await;
                return (Outcome::Failed, None);
            }
        };
        let state_dir: PathBuf = state_dir(&j.shared, &j.project, &j.resource.id);
        // Fixed names in the state dir, overwritten run after run (no file churn).
        let inputs_file = state_dir.join("inputs.json");
        let outputs_file = state_dir.join(NEXT_OUTPUTS);
        // Preflight (SJ-4), the state dir and the inputs file. (Done here, not on the
        // blocking pool: handing 10,000 of these to other threads measured 20% slower.)
        let text = Value::Object(inputs.clone()).to_string();
        let fresh = match ready_state(&j.resource, &state_dir, &text) {
            Ok(fresh) => fresh,
            Err(NotReady::Preflight(checks, why)) => {
                // The full report goes to the first operation's log.
                if let Some(first) = j.ops.first() {
                    let t = log_target(j, first.id);
                    for line in super::preflight::report(&checks) {
                        let _ = process::note(&t, &format!("preflight {line}"));
                    }
                }
                rep.step(&mut j.step, StepStatus::Failed, Some(why.clone()))
                    .await;
                end_ops(&rep, &mut j.ops, 0, StepStatus::Skipped, "preflight failed").await;
                return (Outcome::Failed, None);
            }
            Err(NotReady::Io(why)) => {
                rep.step(&mut j.step, StepStatus::Failed, Some(why)).await;
                return (Outcome::Failed, None);
            }
        };
        // The Terraform/OpenTofu driver: the real binary in this working directory;
        // without one, the operator's commands (if any) stand in.
        let mut tf_bin = None;
        if j.resource.is_terraform() {
            match super::executor::terraform::find_binary(
                &j.resource.driver,
                j.resource.binary.as_deref(),
            ) {
                Some(bin) => {
                    let module = j.resource.module.clone().unwrap_or_default();
                    if let Err(why) =
                        super::executor::terraform::prepare(&module, &state_dir, &inputs)
                    {
                        rep.step(&mut j.step, StepStatus::Failed, Some(why)).await;
                        end_ops(
                            &rep,
                            &mut j.ops,
                            0,
                            StepStatus::Skipped,
                            "the module could not be prepared",
                        )
                        .await;
                        return (Outcome::Failed, None);
                    }
                    tf_bin = Some(bin);
                }
                None if j.resource.commands.apply.is_some() => {
                    if let Some(first) = j.ops.first() {
                        let t = log_target(j, first.id);
                        let _ = process::note(
                            &t,
                            "no terraform or tofu binary on PATH: using the command driver's commands instead",
                        );
                    }
                }
                None => {
                    let why = "no terraform or tofu binary on PATH (install one, or set terraform_binary)".to_string();
                    rep.step(&mut j.step, StepStatus::Failed, Some(why.clone()))
                        .await;
                    end_ops(&rep, &mut j.ops, 0, StepStatus::Skipped, &why).await;
                    return (Outcome::Failed, None);
                }
            }
        }
        let mut env: Vec<(String, String)> = vec![
            ("PIPEDECK_RUN_ID".into(), j.run.id.to_string()),
            ("PIPEDECK_INFRA_PROJECT".into(), j.project.clone()),
            ("PIPEDECK_ENV".into(), j.env.clone()),
            ("PIPEDECK_RESOURCE".into(), j.resource.id.clone()),
            ("PIPEDECK_KIND".into(), j.resource.kind.clone()),
            ("PIPEDECK_STATE_DIR".into(), state_dir.display().to_string()),
            ("PIPEDECK_INPUTS".into(), inputs_file.display().to_string()),
            (
                "PIPEDECK_OUTPUTS".into(),
                outputs_file.display().to_string(),
            ),
            (
                "PIPEDECK_DATA_DIR".into(),
                j.shared.data_dir.display().to_string(),
            ),
        ];
        if let Some(m) = &j.resource.module {
            env.push(("PIPEDECK_MODULE".into(), m.display().to_string()));
        }
        for (k, v) in &inputs {
            let text = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            env.push((format!("PIPEDECK_INPUT_{}", env_name(k)), text));
        }
        let env = match super::executor::spawn::Env::new(&env) {
            Ok(e) => Arc::new(e),
            Err(e) => {
                let why = format!("cannot set the environment: {e}");
                rep.step(&mut j.step, StepStatus::Failed, Some(why)).await;
                end_ops(&rep, &mut j.ops, 0, StepStatus::Skipped, "no environment").await;
                return (Outcome::Failed, None);
            }
        };
        if j.step.status != StepStatus::Running {
            rep.step(&mut j.step, StepStatus::Running, None).await;
        }
        let n = j.ops.len();
        for k in 0..n {
            match j.ops[k].status {
                StepStatus::Succeeded => continue,
                // Running when the engine died: it cannot be trusted to have finished.
                StepStatus::Running | StepStatus::Queued => {
                    let why = "interrupted by an engine restart".to_string();
                    rep.step(&mut j.ops[k], StepStatus::Interrupted, Some(why.clone()))
                        .await;
                    end_ops(&rep, &mut j.ops, k + 1, StepStatus::Skipped, &why).await;
                    rep.step(&mut j.step, StepStatus::Failed, Some(why.clone()))
                        .await;
                    return (Outcome::Failed, None);
                }
                _ => {}
            }
            // Cancel: the in-flight operation completes; the rest do not start (SJ-5).
            if j.cancel.is_cancelled() {
                let why = if j.shared.shutdown.is_cancelled() {
                    SHUTDOWN
                } else {
                    CANCELLED
                };
                end_ops(&rep, &mut j.ops, k, StepStatus::Cancelled, why).await;
                rep.step(&mut j.step, StepStatus::Cancelled, Some(why.into()))
                    .await;
                return (Outcome::Cancelled, None);
            }
            let op = j.ops[k].name.rsplit('.').next().unwrap_or("").to_string();
            // Flow control (SJ-3): the resolved policy may waive refresh or preview…
            let policy = j.resource.policy.clone();
            let waived = match op.as_str() {
                "refresh" if policy.skip_refresh.value => Some(format!(
                    "policy ({}): skip refresh",
                    policy.skip_refresh.from
                )),
                "preview" if !policy.require_preview.value => Some(format!(
                    "policy ({}): preview not required",
                    policy.require_preview.from
                )),
                _ => None,
            };
            // Terraform cannot refresh what does not exist yet.
            let waived = waived.or_else(|| {
                (tf_bin.is_some()
                    && op == "refresh"
                    && !super::executor::terraform::has_state(&state_dir))
                .then(|| "nothing deployed yet: no state to refresh".to_string())
            });
            if let Some(why) = waived {
                rep.step(&mut j.ops[k], StepStatus::Skipped, Some(why))
                    .await;
                continue;
            }
            // …or pause between preview and apply until someone approves the plan.
            if (op == "apply" || op == "destroy") && policy.pause_before_apply.value {
                let summary = j
                    .ops
                    .iter()
                    .find(|o| o.name.ends_with(".preview"))
                    .and_then(|o| o.outputs.clone());
                rep.step(
                    &mut j.step,
                    StepStatus::AwaitingApproval,
                    summary
                        .as_ref()
                        .map(super::executor::terraform::summary_line),
                )
                .await;
                let key = format!("{}/{}/{op}", j.env, j.resource.id);
                let Some(gate) = rep.gate(j.run.id, &key, &j.shared).await else {
                    return (Outcome::Park, None);
                };
                match gate.status {
                    GateStatus::Approved => {
                        rep.run(j.run.id, RunStatus::Running, None).await;
                        rep.step(&mut j.step, StepStatus::Running, None).await;
                    }
                    GateStatus::Cancelled | GateStatus::Waiting => {
                        end_ops(&rep, &mut j.ops, k, StepStatus::Cancelled, CANCELLED).await;
                        rep.step(&mut j.step, StepStatus::Cancelled, Some(CANCELLED.into()))
                            .await;
                        return (Outcome::Cancelled, None);
                    }
                    GateStatus::Rejected | GateStatus::Expired => {
                        // Rejecting discards the reviewed plan.
                        let _ = std::fs::remove_file(
                            state_dir.join(super::executor::terraform::PLAN_FILE),
                        );
                        let why = format!(
                            "plan rejected by {}{}",
                            gate.decided_by.unwrap_or_default(),
                            gate.comment.map(|c| format!(": {c}")).unwrap_or_default()
                        );
                        end_ops(&rep, &mut j.ops, k, StepStatus::Skipped, &why).await;
                        rep.step(&mut j.step, StepStatus::Rejected, Some(why.clone()))
                            .await;
                        return (Outcome::Rejected(why), None);
                    }
                }
            }
            let planned = j
                .ops
                .iter()
                .any(|o| o.name.ends_with(".preview") && o.status == StepStatus::Succeeded);
            let cmd = match &tf_bin {
                Some(bin) => super::executor::terraform::op_command(bin, &op, j.undeploy, planned),
                None => match command(&j.resource.commands, &op) {
                    Some(c) => c.clone(),
                    None => {
                        rep.step(
                            &mut j.ops[k],
                            StepStatus::Skipped,
                            Some("no command for this operation".into()),
                        )
                        .await;
                        continue;
                    }
                },
            };
            if op == "apply" && !fresh {
                let _ = std::fs::remove_file(&outputs_file);
            }
            // `queued` only when it really waits for a slot (for a while).
            let permit = super::driver::acquire_slot(
                &j.shared.slots,
                &j.shared.shutdown,
                rep.step(&mut j.ops[k], StepStatus::Queued, None),
            )
            .await;
            if permit.is_none() {
                end_ops(&rep, &mut j.ops, k, StepStatus::Cancelled, SHUTDOWN).await;
                rep.step(&mut j.step, StepStatus::Cancelled, Some(SHUTDOWN.into()))
                    .await;
                return (Outcome::Cancelled, None);
            }
            rep.step(&mut j.ops[k], StepStatus::Running, None).await;
            let mut op_env = vec![("PIPEDECK_OPERATION".into(), op.clone())];
            if tf_bin.is_some() {
                op_env.extend(super::executor::terraform::env(&j.shared.data_dir));
            }
            let spec = ProcSpec {
                command: cmd,
                cwd: state_dir.clone(),
                env: env.clone(),
                extra_env: op_env,
                kill_grace: Duration::from_millis(j.resource.kill_grace_ms),
                // Terraform gets SIGINT first, so it can release its state lock (SJ-5).
                interrupt_first: tf_bin.is_some(),
            };
            let target = log_target(j, j.ops[k].id);
            // Only a shutdown stops an operation in flight; an operator's cancel lets it finish.
            let (result, ended_at) =
                process::run(spec, target, j.shared.shutdown.clone(), permit).await;
            j.ops[k].exit_code = result.exit_code();
            if !result.success() {
                let mut why = result.describe();
                if tf_bin.is_some() && (op == "apply" || op == "destroy") {
                    // Terraform refuses a plan made against a state that has changed since.
                    let tail = j
                        .shared
                        .logs
                        .read(j.run.id, j.ops[k].id, 0, 10_000)
                        .unwrap_or_default();
                    if tail.iter().any(|l| l.text.contains("Saved plan is stale")) {
                        why = "the saved plan is stale: the state changed after the preview, so nothing was applied; preview again".into();
                    }
                }
                let (status, rest) = if result == process::Outcome::Stopped {
                    (StepStatus::Cancelled, SHUTDOWN.to_string())
                } else {
                    (
                        StepStatus::Failed,
                        format!("upstream failed: operation/{}", j.ops[k].name),
                    )
                };
                rep.step_at(&mut j.ops[k], status, Some(why.clone()), ended_at)
                    .await;
                end_ops(&rep, &mut j.ops, k + 1, StepStatus::Skipped, &rest).await;
                let why = format!("{} {why}", j.ops[k].name);
                rep.step(&mut j.step, StepStatus::Failed, Some(why.clone()))
                    .await;
                return (Outcome::Failed, None);
            }
            if let Some(bin) = &tf_bin {
                let (bin, dir, data) = (bin.clone(), state_dir.clone(), j.shared.data_dir.clone());
                let after = op.clone();
                let undeploy = j.undeploy;
                let res = tokio::task::spawn_blocking(
                    move || -> Result<Option<(Value, bool)>, String> {
                        use super::executor::terraform as tf;
                        match after.as_str() {
                            "preview" => Ok(Some((tf::plan_summary(&bin, &dir, &data)?, false))),
                            "apply" if !undeploy => {
                                Ok(Some((tf::outputs(&bin, &dir, &data)?, true)))
                            }
                            _ => Ok(None),
                        }
                    },
                )
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r);
                match res {
                    Ok(Some((summary, false))) => {
                        let t = log_target(j, j.ops[k].id);
                        let _ =
                            process::note(&t, &super::executor::terraform::summary_line(&summary));
                        j.ops[k].outputs = Some(summary);
                    }
                    Ok(Some((outs, true))) => {
                        let _ = std::fs::write(&outputs_file, outs.to_string());
                    }
                    Ok(None) => {}
                    Err(e) => {
                        rep.step(&mut j.ops[k], StepStatus::Failed, Some(e.clone()))
                            .await;
                        let rest = format!("upstream failed: operation/{}", j.ops[k].name);
                        end_ops(&rep, &mut j.ops, k + 1, StepStatus::Skipped, &rest).await;
                        rep.step(&mut j.step, StepStatus::Failed, Some(e)).await;
                        return (Outcome::Failed, None);
                    }
                }
            }
            if op == "apply" {
                match read_outputs(&outputs_file) {
                    Ok(o) => outputs = Some(o),
                    Err(e) => {
                        rep.step(&mut j.ops[k], StepStatus::Failed, Some(e.clone()))
                            .await;
                        rep.step(&mut j.step, StepStatus::Failed, Some(e.clone()))
                            .await;
                        return (Outcome::Failed, None);
                    }
                }
            }
            rep.step(&mut j.ops[k], StepStatus::Succeeded, None).await;
        }
        let last = state_dir.join(LAST_OUTPUTS);
        let changed = j.ops.iter().any(|o| {
            (o.name.ends_with(".apply") || o.name.ends_with(".destroy"))
                && o.status == StepStatus::Succeeded
        });
        if !changed {
            // A preview or refresh leaves what was applied as it was.
            outputs = read_outputs(&last)
                .ok()
                .filter(|o| o.as_object().is_some_and(|m| !m.is_empty()));
        } else if j.undeploy {
            outputs = None;
            let _ = std::fs::remove_file(&last);
        } else if outputs_file.exists() {
            // What apply wrote becomes the last applied outputs.
            let _ = std::fs::rename(&outputs_file, &last);
        } else if !fresh {
            let _ = std::fs::remove_file(&last);
        }
        j.step.outputs = outputs.clone();
    }
    // The node gate: after this resource, before its dependents (IP-5).
    if j.resource.gate && !j.undeploy {
        rep.step(&mut j.step, StepStatus::AwaitingApproval, None)
            .await;
        let key = format!("{}/{}", j.env, j.resource.id);
        let Some(gate) = rep.gate(j.run.id, &key, &j.shared).await else {
            return (Outcome::Park, None);
        };
        match gate.status {
            GateStatus::Approved => rep.run(j.run.id, RunStatus::Running, None).await,
            GateStatus::Cancelled | GateStatus::Waiting => {
                rep.step(&mut j.step, StepStatus::Cancelled, Some(CANCELLED.into()))
                    .await;
                return (Outcome::Cancelled, None);
            }
            GateStatus::Rejected | GateStatus::Expired => {
                let why = format!(
                    "node gate rejected by {}{}",
                    gate.decided_by.unwrap_or_default(),
                    gate.comment.map(|c| format!(": {c}")).unwrap_or_default()
                );
                rep.step(&mut j.step, StepStatus::Rejected, Some(why.clone()))
                    .await;
                return (Outcome::Rejected(why), None);
            }
        }
    }
    rep.step(&mut j.step, StepStatus::Succeeded, None).await;
    (Outcome::Succeeded, outputs)
}

async fn end_ops(rep: &Reporter, ops: &mut [StepInfo], from: usize, status: StepStatus, why: &str) {
    for s in ops.iter_mut().skip(from) {
        if !s.status.is_terminal() {
            rep.step(s, status, Some(why.to_string())).await;
        }
    }
}

/// The outputs a resource last applied, kept in its state dir.
const LAST_OUTPUTS: &str = "outputs.json";
/// Where `apply` writes its outputs (`$PIPEDECK_OUTPUTS`).
const NEXT_OUTPUTS: &str = "outputs.next.json";

/// Where the output of one of a job's steps goes.
fn log_target(j: &Job, step_id: i64) -> LogTarget {
    LogTarget {
        logs: j.shared.logs.clone(),
        run_id: j.run.id,
        step_id,
        events: j.shared.events.clone(),
        masker: Arc::new(Masker::default()),
    }
}

/// Why a job's state dir could not be made ready.
enum NotReady {
    /// A preflight check failed: the whole report, and the failure.
    Preflight(Vec<super::preflight::Check>, String),
    Io(String),
}

/// Runs preflight, makes the state dir and writes `inputs.json` into it (only when
/// its content changed: a redeploy with the same inputs touches nothing). Returns
/// whether the state dir is fresh: no job has run in it (every job writes its inputs
/// first), so nothing in it needs to be replaced or removed.
fn ready_state(r: &Resource, state_dir: &std::path::Path, inputs: &str) -> Result<bool, NotReady> {
    let file = state_dir.join("inputs.json");
    let fresh = std::fs::symlink_metadata(&file).is_err();
    // Preflight's state check makes the dir (or fails saying why).
    let checks = super::preflight::preflight(r, state_dir, false);
    if let Some(why) = super::preflight::failures(&checks) {
        return Err(NotReady::Preflight(checks, why));
    }
    if !fresh && std::fs::read(&file).is_ok_and(|old| old == inputs.as_bytes()) {
        return Ok(false);
    }
    std::fs::write(&file, inputs)
        .map_err(|e| NotReady::Io(format!("cannot write {}: {e}", file.display())))?;
    Ok(fresh)
}

/// Where a resource's state lives across runs (the command driver's working dir).
fn state_dir(shared: &Shared, project: &str, resource: &str) -> PathBuf {
    shared.data_dir.join("infra").join(project).join(resource)
}

/// The apply operation's outputs: a JSON object in `$PIPEDECK_OUTPUTS`, or none.
fn read_outputs(path: &std::path::Path) -> Result<Value, String> {
    match std::fs::read_to_string(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Value::Object(Default::default())),
        Err(e) => Err(format!(
            "cannot read the outputs file {}: {e}",
            path.display()
        )),
        Ok(text) => match serde_json::from_str::<Value>(&text) {
            Ok(v @ Value::Object(_)) => Ok(v),
            Ok(_) => Err("the outputs file must hold a JSON object".into()),
            Err(e) => Err(format!("the outputs file is not JSON: {e}")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitution_keeps_types_for_whole_references() {
        let mut outs = HashMap::new();
        outs.insert(
            "vpc".to_string(),
            serde_json::json!({"id": "vpc-1", "azs": 3}),
        );
        let v = substitute(&serde_json::json!("${vpc.outputs.azs}"), &outs).unwrap();
        assert_eq!(v, serde_json::json!(3));
        let v = substitute(
            &serde_json::json!("in ${vpc.outputs.id} x${vpc.outputs.azs}"),
            &outs,
        )
        .unwrap();
        assert_eq!(v, serde_json::json!("in vpc-1 x3"));
        assert!(substitute(&serde_json::json!("${vpc.outputs.nope}"), &outs).is_err());
    }
}
