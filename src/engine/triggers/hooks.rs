//! Signed webhooks (SP-7, EN-6): GitHub pushes, tag pushes and pull requests, and
//! GitLab's push, tag push and merge request hooks. A delivery is authenticated
//! before anything in it counts: GitHub's `X-Hub-Signature-256` is the HMAC-SHA256
//! of the raw body with the service's secret (checked in constant time), GitLab's
//! `X-Gitlab-Token` the secret itself (compared in constant time). Each delivery id
//! is claimed once (a replay is refused). Every refusal is a 4xx with its reason and
//! an entry in the audit log; an event of no interest is answered 202 and logged.
//! Nothing from a payload reaches a shell: it becomes the run's branch, tag, commit
//! and pull-request number, which steps see as environment variables.

use hmac::{Hmac, Mac};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::pull::{PullAction, PullRun};
use super::{Fire, Ignored};
use crate::config::{PullRequestLevel, Service};
use crate::domain::Trigger;
use crate::engine::EngineHandle;
use crate::engine::runner::{Msg, TriggerMsg};

/// The largest body accepted (GitHub caps its payloads at 25 MB; pushes of a few
/// commits are kilobytes).
pub const MAX_BODY: usize = 1024 * 1024;

/// Which forge sent the delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forge {
    GitHub,
    GitLab,
}

impl Forge {
    pub fn name(self) -> &'static str {
        match self {
            Forge::GitHub => "github",
            Forge::GitLab => "gitlab",
        }
    }

    /// Who a run it starts was triggered by (and who a refusal is audited as).
    fn caller(self) -> String {
        format!("hook:{}", self.name())
    }
}

/// The headers a delivery is judged by.
#[derive(Debug, Clone, Default)]
pub struct HookHeaders {
    /// `X-GitHub-Event` / `X-Gitlab-Event`.
    pub event: Option<String>,
    /// `X-GitHub-Delivery` / `X-Gitlab-Event-UUID`.
    pub delivery: Option<String>,
    /// `X-Hub-Signature-256` / `X-Gitlab-Token`.
    pub signature: Option<String>,
}

/// A delivery refused: the HTTP status (4xx) and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Refusal {
    #[serde(skip)]
    pub status: u16,
    pub refused: String,
}

/// A delivery accepted: the runs it started, and what it did not act on.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Accepted {
    #[serde(skip)]
    pub status: u16,
    pub runs: Vec<i64>,
    pub ignored: Vec<String>,
    pub errors: Vec<String>,
}

impl EngineHandle {
    /// Refuses a delivery: audited, then answered with `status` and `why`.
    pub async fn refuse_hook(&self, forge: Forge, status: u16, why: String) -> Refusal {
        let why = crate::domain::ansi::sanitize(&why, false);
        tracing::warn!(forge = forge.name(), status, "webhook refused: {why}");
        let (actor, what, w) = (
            forge.caller(),
            format!("/hooks/{}", forge.name()),
            why.clone(),
        );
        let r = self
            .runner(|reply| {
                Msg::Trigger(TriggerMsg::Refused {
                    actor,
                    what,
                    why: w,
                    reply,
                })
            })
            .await;
        if let Err(e) = r {
            tracing::error!("cannot audit a refused webhook: {e}");
        }
        Refusal {
            status,
            refused: why,
        }
    }

    /// Judges and acts on one delivery.
    pub async fn hook(
        &self,
        forge: Forge,
        headers: HookHeaders,
        body: &[u8],
    ) -> Result<Accepted, Refusal> {
        use crate::engine::metrics::counters::WebhookOutcome;
        let judged = self.judge(forge, &headers, body).await;
        let outcome = match &judged {
            Ok(a) if a.runs.is_empty() => WebhookOutcome::Ignored,
            Ok(_) => WebhookOutcome::Accepted,
            Err((401, _)) => WebhookOutcome::BadSignature,
            Err(_) => WebhookOutcome::Invalid,
        };
        self.metrics().webhook(outcome);
        match judged {
            Ok(a) => Ok(a),
            Err((status, why)) => Err(self.refuse_hook(forge, status, why).await),
        }
    }

