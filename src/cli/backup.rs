//! `pipedeck backup` and `pipedeck restore`.

use std::path::Path;

use super::exit;
use crate::store::backup::{self, BackupError};

fn failed(e: &BackupError) -> i32 {
    eprintln!("error: {e}");
    match e {
        BackupError::NotEmpty(_) | BackupError::NoManifest(..) | BackupError::Mismatch(_) => {
            exit::USAGE
        }
        BackupError::Io(..) | BackupError::Db(_) => exit::RUN_FAILED,
    }
}

pub fn backup(data_dir: &Path, out: &Path) -> i32 {
    match backup::backup(data_dir, out) {
        Ok(m) => {
            outln!(
                "{}: {} files, {} bytes (restore with `pipedeck restore {} --data-dir NEW`)",
                out.display(),
                m.files.len(),
                m.bytes(),
                out.display()
            );
            exit::OK
        }
        Err(e) => failed(&e),
    }
}

pub fn restore(from: &Path, data_dir: &Path) -> i32 {
    match backup::restore(from, data_dir) {
        Ok(m) => {
            outln!(
                "{}: restored {} files, {} bytes, from {}",
                data_dir.display(),
                m.files.len(),
                m.bytes(),
                from.display()
            );
            exit::OK
        }
        Err(e) => failed(&e),
    }
}
