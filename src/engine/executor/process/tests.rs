//! A step's process: output, stop, timeout and start failures.

use super::*;
use tokio_util::sync::CancellationToken;

fn target(dir: &std::path::Path, secrets: &[String]) -> LogTarget {
    LogTarget {
        logs: LogStore::new(dir.to_path_buf()),
        run_id: 1,
        step_id: 1,
        events: broadcast::channel(64).0,
        masker: Arc::new(Masker::new(secrets)),
    }
}

/// A unit's context, its log going to `t`.
fn ctx(t: &LogTarget, stop: CancellationToken) -> UnitCtx {
    UnitCtx {
        log: t.clone(),
        stop,
        slot: None,
        owner: Owner {
            store: "process-tests".into(),
            started: Arc::new(|_, _| {}),
        },
        status: crate::engine::scheduler::UnitStatus::detached(),
    }
}

fn spec(command: &str) -> ProcSpec {
    ProcSpec {
        command: command.into(),
        argv: None,
        cwd: std::env::temp_dir(),
        env: Default::default(),
        extra_env: Vec::new(),
        kill_grace: Duration::from_secs(5),
        interrupt_first: false,
        timeout: None,
        hold_slot: false,
    }
}

#[tokio::test]
async fn output_is_stored_masked_and_announced_once_durable() {
    let dir = tempfile::tempdir().unwrap();
    let t = target(dir.path(), &["s3cret".into()]);
    let mut events = t.events.subscribe();
    note(&t, "starting").unwrap();
    let (outcome, _) = run(
        spec("echo out s3cret; echo err >&2; printf 'no newline'; exit 3"),
        &mut ctx(&t, CancellationToken::new()),
    )
    .await;
    assert_eq!(outcome, Outcome::Exited(3));
    let lines = t.logs.read(1, 1, 0, 10).unwrap();
    let mut texts: Vec<(&str, char)> = lines.iter().map(|l| (l.text.as_str(), l.stream)).collect();
    // stdout and stderr are separate pipes: their order between them is not fixed.
    texts[1..].sort();
    assert_eq!(
        texts,
        [
            ("starting", 'p'),
            ("err", 'e'),
            ("no newline", 'o'),
            ("out ***", 'o')
        ]
    );
    // Announced by the time the step is done: the note, then all four lines.
    let mut last = 0;
    while let Ok(Event::Log { total_lines, .. }) = events.try_recv() {
        last = total_lines;
    }
    assert_eq!(last, 4);
}

#[tokio::test]
async fn output_that_fills_the_pipe_before_it_is_watched_is_all_kept() {
    // 300 KiB at once: the step blocks on the full pipe until its output is first
    // read (WATCH_AFTER), and the flood moves on to the blocking reader.
    let dir = tempfile::tempdir().unwrap();
    let t = target(dir.path(), &[]);
    let step = "seq 1 50000 | sed 's/$/ xxxx/'";
    let (outcome, _) = run(spec(step), &mut ctx(&t, CancellationToken::new())).await;
    assert_eq!(outcome, Outcome::Exited(0));
    let lines = t.logs.read(1, 1, 0, 60_000).unwrap();
    assert_eq!(lines.len(), 50_000);
    assert!(
        lines
            .iter()
            .enumerate()
            .all(|(i, l)| l.text == format!("{} xxxx", i + 1))
    );
}

#[tokio::test]
async fn output_held_open_by_an_unmarked_process_is_read_until_the_drain_ends() {
    let dir = tempfile::tempdir().unwrap();
    let t = target(dir.path(), &[]);
    let started = Instant::now();
    // The step leaves a process of its own session, without the step's token,
    // holding stdout open: nothing can tell it is the step's, so only the drain
    // ends the reading.
    let mut step = spec(
        "echo before; env -u PIPEDECK_STEP_TOKEN setsid sh -c 'touch held; exec sleep 30' & \
         while [ ! -e held ]; do sleep 0.01; done; echo after",
    );
    step.cwd = dir.path().to_path_buf();
    let (outcome, _) = run(step, &mut ctx(&t, CancellationToken::new())).await;
    assert_eq!(outcome, Outcome::Exited(0));
    assert!(started.elapsed() >= DRAIN_AFTER_EXIT);
    let texts: Vec<String> = t
        .logs
        .read(1, 1, 0, 10)
        .unwrap()
        .into_iter()
        .map(|l| l.text)
        .collect();
    assert_eq!(texts, ["before", "after"]);
}

#[tokio::test]
async fn what_a_step_leaves_outside_its_group_is_stopped_when_it_ends() {
    let dir = tempfile::tempdir().unwrap();
    let t = target(dir.path(), &[]);
    let store = format!("escape-test-{}", std::process::id());
    super::children::start(&store);
    let mut c = ctx(&t, CancellationToken::new());
    c.owner.store = store.clone().into();
    // A daemon-style double fork: a new session, its parent gone at once, stdout
    // and stderr closed (so no pipe holds the step).
    let script = "setsid sh -c 'sleep 300 & exit 0' >/dev/null 2>&1 </dev/null; echo started";
    let (outcome, _) = run(spec(script), &mut c).await;
    assert_eq!(outcome, Outcome::Exited(0));
    // The reaper finds the `sleep 300` by its token and stops it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !super::token::scan(&store).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the step's daemon is still running"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_stopped_step_is_stopped_and_its_lines_kept() {
    let dir = tempfile::tempdir().unwrap();
    let t = target(dir.path(), &[]);
    let stop = CancellationToken::new();
    let s2 = stop.clone();
    let mut events = t.events.subscribe();
    let t2 = t.clone();
    let step =
        tokio::spawn(async move { run(spec("echo up; exec sleep 30"), &mut ctx(&t2, stop)).await });
    // Once its first line is durable, stop it.
    while !matches!(events.recv().await, Ok(Event::Log { .. })) {}
    s2.cancel();
    let (outcome, _) = step.await.unwrap();
    assert_eq!(outcome, Outcome::Stopped);
    assert_eq!(t.logs.read(1, 1, 0, 10).unwrap()[0].text, "up");
}

#[tokio::test]
async fn a_log_that_cannot_be_written_fails_the_step() {
    let dir = tempfile::tempdir().unwrap();
    // A file where the run's log directory should be.
    std::fs::write(dir.path().join("1"), "").unwrap();
    let t = target(dir.path(), &[]);
    let (outcome, _) = run(spec("echo hi"), &mut ctx(&t, CancellationToken::new())).await;
    match outcome {
        Outcome::Error(why) => assert!(why.contains("writing the step's log failed"), "{why}"),
        other => panic!("{other:?}"),
    }
}

/// A failure between the spawn and the program is the step's error, saying why.
#[tokio::test]
async fn a_program_that_cannot_start_fails_the_step_with_why() {
    let dir = tempfile::tempdir().unwrap();
    let t = target(dir.path(), &[]);
    let file = dir.path().join("not-executable");
    std::fs::write(&file, "exit 0\n").unwrap();
    let command = file.display().to_string();
    let (outcome, _) = run(spec(&command), &mut ctx(&t, CancellationToken::new())).await;
    let why = format!("cannot start `{command}`: Permission denied (os error 13)");
    assert_eq!(outcome, Outcome::Error(why));
}
