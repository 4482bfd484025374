//! The clock schedules read: the system's, or one a test sets.

use std::sync::Mutex;

use chrono::{DateTime, Utc};
use tokio::sync::watch;

/// Now, and a wait until a time. Schedules use nothing else of time.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
    /// Returns once `now() >= t` (or at once if it already is).
    fn sleep_until(
        &self,
        t: DateTime<Utc>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>>;
}

/// The system clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    fn sleep_until(
        &self,
        t: DateTime<Utc>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            // Woken at least every minute, so a clock change is noticed.
            loop {
                let left = t - Utc::now();
                let Ok(left) = left.to_std() else { return };
                if left.is_zero() {
                    return;
                }
                tokio::time::sleep(left.min(std::time::Duration::from_secs(60))).await;
            }
        })
    }
}

/// A clock that moves only when told (tests: fires at simulated times, no waiting).
pub struct ManualClock {
    now: Mutex<DateTime<Utc>>,
    moved: watch::Sender<DateTime<Utc>>,
}

impl ManualClock {
    pub fn new(at: DateTime<Utc>) -> Self {
        Self {
            now: Mutex::new(at),
            moved: watch::channel(at).0,
        }
    }

    /// Moves the clock to `t`; every wait that is due returns.
    pub fn set(&self, t: DateTime<Utc>) {
        *self.now.lock().unwrap_or_else(|p| p.into_inner()) = t;
        self.moved.send_replace(t);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn sleep_until(
        &self,
        t: DateTime<Utc>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
        let mut rx = self.moved.subscribe();
        Box::pin(async move {
            // `wait_for` looks at the current value first, then at each change.
            let _ = rx.wait_for(|now| *now >= t).await;
        })
    }
}
