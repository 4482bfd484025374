//! Executors: how one executable unit runs.

mod capture;
pub mod process;
pub mod spawn;
pub mod terraform;
