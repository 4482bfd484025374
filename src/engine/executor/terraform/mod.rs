//! The Terraform/OpenTofu driver (SJ-2): the real binary, run in a copy of the whole
//! module tree per resource, with the resource's own working data (`TF_DATA_DIR`),
//! inputs file and state (a local file in its state dir, or its own state in a shared
//! backend), `-input=false`; preview saves a plan file and apply applies exactly that
//! file; the plan summary comes from `show -json`, outputs from `output -json`.

pub mod backend;
pub mod tree;

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Map, Value};

use crate::config::backend::Backend;

/// The saved plan, in the resource's state dir.
pub const PLAN_FILE: &str = "pipedeck.tfplan";
/// The inputs, as Terraform variables (loaded automatically from the root module's copy).
pub const VARS_FILE: &str = "pipedeck.auto.tfvars.json";
/// The pg backend's `-lock-timeout` unless the backend sets one.
pub const PG_LOCK_TIMEOUT_MS: u64 = 5_000;
/// What `state list` says where a backend holds no state yet.
pub const NO_STATE: &str = "No state file was found";
/// Terraform's working data (providers, modules, backend), in the state dir.
pub const DATA_DIR: &str = ".terraform";

/// Where one resource's Terraform runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Workdir {
    /// The resource's state dir: plan file, local state, backend settings, working data.
    pub state_dir: PathBuf,
    /// The root module inside the copy of the module tree: Terraform's working directory.
    pub work: PathBuf,
    /// The workspace holding the state, in a shared backend that has workspaces: `init`
    /// selects it (creating it the first time), and Terraform remembers it in the
    /// working data.
    pub workspace: Option<String>,
    /// The state is a local file in the state dir.
    pub local: bool,
    /// `-lock-timeout` for plan and apply.
    pub lock_timeout_ms: Option<u64>,
    /// `init` must not run beside another: the pg backend creates a workspace under
    /// one lock for the whole schema, and refuses a second creation meanwhile.
    pub serial_init: bool,
}

impl Workdir {
    pub fn plan_file(&self) -> PathBuf {
        self.state_dir.join(PLAN_FILE)
    }

    /// Environment every Terraform operation of this resource gets.
    pub fn env(&self, data_dir: &Path) -> Vec<(String, String)> {
        let mut env = env(data_dir);
        env.push((
            "TF_DATA_DIR".into(),
            self.state_dir.join(DATA_DIR).display().to_string(),
        ));
        env
    }
}

