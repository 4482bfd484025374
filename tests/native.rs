//! Fitting in like a native tool: shell completion from a running engine (and
//! without one), man pages, colours by convention.

mod common;

use std::process::{Command, Output, Stdio};

use common::*;
use pipedeck::api::EngineClient;
use pipedeck::api::server::{HostOptions, Hosted, host};
use pipedeck::domain::Event;
use tokio::sync::broadcast;

const PROJECT: &str = r#"
[services.web]
repo_seed = "src"
[[services.web.steps]]
name = "build"
run = "echo built"

[services.api]
repo_seed = "src"
[[services.api.steps]]
name = "fail"
run = "exit 3"

[services.gated]
repo_seed = "src"
environments = ["prod"]
[services.gated.deploy.prod]
run = "true"
approval = true

[infra.net]
environment = "staging"
commands = { apply = "echo '{}' > \"$PIPEDECK_OUTPUTS\"" }
[[infra.net.resources]]
id = "vpc"
kind = "vpc"
"#;

fn pipedeck(p: &TestProject) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_pipedeck"));
    c.env_remove("PIPEDECK_DATA_DIR")
        .env_remove("NO_COLOR")
        .env_remove("CLICOLOR_FORCE")
        .env_remove("CLICOLOR")
        .env("PIPEDECK_CONFIG", p.file("no-user-config.toml"))
        .current_dir(p.path())
        .stdin(Stdio::null());
    c
}

/// What bash's completion function would get for `words`, completing the last one;
/// values only (the flags offered beside them are left out).
fn complete<S: AsRef<std::ffi::OsStr>>(p: &TestProject, words: &[S]) -> Vec<String> {
    let out = pipedeck(p)
        .env("PIPEDECK_COMPLETE", "bash")
        .env("_CLAP_COMPLETE_INDEX", (words.len() - 1).to_string())
        .env("_CLAP_IFS", "\n")
        .arg("--")
        .args(words)
        .output()
        .unwrap();
    values(out)
}

/// The candidates printed one a line, without the flags.
fn values(out: Output) -> Vec<String> {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text(&out)
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('-'))
        .map(str::to_string)
        .collect()
}

