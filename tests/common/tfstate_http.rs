//! A real Terraform `http` state backend on loopback, for tests: state at `/state…`,
//! its lock at `/lock…` (Terraform's `LOCK`/`UNLOCK` methods). A lock stays until it
//! is unlocked with its id (or by a force-unlock), as a lock server keeps the lock of
//! a client that died.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri};

#[derive(Default)]
struct Inner {
    state: Option<Bytes>,
    /// The lock info JSON of whoever holds the lock.
    lock: Option<serde_json::Value>,
    /// Every UNLOCK body received, in order.
    unlocks: Vec<String>,
}

#[derive(Clone)]
pub struct StateServer {
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
}

impl StateServer {
    pub async fn start() -> Self {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(inner.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.ok() });
        Self { addr, inner }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The lock's info, if someone holds it.
    pub fn lock(&self) -> Option<serde_json::Value> {
        self.inner.lock().unwrap().lock.clone()
    }

    /// The stored state, parsed.
    pub fn state(&self) -> Option<serde_json::Value> {
        let st = self.inner.lock().unwrap().state.clone()?;
        serde_json::from_slice(&st).ok()
    }

    pub fn unlocks(&self) -> Vec<String> {
        self.inner.lock().unwrap().unlocks.clone()
    }
}

async fn handle(
    State(inner): State<Arc<Mutex<Inner>>>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> (StatusCode, String) {
    let mut s = inner.lock().unwrap();
    // One state (and lock), whatever the resource's path under them.
    let path = if uri.path().starts_with("/state") {
        "/state"
    } else if uri.path().starts_with("/lock") {
        "/lock"
    } else {
        uri.path()
    };
    match (method.as_str(), path) {
        ("GET", "/state") => match &s.state {
            Some(b) => (StatusCode::OK, String::from_utf8_lossy(b).into_owned()),
            None => (StatusCode::NOT_FOUND, String::new()),
        },
        ("POST", "/state") => {
            s.state = Some(body);
            (StatusCode::OK, String::new())
        }
        ("DELETE", "/state") => {
            s.state = None;
            (StatusCode::OK, String::new())
        }
        ("LOCK", "/lock") => {
            if let Some(held) = &s.lock {
                return (StatusCode::LOCKED, held.to_string());
            }
            match serde_json::from_slice::<serde_json::Value>(&body) {
                Ok(info) => {
                    s.lock = Some(info);
                    (StatusCode::OK, String::new())
                }
                Err(e) => (StatusCode::BAD_REQUEST, e.to_string()),
            }
        }
        ("UNLOCK", "/lock") => {
            let text = String::from_utf8_lossy(&body).into_owned();
            s.unlocks.push(text);
            let asked: Option<String> = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["ID"].as_str().map(str::to_string));
            let held = s
                .lock
                .as_ref()
                .and_then(|l| l["ID"].as_str().map(str::to_string));
            match (asked, held) {
                // The holder itself.
                (Some(a), Some(h)) if a == h => {
                    s.lock = None;
                    (StatusCode::OK, String::new())
                }
                // Terraform's force-unlock sends no body (as GitLab's state API takes it).
                (None, _) | (_, None) => {
                    s.lock = None;
                    (StatusCode::OK, String::new())
                }
                _ => (StatusCode::CONFLICT, "not the lock's id".into()),
            }
        }
        _ => (StatusCode::METHOD_NOT_ALLOWED, String::new()),
    }
}
