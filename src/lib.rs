//! pipedeck: a terminal dashboard and orchestrator for delivery pipelines.
//!
//! - [`domain`]: pure types (statuses and their transitions, events).
//! - [`config`]: pipeline as code: strict loading with file:line:column errors.
//! - [`store`]: SQLite state and append-only step logs with a sparse line index.
//! - [`engine`]: the runner actor, run drivers and executors; [`engine::EngineHandle`] is the API.
//! - [`api`]: the local HTTP API (server and client) over which the CLI talks to the engine.
//! - [`cli`]: the headless command line.
//! - [`tui`]: the dashboard.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod api;
pub mod cli;
pub mod config;
pub mod domain;
pub mod engine;
pub mod store;
pub mod tls;
pub mod tui;
