//! The runs the runner owns: created, rerun, cancelled, recovered after a crash, and
//! their status, which moves only as [`RunStatus::can_become`] allows.

use super::*;
use crate::domain::RunSpec;
use crate::engine::executor::slurm::JobId;
use crate::engine::queue::{Deployed, RunFacts};
use crate::store::{LogStore, NewStep};

/// How a run that cannot carry on after a restart ends: the run, its unfinished steps
/// and its waiting gates, each with a reason.
struct End<'a> {
    run: RunStatus,
    run_reason: &'a str,
    step: StepStatus,
    step_reason: &'a str,
    gate: GateStatus,
    gate_reason: &'a str,
}

/// Ends `run` as `end` says, in the open transaction of `s`; closing a gate is audited.
fn end_run(
    s: &Store,
    run: &mut RunInfo,
    end: &End,
    now: crate::domain::Millis,
) -> crate::store::Result<()> {
    for mut step in s.steps(run.id)? {
        if !step.status.is_terminal() {
            step.status = end.step;
            step.reason = Some(end.step_reason.to_string());
            step.ended_at.get_or_insert(now);
            s.update_step(&step)?;
        }
    }
    for mut gate in s.gates(run.id)? {
        if gate.status == GateStatus::Waiting {
            gate.status = end.gate;
            gate.decided_by = Some("pipedeck".into());
            gate.decided_at = Some(now);
            gate.comment = Some(end.gate_reason.to_string());
            s.update_gate(&gate)?;
            let action = match end.gate {
                GateStatus::Interrupted => "interrupt_gate",
                _ => "cancel_gate",
            };
            s.append_audit(&AuditEntry {
                at: now,
                actor: "pipedeck".into(),
                action: action.into(),
                run_id: run.id,
                target: Some(gate.env.clone()),
                comment: gate.comment.clone(),
            })?;
        }
    }
    run.status = end.run;
    run.reason = Some(end.run_reason.to_string());
    run.ended_at = Some(now);
    s.update_run(run)
}

/// A step that was executing when the engine stopped, made queued with `why`: the
/// scheduler of its resumed run starts it again (its log is repaired first).
fn requeue(s: &Store, logs: &LogStore, st: &StepInfo, why: String) -> crate::store::Result<()> {
    if let Err(e) = logs.repair(st.run_id, st.id) {
        tracing::error!(
            "run {}: cannot repair the log of {}: {e}",
            st.run_id,
            st.path()
        );
    }
    let mut st = st.clone();
    st.status = StepStatus::Queued;
    st.reason = Some(why);
    s.update_step(&st)
}

