//! `pipedeck audit`: the append-only audit log (who did what, when, to which run),
//! of every run or of one.

use super::output::{self, inert};
use super::{Ctx, exit, fail};
use crate::api::EngineClient;
use crate::domain::Request;
use crate::store::AuditEntry;

pub async fn audit(ctx: &Ctx, run: Option<i64>, limit: usize) -> i32 {
    let c = match ctx.connect() {
        Ok(c) => c,
        Err(code) => return code,
    };
    let req = match run {
        Some(run_id) => Request::Audit { run_id },
        None => Request::AuditLog { limit },
    };
    match c.ask::<Vec<AuditEntry>>(req).await {
        Ok(entries) => {
            if ctx.json {
                output::json(&entries);
            } else {
                outln!(
                    "{:<10} {:<16} {:<16} {:>5}  TARGET: COMMENT",
                    "WHEN",
                    "WHO",
                    "ACTION",
                    "RUN"
                );
                for e in entries {
                    let target = e.target.as_deref().map(inert).unwrap_or_default();
                    let comment = e
                        .comment
                        .as_deref()
                        .map(|c| format!(": {}", inert(c)))
                        .unwrap_or_default();
                    outln!(
                        "{:<10} {:<16} {:<16} {:>5}  {target}{comment}",
                        output::ago(e.at),
                        inert(&e.actor),
                        inert(&e.action),
                        e.run().map(|r| r.to_string()).unwrap_or_else(|| "-".into())
                    );
                }
            }
            exit::OK
        }
        Err(e) => fail(e),
    }
}
