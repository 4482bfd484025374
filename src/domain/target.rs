//! Targeted plans (issue 22, part 4): a Terraform resource address a stack job's
//! preview and apply are limited to (`-target=ADDR`). Never the default: a job has
//! targets only when an operator names them, and such a job is marked as targeted
//! wherever it is shown.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The longest address accepted.
const MAX_LEN: usize = 512;

/// A Terraform resource (or module) address, checked against Terraform's grammar:
/// `[module.NAME[INDEX].]…[data.]TYPE.NAME[INDEX]`, or `module.NAME[INDEX]` for a
/// whole module; `INDEX` is a number or a quoted key. It reaches Terraform as one
/// argument (`-target=ADDR`), never through a shell.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Address(String);

/// Why a text is not a Terraform address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{text}` is not a Terraform resource address ({why}): write one such as \
     `terraform_data.web`, `module.net.aws_vpc.main` or `aws_instance.app[\"a\"]`"
)]
pub struct AddressError {
    /// The text, with control characters shown escaped.
    pub text: String,
    pub why: &'static str,
}

impl Address {
    pub fn parse(text: &str) -> Result<Self, AddressError> {
        check(text).map_err(|why| AddressError {
            text: text.escape_debug().take(MAX_LEN).collect(),
            why,
        })?;
        Ok(Self(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The argument Terraform takes: `-target=ADDR`.
    pub fn arg(&self) -> String {
        format!("-target={}", self.0)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Address {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Address::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Parses every address; the first bad one is the error.
pub fn parse_all(texts: &[String]) -> Result<Vec<Address>, AddressError> {
    let mut out: Vec<Address> = Vec::new();
    for t in texts {
        let a = Address::parse(t)?;
        if !out.contains(&a) {
            out.push(a);
        }
    }
    Ok(out)
}

/// `targeted: a, b` (empty when there are none): how a targeted run is marked.
pub fn marker(targets: &[Address]) -> String {
    if targets.is_empty() {
        return String::new();
    }
    let list: Vec<&str> = targets.iter().map(Address::as_str).collect();
    format!("targeted: {}", list.join(", "))
}

/// A Terraform identifier: a letter or `_`, then letters, digits, `_` and `-`.
fn ident(s: &str) -> Option<usize> {
    let mut n = 0;
    for (i, c) in s.char_indices() {
        let ok = if i == 0 {
            c.is_ascii_alphabetic() || c == '_'
        } else {
            c.is_ascii_alphanumeric() || c == '_' || c == '-'
        };
        if !ok {
            break;
        }
        n = i + c.len_utf8();
    }
    (n > 0).then_some(n)
}

/// An index (`[0]`, `["key"]`) at the start of `s`: its length.
fn index(s: &str) -> Result<usize, &'static str> {
    let rest = &s[1..];
    if let Some(key) = rest.strip_prefix('"') {
        let end = key.find('"').ok_or("an index key is not closed")?;
        if key[..end].chars().any(|c| c.is_control() || c == '\\') {
            return Err("an index key holds a control character or a backslash");
        }
        if !key[end + 1..].starts_with(']') {
            return Err("an index is not closed with `]`");
        }
        Ok(1 + 1 + end + 1 + 1)
    } else {
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        if digits == 0 || !rest[digits..].starts_with(']') {
            return Err("an index is neither a number nor a quoted key");
        }
        Ok(1 + digits + 1)
    }
}

fn check(text: &str) -> Result<(), &'static str> {
    if text.is_empty() {
        return Err("it is empty");
    }
    if text.len() > MAX_LEN {
        return Err("it is too long");
    }
    let mut s = text;
    // Module steps: `module.NAME[INDEX].`
    while let Some(rest) = s.strip_prefix("module.") {
        let n = ident(rest).ok_or("a module name is missing")?;
        let mut rest = &rest[n..];
        if rest.starts_with('[') {
            rest = &rest[index(rest)?..];
        }
        if rest.is_empty() {
            return Ok(()); // A whole module.
        }
        s = rest
            .strip_prefix('.')
            .ok_or("a module step is not followed by `.`")?;
    }
    let s = s.strip_prefix("data.").unwrap_or(s);
    let n = ident(s).ok_or("a resource type is missing")?;
    let rest = s[n..]
        .strip_prefix('.')
        .ok_or("a resource needs TYPE.NAME")?;
    let n = ident(rest).ok_or("a resource name is missing")?;
    let rest = &rest[n..];
    let rest = if rest.starts_with('[') {
        &rest[index(rest)?..]
    } else {
        rest
    };
    if rest.is_empty() {
        Ok(())
    } else {
        Err("something follows the resource name")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terraform_addresses_parse() {
        for ok in [
            "terraform_data.web",
            "data.terraform_remote_state.net",
            "module.net",
            "module.net[0]",
            "module.net.aws_vpc.main",
            "module.a[\"x\"].module.b.null_resource.c[3]",
            "aws_instance.app[\"eu west\"]",
            "_x.y-z",
        ] {
            assert_eq!(Address::parse(ok).unwrap().as_str(), ok, "{ok}");
        }
    }

    #[test]
    fn anything_else_is_refused_with_why() {
        for (bad, why) in [
            ("", "it is empty"),
            ("web", "a resource needs TYPE.NAME"),
            ("-target=x.y", "a resource type is missing"),
            ("x.y; rm -rf /", "something follows the resource name"),
            ("x.y[\"a", "an index key is not closed"),
            ("x.y[a]", "an index is neither a number nor a quoted key"),
            (
                "x.y[\"a\u{1b}\"]",
                "an index key holds a control character or a backslash",
            ),
            ("module.", "a module name is missing"),
            ("module.m x.y", "a module step is not followed by `.`"),
            ("x.y.z", "something follows the resource name"),
        ] {
            let e = Address::parse(bad).unwrap_err();
            assert_eq!(e.why, why, "{bad:?}");
        }
        let e = Address::parse("a\u{1b}]0;x").unwrap_err();
        assert!(!e.to_string().contains('\u{1b}'), "{e}");
    }

    #[test]
    fn marker_and_argument() {
        let t = parse_all(&["a.b".into(), "c.d".into(), "a.b".into()]).unwrap();
        assert_eq!(marker(&t), "targeted: a.b, c.d");
        assert_eq!(marker(&[]), "");
        assert_eq!(t[0].arg(), "-target=a.b");
        let back: Vec<Address> = serde_json::from_str(r#"["a.b"]"#).unwrap();
        assert_eq!(back, t[..1]);
        assert!(serde_json::from_str::<Vec<Address>>(r#"["nope"]"#).is_err());
    }
}
