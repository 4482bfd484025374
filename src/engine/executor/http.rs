//! HTTP health checks after a deploy (SP-3a): attempts until one answers with the
//! expected status (and body substring), with exponential backoff and jitter between
//! attempts. Every attempt is a line of the check's log: when, the status, the
//! latency, and what was wrong.

use std::hash::{BuildHasher, RandomState};
use std::time::{Duration, Instant};

use super::process::{self, LogTarget};
use crate::config::{HttpCheck, HttpMethod};
use crate::domain::now_ms;
use crate::engine::scheduler::{Finished, Outcome, UnitCtx};
use crate::store::logs::LogStream;

/// The most of a body read to look for `body_contains`.
const BODY_LIMIT: usize = 1 << 20;
/// No wait between attempts is longer than this, however many retries.
const MAX_WAIT: Duration = Duration::from_secs(300);

/// The wait before retry `n` (1-based): `backoff * 2^(n-1)`, capped, plus up to half
/// again of random jitter (so that many checks do not retry in step).
pub(crate) fn wait_before(backoff: Duration, n: u32, jitter: f64) -> Duration {
    let base = backoff
        .checked_mul(1u32 << (n.saturating_sub(1)).min(20))
        .unwrap_or(MAX_WAIT)
        .min(MAX_WAIT);
    base + base.mul_f64(jitter.clamp(0.0, 1.0) / 2.0)
}

/// A number in [0, 1) from the process's random hasher seed and the time.
pub(crate) fn jitter() -> f64 {
    let h = RandomState::new().hash_one(Instant::now());
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// What one attempt saw.
struct Attempt {
    status: Option<u16>,
    /// Why it did not pass; `None` when it did.
    problem: Option<String>,
}

async fn attempt(client: &reqwest::Client, c: &HttpCheck) -> Attempt {
    let method = match c.method {
        HttpMethod::Get => reqwest::Method::GET,
        HttpMethod::Head => reqwest::Method::HEAD,
        HttpMethod::Post => reqwest::Method::POST,
        HttpMethod::Put => reqwest::Method::PUT,
    };
    let mut resp = match client.request(method, &c.url).send().await {
        Ok(r) => r,
        Err(e) => {
            return Attempt {
                status: None,
                problem: Some(describe(&e)),
            };
        }
    };
    let status = resp.status().as_u16();
    if status != c.status {
        return Attempt {
            status: Some(status),
            problem: Some(format!("expected status {}", c.status)),
        };
    }
    let Some(want) = &c.body_contains else {
        return Attempt {
            status: Some(status),
            problem: None,
        };
    };
    let mut body = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                body.extend_from_slice(&chunk);
                if body.len() >= BODY_LIMIT {
                    body.truncate(BODY_LIMIT);
                    break;
                }
            }
            Ok(None) => break,
            Err(e) => {
                return Attempt {
                    status: Some(status),
                    problem: Some(format!("reading the body: {}", describe(&e))),
                };
            }
        }
    }
    let found = String::from_utf8_lossy(&body).contains(want.as_str());
    Attempt {
        status: Some(status),
        problem: (!found).then(|| format!("the body does not contain {want:?}")),
    }
}

/// A reqwest error in a few words: a timeout, a refused connection, or its text.
fn describe(e: &reqwest::Error) -> String {
    use std::error::Error;
    if e.is_timeout() {
        return "timed out".into();
    }
    let mut text = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        text = format!("{text}: {s}");
        src = s.source();
    }
    text
}

fn note(log: &mut Option<LogStream>, target: &LogTarget, text: &str) {
    if let Some(l) = log {
        let masked = target.masker.apply(text.as_bytes());
        if l.note(&String::from_utf8_lossy(&masked)).is_err() {
            // The write error comes back from `close`.
            *log = None;
        }
    }
}

/// Runs the check to its end, or until the unit's stop fires.
pub(crate) async fn run(c: &HttpCheck, ctx: UnitCtx) -> Finished {
    let UnitCtx {
        log: target,
        stop,
        slot,
        ..
    } = ctx;
    // The concurrency limit counts processes; a check runs none.
    drop(slot);
    let end = |outcome| Finished {
        outcome,
        exit_code: None,
        ended_at: now_ms(),
    };
    let mut log =
        match target
            .logs
            .stream(target.run_id, target.step_id, process::publisher(&target))
        {
            Ok(l) => Some(l),
            Err(e) => return end(Outcome::Failed(format!("cannot open the check's log: {e}"))),
        };
    let client = match crate::tls::client_builder()
        .timeout(Duration::from_millis(c.timeout_ms))
        .build()
    {
        Ok(c) => c,
        Err(e) => return end(Outcome::Failed(format!("cannot make an HTTP client: {e}"))),
    };
    let attempts = c.retries + 1;
    let method = c.method.as_str();
    let expect = match &c.body_contains {
        Some(b) => format!("status {} and a body containing {b:?}", c.status),
        None => format!("status {}", c.status),
    };
    note(
        &mut log,
        &target,
        &format!(
            "checking {method} {} for {expect}, up to {attempts} attempts",
            c.url
        ),
    );
    let started = Instant::now();
    let mut outcome = None;
    let mut last = String::new();
    for n in 1..=attempts {
        if n > 1 {
            let wait = wait_before(Duration::from_millis(c.backoff_ms), n - 1, jitter());
            note(
                &mut log,
                &target,
                &format!("waiting {} ms", wait.as_millis()),
            );
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.cancelled() => { outcome = Some(Outcome::Stopped); break; }
            }
        }
        let at = started.elapsed().as_millis();
        let t0 = Instant::now();
        let a = tokio::select! {
            a = attempt(&client, c) => a,
            _ = stop.cancelled() => { outcome = Some(Outcome::Stopped); break; }
        };
        let took = t0.elapsed().as_millis();
        let status = a.status.map_or("no answer".into(), |s| s.to_string());
        let line = match &a.problem {
            None => format!("attempt {n}/{attempts} at +{at} ms: {status} in {took} ms: passed"),
            Some(p) => format!("attempt {n}/{attempts} at +{at} ms: {status} in {took} ms: {p}"),
        };
        note(&mut log, &target, &line);
        match a.problem {
            None => {
                outcome = Some(Outcome::Succeeded { outputs: None });
                break;
            }
            Some(p) => last = format!("{status}: {p}"),
        }
    }
    let outcome = outcome.unwrap_or_else(|| {
        let why = format!(
            "{method} {} failed after {attempts} attempt{} (last: {last})",
            c.url,
            if attempts == 1 { "" } else { "s" }
        );
        note(&mut log, &target, &why);
        Outcome::Failed(why)
    });
    let ended_at = now_ms();
    let closed = match log {
        Some(l) => process::close(l).await.map(|_| ()),
        None => Err(std::io::Error::other("a log write failed")),
    };
    let outcome = match (closed, outcome) {
        (Err(e), Outcome::Succeeded { .. }) => {
            Outcome::Failed(format!("cannot write the check's log: {e}"))
        }
        (_, o) => o,
    };
    Finished {
        outcome,
        exit_code: None,
        ended_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_bounded_jitter() {
        let b = Duration::from_millis(100);
        assert_eq!(wait_before(b, 1, 0.0), Duration::from_millis(100));
        assert_eq!(wait_before(b, 3, 0.0), Duration::from_millis(400));
        assert_eq!(wait_before(b, 3, 1.0), Duration::from_millis(600));
        assert_eq!(wait_before(b, 60, 0.0), MAX_WAIT);
        let j = jitter();
        assert!((0.0..1.0).contains(&j), "{j}");
    }
}
