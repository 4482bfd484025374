//! Outputs between units (like GitHub Actions' `GITHUB_OUTPUT`): a unit writes
//! `key=value` lines to the file named by `$PIPEDECK_OUTPUT`; the units after it get
//! them as `PIPEDECK_OUT_<STEP>_<KEY>`, and the run detail shows them (masked).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The variable naming a unit's output file.
pub const VAR: &str = "PIPEDECK_OUTPUT";
/// The most a unit's output file may hold.
pub const LIMIT: u64 = 64 * 1024;

/// Why a unit's outputs could not be taken.
#[derive(Debug, thiserror::Error, PartialEq)]
pub(crate) enum OutputError {
    #[error(
        "$PIPEDECK_OUTPUT holds {size} bytes, over the limit of {LIMIT}: write large data to a file in the workspace and pass its path as the output"
    )]
    TooLarge { size: u64 },
    #[error(
        "$PIPEDECK_OUTPUT line {line}: {what} (write one `key=value` a line; keys are letters, digits and _)"
    )]
    Line { line: usize, what: String },
    #[error("cannot read $PIPEDECK_OUTPUT ({path}): {error}")]
    Io { path: PathBuf, error: String },
}

/// Where run `run_id`'s step `step_id` writes its outputs.
pub(crate) fn file_for(data_dir: &Path, run_id: i64, step_id: i64) -> PathBuf {
    data_dir
        .join("outputs")
        .join(run_id.to_string())
        .join(step_id.to_string())
}

/// The outputs a unit wrote; `None` when it wrote no file (most units: one failed
/// open is all they cost, on the path between one step and the next).
pub(crate) fn read(path: &Path) -> Result<Option<BTreeMap<String, String>>, OutputError> {
    use std::io::Read;
    let io = |e: std::io::Error| OutputError::Io {
        path: path.to_path_buf(),
        error: e.to_string(),
    };
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(e)),
    };
    let size = file.metadata().map_err(io)?.len();
    if size > LIMIT {
        return Err(OutputError::TooLarge { size });
    }
    let mut bytes = Vec::new();
    file.take(LIMIT + 1).read_to_end(&mut bytes).map_err(io)?;
    if bytes.len() as u64 > LIMIT {
        return Err(OutputError::TooLarge {
            size: bytes.len() as u64,
        });
    }
    parse(&bytes).map(Some)
}

/// Parses `key=value` lines; blank lines are skipped, a later key wins.
pub(crate) fn parse(bytes: &[u8]) -> Result<BTreeMap<String, String>, OutputError> {
    let mut out = BTreeMap::new();
    for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let bad = |what: &str| OutputError::Line {
            line: i + 1,
            what: what.to_string(),
        };
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if raw.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let line = std::str::from_utf8(raw).map_err(|_| bad("not UTF-8"))?;
        if line.contains('\0') {
            return Err(bad("holds a NUL byte"));
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(bad("no `=`"));
        };
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(bad(&format!("`{key}` is not a key")));
        }
        out.insert(key.to_string(), value.to_string());
    }
    Ok(out)
}

