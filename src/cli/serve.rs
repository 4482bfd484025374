//! `pipedeck serve`: host the engine headless until SIGINT or SIGTERM.

use tokio::signal::unix::{SignalKind, signal};

use super::{Ctx, exit};
use crate::api::server;

pub async fn serve(ctx: &Ctx) -> i32 {
    let project = match ctx.load_project() {
        Ok(p) => p,
        Err(code) => return code,
    };
    let hosted = match server::host(project, &ctx.data_dir).await {
        Ok(h) => h,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::USAGE;
        }
    };
    eprintln!(
        "pipedeck engine serving {} for {} (Ctrl-C to stop)",
        hosted.endpoint.url,
        ctx.data_dir.display()
    );
    wait_for_stop_signal().await;
    eprintln!("stopping: running steps are terminated and recorded as cancelled");
    hosted.shutdown().await;
    exit::OK
}

/// Resolves on SIGINT, SIGTERM or SIGHUP.
pub async fn wait_for_stop_signal() {
    let (Ok(mut term), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
        _ = hup.recv() => {}
    }
}
