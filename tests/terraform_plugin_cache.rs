//! With `TF_PLUGIN_CACHE_DIR` set, `init`s take turns (the cache takes no concurrent
//! writers) while the other operations stay parallel. Its own test binary: the
//! variable is set for the whole process before the engine starts.
//!
//! Ignored by a plain `cargo test`: it needs `terraform` or `tofu` on PATH; `.ci/run`
//! runs it with `--ignored` where one is.

mod common;

use common::*;
use pipedeck::api::EngineClient;
use pipedeck::config::load_project;
use pipedeck::domain::RunStatus;
use pipedeck::engine::executor::terraform::find_binary;

#[ignore = "needs terraform or tofu >= 1.4 on PATH (no registry here provides one); .ci/run runs it with --ignored where one is"]
#[test]
fn with_a_plugin_cache_inits_take_turns() {
    let bin = find_binary("terraform", None).expect("neither terraform nor tofu is on PATH");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let cache = dir.join("plugin-cache");
    std::fs::create_dir_all(&cache).unwrap();
    // SAFETY: set before any other thread of this test binary exists (one test, and the
    // runtime is built below).
    unsafe { std::env::set_var("TF_PLUGIN_CACHE_DIR", &cache) };
    // The binary pipedeck runs: terraform, with each init noted as it starts and ends,
    // and an overlap written down if one starts while another runs.
    let marks = dir.join("marks");
    std::fs::create_dir_all(&marks).unwrap();
    let wrapper = dir.join("terraform");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nif [ \"$1\" = init ]; then\n  mkdir '{m}/busy' 2>/dev/null || echo overlap >> '{m}/overlaps'\n  echo start >> '{m}/inits'\n  '{bin}' \"$@\"; rc=$?\n  sleep 0.2\n  rmdir '{m}/busy' 2>/dev/null\n  exit $rc\nfi\nexec '{bin}' \"$@\"\n",
            m = marks.display(),
            bin = bin.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::create_dir_all(dir.join("mod")).unwrap();
    std::fs::write(
        dir.join("mod/main.tf"),
        "variable \"value\" { type = string }\nresource \"terraform_data\" \"thing\" { input = var.value }\n",
    )
    .unwrap();
    let resources: String = (1..=4)
        .map(|i| format!("\n[[infra.c.resources]]\nid = \"r{i}\"\nkind = \"terraform_data\"\ninputs = {{ value = \"{i}\" }}\n"))
        .collect();
    std::fs::write(
        dir.join("pipedeck.toml"),
        format!(
            "[engine]\nconcurrency = 4\n\n[environments.dev]\n\n[infra.c]\nenvironment = \"dev\"\ndriver = \"terraform\"\nterraform_binary = \"{}\"\nmodule = \"mod\"\n{resources}",
            wrapper.display()
        ),
    )
    .unwrap();
    let project = load_project(&dir.join("pipedeck.toml")).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (h, _) = pipedeck::engine::start(project, &dir.join("data"))
            .await
            .unwrap();
        let mut rx = h.subscribe();
        let run = h.trigger_infra("c", false).await.unwrap();
        let done = wait_done(&h, &mut rx, run.id).await;
        assert_eq!(done.run.status, RunStatus::Succeeded, "{done:#?}");
    });
    let inits = std::fs::read_to_string(marks.join("inits")).unwrap();
    assert_eq!(inits.lines().count(), 4, "{inits}");
    assert!(
        !marks.join("overlaps").exists(),
        "two inits ran at once with TF_PLUGIN_CACHE_DIR set"
    );
}
