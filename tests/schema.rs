//! The project file's JSON Schema: shipped as generated, met by every file that
//! loads, and failed by every invalid fixture whose fault a schema can see.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use pipedeck::config::json_schema::{project_schema, project_schema_text};
use pipedeck::config::load_project;

/// The invalid fixtures that a schema can refuse: a wrong type, an unknown key, a
/// value out of range or outside an enum or pattern, a missing or doubled key. The
/// others need the whole file (references, cycles, duplicates).
const SCHEMA_MATTERS: &[&str] = &[
    "bad_log_compress",
    "bad_backend",
    "bad_driver",
    "bad_duration",
    "bad_pull_requests",
    "bad_service_name",
    "huge_concurrency",
    "no_repo",
    "retries_on_apply",
    "retries_on_deploy",
    "secret_two_sources",
    "slurm_resource_bad_cpus",
    "too_many_retries",
    "unknown_key",
    "wrong_type",
    "zero_concurrency",
];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn fixtures(kind: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root().join("tests/fixtures").join(kind))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    v.sort();
    v
}

/// A TOML file as the JSON value a schema validator reads.
fn as_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap();
    toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn errors(validator: &jsonschema::Validator, path: &Path) -> Vec<String> {
    validator
        .iter_errors(&as_json(path))
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

fn validator() -> jsonschema::Validator {
    jsonschema::validator_for(&project_schema()).expect("the schema is a valid draft 7 schema")
}

#[test]
fn the_shipped_schema_is_the_generated_one() {
    let shipped = std::fs::read_to_string(root().join("assets/pipedeck.schema.json")).unwrap();
    assert!(
        shipped == project_schema_text(),
        "assets/pipedeck.schema.json is stale: run `cargo run -- schema > assets/pipedeck.schema.json`"
    );
}

#[test]
fn the_example_and_the_demo_point_editors_at_the_schema() {
    for (file, directive) in [
        (
            "config.example.toml",
            "#:schema ./assets/pipedeck.schema.json",
        ),
        (
            "assets/demo/pipedeck.toml",
            "#:schema ../pipedeck.schema.json",
        ),
    ] {
        let text = std::fs::read_to_string(root().join(file)).unwrap();
        assert_eq!(text.lines().next(), Some(directive), "{file}");
        // The path is relative to the file, as taplo reads it.
        let target = root()
            .join(file)
            .parent()
            .unwrap()
            .join(directive.trim_start_matches("#:schema "));
        assert!(target.is_file(), "{file}: {} is missing", target.display());
    }
}

#[test]
fn every_file_that_loads_passes_the_schema() {
    let v = validator();
    let mut files = vec![
        root().join("config.example.toml"),
        root().join("assets/demo/pipedeck.toml"),
    ];
    let valid = fixtures("valid");
    assert!(valid.len() >= 4, "only {} valid fixtures", valid.len());
    files.extend(valid);
    for f in files {
        load_project(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let errs = errors(&v, &f);
        assert!(errs.is_empty(), "{}: {errs:#?}", f.display());
    }
}

#[test]
fn invalid_fixtures_fail_the_schema_exactly_when_it_can_tell() {
    let v = validator();
    let mut failing = BTreeSet::new();
    for f in fixtures("invalid") {
        assert!(load_project(&f).is_err(), "{} loads", f.display());
        if !errors(&v, &f).is_empty() {
            failing.insert(f.file_stem().unwrap().to_string_lossy().into_owned());
        }
    }
    let want: BTreeSet<String> = SCHEMA_MATTERS.iter().map(|s| s.to_string()).collect();
    assert_eq!(failing, want);
}

#[test]
fn schema_errors_name_the_key() {
    let v = validator();
    let f = root().join("tests/fixtures/invalid/unknown_key.toml");
    let errs = errors(&v, &f);
    assert!(
        errs.iter()
            .any(|e| e.contains("need") && e.contains("/services/web/steps/0")),
        "{errs:#?}"
    );
    let f = root().join("tests/fixtures/invalid/huge_concurrency.toml");
    let errs = errors(&v, &f);
    assert!(
        errs.iter()
            .any(|e| e.contains("1024") && e.contains("/engine/concurrency")),
        "{errs:#?}"
    );
}