    async fn judge(
        &self,
        forge: Forge,
        headers: &HookHeaders,
        body: &[u8],
    ) -> Result<Accepted, (u16, String)> {
        let (event_h, delivery_h, sig_h) = match forge {
            Forge::GitHub => ("X-GitHub-Event", "X-GitHub-Delivery", "X-Hub-Signature-256"),
            Forge::GitLab => ("X-Gitlab-Event", "X-Gitlab-Event-UUID", "X-Gitlab-Token"),
        };
        let missing = |h: &str| (400, format!("the {h} header is missing"));
        let event = headers.event.as_deref().ok_or_else(|| missing(event_h))?;
        let delivery = headers
            .delivery
            .as_deref()
            .ok_or_else(|| missing(delivery_h))?;
        let signature = headers
            .signature
            .as_deref()
            .ok_or_else(|| (401, format!("the {sig_h} header is missing")))?;
        let payload: Value = serde_json::from_slice(body)
            .map_err(|e| (400, format!("the body is not JSON: {e}")))?;
        let repo = match forge {
            Forge::GitHub => payload.pointer("/repository/full_name"),
            Forge::GitLab => payload.pointer("/project/path_with_namespace"),
        }
        .and_then(Value::as_str)
        .ok_or_else(|| (400, "the payload names no repository".to_string()))?;
        let project = self.project();
        let candidates: Vec<&Service> = project
            .services
            .values()
            .filter(|s| {
                s.triggers
                    .webhook
                    .as_ref()
                    .is_some_and(|w| w.repository == repo)
            })
            .collect();
        if candidates.is_empty() {
            return Err((
                404,
                format!("no service takes webhooks of repository {repo} ([services.NAME.webhook])"),
            ));
        }
        let mut services = Vec::new();
        for svc in candidates {
            let Some(w) = &svc.triggers.webhook else {
                continue;
            };
            let secret = w.secret.resolve().map_err(|e| {
                (
                    403,
                    format!(
                        "the webhook secret of service {} cannot be read: {e}",
                        svc.name
                    ),
                )
            })?;
            let good = match forge {
                Forge::GitHub => github_signature_ok(secret.as_bytes(), body, signature),
                Forge::GitLab => same(secret.as_bytes(), signature.as_bytes()),
            };
            if good {
                services.push(svc);
            }
        }
        if services.is_empty() {
            return Err((
                401,
                match forge {
                    Forge::GitHub => "the X-Hub-Signature-256 signature does not match".into(),
                    Forge::GitLab => "the X-Gitlab-Token does not match".into(),
                },
            ));
        }
        let (source, id) = (forge.name().to_string(), delivery.to_string());
        let fresh = self
            .runner(|reply| Msg::Trigger(TriggerMsg::Delivery { source, id, reply }))
            .await
            .map_err(|e| (503, format!("cannot record the delivery: {e}")))?;
        if !fresh {
            return Err((
                409,
                format!("delivery {delivery} was received before (a replay)"),
            ));
        }
        let mut out = Accepted {
            status: 202,
            ..Default::default()
        };
        for svc in services {
            match fires(forge, event, &payload, svc) {
                Ok(list) => {
                    for f in list {
                        let what = format!("{} {}", f.trigger, f.source);
                        match self.fire(f).await {
                            Ok(Some(run)) => out.runs.push(run.id),
                            Ok(None) => out.ignored.push(format!("{what}: already started")),
                            Err(e) => out.errors.push(format!("{what}: {e}")),
                        }
                    }
                }
                Err(why) => {
                    tracing::info!(
                        forge = forge.name(),
                        event,
                        service = svc.name,
                        "webhook ignored: {why}"
                    );
                    out.ignored.push(why.to_string());
                }
            }
        }
        if !out.runs.is_empty() {
            out.status = 201;
        }
        Ok(out)
    }
}

