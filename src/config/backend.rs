//! Terraform state backends (issue 22): where a resource's state lives, validated from
//! a `backend` table of an infra project or resource.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::schema::BackendFile;
use super::validate::Ctx;
use super::{SecretRef, SecretSource};

/// The backends pipedeck can hand a resource's state to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    Local,
    Pg,
    S3,
    Gcs,
    Azurerm,
    Http,
}

impl BackendKind {
    pub const ALL: [BackendKind; 6] = [
        Self::Local,
        Self::Pg,
        Self::S3,
        Self::Gcs,
        Self::Azurerm,
        Self::Http,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Pg => "pg",
            Self::S3 => "s3",
            Self::Gcs => "gcs",
            Self::Azurerm => "azurerm",
            Self::Http => "http",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Whether each resource's state is a workspace of the one backend configuration
    /// (the http backend has no workspaces; local state is a file per resource).
    pub fn uses_workspaces(self) -> bool {
        !matches!(self, Self::Local | Self::Http)
    }
}

/// A validated backend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Backend {
    pub kind: BackendKind,
    /// Plain settings: strings, numbers and booleans.
    pub config: BTreeMap<String, serde_json::Value>,
    /// Settings read when a job starts (the name is the setting).
    pub secrets: Vec<SecretRef>,
    /// Terraform's `-lock-timeout` for plan and apply.
    pub lock_timeout_ms: Option<u64>,
}

/// Validates a `backend` table; errors go to `cx` (and the result is `None`).
pub(super) fn backend(cx: &mut Ctx, f: &BackendFile) -> Option<Backend> {
    let first_error = cx.errors.len();
    let kind = BackendKind::parse(f.kind.get_ref());
    if kind.is_none() {
        cx.err(
            f.kind.span(),
            format!("backend type `{}` is not supported", f.kind.get_ref()),
            "use \"local\", \"pg\", \"s3\", \"gcs\", \"azurerm\" or \"http\"",
        );
    }
    let mut config = BTreeMap::new();
    for (k, v) in &f.config {
        let json = match v.get_ref() {
            toml::Value::String(s) => serde_json::Value::from(s.clone()),
            toml::Value::Integer(i) => serde_json::Value::from(*i),
            toml::Value::Float(x) => serde_json::Value::from(*x),
            toml::Value::Boolean(b) => serde_json::Value::from(*b),
            _ => {
                cx.err(
                    v.span(),
                    format!("backend setting `{k}` must be a string, number or boolean"),
                    "write one value; lists and tables are not passed to -backend-config",
                );
                continue;
            }
        };
        if !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            cx.err(
                v.span(),
                format!("backend setting `{k}` is not a Terraform argument name"),
                "use letters, digits and `_`",
            );
        }
        config.insert(k.clone(), json);
    }
    let mut secrets = Vec::new();
    for (k, v) in &f.secrets {
        let source = match (&v.env, &v.file) {
            (Some(e), None) => SecretSource::Env(e.clone()),
            (None, Some(p)) => SecretSource::File(cx.path(p)),
            _ => {
                cx.err(
                    k.span(),
                    format!("backend secret `{}` needs exactly one source", k.get_ref()),
                    "write `{ env = \"VAR\" }` or `{ file = \"/path\" }`; never the value itself",
                );
                continue;
            }
        };
        if f.config.contains_key(k.get_ref()) {
            cx.err(
                k.span(),
                format!(
                    "backend setting `{}` is both in config and in secrets",
                    k.get_ref()
                ),
                "keep it in one of them",
            );
        }
        secrets.push(SecretRef {
            name: k.get_ref().clone(),
            source,
        });
    }
    let lock_timeout_ms = cx.timeout(&f.lock_timeout, None);
    if kind == Some(BackendKind::Local) && !(config.is_empty() && secrets.is_empty()) {
        cx.err(
            f.kind.span(),
            "the local backend takes no settings: pipedeck keeps each resource's state in its data dir".into(),
            "remove `config` and `secrets`, or name a shared backend",
        );
    }
    if cx.errors.len() > first_error {
        return None;
    }
    Some(Backend {
        kind: kind?,
        config,
        secrets,
        lock_timeout_ms,
    })
}
