//! The HTTP client side of the local API (reqwest).

use std::path::{Path, PathBuf};

use futures_util::StreamExt;

use super::protocol::{
    EVENTS_PATH, Endpoint, REQUEST_PATH, Request, Response, endpoint_path, lock_path,
};
use super::{EngineClient, EventStream, Feed};
use crate::domain::Event;
use crate::engine::{EngineError, Result};

/// No engine could be reached.
#[derive(Debug, thiserror::Error)]
#[error(
    "no engine is running for {data_dir}\n  hint: start one with `pipedeck serve` (or `pipedeck run SERVICE --wait`, which hosts one while it runs){detail}"
)]
pub struct NoEngine {
    pub data_dir: PathBuf,
    pub detail: String,
}

#[derive(Clone)]
pub struct Client {
    base: String,
    token: String,
    http: reqwest::Client,
}

fn conn_err(e: reqwest::Error) -> EngineError {
    EngineError::Unreachable(format!("cannot reach the engine: {e}"))
}

impl Client {
    /// Finds the engine hosted for `data_dir`.
    pub fn connect(data_dir: &Path) -> std::result::Result<Self, NoEngine> {
        let no = |detail: String| NoEngine {
            data_dir: data_dir.to_path_buf(),
            detail,
        };
        // The host holds the lock for as long as it lives: if we can take it, nobody hosts.
        match std::fs::OpenOptions::new()
            .write(true)
            .open(lock_path(data_dir))
        {
            Ok(f) => {
                if f.try_lock().is_ok() {
                    return Err(no(String::new()));
                }
            }
            Err(_) => return Err(no(String::new())),
        }
        let text = std::fs::read_to_string(endpoint_path(data_dir)).map_err(|e| {
            no(format!(
                "\n  (the engine is starting or its endpoint file is unreadable: {e})"
            ))
        })?;
        let ep: Endpoint =
            serde_json::from_str(&text).map_err(|e| no(format!("\n  (bad endpoint file: {e})")))?;
        Ok(Self::new(ep))
    }

    pub fn new(ep: Endpoint) -> Self {
        Self {
            base: ep.url,
            token: ep.token,
            http: reqwest::Client::new(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

impl EngineClient for Client {
    async fn call(&self, req: Request) -> Result<Response> {
        let resp = self
            .http
            .post(self.url(REQUEST_PATH))
            .json(&req)
            .bearer_auth(&self.token)
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
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(conn_err)?;
        if !resp.status().is_success() {
            return Err(EngineError::Internal(format!(
                "the engine answered {}",
                resp.status()
            )));
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
