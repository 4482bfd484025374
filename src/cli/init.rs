//! `pipedeck init [DIR]`: a starter `pipedeck.toml` at the root of a git repository,
//! with build steps for what it finds there (Cargo, npm, Go, Make, Python), the
//! environments dev -> staging -> prod with a gate before prod, and comments that
//! say where to read on. It never overwrites, and what it writes always validates.

mod detect;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use detect::{Detected, StepDraft};

use super::exit;
use crate::config::{self, PROJECT_FILE};

/// Where an installed package keeps the schema, relative to the binary's folder.
const INSTALLED_SCHEMA: &str = "../share/pipedeck/pipedeck.schema.json";

/// Why `init` wrote nothing.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error(
        "{} is not inside a git repository\n  hint: run `git init` there first, or run `pipedeck init` inside your repository",
        .0.display()
    )]
    NotARepository(PathBuf),
    #[error(
        "{} already exists; pipedeck init never overwrites\n  hint: edit it (`pipedeck validate --project {}` checks it), or move it away and run init again",
        .0.display(), .0.display()
    )]
    Exists(PathBuf),
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot run git: {0}\n  hint: install git; pipedeck runs it for every build")]
    Git(std::io::Error),
    /// A bug: the starter did not validate.
    #[error("the starter file does not validate (a bug in pipedeck init):\n{0}")]
    Invalid(String),
}

pub fn init(dir: Option<&Path>) -> i32 {
    match write_starter(dir.unwrap_or(Path::new("."))) {
        Ok((path, found, service)) => {
            let kinds: Vec<String> = found
                .iter()
                .map(|d| format!("{} ({})", d.kind, d.marker))
                .collect();
            outln!("wrote {}", path.display());
            if kinds.is_empty() {
                outln!(
                    "found no Cargo, npm, Go, Make or Python project: the build step is a placeholder to replace"
                );
            } else {
                outln!("found {}", kinds.join(", "));
            }
            outln!(
                "next: edit the deploy commands, then `pipedeck validate --project {0}` and `pipedeck --project {0} run {service} --wait`",
                path.display()
            );
            exit::OK
        }
        Err(e) => {
            eprintln!("error: {e}");
            match e {
                InitError::Write { .. } | InitError::Invalid(_) => exit::RUN_FAILED,
                _ => exit::USAGE,
            }
        }
    }
}

fn git(dir: &Path, args: &[&str]) -> Result<Option<String>, InitError> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .map_err(InitError::Git)?;
    Ok(out
        .status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .filter(|s| !s.is_empty()))
}

/// Writes the starter; returns its path, what was found and the service's name.
fn write_starter(dir: &Path) -> Result<(PathBuf, Vec<Detected>, String), InitError> {
    let root = git(dir, &["rev-parse", "--show-toplevel"])?
        .map(PathBuf::from)
        .ok_or_else(|| InitError::NotARepository(dir.to_path_buf()))?;
    let path = root.join(PROJECT_FILE);
    if path.exists() {
        return Err(InitError::Exists(path));
    }
    let branch =
        git(&root, &["symbolic-ref", "--short", "-q", "HEAD"])?.unwrap_or_else(|| "main".into());
    let service = service_name(&root);
    let found = detect::detect(&root);
    let text = render(&service, &branch, &found, schema_line().as_deref());
    config::parse_project(&path, &text).map_err(|errs| {
        InitError::Invalid(
            errs.iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n"),
        )
    })?;
    let write_err = |source| InitError::Write {
        path: path.clone(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => InitError::Exists(path.clone()),
            _ => write_err(e),
        })?;
    file.write_all(text.as_bytes()).map_err(write_err)?;
    Ok((path, found, service))
}

/// The repository folder's name, made a valid service name.
fn service_name(root: &Path) -> String {
    let raw = root
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let name = name.trim_matches('-').to_string();
    if name.is_empty() { "app".into() } else { name }
}

/// The `#:schema` directive for an installed package's schema, if there is one
/// beside this binary (`/usr/bin/pipedeck` -> `/usr/share/pipedeck/…`).
fn schema_line() -> Option<String> {
    let exe = std::env::current_exe().ok()?;
    let schema = exe.parent()?.join(INSTALLED_SCHEMA).canonicalize().ok()?;
    let s = schema.to_str()?;
    // A file URL without escaping: only for plain paths.
    s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "/-_.".contains(c))
        .then(|| format!("#:schema file://{s}\n"))
}

