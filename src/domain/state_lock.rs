//! Who holds a Terraform state lock: the `Lock Info:` block Terraform prints when it
//! cannot take the lock (issue 22 part 2), read from a run's log so that a stale lock
//! is shown with its holder, and an admin can force-unlock it by its id.

use serde::{Deserialize, Serialize};

use super::ansi::sanitize;

/// How the reason of a unit that found its state locked begins (the dashboard shows
/// such a reason in the stack job's header).
pub const LOCKED: &str = "the state is locked";

/// Terraform's lock info, as printed (every value untrusted: shown sanitised).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockInfo {
    /// What `force-unlock` takes.
    pub id: String,
    /// `user@host` of whoever took it.
    pub who: String,
    /// `OperationTypeApply`, `taint`…
    pub operation: String,
    /// When it was taken, as Terraform wrote it.
    pub created: String,
    #[serde(default)]
    pub path: String,
    #[serde(default)]
    pub version: String,
}

impl LockInfo {
    /// The last `Lock Info:` block in `lines` (Terraform's framed, coloured error
    /// output as a run's log holds it), if it names a lock id.
    ///
    /// Some backends (http) print the lock info of the request that failed, and name
    /// the holder's lock only in the error message (`already locked: ID=…`): then the
    /// holder is that id, and who it is is not known.
    pub fn find<'a>(lines: impl IntoIterator<Item = &'a str>) -> Option<LockInfo> {
        let (block, named) = Self::block_and_named(lines);
        match (block, named) {
            (Some(b), Some(id)) if b.id != id => Some(LockInfo {
                id,
                ..Default::default()
            }),
            (None, Some(id)) => Some(LockInfo {
                id,
                ..Default::default()
            }),
            (b, _) => b,
        }
    }

    /// The last lock info block, and the id an error message names (`ID=…`).
    fn block_and_named<'a>(
        lines: impl IntoIterator<Item = &'a str>,
    ) -> (Option<LockInfo>, Option<String>) {
        let mut found = None;
        let mut named = None;
        let mut current: Option<LockInfo> = None;
        for raw in lines {
            let plain = sanitize(raw, false);
            let line = plain.trim_start_matches(['│', '║', '|', ' ']).trim_end();
            if current.is_none()
                && let Some((_, rest)) = line.split_once("ID=")
            {
                let id: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || "-_.:/".contains(*c))
                    .collect();
                if !id.is_empty() {
                    named = Some(id);
                }
            }
            if line.trim() == "Lock Info:" {
                current = Some(LockInfo::default());
                continue;
            }
            let Some(info) = current.as_mut() else {
                continue;
            };
            let Some((key, value)) = line.trim().split_once(':') else {
                // The block ends at the first line that is not `Key: value`.
                if let Some(done) = current.take().filter(|i| !i.id.is_empty()) {
                    found = Some(done);
                }
                continue;
            };
            let value = value.trim().to_string();
            match key.trim() {
                "ID" => info.id = value,
                "Who" => info.who = value,
                "Operation" => info.operation = value,
                "Created" => info.created = value,
                "Path" => info.path = value,
                "Version" => info.version = value,
                "Info" => {}
                _ => {
                    if let Some(done) = current.take().filter(|i| !i.id.is_empty()) {
                        found = Some(done);
                    }
                }
            }
        }
        (current.filter(|i| !i.id.is_empty()).or(found), named)
    }

    /// `held by root@vm (OperationTypeApply since 2026-12-02 07:23:42 UTC), lock id X`.
    pub fn summary(&self) -> String {
        if self.who.is_empty() && self.operation.is_empty() {
            return format!(
                "held by someone the backend does not name, lock id {}",
                self.id
            );
        }
        let when = self
            .created
            .split('.')
            .next()
            .unwrap_or(&self.created)
            .to_string();
        let tz = self.created.rsplit(' ').next().unwrap_or("");
        let when = if tz.is_empty() || when.ends_with(tz) {
            when
        } else {
            format!("{when} {tz}")
        };
        format!(
            "held by {} ({} since {}), lock id {}",
            or_unknown(&self.who),
            or_unknown(&self.operation),
            or_unknown(&when),
            self.id
        )
    }
}

