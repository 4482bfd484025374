//! Schema migrations, applied in order; `PRAGMA user_version` records how far.

use rusqlite::Connection;

use super::{Result, StoreError};

pub(super) const MIGRATIONS: &[&str] = &[
    // 1: runs, steps, gates, audit.
    "CREATE TABLE runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL,
        service TEXT NOT NULL,
        run_type TEXT NOT NULL,
        trigger TEXT NOT NULL,
        branch TEXT NOT NULL,
        tag TEXT,
        commit_sha TEXT NOT NULL,
        commit_message TEXT NOT NULL,
        author TEXT NOT NULL,
        triggered_by TEXT NOT NULL,
        status TEXT NOT NULL,
        reason TEXT,
        created_at INTEGER NOT NULL,
        started_at INTEGER,
        ended_at INTEGER,
        rerun_of INTEGER REFERENCES runs(id),
        attempt INTEGER NOT NULL DEFAULT 1,
        definition TEXT NOT NULL
    );
    CREATE INDEX runs_status ON runs(status);
    CREATE INDEX runs_service ON runs(service, id);
    CREATE TABLE steps (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id INTEGER NOT NULL REFERENCES runs(id),
        stage TEXT NOT NULL,
        name TEXT NOT NULL,
        position INTEGER NOT NULL,
        status TEXT NOT NULL,
        reason TEXT,
        exit_code INTEGER,
        started_at INTEGER,
        ended_at INTEGER
    );
    CREATE INDEX steps_run ON steps(run_id, position);
    CREATE TABLE gates (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id INTEGER NOT NULL REFERENCES runs(id),
        env TEXT NOT NULL,
        status TEXT NOT NULL,
        opened_at INTEGER NOT NULL,
        expires_at INTEGER,
        decided_by TEXT,
        decided_at INTEGER,
        comment TEXT
    );
    CREATE INDEX gates_run ON gates(run_id, env);
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at INTEGER NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        run_id INTEGER NOT NULL,
        target TEXT,
        comment TEXT
    );
    CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;",
    // 2: infra pipelines: operations under resources, resource outputs, deploy/undeploy.
    "ALTER TABLE steps ADD COLUMN parent_id INTEGER REFERENCES steps(id);
    ALTER TABLE steps ADD COLUMN outputs TEXT;
    ALTER TABLE runs ADD COLUMN operation TEXT;",
    // 3: a run's definition (a whole project, megabytes for a large infra project) in a
    // table of its own, so that reading a run row never walks it.
    "CREATE TABLE definitions (
        run_id INTEGER PRIMARY KEY REFERENCES runs(id),
        definition TEXT NOT NULL
    );
    INSERT INTO definitions (run_id, definition) SELECT id, definition FROM runs;
    ALTER TABLE runs DROP COLUMN definition;",
    // 4: typed run specs. An infra run's environment was kept in `branch` and its
    // operation as `deploy`/`undeploy`; a stack job was an infra run with operation
    // `stack-job:OP` and its resource in `tag`. Each now has a column of its own.
    "ALTER TABLE runs ADD COLUMN environment TEXT;
    ALTER TABLE runs ADD COLUMN resource TEXT;
    UPDATE runs SET environment = branch, branch = '' WHERE kind = 'infra';
    UPDATE runs SET kind = 'stack_job', resource = tag, tag = NULL,
        operation = CASE operation WHEN 'stack-job:update' THEN 'apply'
                                   ELSE substr(operation, 11) END
        WHERE kind = 'infra' AND operation LIKE 'stack-job:%';
    UPDATE runs SET operation = CASE operation WHEN 'undeploy' THEN 'destroy' ELSE 'apply' END
        WHERE kind = 'infra';",
    // 5: deploy order per environment: each deploy's record (a deliberate rollback is
    // marked), why a deploy was superseded, and whether a run may go back on purpose.
    "CREATE TABLE deployments (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id INTEGER NOT NULL REFERENCES runs(id),
        step_id INTEGER NOT NULL REFERENCES steps(id),
        service TEXT NOT NULL,
        env TEXT NOT NULL,
        commit_sha TEXT NOT NULL,
        branch TEXT NOT NULL,
        status TEXT NOT NULL,
        rollback INTEGER NOT NULL DEFAULT 0,
        started_at INTEGER NOT NULL,
        ended_at INTEGER
    );
    CREATE INDEX deployments_env ON deployments(service, env, id);
    CREATE INDEX deployments_step ON deployments(step_id);
    CREATE INDEX steps_deploy ON steps(stage, name, status);
    CREATE INDEX runs_commit ON runs(service, branch, commit_sha);
    ALTER TABLE steps ADD COLUMN superseded_by INTEGER;
    ALTER TABLE runs ADD COLUMN allow_older INTEGER NOT NULL DEFAULT 0;",
    // 6: a step's process (its pid, also its process group) and the process's start
    // time, so that a restarted engine stops what the previous one left, and never a
    // process that merely reused the pid.
    "ALTER TABLE steps ADD COLUMN pid INTEGER;
    ALTER TABLE steps ADD COLUMN pid_start INTEGER;",
    // 7: chained pipelines: which runs started which, with what the upstream run was
    // and produced (JSON) when it did.
    "CREATE TABLE chain_links (
        downstream INTEGER NOT NULL REFERENCES runs(id),
        upstream INTEGER NOT NULL REFERENCES runs(id),
        data TEXT NOT NULL
    );
    CREATE INDEX chain_links_down ON chain_links(downstream);
    CREATE INDEX chain_links_up ON chain_links(upstream);",
    // 8: `all` chains waiting for more upstreams: per downstream service, which run
    // satisfied which `after` entry (by its position) since its last chained run, so
    // that a restart between the upstream runs still starts it once.
    "CREATE TABLE chain_pending (
        downstream TEXT NOT NULL,
        slot INTEGER NOT NULL,
        upstream INTEGER NOT NULL,
        PRIMARY KEY (downstream, slot)
    );",
    // 9: triggers (SP-7): one run per (service, trigger source, key) — a ref and its
    // commit, a pull request's head, a schedule's due time — so that a restart neither
    // repeats nor misses one; what each watcher last saw; webhook deliveries (replay).
    "CREATE TABLE trigger_fires (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        service TEXT NOT NULL,
        trigger TEXT NOT NULL,
        source TEXT NOT NULL,
        key TEXT NOT NULL,
        run_id INTEGER NOT NULL,
        at INTEGER NOT NULL,
        UNIQUE (service, source, key)
    );
    CREATE INDEX trigger_fires_trigger ON trigger_fires(service, trigger, id);
    CREATE TABLE trigger_seen (
        service TEXT NOT NULL,
        name TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (service, name)
    );
    CREATE TABLE hook_deliveries (
        source TEXT NOT NULL,
        delivery TEXT NOT NULL,
        at INTEGER NOT NULL,
        PRIMARY KEY (source, delivery)
    );",
    // 10: releases (DP-1, the "deployments"; named apart from the deploy records
    // of migration 5): a service run's packed artifact, kept after its run is pruned
    // (no reference to `runs`), and stations (DP-2): what each runs, what it switches
    // to next, and whether it is pinned.
    "CREATE TABLE releases (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id INTEGER NOT NULL,
        service TEXT NOT NULL,
        commit_sha TEXT NOT NULL,
        branch TEXT NOT NULL,
        tag TEXT,
        environment TEXT NOT NULL,
        trigger TEXT NOT NULL,
        status TEXT NOT NULL,
        runtime TEXT NOT NULL,
        platform TEXT NOT NULL,
        started_at INTEGER NOT NULL,
        ended_at INTEGER,
        digest TEXT,
        size INTEGER,
        promoted_from INTEGER
    );
    CREATE INDEX releases_run ON releases(run_id);
    CREATE INDEX releases_service ON releases(service, id);
    CREATE TABLE stations (
        name TEXT PRIMARY KEY,
        service TEXT NOT NULL,
        current INTEGER,
        pending INTEGER,
        pinned INTEGER NOT NULL DEFAULT 0,
        error TEXT
    );",
    // 11: pruning (gc) deletes runs, steps and deployments by run; the foreign keys that
    // point at them (a rerun's original, an operation's resource step, a deployment's
    // run) are checked on each delete, a scan of the whole table without these. With
    // them, gc over 10,000 runs takes a fraction of a second instead of seconds.
    "CREATE INDEX runs_rerun_of ON runs(rerun_of);
    CREATE INDEX steps_parent ON steps(parent_id);
    CREATE INDEX deployments_run ON deployments(run_id);",
    // 12: the Slurm job a step submitted (issue 20), so that a restarted engine
    // re-attaches to it, or stops it when its run was cancelled.
    "ALTER TABLE steps ADD COLUMN slurm_job INTEGER;",
    // 13: a state job's operation and its arguments (issue 22 part 3), as JSON
    // (`{"op":"taint","addresses":[…]}`), so that it shows, audits and reruns as given.
    "ALTER TABLE runs ADD COLUMN state_op TEXT;",
    // 14: Terraform as teams run it (issue 22): the addresses a targeted stack job was
    // limited to (a JSON array; NULL: not targeted), and each infra resource's latest
    // drift check (plan-only: drifted or not, the plan summary, when).
    "ALTER TABLE runs ADD COLUMN targets TEXT;
    CREATE TABLE drift (
        project TEXT NOT NULL,
        resource TEXT NOT NULL,
        status TEXT NOT NULL,
        summary TEXT,
        detail TEXT,
        checked_at INTEGER NOT NULL,
        PRIMARY KEY (project, resource)
    );",
    // 15: stations switch in rollout runs (issue 18): a rollout's release, and the
    // rollout that switches each station to its pending release.
    "ALTER TABLE runs ADD COLUMN release_id INTEGER;
    ALTER TABLE stations ADD COLUMN switch_run INTEGER;",
    // 16: the index that finds an environment's deploys holds deploy steps only. Every
    // step's status change also rewrote its entry there: build steps, infra resources
    // and operations, which no query looks up by it. (The queries name
    // `stage = 'deploy'`, so SQLite uses the partial index.)
    "DROP INDEX steps_deploy;
    CREATE INDEX steps_deploy ON steps(name, status) WHERE stage = 'deploy';",
];

pub fn migrate(conn: &mut Connection) -> Result<()> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let known = MIGRATIONS.len() as i64;
    if version > known {
        return Err(StoreError::TooNew(version, known));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
    }
    Ok(())
}
