//! Per-user tokens for the TCP listener (`serve --listen`): created by the engine's
//! account (`pipedeck token create`), printed once, stored as SHA-256 hashes in
//! `tokens.json` in the data dir (0600), listed and revoked there. The engine reads
//! the file on every check, so a revocation holds at once.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::domain::Millis;
use crate::domain::access::Role;

pub const TOKENS_FILE: &str = "tokens.json";
/// Every token starts so, then its id, then its secret: `pdt_ID_SECRET`.
const PREFIX: &str = "pdt_";

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is damaged: {source}\n  hint: fix it, or remove it and create the tokens again", path.display())]
    Damaged {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no token `{0}` (`pipedeck token list` shows them)")]
    NoSuchToken(String),
    #[error("cannot make a token: {0}")]
    Random(#[source] std::io::Error),
}

/// One token as stored: never its secret, only the secret's hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenRecord {
    pub id: String,
    pub user: String,
    pub role: Role,
    /// SHA-256 of the secret, hex.
    pub hash: String,
    pub created_at: Millis,
    pub revoked_at: Option<Millis>,
}

/// Who a presented token stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenGrant {
    pub user: String,
    pub role: Role,
}

pub fn tokens_path(data_dir: &Path) -> PathBuf {
    data_dir.join(TOKENS_FILE)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hash(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

fn random_hex(n: usize) -> Result<String, TokenError> {
    let mut buf = vec![0u8; n];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut buf))
        .map_err(TokenError::Random)?;
    Ok(hex(&buf))
}

/// Equal, in a time that does not depend on where the two differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub fn load(data_dir: &Path) -> Result<Vec<TokenRecord>, TokenError> {
    let path = tokens_path(data_dir);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            serde_json::from_str(&text).map_err(|source| TokenError::Damaged { path, source })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(source) => Err(TokenError::Read { path, source }),
    }
}

fn save(data_dir: &Path, tokens: &[TokenRecord]) -> Result<(), TokenError> {
    let path = tokens_path(data_dir);
    let tmp = data_dir.join(".tokens.json.tmp");
    let write = || -> std::io::Result<()> {
        let _ = std::fs::remove_file(&tmp);
        let mut f = std::fs::OpenOptions::new()
            .create_new(true)
            .write(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(
            serde_json::to_string_pretty(tokens)
                .map_err(std::io::Error::other)?
                .as_bytes(),
        )?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)
    };
    write().map_err(|source| TokenError::Write {
        path: path.clone(),
        source,
    })
}

/// Creates a token for `user` with `role`; returns its record and the token itself
/// (shown once: only its hash is kept).
pub fn create(
    data_dir: &Path,
    user: &str,
    role: Role,
    now: Millis,
) -> Result<(TokenRecord, String), TokenError> {
    let mut tokens = load(data_dir)?;
    let id = random_hex(4)?;
    let secret = random_hex(24)?;
    let rec = TokenRecord {
        id: id.clone(),
        user: user.to_string(),
        role,
        hash: hash(&secret),
        created_at: now,
        revoked_at: None,
    };
    tokens.push(rec.clone());
    save(data_dir, &tokens)?;
    Ok((rec, format!("{PREFIX}{id}_{secret}")))
}

/// Revokes token `id` (kept in the list, marked revoked).
pub fn revoke(data_dir: &Path, id: &str, now: Millis) -> Result<TokenRecord, TokenError> {
    let mut tokens = load(data_dir)?;
    let t = tokens
        .iter_mut()
        .find(|t| t.id == id)
        .ok_or_else(|| TokenError::NoSuchToken(id.to_string()))?;
    t.revoked_at.get_or_insert(now);
    let rec = t.clone();
    save(data_dir, &tokens)?;
    Ok(rec)
}

/// Who `presented` stands for: a live token whose secret hashes to the stored hash.
pub fn check(tokens: &[TokenRecord], presented: &str) -> Option<TokenGrant> {
    let (id, secret) = presented.strip_prefix(PREFIX)?.split_once('_')?;
    let t = tokens
        .iter()
        .find(|t| t.id == id && t.revoked_at.is_none())?;
    constant_time_eq(hash(secret).as_bytes(), t.hash.as_bytes()).then(|| TokenGrant {
        user: t.user.clone(),
        role: t.role,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_stored_hashed_checked_and_revoked() {
        let dir = tempfile::tempdir().unwrap();
        let (rec, token) = create(dir.path(), "alice", Role::Viewer, 1).unwrap();
        let text = std::fs::read_to_string(tokens_path(dir.path())).unwrap();
        let secret = token.rsplit('_').next().unwrap();
        assert!(!text.contains(secret), "the secret is not stored");
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(tokens_path(dir.path()))
                .unwrap()
                .permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
        let tokens = load(dir.path()).unwrap();
        assert_eq!(
            check(&tokens, &token),
            Some(TokenGrant {
                user: "alice".into(),
                role: Role::Viewer
            })
        );
        let wrong = format!("{}x", &token[..token.len() - 1]);
        assert_eq!(check(&tokens, &wrong), None);
        assert_eq!(check(&tokens, "nonsense"), None);
        revoke(dir.path(), &rec.id, 2).unwrap();
        assert_eq!(check(&load(dir.path()).unwrap(), &token), None);
        assert!(matches!(
            revoke(dir.path(), "nope", 3),
            Err(TokenError::NoSuchToken(_))
        ));
    }
}