/// A TOML basic string.
fn quote(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

fn step_table(service: &str, s: &StepDraft) -> String {
    let mut t = format!(
        "[[services.{service}.steps]]\nname = {}\nrun = {}\n",
        quote(&s.name),
        quote(&s.run)
    );
    if !s.needs.is_empty() {
        let needs: Vec<String> = s.needs.iter().map(|n| quote(n)).collect();
        t.push_str(&format!("needs = [{}]\n", needs.join(", ")));
    }
    t
}

/// The starter file's text.
fn render(service: &str, branch: &str, found: &[Detected], schema: Option<&str>) -> String {
    let mut t = String::new();
    match schema {
        Some(line) => t.push_str(line),
        None => t.push_str(
            "# Completion and checks while you type (taplo: VS Code Even Better TOML, Helix,\n\
             # Neovim): `pipedeck schema > .pipedeck.schema.json`, then make\n\
             # `#:schema ./.pipedeck.schema.json` the first line of this file.\n",
        ),
    }
    t.push_str(
        "# pipedeck project file, written by `pipedeck init`. Every key is explained in\n\
         # config.example.toml (pipedeck's sources, or /usr/share/doc/pipedeck/ from the\n\
         # package) and in the schema (`pipedeck schema`); the commands in `man pipedeck`.\n\
         # Check it with `pipedeck validate`; run it with `pipedeck run SERVICE --wait`.\n\n",
    );
    t.push_str(
        "[engine]\n# Most steps running at once across all runs (default: the number of CPUs).\n\
         # concurrency = 4\n\n",
    );
    t.push_str(
        "# Environments, in the order a service deploys to them. prod waits for approval:\n\
         # `pipedeck approve RUN prod` (or `a` in the dashboard's inbox).\n\
         [environments.dev]\n\n[environments.staging]\n\n[environments.prod]\napproval = true\n\
         # approvers = [\"alice\"]\n# expires_after = \"24h\"\n\n",
    );
    let kinds: Vec<&str> = found.iter().map(|d| d.kind).collect();
    t.push_str(&format!(
        "[services.{service}]\n# This repository (a path relative to this file, or a URL git can clone).\n\
         repo = \".\"\ndefault_branch = {}\nbranches = [{}]\nenvironments = [\"dev\", \"staging\", \"prod\"]\n\n",
        quote(branch),
        quote(branch)
    ));
    if kinds.is_empty() {
        t.push_str("# No Cargo, npm, Go, Make or Python project was found: say how to build.\n");
        t.push_str(&step_table(
            service,
            &StepDraft {
                name: "build".into(),
                run: format!(
                    "echo 'no build command yet: set services.{service}.steps.run in pipedeck.toml' >&2; exit 1"
                ),
                needs: Vec::new(),
            },
        ));
        t.push('\n');
    } else {
        t.push_str(&format!(
            "# Build steps for the {} project found here. They run in a checkout of the\n\
             # run's commit, as `sh -c RUN`, in parallel unless `needs` orders them.\n",
            kinds.join(" and ")
        ));
        for d in found {
            for s in &d.steps {
                t.push_str(&step_table(service, s));
                t.push('\n');
            }
        }
    }
    t.push_str(
        "# How to deploy to each environment: PIPEDECK_ENV names it. These placeholders\n\
         # fail on purpose until you replace them.\n",
    );
    for env in ["dev", "staging", "prod"] {
        t.push_str(&format!(
            "[services.{service}.deploy.{env}]\nrun = {}\n\n",
            quote(&format!(
                "echo \"no deploy command yet: set services.{service}.deploy.$PIPEDECK_ENV.run in pipedeck.toml\" >&2; exit 1"
            ))
        ));
    }
    t.truncate(t.trim_end().len());
    t.push('\n');
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_folders() {
        assert_eq!(service_name(Path::new("/src/My App!")), "my-app");
        assert_eq!(service_name(Path::new("/src/api.v2")), "api.v2");
        assert_eq!(service_name(Path::new("/")), "app");
    }

    #[test]
    fn every_starter_validates() {
        let step = |name: &str, run: &str, needs: &[&str]| StepDraft {
            name: name.into(),
            run: run.into(),
            needs: needs.iter().map(|n| n.to_string()).collect(),
        };
        let npm = Detected {
            kind: "npm",
            marker: "package.json",
            prefix: "npm",
            steps: vec![
                step("install", "npm ci", &[]),
                step("test", "npm test \"quoted\"", &["install"]),
            ],
        };
        for (found, schema) in [
            (vec![], None),
            (
                vec![npm],
                Some("#:schema file:///usr/share/pipedeck/pipedeck.schema.json\n"),
            ),
        ] {
            let text = render("web", "trunk", &found, schema);
            let p = config::parse_project(Path::new("/r/pipedeck.toml"), &text)
                .unwrap_or_else(|e| panic!("{e:?}\n{text}"));
            let svc = &p.services["web"];
            assert_eq!(svc.default_branch, "trunk");
            let want = found.iter().map(|d| d.steps.len()).sum::<usize>().max(1);
            assert_eq!(svc.steps.len(), want);
            let gates: Vec<bool> = svc.environments.iter().map(|e| e.gate.approval).collect();
            assert_eq!(gates, [false, false, true]);
            assert_eq!(text.starts_with("#:schema"), schema.is_some());
        }
    }
}
