//! The engine over HTTP on a Unix socket: one process hosts the engine for a data
//! dir and serves it ([`server`]); every other process talks to it ([`client`]),
//! as the account it runs as.
//! Both sides implement [`EngineClient`], so the CLI works the same either way.

pub mod client;
mod hooks;
pub mod protocol;
pub mod server;
mod tcp;
mod tls;
pub mod tokens;

use std::future::Future;
use std::pin::Pin;

use futures_util::Stream;

use crate::domain::command::{PreflightReport, Request, Response, UnexpectedResponse};
use crate::domain::{Decision, Event, GateInfo, RunDetail, RunInfo};
use crate::engine::{EngineError, EngineHandle, Result, TriggerRequest};
use crate::store::{AuditEntry, LogLine, RunFilter};

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

/// The one client API the dashboard and the CLI use (EN-1): a [`Request`] in, a
/// [`Response`] out, and the event stream. Who is asking is not part of a request:
/// the engine side attaches it.
///
/// Implementors provide [`EngineClient::call`] and [`EngineClient::events`]; the
/// typed methods below are built on `call`.
pub trait EngineClient: Send + Sync {
    /// Sends one request and waits for the engine's answer.
    fn call(&self, req: Request) -> impl Future<Output = Result<Response>> + Send;

    /// Events from now on.
    fn events(&self) -> impl Future<Output = Result<EventStream>> + Send;

    /// Sends one request and unwraps the answer to the type it calls for.
    fn ask<T>(&self, req: Request) -> impl Future<Output = Result<T>> + Send
    where
        T: TryFrom<Response, Error = UnexpectedResponse> + Send,
    {
        async move { Ok(T::try_from(self.call(req).await?)?) }
    }

    fn trigger(&self, req: TriggerRequest) -> impl Future<Output = Result<RunInfo>> + Send {
        self.ask(Request::Trigger(req))
    }

    fn trigger_infra(
        &self,
        project: &str,
        undeploy: bool,
    ) -> impl Future<Output = Result<RunInfo>> + Send {
        self.ask(Request::TriggerInfra {
            project: project.to_string(),
            undeploy,
        })
    }

    fn trigger_stack_job(
        &self,
        resource: &str,
        infra: Option<&str>,
        operation: &str,
    ) -> impl Future<Output = Result<RunInfo>> + Send {
        self.ask(Request::TriggerStackJob {
            resource: resource.to_string(),
            infra: infra.map(str::to_string),
            operation: operation.to_string(),
            targets: Vec::new(),
        })
    }

    /// A state job on `resource` (list, show, taint…, force-unlock).
    fn state_job(
        &self,
        resource: &str,
        infra: Option<&str>,
        op: crate::domain::state_op::StateOp,
    ) -> impl Future<Output = Result<RunInfo>> + Send {
        self.ask(Request::StateJob {
            resource: resource.to_string(),
            infra: infra.map(str::to_string),
            op,
        })
    }

    fn cancel(&self, run_id: i64) -> impl Future<Output = Result<RunInfo>> + Send {
        self.ask(Request::Cancel { run_id })
    }

    /// A new attempt of `run_id`; `allow_older`: it may roll an environment back.
    fn rerun(
        &self,
        run_id: i64,
        allow_older: bool,
    ) -> impl Future<Output = Result<RunInfo>> + Send {
        self.ask(Request::Rerun {
            run_id,
            allow_older,
        })
    }

    fn decide(
        &self,
        run_id: i64,
        env: &str,
        decision: Decision,
        comment: Option<String>,
    ) -> impl Future<Output = Result<GateInfo>> + Send {
        self.ask(Request::Decide {
            run_id,
            env: env.to_string(),
            decision,
            comment,
        })
    }

    fn runs(&self, filter: RunFilter) -> impl Future<Output = Result<Vec<RunInfo>>> + Send {
        self.ask(Request::ListRuns { filter })
    }

    fn detail(&self, run_id: i64) -> impl Future<Output = Result<RunDetail>> + Send {
        self.ask(Request::Detail { run_id })
    }

    fn waiting_gates(&self) -> impl Future<Output = Result<Vec<GateInfo>>> + Send {
        self.ask(Request::WaitingGates)
    }

    fn audit(&self, run_id: i64) -> impl Future<Output = Result<Vec<AuditEntry>>> + Send {
        self.ask(Request::Audit { run_id })
    }

    fn logs(
        &self,
        run_id: i64,
        step_id: i64,
        from: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<LogLine>>> + Send {
        self.ask(Request::Logs {
            run_id,
            step_id,
            from,
            limit,
        })
    }

    /// How many lines a step's log holds.
    fn log_count(&self, run_id: i64, step_id: i64) -> impl Future<Output = Result<u64>> + Send {
        self.ask(Request::LogCount { run_id, step_id })
    }

    fn preflight(
        &self,
        resource: &str,
        infra: Option<&str>,
    ) -> impl Future<Output = Result<PreflightReport>> + Send {
        self.ask(Request::Preflight {
            resource: resource.to_string(),
            infra: infra.map(str::to_string),
        })
    }

    /// A drift check of infra project `project`, now (nothing is applied).
    fn drift(
        &self,
        project: &str,
    ) -> impl Future<Output = Result<crate::domain::drift::DriftReport>> + Send {
        self.ask(Request::InfraDrift {
            project: project.to_string(),
        })
    }

    /// The latest drift check of every resource, of infra project `project` or of all.
    fn drift_results(
        &self,
        project: Option<&str>,
    ) -> impl Future<Output = Result<Vec<crate::domain::drift::DriftRecord>>> + Send {
        self.ask(Request::DriftResults {
            project: project.map(str::to_string),
        })
    }

    /// Every trigger with its status (SP-7).
    fn triggers(
        &self,
    ) -> impl Future<Output = Result<Vec<crate::domain::trigger::TriggerInfo>>> + Send {
        self.ask(Request::Triggers)
    }
}

impl From<UnexpectedResponse> for EngineError {
    fn from(e: UnexpectedResponse) -> Self {
        EngineError::Internal(e.to_string())
    }
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

/// The in-process client: requests go straight to the engine, as the handle's
/// caller ([`EngineHandle::as_caller`]).
impl EngineClient for EngineHandle {
    async fn call(&self, req: Request) -> Result<Response> {
        self.handle(self.caller(), req).await
    }

    async fn events(&self) -> Result<EventStream> {
        Ok(feed(self.subscribe()))
    }
}
