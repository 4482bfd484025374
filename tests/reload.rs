//! The project file edited while the engine runs (issue 21): a valid change applies to
//! new runs, a run already started keeps its definition, a broken change keeps the last
//! good version in force and says why.

mod common;

use common::bin::*;
use common::*;

fn edit(p: &TestProject, from: &str, to: &str) {
    let text = std::fs::read_to_string(p.project_file()).unwrap();
    assert!(text.contains(from), "{from}");
    std::fs::write(p.project_file(), text.replace(from, to)).unwrap();
}

/// What the prod deploy of run `id` printed, once it is approved and done.
fn deployed(p: &TestProject, id: &str) -> String {
    run_ok(p, &["approve", id, "prod"]);
    wait_status(p, id, &["succeeded"]);
    let logs = run_ok(p, &["logs", id, "--step", "deploy/prod"]);
    logs.lines().last().unwrap_or_default().to_string()
}

fn to_gate(p: &TestProject) -> String {
    let id = run_ok(p, &["run", "gated"]).trim().to_string();
    wait_status(p, &id, &["awaiting_approval"]);
    id
}

#[test]
fn an_edit_applies_to_new_runs_and_a_broken_one_keeps_the_last_good_version() {
    let p = TestProject::new(&format!("{HEADER}\n{GATED}"));
    let _engine = serve(&p);
    let first = to_gate(&p);

    // Forced reload: the waiting run keeps its definition, the next run gets the new one.
    edit(&p, "run = \"echo prod\"", "run = \"echo prod v2\"");
    run_ok(&p, &["reload"]);
    let second = to_gate(&p);
    assert!(deployed(&p, &first).ends_with("prod"));
    assert!(deployed(&p, &second).ends_with("prod v2"));

    // A broken edit: refused with file:line, the last good version stays in force.
    edit(&p, "run = \"echo prod v2\"", "run = \"echo prod v2");
    let out = run_out(&p, &["reload"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let said = String::from_utf8_lossy(&out.stdout);
    let file = p.project_file().display().to_string();
    assert!(said.contains(&format!("{file}:")), "{said}");
    assert!(said.contains("stays in force"), "{said}");
    assert_eq!(run_out(&p, &["status"]).status.code(), Some(2));
    let third = to_gate(&p);
    assert!(deployed(&p, &third).ends_with("prod v2"));

    // Fixed and changed again, without asking: the engine notices on its own.
    // (`status` exits 2 while the file is broken: read its JSON all the same.)
    let status = |p: &TestProject| -> serde_json::Value {
        serde_json::from_slice(&run_out(p, &["status", "--json"]).stdout).unwrap()
    };
    let before = status(&p)["loaded_at"].as_i64().unwrap();
    edit(&p, "run = \"echo prod v2", "run = \"echo prod v3\"");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let st = status(&p);
        if st["error"].is_null() && st["loaded_at"].as_i64().unwrap() > before {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the edit was never loaded: {st}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let fourth = to_gate(&p);
    assert!(deployed(&p, &fourth).ends_with("prod v3"));
}
