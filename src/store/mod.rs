//! State in SQLite (runs, steps, gates, audit); logs in append-only files ([`logs`]).

pub mod artifacts;
mod audit;
pub mod backup;
mod chains;
pub mod deploys;
mod drift;
mod log_writer;
pub mod logs;
mod migrations;
mod new_steps;
mod procs;
pub mod releases;
pub mod retention;
mod rows;
#[cfg(test)]
mod samples;
mod transaction;
pub mod triggers;

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};

use crate::config::Service;
use crate::domain::{
    GateInfo, GateStatus, Millis, Operation, RunDetail, RunInfo, RunKind, RunSpec, RunStatus,
    RunType, StepInfo, Trigger,
};

pub use logs::{Direction, LogLine, LogStore, LogWriter};
pub use new_steps::NewStep;
use rows::{GATE_COLS, RUN_COLS, STEP_COLS, gate_row, run_row, step_row, word};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("stored pipeline definition is unreadable: {0}")]
    Json(#[from] serde_json::Error),
    #[error(
        "the database schema version {0} is newer than this pipedeck knows ({1}); upgrade pipedeck"
    )]
    TooNew(i64, i64),
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// A run to insert: everything but the id and the statuses.
#[derive(Debug, Clone)]
pub struct NewRun {
    /// What the run executes.
    pub spec: RunSpec,
    pub run_type: RunType,
    pub trigger: Trigger,
    pub commit_message: String,
    pub author: String,
    pub triggered_by: String,
    pub rerun_of: Option<i64>,
    pub attempt: i64,
    /// Deploys may go back to an older commit than an environment runs (SP-6a, issue 24).
    pub allow_older: bool,
    /// The pipeline definition as it was (a service, or an infra project), as JSON
    /// text: written straight from the typed definition, never through a
    /// `serde_json::Value` (for a 10,000-resource project, building, printing and
    /// dropping that tree took about 180 ms of the run's start).
    pub definition: String,
    /// The runs that started this one (a chain, SP-7a).
    pub upstream: Vec<crate::domain::chain::Upstream>,
}

/// Filters for listing runs; newest first.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct RunFilter {
    /// One run by id.
    pub id: Option<i64>,
    pub service: Option<String>,
    pub status: Option<RunStatus>,
    pub limit: Option<usize>,
}

/// One entry of the append-only audit log.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AuditEntry {
    pub at: Millis,
    pub actor: String,
    pub action: String,
    /// The run it is about; [`AuditEntry::NO_RUN`] for none (a refused request to
    /// trigger, list, read...).
    pub run_id: i64,
    pub target: Option<String>,
    pub comment: Option<String>,
}

impl AuditEntry {
    /// The action of a refused request: `target` says what was asked, `comment` why
    /// it was refused.
    pub const REFUSED: &str = "refused";
    /// `run_id` of an entry about no run (run ids start at 1).
    pub const NO_RUN: i64 = 0;

    /// The run it is about, if one.
    pub fn run(&self) -> Option<i64> {
        (self.run_id != Self::NO_RUN).then_some(self.run_id)
    }
}

pub struct Store {
    conn: Connection,
    /// Whether commits are `synchronous=FULL` now (see [`Store::set_durable`]).
    durable: bool,
}

