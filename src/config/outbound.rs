//! Outbound integrations (EN-6): commit statuses to a GitHub-compatible API, and
//! notifications to webhooks. Both retry with backoff and give up after a bound; the
//! pipeline never waits for them.

use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::schema::{NotifyFile, StatusReportingFile};
use super::validate::Ctx;
use super::verify::{BACKOFF, TIMEOUT};
use super::{SecretRef, SecretSource};

/// How an outbound call is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// Attempts after the first (on 5xx, 429, timeouts and connection errors).
    pub retries: u32,
    /// Before the first retry; doubled each retry, plus jitter.
    pub backoff_ms: u64,
    /// Per attempt.
    pub timeout_ms: u64,
}

/// Commit statuses for a service's runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusReporting {
    /// The API's base URL (`{api}/repos/{owner}/{repo}/statuses/{sha}`).
    pub api: String,
    pub owner: String,
    pub repo: String,
    /// The service's secret holding the token (sent as `Authorization: Bearer`).
    pub token_secret: String,
    /// Contexts are `<context>/build` and `<context>/deploy/<env>`.
    pub context: String,
    /// The status's link; `{run}` becomes the run id.
    pub target_url: Option<String>,
    pub retry: RetryPolicy,
}

/// A run's happenings a notification may be sent for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotifyEvent {
    GateWaiting,
    RunFailed,
    RunSucceeded,
    Deployed,
    /// A drift check (on demand or scheduled) found drifted resources in an infra
    /// pipeline.
    Drifted,
}

/// The payload's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotifyFormat {
    /// `{"event", "text", "run": {...}, "environment", "approve"}`.
    Json,
    /// A Slack-compatible incoming webhook: `{"text"}`.
    Slack,
}

/// One `[[notify]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notify {
    pub name: String,
    /// The webhook URL: a secret, read when sending, masked in every message.
    pub url: SecretRef,
    pub format: NotifyFormat,
    pub events: Vec<NotifyEvent>,
    /// Only these services' runs; empty: every service.
    pub services: Vec<String>,
    pub retry: RetryPolicy,
}

fn retry(
    cx: &mut Ctx<'_>,
    retries: &Option<Spanned<i64>>,
    backoff: &Option<Spanned<String>>,
    timeout: &Option<Spanned<String>>,
) -> RetryPolicy {
    let retries = super::verify::retries(cx, retries, 4);
    RetryPolicy {
        retries,
        backoff_ms: cx.duration(backoff, 1_000, &BACKOFF),
        timeout_ms: cx.duration(timeout, 10_000, &TIMEOUT),
    }
}

fn http_url(cx: &mut Ctx<'_>, url: &Spanned<String>) {
    let u = url.get_ref();
    match reqwest::Url::parse(u) {
        Ok(p) if matches!(p.scheme(), "http" | "https") && p.host().is_some() => {}
        _ => cx.err(
            url.span(),
            format!("`{u}` is not an http:// or https:// URL with a host"),
            "write http(s)://HOST[:PORT][/PATH]",
        ),
    }
}

pub(super) fn status_reporting(
    cx: &mut Ctx<'_>,
    sname: &str,
    f: &StatusReportingFile,
    secrets: &[SecretRef],
) -> StatusReporting {
    http_url(cx, &f.api);
    if !secrets.iter().any(|s| &s.name == f.token_secret.get_ref()) {
        cx.err(
            f.token_secret.span(),
            format!(
                "token_secret `{}` is not a secret of service `{sname}`",
                f.token_secret.get_ref()
            ),
            &format!("declare it under [services.{sname}.secrets], or fix the name"),
        );
    }
    StatusReporting {
        api: f.api.get_ref().trim_end_matches('/').to_string(),
        owner: f.owner.clone(),
        repo: f.repo.clone(),
        token_secret: f.token_secret.get_ref().clone(),
        context: f.context.clone().unwrap_or_else(|| "pipedeck".into()),
        target_url: f.target_url.clone(),
        retry: retry(cx, &f.retries, &f.backoff, &f.timeout),
    }
}

pub(super) fn notify(cx: &mut Ctx<'_>, files: &[NotifyFile], services: &[&str]) -> Vec<Notify> {
    let mut out = Vec::new();
    for f in files {
        let url = match (&f.url_env, &f.url_file) {
            (Some(e), None) => SecretSource::Env(e.clone()),
            (None, Some(p)) => SecretSource::File(cx.path(p)),
            _ => {
                cx.err(
                    f.name.span(),
                    format!("notify `{}` needs exactly one of url_env and url_file", f.name.get_ref()),
                    "the webhook URL is a secret: name the variable (url_env) or file (url_file) holding it",
                );
                continue;
            }
        };
        let format = match f.format.as_ref().map(|s| s.get_ref().as_str()) {
            None | Some("json") => NotifyFormat::Json,
            Some("slack") => NotifyFormat::Slack,
            Some(other) => {
                let span = f.format.as_ref().map(|s| s.span()).unwrap_or_default();
                cx.err(
                    span,
                    format!("format = \"{other}\" is not known"),
                    "use \"json\" (default) or \"slack\"",
                );
                continue;
            }
        };
        let mut events = Vec::new();
        for e in &f.events {
            events.push(match e.get_ref().as_str() {
                "gate_waiting" => NotifyEvent::GateWaiting,
                "run_failed" => NotifyEvent::RunFailed,
                "run_succeeded" => NotifyEvent::RunSucceeded,
                "deployed" => NotifyEvent::Deployed,
                "drifted" => NotifyEvent::Drifted,
                other => {
                    cx.err(
                        e.span(),
                        format!("event `{other}` is not known"),
                        "use gate_waiting, run_failed, run_succeeded, deployed or drifted",
                    );
                    continue;
                }
            });
        }
        for s in &f.services {
            if !services.contains(&s.get_ref().as_str()) {
                cx.err(
                    s.span(),
                    format!(
                        "notify `{}` names `{}`, which is neither a service nor an infra pipeline here",
                        f.name.get_ref(),
                        s.get_ref()
                    ),
                    "name a service declared under [services] or a pipeline under [infra], or remove it",
                );
            }
        }
        out.push(Notify {
            name: f.name.get_ref().clone(),
            url: SecretRef {
                name: format!("notify {} URL", f.name.get_ref()),
                source: url,
            },
            format,
            events,
            services: f.services.iter().map(|s| s.get_ref().clone()).collect(),
            retry: retry(cx, &f.retries, &f.backoff, &f.timeout),
        });
    }
    out
}
