//! A resource's state dir: its inputs going in (with upstream outputs substituted),
//! its outputs coming out.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::config::infra::{Resource, references};
use crate::engine::preflight;

/// The names of the outputs Terraform marks sensitive (a JSON array), kept in the
/// resource's state dir: their values are stored and shown as `***`.
pub(super) const SENSITIVE: &str = "outputs.sensitive.json";

/// `outputs` as they may be stored and shown: the sensitive ones (as the state dir
/// `dir` lists them) as `***`.
pub(super) fn shown(dir: &Path, mut outputs: Value) -> Value {
    if outputs.as_object().is_some_and(|m| m.is_empty()) {
        return outputs; // nothing to hide, nothing to look up
    }
    let names: Vec<String> = std::fs::read_to_string(dir.join(SENSITIVE))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    if let Value::Object(m) = &mut outputs {
        for n in names {
            if let Some(v) = m.get_mut(&n) {
                *v = Value::String("***".into());
            }
        }
    }
    outputs
}

/// The outputs a resource last applied, kept in its state dir.
pub(super) const LAST_OUTPUTS: &str = "outputs.json";
/// Where `apply` writes its outputs (`$PIPEDECK_OUTPUTS`).
pub(super) const NEXT_OUTPUTS: &str = "outputs.next.json";
/// The inputs, as JSON (`$PIPEDECK_INPUTS`).
pub(super) const INPUTS: &str = "inputs.json";

/// A `${id.outputs.key}` reference to an output that resource `id` does not have.
#[derive(Debug, thiserror::Error)]
#[error("`${{{id}.outputs.{key}}}`: resource {id} has no output `{key}`")]
pub(super) struct NoOutput {
    id: String,
    key: String,
}

/// An input of a resource that could not be substituted.
#[derive(Debug, thiserror::Error)]
#[error("input {input}: {source}")]
pub(super) struct InputError {
    input: String,
    source: NoOutput,
}

/// Why an outputs file could not be read.
#[derive(Debug, thiserror::Error)]
pub(super) enum OutputsError {
    #[error("cannot read the outputs file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the outputs file must hold a JSON object")]
    NotAnObject,
    #[error("the outputs file is not JSON: {0}")]
    NotJson(#[source] serde_json::Error),
}

/// Where an infra project's resources keep their state dirs.
pub(super) fn project_dir(data_dir: &Path, project: &str) -> PathBuf {
    data_dir.join("infra").join(project)
}

/// Where a resource's state lives across runs (the command driver's working dir).
pub(crate) fn state_dir(data_dir: &Path, project: &str, resource: &str) -> PathBuf {
    project_dir(data_dir, project).join(resource)
}

/// Replaces `${id.outputs.key}` references with upstream outputs. A string that is one
/// whole reference takes the output's JSON value; otherwise values are spliced as text.
pub(super) fn substitute(v: &Value, outputs: &HashMap<String, Value>) -> Result<Value, NoOutput> {
    Ok(match v {
        Value::String(s) => {
            let refs = references(s);
            if refs.is_empty() {
                return Ok(v.clone());
            }
            let lookup = |id: &str, key: &str| -> Result<Value, NoOutput> {
                outputs
                    .get(id)
                    .and_then(|o| o.get(key))
                    .cloned()
                    .ok_or_else(|| NoOutput {
                        id: id.to_string(),
                        key: key.to_string(),
                    })
            };
            if let [(id, key)] = refs.as_slice()
                && s == &format!("${{{id}.outputs.{key}}}")
            {
                return lookup(id, key);
            }
            let mut out = s.clone();
            for (id, key) in refs {
                let val = match lookup(&id, &key)? {
                    Value::String(t) => t,
                    other => other.to_string(),
                };
                out = out.replace(&format!("${{{id}.outputs.{key}}}"), &val);
            }
            Value::String(out)
        }
        Value::Array(a) => Value::Array(
            a.iter()
                .map(|x| substitute(x, outputs))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, x)| Ok((k.clone(), substitute(x, outputs)?)))
                .collect::<Result<_, NoOutput>>()?,
        ),
        other => other.clone(),
    })
}

/// Every input of a resource, substituted.
pub(super) fn substitute_all(
    inputs: &BTreeMap<String, Value>,
    outputs: &HashMap<String, Value>,
) -> Result<serde_json::Map<String, Value>, InputError> {
    inputs
        .iter()
        .map(|(k, v)| {
            let v = substitute(v, outputs).map_err(|source| InputError {
                input: k.clone(),
                source,
            })?;
            Ok((k.clone(), v))
        })
        .collect()
}

/// `PIPEDECK_INPUT_` + the key, upper-cased, anything else as `_`.
pub(super) fn env_name(key: &str) -> String {
    crate::engine::executor::outputs::upper(key)
}

/// An outputs file: a JSON object, or none (an empty object).
pub(super) fn read_outputs(path: &Path) -> Result<Value, OutputsError> {
    Ok(read_outputs_if_any(path)?.unwrap_or_else(|| Value::Object(Default::default())))
}

/// The outputs in `path`; `None` when there is no such file.
pub(super) fn read_outputs_if_any(path: &Path) -> Result<Option<Value>, OutputsError> {
    match std::fs::read_to_string(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(OutputsError::Read {
            path: path.to_path_buf(),
            source,
        }),
        Ok(text) => match serde_json::from_str::<Value>(&text) {
            Ok(v @ Value::Object(_)) => Ok(Some(v)),
            Ok(_) => Err(OutputsError::NotAnObject),
            Err(e) => Err(OutputsError::NotJson(e)),
        },
    }
}

