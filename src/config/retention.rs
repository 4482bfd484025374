//! `[retention]`: how much history, and how much log, the engine keeps; and the
//! free space it keeps for new runs.

use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::schema::{LogAging, RetentionFile};
use super::validate::Ctx;

/// How much history the engine keeps: a run stays while it is among the last
/// `keep_runs` of its service or younger than `keep_days` (neither set: all stay).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retention {
    pub keep_runs: Option<u32>,
    pub keep_days: Option<u32>,
    /// Most bytes of log one step keeps.
    #[serde(default)]
    pub max_log_bytes: Option<u64>,
    /// What becomes of the logs of runs ended `after_days` ago.
    #[serde(default)]
    pub old_logs: Option<OldLogs>,
    /// Free bytes the data dir's file system must keep for new runs to start.
    #[serde(default)]
    pub min_free: Option<u64>,
}

/// `compress` and `compress_after_days` in `[retention]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OldLogs {
    pub action: LogAging,
    pub after_days: u32,
}

impl Ctx<'_> {
    /// A size (`1GiB`) for `key`, at least `min` bytes; an error when it is not one.
    pub fn bytes(&mut self, value: &Option<Spanned<String>>, key: &str, min: u64) -> Option<u64> {
        let v = value.as_ref()?;
        let text = v.get_ref();
        let hint = format!(
            "write a whole number with a unit (B, KiB, MiB, GiB, TiB, or KB, MB, GB, TB) of at least {}",
            crate::domain::bytes::format_bytes(min)
        );
        match crate::domain::bytes::parse_bytes(text) {
            Some(n) if n >= min => Some(n),
            Some(_) => {
                self.err(v.span(), format!("{key} = \"{text}\" is too small"), &hint);
                None
            }
            None => {
                self.err(v.span(), format!("`{text}` is not a size"), &hint);
                None
            }
        }
    }
}

/// `[retention]`.
pub(super) fn resolve(cx: &mut Ctx<'_>, f: &RetentionFile) -> Retention {
    let old_logs = f.compress.as_ref().and_then(|c| {
        let action = match c.get_ref().as_str() {
            "zstd" => LogAging::Zstd,
            "drop" => LogAging::Drop,
            other => {
                cx.err(
                    c.span(),
                    format!("compress = \"{other}\" is not a way to age logs"),
                    "write compress = \"zstd\" (compress them) or \"drop\" (replace them with a note)",
                );
                return None;
            }
        };
        let after_days = cx
            .count(&f.compress_after_days, "compress_after_days", 36_500)
            .unwrap_or(7);
        Some(OldLogs { action, after_days })
    });
    if f.compress.is_none()
        && let Some(d) = &f.compress_after_days
    {
        cx.err(
            d.span(),
            "compress_after_days is set but compress is not".to_string(),
            "add compress = \"zstd\" (or \"drop\") to [retention], or remove compress_after_days",
        );
    }
    Retention {
        keep_runs: cx.count(&f.keep_runs, "keep_runs", 1_000_000),
        keep_days: cx.count(&f.keep_days, "keep_days", 36_500),
        max_log_bytes: cx.bytes(&f.max_log_bytes, "max_log_bytes", 4096),
        old_logs,
        min_free: cx.bytes(&f.min_free, "min_free", 1),
    }
}
