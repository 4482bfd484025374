//! `w` in the run detail: a range of a step's log written to a file, to share. The
//! lines are read from the store in chunks (any range, in bounded memory), shown as
//! a terminal would show them (carriage returns applied) and made inert: no escape
//! sequence, control character or bidi override reaches the file.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::api::EngineClient;
use crate::domain::ansi::inert;
use crate::tui::widgets::log_pane::after_carriage_returns;

/// Lines read from the engine at a time.
const CHUNK: usize = 5000;

/// A range of log lines, 0-based, `to` exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineRange {
    pub from: u64,
    pub to: u64,
}

impl LineRange {
    pub fn len(&self) -> u64 {
        self.to - self.from
    }

    pub fn is_empty(&self) -> bool {
        self.to == self.from
    }
}

/// Why what the operator typed names no lines to write.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    #[error(
        "`{input}` is not a line range: write FROM-TO (e.g. 1-{total}), one line number, or +COUNT"
    )]
    NotARange { input: String, total: u64 },
    #[error("no lines there: the log has {total} line{}", if *total == 1 { "" } else { "s" })]
    NoLines { total: u64 },
}

/// What the operator typed, as lines of a log of `total` lines: `120-180` (1-based,
/// both ends included), `120` (one line), `+50` (50 lines from line `top`, the
/// pane's first, 0-based), or empty (the lines the pane shows: `top` and `rows` after).
pub fn parse_range(input: &str, top: u64, rows: u64, total: u64) -> Result<LineRange, RangeError> {
    let bad = || RangeError::NotARange {
        input: input.to_string(),
        total,
    };
    let num = |s: &str| s.trim().parse::<u64>().map_err(|_| bad());
    let t = input.trim();
    let (from, to) = if t.is_empty() {
        (top, top.saturating_add(rows))
    } else if let Some(n) = t.strip_prefix('+') {
        (top, top.saturating_add(num(n)?))
    } else if let Some((a, b)) = t.split_once('-') {
        let (a, b) = (num(a)?, num(b)?);
        if a == 0 || b < a {
            return Err(bad());
        }
        (a - 1, b)
    } else {
        let a = num(t)?;
        if a == 0 {
            return Err(bad());
        }
        (a - 1, a)
    };
    let to = to.min(total);
    if from >= to {
        return Err(RangeError::NoLines { total });
    }
    Ok(LineRange { from, to })
}

/// `run12-build-test-L100-180.log`: the run, the step and the lines (1-based).
pub fn file_name(run: i64, step_path: &str, r: LineRange) -> String {
    let step: String = step_path
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("run{run}-{step}-L{}-{}.log", r.from + 1, r.to)
}

/// Where exported logs go: the directory the dashboard was started in, or the temp
/// dir when that one is not writable.
pub fn export_dir() -> PathBuf {
    let writable = |d: &Path| {
        let probe = d.join(format!(".pipedeck-probe-{}", std::process::id()));
        let ok = std::fs::File::create(&probe).is_ok();
        let _ = std::fs::remove_file(&probe);
        ok
    };
    match std::env::current_dir() {
        Ok(d) if writable(&d) => d,
        _ => std::env::temp_dir(),
    }
}

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read the log: {0}")]
    Read(#[from] crate::engine::EngineError),
}

/// Writes lines `r` of step `step` of run `run` to `path`, inert; returns how many.
pub async fn write_range<C: EngineClient>(
    c: &C,
    run: i64,
    step: i64,
    r: LineRange,
    path: &Path,
) -> Result<u64, ExportError> {
    let werr = |source| ExportError::Write {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::create(path).map_err(werr)?;
    let mut out = std::io::BufWriter::new(file);
    let mut at = r.from;
    let mut written = 0u64;
    while at < r.to {
        let want = (r.to - at).min(CHUNK as u64) as usize;
        let lines = c.logs(run, step, at, want).await?;
        if lines.is_empty() {
            break; // the log is shorter than it was
        }
        for l in &lines {
            writeln!(out, "{}", inert(&after_carriage_returns(&l.text))).map_err(werr)?;
        }
        written += lines.len() as u64;
        at += lines.len() as u64;
    }
    out.flush().map_err(werr)?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_as_typed() {
        let r = |s: &str| parse_range(s, 100, 20, 1000);
        assert_eq!(r(""), Ok(LineRange { from: 100, to: 120 }));
        assert_eq!(r("+5"), Ok(LineRange { from: 100, to: 105 }));
        assert_eq!(r(" 3 - 7 "), Ok(LineRange { from: 2, to: 7 }));
        assert_eq!(r("9"), Ok(LineRange { from: 8, to: 9 }));
        assert_eq!(
            r("990-2000"),
            Ok(LineRange {
                from: 989,
                to: 1000
            })
        );
        assert!(
            r("7-3")
                .unwrap_err()
                .to_string()
                .contains("not a line range")
        );
        assert!(r("0").is_err() && r("x").is_err() && r("1-").is_err());
        assert_eq!(r("1001"), Err(RangeError::NoLines { total: 1000 }));
        assert_eq!(
            r("1001").unwrap_err().to_string(),
            "no lines there: the log has 1000 lines"
        );
    }

    #[test]
    fn file_names_say_what_they_hold() {
        let r = LineRange { from: 99, to: 180 };
        assert_eq!(
            file_name(12, "build/test web", r),
            "run12-build-test-web-L100-180.log"
        );
        assert_eq!(file_name(3, "../x/y", r), "run3-..-x-y-L100-180.log");
    }
}