/// The outputs a resource last applied, if it has any.
pub(super) fn last_outputs(state_dir: &Path) -> Option<Value> {
    read_outputs(&state_dir.join(LAST_OUTPUTS))
        .inspect_err(|e| {
            tracing::warn!(
                "ignoring the last applied outputs in {}: {e}",
                state_dir.display()
            );
        })
        .ok()
        .filter(|o| o.as_object().is_some_and(|m| !m.is_empty()))
}

/// Removes a file that may not exist; any other failure is logged.
pub(super) fn remove(path: &Path) {
    if let Err(e) = std::fs::remove_file(path)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!("cannot remove {}: {e}", path.display());
    }
}

/// Why a job's state dir could not be made ready.
pub(super) enum NotReady {
    /// A preflight check failed: the whole report, and the failure.
    Preflight(Vec<preflight::Check>, String),
    Io(String),
}

/// Runs preflight, makes the state dir and writes the inputs into it (only when their
/// content changed: a redeploy with the same inputs touches nothing). Returns whether
/// the state dir is fresh: no job has run in it (every job writes its inputs first),
/// so nothing in it needs to be replaced or removed.
pub(super) fn ready_state(r: &Resource, state_dir: &Path, inputs: &str) -> Result<bool, NotReady> {
    let file = state_dir.join(INPUTS);
    // A resource's first job makes its state dir: then nothing in it needs looking up
    // (three path lookups fewer a node; the 10,000-node infra benchmark's engine
    // process used 1-4% less CPU in each of 3 interleaved pairs, data dir on tmpfs).
    // Otherwise preflight's state check makes it or says why not.
    let made = make_dir(state_dir);
    let fresh = made || std::fs::symlink_metadata(&file).is_err();
    let known = if made {
        preflight::StateDir::JustMade
    } else {
        preflight::StateDir::Check
    };
    let checks = preflight::checks(r, state_dir, false, known);
    if let Some(why) = preflight::failures(&checks) {
        return Err(NotReady::Preflight(checks, why));
    }
    if !fresh && std::fs::read(&file).is_ok_and(|old| old == inputs.as_bytes()) {
        return Ok(false);
    }
    std::fs::write(&file, inputs)
        .map_err(|e| NotReady::Io(format!("cannot write {}: {e}", file.display())))?;
    Ok(fresh)
}

/// Whether this call made `dir` (and its parents where missing). False when it was
/// there, or could not be made: preflight's state check then says why.
fn make_dir(dir: &Path) -> bool {
    match std::fs::create_dir(dir) {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => dir.parent().is_some_and(|p| {
            std::fs::create_dir_all(p).is_ok() && std::fs::create_dir(dir).is_ok()
        }),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_output_names_the_input() {
        let outs = HashMap::from([("vpc".to_string(), serde_json::json!({"id": "vpc-1"}))]);
        let inputs = BTreeMap::from([(
            "subnet".to_string(),
            serde_json::json!(["${vpc.outputs.cidr}"]),
        )]);
        let e = substitute_all(&inputs, &outs).unwrap_err();
        assert_eq!(
            e.to_string(),
            "input subnet: `${vpc.outputs.cidr}`: resource vpc has no output `cidr`"
        );
    }

    #[test]
    fn a_state_dir_is_fresh_until_a_job_wrote_its_inputs() {
        let dir = tempfile::tempdir().unwrap();
        let r = crate::engine::preflight::tests::resource("command", None);
        let state = dir.path().join("infra/p/db");
        // Made now, parents and all: fresh, with the inputs written.
        assert!(ready_state(&r, &state, "{}").unwrap_or_else(|_| panic!("not ready")));
        assert_eq!(std::fs::read_to_string(state.join(INPUTS)).unwrap(), "{}");
        // There, with inputs: not fresh, whether the inputs changed or not.
        assert!(!ready_state(&r, &state, "{}").unwrap_or_else(|_| panic!("not ready")));
        assert!(!ready_state(&r, &state, r#"{"a":1}"#).unwrap_or_else(|_| panic!("not ready")));
        assert_eq!(
            std::fs::read_to_string(state.join(INPUTS)).unwrap(),
            r#"{"a":1}"#
        );
        // There without inputs (a job never ran in it): fresh.
        std::fs::remove_file(state.join(INPUTS)).unwrap();
        assert!(ready_state(&r, &state, "{}").unwrap_or_else(|_| panic!("not ready")));
    }

    #[test]
    fn outputs_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(NEXT_OUTPUTS);
        assert_eq!(read_outputs(&path).unwrap(), serde_json::json!({}));
        std::fs::write(&path, "[1]").unwrap();
        assert_eq!(
            read_outputs(&path).unwrap_err().to_string(),
            "the outputs file must hold a JSON object"
        );
        std::fs::write(&path, "{").unwrap();
        let e = read_outputs(&path).unwrap_err().to_string();
        assert!(e.starts_with("the outputs file is not JSON: "), "{e}");
        let e = read_outputs(dir.path()).unwrap_err().to_string();
        let head = format!("cannot read the outputs file {}: ", dir.path().display());
        assert!(e.starts_with(&head), "{e}");
    }

    #[test]
    fn substitution_keeps_types_for_whole_references() {
        let mut outs = HashMap::new();
        outs.insert(
            "vpc".to_string(),
            serde_json::json!({"id": "vpc-1", "azs": 3}),
        );
        let v = substitute(&serde_json::json!("${vpc.outputs.azs}"), &outs).unwrap();
        assert_eq!(v, serde_json::json!(3));
        let v = substitute(
            &serde_json::json!("in ${vpc.outputs.id} x${vpc.outputs.azs}"),
            &outs,
        )
        .unwrap();
        assert_eq!(v, serde_json::json!("in vpc-1 x3"));
        assert!(substitute(&serde_json::json!("${vpc.outputs.nope}"), &outs).is_err());
    }
}
