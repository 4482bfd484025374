//! The event loop: keys, engine events and effect replies go into [`AppState`];
//! frames are drawn on change, at most one per [`FRAME`]. Nothing here awaits the
//! engine: every request runs in a task of its own ([`execute`]) and its result
//! comes back as a [`Reply`] through a channel, so the loop keeps drawing and taking
//! keys meanwhile. The loop is injectable: any backend, input stream and client.

use std::future::Future;
use std::time::{Duration, Instant};

use crossterm::event::{Event as TermEvent, KeyEventKind, MouseEventKind};
use futures_util::{Stream, StreamExt};
use ratatui::Terminal;
use ratatui::backend::Backend;
use tokio::sync::mpsc;

use super::TuiError;
use super::action::{Effect, Reply};
use super::app::{AppState, TAIL};
use super::keymap::Keymap;
use super::{update, views};
use crate::api::{EngineClient, Feed};
use crate::domain::{Request, now_ms};
use crate::engine::{EngineError, TriggerRequest};
use crate::store::RunFilter;

/// At most this many frames a second.
pub const FRAME: Duration = Duration::from_millis(33);
/// The engine's status is asked again every this many seconds.
const STATUS_EVERY_TICKS: u64 = 5;
/// Runs loaded at start (the newest); later ones arrive by event.
pub const INITIAL_RUNS: usize = 5000;

/// Runs the dashboard until the operator quits (`Ok(stop_engine)`) or `stop` resolves
/// (with whether to stop the engine this process hosts).
pub async fn event_loop<B, C, I>(
    term: &mut Terminal<B>,
    mut state: AppState,
    client: C,
    km: &Keymap,
    mut inputs: I,
    stop: impl Future<Output = bool>,
) -> Result<bool, TuiError>
where
    B: Backend,
    B::Error: Send + Sync + 'static,
    C: EngineClient + Clone + 'static,
    I: Stream<Item = std::io::Result<TermEvent>> + Unpin,
{
    let mut feed = client.events().await.map_err(TuiError::Subscribe)?;
    let (reply_tx, mut replies) = mpsc::unbounded_channel::<Reply>();
    let first = state.reload();
    execute(&client, first, reply_tx.clone());
    execute(&client, Effect::LoadCatalog, reply_tx.clone());
    execute(&client, Effect::LoadStatus, reply_tx.clone());
    execute(&client, Effect::LoadIdentity, reply_tx.clone());
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut ticks: u64 = 0;
    tokio::pin!(stop);
    let mut dirty = true;
    let mut last_draw = Instant::now() - FRAME;
    loop {
        if dirty && last_draw.elapsed() >= FRAME {
            state.now = now_ms();
            if let Ok(size) = term.size() {
                state.screen_height = size.height;
            }
            term.draw(|f| views::render(f, &state, km))
                .map_err(|e| TuiError::Draw(Box::new(e)))?;
            dirty = false;
            last_draw = Instant::now();
        }
        let next_frame = tokio::time::sleep(FRAME.saturating_sub(last_draw.elapsed()));
        let effect = tokio::select! {
            biased;
            k = inputs.next() => {
                dirty = true;
                match k {
                    Some(Ok(TermEvent::Key(key))) if key.kind != KeyEventKind::Release => {
                        update::on_key(&mut state, km, key)
                    }
                    Some(Ok(TermEvent::Mouse(m))) => match m.kind {
                        MouseEventKind::ScrollUp => update::scroll(&mut state, -3),
                        MouseEventKind::ScrollDown => update::scroll(&mut state, 3),
                        MouseEventKind::Down(_) => update::click(&mut state, m.column, m.row),
                        _ => None,
                    },
                    Some(Ok(_)) => None,
                    Some(Err(e)) => return Err(TuiError::Input(e)),
                    None => return Ok(true),
                }
            }
            stop_engine = &mut stop => return Ok(stop_engine),
            r = replies.recv() => {
                dirty = true;
                r.and_then(|r| state.apply_reply(r))
            }
            e = feed.next() => {
                dirty = true;
                match e {
                    Some(Feed::Event(e)) => state.apply_event(*e),
                    // Some events were missed: read the state again (in the background).
                    Some(Feed::Lagged) => Some(state.reload()),
                    None => {
                        state.error("the engine stopped; restart it (pipedeck serve) and open the dashboard again");
                        feed = Box::pin(futures_util::stream::pending());
                        None
                    }
                }
            }
            _ = tick.tick() => {
                dirty = true;
                ticks += 1;
                // The project file and the disk change without events: asked again.
                ticks.is_multiple_of(STATUS_EVERY_TICKS).then_some(Effect::LoadStatus)
            }
            _ = next_frame, if dirty => None,
        };
        if let Some(effect) = effect {
            if let Effect::Quit { stop_engine } = effect {
                return Ok(stop_engine);
            }
            execute(&client, effect, reply_tx.clone());
        }
    }
}

