//! Shell completion (`pipedeck completions bash|zsh|fish`), with clap_complete's
//! dynamic engine: the script the shell sources calls `pipedeck` back on every
//! <TAB> (`PIPEDECK_COMPLETE=bash pipedeck -- pipedeck show 1`), which answers from
//! the clap definitions (commands, flags, files) and, for values that name
//! something, from the engine running for the data dir: run ids, service and infra
//! project names, resources, waiting gates. With no engine answering, names come from
//! the project file (`--project`, the demo with `--demo`, else ./pipedeck.toml);
//! run ids and gates then complete to nothing.

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use clap::CommandFactory;
use clap_complete::engine::{ArgValueCandidates, CompletionCandidate};
use clap_complete::env::{Bash, EnvCompleter, Fish, Zsh};

use super::{Cli, exit};
use crate::api::EngineClient;
use crate::api::client::Client;
use crate::domain::command::Catalog;
use crate::domain::{GateInfo, Request, RunInfo};
use crate::store::RunFilter;

/// The variable that turns a `pipedeck` call into a completion request. Not clap's
/// default `COMPLETE`, which is too generic a name to leave set by accident.
pub const VAR: &str = "PIPEDECK_COMPLETE";

/// How long a completion waits for the engine before answering without it.
const ENGINE_WAIT: Duration = Duration::from_secs(2);

/// Most run ids offered.
const RUNS: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

/// Answers a completion request and exits, if this process is one.
pub fn answer_if_asked() {
    clap_complete::CompleteEnv::with_factory(Cli::command)
        .var(VAR)
        .complete();
}

/// `pipedeck completions SHELL`: the script to source (or install as
/// `/usr/share/bash-completion/completions/pipedeck` and the like).
pub fn script(shell: Shell) -> i32 {
    let sh: &dyn EnvCompleter = match shell {
        Shell::Bash => &Bash,
        Shell::Zsh => &Zsh,
        Shell::Fish => &Fish,
    };
    let mut buf = Vec::new();
    if let Err(e) = sh.write_registration(VAR, "pipedeck", "pipedeck", &completer(), &mut buf) {
        eprintln!("error: cannot make the completion script: {e}");
        return exit::RUN_FAILED;
    }
    // A failed write is reported once, and sets the exit code (141 for `| head`).
    if let Err(e) = std::io::stdout().write_all(&buf) {
        super::output::stdout_failed(&e);
    }
    exit::OK
}

/// The program the script calls back: `pipedeck` when it was found on PATH (what a
/// packaged script wants), else this binary's absolute path (`cargo run`, ./target).
fn completer() -> String {
    let invoked = std::env::args_os().next().unwrap_or_default();
    if !PathBuf::from(&invoked).to_string_lossy().contains('/') {
        return "pipedeck".into();
    }
    std::env::current_exe()
        .ok()
        .and_then(|p| p.to_str().map(str::to_string))
        .unwrap_or_else(|| "pipedeck".into())
}

/// Run ids, newest first, each with its service, place and status.
pub fn run_ids() -> ArgValueCandidates {
    ArgValueCandidates::new(|| {
        let filter = RunFilter {
            limit: Some(RUNS),
            ..Default::default()
        };
        ask::<Vec<RunInfo>>(Request::ListRuns { filter })
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                CompletionCandidate::new(r.id.to_string())
                    .help(Some(
                        format!("{} {}@{} {}", r.run_type, r.service, r.place(), r.status).into(),
                    ))
                    .display_order(Some(i))
            })
            .collect()
    })
}

/// The environments (or `env/node`) of waiting gates.
pub fn waiting_gates() -> ArgValueCandidates {
    ArgValueCandidates::new(|| {
        let mut gates = ask::<Vec<GateInfo>>(Request::WaitingGates).unwrap_or_default();
        gates.sort_by(|a, b| a.env.cmp(&b.env));
        gates.dedup_by(|a, b| a.env == b.env);
        gates
            .into_iter()
            .map(|g| {
                CompletionCandidate::new(&g.env)
                    .help(Some(format!("waiting in run {}", g.run_id).into()))
            })
            .collect()
    })
}

pub fn services() -> ArgValueCandidates {
    ArgValueCandidates::new(|| names(|c| c.services))
}

pub fn infra_projects() -> ArgValueCandidates {
    ArgValueCandidates::new(|| names(|c| c.infra))
}

pub fn resources() -> ArgValueCandidates {
    ArgValueCandidates::new(|| names(|c| c.resources))
}

fn names(pick: fn(Catalog) -> Vec<String>) -> Vec<CompletionCandidate> {
    let catalog = ask::<Catalog>(Request::Catalog).or_else(|| {
        crate::config::load_project(&project_file())
            .ok()
            .map(|p| p.catalog())
    });
    catalog
        .map(pick)
        .unwrap_or_default()
        .into_iter()
        .map(CompletionCandidate::new)
        .collect()
}

/// The words being completed: what follows `--` in this process's arguments.
fn line() -> Vec<OsString> {
    let args: Vec<OsString> = std::env::args_os().collect();
    match args.iter().position(|a| a == "--") {
        Some(i) => args[i + 1..].to_vec(),
        None => Vec::new(),
    }
}

/// The value of `--NAME VALUE` or `--NAME=VALUE` on the line being completed.
fn flag(line: &[OsString], name: &str) -> Option<PathBuf> {
    let long = format!("--{name}");
    let eq = format!("{long}=");
    line.iter().enumerate().find_map(|(i, a)| {
        let a = a.to_str()?;
        if a == long {
            line.get(i + 1).map(PathBuf::from)
        } else {
            a.strip_prefix(&eq).map(PathBuf::from)
        }
    })
}

fn data_dir(line: &[OsString]) -> Option<PathBuf> {
    let cfg = crate::config::user::UserConfig::load().ok()?;
    Some(cfg.data_dir(flag(line, "data-dir").as_deref()))
}

/// The engine's socket as the command line (or its defaults) names it.
fn socket(line: &[OsString]) -> Option<PathBuf> {
    let cfg = crate::config::user::UserConfig::load().ok()?;
    let data_dir = cfg.data_dir(flag(line, "data-dir").as_deref());
    Some(cfg.socket(flag(line, "socket").as_deref(), &data_dir))
}

/// The project file the command line names, for completing without an engine.
fn project_file() -> PathBuf {
    let line = line();
    if let Some(p) = flag(&line, "project") {
        return p;
    }
    if line.iter().any(|a| a == "--demo")
        && let Some(d) = data_dir(&line)
    {
        return d.join("demo").join(crate::config::PROJECT_FILE);
    }
    PathBuf::from(crate::config::PROJECT_FILE)
}

/// One request to the engine for the data dir on the command line; `None` when no
/// engine answers in time.
fn ask<T>(req: Request) -> Option<T>
where
    T: TryFrom<crate::domain::Response, Error = crate::domain::command::UnexpectedResponse> + Send,
{
    let client = Client::connect(&socket(&line())?).ok()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()?;
    rt.block_on(async {
        tokio::time::timeout(ENGINE_WAIT, client.ask::<T>(req))
            .await
            .ok()?
            .ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_are_read_from_the_line() {
        let line: Vec<OsString> = ["pipedeck", "--data-dir", "/d", "--project=/p.toml", "show"]
            .into_iter()
            .map(OsString::from)
            .collect();
        assert_eq!(flag(&line, "data-dir"), Some(PathBuf::from("/d")));
        assert_eq!(flag(&line, "project"), Some(PathBuf::from("/p.toml")));
        assert_eq!(flag(&line, "socket"), None);
    }
}
