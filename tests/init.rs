//! `pipedeck init`: a starter project file for what a repository holds, that
//! validates, never overwrites, and runs.

use std::path::Path;
use std::process::{Command, Output, Stdio};

fn pipedeck(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_pipedeck"));
    c.current_dir(dir)
        .env_remove("PIPEDECK_DATA_DIR")
        .env("PIPEDECK_CONFIG", dir.join("no-user-config.toml"))
        .stdin(Stdio::null());
    c
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .current_dir(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {out:?}");
}

/// A git repository (branch `trunk`) in a folder named `my-app` holding `files`.
fn repo(files: &[(&str, &str)]) -> (tempfile::TempDir, std::path::PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("my-app");
    std::fs::create_dir_all(&root).unwrap();
    git(&root, &["init", "-q", "-b", "trunk"]);
    for (name, text) in files {
        std::fs::write(root.join(name), text).unwrap();
    }
    (tmp, root)
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs init in `root`, then validate on what it wrote; returns the file's text.
fn init_and_validate(root: &Path) -> String {
    let said = ok(pipedeck(root).arg("init").output().unwrap());
    assert!(said.contains("pipedeck.toml"), "{said}");
    let validated = ok(pipedeck(root).arg("validate").output().unwrap());
    assert!(validated.contains(": ok ("), "{validated}");
    std::fs::read_to_string(root.join("pipedeck.toml")).unwrap()
}

/// The files of a repository, and what its starter must say.
type Case = (
    &'static [(&'static str, &'static str)],
    &'static [&'static str],
);

#[test]
fn each_kind_of_project_gets_its_steps_and_validates() {
    let cases: &[Case] = &[
        (
            &[
                ("Cargo.toml", "[package]\nname = \"x\"\n"),
                ("Cargo.lock", ""),
            ],
            &[
                "run = \"cargo build --locked --release\"",
                "run = \"cargo test --locked\"",
            ],
        ),
        (
            &[
                (
                    "package.json",
                    r#"{"scripts": {"build": "tsc", "test": "jest"}}"#,
                ),
                ("package-lock.json", "{}"),
            ],
            &[
                "run = \"npm ci\"",
                "run = \"npm run build\"",
                "run = \"npm test\"",
                "needs = [\"install\"]",
            ],
        ),
        (
            &[("go.mod", "module example.com/x\n")],
            &[
                "run = \"go vet ./...\"",
                "run = \"go build ./...\"",
                "run = \"go test ./...\"",
            ],
        ),
        (
            &[("Makefile", "all: build\nbuild:\n\tcc x.c\ncheck:\n\t./t\n")],
            &["run = \"make build\"", "run = \"make check\""],
        ),
        (
            &[(
                "pyproject.toml",
                "[project]\nname = \"x\"\n[project.optional-dependencies]\ntest = [\"pytest\"]\n",
            )],
            &[
                "run = \"python3 -m venv .venv && .venv/bin/pip install -e .\"",
                "run = \".venv/bin/python -m pytest\"",
            ],
        ),
        (
            &[("requirements.txt", "requests\n")],
            &[
                "-r requirements.txt",
                "run = \".venv/bin/python -m unittest discover\"",
            ],
        ),
        (
            &[
                ("Cargo.toml", "[package]\n"),
                ("Makefile", "lint:\n\ttrue\n"),
            ],
            &[
                "name = \"cargo-build\"",
                "name = \"make-lint\"",
                "run = \"make lint\"",
            ],
        ),
        (
            &[("README", "nothing to build\n")],
            &["no build command yet"],
        ),
    ];
    for (files, want) in cases {
        let (_tmp, root) = repo(files);
        let text = init_and_validate(&root);
        for w in *want {
            assert!(text.contains(w), "{files:?}: no {w:?} in\n{text}");
        }
        for common in [
            "[services.my-app]",
            "default_branch = \"trunk\"",
            "environments = [\"dev\", \"staging\", \"prod\"]",
            "[environments.prod]\napproval = true",
            "config.example.toml",
            "man pipedeck",
        ] {
            assert!(text.contains(common), "{files:?}: no {common:?} in\n{text}");
        }
    }
}

#[test]
fn init_writes_at_the_repository_root_and_never_overwrites() {
    let (_tmp, root) = repo(&[("go.mod", "module x\n")]);
    let sub = root.join("cmd/tool");
    std::fs::create_dir_all(&sub).unwrap();
    ok(pipedeck(&sub).arg("init").output().unwrap());
    let first = std::fs::read_to_string(root.join("pipedeck.toml")).unwrap();
    assert!(!sub.join("pipedeck.toml").exists());

    let again = pipedeck(&root).arg("init").output().unwrap();
    assert_eq!(again.status.code(), Some(2));
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(
        err.contains("already exists") && err.contains("hint:"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("pipedeck.toml")).unwrap(),
        first
    );
}

#[test]
fn init_outside_a_repository_says_what_to_do() {
    let tmp = tempfile::tempdir().unwrap();
    let out = pipedeck(tmp.path()).arg("init").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not inside a git repository") && err.contains("git init"),
        "{err}"
    );
    assert!(!tmp.path().join("pipedeck.toml").exists());
}

/// The starter runs as written: the build steps for real, then the deploy
/// placeholder fails, saying what to set.
#[test]
fn the_starter_runs_its_build_and_stops_at_the_deploy_placeholder() {
    let (tmp, root) = repo(&[(
        "Makefile",
        "build:\n\techo compiled > out.txt\ntest: \n\ttest -f Makefile && echo tests passed\n",
    )]);
    init_and_validate(&root);
    git(&root, &["add", "-A"]);
    git(&root, &["commit", "-qm", "start"]);
    let out = pipedeck(&root)
        .arg("--data-dir")
        .arg(tmp.path().join("data"))
        .args(["run", "my-app", "--wait"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains("build/build") && said.contains("build/test"),
        "{said}"
    );
    assert!(said.matches("succeeded").count() >= 2, "{said}");
    assert!(said.contains("deploy/dev               failed"), "{said}");
    // The placeholder's message, as the step log holds it.
    let logs: String = std::fs::read_dir(tmp.path().join("data/logs/1"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    assert!(
        logs.contains("no deploy command yet: set services.my-app.deploy.dev.run"),
        "{logs}"
    );
}