/// The newest deployments the deployments view reads.
const RELEASES_SHOWN: usize = 500;

/// A confirmed deployment or station operation, as its typed request.
async fn release_op<C: EngineClient>(
    c: &C,
    op: crate::tui::action::ReleaseOp,
) -> Result<Reply, EngineError> {
    use crate::domain::release::{Release, StationInfo};
    use crate::tui::action::ReleaseOp;
    let req = op.request();
    let done = match &op {
        ReleaseOp::Pin { release, stations } => {
            c.ask::<Vec<StationInfo>>(req).await?;
            format!("pinned deployment {release} to {}", stations.join(", "))
        }
        ReleaseOp::Unpin { stations } => {
            c.ask::<Vec<StationInfo>>(req).await?;
            format!("unpinned {}", stations.join(", "))
        }
        ReleaseOp::Rollback { service } => {
            let list = c.ask::<Vec<StationInfo>>(req).await?;
            let to: Vec<String> = list
                .iter()
                .filter(|s| s.service == *service && s.pinned)
                .map(|s| format!("{} → {}", s.name, s.pending.or(s.current).unwrap_or(0)))
                .collect();
            format!("rolled back {service}: {}", to.join(", "))
        }
        ReleaseOp::Promote { release } => {
            let r = c.ask::<Release>(req).await?;
            format!(
                "promoted deployment {release}: production deployment {}",
                r.id
            )
        }
        ReleaseOp::Delete { release } => {
            c.ask::<Release>(req).await?;
            format!("deleted deployment {release}")
        }
    };
    Ok(Reply::ReleaseDone(crate::domain::ansi::inert(&done)))
}

/// Sends a reply to the loop; if the loop has ended, says what was lost.
fn send(tx: &mpsc::UnboundedSender<Reply>, reply: Reply) {
    if let Err(mpsc::error::SendError(reply)) = tx.send(reply) {
        match reply {
            Reply::Error(e) => tracing::warn!("the dashboard closed before this error: {e}"),
            Reply::Info(m) | Reply::Started(_, m) => {
                tracing::info!("the dashboard closed before this news: {m}")
            }
            _ => tracing::debug!("the dashboard closed before a reply arrived"),
        }
    }
}