/// `dev.smoke` -> `DEV_SMOKE`: what a name becomes in a variable.
pub(crate) fn upper(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// The variable a later unit reads output `key` of step `step` (its row name) from.
pub(crate) fn var_name(step: &str, key: &str) -> String {
    format!("PIPEDECK_OUT_{}_{}", upper(step), upper(key))
}

/// What a chained run's steps get from the runs that started it:
/// `PIPEDECK_UPSTREAM_RUN_IDS` (space-separated), and per upstream service
/// `PIPEDECK_UPSTREAM_<SERVICE>_RUN_ID`, `_COMMIT`, `_BRANCH` and
/// `_OUT_<STEP>_<KEY>` for each output its steps wrote.
pub(crate) fn upstream_vars(upstream: &[crate::domain::chain::Upstream]) -> Vec<(String, String)> {
    if upstream.is_empty() {
        return Vec::new();
    }
    let ids: Vec<String> = upstream.iter().map(|u| u.run_id.to_string()).collect();
    let mut out = vec![("PIPEDECK_UPSTREAM_RUN_IDS".to_string(), ids.join(" "))];
    for u in upstream {
        let p = format!("PIPEDECK_UPSTREAM_{}", upper(&u.service));
        out.push((format!("{p}_RUN_ID"), u.run_id.to_string()));
        out.push((format!("{p}_COMMIT"), u.commit_sha.clone()));
        out.push((format!("{p}_BRANCH"), u.branch.clone()));
        for (step, values) in &u.outputs {
            for (k, v) in values {
                out.push((format!("{p}_OUT_{}_{}", upper(step), upper(k)), v.clone()));
            }
        }
    }
    out
}

/// Which units come before which, by row, and what those before produced: a unit
/// gets the outputs of every unit it (transitively) needs, never of one running
/// beside it.
#[derive(Default)]
pub(crate) struct Wiring {
    /// Per row, its name (the `<STEP>` of the variables).
    names: Vec<String>,
    /// Per row, the rows its unit needs directly.
    upstream: Vec<Vec<usize>>,
    /// Per row that produced outputs, their values (unmasked).
    produced: std::sync::Mutex<std::collections::HashMap<usize, BTreeMap<String, String>>>,
}

impl Wiring {
    pub fn new(names: Vec<String>, upstream: Vec<Vec<usize>>) -> Self {
        Self {
            names,
            upstream,
            produced: Default::default(),
        }
    }

    fn produced(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<usize, BTreeMap<String, String>>> {
        // A panic while holding it leaves a map that is still whole.
        self.produced.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Row `row` produced `values`.
    pub fn record(&self, row: usize, values: BTreeMap<String, String>) {
        self.produced().insert(row, values);
    }

    /// The variables row `row` gets from the rows before it.
    pub fn inputs(&self, row: usize) -> Vec<(String, String)> {
        let produced = self.produced();
        if produced.is_empty() {
            return Vec::new();
        }
        let mut seen = vec![false; self.upstream.len()];
        let mut todo: Vec<usize> = self.upstream.get(row).cloned().unwrap_or_default();
        let mut out = Vec::new();
        while let Some(r) = todo.pop() {
            if std::mem::replace(&mut seen[r], true) {
                continue;
            }
            if let Some(values) = produced.get(&r) {
                let name = self.names.get(r).map_or("", String::as_str);
                out.extend(values.iter().map(|(k, v)| (var_name(name, k), v.clone())));
            }
            todo.extend(self.upstream[r].iter().copied());
        }
        out.sort();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_become_outputs() {
        let got = parse(b"version=1.2.3\n\nurl=http://x/?a=b\r\nversion=1.2.4\n").unwrap();
        assert_eq!(got["version"], "1.2.4");
        assert_eq!(got["url"], "http://x/?a=b");
        assert_eq!(
            parse(b"ok=1\nno equals\n").unwrap_err(),
            OutputError::Line {
                line: 2,
                what: "no `=`".into()
            }
        );
        assert!(parse(b"a-b=1").is_err());
        assert!(parse(b"a=\xff").is_err());
        assert_eq!(var_name("dev.smoke", "url"), "PIPEDECK_OUT_DEV_SMOKE_URL");
    }

    #[test]
    fn a_unit_gets_what_its_ancestors_produced_only() {
        // a -> b -> d, c -> d, e alone.
        let names = ["a", "b", "c", "d", "e"].map(String::from).to_vec();
        let w = Wiring::new(names, vec![vec![], vec![0], vec![], vec![1, 2], vec![]]);
        assert!(w.inputs(3).is_empty());
        w.record(0, BTreeMap::from([("v".into(), "1".into())]));
        w.record(2, BTreeMap::from([("w".into(), "2".into())]));
        let v = |k: &str, x: &str| (k.to_string(), x.to_string());
        assert_eq!(
            w.inputs(3),
            [v("PIPEDECK_OUT_A_V", "1"), v("PIPEDECK_OUT_C_W", "2")]
        );
        assert_eq!(w.inputs(1), [v("PIPEDECK_OUT_A_V", "1")]);
        assert!(w.inputs(4).is_empty());
    }

    #[test]
    fn a_file_past_the_limit_is_refused_and_a_missing_one_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out");
        assert!(read(&p).unwrap().is_none());
        std::fs::write(&p, vec![b'a'; LIMIT as usize + 1]).unwrap();
        let e = read(&p).unwrap_err();
        assert_eq!(e, OutputError::TooLarge { size: LIMIT + 1 });
        assert!(e.to_string().contains("over the limit of 65536"), "{e}");
    }
}
