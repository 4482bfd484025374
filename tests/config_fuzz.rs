//! Bad input never panics: the project loader and the user-config loader are fed
//! random TOML documents built from the real key names with random values, mutated
//! copies of the example config, and random bytes. Errors are fine; each must name a
//! line of the text. A project that loads has every number and duration in range.

use std::path::Path;

use pipedeck::config::user::UserConfig;
use pipedeck::config::{ConfigError, Project, parse_project};
use pipedeck::tui::keymap::Keymap;
use proptest::prelude::*;

/// Table headers of the project file, with names drawn from a small set so that
/// references (environments, needs, depends_on) sometimes resolve.
fn header() -> impl Strategy<Value = String> {
    let name = || prop::sample::select(vec!["web", "dev", "prod", "a-b", "x y", "é", ""]);
    prop_oneof![
        Just("[project]".to_string()),
        Just("[engine]".to_string()),
        Just("[policy]".to_string()),
        Just("[retention]".to_string()),
        name().prop_map(|n| format!("[environments.\"{n}\"]")),
        name().prop_map(|n| format!("[environments.\"{n}\".policy]")),
        name().prop_map(|n| format!("[services.\"{n}\"]")),
        name().prop_map(|n| format!("[[services.\"{n}\".steps]]")),
        (name(), name()).prop_map(|(s, e)| format!("[services.\"{s}\".deploy.\"{e}\"]")),
        (name(), name()).prop_map(|(s, k)| format!("[services.\"{s}\".secrets.\"{k}\"]")),
        name().prop_map(|n| format!("[infra.\"{n}\"]")),
        name().prop_map(|n| format!("[infra.\"{n}\".commands]")),
        name().prop_map(|n| format!("[[infra.\"{n}\".resources]]")),
        name().prop_map(|n| format!("[[infra.\"{n}\".resources]]\nid = \"{n}\"\nkind = \"k\"")),
    ]
}

/// Every key the project file knows (and a few it does not).
const PROJECT_KEYS: &[&str] = &[
    "name",
    "concurrency",
    "kill_grace",
    "approval",
    "approvers",
    "forbid_self_approval",
    "expires_after",
    "queue",
    "timeout",
    "retries",
    "keep_runs",
    "keep_days",
    "policy",
    "skip_refresh",
    "require_preview",
    "pause_before_apply",
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
    "env",
    "file",
    "steps",
    "run",
    "needs",
    "deploy",
    "environment",
    "driver",
    "module",
    "terraform_binary",
    "commands",
    "resources",
    "id",
    "kind",
    "inputs",
    "depends_on",
    "credentials",
    "init",
    "refresh",
    "preview",
    "apply",
    "destroy",
    "unknown_key",
];

/// A TOML value: numbers at and past the edges, durations with any number and unit,
/// strings, booleans, arrays and inline tables.
fn value() -> impl Strategy<Value = String> {
    let unit = prop::sample::select(vec!["ms", "s", "m", "h", "d", "", "us", " s", "D"]);
    let leaf = prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        prop::sample::select(vec![
            "0",
            "-1",
            "1",
            "1024",
            "1025",
            "9223372036854775807",
            "-9223372036854775808",
            "18446744073709551616",
            "1e400",
            "nan",
            "inf",
            "-0.0",
            "1.5",
        ])
        .prop_map(str::to_string),
        (any::<u64>(), unit.clone()).prop_map(|(n, u)| format!("\"{n}{u}\"")),
        (0u64..100_000, unit).prop_map(|(n, u)| format!("\"{n}{u}\"")),
        any::<bool>().prop_map(|b| b.to_string()),
        ".{0,12}".prop_map(|s| toml::Value::String(s).to_string()),
        prop::sample::select(vec![
            "\"${web.outputs.id}\"",
            "\"${a-b.outputs.x}/${é.outputs.}\"",
            "\"off\"",
            "\"build\"",
            "\"deploy\"",
            "\"command\"",
            "\"terraform\"",
            "\"tofu\"",
            "1979-05-27T07:32:00Z",
        ])
        .prop_map(str::to_string),
    ];
    leaf.prop_recursive(2, 12, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|v| format!("[{}]", v.join(", "))),
            prop::collection::vec((prop::sample::select(PROJECT_KEYS), inner), 0..4).prop_map(
                |kv| {
                    let kv: Vec<String> = kv.iter().map(|(k, v)| format!("{k} = {v}")).collect();
                    format!("{{ {} }}", kv.join(", "))
                }
            ),
        ]
    })
}

/// A duration: any number, or one near the ranges' edges, with any unit.
fn duration() -> impl Strategy<Value = String> {
    let unit = prop::sample::select(vec!["ms", "s", "m", "h", "d", "", "us"]);
    let n = prop_oneof![
        any::<u64>(),
        0u64..3,
        20u64..30,
        360u64..370,
        86_399_999u64..86_400_002
    ];
    let usual = (1u64..1000, prop::sample::select(vec!["ms", "s", "m"]));
    prop_oneof![1 => (n, unit), 3 => usual].prop_map(|(n, u)| format!("\"{n}{u}\""))
}