impl Runner {
    /// After a crash (or a stop): a run that had a step executing becomes
    /// `interrupted` (its unfinished steps too, their logs trimmed of torn records, and
    /// its waiting gates closed: nothing can resume it, so nothing is left to approve).
    /// A run with nothing executing (queued, waiting for a slot or its environment, or
    /// at a gate) carries on where it was, in trigger order: a process that may have
    /// done half its work is never started again on its own, anything else is.
    pub(crate) fn recover(&mut self) -> Result<()> {
        let now = now_ms();
        let mut resume = Vec::new();
        let (mut reattach, mut stop_jobs) = (Vec::new(), Vec::new());
        let logs = self.shared.logs.clone();
        let live = [
            RunStatus::Queued,
            RunStatus::Running,
            RunStatus::AwaitingApproval,
            RunStatus::Cancelling,
        ];
        let runs = self.store.runs_with_status(&live)?;
        self.store.batch(|s| {
            for mut run in runs {
                let steps = s.steps(run.id)?;
                let parents: Vec<i64> = steps.iter().filter_map(|st| st.parent_id).collect();
                // A group's row (an infra resource) says where its operations got to;
                // only an operation or a step itself runs a process. Units that run as
                // Slurm jobs outlive the engine, running or still waiting in the
                // cluster's queue (queued): when every unit that was executing is one
                // (or none was), the run resumes and they re-attach.
                let jobs: HashMap<i64, u64> = s.slurm_jobs(run.id)?.into_iter().collect();
                let on_slurm =
                    |st: &&StepInfo| st.status == StepStatus::Queued && jobs.contains_key(&st.id);
                let running: Vec<&StepInfo> = steps
                    .iter()
                    .filter(|st| st.status == StepStatus::Running && !parents.contains(&st.id))
                    .collect();
                // A rollout's switches are idempotent: one the engine died in runs
                // again (its station is on one whole release or the other meanwhile).
                if run.status != RunStatus::Cancelling && run.kind == RunKind::Rollout {
                    for st in running {
                        let why = "switching again: the engine stopped while this ran";
                        requeue(s, &logs, st, why.into())?;
                    }
                    resume.push(run.id);
                    continue;
                }
                if run.status != RunStatus::Cancelling
                    && running.iter().all(|st| jobs.contains_key(&st.id))
                {
                    let queued = steps
                        .iter()
                        .filter(|st| !parents.contains(&st.id))
                        .filter(on_slurm);
                    for st in running.into_iter().chain(queued) {
                        let job = jobs[&st.id];
                        // Its executor finds the job to re-attach to.
                        requeue(s, &logs, st, format!("re-attaching to Slurm job {job}"))?;
                        reattach.push((st.id, job));
                    }
                    resume.push(run.id);
                    continue;
                }
                // Otherwise its jobs are stopped with it (a cancelled run's too).
                stop_jobs.extend(
                    steps
                        .iter()
                        .filter(|st| !st.status.is_terminal())
                        .filter_map(|st| jobs.get(&st.id).copied()),
                );
                for step in &steps {
                    if step.started_at.is_some()
                        && !step.status.is_terminal()
                        && let Err(e) = logs.repair(run.id, step.id)
                    {
                        tracing::error!(
                            "run {}: cannot repair the log of {}: {e}",
                            run.id,
                            step.path()
                        );
                    }
                }
                let end = End {
                    run: RunStatus::Interrupted,
                    run_reason: "the engine stopped while this run was executing",
                    step: StepStatus::Interrupted,
                    step_reason: "the engine stopped while this ran",
                    gate: GateStatus::Interrupted,
                    gate_reason: "the engine stopped while the run executed",
                };
                end_run(s, &mut run, &end, now)?;
            }
            Ok(())
        })?;
        self.fail_stale_releases()?;
        if let Ok(mut m) = self.shared.slurm_attach.lock() {
            m.extend(reattach.into_iter().map(|(step, job)| (step, JobId(job))));
        }
        for job in stop_jobs {
            crate::engine::executor::slurm::cancel_now(JobId(job));
        }
        // Before any rollout resumes: which switch each station waits for.
        for (st, row) in self.station_rows()? {
            self.shared.stations.want(&st.name, row.switch_run);
        }
        for id in resume {
            let Some(run) = self.store.run(id)? else {
                continue;
            };
            // One run that cannot resume (its stored definition unreadable, say) ends
            // with the reason; the others recover all the same.
            if let Err(e) = self.spawn_driver(&run) {
                self.unresumable(run, &e)?;
            }
        }
        self.resume_rollouts()
    }

    /// Ends a run that cannot resume after a restart: its unfinished steps and the run
    /// fail with `why`, its waiting gates close (no decision can move it any more).
    fn unresumable(&mut self, mut run: RunInfo, why: &EngineError) -> Result<()> {
        tracing::error!("run {}: cannot resume after a restart: {why}", run.id);
        let reason = format!("cannot resume after the engine restarted: {why}");
        let end = End {
            run: RunStatus::Failed,
            run_reason: &reason,
            step: StepStatus::Failed,
            step_reason: &reason,
            gate: GateStatus::Cancelled,
            gate_reason: &reason,
        };
        Ok(self.store.batch(|s| end_run(s, &mut run, &end, now_ms()))?)
    }

