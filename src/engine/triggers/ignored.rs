//! Why a push or a webhook event starts no run. Not a failure: a webhook's sender is
//! told it, and the engine's log keeps it.

use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub(crate) enum Ignored {
    #[error("branch {branch} matches no `branches` of {service}")]
    Branch { branch: String, service: String },
    #[error("tag {tag} matches no `tags` of {service}")]
    Tag { tag: String, service: String },
    #[error("ref {0} is neither a branch nor a tag")]
    NotARef(String),
    #[error("{event}: no ref or commit in the payload")]
    NoRef { event: String },
    #[error("{event}: {git_ref} was deleted")]
    Deleted { event: String, git_ref: String },
    /// A pull request (GitHub) or merge request (GitLab) action that starts nothing.
    #[error("{what} action {action:?} is not acted on")]
    Action {
        what: &'static str,
        action: Option<String>,
    },
    #[error("event {0:?} is not acted on")]
    Event(String),
    #[error("{event}: no number, head commit or branch in the payload")]
    NoPullFields { event: String },
    #[error("service {0} ignores pull requests")]
    PullsOff(String),
    #[error("pull request {0} closed: it had no preview")]
    ClosedWithoutPreview(u64),
}
