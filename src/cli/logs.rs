//! `pipedeck logs RUN [--step S] [--follow]`.

use std::collections::HashMap;

use futures_util::StreamExt;

use super::{Ctx, exit, fail};
use crate::api::EngineClient;
use crate::domain::{Event, Request, RunDetail, StepInfo, ansi::sanitize};
use crate::store::LogLine;

const PAGE: usize = 10_000;

pub async fn logs(ctx: &Ctx, run: i64, step: Option<String>, follow: bool) -> i32 {
    let c = match ctx.connect() {
        Ok(c) => c,
        Err(code) => return code,
    };
    // Subscribe before reading, so nothing written in between is missed.
    let mut events = if follow {
        match c.events().await {
            Ok(e) => Some(e),
            Err(e) => return fail(e),
        }
    } else {
        None
    };
    let detail = match c.ask::<RunDetail>(Request::Detail { run_id: run }).await {
        Ok(d) => d,
        Err(e) => return fail(e),
    };
    let steps: Vec<StepInfo> = match &step {
        None => detail.steps.clone(),
        Some(s) => {
            let found: Vec<StepInfo> = detail
                .steps
                .iter()
                .filter(|x| x.name == *s || x.path() == *s)
                .cloned()
                .collect();
            if found.is_empty() {
                let names: Vec<String> = detail.steps.iter().map(|s| s.path()).collect();
                eprintln!(
                    "error: run {run} has no step `{s}`\n  hint: steps are {}",
                    names.join(", ")
                );
                return exit::USAGE;
            }
            found
        }
    };
    let prefix = steps.len() > 1;
    let colour = ctx.color;
    let mut next: HashMap<i64, u64> = HashMap::new();
    for s in &steps {
        if let Err(code) = drain(ctx, &c, s, &mut next, prefix, colour).await {
            return code;
        }
    }
    let Some(events) = events.as_mut() else {
        return exit::OK;
    };
    if detail.run.status.is_terminal() {
        return exit::OK;
    }
    let by_id: HashMap<i64, StepInfo> = steps.iter().map(|s| (s.id, s.clone())).collect();
    while let Some(item) = events.next().await {
        match item.event() {
            Some(Event::Log {
                run_id, step_id, ..
            }) if run_id == run => {
                if let Some(s) = by_id.get(&step_id)
                    && let Err(code) = drain(ctx, &c, s, &mut next, prefix, colour).await
                {
                    return code;
                }
            }
            Some(Event::Run { run: r }) if r.id == run && r.status.is_terminal() => {
                for s in &steps {
                    if let Err(code) = drain(ctx, &c, s, &mut next, prefix, colour).await {
                        return code;
                    }
                }
                return exit::OK;
            }
            None => {
                for s in &steps {
                    if let Err(code) = drain(ctx, &c, s, &mut next, prefix, colour).await {
                        return code;
                    }
                }
            }
            _ => {}
        }
    }
    exit::OK
}

/// Prints every line of `s` from where we left off.
pub(super) async fn drain<C: EngineClient>(
    ctx: &Ctx,
    c: &C,
    s: &StepInfo,
    next: &mut HashMap<i64, u64>,
    prefix: bool,
    colour: bool,
) -> Result<(), i32> {
    use std::io::Write;
    let from = next.entry(s.id).or_insert(0);
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    loop {
        let req = Request::Logs {
            run_id: s.run_id,
            step_id: s.id,
            from: *from,
            limit: PAGE,
        };
        let lines: Vec<LogLine> = c.ask(req).await.map_err(fail)?;
        for l in &lines {
            let r = if ctx.json {
                serde_json::to_string(&serde_json::json!({"step": s.path(), "n": l.n, "ts": l.ts, "stream": l.stream.to_string(), "text": l.text}))
                    .map(|j| writeln!(out, "{j}"))
                    .unwrap_or(Ok(()))
            } else {
                let text = sanitize(&l.text, colour);
                let reset = if colour && text.contains('\u{1b}') {
                    "\u{1b}[0m"
                } else {
                    ""
                };
                if prefix {
                    writeln!(
                        out,
                        "[{}] {text}{reset}",
                        crate::domain::ansi::inert(&s.path())
                    )
                } else {
                    writeln!(out, "{text}{reset}")
                }
            };
            if let Err(e) = r {
                super::output::stdout_failed(&e); // e.g. piped into head
                return Err(exit::OK);
            }
        }
        *from += lines.len() as u64;
        if lines.len() < PAGE {
            break;
        }
    }
    if let Err(e) = out.flush() {
        super::output::stdout_failed(&e);
        return Err(exit::OK);
    }
    Ok(())
}
