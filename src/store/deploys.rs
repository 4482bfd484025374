//! Deploy order per environment: deployment records, and what the queues are made of
//! (which commit came first, what an environment runs, who waits for it).

use rusqlite::{OptionalExtension, Row, params};

use super::{Result, Store, word};
use crate::domain::{DeployStatus, Deployment, Millis, QueueEntry, QueueKey, QueueState, StepInfo};

const DEPLOY_COLS: &str =
    "id, run_id, service, env, commit_sha, branch, status, rollback, started_at, ended_at";

fn deploy_row(r: &Row<'_>) -> rusqlite::Result<Deployment> {
    Ok(Deployment {
        id: r.get(0)?,
        run_id: r.get(1)?,
        service: r.get(2)?,
        env: r.get(3)?,
        commit_sha: r.get(4)?,
        branch: r.get(5)?,
        status: word(DeployStatus::parse, r.get(6)?, 6)?,
        rollback: r.get(7)?,
        started_at: r.get(8)?,
        ended_at: r.get(9)?,
    })
}

/// A new deployment record.
pub struct NewDeployment<'a> {
    pub step: &'a StepInfo,
    pub key: &'a QueueKey,
    pub commit_sha: &'a str,
    pub branch: &'a str,
    pub rollback: bool,
}

impl Store {
    /// Where a commit stands in its branch's history as pipedeck saw it: the first run
    /// of the service on that branch that carried it (a rerun ranks as its original).
    pub fn commit_rank(&self, service: &str, branch: &str, commit: &str) -> Result<Option<i64>> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT MIN(id) FROM runs WHERE kind = 'service' AND service = ?1 AND branch = ?2 \
                 AND commit_sha = ?3",
            )?
            .query_row(params![service, branch, commit], |r| r.get(0))?)
    }

    /// Whether run `id` may deploy a commit older than an environment runs.
    pub fn allows_older(&self, id: i64) -> Result<bool> {
        Ok(self
            .conn
            .prepare_cached("SELECT allow_older FROM runs WHERE id = ?1")?
            .query_row([id], |r| r.get(0))
            .optional()?
            .unwrap_or(false))
    }

    /// The last deploy that started in an environment, however it ended.
    pub fn last_deployment(&self, key: &QueueKey) -> Result<Option<Deployment>> {
        self.deployment_where(key, "1")
    }

    /// What an environment runs: its last successful deploy.
    pub fn current_deployment(&self, key: &QueueKey) -> Result<Option<Deployment>> {
        self.deployment_where(key, "status = 'succeeded'")
    }

    fn deployment_where(&self, key: &QueueKey, cond: &str) -> Result<Option<Deployment>> {
        Ok(self
            .conn
            .prepare_cached(&format!(
                "SELECT {DEPLOY_COLS} FROM deployments WHERE service = ?1 AND env = ?2 AND {cond} \
                 ORDER BY id DESC LIMIT 1"
            ))?
            .query_row(params![key.service, key.env], deploy_row)
            .optional()?)
    }

    /// The deployment a deploy row started, if it started one.
    pub fn deployment_of_step(&self, step_id: i64) -> Result<Option<Deployment>> {
        Ok(self
            .conn
            .prepare_cached(&format!(
                "SELECT {DEPLOY_COLS} FROM deployments WHERE step_id = ?1"
            ))?
            .query_row([step_id], deploy_row)
            .optional()?)
    }

    /// Every deployment of a run, oldest first.
    pub fn deployments(&self, run_id: i64) -> Result<Vec<Deployment>> {
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT {DEPLOY_COLS} FROM deployments WHERE run_id = ?1 ORDER BY id"
        ))?;
        let rows = st.query_map([run_id], deploy_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub fn insert_deployment(&self, d: &NewDeployment<'_>, at: Millis) -> Result<Deployment> {
        self.conn
            .prepare_cached(
                "INSERT INTO deployments (run_id, step_id, service, env, commit_sha, branch, status, \
                 rollback, started_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'deploying', ?7, ?8)",
            )?
            .execute(params![
                d.step.run_id,
                d.step.id,
                d.key.service,
                d.key.env,
                d.commit_sha,
                d.branch,
                d.rollback,
                at
            ])?;
        Ok(Deployment {
            id: self.conn.last_insert_rowid(),
            run_id: d.step.run_id,
            service: d.key.service.clone(),
            env: d.key.env.clone(),
            commit_sha: d.commit_sha.to_string(),
            branch: d.branch.to_string(),
            status: DeployStatus::Deploying,
            rollback: d.rollback,
            started_at: at,
            ended_at: None,
        })
    }

    /// Ends the deployment a step started, if it is still deploying.
    pub fn end_deployment(&self, step_id: i64, status: DeployStatus, at: Millis) -> Result<()> {
        self.conn
            .prepare_cached(
                "UPDATE deployments SET status = ?2, ended_at = ?3 \
                 WHERE step_id = ?1 AND status = 'deploying'",
            )?
            .execute(params![step_id, status.as_str(), at])?;
        Ok(())
    }

    /// A check after the deploy step `step_id` failed: its deployment, succeeded so
    /// far, failed after all (and is no longer what the environment runs).
    pub fn fail_verified_deployment(&self, step_id: i64) -> Result<()> {
        self.conn
            .prepare_cached(
                "UPDATE deployments SET status = 'failed' \
                 WHERE step_id = ?1 AND status = 'succeeded'",
            )?
            .execute([step_id])?;
        Ok(())
    }

    /// After a crash: deploys that were in flight did not finish.
    pub fn interrupt_deployments(&self, at: Millis) -> Result<()> {
        self.conn
            .prepare_cached(
                "UPDATE deployments SET status = 'interrupted', ended_at = ?1 \
                 WHERE status = 'deploying'",
            )?
            .execute([at])?;
        Ok(())
    }

    /// An environment's queue from its committed rows: what it runs, who deploys, who
    /// waits (trigger order), and the last few superseded.
    pub fn queue_entries(&self, key: &QueueKey) -> Result<Vec<QueueEntry>> {
        let mut out: Vec<QueueEntry> = self
            .current_deployment(key)?
            .map(|d| QueueEntry {
                run_id: d.run_id,
                commit_sha: d.commit_sha,
                state: QueueState::Current,
            })
            .into_iter()
            .collect();
        let entry = |r: &Row<'_>, state: QueueState| -> rusqlite::Result<QueueEntry> {
            Ok(QueueEntry {
                run_id: r.get(0)?,
                commit_sha: r.get(1)?,
                state,
            })
        };
        let mut st = self.conn.prepare_cached(
            "SELECT r.id, r.commit_sha, s.status FROM steps s JOIN runs r ON r.id = s.run_id \
             WHERE s.stage = 'deploy' AND s.name = ?2 \
             AND s.status IN ('pending', 'queued', 'running', 'awaiting_approval') \
             AND r.kind = 'service' AND r.service = ?1 ORDER BY r.id",
        )?;
        let mut active: Vec<QueueEntry> = st
            .query_map(params![key.service, key.env], |r| {
                let state = match r.get::<_, String>(2)?.as_str() {
                    "running" => QueueState::Deploying,
                    "queued" => QueueState::Waiting,
                    "awaiting_approval" => QueueState::AtGate,
                    _ => QueueState::OnItsWay,
                };
                entry(r, state)
            })?
            .collect::<rusqlite::Result<_>>()?;
        // The one deploying first, then the rest in trigger order.
        active.sort_by_key(|e| (e.state != QueueState::Deploying, e.run_id));
        out.extend(active);
        let mut st = self.conn.prepare_cached(
            "SELECT r.id, r.commit_sha FROM steps s JOIN runs r ON r.id = s.run_id \
             WHERE s.stage = 'deploy' AND s.name = ?2 AND s.superseded_by IS NOT NULL \
             AND r.kind = 'service' AND r.service = ?1 ORDER BY r.id DESC LIMIT 3",
        )?;
        let mut gone: Vec<QueueEntry> = st
            .query_map(params![key.service, key.env], |r| {
                entry(r, QueueState::Superseded)
            })?
            .collect::<rusqlite::Result<_>>()?;
        gone.reverse();
        out.extend(gone);
        Ok(out)
    }
}
