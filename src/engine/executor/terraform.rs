//! The Terraform/OpenTofu driver (SJ-2): the real binary, one working directory and
//! state file per resource, `-input=false`; preview saves a plan file and apply
//! applies exactly that file; the plan summary comes from `show -json`, outputs from
//! `output -json`.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Map, Value};

/// The saved plan in the resource's working directory.
pub const PLAN_FILE: &str = "pipedeck.tfplan";
/// The inputs, as Terraform variables (loaded automatically).
pub const VARS_FILE: &str = "pipedeck.auto.tfvars.json";

/// Why the driver could not prepare a working directory or read what Terraform made.
#[derive(Debug, thiserror::Error)]
pub enum TerraformError {
    #[error("cannot read the module {}: {source}", module.display())]
    ReadModule { module: PathBuf, source: io::Error },
    /// A configuration file of the module could not be copied in.
    #[error("cannot copy {name}: {source}")]
    Copy { name: String, source: io::Error },
    #[error("the module {} has no .tf files", module.display())]
    NoConfig { module: PathBuf },
    /// A stale configuration file could not be removed from the working directory.
    #[error("cannot remove {}: {source}", path.display())]
    Remove { path: PathBuf, source: io::Error },
    #[error("cannot write {file}: {0}", file = VARS_FILE)]
    WriteVars(#[source] io::Error),
    #[error("cannot run {}: {source}", bin.display())]
    Spawn { bin: PathBuf, source: io::Error },
    /// The binary exited with a failure; `stderr` is what it said.
    #[error("{} {args} failed: {stderr}", bin.display())]
    Failed {
        bin: PathBuf,
        args: String,
        stderr: String,
    },
    #[error("{} {args}: not JSON: {source}", bin.display())]
    NotJson {
        bin: PathBuf,
        args: String,
        source: serde_json::Error,
    },
}

/// Finds the binary: the configured one (a path, or a name on PATH), else the
/// driver's own name, else the other of terraform/tofu.
pub fn find_binary(driver: &str, configured: Option<&str>) -> Option<PathBuf> {
    let mut names: Vec<&str> = Vec::new();
    if let Some(c) = configured {
        if c.contains('/') {
            let p = PathBuf::from(c);
            return p.is_file().then_some(p);
        }
        names.push(c);
    }
    names.push(driver);
    names.push(if driver == "tofu" {
        "terraform"
    } else {
        "tofu"
    });
    let path = std::env::var_os("PATH")?;
    for name in names {
        for dir in std::env::split_paths(&path) {
            let p = dir.join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

/// `terraform version`'s first line.
pub fn version(bin: &Path) -> Option<String> {
    let out = Command::new(bin)
        .arg("version")
        .env("TF_CLI_CONFIG_FILE", "/dev/null")
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .map(str::to_string)
}

fn quote(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', "'\\''"))
}

/// The shell command for one operation (the plan file is the only thing apply reads).
/// `planned`: a preview saved a plan this job, so apply/destroy apply exactly that file.
pub fn op_command(bin: &Path, op: &str, undeploy: bool, planned: bool) -> String {
    let b = quote(bin);
    match op {
        "init" => format!("{b} init -input=false"),
        "refresh" => format!("{b} apply -refresh-only -auto-approve -input=false"),
        "preview" if undeploy => format!("{b} plan -destroy -input=false -out={PLAN_FILE}"),
        "preview" => format!("{b} plan -input=false -out={PLAN_FILE}"),
        _ if planned => format!("{b} apply -input=false {PLAN_FILE}"),
        // The policy waived the preview: no saved plan to apply.
        "destroy" => format!("{b} destroy -auto-approve -input=false"),
        _ => format!("{b} apply -auto-approve -input=false"),
    }
}

/// Whether the working directory's state holds any resource.
pub fn has_state(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("terraform.tfstate"))
        .ok()
        .and_then(|s| serde_json::from_str::<Value>(&s).ok())
        .is_some_and(|v| v["resources"].as_array().is_some_and(|r| !r.is_empty()))
}

/// Environment every Terraform operation gets.
pub fn env(data_dir: &Path) -> Vec<(String, String)> {
    let rc = data_dir.join("terraform.rc");
    if !rc.exists()
        && let Err(e) = std::fs::write(&rc, "")
    {
        tracing::warn!("cannot write {}: {e}", rc.display());
    }
    vec![
        ("TF_IN_AUTOMATION".into(), "1".into()),
        ("TF_INPUT".into(), "0".into()),
        ("TF_CLI_CONFIG_FILE".into(), rc.display().to_string()),
    ]
}

fn is_config(name: &str) -> bool {
    name.ends_with(".tf") || name.ends_with(".tf.json")
}

/// Makes the working directory hold the module's configuration as it is now, and
/// the inputs as variables. State, plan and `.terraform` stay.
pub fn prepare(
    module: &Path,
    dir: &Path,
    inputs: &Map<String, Value>,
) -> Result<(), TerraformError> {
    let entries = std::fs::read_dir(module).map_err(|source| TerraformError::ReadModule {
        module: module.to_path_buf(),
        source,
    })?;
    let mut wanted = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if e.path().is_file() && is_config(&name) {
            if let Err(source) = std::fs::copy(e.path(), dir.join(&name)) {
                return Err(TerraformError::Copy { name, source });
            }
            wanted.push(name);
        }
    }
    if wanted.is_empty() {
        return Err(TerraformError::NoConfig {
            module: module.to_path_buf(),
        });
    }
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            // A stale configuration file would change the plan: it must go.
            if is_config(&name) && !wanted.contains(&name) {
                std::fs::remove_file(e.path()).map_err(|source| TerraformError::Remove {
                    path: e.path(),
                    source,
                })?;
            }
        }
    }
    std::fs::write(
        dir.join(VARS_FILE),
        Value::Object(inputs.clone()).to_string(),
    )
    .map_err(TerraformError::WriteVars)
}

