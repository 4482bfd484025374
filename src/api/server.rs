//! Hosting: holds the data dir's engine lock, runs the engine, and serves it on a
//! random loopback port with a bearer token written to a user-only file.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use axum::Json;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use super::protocol::{
    EVENTS_PATH, Endpoint, LAGGED_LINE, REQUEST_PATH, Request, Response, endpoint_path, lock_path,
};
use super::{Feed, feed};
use crate::config::Project;
use crate::engine::{self, Caller, EngineError, EngineHandle};

#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("an engine is already running for {0} (pid {1}); use it, or stop it first")]
    AlreadyRunning(PathBuf, String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// An engine hosted by this process.
pub struct Hosted {
    pub handle: EngineHandle,
    pub endpoint: Endpoint,
    data_dir: PathBuf,
    stop_server: CancellationToken,
    server: tokio::task::JoinHandle<()>,
    engine: tokio::task::JoinHandle<()>,
    _lock: File,
}

#[derive(Clone)]
struct AppState {
    handle: EngineHandle,
    /// Who every request over this server acts as (for now the engine's local user;
    /// per-connection identity comes with the Unix socket).
    caller: Caller,
    token: String,
    /// Fires when the server stops: open event streams end then, or a graceful
    /// shutdown would wait for their clients for ever.
    stop: CancellationToken,
}

fn random_token() -> std::io::Result<String> {
    let mut buf = [0u8; 24];
    std::io::Read::read_exact(&mut File::open("/dev/urandom")?, &mut buf)?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// Takes the data dir's engine lock and hosts the engine there. `caller` is the
/// engine process's local user: requests over the API, and the returned handle,
/// act as it.
pub async fn host(project: Project, data_dir: &Path, caller: Caller) -> Result<Hosted, HostError> {
    let io = |what: &str, source: std::io::Error| HostError::Io {
        what: what.to_string(),
        source,
    };
    std::fs::create_dir_all(data_dir)
        .map_err(|e| io(&format!("cannot create {}", data_dir.display()), e))?;
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(lock_path(data_dir))
        .map_err(|e| io("cannot open the engine lock", e))?;
    if lock.try_lock().is_err() {
        let pid = std::fs::read_to_string(endpoint_path(data_dir))
            .ok()
            .and_then(|s| serde_json::from_str::<Endpoint>(&s).ok())
            .map(|e| e.pid.to_string())
            .unwrap_or_else(|| "unknown".into());
        return Err(HostError::AlreadyRunning(data_dir.to_path_buf(), pid));
    }
    let (handle, engine) = engine::start(project, data_dir).await?;
    let handle = handle.as_caller(caller.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| io("cannot listen on loopback", e))?;
    let addr = listener.local_addr().map_err(|e| io("listener", e))?;
    let token = random_token().map_err(|e| io("cannot make a token", e))?;
    let endpoint = Endpoint {
        url: format!("http://{addr}"),
        token: token.clone(),
        pid: std::process::id(),
    };
    write_endpoint(data_dir, &endpoint).map_err(|e| io("cannot write the endpoint file", e))?;
    let stop_server = CancellationToken::new();
    let state = AppState {
        handle: handle.clone(),
        caller,
        token,
        stop: stop_server.clone(),
    };
    let app = router(state);
    let stop = stop_server.clone();
    let server = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await
        {
            tracing::error!("the API server failed: {e}");
        }
    });
    Ok(Hosted {
        handle,
        endpoint,
        data_dir: data_dir.to_path_buf(),
        stop_server,
        server,
        engine,
        _lock: lock,
    })
}

fn write_endpoint(data_dir: &Path, e: &Endpoint) -> std::io::Result<()> {
    let tmp = data_dir.join(".engine.json.tmp");
    // A leftover from a host that died mid-write.
    match std::fs::remove_file(&tmp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut f = std::fs::OpenOptions::new()
        .create_new(true)
        .write(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(
        serde_json::to_string(e)
            .map_err(std::io::Error::other)?
            .as_bytes(),
    )?;
    f.sync_all()?;
    std::fs::rename(tmp, endpoint_path(data_dir))
}

impl Hosted {
    /// Stops the engine (running steps terminated and recorded), then the server.
    pub async fn shutdown(self) {
        self.handle.shutdown().await;
        if let Err(e) = self.engine.await {
            tracing::error!("the engine task ended abnormally: {e}");
        }
        self.stop_server.cancel();
        if let Err(e) = self.server.await {
            tracing::error!("the API server task ended abnormally: {e}");
        }
        // Clients tell a live engine by its lock, so a stale file misleads nobody.
        if let Err(e) = std::fs::remove_file(endpoint_path(&self.data_dir)) {
            tracing::warn!("cannot remove the endpoint file: {e}");
        }
    }
}

fn router(state: AppState) -> Router {
    Router::new()
        .route(REQUEST_PATH, post(request))
        .route(EVENTS_PATH, get(events))
        .layer(middleware::from_fn_with_state(state.clone(), auth))
        .with_state(state)
}

async fn auth(
    State(st): State<AppState>,
    req: axum::extract::Request,
    next: Next,
) -> axum::response::Response {
    let ok = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| constant_time_eq(t.as_bytes(), st.token.as_bytes()));
    if ok {
        next.run(req).await
    } else {
        ApiError(EngineError::Forbidden(
            "missing or wrong bearer token".into(),
        ))
        .into_response()
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

struct ApiError(EngineError);

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        Self(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> axum::response::Response {
        let code = match &self.0 {
            EngineError::NotFound(_) => StatusCode::NOT_FOUND,
            EngineError::Invalid(_) => StatusCode::BAD_REQUEST,
            EngineError::Conflict(_) | EngineError::OlderCommit(_) => StatusCode::CONFLICT,
            EngineError::Forbidden(_) => StatusCode::FORBIDDEN,
            EngineError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            EngineError::Stopped | EngineError::Unreachable(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        (code, Json(self.0)).into_response()
    }
}

/// The one request route: the body is a [`Request`]; the caller is the server's.
async fn request(State(st): State<AppState>, body: Bytes) -> Result<Json<Response>, ApiError> {
    let req: Request = serde_json::from_slice(&body)
        .map_err(|e| EngineError::Invalid(format!("not a valid request: {e}")))?;
    Ok(Json(st.handle.handle(&st.caller, req).await?))
}

/// Newline-delimited JSON events, from now on, until the engine stops.
async fn events(State(st): State<AppState>) -> axum::response::Response {
    let stream = feed(st.handle.subscribe()).map(|f| {
        let mut line = match f {
            Feed::Event(e) => serde_json::to_string(&e).unwrap_or_else(|_| LAGGED_LINE.to_string()),
            Feed::Lagged => LAGGED_LINE.to_string(),
        };
        line.push('\n');
        Ok::<_, std::convert::Infallible>(line)
    });
    // A first line tells the client the subscription is live.
    let hello = futures_util::stream::once(async { Ok("{\"type\":\"hello\"}\n".to_string()) });
    let stop = st.stop.clone();
    let stream = hello
        .chain(stream)
        .take_until(async move { stop.cancelled().await });
    axum::response::Response::builder()
        .header(header::CONTENT_TYPE, "application/x-ndjson")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}
