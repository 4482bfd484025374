//! A resource's backend as Terraform takes it: an override file naming the backend
//! type (replacing the module's own backend block, if any) and a `-backend-config`
//! file with its settings, secrets read now, and what makes the state the resource's
//! own.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::config::SecretError;
use crate::config::backend::{Backend, BackendKind};

/// The override file written into the root module's copy.
pub const OVERRIDE_FILE: &str = "pipedeck_backend_override.tf";
/// The `-backend-config` file, in the state dir (mode 0600: it may hold secrets).
pub const CONFIG_FILE: &str = "pipedeck.tfbackend";
/// The local backend's state file, in the state dir.
pub const LOCAL_STATE: &str = "terraform.tfstate";

/// Why the backend could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("backend: {0}")]
    Secret(#[from] SecretError),
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The workspace holding the resource's state, for backends that have workspaces.
pub fn workspace(backend: Option<&Backend>, project: &str, resource: &str) -> Option<String> {
    backend
        .filter(|b| b.kind.uses_workspaces())
        .map(|_| format!("{project}.{resource}"))
}

/// An HCL string literal.
fn hcl_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    // Terraform's template sequences, kept literal.
    out.replace("${", "$${").replace("%{", "%%{") + "\""
}

fn hcl_value(v: &Value) -> String {
    match v {
        Value::String(s) => hcl_string(s),
        other => other.to_string(),
    }
}

/// The settings file's text (secrets included) for resource `resource` of `project`.
pub fn config_text(
    backend: Option<&Backend>,
    state_dir: &Path,
    project: &str,
    resource: &str,
) -> Result<String, BackendError> {
    let mut lines = Vec::new();
    let Some(b) = backend.filter(|b| b.kind != BackendKind::Local) else {
        let path = state_dir.join(LOCAL_STATE).display().to_string();
        return Ok(format!("path = {}\n", hcl_string(&path)));
    };
    let mut settings: Vec<(String, Value)> = b
        .config
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for s in &b.secrets {
        settings.push((s.name.clone(), Value::String(s.resolve()?)));
    }
    if b.kind == BackendKind::Http {
        // No workspaces: each resource's state at its own address.
        for (k, v) in &mut settings {
            if ["address", "lock_address", "unlock_address"].contains(&k.as_str())
                && let Value::String(a) = v
            {
                *a = format!("{}/{project}/{resource}", a.trim_end_matches('/'));
            }
        }
    }
    for (k, v) in settings {
        lines.push(format!("{k} = {}", hcl_value(&v)));
    }
    Ok(lines.join("\n") + "\n")
}

/// The override file's text.
pub fn override_text(backend: Option<&Backend>) -> String {
    let kind = backend.map_or(BackendKind::Local, |b| b.kind);
    format!(
        "# Written by pipedeck: the state backend of this resource.\nterraform {{\n  backend \"{}\" {{}}\n}}\n",
        kind.as_str()
    )
}

/// Writes the override file into `work` and the settings file into `state_dir`.
pub fn write(
    backend: Option<&Backend>,
    work: &Path,
    state_dir: &Path,
    project: &str,
    resource: &str,
) -> Result<PathBuf, BackendError> {
    let over = work.join(OVERRIDE_FILE);
    std::fs::write(&over, override_text(backend))
        .map_err(|source| BackendError::Write { path: over, source })?;
    let text = config_text(backend, state_dir, project, resource)?;
    let path = state_dir.join(CONFIG_FILE);
    let written = (|| {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)?;
        f.write_all(text.as_bytes())
    })();
    written.map_err(|source| BackendError::Write {
        path: path.clone(),
        source,
    })?;
    Ok(path)
}

/// The secret values a backend holds (to mask them in logs); unreadable ones are
/// reported when the job starts.
pub fn secret_values(backend: Option<&Backend>) -> Vec<String> {
    backend
        .into_iter()
        .flat_map(|b| &b.secrets)
        .filter_map(|s| s.resolve().ok())
        .filter(|v| !v.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{SecretRef, SecretSource};
    use std::collections::BTreeMap;

    fn backend(kind: BackendKind, config: &[(&str, Value)]) -> Backend {
        Backend {
            kind,
            config: config
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect::<BTreeMap<_, _>>(),
            secrets: vec![],
            lock_timeout_ms: None,
        }
    }

    #[test]
    fn local_state_is_a_file_in_the_state_dir() {
        let t = config_text(None, Path::new("/d/infra/p/r"), "p", "r").unwrap();
        assert_eq!(t, "path = \"/d/infra/p/r/terraform.tfstate\"\n");
        assert!(override_text(None).contains("backend \"local\" {}"));
        assert_eq!(workspace(None, "p", "r"), None);
    }

    #[test]
    fn pg_settings_and_secrets_and_a_workspace_per_resource() {
        let mut b = backend(
            BackendKind::Pg,
            &[("schema_name", Value::from("tf \"x\" ${y}"))],
        );
        let tmp = tempfile::tempdir().unwrap();
        let f = tmp.path().join("conn");
        std::fs::write(&f, "postgres://u@h/db\n").unwrap();
        b.secrets.push(SecretRef {
            name: "conn_str".into(),
            source: SecretSource::File(f),
        });
        let t = config_text(Some(&b), tmp.path(), "p", "r").unwrap();
        assert_eq!(
            t,
            "schema_name = \"tf \\\"x\\\" $${y}\"\nconn_str = \"postgres://u@h/db\"\n"
        );
        assert_eq!(workspace(Some(&b), "p", "r").as_deref(), Some("p.r"));
        assert_eq!(secret_values(Some(&b)), ["postgres://u@h/db"]);
        b.secrets[0].source = SecretSource::Env("PIPEDECK_TEST_NEVER_SET_PG".into());
        let e = config_text(Some(&b), tmp.path(), "p", "r").unwrap_err();
        assert_eq!(
            e.to_string(),
            "backend: secret conn_str is read from the environment variable PIPEDECK_TEST_NEVER_SET_PG, which is not set"
        );
    }

    #[test]
    fn http_addresses_get_the_resource_s_path() {
        let b = backend(
            BackendKind::Http,
            &[
                ("address", Value::from("http://s/state/")),
                ("lock_address", Value::from("http://s/lock")),
                ("retry_max", Value::from(3)),
            ],
        );
        let t = config_text(Some(&b), Path::new("/x"), "p", "r").unwrap();
        assert_eq!(
            t,
            "address = \"http://s/state/p/r\"\nlock_address = \"http://s/lock/p/r\"\nretry_max = 3\n"
        );
        assert_eq!(workspace(Some(&b), "p", "r"), None);
    }
}