    /// Starts the scheduler of a run found in the store (after a restart).
    pub(super) fn spawn_driver(&mut self, run: &RunInfo) -> Result<()> {
        let steps = self.store.steps(run.id)?;
        let stored = self
            .store
            .definition_text(run.id)?
            .ok_or_else(|| no_run(run.id))?;
        let def = Definition::read(&run.spec(), &stored)?;
        self.start_driver(run, def, steps);
        Ok(())
    }

    pub(super) fn start_driver(&mut self, run: &RunInfo, def: Definition, steps: Vec<StepInfo>) {
        let token = self.shared.shutdown.child_token();
        let svc = match &def {
            Definition::Service(svc) => Some(svc),
            Definition::Infra(..) | Definition::Rollout(_) => None,
        };
        let facts = self.run_facts(run, svc).unwrap_or_else(|e| {
            // The lines still order the run by its id; only the store's history is lost.
            tracing::error!("run {}: cannot read its deploy history: {e}", run.id);
            RunFacts {
                me: Deployed {
                    run_id: run.id,
                    rank: run.id,
                    branch: run.branch.clone(),
                    commit: run.commit_sha.clone(),
                },
                allow_older: false,
                last: HashMap::new(),
                upstream: Vec::new(),
            }
        });
        let driver = crate::engine::plan::start(
            run.clone(),
            def,
            steps,
            self.shared.clone(),
            self.tx.clone(),
            token.clone(),
            facts,
        );
        tokio::spawn(supervise(driver, self.tx.clone(), run.id));
        self.active.insert(run.id, token);
    }

    /// Ends a run whose driver crashed: its unfinished steps and the run fail.
    pub(super) fn crashed(&mut self, run_id: i64, why: &str, out: &mut Out) -> Result<()> {
        tracing::error!("run {run_id}: the driver crashed: {why}");
        let reason = format!("internal error: the run's driver crashed ({why})");
        let now = now_ms();
        for mut step in self.store.steps(run_id)? {
            if !step.status.is_terminal() {
                step.status = StepStatus::Failed;
                step.reason = Some(reason.clone());
                step.ended_at.get_or_insert(now);
                self.store.update_step(&step)?;
                out.event(Event::Step { step });
            }
        }
        self.set_run_status(run_id, RunStatus::Failed, Some(reason), out)?;
        Ok(())
    }

    pub(super) fn audit(
        &self,
        actor: &str,
        action: &str,
        run_id: i64,
        target: Option<&str>,
        comment: Option<&str>,
    ) -> Result<()> {
        self.store.append_audit(&AuditEntry {
            at: now_ms(),
            actor: actor.to_string(),
            action: action.to_string(),
            run_id,
            target: target.map(str::to_string),
            comment: comment.map(str::to_string),
        })?;
        Ok(())
    }

    /// Creates run `new`; `def` is its definition as typed values, if the caller has them
    /// (else it is read from `new`'s text).
    pub(super) fn create(
        &mut self,
        new: &NewRun,
        def: Option<Definition>,
        out: &mut Out,
    ) -> Result<RunInfo> {
        if self.shutdown.is_some() {
            return Err(EngineError::Stopped);
        }
        self.shared.space.allows_new_run()?;
        let run = self.store.insert_run(new, now_ms())?;
        self.store.insert_links(run.id, &new.upstream)?;
        // A chained run consumes what its `all` chain waited with, in its own commit.
        if new.trigger == Trigger::Chain
            && let RunSpec::Service { service, .. } = &new.spec
        {
            self.store.set_chain_pending(service, &[])?;
        }
        self.shared.metrics.run_created();
        out.event(Event::Run { run: run.clone() });
        // The driver starts from what was just stored, not from reading it back.
        let (planned, def) = crate::engine::plan::plan(new, def)?;
        if let Definition::Service(svc) = &def {
            self.release_for_run(&run, svc, out)?;
        }
        let rows: Vec<NewStep<'_>> = planned
            .iter()
            .map(|p| NewStep {
                stage: p.stage,
                name: &p.name,
                parent: p.parent,
            })
            .collect();
        let steps = self.store.insert_steps(run.id, &rows)?;
        for step in &steps {
            out.event(Event::Step { step: step.clone() });
        }
        let action = if new.trigger == Trigger::Rerun {
            "rerun"
        } else {
            "trigger"
        };
        // A state job names its operation; a targeted stack job says so (`targeted: a, b`),
        // a rollout names its release.
        let target = new
            .spec
            .audit_target()
            .or_else(|| Some(run.marker()).filter(|t| !t.is_empty()));
        self.audit(&new.triggered_by, action, run.id, target.as_deref(), None)?;
        out.after(After::Start(Box::new((run.clone(), def, steps))));
        Ok(run)
    }

