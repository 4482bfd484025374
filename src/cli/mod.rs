//! The headless CLI (EN-4). Every command except `validate` talks to the engine
//! hosted for the data dir; `serve` and `run --wait` host one when none runs.

/// `println!` for command output, through [`output::write_out`]: never a panic when
/// stdout's reader goes away (`| head`).
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::cli::output::write_out(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` for command output (see `outln!`).
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::output::write_out(format_args!($($arg)*))
    };
}

mod audit;
mod backup;
pub mod color;
mod complete;
mod control;
mod drift;
mod hosting;
mod infra;
mod init;
mod logs;
mod man;
mod output;
mod process;
mod release;
mod run;
mod serve;
mod show;
mod stack_job;
mod state_job;
mod token;
mod triggers;

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use complete::{run_ids, services, waiting_gates};

use crate::api::client::Client;
use crate::config::{self, Project, user::UserConfig};
use crate::engine::EngineError;

/// Exit codes, as documented in `--help`.
pub mod exit {
    pub const OK: i32 = 0;
    pub const RUN_FAILED: i32 = 1;
    pub const USAGE: i32 = 2;
    pub const CANCELLED: i32 = 3;
    pub const NO_ENGINE: i32 = 4;
    pub const FORBIDDEN: i32 = 5;
}

const EXIT_CODES: &str = "Exit codes:
  0  success (for a run: it succeeded)
  1  the run failed (or was interrupted)
  2  usage or config error, or a request the engine could not carry out (no such
     run, no gate waiting, an older commit without --allow-older)
  3  the run was cancelled or a gate rejected it
  4  no engine is running, or it could not be reached
  5  refused: your account may not do this (its role in [access], a gate's
     approvers, self-approval where forbidden) or may not connect to the socket
  141  stdout was closed before all output was written (e.g. piped into head)";

#[derive(Debug, Parser)]
#[command(name = "pipedeck", version, about = "Delivery and infrastructure pipelines from the terminal", after_help = EXIT_CODES)]
pub struct Cli {
    /// Data dir (state, logs, workspaces). Default: PIPEDECK_DATA_DIR, the user config, or the platform data dir.
    #[arg(long, global = true, value_name = "DIR", value_hint = clap::ValueHint::DirPath)]
    pub data_dir: Option<PathBuf>,
    /// Project file.
    #[arg(long, global = true, value_name = "FILE", default_value = config::PROJECT_FILE, value_hint = clap::ValueHint::FilePath)]
    pub project: PathBuf,
    /// The engine's Unix socket (a shared engine's, say). You act as the account you
    /// run as: the engine reads it from the socket. Default: PIPEDECK_SOCKET, `socket`
    /// in the user config, else engine.sock in the data dir.
    #[arg(long, global = true, value_name = "PATH", value_hint = clap::ValueHint::FilePath)]
    pub socket: Option<PathBuf>,
    /// Machine-readable output.
    #[arg(long, global = true)]
    pub json: bool,
    /// Use the bundled demo project (unpacked into the data dir).
    #[arg(long, global = true)]
    pub demo: bool,
    /// Draw the dashboard with plain ASCII instead of box-drawing glyphs.
    #[arg(long, global = true)]
    pub ascii: bool,
    /// When to colour output. auto: on a terminal, unless NO_COLOR is set (CLICOLOR_FORCE colours a pipe).
    #[arg(long, global = true, value_name = "WHEN", default_value = "auto")]
    pub color: color::ColorChoice,
    /// Without a command, pipedeck opens the dashboard.
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check the project file without running anything.
    Validate,
    /// Prune old runs as `[retention]` says (the engine also does every hour): their
    /// rows, logs and workspaces; audit entries stay. Says what goes and why the rest stays.
    Gc {
        /// Only say what would go.
        #[arg(long)]
        dry_run: bool,
    },
    /// Load the project file again now (the engine also does when the file changes):
    /// new runs use it; runs already started keep their definition. A broken file
    /// leaves the last good version in force and says why (exit 2).
    Reload,
    /// Which project file the engine runs on, when it was loaded, and whether the
    /// file's last change could not be loaded (and why).
    Status,
    /// Who the engine takes you for: your verified account, its groups, your role.
    Whoami,
    /// Take a consistent snapshot of the data dir (also while the engine runs) into a
    /// new folder: the database, step logs and infra state, with a manifest of sizes
    /// and sha256.
    Backup {
        /// A new (or empty) folder.
        dir: PathBuf,
    },
    /// Rebuild a data dir from a snapshot: `pipedeck restore DIR --data-dir NEW` (the
    /// new data dir must be new or empty; a snapshot that does not match its manifest
    /// is refused).
    Restore {
        /// The snapshot's folder.
        dir: PathBuf,
    },
    /// Host the engine headless until SIGINT/SIGTERM, on its Unix socket.
    Serve {
        /// Let this Unix group's members connect: the socket is made mode 0660 and
        /// owned by it (default: 0600, the engine's own account only). Who may do
        /// what is then `[access]` in the project file.
        #[arg(long, value_name = "GROUP")]
        socket_group: Option<String>,
        /// Also serve on TCP (e.g. 127.0.0.1:7878) for remote attach: each request
        /// needs a per-user token (`pipedeck token create`). An address other than
        /// loopback is refused unless served over TLS (--tls-cert, --tls-key).
        #[arg(long, value_name = "ADDR")]
        listen: Option<std::net::SocketAddr>,
        /// The TLS certificate chain (PEM) for --listen.
        #[arg(long, value_name = "CERT.pem", requires_all = ["listen", "tls_key"])]
        tls_cert: Option<PathBuf>,
        /// The private key (PEM) of --tls-cert.
        #[arg(long, value_name = "KEY.pem", requires = "tls_cert")]
        tls_key: Option<PathBuf>,
    },
    /// The audit log: who triggered, cancelled, reran, approved or rejected what, and when.
    Audit {
        /// Only this run's entries.
        #[arg(long, add = run_ids())]
        run: Option<i64>,
        /// The newest this many entries (of every run).
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Per-user tokens for `serve --listen` (the engine's account only: they live in
    /// its data dir, hashed).
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// Trigger a run of a service; prints the run id first.
    Run {
        /// The service, as the project file names it.
        #[arg(add = services())]
        service: String,
        /// Branch to build (default: the service's default branch).
        #[arg(long)]
        branch: Option<String>,
        /// Commit to build (default: the head of the branch).
        #[arg(long)]
        commit: Option<String>,
        /// Deploy even where an environment runs a newer commit (a deliberate rollback).
        #[arg(long)]
        allow_older: bool,
        /// Follow progress and exit with the run's outcome (hosts an engine if none runs).
        #[arg(long)]
        wait: bool,
    },
    /// List runs, newest first.
    Runs {
        /// Only this service's runs.
        #[arg(long, add = services())]
        service: Option<String>,
        /// One of: queued, running, awaiting_approval, cancelling, succeeded, failed, cancelled, rejected, skipped, interrupted.
        #[arg(long)]
        status: Option<String>,
        /// At most this many runs.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Every trigger (pushes, tags, pull requests, schedules): what it watches, its
    /// last fire and run, its next fire, its last error, and why it is stopped.
    Triggers,
    /// One run with its steps and gates.
    Show {
        /// The run id (`pipedeck runs` lists them).
        #[arg(add = run_ids())]
        run: i64,
    },
    /// A run's logs (every step, or one).
    Logs {
        /// The run id (`pipedeck runs` lists them).
        #[arg(add = run_ids())]
        run: i64,
        /// A step name (`test`), path (`build/test`) or environment (`deploy/prod`).
        #[arg(long)]
        step: Option<String>,
        /// Keep printing new lines until the run ends.
        #[arg(long, short)]
        follow: bool,
    },
    /// Approve the gate waiting before an environment.
    Approve {
        /// The run id (`pipedeck runs` lists them).
        #[arg(add = run_ids())]
        run: i64,
        /// The environment whose gate waits.
        #[arg(add = waiting_gates())]
        env: String,
        /// Why, recorded with the decision and in the audit log.
        #[arg(long, short)]
        comment: Option<String>,
    },
    /// Reject the gate waiting before an environment (it and later ones are skipped).
    Reject {
        /// The run id (`pipedeck runs` lists them).
        #[arg(add = run_ids())]
        run: i64,
        /// The environment whose gate waits.
        #[arg(add = waiting_gates())]
        env: String,
        /// Why, recorded with the decision and in the audit log.
        #[arg(long, short)]
        comment: Option<String>,
    },
    /// Cancel a run: the build stops now; a deploy in flight finishes, later ones are cancelled.
    Cancel {
        /// The run id (`pipedeck runs` lists them).
        #[arg(add = run_ids())]
        run: i64,
    },
    /// Run again as a new attempt, at the same commit with the same pipeline definition.
    Rerun {
        /// The run id (`pipedeck runs` lists them).
        #[arg(add = run_ids())]
        run: i64,
        /// Deploy even where an environment runs a newer commit (a deliberate rollback).
        #[arg(long)]
        allow_older: bool,
    },
    /// Deployments (DP-1): each successful build of a service that declares an
    /// artifact, newest first, with where each runs.
    Deployments {
        #[arg(long, add = services())]
        service: Option<String>,
        #[arg(long)]
        limit: Option<usize>,
    },
    /// One deployment: show, promote, rollback, delete.
    #[command(subcommand)]
    Deployment(release::DeploymentCommand),
    /// Stations (DP-2): list, pin, unpin, exec.
    #[command(subcommand)]
    Station(release::StationCommand),
    /// Infra pipelines: graph, run, undeploy, environment and node gates.
    #[command(subcommand)]
    Infra(infra::InfraCommand),
    /// Stack jobs: one resource's operations (create, list, show, logs, resume, cancel, rerun, state, unlock, preflight).
    #[command(subcommand)]
    StackJob(stack_job::StackJobCommand),
    /// Write a starter pipedeck.toml at the root of the git repository DIR (default: here),
    /// with build steps for the Cargo, npm, Go, Make or Python project found there.
    Init {
        #[arg(value_hint = clap::ValueHint::DirPath)]
        dir: Option<PathBuf>,
    },
    /// Print the JSON Schema of the project file (editors use it through `#:schema`).
    Schema,
    /// Print a man page (roff: `pipedeck man approve | man -l -`), or write them all with --dir.
    Man {
        /// A command (`approve`, `infra run`); none for pipedeck's own page.
        command: Vec<String>,
        /// Write every page into DIR (for share/man/man1) instead.
        #[arg(long, value_name = "DIR", value_hint = clap::ValueHint::DirPath, conflicts_with = "command")]
        dir: Option<PathBuf>,
    },
    /// Print the completion script for a shell; run ids and names complete from the engine.
    #[command(after_help = COMPLETIONS_HELP)]
    Completions { shell: complete::Shell },
}