impl Store {
    /// Opens (creating and migrating) the database at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let conn = Connection::open(path)?;
        Self::init(conn)
    }

    /// An in-memory database, for tests.
    pub fn in_memory() -> Result<Self> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(mut conn: Connection) -> Result<Self> {
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        // Closing leaves the WAL for the next open instead of checkpointing it: every
        // commit is already in the WAL, and a short-lived CLI engine (`run --wait`)
        // would otherwise spend its last milliseconds copying pages and fsyncing.
        conn.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
            true,
        )?;
        migrations::migrate(&mut conn)?;
        Ok(Self {
            conn,
            durable: false,
        })
    }

    pub fn insert_run(&self, new: &NewRun, now: Millis) -> Result<RunInfo> {
        // The spec's fields, each in its own column.
        let state_op = match &new.spec {
            RunSpec::StackJob {
                state: Some(op), ..
            } => Some(serde_json::to_string(op).map_err(|e| {
                StoreError::Sql(rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
            })?),
            _ => None,
        };
        let targets = match &new.spec {
            RunSpec::StackJob { targets, .. } if !targets.is_empty() => {
                Some(serde_json::to_string(targets)?)
            }
            _ => None,
        };
        let (name, branch, tag, commit, environment, resource, operation) = match &new.spec {
            RunSpec::Service {
                service,
                branch,
                tag,
                commit,
            } => (
                service,
                branch.as_str(),
                tag.as_deref(),
                commit.as_str(),
                None,
                None,
                None,
            ),
            RunSpec::Infra {
                project,
                environment,
                undeploy,
            } => {
                let op = if *undeploy {
                    Operation::Destroy
                } else {
                    Operation::Apply
                };
                (project, "", None, "", Some(environment), None, Some(op))
            }
            RunSpec::StackJob {
                project,
                environment,
                resource,
                operation,
                ..
            } => (
                project,
                "",
                None,
                "",
                Some(environment),
                Some(resource),
                Some(*operation),
            ),
            RunSpec::Rollout {
                service,
                branch,
                commit,
                ..
            } => (
                service,
                branch.as_str(),
                None,
                commit.as_str(),
                None,
                None,
                None,
            ),
        };
        let release = match &new.spec {
            RunSpec::Rollout { release, .. } => Some(*release),
            _ => None,
        };
        self.conn
            .prepare_cached(
                "INSERT INTO runs (kind, service, run_type, trigger, branch, tag, commit_sha, \
                 commit_message, author, triggered_by, status, created_at, rerun_of, attempt, operation, \
                 environment, resource, allow_older, state_op, targets, release_id) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 'queued', ?11, ?12, ?13, ?14, ?15, ?16, \
                 ?17, ?18, ?19, ?20)",
            )?
            .execute(params![
                new.spec.kind().as_str(),
                name,
                new.run_type.as_str(),
                new.trigger.as_str(),
                branch,
                tag,
                commit,
                new.commit_message,
                new.author,
                new.triggered_by,
                now,
                new.rerun_of,
                new.attempt,
                operation.map(Operation::as_str),
                environment,
                resource,
                new.allow_older,
                state_op,
                targets,
                release
            ])?;
        let id = self.conn.last_insert_rowid();
        self.conn
            .prepare_cached("INSERT INTO definitions (run_id, definition) VALUES (?1, ?2)")?
            .execute(params![id, new.definition])?;
        self.run(id)?
            .ok_or(StoreError::Sql(rusqlite::Error::QueryReturnedNoRows))
    }

    pub fn update_run(&self, r: &RunInfo) -> Result<()> {
        self.conn
            .prepare_cached(
                "UPDATE runs SET status = ?2, reason = ?3, started_at = ?4, ended_at = ?5 WHERE id = ?1",
            )?
            .execute(params![r.id, r.status.as_str(), r.reason, r.started_at, r.ended_at])?;
        Ok(())
    }

    pub fn update_step(&self, s: &StepInfo) -> Result<()> {
        self.conn
            .prepare_cached(
                "UPDATE steps SET status = ?2, reason = ?3, exit_code = ?4, started_at = ?5, ended_at = ?6, \
                 outputs = ?7, superseded_by = ?8 WHERE id = ?1",
            )?
            .execute(params![
                s.id,
                s.status.as_str(),
                s.reason,
                s.exit_code,
                s.started_at,
                s.ended_at,
                s.outputs.as_ref().map(|o| o.to_string()),
                s.superseded_by
            ])?;
        Ok(())
    }

    pub fn run(&self, id: i64) -> Result<Option<RunInfo>> {
        Ok(self
            .conn
            .prepare_cached(&format!("SELECT {RUN_COLS} FROM runs WHERE id = ?1"))?
            .query_row([id], run_row)
            .optional()?)
    }

    /// A service run's stored pipeline definition.
    pub fn definition(&self, run_id: i64) -> Result<Option<Service>> {
        self.definition_as(run_id)
    }

    /// A run's stored definition, as the type its kind stores.
    pub fn definition_as<T: serde::de::DeserializeOwned>(&self, run_id: i64) -> Result<Option<T>> {
        let def = self.definition_text(run_id)?;
        Ok(def.map(|d| serde_json::from_str(&d)).transpose()?)
    }

    /// A run's stored definition as the JSON text it was stored as.
    pub fn definition_text(&self, run_id: i64) -> Result<Option<String>> {
        Ok(self
            .conn
            .prepare_cached("SELECT definition FROM definitions WHERE run_id = ?1")?
            .query_row([run_id], |r| r.get(0))
            .optional()?)
    }

    pub fn steps(&self, run_id: i64) -> Result<Vec<StepInfo>> {
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT {STEP_COLS} FROM steps WHERE run_id = ?1 ORDER BY position"
        ))?;
        let rows = st.query_map([run_id], step_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub fn gates(&self, run_id: i64) -> Result<Vec<GateInfo>> {
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT {GATE_COLS} FROM gates WHERE run_id = ?1 ORDER BY id"
        ))?;
        let rows = st.query_map([run_id], gate_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Run `run_id`'s latest gate at `env` (a gate opened again after a restart or a
    /// supersession is a new row), whatever its status.
    pub fn last_gate(&self, run_id: i64, env: &str) -> Result<Option<GateInfo>> {
        Ok(self
            .conn
            .prepare_cached(&format!(
                "SELECT {GATE_COLS} FROM gates WHERE run_id = ?1 AND env = ?2 ORDER BY id DESC LIMIT 1"
            ))?
            .query_row(params![run_id, env], gate_row)
            .optional()?)
    }

    pub fn detail(&self, run_id: i64) -> Result<Option<RunDetail>> {
        let Some(run) = self.run(run_id)? else {
            return Ok(None);
        };
        let graph = match run.kind {
            RunKind::Infra | RunKind::StackJob => self
                .definition_as::<crate::config::infra::InfraProject>(run_id)?
                .map(|p| {
                    p.resources
                        .into_iter()
                        .map(|r| crate::domain::GraphNode {
                            id: r.id,
                            depends_on: r.depends_on,
                        })
                        .collect()
                })
                .unwrap_or_default(),
            RunKind::Service | RunKind::Rollout => Vec::new(),
        };
        Ok(Some(RunDetail {
            run,
            steps: self.steps(run_id)?,
            gates: self.gates(run_id)?,
            graph,
            chain: self.chain_links(run_id)?,
        }))
    }

    pub fn list_runs(&self, f: &RunFilter) -> Result<Vec<RunInfo>> {
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT {RUN_COLS} FROM runs WHERE (?1 IS NULL OR service = ?1) AND (?2 IS NULL OR status = ?2) \
             AND (?4 IS NULL OR id = ?4) ORDER BY id DESC LIMIT ?3"
        ))?;
        let limit = f.limit.map(|l| l as i64).unwrap_or(-1);
        let rows = st.query_map(
            params![f.service, f.status.map(|s| s.as_str()), limit, f.id],
            run_row,
        )?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Runs whose status is one of `statuses`, oldest first.
    pub fn runs_with_status(&self, statuses: &[RunStatus]) -> Result<Vec<RunInfo>> {
        let mut out = Vec::new();
        for s in statuses {
            out.extend(self.list_runs(&RunFilter {
                status: Some(*s),
                ..Default::default()
            })?);
        }
        out.sort_by_key(|r| r.id);
        Ok(out)
    }

    pub fn insert_gate(
        &self,
        run_id: i64,
        env: &str,
        now: Millis,
        expires_at: Option<Millis>,
    ) -> Result<GateInfo> {
        self.conn
            .prepare_cached(
                "INSERT INTO gates (run_id, env, status, opened_at, expires_at) VALUES (?1, ?2, 'waiting', ?3, ?4)",
            )?
            .execute(params![run_id, env, now, expires_at])?;
        Ok(GateInfo {
            id: self.conn.last_insert_rowid(),
            run_id,
            env: env.to_string(),
            status: GateStatus::Waiting,
            opened_at: now,
            expires_at,
            decided_by: None,
            decided_at: None,
            comment: None,
        })
    }

    pub fn update_gate(&self, g: &GateInfo) -> Result<()> {
        self.conn
            .prepare_cached(
                "UPDATE gates SET status = ?2, decided_by = ?3, decided_at = ?4, comment = ?5 WHERE id = ?1",
            )?
            .execute(params![g.id, g.status.as_str(), g.decided_by, g.decided_at, g.comment])?;
        Ok(())
    }

    /// Every gate still waiting, oldest first.
    /// How many runs the store holds in each status.
    pub fn runs_by_status(&self) -> Result<Vec<(RunStatus, u64)>> {
        let mut st = self
            .conn
            .prepare_cached("SELECT status, COUNT(*) FROM runs GROUP BY status")?;
        let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
        let mut out = Vec::new();
        for row in rows {
            let (status, n) = row?;
            if let Some(s) = RunStatus::parse(&status) {
                out.push((s, n.max(0) as u64));
            }
        }
        Ok(out)
    }

    pub fn waiting_gates(&self) -> Result<Vec<GateInfo>> {
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT {GATE_COLS} FROM gates WHERE status = 'waiting' ORDER BY opened_at, id"
        ))?;
        let rows = st.query_map([], gate_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Direct SQL, for tests that prove the audit log refuses edits.
    #[doc(hidden)]
    pub fn execute_raw(&self, sql: &str) -> Result<usize> {
        Ok(self.conn.execute(sql, [])?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_is_append_only() {
        let s = Store::in_memory().unwrap();
        let e = AuditEntry {
            at: 1,
            actor: "a".into(),
            action: "approve".into(),
            run_id: 1,
            target: Some("prod".into()),
            comment: None,
        };
        s.append_audit(&e).unwrap();
        assert!(s.execute_raw("UPDATE audit SET actor = 'b'").is_err());
        assert!(s.execute_raw("DELETE FROM audit").is_err());
        assert_eq!(s.audit(1).unwrap(), vec![e]);
    }

    #[test]
    fn durable_commits_wait_for_the_wal_fsync_and_others_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("state.db")).unwrap();
        let level = |s: &Store| -> i64 {
            s.conn
                .pragma_query_value(None, "synchronous", |r| r.get(0))
                .unwrap()
        };
        // NORMAL is 1, FULL is 2.
        assert_eq!(level(&s), 1);
        s.set_durable(true).unwrap();
        assert_eq!(level(&s), 2);
        s.set_durable(false).unwrap();
        assert_eq!(level(&s), 1);
    }
}

#[cfg(test)]
mod migration_tests;
