//! Who may do what (EN-5): roles, the `[access]` table resolved, and refusals that
//! name the rule. Pure: the caller's name and groups come verified from the
//! transport (the Unix socket's peer uid), never from a request.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// What an identity may do, each role including the ones below it.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Read runs, gates, logs and the audit log; follow events.
    Viewer,
    /// Also trigger, cancel, rerun, and decide gates that have no approvers list.
    Operator,
    /// Also administer the engine (tokens, shutdown).
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A verified person: the Unix account behind a connection (or this process), with
/// the Unix groups it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Principal {
    pub name: String,
    pub groups: Vec<String>,
}

impl Principal {
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            groups: Vec::new(),
        }
    }

    /// Whether `entry` names this principal: a user name, or `@group`.
    pub fn matches(&self, entry: &str) -> bool {
        match entry.strip_prefix('@') {
            Some(g) => self.groups.iter().any(|m| m == g),
            None => entry == self.name,
        }
    }
}

/// A principal with the role the engine gave it for this request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub who: Principal,
    pub role: Role,
}

/// The access policy of a project, resolved.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub enum AccessPolicy {
    /// No `[access]` table: the engine's own user is admin, everyone who can reach
    /// the engine (the socket's mode and group decide who can) is an operator.
    #[default]
    Open,
    /// Roles as declared: the highest of the user's entry, its groups' entries and
    /// the default; `default: None` refuses everyone not listed.
    Declared {
        users: BTreeMap<String, Role>,
        groups: BTreeMap<String, Role>,
        default: Option<Role>,
    },
}

impl AccessPolicy {
    /// The role of `who` on an engine run by `engine_user`, or `None` when `who` may
    /// not use it at all.
    pub fn role_of(&self, who: &Principal, engine_user: &str) -> Option<Role> {
        if who.name == engine_user {
            return Some(Role::Admin);
        }
        match self {
            AccessPolicy::Open => Some(Role::Operator),
            AccessPolicy::Declared {
                users,
                groups,
                default,
            } => {
                let by_group = who.groups.iter().filter_map(|g| groups.get(g).copied());
                users
                    .get(&who.name)
                    .copied()
                    .into_iter()
                    .chain(by_group)
                    .chain(*default)
                    .max()
            }
        }
    }
}

/// What a request asks to do, as the refusals name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Read,
    Trigger,
    Cancel,
    Rerun,
    Approve,
    Reject,
    /// Pin, unpin, promote, roll back or delete releases (DP-3).
    Release,
    /// Taint, untaint, remove, move or import in a Terraform state.
    ChangeState,
    /// Release a Terraform state lock someone else holds.
    ForceUnlock,
    Administer,
}

impl Action {
    /// The least role that may do this (deciding a gate with an approvers list is
    /// the list's business, not the role's).
    pub fn needs(self) -> Role {
        match self {
            Action::Read => Role::Viewer,
            Action::Trigger
            | Action::Cancel
            | Action::Rerun
            | Action::Approve
            | Action::Reject
            | Action::Release
            | Action::ChangeState => Role::Operator,
            Action::ForceUnlock | Action::Administer => Role::Admin,
        }
    }

    pub fn verb(self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::Trigger => "trigger runs",
            Action::Cancel => "cancel runs",
            Action::Rerun => "rerun runs",
            Action::Approve => "approve",
            Action::Reject => "reject",
            Action::Release => "pin, promote, roll back or delete releases",
            Action::ChangeState => "change Terraform state",
            Action::ForceUnlock => "force-unlock Terraform state",
            Action::Administer => "administer the engine",
        }
    }
}

/// Why the engine refused a request: each names the person and the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(
        "{who} may not use this engine: not listed in the project's [access] table, which sets no default role"
    )]
    NotListed { who: String },
    #[error("{who} may not {}: role {role}, needs {} (roles: [access] in the project file)", action.verb(), action.needs())]
    Role {
        who: String,
        action: Action,
        role: Role,
    },
    #[error("{who} may not {} {env}: not in approvers [{}]", action.verb(), approvers.join(", "))]
    NotApprover {
        who: String,
        action: Action,
        env: String,
        approvers: Vec<String>,
    },
    #[error("{who} may not {} {env}: {who} triggered run {run_id} and {env} forbids self-approval", action.verb())]
    SelfApproval {
        who: String,
        action: Action,
        env: String,
        run_id: i64,
    },
    #[error("{who} may not {} {env} without a comment: {env} requires one (--comment)", action.verb())]
    CommentRequired {
        who: String,
        action: Action,
        env: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn declared() -> AccessPolicy {
        AccessPolicy::Declared {
            users: [
                ("carol".to_string(), Role::Viewer),
                ("dave".into(), Role::Admin),
            ]
            .into(),
            groups: [("ops".to_string(), Role::Operator)].into(),
            default: None,
        }
    }

    #[test]
    fn roles_take_the_highest_grant() {
        let p = declared();
        let mut carol = Principal::new("carol");
        assert_eq!(p.role_of(&carol, "svc"), Some(Role::Viewer));
        carol.groups.push("ops".into());
        assert_eq!(p.role_of(&carol, "svc"), Some(Role::Operator));
        assert_eq!(p.role_of(&Principal::new("dave"), "svc"), Some(Role::Admin));
        assert_eq!(p.role_of(&Principal::new("eve"), "svc"), None);
        assert_eq!(p.role_of(&Principal::new("svc"), "svc"), Some(Role::Admin));
        assert_eq!(
            AccessPolicy::Open.role_of(&Principal::new("eve"), "svc"),
            Some(Role::Operator)
        );
    }

    #[test]
    fn a_group_entry_matches_members_only() {
        let mut bob = Principal::new("bob");
        assert!(bob.matches("bob") && !bob.matches("@ops") && !bob.matches("alice"));
        bob.groups.push("ops".into());
        assert!(bob.matches("@ops"));
    }

    #[test]
    fn refusals_name_the_rule() {
        let r = Refusal::NotApprover {
            who: "bob".into(),
            action: Action::Approve,
            env: "prod".into(),
            approvers: vec!["alice".into()],
        };
        assert_eq!(
            r.to_string(),
            "bob may not approve prod: not in approvers [alice]"
        );
    }
}