fn or_unknown(s: &str) -> &str {
    if s.trim().is_empty() { "?" } else { s }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What terraform 1.11 prints (coloured, framed) when an http backend's lock is held.
    const FRAMED: &str = "\u{1b}[31m╷\u{1b}[0m\u{1b}[0m
\u{1b}[31m│\u{1b}[0m \u{1b}[0m\u{1b}[1m\u{1b}[31mError: \u{1b}[0m\u{1b}[0m\u{1b}[1mError acquiring the state lock\u{1b}[0m
\u{1b}[31m│\u{1b}[0m \u{1b}[0m
\u{1b}[31m│\u{1b}[0m \u{1b}[0m\u{1b}[0mError message: HTTP remote state already locked: ID=4732fd94-7020
\u{1b}[31m│\u{1b}[0m \u{1b}[0mLock Info:
\u{1b}[31m│\u{1b}[0m \u{1b}[0m  ID:        4732fd94-7020
\u{1b}[31m│\u{1b}[0m \u{1b}[0m  Path:      
\u{1b}[31m│\u{1b}[0m \u{1b}[0m  Operation: OperationTypeApply
\u{1b}[31m│\u{1b}[0m \u{1b}[0m  Who:       alice@ops1
\u{1b}[31m│\u{1b}[0m \u{1b}[0m  Version:   1.11.4
\u{1b}[31m│\u{1b}[0m \u{1b}[0m  Created:   2026-12-02 07:23:42.729492874 +0000 UTC
\u{1b}[31m│\u{1b}[0m \u{1b}[0m  Info:      
\u{1b}[31m│\u{1b}[0m \u{1b}[0m
\u{1b}[31m│\u{1b}[0m \u{1b}[0mTerraform acquires a state lock to protect the state from being written";

    #[test]
    fn reads_the_framed_block() {
        let info = LockInfo::find(FRAMED.lines()).unwrap();
        assert_eq!(info.id, "4732fd94-7020");
        assert_eq!(info.who, "alice@ops1");
        assert_eq!(info.operation, "OperationTypeApply");
        assert_eq!(info.created, "2026-12-02 07:23:42.729492874 +0000 UTC");
        assert_eq!(
            info.summary(),
            "held by alice@ops1 (OperationTypeApply since 2026-12-02 07:23:42 UTC), lock id 4732fd94-7020"
        );
    }

    #[test]
    fn an_http_lock_is_the_id_the_message_names() {
        let text = "│ Error message: HTTP remote state already locked:\n│ ID=f000-a53a\n│ Lock Info:\n│   ID:        b871-c447\n│   Operation: OperationTypePlan\n│   Who:       me@here\n│\n";
        let info = LockInfo::find(text.lines()).unwrap();
        assert_eq!(info.id, "f000-a53a");
        assert_eq!(info.who, "");
        assert_eq!(
            info.summary(),
            "held by someone the backend does not name, lock id f000-a53a"
        );
    }

    #[test]
    fn plain_output_and_nothing() {
        let plain = "Lock Info:\n  ID: abc\n  Who: bob@h\n  Operation: taint\n  Created: x\n";
        assert_eq!(LockInfo::find(plain.lines()).unwrap().who, "bob@h");
        assert_eq!(LockInfo::find("no lock here\nID: 1".lines()), None);
        assert_eq!(LockInfo::find("Lock Info:\n\n".lines()), None);
    }

    #[test]
    fn escape_sequences_in_values_are_neutralised() {
        let text = "Lock Info:\n  ID: abc\n  Who: \u{1b}]0;owned\u{7}eve@h\n";
        let info = LockInfo::find(text.lines()).unwrap();
        assert!(!info.who.contains('\u{1b}'), "{:?}", info.who);
    }
}
