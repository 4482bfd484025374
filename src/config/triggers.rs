//! A service's triggers (SP-7) besides manual runs: how often its repository's refs
//! are compared, the webhooks it accepts, its pull-request previews and its schedules.

use super::SecretRef;
use super::schema::{PreviewFile, ScheduleFile, ServiceFile, WebhookFile};
use super::validate::{Ctx, DurationRange};
use serde::{Deserialize, Serialize};

/// Refs are compared at least every second and at most every day.
const POLL_INTERVAL: DurationRange = DurationRange {
    key: "poll_interval",
    min_ms: 1_000,
    max_ms: 24 * 3_600_000,
};

/// The default between two comparisons of a repository's refs.
pub const DEFAULT_POLL_MS: u64 = 60_000;

/// A service's triggers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Triggers {
    /// Between two comparisons of the repository's refs (`git ls-remote`); a local
    /// repository is also watched for changes, so this is its fallback.
    pub poll_ms: u64,
    pub webhook: Option<Webhook>,
    pub preview: Option<Preview>,
    pub schedules: Vec<Schedule>,
}

impl Default for Triggers {
    fn default() -> Self {
        Self {
            poll_ms: DEFAULT_POLL_MS,
            webhook: None,
            preview: None,
            schedules: Vec::new(),
        }
    }
}

/// Which webhooks start this service's runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Webhook {
    /// `owner/name` as the forge names the repository (GitHub's `full_name`,
    /// GitLab's `path_with_namespace`).
    pub repository: String,
    /// The service's secret that signs GitHub deliveries (HMAC-SHA256) or is GitLab's
    /// token.
    pub secret: SecretRef,
}

/// Pull-request previews: deployed to `preview-<N>`, torn down when the PR closes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Preview {
    /// The deploy command (`PIPEDECK_ENV` is `preview-<N>`, `PIPEDECK_PR` is N).
    pub run: String,
    /// Run when the pull request is closed or merged.
    pub teardown: Option<String>,
}

/// Fires missed while the engine was down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CatchUp {
    /// None of them run.
    Skip,
    /// One run for all of them.
    Once,
}

/// A cron schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    pub name: String,
    /// As written (five fields, or six with seconds first).
    pub cron: String,
    /// An IANA time zone name.
    pub timezone: String,
    pub branch: String,
    pub catch_up: CatchUp,
}

impl Schedule {
    /// The parsed expression; validation made sure it parses.
    pub fn parsed(&self) -> Result<cron::Schedule, cron::error::Error> {
        parse_cron(&self.cron)
    }

    pub fn tz(&self) -> chrono_tz::Tz {
        self.timezone.parse().unwrap_or(chrono_tz::UTC)
    }
}

/// A cron expression: five fields (minute first), or six or seven (seconds first).
pub fn parse_cron(text: &str) -> Result<cron::Schedule, cron::error::Error> {
    let fields = text.split_whitespace().count();
    let full = if fields == 5 {
        format!("0 {text}")
    } else {
        text.to_string()
    };
    full.parse()
}

pub(super) fn resolve(
    cx: &mut Ctx<'_>,
    sname: &str,
    svc: &ServiceFile,
    secrets: &[SecretRef],
    default_branch: &str,
) -> Triggers {
    Triggers {
        poll_ms: cx.duration(&svc.poll_interval, DEFAULT_POLL_MS, &POLL_INTERVAL),
        webhook: svc
            .webhook
            .as_ref()
            .and_then(|w| webhook(cx, sname, w, secrets)),
        preview: svc.preview.as_ref().map(preview),
        schedules: schedules(cx, sname, &svc.schedules, default_branch),
    }
}

fn webhook(
    cx: &mut Ctx<'_>,
    sname: &str,
    w: &WebhookFile,
    secrets: &[SecretRef],
) -> Option<Webhook> {
    let Some(secret) = secrets.iter().find(|s| &s.name == w.secret.get_ref()) else {
        cx.err(
            w.secret.span(),
            format!(
                "webhook secret `{}` is not a secret of service `{sname}`",
                w.secret.get_ref()
            ),
            &format!("declare it under [services.{sname}.secrets], or fix the name"),
        );
        return None;
    };
    let repo = w.repository.get_ref();
    if repo.split('/').count() < 2 || repo.split('/').any(str::is_empty) {
        cx.err(
            w.repository.span(),
            format!("webhook repository `{repo}` is not `owner/name`"),
            "write the repository as the forge names it, e.g. \"acme/api\"",
        );
        return None;
    }
    Some(Webhook {
        repository: repo.clone(),
        secret: secret.clone(),
    })
}

