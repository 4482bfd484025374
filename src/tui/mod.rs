//! The dashboard (Elm-style): engine events and keys update an [`app::AppState`];
//! views draw it; effects go to the engine through [`crate::api::EngineClient`], each
//! in a task of its own whose reply comes back into the [`event_loop`].

pub mod action;
pub mod app;
pub mod cache;
pub mod commits;
pub mod demo;
pub mod event_loop;
pub mod export;
pub mod keymap;
pub mod terminal;
pub mod theme;
pub mod update;
pub mod views;
pub mod widgets;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crossterm::event::EventStream;
use tokio::signal::unix::{SignalKind, signal};

use crate::api::client::Client;
use app::AppState;
use keymap::Keymap;

/// Why the dashboard stopped early.
#[derive(Debug, thiserror::Error)]
pub enum TuiError {
    #[error("cannot subscribe to the engine's events: {0}")]
    Subscribe(#[source] crate::engine::EngineError),
    #[error("reading the terminal failed: {0}")]
    Input(#[source] std::io::Error),
    #[error("drawing to the terminal failed: {0}")]
    Draw(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("cannot listen for {0}: {1}")]
    Signal(&'static str, #[source] std::io::Error),
}

/// Why the engine could not be started in the background.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot find my own binary: {0}")]
    OwnBinary(#[source] std::io::Error),
    #[error("cannot open {0}: {1}")]
    Log(PathBuf, #[source] std::io::Error),
    #[error("cannot start the engine: {0}")]
    Spawn(#[source] std::io::Error),
    #[error("the engine exited ({0}); see {1}")]
    Exited(std::process::ExitStatus, PathBuf),
    #[error("the engine did not come up within {} s", .0.as_secs())]
    Timeout(Duration),
}

/// How the dashboard reached its engine.
pub struct Session {
    pub client: Client,
    /// The pid of the engine this dashboard started in the background, if it did.
    pub started_engine: Option<u32>,
    pub data_dir: String,
    pub services: Vec<String>,
    pub ascii: bool,
    pub theme: theme::Theme,
    /// Each service's local git repository, where there is one.
    pub repos: std::collections::BTreeMap<String, PathBuf>,
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
    let result = attach(&mut term, &session, &keymap).await;
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

/// The event loop on the real terminal: keys from crossterm, SIGTERM (quit, stopping a
/// hosted engine) and SIGHUP (quit, leaving it running).
async fn attach(
    term: &mut terminal::Term,
    session: &Session,
    km: &Keymap,
) -> Result<bool, TuiError> {
    let mut state = AppState::new(
        session.services.clone(),
        session.started_engine.is_some(),
        session.data_dir.clone(),
    );
    state.ascii = session.ascii;
    state.theme = session.theme;
    state.repos = session.repos.clone();
    state.color = std::env::var_os("NO_COLOR").is_none();
    let mut term_sig =
        signal(SignalKind::terminate()).map_err(|e| TuiError::Signal("SIGTERM", e))?;
    let mut hup = signal(SignalKind::hangup()).map_err(|e| TuiError::Signal("SIGHUP", e))?;
    let stop = async move {
        tokio::select! {
            _ = term_sig.recv() => true,
            _ = hup.recv() => false,
        }
    };
    event_loop::event_loop(
        term,
        state,
        session.client.clone(),
        km,
        EventStream::new(),
        stop,
    )
    .await
}

/// Finds or starts the engine for the data dir, then runs the dashboard.
pub async fn open(ctx: &crate::cli::Ctx, ascii: bool, theme: theme::Theme) -> i32 {
    let (client, started) = match Client::connect(&ctx.socket) {
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
    let (services, repos) = match crate::config::load_project(&ctx.project_path) {
        Ok(p) => (
            p.services.keys().cloned().collect(),
            p.services
                .values()
                .filter_map(|s| commits::local_repo(s, &ctx.data_dir).map(|r| (s.name.clone(), r)))
                .collect(),
        ),
        Err(e) => {
            tracing::warn!(
                "cannot read the project {} for its services (t offers none): {e:?}",
                ctx.project_path.display()
            );
            (Vec::new(), Default::default())
        }
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
            theme,
            repos,
        },
        keymap,
    )
    .await
}

/// Starts `pipedeck serve` in the background (its own process group, so the
/// terminal's Ctrl-C and hang-up don't reach it) and connects to it.
async fn start_engine(ctx: &crate::cli::Ctx) -> Result<(Client, Option<u32>), StartError> {
    use std::os::unix::process::CommandExt;
    const WAIT: Duration = Duration::from_secs(15);
    let exe = std::env::current_exe().map_err(StartError::OwnBinary)?;
    let out = ctx.data_dir.join("engine.out");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&out)
        .map_err(|e| StartError::Log(out.clone(), e))?;
    let mut child = std::process::Command::new(exe)
        .arg("--data-dir")
        .arg(&ctx.data_dir)
        .arg("--project")
        .arg(&ctx.project_path)
        .arg("--socket")
        .arg(&ctx.socket)
        .arg("serve")
        .stdin(std::process::Stdio::null())
        .stdout(
            log.try_clone()
                .map_err(|e| StartError::Log(out.clone(), e))?,
        )
        .stderr(log)
        .process_group(0)
        .spawn()
        .map_err(StartError::Spawn)?;
    let pid = child.id();
    let deadline = Instant::now() + WAIT;
    loop {
        if let Ok(c) = Client::connect(&ctx.socket) {
            return Ok((c, Some(pid)));
        }
        if let Ok(Some(st)) = child.try_wait() {
            return Err(StartError::Exited(st, out));
        }
        if Instant::now() > deadline {
            return Err(StartError::Timeout(WAIT));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