/// What an accepted event asks of `svc` (none: why it is ignored).
fn fires(forge: Forge, event: &str, p: &Value, svc: &Service) -> Result<Vec<Fire>, Ignored> {
    let by = forge.caller();
    let s = |ptr: &str| p.pointer(ptr).and_then(Value::as_str);
    let push_like = matches!(
        (forge, event),
        (Forge::GitHub, "push") | (Forge::GitLab, "Push Hook" | "Tag Push Hook")
    );
    if push_like {
        let (Some(r), Some(after)) = (s("/ref"), s("/after")) else {
            return Err(Ignored::NoRef {
                event: event.into(),
            });
        };
        if after.bytes().all(|b| b == b'0') {
            return Err(Ignored::Deleted {
                event: event.into(),
                git_ref: r.into(),
            });
        }
        return super::ref_fire(svc, r, after, &|_| by.clone()).map(|f| vec![f]);
    }
    let pr = match (forge, event) {
        (Forge::GitHub, "pull_request") => {
            let action = match s("/action") {
                Some("opened" | "synchronize" | "reopened") => PullAction::Head,
                Some("closed") => PullAction::Closed,
                other => {
                    return Err(Ignored::Action {
                        what: "pull_request",
                        action: other.map(Into::into),
                    });
                }
            };
            let n = p.pointer("/number").and_then(Value::as_u64);
            let sha = s("/pull_request/head/sha");
            let branch = s("/pull_request/head/ref");
            (n, sha, branch, action)
        }
        (Forge::GitLab, "Merge Request Hook") => {
            let action = match s("/object_attributes/action") {
                Some("open" | "reopen" | "update") => PullAction::Head,
                Some("close" | "merge") => PullAction::Closed,
                other => {
                    return Err(Ignored::Action {
                        what: "merge request",
                        action: other.map(Into::into),
                    });
                }
            };
            let n = p.pointer("/object_attributes/iid").and_then(Value::as_u64);
            let sha = s("/object_attributes/last_commit/id");
            let branch = s("/object_attributes/source_branch");
            (n, sha, branch, action)
        }
        _ => return Err(Ignored::Event(event.into())),
    };
    let (Some(n), Some(sha), Some(branch), action) = pr else {
        return Err(Ignored::NoPullFields {
            event: event.into(),
        });
    };
    match (svc.pull_requests, action) {
        (PullRequestLevel::Off, _) => {
            return Err(Ignored::PullsOff(svc.name.clone()));
        }
        (PullRequestLevel::Build, PullAction::Closed) => {
            return Err(Ignored::ClosedWithoutPreview(n));
        }
        _ => {}
    }
    let key = match action {
        PullAction::Head => format!("head:{sha}"),
        PullAction::Closed => format!("closed:{sha}"),
    };
    Ok(vec![Fire {
        service: svc.name.clone(),
        trigger: "pull_request".into(),
        source: format!("pr/{n}"),
        key,
        commit: Some(sha.to_string()),
        branch: branch.to_string(),
        tag: None,
        kind: Trigger::PullRequest,
        by,
        pull: Some(PullRun { number: n, action }),
    }])
}

/// Whether `header` (`sha256=<hex>`) is the HMAC-SHA256 of `body` with `secret`;
/// the comparison takes the same time wherever the first difference is.
pub fn github_signature_ok(secret: &[u8], body: &[u8], header: &str) -> bool {
    let Some(sig) = header.strip_prefix("sha256=").and_then(unhex) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
}

/// The `X-Hub-Signature-256` value of `body` signed with `secret`.
pub fn github_signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(body);
    let bytes = mac.finalize().into_bytes();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Equal in constant time: the digests of both are compared byte by byte to the end.
