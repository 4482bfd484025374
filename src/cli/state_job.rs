//! `pipedeck stack-job state RESOURCE …` and `pipedeck stack-job unlock RESOURCE ID`:
//! a resource's Terraform state listed, shown or changed, or a stale lock released,
//! as a stack job of the engine (its own log, gated and audited like apply).

use super::run::start;
use super::{Ctx, exit};
use crate::api::EngineClient;
use crate::domain::state_op::{Address, ImportId, LockId, StateArgError, StateOp};
use crate::domain::{Request, RunDetail, Stage};

#[derive(Debug, clap::Subcommand)]
pub enum StateCommand {
    /// The addresses in the resource's state (`terraform state list`).
    List,
    /// One resource's attributes (`terraform state show ADDR`).
    Show { address: String },
    /// Mark resources for replacement at the next apply (`terraform taint`, each address).
    Taint {
        #[arg(required = true)]
        addresses: Vec<String>,
    },
    /// Clear the taint (`terraform untaint`, each address).
    Untaint {
        #[arg(required = true)]
        addresses: Vec<String>,
    },
    /// Forget resources: the state drops them, the real objects stay (`terraform state rm`).
    Rm {
        #[arg(required = true)]
        addresses: Vec<String>,
    },
    /// Move or rename a resource or module in the state (`terraform state mv FROM TO`).
    Mv { from: String, to: String },
    /// Take an existing object into the state (`terraform import ADDR ID`).
    Import { address: String, id: String },
}

impl StateCommand {
    /// The typed operation, its arguments validated.
    pub fn op(self) -> Result<StateOp, StateArgError> {
        let many = |v: Vec<String>| -> Result<Vec<Address>, StateArgError> {
            v.iter().map(|a| Address::parse(a)).collect()
        };
        Ok(match self {
            Self::List => StateOp::List,
            Self::Show { address } => StateOp::Show {
                address: Address::parse(&address)?,
            },
            Self::Taint { addresses } => StateOp::Taint {
                addresses: many(addresses)?,
            },
            Self::Untaint { addresses } => StateOp::Untaint {
                addresses: many(addresses)?,
            },
            Self::Rm { addresses } => StateOp::Rm {
                addresses: many(addresses)?,
            },
            Self::Mv { from, to } => StateOp::Mv {
                from: Address::parse(&from)?,
                to: Address::parse(&to)?,
            },
            Self::Import { address, id } => StateOp::Import {
                address: Address::parse(&address)?,
                id: ImportId::parse(&id)?,
            },
        })
    }
}

/// Starts a state job of `op` on `resource` and (unless `no_wait`) follows it to its
/// end, then prints what Terraform said.
pub async fn state_job(
    ctx: &Ctx,
    resource: String,
    infra: Option<String>,
    op: Result<StateOp, StateArgError>,
    no_wait: bool,
) -> i32 {
    let op = match op {
        Ok(op) => op,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::USAGE;
        }
    };
    start(
        ctx,
        Request::StateJob {
            resource,
            infra,
            op,
        },
        !no_wait,
    )
    .await
}

/// `unlock RESOURCE LOCK_ID`: the lock id checked here, the role by the engine.
pub fn unlock_op(lock_id: &str) -> Result<StateOp, StateArgError> {
    Ok(StateOp::Unlock {
        lock_id: LockId::parse(lock_id)?,
    })
}

/// After a state job ended: Terraform's own output (the state operation's log), so
/// that `state list` and `state show` print what they found.
pub async fn print_output<C: EngineClient>(ctx: &Ctx, c: &C, d: &RunDetail) -> Result<(), i32> {
    if ctx.json || d.run.state_op.is_none() {
        return Ok(());
    }
    let Some(step) = d
        .steps
        .iter()
        .find(|s| s.stage == Stage::Operation && s.name.ends_with(".state"))
    else {
        return Ok(());
    };
    let mut next = Default::default();
    super::logs::drain(ctx, c, step, &mut next, false, ctx.color).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_are_validated_before_anything_is_sent() {
        let bad = StateCommand::Taint {
            addresses: vec!["terraform_data.a".into(), "-lock=false".into()],
        };
        assert!(bad.op().is_err());
        let ok = StateCommand::Mv {
            from: "terraform_data.a".into(),
            to: "module.m.terraform_data.a".into(),
        };
        assert_eq!(ok.op().unwrap().verb(), "mv");
        assert!(unlock_op("--all").is_err());
    }
}
