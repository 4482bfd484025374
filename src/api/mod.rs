//! The engine over HTTP: one process hosts the engine for a data dir and serves
//! it on loopback ([`server`]); every other process talks to it ([`client`]).
//! Both sides implement [`EngineClient`], so the CLI works the same either way.

pub mod client;
pub mod protocol;
pub mod server;

use std::future::Future;
use std::pin::Pin;

use futures_util::Stream;

use crate::domain::{Decision, Event, GateInfo, RunDetail, RunInfo};
use crate::engine::{EngineHandle, Result, TriggerRequest};
use crate::store::{LogLine, RunFilter};

/// What a subscriber receives: events in order, or word that some were missed
/// (the subscriber was slow) and it should read the current state again.
#[derive(Debug, Clone, PartialEq)]
pub enum Feed {
    Event(Box<Event>),
    Lagged,
}

impl Feed {
    /// The event, or `None` for [`Feed::Lagged`].
    pub fn event(self) -> Option<Event> {
        match self {
            Feed::Event(e) => Some(*e),
            Feed::Lagged => None,
        }
    }
}

pub type EventStream = Pin<Box<dyn Stream<Item = Feed> + Send>>;

/// The one client API the dashboard and the CLI use (EN-1).
pub trait EngineClient: Send + Sync {
    fn trigger(&self, req: TriggerRequest) -> impl Future<Output = Result<RunInfo>> + Send;
    fn trigger_infra(
        &self,
        project: &str,
        undeploy: bool,
        by: &str,
    ) -> impl Future<Output = Result<RunInfo>> + Send;
    fn trigger_stack_job(
        &self,
        resource: &str,
        infra: Option<&str>,
        operation: &str,
        by: &str,
    ) -> impl Future<Output = Result<RunInfo>> + Send;
    fn cancel(&self, run_id: i64, by: &str) -> impl Future<Output = Result<RunInfo>> + Send;
    fn rerun(&self, run_id: i64, by: &str) -> impl Future<Output = Result<RunInfo>> + Send;
    fn decide(
        &self,
        run_id: i64,
        env: &str,
        decision: Decision,
        by: &str,
        comment: Option<String>,
    ) -> impl Future<Output = Result<GateInfo>> + Send;
    fn runs(&self, filter: RunFilter) -> impl Future<Output = Result<Vec<RunInfo>>> + Send;
    fn detail(&self, run_id: i64) -> impl Future<Output = Result<RunDetail>> + Send;
    fn waiting_gates(&self) -> impl Future<Output = Result<Vec<GateInfo>>> + Send;
    fn logs(
        &self,
        run_id: i64,
        step_id: i64,
        from: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<LogLine>>> + Send;
    /// How many lines a step's log holds.
    fn log_count(&self, run_id: i64, step_id: i64) -> impl Future<Output = Result<u64>> + Send;
    /// Events from now on.
    fn events(&self) -> impl Future<Output = Result<EventStream>> + Send;
}

/// Turns a broadcast receiver into a [`Feed`] stream.
pub fn feed(rx: tokio::sync::broadcast::Receiver<Event>) -> EventStream {
    Box::pin(futures_util::stream::unfold(rx, |mut rx| async move {
        use tokio::sync::broadcast::error::RecvError;
        match rx.recv().await {
            Ok(e) => Some((Feed::Event(Box::new(e)), rx)),
            Err(RecvError::Lagged(_)) => Some((Feed::Lagged, rx)),
            Err(RecvError::Closed) => None,
        }
    }))
}

impl EngineClient for EngineHandle {
    async fn trigger(&self, req: TriggerRequest) -> Result<RunInfo> {
        EngineHandle::trigger(self, req).await
    }
    async fn trigger_infra(&self, project: &str, undeploy: bool, by: &str) -> Result<RunInfo> {
        EngineHandle::trigger_infra(self, project, undeploy, by).await
    }
    async fn trigger_stack_job(
        &self,
        resource: &str,
        infra: Option<&str>,
        operation: &str,
        by: &str,
    ) -> Result<RunInfo> {
        EngineHandle::trigger_stack_job(self, resource, infra, operation, by).await
    }
    async fn cancel(&self, run_id: i64, by: &str) -> Result<RunInfo> {
        EngineHandle::cancel(self, run_id, by).await
    }
    async fn rerun(&self, run_id: i64, by: &str) -> Result<RunInfo> {
        EngineHandle::rerun(self, run_id, by).await
    }
    async fn decide(
        &self,
        run_id: i64,
        env: &str,
        decision: Decision,
        by: &str,
        comment: Option<String>,
    ) -> Result<GateInfo> {
        EngineHandle::decide(self, run_id, env, decision, by, comment).await
    }
    async fn runs(&self, filter: RunFilter) -> Result<Vec<RunInfo>> {
        EngineHandle::runs(self, filter).await
    }
    async fn detail(&self, run_id: i64) -> Result<RunDetail> {
        EngineHandle::detail(self, run_id).await
    }
    async fn waiting_gates(&self) -> Result<Vec<GateInfo>> {
        EngineHandle::waiting_gates(self).await
    }
    async fn logs(
        &self,
        run_id: i64,
        step_id: i64,
        from: u64,
        limit: usize,
    ) -> Result<Vec<LogLine>> {
        EngineHandle::logs(self, run_id, step_id, from, limit).await
    }
    async fn log_count(&self, run_id: i64, step_id: i64) -> Result<u64> {
        EngineHandle::log_count(self, run_id, step_id).await
    }
    async fn events(&self) -> Result<EventStream> {
        Ok(feed(self.subscribe()))
    }
}
