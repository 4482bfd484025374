//! `POST /hooks/github` and `POST /hooks/gitlab` on the TCP listener: the body is
//! read up to a limit, the headers that judge it picked, and the engine decides
//! (`engine::triggers::hooks`). Refusals are 4xx with `{"refused": why}`.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;

use super::server::AppState;
use crate::engine::triggers::hooks::{Forge, HookHeaders, MAX_BODY};

pub(super) fn router(state: AppState) -> Router {
    Router::new()
        .route("/hooks/github", post(github))
        .route("/hooks/gitlab", post(gitlab))
        .with_state(state)
}

async fn github(st: State<AppState>, req: axum::extract::Request) -> axum::response::Response {
    deliver(st, Forge::GitHub, req).await
}

async fn gitlab(st: State<AppState>, req: axum::extract::Request) -> axum::response::Response {
    deliver(st, Forge::GitLab, req).await
}

fn header(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

async fn deliver(
    State(st): State<AppState>,
    forge: Forge,
    req: axum::extract::Request,
) -> axum::response::Response {
    let (parts, body) = req.into_parts();
    let h = &parts.headers;
    let headers = match forge {
        Forge::GitHub => HookHeaders {
            event: header(h, "x-github-event"),
            delivery: header(h, "x-github-delivery"),
            signature: header(h, "x-hub-signature-256"),
        },
        Forge::GitLab => HookHeaders {
            event: header(h, "x-gitlab-event"),
            delivery: header(h, "x-gitlab-event-uuid"),
            signature: header(h, "x-gitlab-token"),
        },
    };
    let answer = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(bytes) => st.handle.hook(forge, headers, &bytes).await,
        Err(_) => Err(st
            .handle
            .refuse_hook(
                forge,
                413,
                format!("the body is larger than {MAX_BODY} bytes (or could not be read)"),
            )
            .await),
    };
    match answer {
        Ok(a) => (code(a.status), Json(a)).into_response(),
        Err(r) => (code(r.status), Json(r)).into_response(),
    }
}

fn code(status: u16) -> StatusCode {
    StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST)
}
