//! Pull-request runs (SP-7): type Preview. "build" runs the build stage only;
//! "deploy" builds and deploys to `preview-<N>` (a newer push replaces the preview:
//! its deploys queue as `latest`); closing or merging runs the preview's teardown.

use crate::config::{EnvDeploy, GatePolicy, Project, PullRequestLevel, Service, Step};
use crate::domain::QueuePolicy;
use crate::engine::{EngineError, Result};

/// What a pull request's event asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PullAction {
    /// Opened, reopened or pushed to: build (and deploy the preview).
    Head,
    /// Closed or merged: tear the preview down.
    Closed,
}

#[derive(Debug, Clone)]
pub(crate) struct PullRun {
    pub number: u64,
    pub action: PullAction,
}

/// The preview environment of pull request `n`.
pub(crate) fn preview_env(n: u64) -> String {
    format!("preview-{n}")
}

impl PullRun {
    /// The definition pinned for this run: the service's build steps, and the
    /// preview's deploy (or only its teardown).
    pub fn definition(&self, svc: &Service, project: &Project) -> Result<Service> {
        let mut def = svc.clone();
        def.pull_request = Some(self.number);
        let preview = svc.triggers.preview.as_ref();
        match (self.action, svc.pull_requests) {
            (_, PullRequestLevel::Off) => {
                return Err(EngineError::Invalid(format!(
                    "service {} ignores pull requests (pull_requests = \"off\")",
                    svc.name
                )));
            }
            (PullAction::Head, PullRequestLevel::Build) => def.environments.clear(),
            (PullAction::Head, PullRequestLevel::Deploy) => {
                let p = preview.ok_or_else(|| no_preview(svc, project))?;
                def.environments = vec![EnvDeploy {
                    name: preview_env(self.number),
                    run: p.run.clone(),
                    gate: GatePolicy::default(),
                    kill_grace_ms: project.engine.kill_grace_ms,
                    timeout_ms: project.engine.timeout_ms,
                    queue: QueuePolicy::Latest,
                    verify: Vec::new(),
                    // Previews and teardowns run here, whatever `[slurm] default` says.
                    slurm: None,
                }];
            }
            (PullAction::Closed, _) => {
                let teardown = preview.and_then(|p| p.teardown.clone()).ok_or_else(|| {
                    EngineError::Invalid(format!(
                        "pull request {} of {} closed: nothing to tear down (no preview teardown)",
                        self.number, svc.name
                    ))
                })?;
                def.environments.clear();
                def.steps = vec![Step {
                    name: "teardown".into(),
                    run: teardown,
                    needs: Vec::new(),
                    kill_grace_ms: project.engine.kill_grace_ms,
                    timeout_ms: project.engine.timeout_ms,
                    retries: 0,
                    slurm: None,
                }];
            }
        }
        Ok(def)
    }
}

fn no_preview(svc: &Service, project: &Project) -> EngineError {
    EngineError::Invalid(format!(
        "service {} deploys pull-request previews but has no [services.{}.preview] in {}",
        svc.name,
        svc.name,
        project.path.display()
    ))
}