fn same(a: &[u8], b: &[u8]) -> bool {
    let (x, y) = (Sha256::digest(a), Sha256::digest(b));
    x.iter()
        .zip(y.iter())
        .fold(0u8, |acc, (p, q)| acc | (p ^ q))
        == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(level: &str) -> Service {
        let text = format!(
            "[services.api]\nrepo = \"/nonexistent\"\nbranches = [\"main\"]\ntags = [\"v*\"]\n\
             pull_requests = \"{level}\"\npreview = {{ run = \"true\", teardown = \"true\" }}\n"
        );
        let p = crate::config::parse_project(std::path::Path::new("/tmp/p.toml"), &text).unwrap();
        p.service("api").unwrap().clone()
    }

    fn pr(action: &str) -> Value {
        serde_json::json!({"action": action, "number": 3,
            "pull_request": {"head": {"sha": "abc", "ref": "feature"}}})
    }

    #[test]
    fn pull_request_levels() {
        let gh = Forge::GitHub;
        let none = service("none");
        assert_eq!(
            fires(gh, "pull_request", &pr("opened"), &none).unwrap_err(),
            Ignored::PullsOff("api".into())
        );
        let build = service("build");
        let f = fires(gh, "pull_request", &pr("opened"), &build).unwrap();
        let def = f[0]
            .pull
            .as_ref()
            .unwrap()
            .definition(&build, &dummy())
            .unwrap();
        assert!(def.environments.is_empty(), "build only");
        assert_eq!(def.pull_request, Some(3));
        assert_eq!(
            fires(gh, "pull_request", &pr("closed"), &build).unwrap_err(),
            Ignored::ClosedWithoutPreview(3)
        );
        let labeled = fires(gh, "pull_request", &pr("labeled"), &build).unwrap_err();
        assert_eq!(
            labeled.to_string(),
            r#"pull_request action Some("labeled") is not acted on"#
        );
        let preview = service("preview");
        let f = fires(gh, "pull_request", &pr("synchronize"), &preview).unwrap();
        assert_eq!(
            (f[0].source.as_str(), f[0].key.as_str()),
            ("pr/3", "head:abc")
        );
        let def = f[0]
            .pull
            .as_ref()
            .unwrap()
            .definition(&preview, &dummy())
            .unwrap();
        assert_eq!(def.environments[0].name, "preview-3");
        let f = fires(gh, "pull_request", &pr("closed"), &preview).unwrap();
        let def = f[0]
            .pull
            .as_ref()
            .unwrap()
            .definition(&preview, &dummy())
            .unwrap();
        assert_eq!(def.steps[0].name, "teardown");
        // Pushes follow the globs; a deleted branch starts nothing.
        let push = |r: &str, after: &str| serde_json::json!({"ref": r, "after": after});
        assert!(fires(gh, "push", &push("refs/heads/main", "abc"), &preview).is_ok());
        assert_eq!(
            fires(gh, "push", &push("refs/heads/dev", "abc"), &preview).unwrap_err(),
            Ignored::Branch {
                branch: "dev".into(),
                service: "api".into()
            }
        );
        assert_eq!(
            fires(gh, "push", &push("refs/heads/main", "0000"), &preview)
                .unwrap_err()
                .to_string(),
            "push: refs/heads/main was deleted"
        );
        let tag = fires(gh, "push", &push("refs/tags/v1", "abc"), &preview).unwrap();
        assert_eq!(tag[0].tag.as_deref(), Some("v1"));
        assert_eq!(
            fires(gh, "deployment", &push("x", "y"), &preview).unwrap_err(),
            Ignored::Event("deployment".into())
        );
    }

    fn dummy() -> crate::config::Project {
        crate::config::parse_project(std::path::Path::new("/tmp/p.toml"), "").unwrap()
    }

    #[test]
    fn signatures_are_checked() {
        let sig = github_signature(b"s3cret", b"{\"a\":1}");
        assert!(github_signature_ok(b"s3cret", b"{\"a\":1}", &sig));
        assert!(!github_signature_ok(b"other", b"{\"a\":1}", &sig));
        assert!(!github_signature_ok(b"s3cret", b"{\"a\":2}", &sig));
        assert!(!github_signature_ok(b"s3cret", b"{\"a\":1}", "sha256=zz"));
        assert!(!github_signature_ok(b"s3cret", b"{\"a\":1}", &sig[7..]));
        assert!(same(b"tok", b"tok"));
        assert!(!same(b"tok", b"tok2"));
    }
}
