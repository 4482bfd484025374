//! `approve`, `reject`, `cancel`, `rerun`.

use super::output;
use super::{Ctx, exit, fail};
use crate::api::EngineClient;
use crate::domain::Decision;

pub async fn decide(ctx: &Ctx, run: i64, env: &str, d: Decision, comment: Option<String>) -> i32 {
    let c = match ctx.connect() {
        Ok(c) => c,
        Err(code) => return code,
    };
    match c.decide(run, env, d, &ctx.user, comment).await {
        Ok(g) => {
            if ctx.json {
                output::json(&g);
            } else {
                println!("run {run}: gate {} {} by {}", g.env, g.status, ctx.user);
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
    match c.cancel(run, &ctx.user).await {
        Ok(r) => {
            if ctx.json {
                output::json(&r);
            } else {
                println!(
                    "run {run}: {} (build steps stop now; a deploy in flight finishes, later environments are cancelled)",
                    r.status
                );
            }
            exit::OK
        }
        Err(e) => fail(e),
    }
}

pub async fn rerun(ctx: &Ctx, run: i64) -> i32 {
    let c = match ctx.connect() {
        Ok(c) => c,
        Err(code) => return code,
    };
    match c.rerun(run, &ctx.user).await {
        Ok(r) => {
            println!("{}", r.id);
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
