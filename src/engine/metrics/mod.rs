//! The engine's metrics, served as Prometheus text on `/metrics` (a viewer's right).
//!
//! Two sources: what the runner publishes (observed in [`Metrics::observe`] as each
//! committed event goes out: runs ended, unit durations, gate waits), and what the
//! store says at scrape time ([`Figures`]: runs by status, waiting gates, each
//! environment's queue). Triggers count through [`counters`].
//!
//! | name | type | labels |
//! |---|---|---|
//! | `pipedeck_engine_start_time_seconds` | gauge | |
//! | `pipedeck_runs` | gauge | `status` |
//! | `pipedeck_runs_created_total` | counter | |
//! | `pipedeck_runs_ended_total` | counter | `status` |
//! | `pipedeck_queue_depth` | gauge | `service`, `env` |
//! | `pipedeck_gates_waiting` | gauge | |
//! | `pipedeck_gate_oldest_wait_seconds` | gauge | |
//! | `pipedeck_gate_wait_seconds` | histogram | |
//! | `pipedeck_unit_duration_seconds` | histogram | `stage`, `status` |
//! | `pipedeck_log_bytes_written_total` | counter | |
//! | `pipedeck_triggers_total` | counter | `source`, `outcome` |
//! | `pipedeck_webhook_requests_total` | counter | `outcome` |

pub mod counters;
pub mod text;

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;

pub use counters::{TriggerOutcome, TriggerSource, WebhookOutcome};
use text::{Histogram, Kind, Text};

use crate::domain::{
    EnvQueue, Event, GateInfo, GateStatus, Millis, QueueState, RunStatus, StepStatus, now_ms,
};

/// What the store says at scrape time.
#[derive(Debug, Clone, Default)]
pub struct Figures {
    /// Runs by status (statuses with none may be missing).
    pub runs: Vec<(RunStatus, u64)>,
    pub waiting_gates: Vec<GateInfo>,
    pub queues: Vec<EnvQueue>,
}

#[derive(Debug, Default)]
struct Observed {
    runs_created: u64,
    runs_ended: BTreeMap<&'static str, u64>,
    /// By (stage, status).
    units: BTreeMap<(&'static str, &'static str), Histogram>,
    /// Steps seen not yet ended: a step's end is observed once, however often its
    /// ended row is published again (outputs, a deployment record).
    open_steps: HashSet<i64>,
    gate_wait: Histogram,
}

/// The engine's counters and histograms; one per engine, shared.
#[derive(Debug)]
pub struct Metrics {
    started_at: Millis,
    triggers: counters::TriggerCounters,
    observed: Mutex<Observed>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            started_at: now_ms(),
            triggers: Default::default(),
            observed: Default::default(),
        }
    }
}

