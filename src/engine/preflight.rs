//! Preflight (SJ-4): everything a stack job needs, checked before anything runs.

use std::path::Path;

use super::executor::terraform;
use super::{EngineError, Result};
use crate::config::Project;
use crate::config::infra::{InfraProject, Resource};
pub use crate::domain::command::{Check, PreflightReport};

/// The infra project and resource a stack job (or its preflight) names: `infra`
/// picks among projects when several define `resource`.
pub(super) fn locate<'a>(
    project: &'a Project,
    resource: &str,
    infra: Option<&str>,
) -> Result<(&'a InfraProject, &'a Resource)> {
    let found: Vec<(&InfraProject, &Resource)> = project
        .infra
        .values()
        .filter(|p| infra.is_none_or(|n| n == p.name))
        .filter_map(|p| p.resource(resource).map(|r| (p, r)))
        .collect();
    match found.as_slice() {
        [one] => Ok(*one),
        [] => Err(EngineError::NotFound(format!(
            "no resource `{resource}` in {}",
            project.path.display()
        ))),
        _ => Err(EngineError::Invalid(format!(
            "several infra projects define `{resource}`: name one\n  hint: add --infra NAME"
        ))),
    }
}

/// The engine's answer to a preflight request: every check for the resource, run
/// here (the engine's environment, binaries and state dir), with the binary's version.
pub(super) fn for_resource(
    project: &Project,
    data_dir: &Path,
    resource: &str,
    infra: Option<&str>,
) -> Result<PreflightReport> {
    let (p, r) = locate(project, resource, infra)?;
    let state_dir = crate::engine::executor::stack_job::state_dir(data_dir, &p.name, &r.id);
    Ok(PreflightReport {
        project: p.name.clone(),
        resource: r.id.clone(),
        driver: r.driver.clone(),
        checks: preflight(r, &state_dir, true),
    })
}

/// Runs every check for `r`, whose state lives in `state_dir`; `with_version` also
/// asks the binary for its version (one more process).
pub fn preflight(r: &Resource, state_dir: &Path, with_version: bool) -> Vec<Check> {
    checks(r, state_dir, with_version, StateDir::Check)
}

/// What preflight knows of the state dir before its state check.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum StateDir {
    /// Make it if need be, then check that it is writable.
    Check,
    /// This process has just made it (so it exists and its owner may write it):
    /// nothing to look up.
    JustMade,
}

/// [`preflight`], told what is already known of the state dir.
pub(crate) fn checks(
    r: &Resource,
    state_dir: &Path,
    with_version: bool,
    known: StateDir,
) -> Vec<Check> {
    let mut out = Vec::new();
    let mut check = |name: &str, ok: bool, detail: String| {
        out.push(Check {
            name: name.into(),
            ok,
            detail,
        });
    };
    // The module.
    match &r.module {
        Some(m) => {
            let has_tf = std::fs::read_dir(m)
                .map(|d| {
                    d.flatten()
                        .any(|e| e.file_name().to_string_lossy().ends_with(".tf"))
                })
                .unwrap_or(false);
            if !m.is_dir() {
                check("module", false, format!("{} does not exist", m.display()));
            } else if r.is_terraform() && !has_tf {
                check("module", false, format!("{} has no .tf files", m.display()));
            } else if let Err(e) = r
                .is_terraform()
                .then(|| terraform::tree::local_modules(m))
                .transpose()
            {
                // A local child module that is not there: named, with its caller.
                check("module", false, e.to_string());
            } else {
                check("module", true, m.display().to_string());
            }
        }
        None if r.is_terraform() => check("module", false, "no module is set".into()),
        None => check("module", true, "none needed by the command driver".into()),
    }
    // The driver's binary.
    if r.is_terraform() {
        match terraform::find_binary(&r.driver, r.binary.as_deref()) {
            Some(bin) => {
                let v = if with_version {
                    format!(
                        " ({})",
                        terraform::version(&bin).unwrap_or_else(|| "version unknown".into())
                    )
                } else {
                    String::new()
                };
                check("binary", true, format!("{}{v}", bin.display()));
            }
            None if r.commands.apply.is_some() => check(
                "binary",
                true,
                "no terraform or tofu on PATH: the command driver's commands stand in".into(),
            ),
            None => check(
                "binary",
                false,
                format!(
                    "{} not found{}",
                    r.binary.as_deref().unwrap_or("terraform or tofu on PATH"),
                    if r.binary.is_some() {
                        ""
                    } else {
                        " (install one, or set terraform_binary)"
                    }
                ),
            ),
        }
    } else {
        let sh = Path::new("/bin/sh").exists();
        check(
            "binary",
            sh,
            if sh {
                "/bin/sh".into()
            } else {
                "/bin/sh not found".into()
            },
        );
    }
    // Credentials: named connection variables.
    let missing: Vec<&str> = r
        .credentials
        .iter()
        .filter(|v| std::env::var_os(v).is_none_or(|x| x.is_empty()))
        .map(String::as_str)
        .collect();
    if missing.is_empty() {
        let d = if r.credentials.is_empty() {
            "none named".to_string()
        } else {
            r.credentials.join(", ")
        };
        check("credentials", true, d);
    } else {
        check(
            "credentials",
            false,
            format!(
                "not set in the engine's environment: {}",
                missing.join(", ")
            ),
        );
    }
    // The state location.
    let writable = if known == StateDir::JustMade {
        Ok(())
    } else {
        state_dir_writable(state_dir)
    };
    match writable {
        Ok(()) => check(
            "state",
            true,
            format!("{} is writable", state_dir.display()),
        ),
        Err(e) => check(
            "state",
            false,
            format!("{} is not writable: {e}", state_dir.display()),
        ),
    }
    // The policy, resolved level by level.
    let p = &r.policy;
    check(
        "policy",
        true,
        format!(
            "skip_refresh={} ({}), require_preview={} ({}), pause_before_apply={} ({})",
            p.skip_refresh.value,
            p.skip_refresh.from,
            p.require_preview.value,
            p.require_preview.from,
            p.pause_before_apply.value,
            p.pause_before_apply.from
        ),
    );
    // Where the state lives (secrets readable now).
    if r.is_terraform() {
        match &r.backend {
            None => check("backend", true, "local state file in the data dir".into()),
            Some(b) => {
                let unreadable: Vec<String> = b
                    .secrets
                    .iter()
                    .filter_map(|s| s.resolve().err().map(|e| e.to_string()))
                    .collect();
                if unreadable.is_empty() {
                    let mut names: Vec<&str> = b.config.keys().map(String::as_str).collect();
                    names.extend(b.secrets.iter().map(|s| s.name.as_str()));
                    check(
                        "backend",
                        true,
                        format!("{} ({})", b.kind.as_str(), names.join(", ")),
                    );
                } else {
                    check("backend", false, unreadable.join("; "));
                }
            }
        }
    }
    out
}

