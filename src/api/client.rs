//! The HTTP client side of the local API (reqwest).

use std::path::{Path, PathBuf};

use futures_util::StreamExt;
use serde::de::DeserializeOwned;

use super::protocol::{ByBody, DecideBody, Endpoint, InfraRunBody, endpoint_path, lock_path};
use super::{EngineClient, EventStream, Feed};
use crate::domain::{Decision, Event, GateInfo, RunDetail, RunInfo};
use crate::engine::{EngineError, Result, TriggerRequest};
use crate::store::{LogLine, RunFilter};

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

    async fn send<T: DeserializeOwned>(&self, req: reqwest::RequestBuilder) -> Result<T> {
        let resp = req
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

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

impl EngineClient for Client {
    async fn trigger(&self, req: TriggerRequest) -> Result<RunInfo> {
        self.send(self.http.post(self.url("/v1/runs")).json(&req))
            .await
    }

    async fn trigger_infra(&self, project: &str, undeploy: bool, by: &str) -> Result<RunInfo> {
        let body = InfraRunBody {
            project: project.to_string(),
            undeploy,
            by: by.to_string(),
        };
        self.send(self.http.post(self.url("/v1/infra-runs")).json(&body))
            .await
    }

    async fn trigger_stack_job(
        &self,
        resource: &str,
        infra: Option<&str>,
        operation: &str,
        by: &str,
    ) -> Result<RunInfo> {
        let body = super::protocol::StackJobBody {
            resource: resource.to_string(),
            infra: infra.map(str::to_string),
            operation: operation.to_string(),
            by: by.to_string(),
        };
        self.send(self.http.post(self.url("/v1/stack-jobs")).json(&body))
            .await
    }

    async fn cancel(&self, run_id: i64, by: &str) -> Result<RunInfo> {
        let body = ByBody { by: by.to_string() };
        self.send(
            self.http
                .post(self.url(&format!("/v1/runs/{run_id}/cancel")))
                .json(&body),
        )
        .await
    }

    async fn rerun(&self, run_id: i64, by: &str) -> Result<RunInfo> {
        let body = ByBody { by: by.to_string() };
        self.send(
            self.http
                .post(self.url(&format!("/v1/runs/{run_id}/rerun")))
                .json(&body),
        )
        .await
    }

    async fn decide(
        &self,
        run_id: i64,
        env: &str,
        decision: Decision,
        by: &str,
        comment: Option<String>,
    ) -> Result<GateInfo> {
        let body = DecideBody {
            decision,
            by: by.to_string(),
            comment,
        };
        // Node gates are keyed `env/node`: the slash travels encoded.
        let key = env.replace('%', "%25").replace('/', "%2F");
        let url = self.url(&format!("/v1/runs/{run_id}/gates/{key}"));
        self.send(self.http.post(url).json(&body)).await
    }

    async fn runs(&self, f: RunFilter) -> Result<Vec<RunInfo>> {
        let mut q: Vec<(&str, String)> = Vec::new();
        if let Some(s) = &f.service {
            q.push(("service", s.clone()));
        }
        if let Some(s) = f.status {
            q.push(("status", s.as_str().to_string()));
        }
        if let Some(l) = f.limit {
            q.push(("limit", l.to_string()));
        }
        if let Some(id) = f.id {
            q.push(("id", id.to_string()));
        }
        self.send(self.http.get(self.url("/v1/runs")).query(&q))
            .await
    }

    async fn detail(&self, run_id: i64) -> Result<RunDetail> {
        self.send(self.http.get(self.url(&format!("/v1/runs/{run_id}"))))
            .await
    }

    async fn waiting_gates(&self) -> Result<Vec<GateInfo>> {
        self.send(self.http.get(self.url("/v1/gates"))).await
    }

    async fn logs(
        &self,
        run_id: i64,
        step_id: i64,
        from: u64,
        limit: usize,
    ) -> Result<Vec<LogLine>> {
        let q = [
            ("step", step_id.to_string()),
            ("from", from.to_string()),
            ("limit", limit.to_string()),
        ];
        self.send(
            self.http
                .get(self.url(&format!("/v1/runs/{run_id}/logs")))
                .query(&q),
        )
        .await
    }

    async fn log_count(&self, run_id: i64, step_id: i64) -> Result<u64> {
        let q = [("step", step_id.to_string())];
        self.send(
            self.http
                .get(self.url(&format!("/v1/runs/{run_id}/logs/count")))
                .query(&q),
        )
        .await
    }

    async fn events(&self) -> Result<EventStream> {
        let resp = self
            .http
            .get(self.url("/v1/events"))
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
