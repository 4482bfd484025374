//! Hosting: holds the data dir's engine lock, runs the engine, and serves it on a
//! Unix socket. Who asks is the socket peer's account (`SO_PEERCRED`), looked up
//! for every connection; nothing in a request can say otherwise.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use axum::Json;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Extension, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::serve::IncomingStream;
use futures_util::StreamExt;
use tokio::net::UnixListener;
use tokio_util::sync::CancellationToken;

use super::protocol::{
    EVENTS_PATH, Endpoint, LAGGED_LINE, METRICS_PATH, REQUEST_PATH, Request, Response,
    endpoint_path, lock_path,
};
use super::{Feed, feed};
use crate::config::Project;
use crate::engine::datadir::{self, DataDirError};
use crate::engine::{self, Caller, EngineError, EngineHandle, account};

#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("an engine is already running for {0} (pid {1}); use it, or stop it first")]
    AlreadyRunning(PathBuf, String),
    #[error("an engine is already serving {0}; use it, or stop it first")]
    SocketInUse(PathBuf),
    #[error("{0} exists and is not a socket; remove it or choose another --socket path")]
    NotASocket(PathBuf),
    #[error("no group `{0}` on this system (--socket-group names a Unix group)")]
    NoSuchGroup(String),
    #[error(
        "cannot give the socket {path} to group {group}: {source}\n  hint: the engine's account must be a member of {group} (or run it as root)"
    )]
    SocketGroup {
        path: PathBuf,
        group: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "refusing to listen on {0} without TLS: it is not a loopback address, and tokens would cross the network in clear\n  hint: give the server a certificate with --tls-cert CERT.pem --tls-key KEY.pem, or listen on 127.0.0.1 and reach it through an SSH tunnel (ssh -L PORT:127.0.0.1:PORT HOST)"
    )]
    NotLoopback(std::net::SocketAddr),
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error(transparent)]
    DataDir(#[from] DataDirError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// Where and for whom to serve.
#[derive(Debug, Clone)]
pub struct HostOptions {
    /// The socket's path.
    pub socket: PathBuf,
    /// A Unix group whose members may connect (mode 0660, owned by it); without
    /// one only the engine's own account can (0600).
    pub socket_group: Option<String>,
    /// Also serve on TCP at this address, for remote attach with per-user tokens
    /// (`pipedeck token create`); a non-loopback address needs `tls`.
    pub listen: Option<std::net::SocketAddr>,
    /// Serve `listen` over TLS with this certificate and key.
    pub tls: Option<TlsFiles>,
}

/// A PEM certificate chain and its private key.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl HostOptions {
    /// The default: the data dir's own socket, for the engine's account alone.
    pub fn private(data_dir: &Path) -> Self {
        Self {
            socket: super::protocol::socket_path(data_dir),
            socket_group: None,
            listen: None,
            tls: None,
        }
    }
}

/// An engine hosted by this process.
pub struct Hosted {
    pub handle: EngineHandle,
    pub endpoint: Endpoint,
    /// Where the TCP listener is bound, when asked for one.
    pub tcp: Option<std::net::SocketAddr>,
    data_dir: PathBuf,
    stop_server: CancellationToken,
    server: tokio::task::JoinHandle<()>,
    engine: tokio::task::JoinHandle<()>,
    _lock: File,
}

#[derive(Clone)]
pub(super) struct AppState {
    pub(super) handle: EngineHandle,
    /// Fires when the server stops: open event streams end then, or a graceful
    /// shutdown would wait for their clients for ever.
    pub(super) stop: CancellationToken,
}

/// The peer of one connection: its uid as the kernel reports it (`SO_PEERCRED`).
#[derive(Debug, Clone, Copy)]
struct Peer(Option<u32>);

impl axum::extract::connect_info::Connected<IncomingStream<'_, UnixListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, UnixListener>) -> Self {
        Peer(stream.io().peer_cred().ok().map(|c| c.uid()))
    }
}

impl Peer {
    /// The verified caller: the account behind the peer uid.
    async fn caller(self) -> Result<Caller, ApiError> {
        let uid = self.0.ok_or_else(|| {
            EngineError::Forbidden("the connection's peer credentials are unavailable".into())
        })?;
        let principal = tokio::task::spawn_blocking(move || account::principal(uid))
            .await
            .map_err(|e| EngineError::Internal(e.to_string()))?
            .ok_or_else(|| {
                EngineError::Forbidden(format!(
                    "uid {uid} has no account on this system, so its requests cannot be attributed"
                ))
            })?;
        Ok(Caller::from(principal))
    }
}

