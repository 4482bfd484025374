//! `deployments`, `deployment show|promote|rollback|delete`, `station list|pin|unpin|exec`
//! (DP-1..DP-3). The "deployments" are releases inside the engine.

use clap::Subcommand;

use super::output;
use super::{Ctx, exit, fail};
use crate::api::EngineClient;
use crate::domain::Request;
use crate::domain::command::JobOutput;
use crate::domain::release::{Release, StationInfo, running_on};

#[derive(Debug, Subcommand)]
pub enum DeploymentCommand {
    /// One deployment (release) in full.
    Show { id: i64 },
    /// Turn a ready preview deployment into a production one (same artifact); it fans
    /// out to the production stations that are not pinned.
    Promote { id: i64 },
    /// Pin every production station of SERVICE to the ready production deployment
    /// before the one it runs (unpin them to follow new deployments again).
    Rollback { service: String },
    /// Delete a deployment and, if no other shares it, its artifact. Refused while a
    /// station runs it, is pinned to it or switches to it (the stations are named).
    Delete { id: i64 },
}

#[derive(Debug, Subcommand)]
pub enum StationCommand {
    /// Every station: what it runs, what it switches to next, pinned, jobs in flight.
    List,
    /// Pin a ready deployment to stations: they switch to it in their idle window and
    /// stop following new deployments until unpinned.
    Pin {
        /// The deployment (release) id.
        id: i64,
        #[arg(required = true)]
        stations: Vec<String>,
    },
    /// Follow new deployments again (switching to the newest one followed).
    Unpin {
        #[arg(required = true)]
        stations: Vec<String>,
    },
    /// Run a command on the release STATION runs now (in its directory; no shell). A
    /// switch waits until it ends. Needs the admin role.
    Exec {
        station: String,
        #[arg(last = true, required = true)]
        argv: Vec<String>,
    },
}

fn size(n: Option<u64>) -> String {
    match n {
        None => "-".into(),
        Some(n) if n < 1024 => format!("{n} B"),
        Some(n) if n < 1 << 20 => format!("{:.1} KiB", n as f64 / 1024.0),
        Some(n) if n < 1 << 30 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
        Some(n) => format!("{:.1} GiB", n as f64 / (1u64 << 30) as f64),
    }
}

fn digest_short(d: Option<&str>) -> String {
    d.map(|d| d.trim_start_matches("sha256:").chars().take(12).collect())
        .unwrap_or_else(|| "-".into())
}

/// `pipedeck deployments [--service S]`.
pub async fn list(ctx: &Ctx, service: Option<String>, limit: Option<usize>) -> i32 {
    let c = match ctx.connect() {
        Ok(c) => c,
        Err(code) => return code,
    };
    let (rels, stations) = match (
        c.ask::<Vec<Release>>(Request::ListReleases { service, limit })
            .await,
        c.ask::<Vec<StationInfo>>(Request::ListStations).await,
    ) {
        (Ok(r), Ok(s)) => (r, s),
        (Err(e), _) | (_, Err(e)) => return fail(e),
    };
    if ctx.json {
        output::json(&rels);
        return exit::OK;
    }
    outln!(
        "{:>4}  {:<12} {:<8} {:<10} {:<8} {:<6} {:<9} {:<12} {:>9}  STATIONS",
        "ID",
        "SERVICE",
        "COMMIT",
        "ENV",
        "STATUS",
        "TRIG",
        "BRANCH",
        "DIGEST",
        "SIZE"
    );
    for r in &rels {
        outln!(
            "{:>4}  {:<12} {:<8} {:<10} {:<8} {:<6} {:<9} {:<12} {:>9}  {}",
            r.id,
            output::inert(&r.service),
            output::short(&r.commit_sha),
            r.environment.as_str(),
            r.status.as_str(),
            r.trigger.as_str(),
            output::inert(&r.branch),
            digest_short(r.digest.as_deref()),
            size(r.size),
            running_on(&stations, r.id)
        );
    }
    exit::OK
}

