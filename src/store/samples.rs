//! Values for tests.

use super::NewRun;
use crate::domain::{RunSpec, RunType, Trigger};

impl NewRun {
    /// A manual production run of `spec`, its definition `{}`, nothing else set.
    pub(crate) fn sample(spec: RunSpec) -> Self {
        NewRun {
            spec,
            run_type: RunType::Production,
            trigger: Trigger::Manual,
            commit_message: "m".into(),
            author: "a".into(),
            triggered_by: "t".into(),
            rerun_of: None,
            attempt: 1,
            allow_older: false,
            definition: "{}".into(),
            upstream: Vec::new(),
        }
    }
}

impl RunSpec {
    /// Service `svc`'s commit `abc` on `main`.
    pub(crate) fn sample() -> Self {
        RunSpec::Service {
            service: "svc".into(),
            branch: "main".into(),
            tag: None,
            commit: "abc".into(),
        }
    }
}
