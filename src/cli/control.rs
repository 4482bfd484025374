//! `approve`, `reject`, `cancel`, `rerun`.

use super::output;
use super::{Ctx, exit, fail};
use crate::api::EngineClient;
use crate::domain::command::ConfigStatus;
use crate::domain::{Decision, GateInfo, Request, RunInfo};

pub async fn decide(ctx: &Ctx, run: i64, env: &str, d: Decision, comment: Option<String>) -> i32 {
    let c = match ctx.connect() {
        Ok(c) => c,
        Err(code) => return code,
    };
    let req = Request::Decide {
        run_id: run,
        env: env.to_string(),
        decision: d,
        comment,
    };
    match c.ask::<GateInfo>(req).await {
        Ok(g) => {
            if ctx.json {
                output::json(&g);
            } else {
                // Who decided is the engine's word, not ours.
                outln!(
                    "run {run}: gate {} {} by {}",
                    output::inert(&g.env),
                    g.status,
                    output::inert(g.decided_by.as_deref().unwrap_or("unknown"))
                );
            }
            exit::OK
        }
        Err(e) => fail(e),
    }
}

pub async fn cancel(ctx: &Ctx, run: i64) -> i32 {
    let c = match ctx.connect() {
        Ok(c) => c,
        Err(code) => return code,
    };
    match c.ask::<RunInfo>(Request::Cancel { run_id: run }).await {
        Ok(r) => {
            if ctx.json {
                output::json(&r);
            } else {
                outln!(
                    "run {run}: {} (build steps stop now; a deploy in flight finishes, later environments are cancelled)",
                    r.status
                );
            }
            exit::OK
        }
        Err(e) => fail(e),
    }
}

pub async fn rerun(ctx: &Ctx, run: i64, allow_older: bool) -> i32 {
    let c = match ctx.connect() {
        Ok(c) => c,
        Err(code) => return code,
    };
    let req = Request::Rerun {
        run_id: run,
        allow_older,
    };
    match c.ask::<RunInfo>(req).await {
        Ok(r) => {
            outln!("{}", r.id);
            if ctx.json {
                output::json(&r);
            } else {
                eprintln!(
                    "rerun of {run} (attempt {}): {}",
                    r.attempt,
                    output::run_header(&r)
                );
            }
            exit::OK
        }
        Err(e) => fail(e),
    }
}

/// `reload` and `status`: the project file in force, and the error of its last change.
pub async fn config(ctx: &Ctx, req: Request) -> i32 {
    let c = match ctx.connect() {
        Ok(c) => c,
        Err(code) => return code,
    };
    match c.ask::<ConfigStatus>(req).await {
        Ok(s) => {
            if ctx.json {
                output::json(&s);
            } else {
                let age = output::ago(s.loaded_at);
                outln!("project file: {} (in force since {age})", s.path.display());
                if let Some(e) = &s.error {
                    let when = s.error_at.map(output::ago).unwrap_or_default();
                    outln!(
                        "its last change ({when}) was not loaded; the version above stays in force:"
                    );
                    outln!("{e}");
                }
                if let Some(d) = &s.disk {
                    outln!("data dir: {} · {}", d.data_dir.display(), d.summary());
                    if let Some(m) = d.min_free {
                        outln!(
                            "free-space floor: {} (min_free in [retention])",
                            crate::domain::bytes::format_bytes(m)
                        );
                    }
                }
            }
            if s.error.is_some() {
                exit::USAGE
            } else {
                exit::OK
            }
        }
        Err(e) => fail(e),
    }
}

/// `gc`: what goes, and why the rest stays.
pub async fn gc(ctx: &Ctx, dry_run: bool) -> i32 {
    let c = match ctx.connect() {
        Ok(c) => c,
        Err(code) => return code,
    };
    match c
        .ask::<crate::store::retention::GcReport>(Request::Gc { dry_run })
        .await
    {
        Ok(r) => {
            if ctx.json {
                output::json(&r);
            } else {
                let verb = if r.dry_run { "would remove" } else { "removed" };
                outln!("{verb} {} runs", r.removed.len());
                for (why, n) in &r.kept {
                    let why = serde_json::to_value(why)
                        .ok()
                        .and_then(|v| v.as_str().map(|s| s.replace('_', " ")))
                        .unwrap_or_default();
                    outln!("kept {n}: {why}");
                }
                if r.logs.logs > 0 {
                    let verb = if r.dry_run { "would age" } else { "aged" };
                    let b = crate::domain::bytes::format_bytes;
                    if r.dry_run {
                        outln!(
                            "{verb} the logs of old runs: {} logs, {}",
                            r.logs.logs,
                            b(r.logs.bytes_before)
                        );
                    } else {
                        outln!(
                            "{verb} the logs of old runs: {} logs, {} -> {}",
                            r.logs.logs,
                            b(r.logs.bytes_before),
                            b(r.logs.bytes_after)
                        );
                    }
                }
            }
            exit::OK
        }
        Err(e) => fail(e),
    }
}

/// `pipedeck whoami`: the engine's word on who is asking.
pub async fn whoami(ctx: &Ctx) -> i32 {
    let c = match ctx.connect() {
        Ok(c) => c,
        Err(code) => return code,
    };
    match c
        .ask::<crate::domain::command::Identity>(Request::Whoami)
        .await
    {
        Ok(id) => {
            if ctx.json {
                output::json(&id);
            } else {
                let role = id
                    .role
                    .map_or("none (not listed in [access])".to_string(), |r| {
                        r.to_string()
                    });
                outln!("user: {}", output::inert(&id.user));
                if !id.groups.is_empty() {
                    outln!("groups: {}", output::inert(&id.groups.join(", ")));
                }
                outln!("role: {role}");
                outln!(
                    "engine runs as: {} on {}",
                    output::inert(&id.engine_user),
                    output::inert(&id.engine_host)
                );
            }
            exit::OK
        }
        Err(e) => fail(e),
    }
}
