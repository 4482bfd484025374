//! The dashboard (Elm-style): engine events and keys update an [`app::AppState`];
//! views draw it; effects go to the engine through [`crate::api::EngineClient`].

pub mod action;
pub mod app;
pub mod demo;
pub mod keymap;
pub mod terminal;
pub mod update;
pub mod views;
pub mod widgets;

use std::time::{Duration, Instant};

use crossterm::event::{Event as TermEvent, EventStream, KeyEventKind, MouseEventKind};
use futures_util::StreamExt;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use crate::api::client::Client;
use crate::api::{EngineClient, Feed};
use crate::domain::now_ms;
use crate::engine::TriggerRequest;
use crate::store::RunFilter;
use action::{Effect, Reply};
use app::AppState;
use keymap::Keymap;

/// At most this many frames a second.
const FRAME: Duration = Duration::from_millis(33);
/// Runs loaded at start (the newest); later ones arrive by event.
const INITIAL_RUNS: usize = 5000;

/// How the dashboard reached its engine.
pub struct Session {
    pub client: Client,
    /// The pid of the engine this dashboard started in the background, if it did.
    pub started_engine: Option<u32>,
    pub data_dir: String,
    pub services: Vec<String>,
    pub ascii: bool,
    pub user: String,
}

/// Runs the dashboard until the operator quits; returns the exit code.
pub async fn run(session: Session, keymap: Keymap) -> i32 {
    let mut term = match terminal::setup() {
        Ok(t) => t,
        Err(e) => {
            terminal::restore();
            eprintln!("error: cannot set up the terminal: {e}");
            return 1;
        }
    };
    let result = event_loop(&mut term, &session, &keymap).await;
    terminal::restore();
    match result {
        Ok(stop_engine) => {
            if let Some(pid) = session.started_engine {
                if stop_engine {
                    // SAFETY: plain kill(2) on the engine process this dashboard started.
                    unsafe {
                        libc::kill(pid as i32, libc::SIGTERM);
                    }
                    eprintln!("stopping the engine (pid {pid})");
                } else {
                    eprintln!(
                        "the engine keeps running in the background (pid {pid}); `pipedeck` attaches to it, `kill {pid}` stops it"
                    );
                }
            }
            0
        }
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

async fn event_loop(
    term: &mut terminal::Term,
    session: &Session,
    km: &Keymap,
) -> Result<bool, String> {
    let client = session.client.clone();
    let mut state = AppState::new(
        session.services.clone(),
        session.started_engine.is_some(),
        session.data_dir.clone(),
    );
    state.ascii = session.ascii;
    state.color = std::env::var_os("NO_COLOR").is_none();
    let mut feed = client.events().await.map_err(|e| e.to_string())?;
    reload(&client, &mut state).await;
    let (reply_tx, mut replies) = mpsc::unbounded_channel::<Reply>();
    let mut keys = EventStream::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let (mut term_sig, mut hup) = (
        signal(SignalKind::terminate()).map_err(|e| e.to_string())?,
        signal(SignalKind::hangup()).map_err(|e| e.to_string())?,
    );
    let mut dirty = true;
    let mut last_draw = Instant::now() - FRAME;
    loop {
        if dirty && last_draw.elapsed() >= FRAME {
            state.now = now_ms();
            if let Ok(size) = term.size() {
                state.screen_height = size.height;
            }
            term.draw(|f| views::render(f, &state, km))
                .map_err(|e| e.to_string())?;
            dirty = false;
            last_draw = Instant::now();
        }
        let next_frame = tokio::time::sleep(FRAME.saturating_sub(last_draw.elapsed()));
        let effect = tokio::select! {
            biased;
            k = keys.next() => {
                dirty = true;
                match k {
                    Some(Ok(TermEvent::Key(key))) if key.kind != KeyEventKind::Release => update::on_key(&mut state, km, key),
                    Some(Ok(TermEvent::Mouse(m))) => match m.kind {
                        MouseEventKind::ScrollUp => update::scroll(&mut state, -3),
                        MouseEventKind::ScrollDown => update::scroll(&mut state, 3),
                        MouseEventKind::Down(_) => click(&mut state, m.row),
                        _ => None,
                    },
                    Some(Ok(_)) => None,
                    Some(Err(e)) => return Err(format!("reading the terminal failed: {e}")),
                    None => return Ok(true),
                }
            }
            _ = term_sig.recv() => return Ok(true),
            _ = hup.recv() => return Ok(false),
            r = replies.recv() => {
                dirty = true;
                r.and_then(|r| state.apply_reply(r))
            }
            e = feed.next() => {
                dirty = true;
                match e {
                    Some(Feed::Event(e)) => state.apply_event(*e),
                    Some(Feed::Lagged) => {
                        reload(&client, &mut state).await;
                        state.detail.as_ref().map(|d| Effect::LoadDetail(d.run.id))
                    }
                    None => {
                        state.error("the engine stopped; restart it (pipedeck serve) and open the dashboard again");
                        feed = Box::pin(futures_util::stream::pending());
                        None
                    }
                }
            }
            _ = tick.tick() => { dirty = true; None }
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

/// A click selects the row under the pointer in the runs table and the inbox.
fn click(s: &mut AppState, row: u16) -> Option<Effect> {
    // Title bar (1) + block border (1) + header (1).
    let first = 3u16;
    if row < first {
        return None;
    }
    let i = (row - first) as usize;
    match s.view {
        app::View::Runs => {
            let h = s.table_rows() as usize;
            let offset = (s.runs_sel / h) * h;
            if offset + i < s.visible_runs().len() {
                s.runs_sel = offset + i;
            }
        }
        app::View::Approvals => {
            if i < s.gates.len() {
                s.gate_sel = i;
            }
        }
        app::View::Detail | app::View::Graph => {}
    }
    None
}

async fn reload<C: EngineClient>(client: &C, s: &mut AppState) {
    match client
        .runs(RunFilter {
            limit: Some(INITIAL_RUNS),
            ..Default::default()
        })
        .await
    {
        Ok(runs) => s.runs = runs,
        Err(e) => s.error(e.to_string()),
    }
    match client.waiting_gates().await {
        Ok(g) => s.gates = g,
        Err(e) => s.error(e.to_string()),
    }
}

/// Runs an effect in the background; its result comes back as a [`Reply`].
fn execute<C: EngineClient + Clone + 'static>(
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
                })
                .await
                .map(|r| {
                    let msg = format!("triggered run {} of {}", r.id, r.service);
                    Reply::Started(Box::new(r), msg)
                }),
            Effect::Cancel(id) => c
                .cancel(id)
                .await
                .map(|_| Reply::Info(format!("run {id} is cancelling"))),
            Effect::Rerun(id) => c.rerun(id).await.map(|r| {
                let msg = format!("run {} started: attempt {} of run {id}", r.id, r.attempt);
                Reply::Started(Box::new(r), msg)
            }),
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
            Effect::LoadLogs {
                run,
                step,
                from,
                limit,
            } => {
                let from = if from == app::TAIL {
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
            Effect::Quit { .. } => return,
        };
        let _ = tx.send(reply.unwrap_or_else(|e| Reply::Error(e.to_string())));
    });
}

/// Finds or starts the engine for the data dir, then runs the dashboard.
pub async fn open(ctx: &crate::cli::Ctx, ascii: bool) -> i32 {
    let (client, started) = match Client::connect(&ctx.data_dir) {
        Ok(c) => (c, None),
        Err(_) => {
            let project = match ctx.load_project() {
                Ok(p) => p,
                Err(code) => return code,
            };
            drop(project);
            match start_engine(ctx).await {
                Ok(x) => x,
                Err(e) => {
                    eprintln!("error: {e}");
                    return crate::cli::exit::NO_ENGINE;
                }
            }
        }
    };
    // The service list comes from the project the engine runs.
    let services = match crate::config::load_project(&ctx.project_path) {
        Ok(p) => p.services.keys().cloned().collect(),
        Err(_) => Vec::new(),
    };
    let mut keymap = Keymap::default();
    if let Err(e) = keymap.apply_overrides(&ctx.keymap) {
        eprintln!("error: {e}");
        return crate::cli::exit::USAGE;
    }
    run(
        Session {
            client,
            started_engine: started,
            data_dir: ctx.data_dir.display().to_string(),
            services,
            ascii,
            user: ctx.user.clone(),
        },
        keymap,
    )
    .await
}

/// Starts `pipedeck serve` in the background (its own process group, so the
/// terminal's Ctrl-C and hang-up don't reach it) and connects to it.
async fn start_engine(ctx: &crate::cli::Ctx) -> Result<(Client, Option<u32>), String> {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe().map_err(|e| format!("cannot find my own binary: {e}"))?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(ctx.data_dir.join("engine.out"))
        .map_err(|e| {
            format!(
                "cannot open {}: {e}",
                ctx.data_dir.join("engine.out").display()
            )
        })?;
    let mut child = std::process::Command::new(exe)
        .arg("--data-dir")
        .arg(&ctx.data_dir)
        .arg("--project")
        .arg(&ctx.project_path)
        .arg("--as")
        .arg(&ctx.user)
        .arg("serve")
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log)
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot start the engine: {e}"))?;
    let pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(c) = Client::connect(&ctx.data_dir) {
            return Ok((c, Some(pid)));
        }
        if let Ok(Some(st)) = child.try_wait() {
            return Err(format!(
                "the engine exited ({st}); see {}",
                ctx.data_dir.join("engine.out").display()
            ));
        }
        if Instant::now() > deadline {
            return Err("the engine did not come up within 15 s".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