/// The same through bash itself: the script `completions bash` prints, sourced, and
/// its completion function called as bash calls it on <TAB> after `words`.
fn bash_complete(p: &TestProject, words: &[&str]) -> Vec<String> {
    let script = text(&pipedeck(p).args(["completions", "bash"]).output().unwrap());
    let cword = words.len() - 1;
    let test = format!(
        "{script}\nCOMP_WORDS=(\"$@\"); COMP_CWORD={cword}; COMP_TYPE=9\n\
         _clap_complete_pipedeck pipedeck \"${{COMP_WORDS[$COMP_CWORD]}}\"\n\
         printf '%s\\n' \"${{COMPREPLY[@]}}\"\n"
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(test)
        .arg("bash")
        .args(words)
        .env("PIPEDECK_CONFIG", p.file("no-user-config.toml"))
        .current_dir(p.path())
        .output()
        .unwrap();
    values(out)
}

/// An engine hosted in this process on `p`, with one finished run of each of `services`.
async fn host_with_runs(
    p: &TestProject,
    services: &[&str],
) -> (Hosted, broadcast::Receiver<Event>, Vec<i64>) {
    let hosted = host(
        p.project(),
        &p.data_dir(),
        &HostOptions::private(&p.data_dir()),
    )
    .await
    .unwrap();
    let mut rx = hosted.handle.subscribe();
    let mut ids = Vec::new();
    for s in services {
        let id = hosted.handle.trigger(trigger(s)).await.unwrap().id;
        wait_done(&hosted.handle, &mut rx, id).await;
        ids.push(id);
    }
    (hosted, rx, ids)
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completion_asks_the_running_engine_then_falls_back_to_the_project_file() {
    let p = TestProject::new(&format!("{HEADER}\n{PROJECT}"));
    let (hosted, mut rx, ids) = host_with_runs(&p, &["web", "api"]).await;
    let (web, api) = (ids[0], ids[1]);
    let gated = hosted.handle.trigger(trigger("gated")).await.unwrap().id;
    wait_for(
        &mut rx,
        |e| matches!(e, Event::Gate { gate } if gate.run_id == gated && gate.decided_by.is_none()),
    )
    .await;
    // The project file the shell sees is not the engine's: names come from the engine.
    std::fs::write(
        p.file("other.toml"),
        "[services.elsewhere]\nrepo = \"/x\"\n",
    )
    .unwrap();

    let dd = p.data_dir();
    let dd = dd.to_str().unwrap();
    let line = |rest: &[&str]| -> Vec<String> {
        ["pipedeck", "--data-dir", dd, "--project", "other.toml"]
            .iter()
            .chain(rest)
            .map(|w| w.to_string())
            .collect()
    };
    let (g, a, w) = (gated.to_string(), api.to_string(), web.to_string());
    assert_eq!(
        complete(&p, &line(&["show", ""])),
        [g.clone(), a, w],
        "newest first"
    );
    assert_eq!(complete(&p, &line(&["approve", ""])).len(), 3);
    assert_eq!(complete(&p, &line(&["approve", &g, ""])), ["prod"]);
    assert_eq!(
        bash_complete(&p, &["pipedeck", "--data-dir", dd, "approve", &g, "pr"]),
        ["prod"]
    );
    assert_eq!(complete(&p, &line(&["run", ""])), ["api", "gated", "web"]);
    assert_eq!(complete(&p, &line(&["run", "w"])), ["web"]);
    assert_eq!(complete(&p, &line(&["infra", "run", ""]))[0], "net");
    assert_eq!(
        complete(&p, &line(&["stack-job", "preflight", ""]))[0],
        "vpc"
    );
    // Commands and flags come from the clap definitions, engine or not.
    assert!(complete(&p, &line(&["app"])).contains(&"approve".to_string()));

    hosted.shutdown().await;
    // No engine: no run ids, names from the project file the line names.
    assert_eq!(complete(&p, &line(&["show", ""])), Vec::<String>::new());
    assert_eq!(complete(&p, &line(&["run", "e"])), ["elsewhere"]);
    // ... or from ./pipedeck.toml when it names none.
    // Files for the project file.
    assert_eq!(
        complete(&p, &["pipedeck", "--project", "pipe"]),
        ["pipedeck.toml"]
    );
    let words = ["pipedeck", "--data-dir", dd, "run", ""];
    assert_eq!(complete(&p, &words), ["api", "gated", "web"]);
}

#[test]
fn completion_scripts_call_back_into_pipedeck() {
    let p = TestProject::new(HEADER);
    for (shell, needle) in [
        ("bash", "complete -o nospace -o bashdefault"),
        ("zsh", "compdef"),
        (
            "fish",
            "complete --keep-order --exclusive --command pipedeck",
        ),
    ] {
        let out = pipedeck(&p).args(["completions", shell]).output().unwrap();
        assert!(out.status.success(), "{shell}");
        let script = text(&out);
        assert!(script.contains(needle), "{shell}: {script}");
        assert!(script.contains("PIPEDECK_COMPLETE"), "{shell}: {script}");
    }
    let out = pipedeck(&p).args(["completions", "tcsh"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn man_pages_one_a_command() {
    let p = TestProject::new(HEADER);
    let out = pipedeck(&p).args(["man", "approve"]).output().unwrap();
    assert!(out.status.success());
    let page = text(&out);
    assert!(page.contains(".TH pipedeck-approve 1"), "{page}");
    assert!(page.contains("Approve the gate waiting before an environment"));
    let out = pipedeck(&p).args(["man", "infra", "run"]).output().unwrap();
    assert!(text(&out).contains(".TH pipedeck-infra-run 1"));
    let out = pipedeck(&p).args(["man", "approv"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("pipedeck-approve"));

    let dir = p.file("man1");
    let out = pipedeck(&p)
        .args(["man", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(out.status.success());
    for page in [
        "pipedeck.1",
        "pipedeck-approve.1",
        "pipedeck-stack-job-preflight.1",
    ] {
        let text = std::fs::read_to_string(dir.join(page)).unwrap();
        assert!(text.starts_with(".ie"), "{page}");
    }
    // The top page carries the exit codes.
    let top = std::fs::read_to_string(dir.join("pipedeck.1")).unwrap();
    assert!(top.contains("no engine is running"), "{top}");
}

/// `runs` with a failed run: the status is plain into a pipe, coloured when forced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statuses_are_coloured_only_on_a_terminal_or_when_asked() {
    let p = TestProject::new(&format!("{HEADER}\n{PROJECT}"));
    let (hosted, _rx, _) = host_with_runs(&p, &["api"]).await;
    let runs = |args: &[&str], env: &[(&str, &str)]| {
        let mut c = pipedeck(&p);
        c.arg("--data-dir").arg(p.data_dir()).arg("runs").args(args);
        for (k, v) in env {
            c.env(k, v);
        }
        let out = c.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text(&out)
    };
    let red = "\x1b[1;31mfailed";
    let plain = runs(&[], &[]);
    assert!(
        plain.contains("failed") && !plain.contains('\x1b'),
        "{plain}"
    );
    assert!(runs(&[], &[("CLICOLOR_FORCE", "1")]).contains(red));
    assert!(runs(&["--color", "always"], &[]).contains(red));
    assert!(!runs(&["--color", "always", "--json"], &[]).contains('\x1b'));
    assert!(!runs(&[], &[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "1")]).contains('\x1b'));
    assert!(!runs(&["--color", "never"], &[("CLICOLOR_FORCE", "1")]).contains('\x1b'));
    hosted.shutdown().await;
}
