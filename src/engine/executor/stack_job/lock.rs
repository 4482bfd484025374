//! Why a Terraform operation failed, in words a person can act on: a state lock
//! someone holds (who, since when, and how an admin releases it if it is stale), or a
//! saved plan made stale by a change of the state, or two first inits of a pg backend
//! racing.

use crate::config::backend::{Backend, BackendKind};
use crate::domain::state_lock::{LOCKED, LockInfo};

/// The reason a failed Terraform operation of `resource` gets, from what its log
/// (`lines`) says; `None` keeps the exit status as the reason. `changes`: the
/// operation applies or destroys a saved plan.
pub(super) fn failure_reason<'a>(
    lines: impl IntoIterator<Item = &'a str> + Clone,
    changes: bool,
    backend: Option<&Backend>,
    resource: &str,
) -> Option<String> {
    let said = |what: &str| lines.clone().into_iter().any(|l| l.contains(what));
    if said("Error acquiring the state lock") {
        if backend.is_some_and(|b| b.kind == BackendKind::Pg) {
            // The pg backend's lock is a session's advisory lock: Terraform prints the
            // requester's own lock info, not the holder's.
            return Some(format!(
                "{LOCKED} by another PostgreSQL session (the pg backend does not record who \
                 holds a lock; the lock info in this log is this job's own request); nothing \
                 was changed"
            ));
        }
        return Some(match LockInfo::find(lines) {
            Some(info) => format!(
                "{LOCKED}, {}; nothing was changed (if that lock is stale, an \
                 admin can release it: pipedeck stack-job unlock {resource} {})",
                info.summary(),
                info.id
            ),
            None => format!(
                "{LOCKED} by someone else (Terraform's lock info is in this log); nothing was \
                 changed"
            ),
        });
    }
    if backend.is_some_and(|b| b.kind == BackendKind::Pg)
        && said("duplicate key value violates unique constraint")
    {
        // The pg backend makes its tables and its one sequence for all schemas with
        // IF NOT EXISTS, which two first inits at once can both attempt.
        return Some(
            "another Terraform was setting up the pg backend's tables in this database at \
             the same moment (a race in Terraform's pg backend on a database's first use); \
             nothing was changed: run it again"
                .into(),
        );
    }
    if changes && said("Saved plan is stale") {
        // Terraform refuses a plan made against a state that has changed since.
        return Some(
            "the saved plan is stale: the state changed after the preview, so nothing was \
             applied; preview again"
                .into(),
        );
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCKED: &[&str] = &[
        "│ Error: Error acquiring the state lock",
        "│ Lock Info:",
        "│   ID:        11-22",
        "│   Operation: OperationTypeApply",
        "│   Who:       alice@ops1",
        "│   Created:   2026-12-02 07:23:42.7 +0000 UTC",
        "│",
    ];

    fn backend(kind: BackendKind) -> Backend {
        Backend {
            kind,
            config: Default::default(),
            secrets: Vec::new(),
            lock_timeout_ms: None,
        }
    }

    #[test]
    fn names_the_holder_and_the_way_out() {
        let why = failure_reason(LOCKED.iter().copied(), true, None, "db").unwrap();
        assert_eq!(
            why,
            "the state is locked, held by alice@ops1 (OperationTypeApply since 2026-12-02 \
             07:23:42 UTC), lock id 11-22; nothing was changed (if that lock is stale, an admin \
             can release it: pipedeck stack-job unlock db 11-22)"
        );
    }

    #[test]
    fn a_pg_lock_does_not_name_a_holder() {
        let pg = backend(BackendKind::Pg);
        let why = failure_reason(LOCKED.iter().copied(), false, Some(&pg), "db").unwrap();
        assert!(why.starts_with("the state is locked by another PostgreSQL session"));
        assert!(!why.contains("alice"));
    }

    #[test]
    fn a_pg_setup_race_says_to_run_again() {
        let race = [
            "│ Error: pq: duplicate key value violates unique constraint \"pg_class_relname_nsp_index\"",
        ];
        let pg = backend(BackendKind::Pg);
        let why = failure_reason(race.iter().copied(), false, Some(&pg), "db").unwrap();
        assert!(why.ends_with("nothing was changed: run it again"), "{why}");
        assert_eq!(
            failure_reason(race.iter().copied(), false, None, "db"),
            None
        );
    }

    #[test]
    fn stale_plans_and_other_failures() {
        let stale = ["Error: Saved plan is stale"];
        assert!(failure_reason(stale.iter().copied(), true, None, "db").is_some());
        assert_eq!(
            failure_reason(stale.iter().copied(), false, None, "db"),
            None
        );
        assert_eq!(
            failure_reason(["boom"].iter().copied(), true, None, "db"),
            None
        );
    }
}