/// Runs an effect in a task of its own; its result comes back as a [`Reply`].
pub fn execute<C: EngineClient + Clone + 'static>(
    client: &C,
    effect: Effect,
    tx: mpsc::UnboundedSender<Reply>,
) {
    let c = client.clone();
    tokio::spawn(async move {
        let reply = match effect {
            Effect::Trigger {
                service,
                branch,
                commit,
            } => c
                .trigger(TriggerRequest {
                    service,
                    branch,
                    commit,
                    allow_older: false,
                })
                .await
                .map(|r| {
                    let msg = format!("triggered run {} of {}", r.id, r.service);
                    Reply::Started(Box::new(r), msg)
                }),
            Effect::TriggerInfra { project, undeploy } => {
                c.trigger_infra(&project, undeploy).await.map(|r| {
                    let msg = format!("triggered run {}: {} {project}", r.id, r.what());
                    Reply::Started(Box::new(r), msg)
                })
            }
            Effect::TriggerStackJob {
                resource,
                operation,
            } => c
                .trigger_stack_job(&resource, None, operation.job_verb())
                .await
                .map(|r| {
                    let msg = format!("triggered run {}: {}", r.id, r.what());
                    Reply::Started(Box::new(r), msg)
                }),
            Effect::StateJob {
                project,
                resource,
                op,
            } => c
                .state_job(&resource, project.as_deref(), op)
                .await
                .map(|r| Reply::StateStarted(Box::new(r))),
            Effect::LoadStateList(id) => {
                c.detail(id).await.map(|d| Reply::StateListed(Box::new(d)))
            }
            Effect::LoadCatalog => c.ask(Request::Catalog).await.map(Reply::Catalog),
            Effect::LoadStatus => c
                .ask(Request::ConfigStatus)
                .await
                .map(|s| Reply::Status(Box::new(s))),
            Effect::LoadIdentity => c.ask(Request::Whoami).await.map(Reply::Identity),
            Effect::LoadCommits {
                run,
                env,
                repo,
                current,
                commit,
            } => {
                let read = tokio::task::spawn_blocking(move || {
                    crate::tui::commits::between(&repo, current.as_deref(), &commit).map(
                        |(commits, total)| crate::tui::commits::GateCommits {
                            run,
                            env,
                            current,
                            commits,
                            total,
                        },
                    )
                })
                .await;
                match read {
                    Ok(Ok(c)) => Ok(Reply::Commits(c)),
                    Ok(Err(e)) => {
                        tracing::info!("no commit list for the gate: {e}");
                        return;
                    }
                    Err(e) => {
                        tracing::warn!("the git task failed: {e}");
                        return;
                    }
                }
            }
            Effect::Cancel(id) => c
                .cancel(id)
                .await
                .map(|_| Reply::Info(format!("run {id} is cancelling"))),
            Effect::Rerun(id) | Effect::RerunOlder(id) => {
                let older = matches!(effect, Effect::RerunOlder(_));
                match c.rerun(id, older).await {
                    Err(EngineError::OlderCommit(why)) => Ok(Reply::Older { run: id, why }),
                    r => r.map(|r| {
                        let msg =
                            format!("run {} started: attempt {} of run {id}", r.id, r.attempt);
                        Reply::Started(Box::new(r), msg)
                    }),
                }
            }
            Effect::LoadAudit => c
                .ask(Request::AuditLog {
                    limit: crate::tui::views::AUDIT_LIMIT,
                })
                .await
                .map(Reply::Audit),
            Effect::LoadTriggers => c.triggers().await.map(Reply::Triggers),
            Effect::LoadReleases => {
                let releases = c
                    .ask(Request::ListReleases {
                        service: None,
                        limit: Some(RELEASES_SHOWN),
                    })
                    .await;
                match (releases, c.ask(Request::ListStations).await) {
                    (Ok(releases), Ok(stations)) => Ok(Reply::Releases { releases, stations }),
                    (Err(e), _) | (_, Err(e)) => {
                        send(&tx, Reply::Error(e.to_string()));
                        Ok(Reply::ReleasesFailed)
                    }
                }
            }
            Effect::Release(op) => release_op(&c, op).await,
            Effect::LoadQueues => c
                .ask(Request::Queues { service: None })
                .await
                .map(Reply::Queues),
            Effect::Decide {
                run,
                env,
                decision,
                comment,
            } => c
                .decide(run, &env, decision, comment)
                .await
                .map(|g| Reply::Info(format!("gate {} of run {run}: {}", g.env, g.status))),
            Effect::LoadDetail(id) => c.detail(id).await.map(|d| Reply::Detail(Box::new(d))),
            Effect::Reload { detail } => {
                let runs = c
                    .runs(RunFilter {
                        limit: Some(INITIAL_RUNS),
                        ..Default::default()
                    })
                    .await
                    .map_err(|e| send(&tx, Reply::Error(e.to_string())))
                    .ok();
                let gates = c
                    .waiting_gates()
                    .await
                    .map_err(|e| send(&tx, Reply::Error(e.to_string())))
                    .ok();
                send(&tx, Reply::Reloaded { runs, gates });
                // Drift checks made while this dashboard was away.
                match c.drift_results(None).await {
                    Ok(d) => send(&tx, Reply::Drift(d)),
                    Err(e) => send(&tx, Reply::Error(e.to_string())),
                }
                match detail {
                    Some(id) => c.detail(id).await.map(|d| Reply::Detail(Box::new(d))),
                    None => return,
                }
            }
            Effect::LoadLogs {
                run,
                step,
                from,
                limit,
            } => {
                let from = if from == TAIL {
                    c.log_count(run, step)
                        .await
                        .map(|n| n.saturating_sub(limit as u64))
                } else {
                    Ok(from)
                };
                match from {
                    Ok(from) => c
                        .logs(run, step, from, limit)
                        .await
                        .map(|lines| Reply::Logs { step, from, lines }),
                    Err(e) => Err(e),
                }
            }
            Effect::SearchLog {
                run,
                step,
                from,
                needle,
                backward,
            } => {
                let found = c
                    .ask::<Option<u64>>(Request::SearchLog {
                        run_id: run,
                        step_id: step,
                        from,
                        needle: needle.clone(),
                        backward,
                    })
                    .await;
                match found {
                    Ok(line) => Ok(Reply::Found { step, needle, line }),
                    Err(e) => {
                        // The search is over either way; the error follows.
                        let line = None;
                        send(&tx, Reply::Found { step, needle, line });
                        Err(e)
                    }
                }
            }
            Effect::WriteLog {
                run,
                step,
                range,
                name,
            } => {
                let path = crate::tui::export::export_dir().join(name);
                match crate::tui::export::write_range(&c, run, step, range, &path).await {
                    Ok(n) => Ok(Reply::Info(format!(
                        "wrote {n} line{} ({}-{}) to {}",
                        if n == 1 { "" } else { "s" },
                        range.from + 1,
                        range.from + n,
                        path.display()
                    ))),
                    Err(e) => Ok(Reply::Error(e.to_string())),
                }
            }
            Effect::Quit { .. } => return,
        };
        send(&tx, reply.unwrap_or_else(|e| Reply::Error(e.to_string())));
    });
}
