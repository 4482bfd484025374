//! Pipeline as code: every invalid fixture fails with exactly the error beside it
//! (file:line:column, what is wrong, a hint); valid projects load.

use std::path::Path;

use pipedeck::config::{LoadError, load_project};

#[test]
fn invalid_fixtures_fail_with_the_expected_error() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/invalid");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let expected = std::fs::read_to_string(path.with_extension("err"))
            .unwrap_or_else(|_| panic!("{} has no .err file", path.display()));
        let err = match load_project(&path) {
            Err(LoadError::Invalid(errs)) => errs,
            other => panic!("{}: expected a config error, got {other:?}", path.display()),
        };
        let first = err[0].to_string();
        let (head, hint) = first.split_once('\n').unwrap();
        let want = format!("{}/{}", dir.display(), expected.trim());
        assert_eq!(head, want, "{}", path.display());
        assert!(
            hint.trim_start().starts_with("hint: ") && hint.len() > 12,
            "{first}"
        );
        checked += 1;
    }
    assert!(checked >= 8, "only {checked} fixtures");
}

#[test]
fn the_demo_and_the_example_config_are_valid() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for p in ["assets/demo/pipedeck.toml", "config.example.toml"] {
        let project = load_project(&root.join(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
        assert!(!project.services.is_empty(), "{p}");
    }
}

#[test]
fn the_example_documents_every_key() {
    // Every key the schema accepts appears in config.example.toml.
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.toml"))
            .unwrap();
    for key in [
        "name",
        "concurrency",
        "kill_grace",
        "approval",
        "approvers",
        "forbid_self_approval",
        "expires_after",
        "queue",
        "repo",
        "repo_seed",
        "default_branch",
        "branches",
        "tags",
        "pull_requests",
        "environments",
        "pipelines_enabled",
        "deployments_enabled",
        "secrets",
        "env =",
        "file =",
        "steps",
        "run",
        "needs",
        "deploy",
    ] {
        assert!(
            text.contains(key),
            "config.example.toml does not mention `{key}`"
        );
    }
}
