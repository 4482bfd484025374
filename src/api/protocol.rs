//! Request and response bodies of the local HTTP API, and the endpoint file.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::domain::Decision;

/// Written by the hosting process into the data dir (mode 0600): where and how to connect.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Endpoint {
    pub url: String,
    pub token: String,
    pub pid: u32,
}

pub const ENDPOINT_FILE: &str = "engine.json";
pub const LOCK_FILE: &str = "engine.lock";

pub fn endpoint_path(data_dir: &Path) -> PathBuf {
    data_dir.join(ENDPOINT_FILE)
}

pub fn lock_path(data_dir: &Path) -> PathBuf {
    data_dir.join(LOCK_FILE)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ByBody {
    pub by: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InfraRunBody {
    pub project: String,
    pub undeploy: bool,
    pub by: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StackJobBody {
    pub resource: String,
    pub infra: Option<String>,
    pub operation: String,
    pub by: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DecideBody {
    pub decision: Decision,
    pub by: String,
    pub comment: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogsQuery {
    pub step: i64,
    #[serde(default)]
    pub from: u64,
    pub limit: Option<usize>,
}

/// The line an event stream sends when the subscriber fell behind.
pub const LAGGED_LINE: &str = "{\"type\":\"lagged\"}";
