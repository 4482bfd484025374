//! `pipedeck stack-job …`: one resource's stack job, outside a pipeline run.

use super::run::start;
use super::{Ctx, exit, fail};
use crate::api::EngineClient;
use crate::domain::command::PreflightReport;
use crate::domain::{Decision, GateStatus, Request, RunDetail, RunInfo, RunKind};
use crate::engine::preflight::{failures, report};
use crate::store::RunFilter;

#[derive(Debug, clap::Subcommand)]
pub enum StackJobCommand {
    /// Start a stack job for a resource; prints the job id first.
    Create {
        #[arg(add = super::complete::resources())]
        resource: String,
        /// update (… → apply), destroy, preview or refresh.
        #[arg(long, default_value = "update")]
        operation: String,
        #[arg(long, add = super::complete::infra_projects())]
        infra: Option<String>,
        /// Limit preview and apply to this Terraform address (`-target`), e.g.
        /// `terraform_data.web` or `module.net.aws_vpc.main`; repeat for several. Never
        /// the default: the job is marked as targeted wherever it is shown.
        #[arg(long = "target", value_name = "ADDR")]
        targets: Vec<String>,
        #[arg(long)]
        wait: bool,
    },
    /// Stack jobs, newest first.
    List {
        #[arg(long, add = super::complete::resources())]
        resource: Option<String>,
    },
    /// A job's operations, their status and the plan summary.
    Show {
        #[arg(add = super::complete::run_ids())]
        job: i64,
    },
    /// A job's logs.
    Logs {
        #[arg(add = super::complete::run_ids())]
        job: i64,
        #[arg(long, short)]
        follow: bool,
    },
    /// Resume a job paused before apply: approves the reviewed plan.
    Resume {
        #[arg(add = super::complete::run_ids())]
        job: i64,
        #[arg(long, short)]
        comment: Option<String>,
    },
    /// Cancel: the operation in flight finishes; the rest are skipped.
    Cancel {
        #[arg(add = super::complete::run_ids())]
        job: i64,
    },
    /// Repeat the same operation as a new job linked to this one.
    Rerun {
        #[arg(add = super::complete::run_ids())]
        job: i64,
    },
    /// Terraform state operations on a resource, as a job with its own log: list,
    /// show, taint, untaint, rm, mv, import. Changing the state needs the operator
    /// role and waits for the approval apply would (the environment's or node's gate).
    State {
        #[arg(add = super::complete::resources())]
        resource: String,
        #[arg(long, add = super::complete::infra_projects())]
        infra: Option<String>,
        /// Print the job id and return instead of following the job to its end.
        #[arg(long)]
        no_wait: bool,
        #[command(subcommand)]
        op: super::state_job::StateCommand,
    },
    /// Release a stale state lock by its id (admins only; `terraform force-unlock
    /// -force LOCK_ID`). A failed job's reason names the lock's holder and id.
    Unlock {
        #[arg(add = super::complete::resources())]
        resource: String,
        /// The lock's `ID:` from Terraform's lock info.
        lock_id: String,
        #[arg(long, add = super::complete::infra_projects())]
        infra: Option<String>,
        #[arg(long)]
        no_wait: bool,
    },
    /// Ask the engine to run the preflight checks for a resource (module, binary, credentials, state, policy) where the job would run; nothing executes.
    Preflight {
        /// The resource id.
        #[arg(add = super::complete::resources())]
        resource: String,
        /// The infra project (needed when several define the resource).
        #[arg(long, add = super::complete::infra_projects())]
        infra: Option<String>,
    },
}