/// A value of the type `key` takes, often one that loads.
fn typed(key: &'static str) -> BoxedStrategy<String> {
    let name = || prop::sample::select(vec!["\"web\"", "\"dev\"", "\"prod\"", "\"s0\"", "\"s1\""]);
    let names =
        move || prop::collection::vec(name(), 0..3).prop_map(|v| format!("[{}]", v.join(", ")));
    match key {
        "concurrency" => prop_oneof![any::<i64>(), -2i64..1030]
            .prop_map(|n| n.to_string())
            .boxed(),
        "kill_grace" | "expires_after" => duration().boxed(),
        "approval"
        | "forbid_self_approval"
        | "pipelines_enabled"
        | "deployments_enabled"
        | "skip_refresh"
        | "require_preview"
        | "pause_before_apply" => any::<bool>().prop_map(|b| b.to_string()).boxed(),
        "approvers" | "branches" | "tags" | "credentials" | "environments" | "needs"
        | "depends_on" => names().boxed(),
        "pull_requests" => {
            prop::sample::select(vec!["\"off\"", "\"build\"", "\"deploy\"", "\"all\""])
                .prop_map(str::to_string)
                .boxed()
        }
        "driver" => prop::sample::select(vec!["\"command\"", "\"terraform\"", "\"tofu\"", "\"x\""])
            .prop_map(str::to_string)
            .boxed(),
        "commands" => Just("{ apply = \"true\" }".to_string()).boxed(),
        "inputs" => Just("{ id = \"${web.outputs.id}\", n = 3 }".to_string()).boxed(),
        _ => name().prop_map(str::to_string).boxed(),
    }
}

fn project_doc() -> impl Strategy<Value = String> {
    let line = prop::sample::select(PROJECT_KEYS)
        .prop_flat_map(|k| prop_oneof![1 => value(), 3 => typed(k)].prop_map(move |v| (k, v)))
        .prop_map(|(k, v)| format!("{k} = {v}"));
    let section = (header(), prop::collection::vec(line, 0..6))
        .prop_map(|(h, lines)| format!("{h}\n{}\n", lines.join("\n")));
    prop::collection::vec(section, 0..8).prop_map(|s| s.concat())
}

/// `key = value` lines for some of `keys` (each at most once), typed or not.
fn body(keys: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop::sample::subsequence(keys, 0..=keys.len())
        .prop_flat_map(|ks| {
            ks.into_iter()
                .map(|k| {
                    prop_oneof![1 => value(), 30 => typed(k)]
                        .prop_map(move |v| format!("{k} = {v}"))
                })
                .collect::<Vec<_>>()
        })
        .prop_map(|lines| lines.join("\n"))
}

/// A project shaped as the schema wants, with random values in every table: most
/// load, so the ranges of every duration and number are checked on real projects.
fn structured_doc() -> impl Strategy<Value = String> {
    const ENV: &[&str] = &[
        "approval",
        "approvers",
        "forbid_self_approval",
        "expires_after",
    ];
    const DEPLOY: &[&str] = &[
        "approval",
        "forbid_self_approval",
        "expires_after",
        "kill_grace",
    ];
    const STEP: &[&str] = &["needs", "kill_grace"];
    const RESOURCE: &[&str] = &["depends_on", "approval", "kill_grace"];
    let steps = prop::collection::vec(body(STEP), 0..4).prop_map(|bodies| {
        bodies
            .iter()
            .enumerate()
            .map(|(i, b)| format!("[[services.web.steps]]\nname = \"s{i}\"\nrun = \"true\"\n{b}\n"))
            .collect::<String>()
    });
    let resources = prop::collection::vec(body(RESOURCE), 0..3).prop_map(|bodies| {
        bodies
            .iter()
            .enumerate()
            .map(|(i, b)| {
                format!("[[infra.net.resources]]\nid = \"r{i}\"\nkind = \"k\"\ncommands = {{ apply = \"true\" }}\n{b}\n")
            })
            .collect::<String>()
    });
    (
        body(&["concurrency", "kill_grace"]),
        body(ENV),
        body(ENV),
        steps,
        body(DEPLOY),
        body(DEPLOY),
        resources,
    )
        .prop_map(
            |(engine, dev, prod, steps, deploy_dev, deploy_prod, resources)| {
                format!(
                    "[engine]\n{engine}\n[environments.dev]\n{dev}\n[environments.prod]\n{prod}\n\
                 [services.web]\nrepo = \"/r\"\nenvironments = [\"dev\", \"prod\"]\n{steps}\
                 [services.web.deploy.dev]\nrun = \"true\"\n{deploy_dev}\n\
                 [services.web.deploy.prod]\nrun = \"true\"\n{deploy_prod}\n\
                 [infra.net]\nenvironment = \"prod\"\n{resources}"
                )
            },
        )
}