fn preview(p: &PreviewFile) -> Preview {
    Preview {
        run: p.run.clone(),
        teardown: p.teardown.clone(),
    }
}

fn schedules(
    cx: &mut Ctx<'_>,
    sname: &str,
    files: &[ScheduleFile],
    default_branch: &str,
) -> Vec<Schedule> {
    let mut out: Vec<Schedule> = Vec::new();
    for f in files {
        let name = f.name.get_ref();
        if out.iter().any(|s| &s.name == name) {
            cx.err(
                f.name.span(),
                format!("schedule `{name}` is defined twice in service `{sname}`"),
                "give each schedule of a service its own name",
            );
        }
        if let Err(e) = parse_cron(f.cron.get_ref()) {
            cx.err(
                f.cron.span(),
                format!("`{}` is not a cron expression: {e}", f.cron.get_ref()),
                "write five fields (minute hour day-of-month month day-of-week), e.g. \"0 3 * * *\"",
            );
        }
        let timezone = timezone(cx, &f.timezone).unwrap_or_else(|| "UTC".into());
        let catch_up = match f.catch_up.as_ref().map(|c| (c.get_ref().as_str(), c)) {
            None | Some(("skip", _)) => CatchUp::Skip,
            Some(("once", _)) => CatchUp::Once,
            Some((other, c)) => {
                cx.err(
                    c.span(),
                    format!("catch_up = \"{other}\" is not a policy"),
                    "use \"skip\" (missed fires do not run) or \"once\" (one run for them all)",
                );
                CatchUp::Skip
            }
        };
        out.push(Schedule {
            name: name.clone(),
            cron: f.cron.get_ref().clone(),
            timezone,
            branch: f
                .branch
                .clone()
                .unwrap_or_else(|| default_branch.to_string()),
            catch_up,
        });
    }
    out
}

/// A schedule's time zone (default "UTC"); `None` (and an error) if it is not one.
pub(super) fn timezone(cx: &mut Ctx<'_>, tz: &Option<toml::Spanned<String>>) -> Option<String> {
    match tz {
        Some(tz) if tz.get_ref().parse::<chrono_tz::Tz>().is_err() => {
            cx.err(
                tz.span(),
                format!("`{}` is not a time zone", tz.get_ref()),
                "write an IANA name such as \"UTC\" or \"Europe/Berlin\"",
            );
            None
        }
        Some(tz) => Some(tz.get_ref().clone()),
        None => Some("UTC".into()),
    }
}

/// Whether `name` matches one of the globs (an invalid glob matches nothing).
pub fn matches(globs: &[String], name: &str) -> bool {
    globs.iter().any(|g| {
        globset::Glob::new(g)
            .map(|g| g.compile_matcher().is_match(name))
            .unwrap_or(false)
    })
}

/// Each glob of `services.NAME.KEY` compiles; an error names the service.
pub(super) fn check_globs(
    cx: &mut Ctx<'_>,
    span: std::ops::Range<usize>,
    sname: &str,
    key: &str,
    globs: &[String],
) {
    for g in globs {
        if let Err(e) = globset::Glob::new(g) {
            cx.err(
                span.clone(),
                format!("services.{sname}.{key} entry `{g}` is not a glob: {e}"),
                "write a name or a glob such as \"release/*\" or \"v*\"",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cron_takes_five_fields_and_globs_match() {
        assert!(parse_cron("0 3 * * *").is_ok());
        assert!(parse_cron("0 0 3 * * *").is_ok());
        assert!(parse_cron("soon").is_err());
        let g = vec!["main".to_string(), "release/*".to_string()];
        assert!(matches(&g, "main"));
        assert!(matches(&g, "release/1.2"));
        assert!(!matches(&g, "feature/x"));
        assert!(matches(&["v*".to_string()], "v1.2.0"));
    }
}
