//! A real HTTP server on loopback for tests: it records every request and answers
//! 500 a set number of times, then as told.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri};
use tokio::sync::Notify;

/// One request the server received.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub body: String,
    /// The `Authorization` header, if any.
    pub auth: Option<String>,
}

#[derive(Default)]
struct Inner {
    fail_first: usize,
    status: u16,
    body: String,
    delay: Duration,
    received: Vec<Received>,
}

/// The server's handle; it stops when the test's runtime does.
#[derive(Clone)]
pub struct TestServer {
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    arrived: Arc<Notify>,
}

impl TestServer {
    /// Answers 500 to the first `fail_first` requests, then `status` with `body`.
    pub async fn start(fail_first: usize, status: u16, body: &str) -> Self {
        let inner = Arc::new(Mutex::new(Inner {
            fail_first,
            status,
            body: body.to_string(),
            ..Default::default()
        }));
        let arrived = Arc::new(Notify::new());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new()
            .fallback(answer)
            .with_state((inner.clone(), arrived.clone()));
        tokio::spawn(async move { axum::serve(listener, app).await.ok() });
        Self {
            addr,
            inner,
            arrived,
        }
    }

    /// Every answer waits this long first (to make a client time out).
    pub fn delay(&self, d: Duration) {
        self.inner.lock().unwrap().delay = d;
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The bodies received, as JSON.
    pub fn json(&self) -> Vec<serde_json::Value> {
        self.received()
            .iter()
            .map(|r| serde_json::from_str(&r.body).unwrap_or(serde_json::Value::Null))
            .collect()
    }

    pub fn received(&self) -> Vec<Received> {
        self.inner.lock().unwrap().received.clone()
    }

    /// Waits (bounded) until at least `n` requests have arrived.
    pub async fn wait_for(&self, n: usize) -> Vec<Received> {
        let fut = async {
            loop {
                let notified = self.arrived.notified();
                let got = self.received();
                if got.len() >= n {
                    return got;
                }
                notified.await;
            }
        };
        tokio::time::timeout(Duration::from_secs(60), fut)
            .await
            .expect("the requests never came")
    }
}

/// An address nothing listens on (bound, then closed).
pub async fn down_url(path: &str) -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    format!("http://{addr}{path}")
}

type Shared = (Arc<Mutex<Inner>>, Arc<Notify>);

async fn answer(
    State((inner, arrived)): State<Shared>,
    method: Method,
    uri: Uri,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let (status, text, delay) = {
        let mut i = inner.lock().unwrap();
        i.received.push(Received {
            method: method.to_string(),
            path: uri.path().to_string(),
            body: String::from_utf8_lossy(&body).into_owned(),
            auth: headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .map(String::from),
        });
        if i.fail_first > 0 {
            i.fail_first -= 1;
            (500, "failing on purpose".to_string(), i.delay)
        } else {
            (i.status, i.body.clone(), i.delay)
        }
    };
    arrived.notify_waiters();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        text,
    )
}
