//! How runs, steps and gates are read from their rows: the columns each query selects,
//! and the typed values made from them (a word that is not one fails the read).

use rusqlite::Row;

use crate::domain::{
    GateInfo, GateStatus, Operation, RunInfo, RunKind, RunStatus, RunType, Stage, StepInfo,
    StepStatus, Trigger,
};

pub(super) const RUN_COLS: &str = "id, kind, service, run_type, trigger, branch, tag, commit_sha, commit_message, \
     author, triggered_by, status, reason, created_at, started_at, ended_at, rerun_of, attempt, operation, \
     environment, resource, state_op, targets, release_id";
pub(super) const STEP_COLS: &str = "id, run_id, stage, name, position, status, reason, exit_code, started_at, ended_at, \
     parent_id, outputs, superseded_by, slurm_job";
pub(super) const GATE_COLS: &str =
    "id, run_id, env, status, opened_at, expires_at, decided_by, decided_at, comment";

pub(super) fn word<T>(parse: fn(&str) -> Option<T>, s: String, idx: usize) -> rusqlite::Result<T> {
    parse(&s).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            idx,
            rusqlite::types::Type::Text,
            format!("unknown word {s:?}").into(),
        )
    })
}

pub(super) fn run_row(r: &Row<'_>) -> rusqlite::Result<RunInfo> {
    Ok(RunInfo {
        id: r.get(0)?,
        kind: word(RunKind::parse, r.get(1)?, 1)?,
        service: r.get(2)?,
        run_type: word(RunType::parse, r.get(3)?, 3)?,
        trigger: word(Trigger::parse, r.get(4)?, 4)?,
        branch: r.get(5)?,
        tag: r.get(6)?,
        commit_sha: r.get(7)?,
        commit_message: r.get(8)?,
        author: r.get(9)?,
        triggered_by: r.get(10)?,
        status: word(RunStatus::parse, r.get(11)?, 11)?,
        reason: r.get(12)?,
        created_at: r.get(13)?,
        started_at: r.get(14)?,
        ended_at: r.get(15)?,
        rerun_of: r.get(16)?,
        attempt: r.get(17)?,
        operation: r
            .get::<_, Option<String>>(18)?
            .map(|o| word(Operation::parse, o, 18))
            .transpose()?,
        environment: r.get(19)?,
        resource: r.get(20)?,
        state_op: json_column(r, 21, "state operation")?,
        targets: json_column(r, 22, "targets")?.unwrap_or_default(),
        release: r.get(23)?,
    })
}

/// Column `idx`, JSON text or NULL, as a `T`; unreadable JSON is a conversion error
/// that names `what`.
fn json_column<T: serde::de::DeserializeOwned>(
    r: &Row<'_>,
    idx: usize,
    what: &str,
) -> rusqlite::Result<Option<T>> {
    r.get::<_, Option<String>>(idx)?
        .map(|s| {
            serde_json::from_str(&s).map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(
                    idx,
                    rusqlite::types::Type::Text,
                    format!("unreadable {what} {s:?}: {e}").into(),
                )
            })
        })
        .transpose()
}

pub(super) fn step_row(r: &Row<'_>) -> rusqlite::Result<StepInfo> {
    Ok(StepInfo {
        id: r.get(0)?,
        run_id: r.get(1)?,
        stage: word(Stage::parse, r.get(2)?, 2)?,
        name: r.get(3)?,
        position: r.get(4)?,
        status: word(StepStatus::parse, r.get(5)?, 5)?,
        reason: r.get(6)?,
        exit_code: r.get(7)?,
        started_at: r.get(8)?,
        ended_at: r.get(9)?,
        parent_id: r.get(10)?,
        outputs: r
            .get::<_, Option<String>>(11)?
            .and_then(|s| serde_json::from_str(&s).ok()),
        superseded_by: r.get(12)?,
        slurm_job: r.get::<_, Option<i64>>(13)?.map(|j| j as u64),
    })
}

pub(super) fn gate_row(r: &Row<'_>) -> rusqlite::Result<GateInfo> {
    Ok(GateInfo {
        id: r.get(0)?,
        run_id: r.get(1)?,
        env: r.get(2)?,
        status: word(GateStatus::parse, r.get(3)?, 3)?,
        opened_at: r.get(4)?,
        expires_at: r.get(5)?,
        decided_by: r.get(6)?,
        decided_at: r.get(7)?,
        comment: r.get(8)?,
    })
}