fn seconds(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

impl Metrics {
    /// A trigger fired (`pipedeck_triggers_total{source, outcome}`).
    pub fn trigger(&self, source: TriggerSource, outcome: TriggerOutcome) {
        self.triggers.trigger(source, outcome);
    }

    /// A webhook request was answered (`pipedeck_webhook_requests_total{outcome}`).
    pub fn webhook(&self, outcome: WebhookOutcome) {
        self.triggers.webhook(outcome);
    }

    pub fn started_at(&self) -> Millis {
        self.started_at
    }

    fn observed(&self) -> std::sync::MutexGuard<'_, Observed> {
        self.observed.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A run was created (stored).
    pub(crate) fn run_created(&self) {
        self.observed().runs_created += 1;
    }

    /// One committed event, as it is published.
    pub(crate) fn observe(&self, e: &Event) {
        let mut o = self.observed();
        match e {
            // The runner publishes a run only when its status changes, so a terminal
            // status is seen once.
            Event::Run { run } if run.status.is_terminal() => {
                *o.runs_ended.entry(run.status.as_str()).or_default() += 1;
            }
            Event::Step { step } if !step.status.is_terminal() => {
                o.open_steps.insert(step.id);
            }
            Event::Step { step } => {
                if o.open_steps.remove(&step.id)
                    && step.status != StepStatus::Skipped
                    && let (Some(a), Some(b)) = (step.started_at, step.ended_at)
                {
                    let key = (step.stage.as_str(), step.status.as_str());
                    o.units.entry(key).or_default().observe(seconds(b - a));
                }
            }
            Event::Gate { gate } if gate.status != GateStatus::Waiting => {
                if let Some(at) = gate.decided_at {
                    o.gate_wait.observe(seconds(at - gate.opened_at));
                }
            }
            _ => {}
        }
    }

    /// The exposition: what was observed, `figures` from the store, and the bytes of
    /// log written since start.
    pub fn render(&self, figures: &Figures, log_bytes: u64, now: Millis) -> String {
        let mut t = Text::default();
        t.family(
            "pipedeck_engine_start_time_seconds",
            Kind::Gauge,
            "When the engine started, in seconds since the Unix epoch.",
        );
        t.sample(
            "pipedeck_engine_start_time_seconds",
            &[],
            seconds(self.started_at),
        );

        t.family(
            "pipedeck_runs",
            Kind::Gauge,
            "Runs in the store, by status.",
        );
        for s in RunStatus::ALL {
            let n = figures
                .runs
                .iter()
                .filter(|(st, _)| st == s)
                .map(|(_, n)| *n)
                .sum::<u64>();
            t.sample("pipedeck_runs", &[("status", s.as_str())], n as f64);
        }
        let o = self.observed();
        t.family(
            "pipedeck_runs_created_total",
            Kind::Counter,
            "Runs created since the engine started.",
        );
        t.sample("pipedeck_runs_created_total", &[], o.runs_created as f64);
        t.family(
            "pipedeck_runs_ended_total",
            Kind::Counter,
            "Runs that ended since the engine started, by final status.",
        );
        for s in RunStatus::ALL.iter().filter(|s| s.is_terminal()) {
            let n = o.runs_ended.get(s.as_str()).copied().unwrap_or(0);
            t.sample(
                "pipedeck_runs_ended_total",
                &[("status", s.as_str())],
                n as f64,
            );
        }

        t.family(
            "pipedeck_queue_depth",
            Kind::Gauge,
            "Runs waiting to deploy to an environment (ready, at its gate, or on their way).",
        );
        for q in &figures.queues {
            let depth = q
                .entries
                .iter()
                .filter(|e| {
                    matches!(
                        e.state,
                        QueueState::Waiting | QueueState::AtGate | QueueState::OnItsWay
                    )
                })
                .count();
            t.sample(
                "pipedeck_queue_depth",
                &[("service", &q.key.service), ("env", &q.key.env)],
                depth as f64,
            );
        }

        t.family(
            "pipedeck_gates_waiting",
            Kind::Gauge,
            "Approval gates waiting for a decision.",
        );
        t.sample(
            "pipedeck_gates_waiting",
            &[],
            figures.waiting_gates.len() as f64,
        );
        t.family(
            "pipedeck_gate_oldest_wait_seconds",
            Kind::Gauge,
            "How long the oldest waiting gate has waited (0 when none waits).",
        );
        let oldest = figures
            .waiting_gates
            .iter()
            .map(|g| now - g.opened_at)
            .max()
            .unwrap_or(0)
            .max(0);
        t.sample("pipedeck_gate_oldest_wait_seconds", &[], seconds(oldest));
        t.family(
            "pipedeck_gate_wait_seconds",
            Kind::Histogram,
            "How long gates waited before they were decided, expired or closed.",
        );
        t.histogram("pipedeck_gate_wait_seconds", &[], &o.gate_wait);

        t.family(
            "pipedeck_unit_duration_seconds",
            Kind::Histogram,
            "How long units (build steps, deploys, verify checks, resources) ran, by stage and final status.",
        );
        for ((stage, status), h) in &o.units {
            t.histogram(
                "pipedeck_unit_duration_seconds",
                &[("stage", stage), ("status", status)],
                h,
            );
        }
        drop(o);

        t.family(
            "pipedeck_log_bytes_written_total",
            Kind::Counter,
            "Bytes of step log written since the engine started.",
        );
        t.sample("pipedeck_log_bytes_written_total", &[], log_bytes as f64);

        t.family(
            "pipedeck_triggers_total",
            Kind::Counter,
            "Triggers (git polling, webhooks, cron) by source and outcome.",
        );
        for s in TriggerSource::ALL {
            for out in TriggerOutcome::ALL {
                t.sample(
                    "pipedeck_triggers_total",
                    &[("source", s.as_str()), ("outcome", out.as_str())],
                    self.triggers.triggers(*s, *out) as f64,
                );
            }
        }
        t.family(
            "pipedeck_webhook_requests_total",
            Kind::Counter,
            "Webhook requests received, by how they were answered.",
        );
        for out in WebhookOutcome::ALL {
            t.sample(
                "pipedeck_webhook_requests_total",
                &[("outcome", out.as_str())],
                self.triggers.webhooks(*out) as f64,
            );
        }
        t.finish()
    }
}