fn json_of(
    bin: &Path,
    dir: &Path,
    args: &[&str],
    data_dir: &Path,
) -> Result<Value, TerraformError> {
    let out = Command::new(bin)
        .args(args)
        .current_dir(dir)
        .envs(env(data_dir))
        .output()
        .map_err(|source| TerraformError::Spawn {
            bin: bin.to_path_buf(),
            source,
        })?;
    if !out.status.success() {
        return Err(TerraformError::Failed {
            bin: bin.to_path_buf(),
            args: args.join(" "),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    serde_json::from_slice(&out.stdout).map_err(|source| TerraformError::NotJson {
        bin: bin.to_path_buf(),
        args: args.join(" "),
        source,
    })
}

/// The saved plan's summary: counts and the addresses of what changes.
pub fn plan_summary(bin: &Path, dir: &Path, data_dir: &Path) -> Result<Value, TerraformError> {
    let plan = json_of(bin, dir, &["show", "-json", PLAN_FILE], data_dir)?;
    Ok(summarize(&plan))
}

/// Counts a `show -json` plan's resource changes.
pub fn summarize(plan: &Value) -> Value {
    let (mut add, mut change, mut destroy) = (0, 0, 0);
    let mut changes = Vec::new();
    for rc in plan["resource_changes"].as_array().into_iter().flatten() {
        let actions: Vec<&str> = rc["change"]["actions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let what = match actions.as_slice() {
            ["create"] => {
                add += 1;
                "create"
            }
            ["update"] => {
                change += 1;
                "update"
            }
            ["delete"] => {
                destroy += 1;
                "delete"
            }
            ["delete", "create"] | ["create", "delete"] => {
                add += 1;
                destroy += 1;
                "replace"
            }
            _ => continue,
        };
        changes.push(serde_json::json!({"address": rc["address"], "action": what}));
    }
    serde_json::json!({"add": add, "change": change, "destroy": destroy, "changes": changes})
}

/// `plan: 1 to add, 0 to change, 0 to destroy (create terraform_data.vpc)`.
pub fn summary_line(s: &Value) -> String {
    let list: Vec<String> = s["changes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            format!(
                "{} {}",
                c["action"].as_str().unwrap_or(""),
                c["address"].as_str().unwrap_or("")
            )
        })
        .collect();
    let tail = if list.is_empty() {
        String::new()
    } else {
        format!(" ({})", list.join(", "))
    };
    format!(
        "plan: {} to add, {} to change, {} to destroy{tail}",
        s["add"], s["change"], s["destroy"]
    )
}

/// The root module's outputs, as `{name: value}`, and the names of those it marks
/// `sensitive` (stored and shown as `***`; their values only go to dependents).
pub fn outputs(
    bin: &Path,
    dir: &Path,
    data_dir: &Path,
) -> Result<(Value, Vec<String>), TerraformError> {
    let raw = json_of(bin, dir, &["output", "-json"], data_dir)?;
    let mut out = Map::new();
    let mut sensitive = Vec::new();
    for (k, v) in raw.as_object().into_iter().flatten() {
        out.insert(k.clone(), v["value"].clone());
        if v["sensitive"] == Value::Bool(true) {
            sensitive.push(k.clone());
        }
    }
    Ok((Value::Object(out), sensitive))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages() {
        let gone = || io::Error::new(io::ErrorKind::NotFound, "gone");
        let bin = PathBuf::from("/bin/terraform");
        let cases = [
            (
                TerraformError::ReadModule {
                    module: "/m".into(),
                    source: gone(),
                },
                "cannot read the module /m: gone",
            ),
            (
                TerraformError::Copy {
                    name: "main.tf".into(),
                    source: gone(),
                },
                "cannot copy main.tf: gone",
            ),
            (
                TerraformError::NoConfig {
                    module: "/m".into(),
                },
                "the module /m has no .tf files",
            ),
            (
                TerraformError::Remove {
                    path: "/s/old.tf".into(),
                    source: gone(),
                },
                "cannot remove /s/old.tf: gone",
            ),
            (
                TerraformError::WriteVars(gone()),
                "cannot write pipedeck.auto.tfvars.json: gone",
            ),
            (
                TerraformError::Spawn {
                    bin: bin.clone(),
                    source: gone(),
                },
                "cannot run /bin/terraform: gone",
            ),
            (
                TerraformError::Failed {
                    bin: bin.clone(),
                    args: "output -json".into(),
                    stderr: "Error: x".into(),
                },
                "/bin/terraform output -json failed: Error: x",
            ),
        ];
        for (e, want) in cases {
            assert_eq!(e.to_string(), want);
        }
        let source = serde_json::from_str::<Value>("{").unwrap_err();
        let why = source.to_string();
        let e = TerraformError::NotJson {
            bin,
            args: "show -json pipedeck.tfplan".into(),
            source,
        };
        assert_eq!(
            e.to_string(),
            format!("/bin/terraform show -json pipedeck.tfplan: not JSON: {why}")
        );
    }

    #[test]
    fn a_module_without_configuration_is_refused() {
        let (module, dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let e = prepare(module.path(), dir.path(), &Map::new()).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("the module {} has no .tf files", module.path().display())
        );
    }

    #[test]
    fn summarizes_actions() {
        let plan = serde_json::json!({"resource_changes": [
            {"address": "a.x", "change": {"actions": ["create"]}},
            {"address": "a.y", "change": {"actions": ["update"]}},
            {"address": "a.z", "change": {"actions": ["delete", "create"]}},
            {"address": "a.n", "change": {"actions": ["no-op"]}}
        ]});
        let s = summarize(&plan);
        assert_eq!(
            (
                s["add"].as_i64(),
                s["change"].as_i64(),
                s["destroy"].as_i64()
            ),
            (Some(2), Some(1), Some(1))
        );
        assert_eq!(
            summary_line(&s),
            "plan: 2 to add, 1 to change, 1 to destroy (create a.x, update a.y, replace a.z)"
        );
    }
}
