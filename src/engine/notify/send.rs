//! Posting one outbound call with retries: 5xx, 429, timeouts and connection errors
//! are retried with doubling backoff and jitter; anything else, or the last retry,
//! gives up with the reason (secrets masked).

use std::time::Duration;

use crate::config::outbound::RetryPolicy;
use crate::engine::executor::http::{jitter, wait_before};

/// One call to make.
pub(crate) struct Delivery {
    pub run_id: i64,
    /// What it is, for the audit log (`status pipedeck/build`, `notify chat`).
    pub what: String,
    pub url: String,
    pub bearer: Option<String>,
    pub body: serde_json::Value,
    pub retry: RetryPolicy,
    /// Values never to be shown (the URL of a webhook, a token).
    pub secrets: Vec<String>,
}

impl Delivery {
    fn mask(&self, text: String) -> String {
        self.secrets
            .iter()
            .filter(|s| !s.is_empty())
            .fold(text, |t, s| t.replace(s.as_str(), "***"))
    }
}

/// Why a call was given up; what the last attempt got has its secrets masked.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum DeliveryError {
    /// An answer that another attempt would not change (a 4xx other than 429).
    #[error("{last} (not retried)")]
    NotRetried { last: String },
    #[error("gave up after {attempts} attempt{}: {last}", if *attempts == 1 { "" } else { "s" })]
    GaveUp { attempts: u32, last: String },
}

/// Posts `d`; the number of attempts it took, or why it was given up.
pub(crate) async fn post(client: &reqwest::Client, d: &Delivery) -> Result<u32, DeliveryError> {
    let attempts = d.retry.retries + 1;
    let mut last = String::new();
    for n in 1..=attempts {
        if n > 1 {
            let backoff = Duration::from_millis(d.retry.backoff_ms);
            tokio::time::sleep(wait_before(backoff, n - 1, jitter())).await;
        }
        let mut req = client
            .post(&d.url)
            .timeout(Duration::from_millis(d.retry.timeout_ms))
            .json(&d.body);
        if let Some(t) = &d.bearer {
            req = req.bearer_auth(t);
        }
        let retry = match req.send().await {
            Ok(r) if r.status().is_success() => return Ok(n),
            Ok(r) => {
                let s = r.status();
                last = format!("HTTP {}", s.as_u16());
                s.is_server_error() || s.as_u16() == 429
            }
            Err(e) => {
                last = if e.is_timeout() {
                    "timed out".into()
                } else {
                    use std::error::Error;
                    let mut t = e.to_string();
                    let mut src = e.source();
                    while let Some(s) = src {
                        t = format!("{t}: {s}");
                        src = s.source();
                    }
                    t
                };
                true
            }
        };
        if !retry {
            return Err(DeliveryError::NotRetried { last: d.mask(last) });
        }
    }
    Err(DeliveryError::GaveUp {
        attempts,
        last: d.mask(last),
    })
}