    pub(super) fn rerun(
        &mut self,
        id: i64,
        by: &str,
        allow_older: bool,
        out: &mut Out,
    ) -> Result<RunInfo> {
        let orig = self.store.run(id)?.ok_or_else(|| no_run(id))?;
        if orig.kind == RunKind::Rollout {
            // Which release each station runs is the stations' business now, not a
            // past rollout's.
            return Err(EngineError::Invalid(format!(
                "run {id} is a rollout: it is not run again; move stations with `pipedeck \
                 station pin RELEASE STATION` (or unpin them to follow new releases)"
            )));
        }
        let definition = self.store.definition_text(id)?.ok_or_else(|| no_run(id))?;
        let new = NewRun {
            spec: orig.spec(),
            run_type: orig.run_type,
            trigger: Trigger::Rerun,
            commit_message: orig.commit_message,
            author: orig.author,
            triggered_by: by.to_string(),
            rerun_of: Some(id),
            attempt: orig.attempt + 1,
            allow_older,
            definition,
            // A rerun of a chained run gets what its original got.
            upstream: self.store.upstream(id)?,
        };
        self.create(&new, None, out)
    }

    pub(super) fn cancel(&mut self, id: i64, by: &str, out: &mut Out) -> Result<RunInfo> {
        let run = self.store.run(id)?.ok_or_else(|| no_run(id))?;
        if run.status.is_terminal() {
            return Err(EngineError::Conflict(format!(
                "run {id} has already ended ({}); nothing to cancel",
                run.status
            )));
        }
        if run.status == RunStatus::Cancelling {
            return Ok(run);
        }
        self.audit(by, "cancel", id, None, None)?;
        let run = self.set_run_status(
            id,
            RunStatus::Cancelling,
            Some(format!("cancelled by {by}")),
            out,
        )?;
        for gate in self.store.gates(id)? {
            if gate.status == GateStatus::Waiting {
                self.close_gate(gate, GateStatus::Cancelled, by, None, out)?;
            }
        }
        out.after(After::Cancel(id));
        Ok(run)
    }

    pub(super) fn set_run_status(
        &mut self,
        id: i64,
        status: RunStatus,
        reason: Option<String>,
        out: &mut Out,
    ) -> Result<RunInfo> {
        let mut run = self.store.run(id)?.ok_or_else(|| no_run(id))?;
        if !run.status.can_become(status) {
            return Ok(run);
        }
        let now = now_ms();
        run.status = status;
        if reason.is_some() {
            run.reason = reason;
        }
        if status == RunStatus::Running {
            run.started_at.get_or_insert(now);
        }
        if status.is_terminal() {
            run.started_at.get_or_insert(now);
            run.ended_at = Some(now);
        }
        self.store.update_run(&run)?;
        out.event(Event::Run { run: run.clone() });
        if status.is_terminal() {
            self.has_release.remove(&id);
            self.end_release_of_run(id, out)?;
        }
        Ok(run)
    }
}
