//! Counters that triggers (git polling, webhooks, cron) increment. Every label value
//! is a typed enum arm, and every combination is exposed from the engine's start (at
//! 0), so a dashboard's `rate()` sees a series before its first event.
//!
//! ```ignore
//! shared.metrics.trigger(TriggerSource::Webhook, TriggerOutcome::Started);
//! shared.metrics.webhook(WebhookOutcome::BadSignature);
//! ```

use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! label {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $variant:ident => $word:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name { $($(#[$vm])* $variant),+ }
        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $word),+ }
            }
            fn index(self) -> usize {
                Self::ALL.iter().position(|v| *v == self).unwrap_or(0)
            }
        }
    };
}

label!(
    /// What noticed a reason to start a run.
    TriggerSource {
        /// Polling a service repository found a new commit.
        GitPoll => "git_poll",
        /// A webhook from a forge.
        Webhook => "webhook",
        /// A cron schedule came due.
        Cron => "cron",
    }
);

label!(
    /// What became of a trigger.
    TriggerOutcome {
        /// A run was started.
        Started => "started",
        /// Nothing to do (no new commit, a filtered branch, a disabled service).
        Skipped => "skipped",
        /// Starting the run failed (the engine refused it or could not reach the repo).
        Failed => "failed",
    }
);

label!(
    /// How an incoming webhook request was answered.
    WebhookOutcome {
        /// Valid and acted on.
        Accepted => "accepted",
        /// Valid, but about nothing the project watches.
        Ignored => "ignored",
        /// Its signature did not match the shared secret.
        BadSignature => "bad_signature",
        /// Not a payload the engine understands.
        Invalid => "invalid",
    }
);

/// The trigger and webhook counters (`pipedeck_triggers_total`,
/// `pipedeck_webhook_requests_total`).
#[derive(Debug)]
pub struct TriggerCounters {
    triggers: Vec<AtomicU64>,
    webhooks: Vec<AtomicU64>,
}

impl Default for TriggerCounters {
    fn default() -> Self {
        let n = TriggerSource::ALL.len() * TriggerOutcome::ALL.len();
        Self {
            triggers: (0..n).map(|_| AtomicU64::new(0)).collect(),
            webhooks: (0..WebhookOutcome::ALL.len())
                .map(|_| AtomicU64::new(0))
                .collect(),
        }
    }
}

impl TriggerCounters {
    fn slot(source: TriggerSource, outcome: TriggerOutcome) -> usize {
        source.index() * TriggerOutcome::ALL.len() + outcome.index()
    }

    pub fn trigger(&self, source: TriggerSource, outcome: TriggerOutcome) {
        if let Some(c) = self.triggers.get(Self::slot(source, outcome)) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn webhook(&self, outcome: WebhookOutcome) {
        if let Some(c) = self.webhooks.get(outcome.index()) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn triggers(&self, source: TriggerSource, outcome: TriggerOutcome) -> u64 {
        self.triggers
            .get(Self::slot(source, outcome))
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    pub fn webhooks(&self, outcome: WebhookOutcome) -> u64 {
        self.webhooks
            .get(outcome.index())
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_combination_counts_alone() {
        let c = TriggerCounters::default();
        c.trigger(TriggerSource::Cron, TriggerOutcome::Skipped);
        c.trigger(TriggerSource::Cron, TriggerOutcome::Skipped);
        c.webhook(WebhookOutcome::BadSignature);
        for s in TriggerSource::ALL {
            for o in TriggerOutcome::ALL {
                let want =
                    u64::from(*s == TriggerSource::Cron && *o == TriggerOutcome::Skipped) * 2;
                assert_eq!(c.triggers(*s, *o), want, "{s:?} {o:?}");
            }
        }
        assert_eq!(c.webhooks(WebhookOutcome::BadSignature), 1);
        assert_eq!(c.webhooks(WebhookOutcome::Accepted), 0);
    }
}
