//! `pipedeck run SERVICE [--wait]`: trigger, and optionally follow to the end.

use std::io::Write;

use futures_util::StreamExt;

use super::output::{self, inert, step_line};
use super::{Ctx, exit, fail};
use crate::api::client::Client;
use crate::api::{EngineClient, Feed};
use crate::domain::{Event, Request, RunDetail, RunInfo, RunStatus, StepStatus, TriggerRequest};
use crate::engine::EngineError;

pub async fn run(
    ctx: &Ctx,
    service: String,
    branch: Option<String>,
    commit: Option<String>,
    allow_older: bool,
    wait: bool,
) -> i32 {
    let req = Request::Trigger(TriggerRequest {
        service,
        branch,
        commit,
        allow_older,
    });
    start(ctx, req, wait).await
}

/// Sends `req`, a request that starts a run (service, infra or stack job); with
/// `wait`, follows the run to the end, hosting an engine when none runs.
pub async fn start(ctx: &Ctx, req: Request, wait: bool) -> i32 {
    match Client::connect(&ctx.socket) {
        Ok(client) => trigger(ctx, &client, req, wait).await,
        Err(e) if !wait || matches!(e, crate::api::client::NoEngine::Denied { .. }) => {
            eprintln!("error: {e}");
            super::no_engine_code(&e)
        }
        Err(_) => {
            // Nobody hosts an engine: host one for as long as this run takes, and the
            // runs others start in it meanwhile (see `hosting`).
            let hosted = match ctx.host(None, None, None).await {
                Ok(h) => h,
                Err(code) => return code,
            };
            let code = tokio::select! {
                c = async {
                    let code = trigger(ctx, &hosted.handle, req, true).await;
                    super::hosting::others_finish(&hosted.handle).await;
                    code
                } => c,
                _ = super::serve::wait_for_stop_signal() => {
                    eprintln!("interrupted: stopping the engine this command hosted \
                               (running steps are cancelled; a waiting gate stays waiting)");
                    130
                }
            };
            hosted.shutdown().await;
            code
        }
    }
}

