//! An infra pipeline's drift schedule (issue 22, part 5): `drift = { every = "6h" }` or
//! `drift = { cron = "0 */6 * * *", timezone = "UTC" }`. The cron form is read by the
//! same machinery as a service's schedules.

use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::schema::DriftFile;
use super::triggers::{CatchUp, Schedule, parse_cron};
use super::validate::{Ctx, DurationRange};

/// Checks at least a minute apart, at most a year.
const EVERY: DurationRange = DurationRange {
    key: "drift.every",
    min_ms: 60_000,
    max_ms: 365 * 24 * 3_600_000,
};

/// When an infra pipeline is checked for drift.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DriftSchedule {
    /// This long after the last check (at once if that is overdue).
    Every { every_ms: u64 },
    /// At a cron expression's times (`name` is `drift`, `branch` unused); a time
    /// missed while the engine was down runs once.
    Cron(Schedule),
}

impl DriftSchedule {
    /// `every 6h` or `cron "0 */6 * * *" (UTC)`: how `pipedeck triggers` shows it.
    pub fn describe(&self) -> String {
        match self {
            Self::Every { every_ms } => {
                format!("every {}", crate::domain::format_duration(*every_ms as i64))
            }
            Self::Cron(s) => format!("cron \"{}\" ({})", s.cron, s.timezone),
        }
    }
}

pub(super) fn resolve(
    cx: &mut Ctx<'_>,
    pipeline: &Spanned<String>,
    f: &DriftFile,
) -> Option<DriftSchedule> {
    let name = pipeline.get_ref();
    match (&f.every, &f.cron) {
        (Some(_), None) => {
            if let Some(tz) = &f.timezone {
                cx.err(
                    tz.span(),
                    format!("infra.{name}.drift: timezone goes with cron, not every"),
                    "remove timezone, or write the schedule as cron = \"…\"",
                );
            }
            let every_ms = cx.duration(&f.every, EVERY.min_ms, &EVERY);
            Some(DriftSchedule::Every { every_ms })
        }
        (None, Some(cron)) => {
            if let Err(e) = parse_cron(cron.get_ref()) {
                cx.err(
                    cron.span(),
                    format!("`{}` is not a cron expression: {e}", cron.get_ref()),
                    "write five fields (minute hour day-of-month month day-of-week), e.g. \"0 */6 * * *\"",
                );
                return None;
            }
            let timezone = super::triggers::timezone(cx, &f.timezone)?;
            Some(DriftSchedule::Cron(Schedule {
                name: "drift".into(),
                cron: cron.get_ref().clone(),
                timezone,
                branch: String::new(),
                catch_up: CatchUp::Once,
            }))
        }
        _ => {
            cx.err(
                pipeline.span(),
                format!("infra.{name}.drift needs exactly one of every and cron"),
                "write drift = { every = \"6h\" } or drift = { cron = \"0 */6 * * *\" }",
            );
            None
        }
    }
}
