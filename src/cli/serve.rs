//! `pipedeck serve`: host the engine headless until SIGINT or SIGTERM.

use tokio::signal::unix::{SignalKind, signal};

use super::{Ctx, exit};

pub async fn serve(
    ctx: &Ctx,
    socket_group: Option<String>,
    listen: Option<std::net::SocketAddr>,
    tls: Option<crate::api::server::TlsFiles>,
) -> i32 {
    let scheme = if tls.is_some() { "https" } else { "http" };
    let who = match &socket_group {
        Some(g) => format!("the engine's account and group {g}"),
        None => "the engine's account only".to_string(),
    };
    let hosted = match ctx.host(socket_group, listen, tls).await {
        Ok(h) => h,
        Err(code) => return code,
    };
    if let Some(addr) = hosted.tcp {
        eprintln!(
            "pipedeck engine listening on {scheme}://{addr} (per-user tokens: `pipedeck token create`)"
        );
    }
    eprintln!(
        "pipedeck engine serving {} ({who}) for {} (Ctrl-C to stop)",
        hosted.endpoint.socket.display(),
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
        if let Err(e) = tokio::signal::ctrl_c().await {
            eprintln!("error: cannot listen for signals, stopping: {e}");
        }
        return;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
        _ = hup.recv() => {}
    }
}