/// Why the driver could not prepare a working directory or read what Terraform made.
#[derive(Debug, thiserror::Error)]
pub enum TerraformError {
    #[error("cannot read the module {}: {source}", module.display())]
    ReadModule { module: PathBuf, source: io::Error },
    #[error("the module {} has no .tf files", module.display())]
    NoConfig { module: PathBuf },
    #[error("cannot write {file}: {0}", file = VARS_FILE)]
    WriteVars(#[source] io::Error),
    #[error(transparent)]
    Tree(#[from] tree::TreeError),
    #[error(transparent)]
    Backend(#[from] backend::BackendError),
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
pub fn op_command(bin: &Path, op: &str, undeploy: bool, planned: bool, wd: &Workdir) -> String {
    let b = quote(bin);
    let plan = quote(&wd.plan_file());
    let lock = wd
        .lock_timeout_ms
        .map(|ms| format!(" -lock-timeout={ms}ms"))
        .unwrap_or_default();
    match op {
        "init" => {
            let init = format!(
                "{b} init -input=false -backend-config={}",
                quote(&wd.state_dir.join(backend::CONFIG_FILE))
            );
            // The workspace is selected, or else created (waiting for the lock, which
            // `select -or-create` would not).
            let lock = wd
                .lock_timeout_ms
                .map(|ms| format!(" -lock-timeout={ms}ms"))
                .unwrap_or_default();
            match &wd.workspace {
                Some(w) => {
                    let w = quote(Path::new(w));
                    format!(
                        "{init} && {{ {b} workspace select {w} 2>/dev/null || {b} workspace new{lock} {w}; }}"
                    )
                }
                None => init,
            }
        }
        "refresh" => format!("{b} apply -refresh-only -auto-approve -input=false{lock}"),
        "preview" if undeploy => format!("{b} plan -destroy -input=false{lock} -out={plan}"),
        "preview" => format!("{b} plan -input=false{lock} -out={plan}"),
        _ if planned => format!("{b} apply -input=false{lock} {plan}"),
        // The policy waived the preview: no saved plan to apply.
        "destroy" => format!("{b} destroy -auto-approve -input=false{lock}"),
        _ => format!("{b} apply -auto-approve -input=false{lock}"),
    }
}

/// Whether Terraform's provider plugin cache is in use (then `init`s take turns).
pub fn plugin_cache_set() -> bool {
    std::env::var_os("TF_PLUGIN_CACHE_DIR").is_some_and(|v| !v.is_empty())
}

/// The one lock an `init` holds while the plugin cache is in use (or its backend needs
/// it), across runs.
pub fn init_lock() -> &'static tokio::sync::Mutex<()> {
    static LOCK: std::sync::OnceLock<tokio::sync::Mutex<()>> = std::sync::OnceLock::new();
    LOCK.get_or_init(|| tokio::sync::Mutex::new(()))
}

/// Whether the resource's local state file holds any resource (a shared backend's
/// state is asked with [`state_list`]).
pub fn has_state(wd: &Workdir) -> bool {
    std::fs::read_to_string(wd.state_dir.join(backend::LOCAL_STATE))
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

/// What a resource's Terraform needs besides its module.
pub struct Target<'a> {
    pub project: &'a str,
    pub resource: &'a str,
    pub backend: Option<&'a Backend>,
    /// The copy made before is kept as it is (a Slurm job re-attached to after a
    /// restart runs in it): nothing is copied or written.
    pub keep_tree: bool,
}

/// Makes the state dir hold a fresh copy of the module tree as it is now, the inputs
/// as variables, and the backend's settings. State, plan and working data stay.
pub fn prepare(
    module: &Path,
    state_dir: &Path,
    inputs: &Map<String, Value>,
    t: &Target,
) -> Result<Workdir, TerraformError> {
    let has_config = std::fs::read_dir(module)
        .map_err(|source| TerraformError::ReadModule {
            module: module.to_path_buf(),
            source,
        })?
        .flatten()
        .any(|e| e.path().is_file() && is_config(&e.file_name().to_string_lossy()));
    if !has_config {
        return Err(TerraformError::NoConfig {
            module: module.to_path_buf(),
        });
    }
    let work = if t.keep_tree {
        tree::copied_root(module, &state_dir.join(tree::TREE_DIR))?
    } else {
        let work = tree::copy_tree(module, &state_dir.join(tree::TREE_DIR))?;
        std::fs::write(
            work.join(VARS_FILE),
            Value::Object(inputs.clone()).to_string(),
        )
        .map_err(TerraformError::WriteVars)?;
        backend::write(t.backend, &work, state_dir, t.project, t.resource)?;
        work
    };
    Ok(Workdir {
        state_dir: state_dir.to_path_buf(),
        work,
        workspace: backend::workspace(t.backend, t.project, t.resource),
        local: t
            .backend
            .is_none_or(|b| b.kind == crate::config::backend::BackendKind::Local),
        lock_timeout_ms: t.backend.and_then(|b| {
            // Every pg lock attempt also takes one database-wide advisory lock for an
            // instant: resources locking their own states at once would collide.
            b.lock_timeout_ms
                .or((b.kind == crate::config::backend::BackendKind::Pg)
                    .then_some(PG_LOCK_TIMEOUT_MS))
        }),
        serial_init: t
            .backend
            .is_some_and(|b| b.kind == crate::config::backend::BackendKind::Pg),
    })
}

/// Runs one read-only Terraform command for the resource; its standard output.
fn stdout_of(
    bin: &Path,
    wd: &Workdir,
    args: &[&str],
    data_dir: &Path,
) -> Result<Vec<u8>, TerraformError> {
    let out = Command::new(bin)
        .args(args)
        .current_dir(&wd.work)
        .envs(wd.env(data_dir))
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
    Ok(out.stdout)
}

fn json_of(
    bin: &Path,
    wd: &Workdir,
    args: &[&str],
    data_dir: &Path,
) -> Result<Value, TerraformError> {
    let out = stdout_of(bin, wd, args, data_dir)?;
    serde_json::from_slice(&out).map_err(|source| TerraformError::NotJson {
        bin: bin.to_path_buf(),
        args: args.join(" "),
        source,
    })
}

/// `terraform state list`: the addresses in the resource's state.
pub fn state_list(
    bin: &Path,
    wd: &Workdir,
    data_dir: &Path,
) -> Result<Vec<String>, TerraformError> {
    let out = match stdout_of(bin, wd, &["state", "list"], data_dir) {
        Ok(out) => out,
        // A backend that keeps no empty state (http) has none before the first apply.
        Err(TerraformError::Failed { stderr, .. }) if stderr.contains(NO_STATE) => {
            return Ok(Vec::new());
        }
        Err(e) => return Err(e),
    };
    Ok(String::from_utf8_lossy(&out)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect())
}

/// The saved plan's summary: counts and the addresses of what changes.
pub fn plan_summary(bin: &Path, wd: &Workdir, data_dir: &Path) -> Result<Value, TerraformError> {
    plan_summary_of(bin, wd, &wd.plan_file(), data_dir)
}

/// The summary of the plan saved in `plan_file`.
pub fn plan_summary_of(
    bin: &Path,
    wd: &Workdir,
    plan_file: &Path,
    data_dir: &Path,
) -> Result<Value, TerraformError> {
    let plan_file = plan_file.display().to_string();
    let plan = json_of(bin, wd, &["show", "-json", &plan_file], data_dir)?;
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
    wd: &Workdir,
    data_dir: &Path,
) -> Result<(Value, Vec<String>), TerraformError> {
    let raw = json_of(bin, wd, &["output", "-json"], data_dir)?;
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
                TerraformError::NoConfig {
                    module: "/m".into(),
                },
                "the module /m has no .tf files",
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
        let t = Target {
            project: "p",
            resource: "r",
            backend: None,
            keep_tree: false,
        };
        let e = prepare(module.path(), dir.path(), &Map::new(), &t).unwrap_err();
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
