//! The TCP listener for remote attach (`serve --listen ADDR`; over TLS when given a
//! certificate, which a non-loopback address requires): the caller is the user a bearer token was made for, with at most the token's role.
//! Tokens are checked in constant time; failed attempts are logged, and an address
//! that fails too often is refused for a while.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::IntoResponse;

use super::server::{ApiError, AppState, router};
use super::tokens;
use crate::engine::{Caller, EngineError, EngineHandle};

/// Failed attempts an address may make in [`WINDOW`] before it is refused.
const MAX_FAILURES: u32 = 10;
const WINDOW: Duration = Duration::from_secs(60);

struct TokenGate {
    data_dir: PathBuf,
    /// Refusals are recorded in its audit log.
    engine: EngineHandle,
    /// Per address: failures in the current window, and when it started.
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

impl TokenGate {
    fn locked(&self, ip: IpAddr) -> bool {
        let Ok(map) = self.failures.lock() else {
            return true;
        };
        map.get(&ip)
            .is_some_and(|(n, since)| *n >= MAX_FAILURES && since.elapsed() < WINDOW)
    }

    fn failed(&self, ip: IpAddr) {
        if let Ok(mut map) = self.failures.lock() {
            let e = map.entry(ip).or_insert((0, Instant::now()));
            if e.1.elapsed() >= WINDOW {
                *e = (0, Instant::now());
            }
            e.0 += 1;
        }
    }
}

/// Binds `addr` and serves the API there (through TLS with `tls`) until the server
/// stops; returns the address bound (the port chosen, for port 0).
pub(super) async fn serve(
    state: AppState,
    data_dir: &std::path::Path,
    addr: SocketAddr,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let listener = super::tls::Incoming::start(listener, tls, state.stop.clone())?;
    let bound = axum::serve::Listener::local_addr(&listener)?;
    let gate = Arc::new(TokenGate {
        data_dir: data_dir.to_path_buf(),
        engine: state.handle.clone(),
        failures: Mutex::new(HashMap::new()),
    });
    let stop = state.stop.clone();
    // Webhooks are authenticated by their own signature or token, not an API token.
    let app = router(state.clone())
        .layer(middleware::from_fn_with_state(gate, token_caller))
        .merge(super::hooks::router(state))
        .into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move {
        // `tap_io` passes the peer address on as the connect info.
        let listener = axum::serve::ListenerExt::tap_io(listener, |_| {});
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await
        {
            tracing::error!("the TCP API server failed: {e}");
        }
    });
    Ok(bound)
}

async fn token_caller(
    State(gate): State<Arc<TokenGate>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    mut req: axum::extract::Request,
    next: Next,
) -> axum::response::Response {
    let ip = addr.ip();
    let who = format!("unknown ({ip}, over TCP)");
    let target = format!("{} {}", req.method(), req.uri().path());
    if gate.locked(ip) {
        let why = format!(
            "too many failed token attempts from {ip}: refused for up to {}s",
            WINDOW.as_secs()
        );
        gate.engine.refused(&who, &target, &why, None).await;
        let e = EngineError::Forbidden(why);
        return (StatusCode::TOO_MANY_REQUESTS, Json(e)).into_response();
    }
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string);
    let dir = gate.data_dir.clone();
    let grant = match tokio::task::spawn_blocking(move || tokens::load(&dir)).await {
        Ok(Ok(list)) => presented.and_then(|p| tokens::check(&list, &p)),
        Ok(Err(e)) => {
            tracing::error!("cannot read the tokens: {e}");
            return ApiError(EngineError::Internal(e.to_string())).into_response();
        }
        Err(e) => return ApiError(EngineError::Internal(e.to_string())).into_response(),
    };
    match grant {
        Some(g) => {
            req.extensions_mut()
                .insert(Caller::new(g.user).with_cap(g.role));
            next.run(req).await
        }
        None => {
            gate.failed(ip);
            let why = "missing, wrong or revoked token (`pipedeck token create` makes one)";
            gate.engine.refused(&who, &target, why, None).await;
            ApiError(EngineError::Forbidden(why.into())).into_response()
        }
    }
}
