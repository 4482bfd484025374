//! The runner's commit-then-publish and crash handling.
use super::*;
use crate::domain::Stage;
use crate::store::NewStep;

#[tokio::test]
async fn a_driver_that_panics_is_reported() {
    let (tx, mut rx) = mpsc::channel(4);
    let driver = tokio::spawn(async { panic!("boom") });
    supervise(driver, tx.clone(), 7).await;
    match rx.try_recv() {
        Ok(Msg::Crashed(7, why)) => assert_eq!(why, "boom"),
        _ => panic!("no crash reported"),
    }
    // One that ends normally is not.
    supervise(tokio::spawn(async {}), tx, 8).await;
    assert!(rx.try_recv().is_err());
}

fn runner(dir: &std::path::Path) -> (Runner, tokio::sync::broadcast::Receiver<Event>) {
    let shared = Arc::new(Shared::new(dir, 1));
    let seen = shared.events.subscribe();
    let (tx, rx) = mpsc::channel(4);
    (
        Runner::new(Store::in_memory().unwrap(), shared, tx, rx),
        seen,
    )
}

fn new_run() -> NewRun {
    NewRun::sample(crate::domain::RunSpec::sample())
}

/// EN-3: a batch whose COMMIT fails publishes nothing, carries out none of its
/// side effects, answers its caller with the failure, and leaves the store as it was.
#[tokio::test]
async fn a_failed_commit_publishes_nothing_and_tells_the_caller() {
    let dir = tempfile::tempdir().unwrap();
    let (mut r, mut seen) = runner(dir.path());
    let run = r.store.insert_run(&new_run(), now_ms()).unwrap();
    r.active.insert(run.id, CancellationToken::new());
    let token = r.active[&run.id].clone();

    let mut out = Out::default();
    r.store.begin().unwrap();
    let (reply, answer) = oneshot::channel();
    r.handle_one(Msg::Cancel(run.id, "alice".into(), reply), &mut out);
    assert!(!out.events.is_empty(), "the cancel made changes to publish");
    // A change in the same batch that only fails at COMMIT (a deferred foreign key).
    r.store
        .execute_raw("PRAGMA defer_foreign_keys = ON")
        .unwrap();
    r.store
        .execute_raw(
            "INSERT INTO steps (run_id, stage, name, position, status) \
             VALUES (9999, 'build', 'x', 0, 'pending')",
        )
        .unwrap();
    let stored = r.store.commit();
    assert!(stored.is_err());
    r.publish(out, stored.err().map(EngineError::from));

    let err = answer.await.unwrap().unwrap_err();
    assert!(err.to_string().contains("could not store"), "{err}");
    assert!(seen.try_recv().is_err(), "an event was published");
    assert!(
        !token.is_cancelled(),
        "the run's scheduler was told to stop"
    );
    let stored = r.store.run(run.id).unwrap().unwrap();
    assert_eq!(stored.status, RunStatus::Queued);
    assert!(r.store.audit(run.id).unwrap().is_empty());
}

/// A command that fails part-way leaves nothing of itself in the batch; the rest
/// of the batch is stored.
#[tokio::test]
async fn a_failed_command_is_undone_and_the_rest_of_the_batch_stays() {
    let dir = tempfile::tempdir().unwrap();
    let (mut r, mut seen) = runner(dir.path());
    let run = r.store.insert_run(&new_run(), now_ms()).unwrap();
    // Cancel writes its audit entry, then fails to set the run's status.
    r.store
        .execute_raw(
            "CREATE TRIGGER refuse BEFORE UPDATE ON runs WHEN NEW.status = 'cancelling' \
             BEGIN SELECT RAISE(ABORT, 'refused'); END",
        )
        .unwrap();
    let mut out = Out::default();
    r.store.begin().unwrap();
    let running = Msg::RunStatus {
        run_id: run.id,
        status: RunStatus::Running,
        reason: None,
    };
    r.handle_one(running, &mut out);
    let (reply, answer) = oneshot::channel();
    r.handle_one(Msg::Cancel(run.id, "alice".into(), reply), &mut out);
    r.store.commit().unwrap();
    r.publish(out, None);
    assert!(answer.await.unwrap().is_err());
    assert!(
        r.store.audit(run.id).unwrap().is_empty(),
        "half a cancel stayed"
    );
    let stored = r.store.run(run.id).unwrap().unwrap();
    assert_eq!(stored.status, RunStatus::Running);
    match seen.try_recv() {
        Ok(Event::Run { run }) => assert_eq!(run.status, RunStatus::Running),
        other => panic!("expected the running run, got {other:?}"),
    }
    assert!(seen.try_recv().is_err(), "the failed cancel published");
}

#[tokio::test]
async fn a_crashed_run_fails_with_its_unfinished_steps() {
    let dir = tempfile::tempdir().unwrap();
    let (mut r, mut seen) = runner(dir.path());
    let new = new_run();
    let run = r.store.insert_run(&new, now_ms()).unwrap();
    let build = |name| NewStep {
        stage: Stage::Build,
        name,
        parent: None,
    };
    let [mut done, mut running] = <[StepInfo; 2]>::try_from(
        r.store
            .insert_steps(run.id, &[build("a"), build("b")])
            .unwrap(),
    )
    .unwrap();
    done.status = StepStatus::Succeeded;
    r.store.update_step(&done).unwrap();
    running.status = StepStatus::Running;
    r.store.update_step(&running).unwrap();
    let mut out = Out::default();
    r.set_run_status(run.id, RunStatus::Running, None, &mut out)
        .unwrap();
    r.active.insert(run.id, CancellationToken::new());

    let mut out = Out::default();
    r.handle(Msg::Crashed(run.id, "boom".into()), &mut out);
    assert!(r.active.is_empty());
    let d = r.store.detail(run.id).unwrap().unwrap();
    assert_eq!(d.run.status, RunStatus::Failed);
    assert!(d.run.reason.as_deref().unwrap_or("").contains("boom"));
    let status = |name: &str| d.steps.iter().find(|s| s.name == name).unwrap().status;
    assert_eq!(status("a"), StepStatus::Succeeded);
    assert_eq!(status("b"), StepStatus::Failed);
    assert!(
        out.events
            .iter()
            .any(|e| matches!(e, Event::Run { run } if run.status == RunStatus::Failed))
    );
    assert!(seen.try_recv().is_err()); // published only after the commit
}
