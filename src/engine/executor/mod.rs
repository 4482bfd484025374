//! Executors: how one executable unit runs.

mod capture;
pub mod children;
pub(crate) mod command;
pub(crate) mod http;
mod launch;
pub mod leftovers;
pub(crate) mod outputs;
pub mod process;
pub mod slurm;
pub mod spawn;
pub(crate) mod stack_job;
pub(crate) mod switch;
pub mod terraform;
pub mod token;