const COMPLETIONS_HELP: &str = "Load it in your shell's start-up file:
  bash:  source <(pipedeck completions bash)     (in ~/.bashrc)
  zsh:   source <(pipedeck completions zsh)      (in ~/.zshrc)
  fish:  pipedeck completions fish | source      (in ~/.config/fish/config.fish)";

/// Resolved global settings.
pub struct Ctx {
    pub data_dir: PathBuf,
    pub project_path: PathBuf,
    /// The engine's socket.
    pub socket: PathBuf,
    pub json: bool,
    /// Colour statuses (and keep the colours of step output) in what is printed.
    pub color: bool,
    pub keymap: std::collections::BTreeMap<String, String>,
}

impl Ctx {
    pub fn load_project(&self) -> Result<Project, i32> {
        config::load_project(&self.project_path).map_err(|e| {
            eprintln!("{e}");
            exit::USAGE
        })
    }

    /// Hosts the engine for the data dir in this process, serving on the socket
    /// (exit 2 when one already runs).
    pub async fn host(
        &self,
        socket_group: Option<String>,
        listen: Option<std::net::SocketAddr>,
        tls: Option<crate::api::server::TlsFiles>,
    ) -> Result<crate::api::server::Hosted, i32> {
        let project = self.load_project()?;
        let opts = crate::api::server::HostOptions {
            socket: self.socket.clone(),
            socket_group,
            listen,
            tls,
        };
        crate::api::server::host(project, &self.data_dir, &opts)
            .await
            .map_err(|e| {
                eprintln!("error: {e}");
                exit::USAGE
            })
    }

