//! What a gate guards, as a typed key: an environment, optionally one node (resource)
//! of it, optionally one operation of that node. Serialised in one place, as the
//! `env`, `env/node` or `env/node/op` text that the store, the API and the CLI use.

use std::fmt;

use super::operation::Operation;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GateKey {
    pub env: String,
    pub node: Option<String>,
    /// Only with a node: the operation the gate holds back (a pause before apply).
    pub op: Option<Operation>,
}

impl GateKey {
    /// A gate before an environment (a service deploy, or an infra project's start).
    pub fn env(env: &str) -> Self {
        Self {
            env: env.to_string(),
            node: None,
            op: None,
        }
    }

    /// A node gate: after the node, before its dependents.
    pub fn node(env: &str, node: &str) -> Self {
        Self {
            node: Some(node.to_string()),
            ..Self::env(env)
        }
    }

    /// A gate before one operation of a node.
    pub fn op(env: &str, node: &str, op: Operation) -> Self {
        Self {
            op: Some(op),
            ..Self::node(env, node)
        }
    }

    /// Parses the text written by `Display`; `None` if it is not a gate key.
    pub fn parse(s: &str) -> Option<Self> {
        let mut parts = s.split('/');
        let env = parts.next().filter(|e| !e.is_empty())?;
        let node = parts.next();
        let op = parts.next();
        if parts.next().is_some() || node == Some("") {
            return None;
        }
        let op = match op {
            Some(o) => Some(Operation::parse(o)?),
            None => None,
        };
        Some(Self {
            env: env.to_string(),
            node: node.map(str::to_string),
            op,
        })
    }
}

impl fmt::Display for GateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.env)?;
        if let Some(n) = &self.node {
            write!(f, "/{n}")?;
            if let Some(o) = self.op {
                write!(f, "/{o}")?;
            }
        }
        Ok(())
    }
}

/// The gate before a station group's switches to one build's release (DP-3). It is a
/// gate of the release's build run, decided like any other (`pipedeck approve RUN
/// stations:GROUP`); no environment name has a `:`, so the two never mix.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SwitchGateKey {
    pub group: String,
}

impl SwitchGateKey {
    const PREFIX: &'static str = "stations:";

    pub fn new(group: &str) -> Self {
        Self {
            group: group.to_string(),
        }
    }

    /// Parses the text written by `Display`; `None` for any other gate.
    pub fn parse(s: &str) -> Option<Self> {
        s.strip_prefix(Self::PREFIX)
            .filter(|g| !g.is_empty() && !g.contains('/'))
            .map(Self::new)
    }
}

impl fmt::Display for SwitchGateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", Self::PREFIX, self.group)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn switch_gate_keys_round_trip_and_are_not_environments() {
        let k = SwitchGateKey::new("edge");
        assert_eq!(k.to_string(), "stations:edge");
        assert_eq!(SwitchGateKey::parse("stations:edge"), Some(k));
        assert_eq!(SwitchGateKey::parse("prod"), None);
        assert_eq!(SwitchGateKey::parse("stations:"), None);
        assert_eq!(SwitchGateKey::parse("stations:a/b"), None);
    }

    #[test]
    fn keys_round_trip() {
        for k in [
            GateKey::env("prod"),
            GateKey::node("staging", "db"),
            GateKey::op("staging", "db", Operation::Apply),
        ] {
            assert_eq!(GateKey::parse(&k.to_string()), Some(k));
        }
        assert_eq!(
            GateKey::op("s", "vpc", Operation::Destroy).to_string(),
            "s/vpc/destroy"
        );
        assert_eq!(GateKey::parse(""), None);
        assert_eq!(GateKey::parse("a/b/nope"), None);
        assert_eq!(GateKey::parse("a//apply"), None);
        assert_eq!(GateKey::parse("a/b/apply/x"), None);
    }
}
