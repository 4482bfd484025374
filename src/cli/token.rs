//! `pipedeck token create|list|revoke`: per-user tokens for `serve --listen`, kept
//! hashed in the data dir. Only the data dir's owner (the engine's account) can
//! reach them: the data dir is 0700, the file 0600.

use clap::Subcommand;

use super::{Ctx, exit, output};
use crate::api::tokens;
use crate::domain::access::Role;
use crate::domain::now_ms;

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Make a token for USER with ROLE; it is printed once (only its hash is kept).
    Create {
        /// Who the token stands for: recorded as who triggered, decided, cancelled.
        #[arg(long, value_name = "NAME")]
        user: String,
        /// The most it may do: viewer, operator or admin (capped by USER's role in [access]).
        #[arg(long, value_name = "ROLE", value_parser = parse_role)]
        role: Role,
    },
    /// List tokens: id, user, role, created, revoked (never the secrets).
    List,
    /// Revoke a token by its id (it stops working at once).
    Revoke { id: String },
}

fn parse_role(s: &str) -> Result<Role, String> {
    match s {
        "viewer" => Ok(Role::Viewer),
        "operator" => Ok(Role::Operator),
        "admin" => Ok(Role::Admin),
        _ => Err(format!("`{s}` is not a role: viewer, operator or admin")),
    }
}

pub fn token(ctx: &Ctx, cmd: TokenCommand) -> i32 {
    if let Err(e) = crate::engine::datadir::check(&ctx.data_dir) {
        eprintln!("error: {e}");
        return exit::FORBIDDEN;
    }
    let r = match cmd {
        TokenCommand::Create { user, role } => {
            tokens::create(&ctx.data_dir, &user, role, now_ms()).map(|(rec, token)| {
                if ctx.json {
                    output::json(&serde_json::json!({"id": rec.id, "user": rec.user, "role": rec.role, "token": token}));
                } else {
                    outln!("{token}");
                    eprintln!(
                        "token {} for {} ({}): shown once, keep it safe; revoke with `pipedeck token revoke {}`",
                        rec.id, rec.user, rec.role, rec.id
                    );
                }
            })
        }
        TokenCommand::List => tokens::load(&ctx.data_dir).map(|list| {
            if ctx.json {
                output::json(&list);
            } else {
                outln!("{:<10} {:<16} {:<9} {:<10} REVOKED", "ID", "USER", "ROLE", "CREATED");
                for t in list {
                    outln!(
                        "{:<10} {:<16} {:<9} {:<10} {}",
                        t.id,
                        output::inert(&t.user),
                        t.role,
                        output::ago(t.created_at),
                        t.revoked_at.map(output::ago).unwrap_or_else(|| "-".into())
                    );
                }
            }
        }),
        TokenCommand::Revoke { id } => tokens::revoke(&ctx.data_dir, &id, now_ms()).map(|rec| {
            outln!("token {} for {} revoked", rec.id, output::inert(&rec.user));
        }),
    };
    match r {
        Ok(()) => exit::OK,
        Err(tokens::TokenError::NoSuchToken(id)) => {
            eprintln!("error: no token `{id}` (`pipedeck token list` shows them)");
            exit::USAGE
        }
        Err(e) => {
            eprintln!("error: {e}");
            exit::FORBIDDEN
        }
    }
}
