//! Executors: how one executable unit runs.

mod capture;
pub(crate) mod command;
pub mod process;
pub mod spawn;
pub(crate) mod stack_job;
pub mod terraform;
