//! The steps a new run starts with, from its definition.

use super::{EngineError, Result};
use crate::config::Service;
use crate::config::infra::InfraProject;
use crate::domain::{RunKind, Stage};
use crate::store::NewRun;

pub(crate) struct Planned {
    pub stage: Stage,
    pub name: String,
    /// Index into the plan of this step's parent (an operation's resource).
    pub parent: Option<usize>,
}

/// The operations of a resource's stack job, in order (SJ-1), for a run's operation:
/// `deploy`/`stack-job:update` end in apply, `undeploy`/`stack-job:destroy` in
/// destroy; `stack-job:preview` and `stack-job:refresh` stop early.
pub(crate) fn operations(operation: Option<&str>) -> &'static [&'static str] {
    match operation {
        Some("undeploy" | "stack-job:destroy") => &["init", "refresh", "preview", "destroy"],
        Some("stack-job:preview") => &["init", "refresh", "preview"],
        Some("stack-job:refresh") => &["init", "refresh"],
        _ => &["init", "refresh", "preview", "apply"],
    }
}

/// Whether a run's operation destroys.
pub(crate) fn destroys(operation: Option<&str>) -> bool {
    matches!(operation, Some("undeploy" | "stack-job:destroy"))
}

fn bad(e: serde_json::Error) -> EngineError {
    EngineError::Internal(format!("the stored definition is unreadable: {e}"))
}

/// A run's definition, as its kind's driver takes it.
pub(crate) enum Definition {
    Service(Service),
    Infra(InfraProject),
}

/// The steps a new run starts with, and its definition read from `new`.
pub(crate) fn plan(new: &NewRun) -> Result<(Vec<Planned>, Definition)> {
    use serde::Deserialize;
    let mut out = Vec::new();
    let def = match new.kind {
        RunKind::Service => {
            let svc = Service::deserialize(&new.definition).map_err(bad)?;
            for s in &svc.steps {
                out.push(Planned {
                    stage: Stage::Build,
                    name: s.name.clone(),
                    parent: None,
                });
            }
            for e in &svc.environments {
                out.push(Planned {
                    stage: Stage::Deploy,
                    name: e.name.clone(),
                    parent: None,
                });
            }
            Definition::Service(svc)
        }
        RunKind::Infra => {
            let p = InfraProject::deserialize(&new.definition).map_err(bad)?;
            let ops = operations(new.operation.as_deref());
            for r in &p.resources {
                let parent = out.len();
                out.push(Planned {
                    stage: Stage::Resource,
                    name: r.id.clone(),
                    parent: None,
                });
                for &op in ops {
                    if r.is_terraform() || command(&r.commands, op).is_some() {
                        out.push(Planned {
                            stage: Stage::Operation,
                            name: format!("{}.{op}", r.id),
                            parent: Some(parent),
                        });
                    }
                }
            }
            Definition::Infra(p)
        }
    };
    Ok((out, def))
}

/// The command-driver command for an operation.
pub(crate) fn command<'a>(
    c: &'a crate::config::schema::CommandsFile,
    op: &str,
) -> Option<&'a String> {
    match op {
        "init" => c.init.as_ref(),
        "refresh" => c.refresh.as_ref(),
        "preview" => c.preview.as_ref(),
        "apply" => c.apply.as_ref(),
        "destroy" => c.destroy.as_ref(),
        _ => None,
    }
}
