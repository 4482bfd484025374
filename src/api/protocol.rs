//! The local HTTP API's wire format and the endpoint file.
//!
//! Two routes: `POST /v1/request` takes one [`Request`] as its JSON body and answers
//! with a [`Response`] (or an [`crate::engine::EngineError`] with a 4xx/5xx status);
//! `GET /v1/events` streams events as newline-delimited JSON. Both are served on a
//! Unix socket: the server attaches the caller (the socket peer's account); a body
//! that names one is refused.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use crate::domain::command::{Request, Response};

/// Written by the hosting process into the data dir (mode 0600): where it serves.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Endpoint {
    pub socket: PathBuf,
    pub pid: u32,
}

/// The socket an engine serves on by default: in its data dir.
pub const SOCKET_FILE: &str = "engine.sock";

pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join(SOCKET_FILE)
}

pub const ENDPOINT_FILE: &str = "engine.json";
pub const LOCK_FILE: &str = "engine.lock";

/// The one route for requests.
pub const REQUEST_PATH: &str = "/v1/request";
/// The event stream.
pub const EVENTS_PATH: &str = "/v1/events";
/// Metrics in the Prometheus text format (a viewer's right), where scrapers look.
pub const METRICS_PATH: &str = "/metrics";

pub fn endpoint_path(data_dir: &Path) -> PathBuf {
    data_dir.join(ENDPOINT_FILE)
}

pub fn lock_path(data_dir: &Path) -> PathBuf {
    data_dir.join(LOCK_FILE)
}

/// The line an event stream sends when the subscriber fell behind.
pub const LAGGED_LINE: &str = "{\"type\":\"lagged\"}";
