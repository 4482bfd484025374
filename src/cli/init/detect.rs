//! What kind of project a repository holds, and the build steps that fit it.

use std::path::Path;

/// A build step to propose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepDraft {
    pub name: String,
    pub run: String,
    pub needs: Vec<String>,
}

/// One kind of project found, with its steps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detected {
    /// As a person names it: `Cargo`, `npm`, `Go`, `Make`, `Python`.
    pub kind: &'static str,
    /// The file that gave it away.
    pub marker: &'static str,
    /// Prefixes the step names when several kinds are found (`cargo-test`).
    pub prefix: &'static str,
    pub steps: Vec<StepDraft>,
}

fn step(name: &str, run: impl Into<String>, needs: &[&str]) -> StepDraft {
    StepDraft {
        name: name.into(),
        run: run.into(),
        needs: needs.iter().map(|n| n.to_string()).collect(),
    }
}

fn read(root: &Path, name: &str) -> Option<String> {
    std::fs::read_to_string(root.join(name)).ok()
}

fn exists(root: &Path, name: &str) -> bool {
    root.join(name).is_file()
}

/// Every kind found at the root of `root`, in a fixed order; step names are
/// prefixed when there is more than one.
pub fn detect(root: &Path) -> Vec<Detected> {
    let mut found: Vec<Detected> = [cargo, npm, go, make, python]
        .iter()
        .filter_map(|f| f(root))
        .collect();
    if found.len() > 1 {
        for d in &mut found {
            let p = d.prefix;
            for s in &mut d.steps {
                s.name = format!("{p}-{}", s.name);
                for n in &mut s.needs {
                    *n = format!("{p}-{n}");
                }
            }
        }
    }
    found
}

fn cargo(root: &Path) -> Option<Detected> {
    if !exists(root, "Cargo.toml") {
        return None;
    }
    let locked = if exists(root, "Cargo.lock") {
        " --locked"
    } else {
        ""
    };
    Some(Detected {
        kind: "Cargo",
        marker: "Cargo.toml",
        prefix: "cargo",
        steps: vec![
            step("build", format!("cargo build{locked} --release"), &[]),
            step("test", format!("cargo test{locked}"), &[]),
        ],
    })
}

fn npm(root: &Path) -> Option<Detected> {
    let text = read(root, "package.json")?;
    let scripts: Vec<String> = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| {
            v.get("scripts")
                .and_then(|s| s.as_object())
                .map(|o| o.keys().cloned().collect())
        })
        .unwrap_or_default();
    let install = if exists(root, "package-lock.json") {
        "npm ci"
    } else {
        "npm install"
    };
    let mut steps = vec![step("install", install, &[])];
    for (script, run) in [
        ("lint", "npm run lint"),
        ("build", "npm run build"),
        ("test", "npm test"),
    ] {
        if scripts.iter().any(|s| s == script) {
            steps.push(step(script, run, &["install"]));
        }
    }
    Some(Detected {
        kind: "npm",
        marker: "package.json",
        prefix: "npm",
        steps,
    })
}

fn go(root: &Path) -> Option<Detected> {
    if !exists(root, "go.mod") {
        return None;
    }
    Some(Detected {
        kind: "Go",
        marker: "go.mod",
        prefix: "go",
        steps: vec![
            step("vet", "go vet ./...", &[]),
            step("build", "go build ./...", &[]),
            step("test", "go test ./...", &[]),
        ],
    })
}

/// Rule targets of a makefile: `name:` at the start of a line (not `name :=`).
fn make_targets(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| {
            let (head, rest) = l.split_once(':')?;
            if rest.starts_with('=')
                || head.contains(['=', '%', '$'])
                || head.starts_with(['\t', ' ', '.', '#'])
            {
                return None;
            }
            Some(
                head.split_whitespace()
                    .map(str::to_string)
                    .collect::<Vec<_>>(),
            )
        })
        .flatten()
        .collect()
}

fn make(root: &Path) -> Option<Detected> {
    let (marker, text) = ["GNUmakefile", "makefile", "Makefile"]
        .into_iter()
        .find_map(|m| read(root, m).map(|t| (m, t)))?;
    let targets = make_targets(&text);
    let has = |t: &str| targets.iter().any(|x| x == t);
    let mut steps = Vec::new();
    if has("lint") {
        steps.push(step("lint", "make lint", &[]));
    }
    if has("build") {
        steps.push(step("build", "make build", &[]));
    } else if has("all") {
        steps.push(step("build", "make all", &[]));
    }
    for t in ["test", "check"] {
        if has(t) {
            steps.push(step("test", format!("make {t}"), &[]));
            break;
        }
    }
    if steps.is_empty() {
        // The first target is make's default goal.
        steps.push(step("build", "make", &[]));
    }
    Some(Detected {
        kind: "Make",
        marker,
        prefix: "make",
        steps,
    })
}

fn python(root: &Path) -> Option<Detected> {
    let markers = ["pyproject.toml", "setup.py", "requirements.txt"];
    let marker = markers.into_iter().find(|m| exists(root, m))?;
    let mut install = Vec::new();
    if exists(root, "requirements.txt") {
        install.push("-r requirements.txt");
    }
    if exists(root, "pyproject.toml") || exists(root, "setup.py") {
        install.push("-e .");
    }
    let mentions_pytest = [
        "pyproject.toml",
        "requirements.txt",
        "requirements-dev.txt",
        "setup.cfg",
        "tox.ini",
    ]
    .iter()
    .filter_map(|f| read(root, f))
    .any(|t| t.contains("pytest"))
        || exists(root, "pytest.ini")
        || exists(root, "conftest.py");
    let test = if mentions_pytest {
        ".venv/bin/python -m pytest"
    } else {
        ".venv/bin/python -m unittest discover"
    };
    Some(Detected {
        kind: "Python",
        marker,
        prefix: "python",
        steps: vec![
            step(
                "setup",
                format!(
                    "python3 -m venv .venv && .venv/bin/pip install {}",
                    install.join(" ")
                ),
                &[],
            ),
            step("test", test, &["setup"]),
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn makefile_targets() {
        let text = "CC := gcc\nall: build\nbuild test: deps\n\t@echo not: a target\n.PHONY: all\nx = y:z\n%.o: %.c\n";
        assert_eq!(make_targets(text), ["all", "build", "test"]);
    }

    #[test]
    fn several_kinds_prefix_their_steps() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Cargo.toml"), "[package]\n").unwrap();
        std::fs::write(
            dir.path().join("package.json"),
            r#"{"scripts": {"test": "jest", "start": "node ."}}"#,
        )
        .unwrap();
        let found = detect(dir.path());
        let names: Vec<(&str, &str, Vec<String>)> = found
            .iter()
            .flat_map(|d| {
                d.steps
                    .iter()
                    .map(move |s| (d.kind, s.name.as_str(), s.needs.clone()))
            })
            .collect();
        assert_eq!(
            names,
            [
                ("Cargo", "cargo-build", vec![]),
                ("Cargo", "cargo-test", vec![]),
                ("npm", "npm-install", vec![]),
                ("npm", "npm-test", vec!["npm-install".to_string()]),
            ]
        );
        assert_eq!(found[1].steps[0].run, "npm install");
    }
}
