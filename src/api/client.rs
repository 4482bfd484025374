//! The HTTP client side of the local API (reqwest over the engine's Unix socket).

use std::path::{Path, PathBuf};

use futures_util::StreamExt;

use super::protocol::{EVENTS_PATH, REQUEST_PATH, Request, Response};
use super::{EngineClient, EventStream, Feed};
use crate::domain::Event;
use crate::engine::{EngineError, Result};

/// The engine's socket could not be used.
#[derive(Debug, thiserror::Error)]
pub enum NoEngine {
    #[error(
        "no engine is running at {}\n  hint: start one with `pipedeck serve` (or `pipedeck run SERVICE --wait`, which hosts one while it runs); a shared engine's socket is given with --socket or PIPEDECK_SOCKET",
        socket.display()
    )]
    NotRunning { socket: PathBuf },
    #[error(
        "you may not connect to the engine at {}: permission denied\n  hint: the socket admits its owner and its group (`ls -l {}`); ask an admin to add you to that group, then log in again",
        socket.display(),
        socket.display()
    )]
    Denied { socket: PathBuf },
    #[error("cannot connect to the engine at {}: {source}", socket.display())]
    Other {
        socket: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
}

/// The host part of every URL: the socket decides where requests go.
const BASE: &str = "http://pipedeck";

fn conn_err(e: reqwest::Error) -> EngineError {
    EngineError::Unreachable(format!("cannot reach the engine: {e}"))
}

impl Client {
    /// Connects to the engine serving `socket`: tried once now, so that a missing
    /// engine or a refused connection is told apart at once.
    pub fn connect(socket: &Path) -> std::result::Result<Self, NoEngine> {
        use std::io::ErrorKind;
        let socket_buf = socket.to_path_buf();
        match std::os::unix::net::UnixStream::connect(socket) {
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::ConnectionRefused) => {
                return Err(NoEngine::NotRunning { socket: socket_buf });
            }
            Err(e) if e.kind() == ErrorKind::PermissionDenied => {
                return Err(NoEngine::Denied { socket: socket_buf });
            }
            Err(source) => {
                return Err(NoEngine::Other {
                    socket: socket_buf,
                    source,
                });
            }
        }
        let http = crate::tls::client_builder()
            .unix_socket(socket)
            .build()
            .map_err(|e| NoEngine::Other {
                socket: socket_buf,
                source: std::io::Error::other(e),
            })?;
        Ok(Self { http })
    }

    fn url(&self, path: &str) -> String {
        format!("{BASE}{path}")
    }
}

impl EngineClient for Client {
    async fn call(&self, req: Request) -> Result<Response> {
        let resp = self
            .http
            .post(self.url(REQUEST_PATH))
            .json(&req)
            .send()
            .await
            .map_err(conn_err)?;
        if resp.status().is_success() {
            resp.json().await.map_err(conn_err)
        } else {
            let status = resp.status();
            match resp.json::<EngineError>().await {
                Ok(e) => Err(e),
                Err(_) => Err(EngineError::Internal(format!(
                    "the engine answered {status}"
                ))),
            }
        }
    }

    async fn events(&self) -> Result<EventStream> {
        let resp = self
            .http
            .get(self.url(EVENTS_PATH))
            .send()
            .await
            .map_err(conn_err)?;
        if !resp.status().is_success() {
            let status = resp.status();
            return Err(match resp.json::<EngineError>().await {
                Ok(e) => e,
                Err(_) => EngineError::Internal(format!("the engine answered {status}")),
            });
        }
        let mut bytes = resp.bytes_stream();
        let mut buf: Vec<u8> = Vec::new();
        // Wait for the hello line: from then on, no event is missed.
        loop {
            if let Some(pos) = buf.iter().position(|&b| b == b'\n') {
                buf.drain(..=pos);
                break;
            }
            match bytes.next().await {
                Some(Ok(chunk)) => buf.extend_from_slice(&chunk),
                _ => return Err(EngineError::Stopped),
            }
        }
        let stream =
            futures_util::stream::unfold((bytes, buf), |(mut bytes, mut buf)| async move {
                loop {
                    if let Some(pos) = buf.iter().position(|&b| b == b'\n') {
                        let line: Vec<u8> = buf.drain(..=pos).collect();
                        let item = match serde_json::from_slice::<Event>(&line) {
                            Ok(e) => Feed::Event(Box::new(e)),
                            Err(_) => Feed::Lagged,
                        };
                        return Some((item, (bytes, buf)));
                    }
                    match bytes.next().await {
                        Some(Ok(chunk)) => buf.extend_from_slice(&chunk),
                        _ => return None,
                    }
                }
            });
        Ok(Box::pin(stream))
    }
}
