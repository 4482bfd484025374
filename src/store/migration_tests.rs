//! Databases written by older releases open and migrate.

use super::*;

/// A database written by the first release (schema 1) opens, migrates, and keeps
/// its runs, steps and waiting gate.
#[test]
fn schema_1_database_migrates() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/state-v1.db"),
        &db,
    )
    .unwrap();
    let s = Store::open(&db).unwrap();
    let runs = s.list_runs(&RunFilter::default()).unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].status, RunStatus::AwaitingApproval);
    assert_eq!(runs[0].operation, None);
    let steps = s.steps(runs[0].id).unwrap();
    assert_eq!(steps.len(), 8);
    assert!(steps.iter().all(|st| st.parent_id.is_none()));
    assert_eq!(s.waiting_gates().unwrap().len(), 1);
    assert!(s.definition(runs[0].id).unwrap().is_some());
    let version: i64 = s
        .conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, super::migrations::MIGRATIONS.len() as i64);
}

/// Schema 3 kept an infra run's environment in `branch` and a stack job as an
/// infra run with operation `stack-job:OP` and its resource in `tag`; schema 4 gives
/// each its own typed column.
#[test]
fn schema_3_infra_runs_and_stack_jobs_get_typed_columns() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    {
        let conn = Connection::open(&db).unwrap();
        for sql in &super::migrations::MIGRATIONS[..3] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", 3).unwrap();
        let insert = "INSERT INTO runs (kind, service, run_type, trigger, branch, tag, \
            commit_sha, commit_message, author, triggered_by, status, created_at, attempt, \
            operation) VALUES (?1, ?2, 'production', 'manual', ?3, ?4, '', 'm', 'a', 't', \
            'succeeded', 1, 1, ?5)";
        // kind, service, branch, tag, operation
        type Old<'a> = (&'a str, &'a str, &'a str, Option<&'a str>, Option<&'a str>);
        let rows: [Old; 4] = [
            ("service", "web", "main", Some("v1"), None),
            ("infra", "net", "staging", None, Some("deploy")),
            ("infra", "net", "staging", None, Some("undeploy")),
            (
                "infra",
                "net",
                "staging",
                Some("db"),
                Some("stack-job:update"),
            ),
        ];
        for r in rows {
            conn.execute(insert, params![r.0, r.1, r.2, r.3, r.4])
                .unwrap();
        }
    }
    let s = Store::open(&db).unwrap();
    let mut runs = s.list_runs(&RunFilter::default()).unwrap();
    runs.sort_by_key(|r| r.id);
    let specs: Vec<RunSpec> = runs.iter().map(RunInfo::spec).collect();
    assert_eq!(
        specs,
        [
            RunSpec::Service {
                service: "web".into(),
                branch: "main".into(),
                tag: Some("v1".into()),
                commit: String::new(),
            },
            RunSpec::Infra {
                project: "net".into(),
                environment: "staging".into(),
                undeploy: false,
            },
            RunSpec::Infra {
                project: "net".into(),
                environment: "staging".into(),
                undeploy: true,
            },
            RunSpec::StackJob {
                project: "net".into(),
                environment: "staging".into(),
                resource: "db".into(),
                operation: Operation::Apply,
                state: None,
                targets: Vec::new(),
            },
        ]
    );
    assert_eq!(runs[3].tag, None);
    assert_eq!(runs[1].branch, "");
}