async fn trigger<C: EngineClient>(ctx: &Ctx, c: &C, req: Request, wait: bool) -> i32 {
    // Subscribe first, so no event of the new run is missed.
    let mut events = if wait {
        match c.events().await {
            Ok(e) => Some(e),
            Err(e) => return fail(e),
        }
    } else {
        None
    };
    let run = match c.ask::<RunInfo>(req).await {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    outln!("{}", run.id);
    let Some(events) = events.as_mut() else {
        if ctx.json {
            output::json(&run);
        } else {
            eprintln!("{}", output::run_header(&run));
        }
        return exit::OK;
    };
    if !ctx.json {
        outln!("{}", output::run_header(&run));
    }
    let id = run.id;
    let run_kind = run.kind;
    let mut last: std::collections::HashMap<i64, StepStatus> = Default::default();
    // Progress goes through a buffer, flushed when the stream pauses: a run with
    // thousands of steps must not make this reader the engine's slow subscriber.
    let mut out = Progress::new();
    let flush = tokio::time::sleep(std::time::Duration::ZERO);
    tokio::pin!(flush);
    let mut unflushed = false;
    // After missing events, the run's row is read once the stream has caught up a
    // little, not at each miss: a burst (a 10,000-node run's 20,000 new rows) made
    // this reader miss events again while it waited for the row, ~70 times in a row.
    let recheck = tokio::time::sleep(std::time::Duration::ZERO);
    tokio::pin!(recheck);
    let mut lagged = false;
    loop {
        let next = tokio::select! {
            e = events.next() => e,
            _ = &mut flush, if unflushed => {
                out.flush();
                unflushed = false;
                continue;
            }
            _ = &mut recheck, if lagged => {
                lagged = false;
                match run_row(c, id).await {
                    Ok(Some(run)) => Some(Feed::Event(Box::new(Event::Run { run }))),
                    Ok(None) => continue,
                    Err(e) => return fail(e),
                }
            }
        };
        if !unflushed {
            unflushed = true;
            flush
                .as_mut()
                .reset(tokio::time::Instant::now() + std::time::Duration::from_millis(50));
        }
        let status = match next.map(Feed::event) {
            Some(Some(Event::Step { step })) if step.run_id == id => {
                if !ctx.json
                    && last.insert(step.id, step.status) != Some(step.status)
                    && step.status != StepStatus::Pending
                {
                    out.line(format_args!("{}", step_line(&step, ctx.color)));
                }
                continue;
            }
            Some(Some(Event::Gate { gate })) if gate.run_id == id => {
                if !ctx.json {
                    match &gate.decided_by {
                        None => out.line(format_args!(
                            "  gate {} is waiting: approve with `{}` (or reject)",
                            inert(&gate.env),
                            inert(&approve_hint(id, &gate.env, run_kind))
                        )),
                        Some(by) => out.line(format_args!(
                            "  gate {} {} by {}{}",
                            inert(&gate.env),
                            gate.status,
                            inert(by),
                            gate.comment
                                .as_deref()
                                .map(|c| format!(": {}", inert(c)))
                                .unwrap_or_default()
                        )),
                    }
                    out.flush();
                }
                continue;
            }
            Some(Some(Event::Run { run })) if run.id == id => run.status,
            // Fell behind: the run's status is read shortly (its row only: cheap,
            // whatever the run's size).
            Some(None) => {
                if !lagged {
                    lagged = true;
                    recheck
                        .as_mut()
                        .reset(tokio::time::Instant::now() + LAG_RECHECK);
                }
                continue;
            }
            Some(_) => continue,
            None => {
                eprintln!(
                    "error: the engine stopped before run {id} ended; see `pipedeck show {id}`"
                );
                return exit::NO_ENGINE;
            }
        };
        if status.is_terminal() {
            out.flush();
            return finish(ctx, c, id).await;
        }
        if status == RunStatus::Cancelling && !ctx.json {
            out.line(format_args!("run {id} cancelling"));
            out.flush();
        }
    }
}

/// How long after missing events `run --wait` reads its run's row.
const LAG_RECHECK: std::time::Duration = std::time::Duration::from_millis(100);

/// Run `id`'s row alone (cheap, whatever the run's size).
async fn run_row<C: EngineClient>(c: &C, id: i64) -> Result<Option<RunInfo>, EngineError> {
    let filter = crate::store::RunFilter {
        id: Some(id),
        ..Default::default()
    };
    let runs = c.ask::<Vec<RunInfo>>(Request::ListRuns { filter }).await?;
    Ok(runs.into_iter().next())
}

async fn finish<C: EngineClient>(ctx: &Ctx, c: &C, id: i64) -> i32 {
    // The closing line needs the run's row only; its detail (every step, an infra
    // run's graph) is read for JSON and for a state job's output. For a 10,000-node
    // infra run, reading and sending the detail took about 30 ms.
    let run = match run_row(c, id).await {
        Ok(Some(run)) => run,
        Ok(None) => return fail(EngineError::NotFound(format!("no run {id}"))),
        Err(e) => return fail(e),
    };
    if ctx.json || run.state_op.is_some() {
        let d = match c.ask::<RunDetail>(Request::Detail { run_id: id }).await {
            Ok(d) => d,
            Err(e) => return fail(e),
        };
        if let Err(code) = super::state_job::print_output(ctx, c, &d).await {
            return code;
        }
        if ctx.json {
            output::json(&d);
            return d.run.status.exit_code();
        }
    }
    let dur = run
        .duration_ms(crate::domain::now_ms())
        .map(output::duration)
        .unwrap_or_default();
    let reason = run
        .reason
        .as_deref()
        .map(|r| format!(": {}", inert(r)))
        .unwrap_or_default();
    outln!(
        "run {id} {} in {dur}{reason}",
        run.status.as_str().replace('_', " ")
    );
    run.status.exit_code()
}

/// The command that approves a gate: service gates by environment; infra gates by
/// environment (`staging`), node (`staging db`) or a node's operation (`staging db/apply`).
fn approve_hint(id: i64, key: &str, kind: crate::domain::RunKind) -> String {
    let parsed = crate::domain::GateKey::parse(key);
    match (kind, parsed) {
        (crate::domain::RunKind::Service, _) | (_, None) => format!("pipedeck approve {id} {key}"),
        (_, Some(k)) => match &k.node {
            None => format!("pipedeck infra approve-env {id} {}", k.env),
            Some(node) => {
                let op = k.op.map(|o| format!("/{o}")).unwrap_or_default();
                format!("pipedeck infra approve-node {id} {} {node}{op}", k.env)
            }
        },
    }
}

/// Buffered progress lines on stdout. After a failed write (stdout closed) nothing
/// more is written; following goes on, since the exit code still tells the outcome.
struct Progress {
    out: std::io::BufWriter<std::io::Stdout>,
    failed: bool,
}

impl Progress {
    fn new() -> Self {
        Self {
            out: std::io::BufWriter::new(std::io::stdout()),
            failed: false,
        }
    }

    fn line(&mut self, args: std::fmt::Arguments<'_>) {
        if !self.failed {
            let r = writeln!(self.out, "{args}");
            self.check(r);
        }
    }

    fn flush(&mut self) {
        if !self.failed {
            let r = self.out.flush();
            self.check(r);
        }
    }

    fn check(&mut self, r: std::io::Result<()>) {
        if let Err(e) = r {
            self.failed = true;
            output::stdout_failed(&e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::EventStream;
    use crate::domain::Response;
    use crate::tui::app::tests::run as run_info;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// An engine whose event stream says `lags` times that events were missed, then
    /// gives `then` (if any) and nothing more; run 7's row says it succeeded.
    struct Lagging {
        lags: usize,
        then: Option<Event>,
        rows_read: AtomicUsize,
    }

    impl EngineClient for Lagging {
        async fn call(&self, req: Request) -> crate::engine::Result<Response> {
            Ok(match req {
                Request::ListRuns { .. } => {
                    self.rows_read.fetch_add(1, Ordering::SeqCst);
                    Response::Runs(vec![run_info(7, RunStatus::Succeeded)])
                }
                _ => Response::Run(run_info(7, RunStatus::Running)),
            })
        }

        async fn events(&self) -> crate::engine::Result<EventStream> {
            let mut feed = vec![Feed::Lagged; self.lags];
            feed.extend(self.then.clone().map(|e| Feed::Event(Box::new(e))));
            let feed = futures_util::stream::iter(feed);
            Ok(Box::pin(feed.chain(futures_util::stream::pending())))
        }
    }

    /// `run --wait` against `c`: its exit code and how often it read the run's row.
    async fn wait_on(c: Lagging) -> (i32, usize) {
        let ctx = Ctx {
            data_dir: "/nonexistent".into(),
            project_path: "/nonexistent/pipedeck.toml".into(),
            socket: "/nonexistent/engine.sock".into(),
            json: false,
            color: false,
            keymap: Default::default(),
        };
        let req = Request::Rerun {
            run_id: 6,
            allow_older: false,
        };
        let code = trigger(&ctx, &c, req, true).await;
        (code, c.rows_read.load(Ordering::SeqCst))
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_of_missed_events_does_not_read_the_runs_row_at_each_miss() {
        let end = Event::Run {
            run: run_info(7, RunStatus::Succeeded),
        };
        let c = Lagging {
            lags: 50,
            then: Some(end),
            rows_read: AtomicUsize::new(0),
        };
        // The closing line's read only.
        assert_eq!(wait_on(c).await, (exit::OK, 1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_runs_end_among_the_missed_events_is_read_from_its_row() {
        let c = Lagging {
            lags: 3,
            then: None,
            rows_read: AtomicUsize::new(0),
        };
        // One look shortly after the misses, one for the closing line.
        assert_eq!(wait_on(c).await, (exit::OK, 2));
    }
}