pub async fn stack_job(ctx: &Ctx, cmd: StackJobCommand) -> i32 {
    match cmd {
        StackJobCommand::Create {
            resource,
            operation,
            infra,
            targets,
            wait,
        } => {
            if let Err(e) = crate::domain::target::parse_all(&targets) {
                eprintln!("error: --target {e}");
                return exit::USAGE;
            }
            start(
                ctx,
                Request::TriggerStackJob {
                    resource,
                    infra,
                    operation,
                    targets,
                },
                wait,
            )
            .await
        }
        StackJobCommand::State {
            resource,
            infra,
            no_wait,
            op,
        } => super::state_job::state_job(ctx, resource, infra, op.op(), no_wait).await,
        StackJobCommand::Unlock {
            resource,
            lock_id,
            infra,
            no_wait,
        } => {
            let op = super::state_job::unlock_op(&lock_id);
            super::state_job::state_job(ctx, resource, infra, op, no_wait).await
        }
        StackJobCommand::List { resource } => {
            let c = match ctx.connect() {
                Ok(c) => c,
                Err(code) => return code,
            };
            let filter = RunFilter {
                limit: Some(1000),
                ..Default::default()
            };
            let runs = match c.ask::<Vec<RunInfo>>(Request::ListRuns { filter }).await {
                Ok(r) => r,
                Err(e) => return fail(e),
            };
            let jobs: Vec<_> = runs
                .into_iter()
                .filter(|r| r.kind == RunKind::StackJob)
                .filter(|r| resource.is_none() || r.resource == resource)
                .collect();
            if ctx.json {
                super::output::json(&jobs);
            } else {
                outln!(
                    "{:>5}  {:<16} {:<10} {:<10} {:<18} {:<9} TARGETED",
                    "JOB",
                    "RESOURCE",
                    "OPERATION",
                    "ENV",
                    "STATUS",
                    "STARTED"
                );
                for j in jobs {
                    let targets: Vec<&str> = j.targets.iter().map(|t| t.as_str()).collect();
                    let line = format!(
                        "{:>5}  {:<16} {:<10} {:<10} {} {:<9} {}",
                        j.id,
                        j.resource.as_deref().unwrap_or(""),
                        j.state_op
                            .as_ref()
                            .map(|s| s.verb())
                            .or(j.operation.map(|o| o.job_verb()))
                            .unwrap_or(""),
                        j.place(),
                        super::color::run_status(
                            j.status,
                            &format!("{:<18}", j.status.as_str()),
                            ctx.color
                        ),
                        super::output::ago(j.created_at),
                        targets.join(", ")
                    );
                    outln!("{}", line.trim_end());
                }
            }
            exit::OK
        }
        StackJobCommand::Show { job } => super::show::show(ctx, job).await,
        StackJobCommand::Logs { job, follow } => super::logs::logs(ctx, job, None, follow).await,
        StackJobCommand::Cancel { job } => super::control::cancel(ctx, job).await,
        StackJobCommand::Rerun { job } => super::control::rerun(ctx, job, false).await,
        StackJobCommand::Resume { job, comment } => {
            let c = match ctx.connect() {
                Ok(c) => c,
                Err(code) => return code,
            };
            let d = match c.ask::<RunDetail>(Request::Detail { run_id: job }).await {
                Ok(d) => d,
                Err(e) => return fail(e),
            };
            let Some(g) = d.gates.iter().find(|g| g.status == GateStatus::Waiting) else {
                eprintln!("error: job {job} is not paused (it is {})", d.run.status);
                return exit::USAGE;
            };
            super::control::decide(ctx, job, &g.env.clone(), Decision::Approve, comment).await
        }
        StackJobCommand::Preflight { resource, infra } => {
            let c = match ctx.connect() {
                Ok(c) => c,
                Err(code) => return code,
            };
            let req = Request::Preflight { resource, infra };
            let p = match c.ask::<PreflightReport>(req).await {
                Ok(p) => p,
                Err(e) => return fail(e),
            };
            if ctx.json {
                super::output::json(&p.checks);
            } else {
                outln!(
                    "preflight for {}/{} ({} driver)",
                    p.project,
                    p.resource,
                    p.driver
                );
                for line in report(&p.checks) {
                    outln!("  {line}");
                }
            }
            match failures(&p.checks) {
                Some(why) => {
                    if !ctx.json {
                        eprintln!("{why}");
                    }
                    exit::RUN_FAILED
                }
                None => exit::OK,
            }
        }
    }
}
