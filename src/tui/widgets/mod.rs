//! Stateless, reusable pieces of the dashboard.

pub mod log_pane;
pub mod status;
