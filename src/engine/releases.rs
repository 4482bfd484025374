//! The engine API's release and station requests (DP-1..DP-3): each is the runner's
//! (stored, audited) except a station job, which holds its station's release while
//! it runs.

use super::handle::EngineHandle;
use super::runner::{Msg, ReleaseMsg};
use super::stations::{LeaseError, job};
use super::{Caller, EngineError, Result};
use crate::domain::command::{Request, Response};

/// The most releases one request lists.
const MAX_RELEASES: usize = 10_000;

impl EngineHandle {
    /// Answers a release or station request.
    pub(super) async fn release_request(&self, caller: &Caller, req: Request) -> Result<Response> {
        let by = caller.name().to_string();
        match req {
            Request::ListReleases { service, limit } => {
                let limit = limit.unwrap_or(MAX_RELEASES).min(MAX_RELEASES);
                self.runner(|reply| {
                    Msg::Release(ReleaseMsg::List {
                        service,
                        limit,
                        reply,
                    })
                })
                .await
                .map(Response::Releases)
            }
            Request::ShowRelease { release } => self
                .runner(|r| Msg::Release(ReleaseMsg::Show(release, r)))
                .await
                .map(Response::Release),
            Request::ListStations => self.stations().await.map(Response::Stations),
            Request::PinRelease { release, stations } => self
                .runner(|reply| {
                    Msg::Release(ReleaseMsg::Pin {
                        release,
                        stations,
                        by,
                        reply,
                    })
                })
                .await
                .map(Response::Stations),
            Request::UnpinStations { stations } => self
                .runner(|reply| {
                    Msg::Release(ReleaseMsg::Unpin {
                        stations,
                        by,
                        reply,
                    })
                })
                .await
                .map(Response::Stations),
            Request::PromoteRelease { release } => self
                .runner(|reply| Msg::Release(ReleaseMsg::Promote { release, by, reply }))
                .await
                .map(Response::Release),
            Request::Rollback { service } => self
                .runner(|reply| Msg::Release(ReleaseMsg::Rollback { service, by, reply }))
                .await
                .map(Response::Stations),
            Request::DeleteRelease { release } => self
                .runner(|reply| Msg::Release(ReleaseMsg::Delete { release, by, reply }))
                .await
                .map(Response::Release),
            Request::StationExec { station, argv } => self
                .station_exec(&station, argv)
                .await
                .map(Response::StationJob),
            other => Err(EngineError::Internal(format!(
                "not a release request: {other:?}"
            ))),
        }
    }

    /// Stations as stored, with the jobs in flight on each.
    async fn stations(&self) -> Result<Vec<crate::domain::release::StationInfo>> {
        let mut list = self
            .runner(|r| Msg::Release(ReleaseMsg::Stations(r)))
            .await?;
        let jobs = self.shared.stations.jobs();
        for s in &mut list {
            s.jobs = jobs.get(&s.name).copied().unwrap_or(0);
        }
        Ok(list)
    }

    async fn station_exec(&self, name: &str, argv: Vec<String>) -> Result<job::JobOutput> {
        if argv.is_empty() {
            return Err(EngineError::Invalid(
                "no command: pipedeck station exec STATION -- CMD [ARGS...]".into(),
            ));
        }
        let project = self.project.get();
        let Some(station) = project.stations.get(name).cloned() else {
            let names: Vec<&str> = project.stations.keys().map(String::as_str).collect();
            return Err(EngineError::NotFound(format!(
                "no station {name} (stations: {})",
                names.join(", ")
            )));
        };
        let lease = self
            .shared
            .stations
            .lease(&station)
            .await
            .map_err(|e| match e {
                LeaseError::Stopping => EngineError::Stopped,
                e @ LeaseError::NoRelease { .. } => EngineError::Conflict(e.to_string()),
            })?;
        let out = job::run_argv(&argv, &lease.dir, name, lease.release).await;
        // The switch that waited may go once the lease is given back.
        drop(lease);
        Ok(out)
    }
}
