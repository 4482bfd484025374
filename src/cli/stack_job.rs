//! `pipedeck stack-job …`: the checks of one resource's stack job, alone.

use super::{Ctx, exit};
use crate::engine::preflight::{failures, preflight, report};

#[derive(Debug, clap::Subcommand)]
pub enum StackJobCommand {
    /// Run the preflight checks for a resource (module, binary, credentials, state, policy); nothing executes.
    Preflight {
        /// The resource id.
        resource: String,
        /// The infra project (needed when several define the resource).
        #[arg(long)]
        infra: Option<String>,
    },
}

pub fn stack_job(ctx: &Ctx, cmd: StackJobCommand) -> i32 {
    match cmd {
        StackJobCommand::Preflight { resource, infra } => {
            let project = match ctx.load_project() {
                Ok(p) => p,
                Err(code) => return code,
            };
            let found: Vec<_> = project
                .infra
                .values()
                .filter(|p| infra.as_deref().is_none_or(|n| n == p.name))
                .filter_map(|p| p.resource(&resource).map(|r| (p, r)))
                .collect();
            let (p, r) = match found.as_slice() {
                [one] => *one,
                [] => {
                    eprintln!(
                        "error: no resource `{resource}` in {}",
                        ctx.project_path.display()
                    );
                    return exit::USAGE;
                }
                _ => {
                    eprintln!(
                        "error: several infra projects define `{resource}`\n  hint: add --infra NAME"
                    );
                    return exit::USAGE;
                }
            };
            let state_dir = ctx.data_dir.join("infra").join(&p.name).join(&r.id);
            let checks = preflight(r, &state_dir, true);
            if ctx.json {
                super::output::json(&checks);
            } else {
                println!("preflight for {}/{} ({} driver)", p.name, r.id, r.driver);
                for line in report(&checks) {
                    println!("  {line}");
                }
            }
            match failures(&checks) {
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
