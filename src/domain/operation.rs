//! The operations of a stack job (SJ-1) and what a run of infra does.

use serde::{Deserialize, Serialize};

/// One operation of a resource's stack job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    Init,
    Refresh,
    Preview,
    Apply,
    Destroy,
    /// A Terraform state operation (list, show, taint, untaint, rm, mv, import,
    /// force-unlock): which, with its arguments, is the run's [`super::state_op::StateOp`].
    State,
}
words!(Operation {
    Init => "init",
    Refresh => "refresh",
    Preview => "preview",
    Apply => "apply",
    Destroy => "destroy",
    State => "state",
});

impl Operation {
    /// The stack-job verb that ends in this operation (`update` ends in apply).
    pub fn job_verb(self) -> &'static str {
        match self {
            Self::Apply => "update",
            other => other.as_str(),
        }
    }

    /// Whether the operation changes what is deployed (never retried on its own).
    pub fn changes(self) -> bool {
        matches!(self, Self::Apply | Self::Destroy)
    }
}

/// What an infra run does: the whole project, or one resource's stack job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InfraAction {
    Deploy,
    Undeploy,
    /// A stack job that ends in apply (`update`), destroy, preview or refresh.
    StackJob(Operation),
}

impl InfraAction {
    /// The operations each resource goes through, in order (SJ-1).
    pub fn operations(self) -> &'static [Operation] {
        use Operation::*;
        match self {
            Self::Undeploy | Self::StackJob(Destroy) => &[Init, Refresh, Preview, Destroy],
            Self::StackJob(Preview) => &[Init, Refresh, Preview],
            Self::StackJob(Refresh) => &[Init, Refresh],
            Self::StackJob(Init) => &[Init],
            Self::StackJob(State) => &[Init, State],
            Self::Deploy | Self::StackJob(Apply) => &[Init, Refresh, Preview, Apply],
        }
    }

    /// Whether the run destroys what it touches.
    pub fn destroys(self) -> bool {
        matches!(self, Self::Undeploy | Self::StackJob(Operation::Destroy))
    }

    /// Whether this is one resource's stack job rather than a whole project.
    pub fn is_stack_job(self) -> bool {
        matches!(self, Self::StackJob(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_action_ends_in_its_operation() {
        assert_eq!(
            InfraAction::StackJob(Operation::Refresh).operations(),
            &[Operation::Init, Operation::Refresh]
        );
        assert_eq!(
            InfraAction::Undeploy.operations().last(),
            Some(&Operation::Destroy)
        );
        assert!(InfraAction::StackJob(Operation::Destroy).destroys());
        assert!(!InfraAction::Deploy.is_stack_job());
    }
}