/// `missing: credentials (not set …); state (…)` for the failed checks.
pub fn failures(checks: &[Check]) -> Option<String> {
    let bad: Vec<String> = checks
        .iter()
        .filter(|c| !c.ok)
        .map(|c| format!("{}: {}", c.name, c.detail))
        .collect();
    (!bad.is_empty()).then(|| format!("preflight failed: {}", bad.join("; ")))
}

/// One line per check, for logs and the CLI.
pub fn report(checks: &[Check]) -> Vec<String> {
    checks
        .iter()
        .map(|c| {
            format!(
                "{} {:<12} {}",
                if c.ok { "pass" } else { "FAIL" },
                c.name,
                c.detail
            )
        })
        .collect()
}

/// Makes the state dir if need be; an error if it cannot be made or written.
fn state_dir_writable(state_dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(state_dir)?;
    let c = std::ffi::CString::new(state_dir.as_os_str().as_encoded_bytes())
        .map_err(std::io::Error::other)?;
    // SAFETY: access(2) reads a valid NUL-terminated path and has no other preconditions.
    match unsafe { libc::access(c.as_ptr(), libc::W_OK) } {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::infra::Policy;
    use crate::config::schema::CommandsFile;

    /// Resource `db` with `driver` and `module`, nothing else set.
    pub(crate) fn resource(driver: &str, module: Option<std::path::PathBuf>) -> Resource {
        Resource {
            id: "db".into(),
            kind: "x".into(),
            driver: driver.into(),
            binary: None,
            module,
            backend: None,
            inputs: Default::default(),
            depends_on: vec![],
            gate: false,
            policy: Policy::default(),
            credentials: vec![],
            commands: CommandsFile::default(),
            kill_grace_ms: 1000,
            timeout_ms: None,
            slurm: None,
        }
    }

    fn failed(checks: &[Check]) -> Vec<&str> {
        checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| c.name.as_str())
            .collect()
    }

    #[test]
    fn each_failure_is_reported_precisely() {
        let tmp = tempfile::tempdir().unwrap();
        let module = tmp.path().join("mod");
        std::fs::create_dir_all(&module).unwrap();
        std::fs::write(module.join("main.tf"), "").unwrap();
        let state = tmp.path().join("state");

        // All good (the command driver needs no module and no binary but sh).
        let ok = preflight(&resource("command", None), &state, false);
        assert!(failed(&ok).is_empty(), "{ok:?}");

        // No module.
        let c = preflight(
            &resource("terraform", Some(tmp.path().join("nope"))),
            &state,
            false,
        );
        assert_eq!(failed(&c), ["module"]);
        assert!(c[0].detail.ends_with("nope does not exist"));

        // A local child module that is not there, named with its caller.
        let parent = tmp.path().join("parent");
        std::fs::create_dir_all(&parent).unwrap();
        std::fs::write(
            parent.join("main.tf"),
            "module \"net\" {\n  source = \"./net\"\n}\n",
        )
        .unwrap();
        let c = preflight(&resource("terraform", Some(parent.clone())), &state, false);
        assert_eq!(failed(&c), ["module"]);
        assert_eq!(
            c[0].detail,
            format!(
                "module \"net\" in {} has source \"./net\", which does not exist ({})",
                parent.display(),
                parent.join("net").display()
            )
        );

        // No binary.
        let mut r = resource("terraform", Some(module.clone()));
        r.binary = Some("/nonexistent/terraform".into());
        let c = preflight(&r, &state, false);
        assert_eq!(failed(&c), ["binary"]);
        assert_eq!(c[1].detail, "/nonexistent/terraform not found");

        // A missing credential variable.
        let mut r = resource("command", None);
        r.credentials = vec!["PIPEDECK_TEST_SURELY_UNSET_CRED".into(), "PATH".into()];
        let c = preflight(&r, &state, false);
        assert_eq!(failed(&c), ["credentials"]);
        assert_eq!(
            c[2].detail,
            "not set in the engine's environment: PIPEDECK_TEST_SURELY_UNSET_CRED"
        );

        // State location not writable (its parent is a file).
        std::fs::write(tmp.path().join("file"), "").unwrap();
        let c = preflight(
            &resource("command", None),
            &tmp.path().join("file/state"),
            false,
        );
        assert_eq!(failed(&c), ["state"]);
        assert!(
            failures(&c)
                .unwrap()
                .starts_with("preflight failed: state: ")
        );
        // The policy line says where each knob came from.
        assert!(c[4].detail.contains("pause_before_apply=false (default)"));
    }
}
