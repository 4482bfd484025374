//! Executors: how one executable unit runs.

pub mod process;
pub mod spawn;
pub mod terraform;
