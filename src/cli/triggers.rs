//! `pipedeck triggers`: each trigger, what it watches, when it last fired (and the
//! run), when it fires next, its last error, and why it is stopped if it is.

use super::output::{self, ago, inert};
use super::{Ctx, exit, fail};
use crate::api::EngineClient;
use crate::domain::trigger::TriggerInfo;

pub async fn triggers(ctx: &Ctx) -> i32 {
    let c = match ctx.connect() {
        Ok(c) => c,
        Err(code) => return code,
    };
    let list: Vec<TriggerInfo> = match c.triggers().await {
        Ok(l) => l,
        Err(e) => return fail(e),
    };
    if ctx.json {
        output::json(&list);
        return exit::OK;
    }
    if list.is_empty() {
        outln!("No triggers: add `branches`, `tags`, `webhook` or `schedules` to a service.");
        return exit::OK;
    }
    outln!(
        "{:<12} {:<18} {:<16} {:<22} STATE / WATCHES",
        "SERVICE",
        "TRIGGER",
        "LAST FIRED",
        "NEXT FIRE"
    );
    for t in &list {
        let last = t
            .last_fired
            .as_ref()
            .map(|l| format!("run {} {}", l.run_id, ago(l.at)))
            .unwrap_or_else(|| "-".into());
        let next = t
            .next_fire
            .and_then(chrono::DateTime::from_timestamp_millis)
            .map(|d| d.format("%Y-%m-%d %H:%M UTC").to_string())
            .unwrap_or_else(|| "-".into());
        let state = match (&t.stopped, &t.last_error) {
            (Some(why), _) => format!("stopped: {}", inert(why)),
            (None, Some(e)) => format!("error: {}", inert(e)),
            (None, None) => "active".into(),
        };
        outln!(
            "{:<12} {:<18} {:<16} {:<22} {state}",
            inert(&t.service),
            inert(&t.trigger),
            last,
            next
        );
        outln!(
            "{:<12} {:<18} {:<16} {:<22} {}",
            "",
            "",
            "",
            "",
            inert(&t.watches)
        );
    }
    exit::OK
}
