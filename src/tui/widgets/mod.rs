//! Stateless, reusable pieces of the dashboard.

pub mod dag_graph;
pub mod log_pane;
pub mod run_tree;
pub mod status;
