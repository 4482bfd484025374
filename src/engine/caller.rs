//! Who is asking: the verified principal behind a request.

use crate::domain::access::{Principal, Role};

/// Who is asking: a verified principal, recorded as who triggered, cancelled,
/// approved or rejected, and in the audit log. The engine side attaches it to each
/// request (the Unix socket's peer, or this process's own account); a request never
/// names its caller.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Caller {
    principal: Principal,
    /// The most this caller may do whatever its role (a token's role).
    cap: Option<Role>,
}

impl Caller {
    /// A caller with no Unix groups (in-process clients and tests).
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            principal: Principal::new(name),
            cap: None,
        }
    }

    /// The same caller, allowed at most `role`.
    pub fn with_cap(self, role: Role) -> Self {
        Self {
            cap: Some(role),
            ..self
        }
    }

    pub fn name(&self) -> &str {
        &self.principal.name
    }

    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    /// The account this process runs as, with its groups.
    pub fn local() -> Self {
        Self {
            principal: super::account::current(),
            cap: None,
        }
    }
}

impl From<Principal> for Caller {
    fn from(principal: Principal) -> Self {
        Self {
            principal,
            cap: None,
        }
    }
}

impl From<&str> for Caller {
    fn from(name: &str) -> Self {
        Self::new(name)
    }
}

impl From<String> for Caller {
    fn from(name: String) -> Self {
        Self::new(name)
    }
}

impl std::fmt::Display for Caller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Caller {
    /// The most this caller may do, whatever its role elsewhere.
    pub fn cap(&self) -> Option<Role> {
        self.cap
    }
}