/// Takes the data dir's engine lock and hosts the engine there, serving it on
/// `opts.socket`. The returned handle acts as the engine's own account.
pub async fn host(
    project: Project,
    data_dir: &Path,
    opts: &HostOptions,
) -> Result<Hosted, HostError> {
    let io = |what: &str, source: std::io::Error| HostError::Io {
        what: what.to_string(),
        source,
    };
    if let Some(addr) = opts.listen
        && !addr.ip().is_loopback()
        && opts.tls.is_none()
    {
        return Err(HostError::NotLoopback(addr));
    }
    let tls = match &opts.tls {
        Some(f) => Some(crate::tls::server_config(&f.cert, &f.key)?),
        None => None,
    };
    datadir::prepare(data_dir)?;
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
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
    let gid = match &opts.socket_group {
        Some(g) => Some(account::group_gid(g).ok_or_else(|| HostError::NoSuchGroup(g.clone()))?),
        None => None,
    };
    let listener = bind(opts, gid)?;
    let (handle, engine) = engine::start(project, data_dir).await?;
    let endpoint = Endpoint {
        socket: opts.socket.clone(),
        pid: std::process::id(),
    };
    write_endpoint(data_dir, &endpoint).map_err(|e| io("cannot write the endpoint file", e))?;
    let stop_server = CancellationToken::new();
    let state = AppState {
        handle: handle.clone(),
        stop: stop_server.clone(),
    };
    let tcp = match opts.listen {
        Some(addr) => Some(
            super::tcp::serve(state.clone(), data_dir, addr, tls)
                .await
                .map_err(|e| io(&format!("cannot listen on {addr}"), e))?,
        ),
        None => None,
    };
    let app = router(state)
        .layer(middleware::from_fn_with_state(handle.clone(), peer_caller))
        .into_make_service_with_connect_info::<Peer>();
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
        tcp,
        data_dir: data_dir.to_path_buf(),
        stop_server,
        server,
        engine,
        _lock: lock,
    })
}

/// Binds the socket: a stale one (nobody answers) is replaced, a live one refused;
/// mode 0600, or 0660 owned by group `gid`.
fn bind(opts: &HostOptions, gid: Option<u32>) -> Result<UnixListener, HostError> {
    use std::os::unix::fs::FileTypeExt;
    let path = &opts.socket;
    let io = |what: String, source: std::io::Error| HostError::Io { what, source };
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(HostError::NotASocket(path.clone()));
        }
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(HostError::SocketInUse(path.clone()));
        }
        std::fs::remove_file(path).map_err(|e| {
            io(
                format!("cannot remove the stale socket {}", path.display()),
                e,
            )
        })?;
    }
    // Created owner-only: no one else can connect before its mode is set below.
    // SAFETY: umask only swaps the process's file mode mask.
    let old = unsafe { libc::umask(0o177) };
    let bound = UnixListener::bind(path);
    // SAFETY: as above.
    unsafe { libc::umask(old) };
    let listener = bound.map_err(|e| io(format!("cannot listen on {}", path.display()), e))?;
    if let (Some(gid), Some(group)) = (gid, &opts.socket_group) {
        std::os::unix::fs::chown(path, None, Some(gid)).map_err(|source| {
            HostError::SocketGroup {
                path: path.clone(),
                group: group.clone(),
                source,
            }
        })?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
            .map_err(|e| io(format!("cannot set the mode of {}", path.display()), e))?;
    }
    Ok(listener)
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
        // A stale file misleads nobody (clients try the socket; hosts, the lock), but
        // a tidy dir is clearer.
        for f in [endpoint_path(&self.data_dir), self.endpoint.socket.clone()] {
            if let Err(e) = std::fs::remove_file(&f) {
                tracing::warn!("cannot remove {}: {e}", f.display());
            }
        }
    }
}

/// The routes; a layer outside them attaches the verified [`Caller`] to each request.
pub(super) fn router(state: AppState) -> Router {
    Router::new()
        .route(REQUEST_PATH, post(request))
        .route(EVENTS_PATH, get(events))
        .route(METRICS_PATH, get(metrics))
        .with_state(state)
}

/// On the Unix socket: the caller is the peer's account.
async fn peer_caller(
    State(engine): State<EngineHandle>,
    mut req: axum::extract::Request,
    next: Next,
) -> axum::response::Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<Peer>>()
        .map(|c| c.0)
        .unwrap_or(Peer(None));
    match peer.caller().await {
        Ok(caller) => {
            req.extensions_mut().insert(caller);
            next.run(req).await
        }
        Err(e) => {
            if let ApiError(EngineError::Forbidden(why)) = &e {
                let who = peer
                    .0
                    .map_or("unknown peer".into(), |uid| format!("uid {uid}"));
                let target = format!("{} {}", req.method(), req.uri().path());
                engine.refused(&who, &target, why, None).await;
            }
            e.into_response()
        }
    }
}

pub(super) struct ApiError(pub(super) EngineError);

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

/// The one request route: the body is a [`Request`]; the caller is the transport's.
async fn request(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<Json<Response>, ApiError> {
    let req: Request = serde_json::from_slice(&body)
        .map_err(|e| EngineError::Invalid(format!("not a valid request: {e}")))?;
    Ok(Json(st.handle.handle(&caller, req).await?))
}

/// The metrics in the Prometheus text format (a viewer's right).
async fn metrics(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> axum::response::Response {
    match st.handle.metrics_text(&caller).await {
        Ok(text) => (
            [(header::CONTENT_TYPE, engine::metrics::text::CONTENT_TYPE)],
            text,
        )
            .into_response(),
        Err(e) => ApiError(e).into_response(),
    }
}

/// Newline-delimited JSON events, from now on, until the engine stops (a viewer's
/// right).
async fn events(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> axum::response::Response {
    if let Err(e) = st.handle.role_of(&caller) {
        return ApiError(e).into_response();
    }
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
