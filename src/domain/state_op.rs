//! Terraform state operations of a stack job (SJ-7, issue 22 part 3): list and show
//! what a resource's state holds, taint, untaint, remove, move and import resources,
//! and force-unlock a stale lock. Every address and id is validated here, and reaches
//! Terraform as one argv word: never spliced into a shell string, never taken for a
//! flag.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a state operation's argument was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateArgError {
    #[error(
        "`{text}` is not a Terraform resource address: {why} (e.g. `terraform_data.web`, `module.net.aws_vpc.main[0]`, `data.x.y[\"k\"]`)"
    )]
    Address { text: String, why: &'static str },
    #[error("`{text}` is not an import id: {why}")]
    ImportId { text: String, why: &'static str },
    #[error("`{text}` is not a lock id: {why} (copy the `ID:` of the lock info)")]
    LockId { text: String, why: &'static str },
    #[error("{op} needs at least one address")]
    NoAddress { op: &'static str },
}

const MAX_LEN: usize = 1024;

/// A string checked by its type's `parse`: `as_str`, `Display`, and serde through
/// `String` (so a value from JSON is checked as one from the CLI is).
macro_rules! checked_string {
    ($($t:ident),+) => {$(
        impl $t {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $t {
            type Error = StateArgError;
            fn try_from(s: String) -> Result<Self, StateArgError> {
                Self::parse(&s)
            }
        }

        impl From<$t> for String {
            fn from(a: $t) -> String {
                a.0
            }
        }

        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    )+};
}

checked_string!(Address, ImportId, LockId);

fn ident(s: &str) -> bool {
    let mut c = s.chars();
    c.next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
        && c.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Splits `name[index]` (the index optional) and checks the index: a number, or a
/// quoted string without quotes, backslashes or control characters inside.
fn name_and_index(step: &str) -> Result<&str, &'static str> {
    let Some(open) = step.find('[') else {
        return Ok(step);
    };
    let (name, index) = step.split_at(open);
    let inner = index
        .strip_prefix('[')
        .and_then(|i| i.strip_suffix(']'))
        .ok_or("an index must be `[N]` or `[\"key\"]` at the end of a name")?;
    let ok = if let Some(q) = inner.strip_prefix('"').and_then(|i| i.strip_suffix('"')) {
        !q.chars().any(|c| c == '"' || c == '\\' || c.is_control())
    } else {
        !inner.is_empty() && inner.chars().all(|c| c.is_ascii_digit())
    };
    if ok {
        Ok(name)
    } else {
        Err("an index must be `[N]` or `[\"key\"]`")
    }
}

/// Splits an address at the dots that are not inside a quoted index.
fn steps(s: &str) -> Vec<&str> {
    let (mut out, mut start, mut quoted) = (Vec::new(), 0, false);
    for (i, c) in s.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '.' if !quoted => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

/// A Terraform address: `module.NAME[K]` steps, then (optionally, for `state mv` and
/// `state rm` of a whole module) a resource `[data.]TYPE.NAME[K]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Address(String);

impl Address {
    pub fn parse(text: &str) -> Result<Self, StateArgError> {
        let bad = |why| StateArgError::Address {
            text: text.to_string(),
            why,
        };
        if text.is_empty() || text.len() > MAX_LEN {
            return Err(bad("empty or too long"));
        }
        if text.chars().any(char::is_control) {
            return Err(bad("it holds control characters"));
        }
        // Spaces only inside a quoted key (`each["a b"]`).
        let mut quoted = false;
        for c in text.chars() {
            match c {
                '"' => quoted = !quoted,
                c if c.is_whitespace() && !quoted => {
                    return Err(bad("it holds spaces outside a quoted key"));
                }
                _ => {}
            }
        }
        let parts = steps(text);
        let mut i = 0;
        let mut modules = 0;
        while parts.get(i) == Some(&"module") {
            let name = parts
                .get(i + 1)
                .ok_or(bad("`module` needs a name after it"))?;
            if !ident(name_and_index(name).map_err(bad)?) {
                return Err(bad("a module name is letters, digits, `_` and `-`"));
            }
            i += 2;
            modules += 1;
        }
        let rest = &parts[i..];
        let resource = match rest {
            [] if modules > 0 => return Ok(Self(text.to_string())),
            ["data", ty, name] | [ty, name] => (ty, name),
            _ => return Err(bad("expected `TYPE.NAME` after any `module.NAME` steps")),
        };
        if !ident(resource.0) || !ident(name_and_index(resource.1).map_err(bad)?) {
            return Err(bad("a type and a name are letters, digits, `_` and `-`"));
        }
        Ok(Self(text.to_string()))
    }
}

/// A word given to Terraform as it is: one printable argument that no flag parser
/// mistakes for an option.
fn plain_word(text: &str) -> Result<(), &'static str> {
    if text.is_empty() || text.len() > MAX_LEN {
        return Err("empty or too long");
    }
    if text.starts_with('-') {
        return Err("it must not start with `-`");
    }
    if text.chars().any(char::is_control) {
        return Err("it holds control characters");
    }
    Ok(())
}

/// The provider's id of a real object, for `terraform import`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ImportId(String);

impl ImportId {
    pub fn parse(text: &str) -> Result<Self, StateArgError> {
        plain_word(text).map_err(|why| StateArgError::ImportId {
            text: text.to_string(),
            why,
        })?;
        Ok(Self(text.to_string()))
    }
}

/// The id of a state lock, as Terraform's lock info shows it (`ID:`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct LockId(String);

impl LockId {
    pub fn parse(text: &str) -> Result<Self, StateArgError> {
        let bad = |why| StateArgError::LockId {
            text: text.to_string(),
            why,
        };
        plain_word(text).map_err(bad)?;
        if text.len() > 256
            || !text
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.:/".contains(c))
        {
            return Err(bad("letters, digits and `-_.:/` only"));
        }
        Ok(Self(text.to_string()))
    }
}

/// One state operation of a stack job, with its typed arguments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum StateOp {
    /// `terraform state list`: the addresses the state holds.
    List,
    /// `terraform state show ADDR`.
    Show { address: Address },
    /// `terraform taint ADDR`, for each address: replaced by the next apply.
    Taint { addresses: Vec<Address> },
    /// `terraform untaint ADDR`, for each address.
    Untaint { addresses: Vec<Address> },
    /// `terraform state rm ADDR…`: forgotten by the state, left alone in the world.
    Rm { addresses: Vec<Address> },
    /// `terraform state mv FROM TO`.
    Mv { from: Address, to: Address },
    /// `terraform import ADDR ID`: an existing object taken into the state.
    Import { address: Address, id: ImportId },
    /// `terraform force-unlock -force ID`: releases a stale lock (admins only).
    Unlock { lock_id: LockId },
}

impl StateOp {
    /// The verb the CLI and the run's title use.
    pub fn verb(&self) -> &'static str {
        match self {
            Self::List => "list",
            Self::Show { .. } => "show",
            Self::Taint { .. } => "taint",
            Self::Untaint { .. } => "untaint",
            Self::Rm { .. } => "rm",
            Self::Mv { .. } => "mv",
            Self::Import { .. } => "import",
            Self::Unlock { .. } => "unlock",
        }
    }

    /// Whether it writes the state: gated like apply, and never for a viewer.
    pub fn changes_state(&self) -> bool {
        !matches!(self, Self::List | Self::Show { .. })
    }

    /// Whether only an admin may ask for it (forcing a lock someone else holds).
    pub fn admin_only(&self) -> bool {
        matches!(self, Self::Unlock { .. })
    }

    /// Whether it waits for the resource's approval when its environment (or node)
    /// has one. A force-unlock does not: it is an admin's, and the lock it removes
    /// would hold up the approval's apply anyway.
    pub fn gated(&self) -> bool {
        self.changes_state() && !self.admin_only()
    }

    /// Checks the arguments (the CLI and the API build values that may be empty).
    pub fn validate(&self) -> Result<(), StateArgError> {
        match self {
            Self::Taint { addresses } | Self::Untaint { addresses } | Self::Rm { addresses }
                if addresses.is_empty() =>
            {
                Err(StateArgError::NoAddress { op: self.verb() })
            }
            _ => Ok(()),
        }
    }

    /// The addresses it names, in order.
    pub fn addresses(&self) -> Vec<&Address> {
        match self {
            Self::List | Self::Unlock { .. } => Vec::new(),
            Self::Show { address } | Self::Import { address, .. } => vec![address],
            Self::Taint { addresses } | Self::Untaint { addresses } | Self::Rm { addresses } => {
                addresses.iter().collect()
            }
            Self::Mv { from, to } => vec![from, to],
        }
    }

    /// `taint terraform_data.a, terraform_data.b`: what it does, for titles, the
    /// audit log and confirmations.
    pub fn describe(&self) -> String {
        let words: Vec<&str> = match self {
            Self::Import { address, id } => vec![address.as_str(), id.as_str()],
            Self::Unlock { lock_id } => vec![lock_id.as_str()],
            Self::Mv { from, to } => {
                return format!("mv {from} → {to}");
            }
            other => other.addresses().into_iter().map(Address::as_str).collect(),
        };
        if words.is_empty() {
            self.verb().to_string()
        } else {
            format!("{} {}", self.verb(), words.join(", "))
        }
    }

    /// Terraform's arguments, one invocation per entry (`taint` takes one address at
    /// a time). `lock_timeout_ms`: the backend's `-lock-timeout`, for commands that
    /// lock the state.
    pub fn invocations(&self, lock_timeout_ms: Option<u64>) -> Vec<Vec<String>> {
        let lock: Vec<String> = lock_timeout_ms
            .map(|ms| format!("-lock-timeout={ms}ms"))
            .into_iter()
            .collect();
        let words = |head: &[&str], tail: &[&str]| -> Vec<String> {
            head.iter()
                .map(|s| s.to_string())
                .chain(lock.iter().cloned())
                .chain(tail.iter().map(|s| s.to_string()))
                .collect()
        };
        match self {
            Self::List => vec![vec!["state".into(), "list".into()]],
            Self::Show { address } => {
                vec![vec!["state".into(), "show".into(), address.to_string()]]
            }
            Self::Taint { addresses } => addresses
                .iter()
                .map(|a| words(&["taint"], &[a.as_str()]))
                .collect(),
            Self::Untaint { addresses } => addresses
                .iter()
                .map(|a| words(&["untaint"], &[a.as_str()]))
                .collect(),
            Self::Rm { addresses } => {
                let a: Vec<&str> = addresses.iter().map(Address::as_str).collect();
                vec![words(&["state", "rm"], &a)]
            }
            Self::Mv { from, to } => vec![words(&["state", "mv"], &[from.as_str(), to.as_str()])],
            Self::Import { address, id } => vec![words(
                &["import", "-input=false"],
                &[address.as_str(), id.as_str()],
            )],
            Self::Unlock { lock_id } => vec![vec![
                "force-unlock".into(),
                "-force".into(),
                lock_id.to_string(),
            ]],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> Address {
        Address::parse(s).unwrap()
    }

    #[test]
    fn addresses_terraform_prints_are_taken() {
        for ok in [
            "terraform_data.web",
            "data.terraform_remote_state.net",
            "module.child.terraform_data.x",
            "module.a[0].module.b[\"k.v\"].aws_vpc.main[3]",
            "terraform_data.each[\"a b\"]",
            "module.net",
            "module.net[\"eu\"]",
        ] {
            Address::parse(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
    }

    #[test]
    fn flags_shell_and_junk_are_refused() {
        for bad in [
            "",
            "-lock=false",
            "--help",
            "web",
            "terraform_data.web; rm -rf /",
            "terraform_data.web extra",
            "$(id).x",
            "terraform_data.x[\"a\\\"]",
            "terraform_data.x[a]",
            "terraform_data.x[0",
            "module..x.y",
            "module",
            "a.b.c",
            "terraform_data.\u{1b}]0;x",
        ] {
            assert!(Address::parse(bad).is_err(), "{bad:?} was taken");
        }
        let e = Address::parse("web").unwrap_err().to_string();
        assert!(
            e.starts_with("`web` is not a Terraform resource address"),
            "{e}"
        );
    }

    #[test]
    fn ids_never_look_like_flags() {
        assert!(ImportId::parse("i-0abc/def:1").is_ok());
        assert!(ImportId::parse("-chdir=/").is_err());
        assert!(ImportId::parse("a\nb").is_err());
        assert!(LockId::parse("4732fd94-7020-d432-2fe2-58daddb0f8f1").is_ok());
        assert!(LockId::parse("-force").is_err());
        assert!(LockId::parse("a b").is_err());
        assert!(LockId::parse("").is_err());
    }

    #[test]
    fn each_operation_becomes_argv_words() {
        let op = StateOp::Taint {
            addresses: vec![a("terraform_data.a"), a("module.m.terraform_data.b[0]")],
        };
        assert_eq!(
            op.invocations(Some(5000)),
            vec![
                vec!["taint", "-lock-timeout=5000ms", "terraform_data.a"],
                vec![
                    "taint",
                    "-lock-timeout=5000ms",
                    "module.m.terraform_data.b[0]"
                ],
            ]
        );
        let rm = StateOp::Rm {
            addresses: vec![a("terraform_data.a"), a("terraform_data.b")],
        };
        assert_eq!(
            rm.invocations(None),
            vec![vec!["state", "rm", "terraform_data.a", "terraform_data.b"]]
        );
        let mv = StateOp::Mv {
            from: a("terraform_data.a"),
            to: a("terraform_data.b"),
        };
        assert_eq!(
            mv.invocations(None),
            vec![vec!["state", "mv", "terraform_data.a", "terraform_data.b"]]
        );
        let unlock = StateOp::Unlock {
            lock_id: LockId::parse("abc-1").unwrap(),
        };
        assert_eq!(
            unlock.invocations(Some(1)),
            vec![vec!["force-unlock", "-force", "abc-1"]]
        );
        assert_eq!(StateOp::List.invocations(None), vec![vec!["state", "list"]]);
    }

    #[test]
    fn what_is_gated_and_who_may() {
        assert!(!StateOp::List.changes_state());
        let show = StateOp::Show {
            address: a("terraform_data.a"),
        };
        assert!(!show.changes_state() && !show.gated());
        let rm = StateOp::Rm {
            addresses: vec![a("terraform_data.a")],
        };
        assert!(rm.changes_state() && rm.gated() && !rm.admin_only());
        let unlock = StateOp::Unlock {
            lock_id: LockId::parse("x").unwrap(),
        };
        assert!(unlock.admin_only() && !unlock.gated());
        assert_eq!(
            StateOp::Taint { addresses: vec![] }
                .validate()
                .unwrap_err()
                .to_string(),
            "taint needs at least one address"
        );
        assert_eq!(rm.describe(), "rm terraform_data.a");
    }

    #[test]
    fn json_is_validated_on_the_way_in() {
        let op: StateOp =
            serde_json::from_str(r#"{"op":"taint","addresses":["terraform_data.a"]}"#).unwrap();
        assert_eq!(op.verb(), "taint");
        let bad = serde_json::from_str::<StateOp>(r#"{"op":"taint","addresses":["-lock=false"]}"#);
        assert!(bad.is_err());
        let round = serde_json::to_string(&op).unwrap();
        assert_eq!(round, r#"{"op":"taint","addresses":["terraform_data.a"]}"#);
    }
}