fn print_release(r: &Release, stations: &[StationInfo]) {
    outln!("deployment {} of {}", r.id, output::inert(&r.service));
    outln!("  status       {}", r.status);
    outln!("  environment  {}", r.environment);
    outln!("  trigger      {}", r.trigger);
    outln!("  commit       {}", output::inert(&r.commit_sha));
    outln!("  branch       {}", output::inert(&r.branch));
    if let Some(t) = &r.tag {
        outln!("  tag          {}", output::inert(t));
    }
    outln!("  run          {}", r.run_id);
    outln!("  runtime      {} on {}", r.runtime, r.platform);
    outln!("  started      {}", output::ago(r.started_at));
    if let Some(e) = r.ended_at {
        outln!("  ended        {}", output::ago(e));
    }
    outln!("  digest       {}", r.digest.as_deref().unwrap_or("-"));
    outln!("  size         {}", size(r.size));
    if let Some(p) = r.promoted_from {
        outln!("  promoted from deployment {p}");
    }
    outln!("  stations     {}", running_on(stations, r.id));
}

pub async fn deployment(ctx: &Ctx, cmd: DeploymentCommand) -> i32 {
    let c = match ctx.connect() {
        Ok(c) => c,
        Err(code) => return code,
    };
    let (req, verb) = match cmd {
        DeploymentCommand::Show { id } => (Request::ShowRelease { release: id }, None),
        DeploymentCommand::Promote { id } => {
            (Request::PromoteRelease { release: id }, Some("promoted"))
        }
        DeploymentCommand::Delete { id } => {
            (Request::DeleteRelease { release: id }, Some("deleted"))
        }
        DeploymentCommand::Rollback { service } => {
            return match c
                .ask::<Vec<StationInfo>>(Request::Rollback { service })
                .await
            {
                Ok(list) => print_stations(ctx, &list),
                Err(e) => fail(e),
            };
        }
    };
    let r = match c.ask::<Release>(req).await {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    if ctx.json {
        output::json(&r);
        return exit::OK;
    }
    if let Some(v) = verb {
        eprintln!("deployment {v}:");
    }
    let stations = c
        .ask::<Vec<StationInfo>>(Request::ListStations)
        .await
        .unwrap_or_default();
    print_release(&r, &stations);
    exit::OK
}

fn print_stations(ctx: &Ctx, list: &[StationInfo]) -> i32 {
    if ctx.json {
        output::json(&list);
        return exit::OK;
    }
    let id = |v: Option<i64>| v.map_or("-".to_string(), |v| v.to_string());
    outln!(
        "{:<14} {:<12} {:<14} {:>7} {:>7} {:<6} {:>4}  STATE",
        "STATION",
        "SERVICE",
        "FOLLOWS",
        "CURRENT",
        "NEXT",
        "PINNED",
        "JOBS"
    );
    for s in list {
        let state = match (&s.error, s.waiting_for()) {
            (Some(e), _) => format!("last switch failed: {}", output::inert(e)),
            (None, Some(w)) => format!("pending: {w}"),
            (None, None) => "idle".into(),
        };
        outln!(
            "{:<14} {:<12} {:<14} {:>7} {:>7} {:<6} {:>4}  {}",
            output::inert(&s.name),
            output::inert(&s.service),
            output::inert(&s.follows),
            id(s.current),
            id(s.pending),
            if s.pinned { "yes" } else { "no" },
            s.jobs,
            state
        );
    }
    exit::OK
}

pub async fn station(ctx: &Ctx, cmd: StationCommand) -> i32 {
    let c = match ctx.connect() {
        Ok(c) => c,
        Err(code) => return code,
    };
    let req = match cmd {
        StationCommand::List => Request::ListStations,
        StationCommand::Pin { id, stations } => Request::PinRelease {
            release: id,
            stations,
        },
        StationCommand::Unpin { stations } => Request::UnpinStations { stations },
        StationCommand::Exec { station, argv } => {
            return match c
                .ask::<JobOutput>(Request::StationExec { station, argv })
                .await
            {
                Ok(o) => exec_output(ctx, &o),
                Err(e) => fail(e),
            };
        }
    };
    match c.ask::<Vec<StationInfo>>(req).await {
        Ok(list) => print_stations(ctx, &list),
        Err(e) => fail(e),
    }
}

/// Untrusted output, each line inert.
fn inert_lines(text: &str) -> String {
    text.lines().map(|l| output::inert(l) + "\n").collect()
}

fn exec_output(ctx: &Ctx, o: &JobOutput) -> i32 {
    if ctx.json {
        output::json(o);
    } else {
        out!("{}", inert_lines(&o.stdout));
        if !o.stderr.is_empty() {
            eprint!("{}", inert_lines(&o.stderr));
        }
        eprintln!(
            "station {}: ran on deployment {} ({})",
            output::inert(&o.station),
            o.release,
            o.describe()
        );
    }
    match o.exit_code {
        Some(0) => exit::OK,
        _ => exit::RUN_FAILED,
    }
}