    pub fn connect(&self) -> Result<Client, i32> {
        Client::connect(&self.socket).map_err(|e| {
            eprintln!("error: {e}");
            no_engine_code(&e)
        })
    }
}

/// Prints an engine error and returns its exit code.
pub fn fail(e: EngineError) -> i32 {
    eprintln!("error: {}", output::inert(&e.to_string()));
    match e {
        EngineError::Stopped | EngineError::Unreachable(_) => exit::NO_ENGINE,
        EngineError::Internal(_) => exit::RUN_FAILED,
        EngineError::Forbidden(_) => exit::FORBIDDEN,
        _ => exit::USAGE,
    }
}

/// The exit code for a socket that cannot be used: 5 when the connection was
/// refused for want of permission, else 4.
pub fn no_engine_code(e: &crate::api::client::NoEngine) -> i32 {
    match e {
        crate::api::client::NoEngine::Denied { .. } => exit::FORBIDDEN,
        _ => exit::NO_ENGINE,
    }
}

/// Runs the CLI; returns the process exit code.
pub fn main() -> i32 {
    process::close_inherited_on_exec();
    complete::answer_if_asked();
    process::block_sigchld();
    process::prompt_wakeups();
    let cli = Cli::parse();
    if let Some(code) = without_engine(cli.command.as_ref()) {
        return code;
    }
    let user_cfg = match UserConfig::load() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return exit::USAGE;
        }
    };
    let data_dir = user_cfg.data_dir(cli.data_dir.as_deref());
    let mut ctx = Ctx {
        socket: user_cfg.socket(cli.socket.as_deref(), &data_dir),
        data_dir,
        project_path: cli.project.clone(),
        json: cli.json,
        color: !cli.json
            && color::use_color(
                cli.color,
                &color::ColorEnv::from_process(),
                std::io::IsTerminal::is_terminal(&std::io::stdout()),
            ),
        keymap: user_cfg.keymap.clone(),
    };
    // Owner-only from the start (an engine refuses a data dir others can write).
    if let Err(e) = crate::engine::datadir::create(&ctx.data_dir) {
        eprintln!("error: {e}");
        return exit::USAGE;
    }
    if cli.demo {
        match crate::tui::demo::unpack(&ctx.data_dir) {
            Ok(p) => ctx.project_path = p,
            Err(e) => {
                eprintln!(
                    "error: cannot unpack the demo into {}: {e}",
                    ctx.data_dir.display()
                );
                return exit::RUN_FAILED;
            }
        }
    }
    let ascii = cli.ascii || user_cfg.ascii.unwrap_or(false);
    let _log_guard = process::init_tracing(&ctx.data_dir);
    // The engine (and every CLI command) runs on one thread: a step's life is a chain
    // of small tasks, and handing them between threads costs more than running them
    // (children run on the other cores). The dashboard keeps a thread per core.
    let rt = if cli.command.is_some() {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Runtime::new()
    };
    let rt = match rt {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return exit::RUN_FAILED;
        }
    };
    let code = match cli.command {
        Some(cmd) => rt.block_on(dispatch(cmd, ctx)),
        None => {
            let theme = crate::tui::theme::Theme::from_config(user_cfg.theme, &user_cfg.colors);
            rt.block_on(crate::tui::open(&ctx, ascii, theme))
        }
    };
    output::exit_code(code)
}

