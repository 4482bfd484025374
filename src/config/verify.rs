//! Checks after an environment deploy (SP-3a): commands (smoke tests) and HTTP
//! health checks, resolved from `[[services.S.deploy.E.verify]]`.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::schema::VerifyFile;
use super::validate::{Ctx, DurationRange, KILL_GRACE, check_name};

/// One check after a deploy; its row is `<env>.<name>` under the environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    pub name: String,
    pub kind: CheckKind,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckKind {
    /// A command run like a step (`sh -c RUN` in the run's workspace).
    Command {
        run: String,
        kill_grace_ms: u64,
    },
    Http(HttpCheck),
}

/// An HTTP health check: attempts until one answers as expected, or the retries run out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HttpCheck {
    pub url: String,
    pub method: HttpMethod,
    /// The status a passing answer has.
    pub status: u16,
    /// A substring a passing answer's body holds.
    pub body_contains: Option<String>,
    /// Per attempt, from connecting to the whole body read.
    pub timeout_ms: u64,
    /// Attempts after the first.
    pub retries: u32,
    /// The wait before the first retry; doubled for each one after, plus jitter.
    pub backoff_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    Get,
    Head,
    Post,
    Put,
}

impl HttpMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            HttpMethod::Get => "GET",
            HttpMethod::Head => "HEAD",
            HttpMethod::Post => "POST",
            HttpMethod::Put => "PUT",
        }
    }
}

/// One attempt of an HTTP check lasts 1ms to 10 minutes.
pub(super) const TIMEOUT: DurationRange = DurationRange {
    key: "timeout",
    min_ms: 1,
    max_ms: 600_000,
};

/// The first wait between attempts: 1ms to an hour.
pub(super) const BACKOFF: DurationRange = DurationRange {
    key: "backoff",
    min_ms: 1,
    max_ms: 3_600_000,
};

/// At most this many retries of one check.
pub const MAX_RETRIES: u32 = 100;

/// The checks of one deploy; errors go to `cx`.
pub(super) fn resolve_checks(
    cx: &mut Ctx<'_>,
    at: &str,
    files: &[VerifyFile],
    kill_grace_ms: u64,
) -> Vec<Check> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for f in files {
        check_name(cx, &f.name, "verify check");
        let name = f.name.get_ref().clone();
        if !seen.insert(name.clone()) {
            cx.err(
                f.name.span(),
                format!("verify check `{name}` is declared twice in {at}"),
                "give each check of a deploy its own name",
            );
            continue;
        }
        let http_keys = f.method.is_some()
            || f.status.is_some()
            || f.body_contains.is_some()
            || f.timeout.is_some()
            || f.retries.is_some()
            || f.backoff.is_some();
        let kind = match (&f.run, &f.url) {
            (Some(run), None) => {
                if http_keys {
                    cx.err(
                        f.name.span(),
                        format!("verify check `{name}` runs a command but sets HTTP keys"),
                        "method, status, body_contains, timeout, retries and backoff go with `url`; remove them or use `url`",
                    );
                    continue;
                }
                CheckKind::Command {
                    run: run.clone(),
                    kill_grace_ms: cx.duration(&f.kill_grace, kill_grace_ms, &KILL_GRACE),
                }
            }
            (None, Some(url)) => match http(cx, f, url) {
                Some(h) => CheckKind::Http(h),
                None => continue,
            },
            _ => {
                cx.err(
                    f.name.span(),
                    format!("verify check `{name}` needs exactly one of `run` and `url`"),
                    "set `run = \"...\"` for a command check or `url = \"http://...\"` for an HTTP check",
                );
                continue;
            }
        };
        out.push(Check { name, kind });
    }
    out
}

/// A `retries` key: from 0 to [`MAX_RETRIES`], `default` when unset.
pub(super) fn retries(cx: &mut Ctx<'_>, value: &Option<toml::Spanned<i64>>, default: u32) -> u32 {
    let Some(r) = value else { return default };
    match u32::try_from(*r.get_ref()) {
        Ok(n) if n <= MAX_RETRIES => n,
        _ => {
            cx.err(
                r.span(),
                format!("retries = {} is out of range", r.get_ref()),
                &format!(
                    "write how many times to try again after the first attempt, from 0 to {MAX_RETRIES}"
                ),
            );
            default
        }
    }
}

fn http(cx: &mut Ctx<'_>, f: &VerifyFile, url: &toml::Spanned<String>) -> Option<HttpCheck> {
    let before = cx.errors.len();
    let u = url.get_ref();
    match reqwest::Url::parse(u) {
        Ok(p) if matches!(p.scheme(), "http" | "https") && p.host().is_some() => {}
        Ok(_) => cx.err(
            url.span(),
            format!("`{u}` is not an http:// or https:// URL with a host"),
            "write the URL as http(s)://HOST[:PORT]/PATH",
        ),
        Err(e) => cx.err(
            url.span(),
            format!("`{u}` is not a URL: {e}"),
            "write the URL as http://HOST[:PORT]/PATH",
        ),
    }
    let method = match f.method.as_ref().map(|m| m.get_ref().to_ascii_uppercase()) {
        None => HttpMethod::Get,
        Some(m) if m == "GET" => HttpMethod::Get,
        Some(m) if m == "HEAD" => HttpMethod::Head,
        Some(m) if m == "POST" => HttpMethod::Post,
        Some(m) if m == "PUT" => HttpMethod::Put,
        Some(m) => {
            let span = f.method.as_ref().map(|s| s.span()).unwrap_or_default();
            cx.err(
                span,
                format!("method `{m}` is not supported"),
                "use GET, HEAD, POST or PUT",
            );
            HttpMethod::Get
        }
    };
    let status = match &f.status {
        None => 200,
        Some(s) => match u16::try_from(*s.get_ref()) {
            Ok(n) if (100..=599).contains(&n) => n,
            _ => {
                cx.err(
                    s.span(),
                    format!("status {} is not an HTTP status", s.get_ref()),
                    "write the status a healthy answer has, from 100 to 599 (e.g. 200)",
                );
                200
            }
        },
    };
    let retries = retries(cx, &f.retries, 3);
    let check = HttpCheck {
        url: u.clone(),
        method,
        status,
        body_contains: f.body_contains.clone(),
        timeout_ms: cx.duration(&f.timeout, 10_000, &TIMEOUT),
        retries,
        backoff_ms: cx.duration(&f.backoff, 1_000, &BACKOFF),
    };
    if f.kill_grace.is_some() {
        let span = f.kill_grace.as_ref().map(|s| s.span()).unwrap_or_default();
        cx.err(
            span,
            "kill_grace applies to command checks only".into(),
            "remove kill_grace from this HTTP check",
        );
    }
    (cx.errors.len() == before).then_some(check)
}
