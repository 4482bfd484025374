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
    /// `http` or `https`.
    scheme: &'static str,
    inner: Arc<Mutex<Inner>>,
    arrived: Arc<Notify>,
}

/// A self-signed certificate for `localhost` and 127.0.0.1, made now.
pub struct TestCert {
    pub cert_pem: String,
    pub key_pem: String,
}

impl TestCert {
    pub fn new() -> Self {
        let c = rcgen::generate_simple_self_signed(vec![
            "localhost".to_string(),
            "127.0.0.1".to_string(),
        ])
        .unwrap();
        Self {
            cert_pem: c.cert.pem(),
            key_pem: c.signing_key.serialize_pem(),
        }
    }

    /// Writes `cert.pem` and `key.pem` into `dir`; returns their paths.
    pub fn write(&self, dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert, &self.cert_pem).unwrap();
        std::fs::write(&key, &self.key_pem).unwrap();
        (cert, key)
    }
}

/// TLS connections, each handshake done before the next accept (enough for tests).
struct TlsListener {
    tcp: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, addr)) = self.tcp.accept().await else {
                continue;
            };
            if let Ok(tls) = self.acceptor.accept(tcp).await {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

impl TestServer {
    /// Answers 500 to the first `fail_first` requests, then `status` with `body`.
    pub async fn start(fail_first: usize, status: u16, body: &str) -> Self {
        Self::serve(fail_first, status, body, None).await
    }

    /// [`TestServer::start`] over https, with `cert`.
    pub async fn start_tls(fail_first: usize, status: u16, body: &str, cert: &TestCert) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (c, k) = cert.write(dir.path());
        let config = pipedeck::tls::server_config(&c, &k).unwrap();
        Self::serve(fail_first, status, body, Some(config)).await
    }

    async fn serve(
        fail_first: usize,
        status: u16,
        body: &str,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> Self {
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
        let scheme = match tls {
            None => {
                tokio::spawn(async move { axum::serve(listener, app).await.ok() });
                "http"
            }
            Some(config) => {
                let listener = TlsListener {
                    tcp: listener,
                    acceptor: tokio_rustls::TlsAcceptor::from(config),
                };
                tokio::spawn(async move { axum::serve(listener, app).await.ok() });
                "https"
            }
        };
        Self {
            addr,
            scheme,
            inner,
            arrived,
        }
    }

    /// Every answer waits this long first (to make a client time out).
    pub fn delay(&self, d: Duration) {
        self.inner.lock().unwrap().delay = d;
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}://{}{path}", self.scheme, self.addr)
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