fn user_doc() -> impl Strategy<Value = String> {
    let key = prop::sample::select(vec!["data_dir", "user", "ascii", "keymap", "colour"]);
    let binding = prop::sample::select(vec![
        "\"runs.cancel\"",
        "\"global.quit\"",
        "\"detail.approve\"",
        "\"nope.nothing\"",
        "\"\"",
    ]);
    let top = (key, value()).prop_map(|(k, v)| format!("{k} = {v}"));
    let keys = prop::collection::vec((binding, value()), 0..4).prop_map(|kv| {
        let kv: Vec<String> = kv.iter().map(|(k, v)| format!("{k} = {v}")).collect();
        format!("[keymap]\n{}", kv.join("\n"))
    });
    (prop::collection::vec(top, 0..5), prop::option::of(keys))
        .prop_map(|(top, keys)| format!("{}\n{}\n", top.join("\n"), keys.unwrap_or_default()))
}

/// Loads `text` as a project file; checks what an error says and what a project holds.
fn check_project(text: &str) -> Result<(), TestCaseError> {
    let path = Path::new("/nonexistent/fuzz/pipedeck.toml");
    match parse_project(path, text) {
        Ok(p) => check_ranges(&p),
        Err(errs) => {
            prop_assert!(!errs.is_empty());
            let lines = text.split('\n').count();
            for e in &errs {
                check_error(e, lines)?;
            }
            Ok(())
        }
    }
}

fn check_error(e: &ConfigError, lines: usize) -> Result<(), TestCaseError> {
    prop_assert!((1..=lines).contains(&e.line), "{e} (of {lines} lines)");
    prop_assert!(e.column >= 1, "{e}");
    prop_assert!(!e.message.is_empty() && !e.hint.is_empty(), "{e}");
    let shown = e.to_string();
    let head = format!(
        "/nonexistent/fuzz/pipedeck.toml:{}:{}: error: ",
        e.line, e.column
    );
    prop_assert!(shown.starts_with(&head), "{shown}");
    Ok(())
}

fn check_ranges(p: &Project) -> Result<(), TestCaseError> {
    const DAY: u64 = 86_400_000;
    let grace = |ms: u64| (1..=DAY).contains(&ms);
    prop_assert!((1..=1024).contains(&p.engine.concurrency));
    prop_assert!(grace(p.engine.kill_grace_ms));
    for s in p.services.values() {
        prop_assert!(s.steps.iter().all(|st| grace(st.kill_grace_ms)));
        for e in &s.environments {
            prop_assert!(grace(e.kill_grace_ms));
            if let Some(ms) = e.gate.expires_after_ms {
                prop_assert!((1..=365 * DAY).contains(&ms));
            }
        }
    }
    for i in p.infra.values() {
        prop_assert!(i.resources.iter().all(|r| grace(r.kill_grace_ms)));
    }
    Ok(())
}

fn check_user(text: &str) -> Result<(), TestCaseError> {
    let path = Path::new("/nonexistent/fuzz/config.toml");
    match UserConfig::parse(path, text) {
        // Applying the key overrides (as the dashboard does) errs or not, never panics.
        Ok(c) => {
            let _ = Keymap::default().apply_overrides(&c.keymap);
        }
        Err(e) => {
            let shown = e.to_string();
            let line: usize = shown
                .strip_prefix("/nonexistent/fuzz/config.toml:")
                .and_then(|r| r.split(':').next())
                .and_then(|l| l.parse().ok())
                .unwrap_or(0);
            prop_assert!((1..=text.split('\n').count()).contains(&line), "{shown}");
        }
    }
    Ok(())
}

static EXAMPLE: std::sync::LazyLock<Vec<u8>> = std::sync::LazyLock::new(|| {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.toml")).unwrap()
});

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn random_project_documents_never_panic(doc in project_doc()) {
        check_project(&doc)?;
    }

    #[test]
    fn random_values_in_a_well_formed_project_never_panic(doc in structured_doc()) {
        check_project(&doc)?;
    }

    #[test]
    fn random_user_configs_never_panic(doc in user_doc()) {
        check_user(&doc)?;
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let text = String::from_utf8_lossy(&bytes);
        check_project(&text)?;
        check_user(&text)?;
    }

    /// The example config, cut short and with bytes replaced: errors deep inside
    /// validation, not only at the TOML syntax.
    #[test]
    fn a_damaged_example_config_never_panics(
        cut in 0.0f64..=1.0,
        edits in prop::collection::vec((0.0f64..1.0, any::<u8>()), 0..4),
    ) {
        let mut bytes = EXAMPLE.clone();
        bytes.truncate((bytes.len() as f64 * cut) as usize);
        for (at, b) in edits {
            if !bytes.is_empty() {
                let i = ((bytes.len() - 1) as f64 * at) as usize;
                bytes[i] = b;
            }
        }
        check_project(&String::from_utf8_lossy(&bytes))?;
    }
}

/// The checks themselves can fail: an out-of-range value is an error at its line.
#[test]
fn an_out_of_range_duration_is_caught_at_its_line() {
    let doc = "[engine]\nconcurrency = 2\nkill_grace = \"2d\"\n";
    let errs = parse_project(Path::new("/p/pipedeck.toml"), doc).unwrap_err();
    assert_eq!((errs[0].line, errs[0].column), (3, 14), "{}", errs[0]);
    assert!(errs[0].message.contains("from 1ms to 1d"), "{}", errs[0]);
}