/// Commands that need neither the data dir nor an engine.
fn without_engine(cmd: Option<&Command>) -> Option<i32> {
    Some(match cmd? {
        Command::Init { dir } => init::init(dir.as_deref()),
        Command::Schema => {
            out!("{}", config::json_schema::project_schema_text());
            exit::OK
        }
        Command::Man { dir: Some(dir), .. } => man::write_all(dir),
        Command::Man { command, dir: None } => man::print(command),
        Command::Completions { shell } => complete::script(*shell),
        _ => return None,
    })
}

async fn dispatch(cmd: Command, ctx: Ctx) -> i32 {
    match cmd {
        Command::Backup { dir } => backup::backup(&ctx.data_dir, &dir),
        Command::Restore { dir } => backup::restore(&dir, &ctx.data_dir),
        Command::Validate => match ctx.load_project() {
            Ok(p) => {
                if ctx.json {
                    output::json(
                        &serde_json::json!({"valid": true, "project": p.name, "services": p.services.keys().collect::<Vec<_>>()}),
                    );
                } else {
                    let steps: usize = p.services.values().map(|s| s.steps.len()).sum();
                    outln!(
                        "{}: ok ({} services, {} build steps)",
                        ctx.project_path.display(),
                        p.services.len(),
                        steps
                    );
                }
                exit::OK
            }
            Err(code) => code,
        },
        Command::Serve {
            socket_group,
            listen,
            tls_cert,
            tls_key,
        } => {
            let tls = tls_cert
                .zip(tls_key)
                .map(|(cert, key)| crate::api::server::TlsFiles { cert, key });
            serve::serve(&ctx, socket_group, listen, tls).await
        }
        Command::Token(cmd) => token::token(&ctx, cmd),
        Command::Audit { run, limit } => audit::audit(&ctx, run, limit).await,
        Command::Run {
            service,
            branch,
            commit,
            allow_older,
            wait,
        } => run::run(&ctx, service, branch, commit, allow_older, wait).await,
        Command::Runs {
            service,
            status,
            limit,
        } => show::runs(&ctx, service, status, limit).await,
        Command::Show { run } => show::show(&ctx, run).await,
        Command::Triggers => triggers::triggers(&ctx).await,
        Command::Logs { run, step, follow } => logs::logs(&ctx, run, step, follow).await,
        Command::Approve { run, env, comment } => {
            control::decide(&ctx, run, &env, crate::domain::Decision::Approve, comment).await
        }
        Command::Reject { run, env, comment } => {
            control::decide(&ctx, run, &env, crate::domain::Decision::Reject, comment).await
        }
        Command::Cancel { run } => control::cancel(&ctx, run).await,
        Command::Gc { dry_run } => control::gc(&ctx, dry_run).await,
        Command::Reload => control::config(&ctx, crate::domain::Request::Reload).await,
        Command::Status => control::config(&ctx, crate::domain::Request::ConfigStatus).await,
        Command::Whoami => control::whoami(&ctx).await,
        Command::Rerun { run, allow_older } => control::rerun(&ctx, run, allow_older).await,
        Command::Infra(cmd) => infra::infra(&ctx, cmd).await,
        Command::Deployments { service, limit } => release::list(&ctx, service, limit).await,
        Command::Deployment(cmd) => release::deployment(&ctx, cmd).await,
        Command::Station(cmd) => release::station(&ctx, cmd).await,
        Command::StackJob(cmd) => stack_job::stack_job(&ctx, cmd).await,
        Command::Init { .. }
        | Command::Schema
        | Command::Man { .. }
        | Command::Completions { .. } => without_engine(Some(&cmd)).unwrap_or(exit::USAGE),
    }
}
