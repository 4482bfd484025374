//! A job's files: its batch script (the step's variables and command, every value
//! single-quoted) and its output file, read into the step's log as it grows.

use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::domain::now_ms;
use crate::engine::executor::process::Masker;
use crate::store::logs::{Batch, LogStream};

/// Longest line kept whole (as for a local step's pipes).
const MAX_LINE: usize = 1024 * 1024;
/// The most one read takes from the output file.
const CHUNK: usize = 1024 * 1024;

/// `s` as one single-quoted shell word.
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn is_name(k: &str) -> bool {
    let mut c = k.chars();
    c.next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
        && c.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The batch script: exports `vars` (the run's and the step's), goes to `cwd`, and
/// runs `command` with `sh -c`, as a local step does. `interrupt_first` (Terraform):
/// the shells ignore SIGINT, so that `scancel --signal=INT` stops Terraform alone (it
/// catches the signal, releases its state lock and exits) whatever the node's
/// `/bin/sh` does on an interrupt while it waits: a shell that exited would end the
/// job, and Slurm would kill Terraform with it.
pub fn script<'a>(
    vars: impl IntoIterator<Item = &'a (String, String)>,
    cwd: &Path,
    command: &str,
    interrupt_first: bool,
) -> io::Result<String> {
    let mut s = String::from(
        "#!/bin/sh\n# Written by pipedeck for one step (it holds the step's variables); \
         removed when the job ends.\n",
    );
    for (k, v) in vars {
        if !is_name(k) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("environment variable name `{k}` is not valid in a shell"),
            ));
        }
        s.push_str(&format!("export {k}={}\n", quote(v)));
    }
    let cwd = cwd.to_string_lossy();
    s.push_str(&format!("cd {} || exit 127\n", quote(&cwd)));
    if interrupt_first {
        s.push_str("trap '' INT\n");
    }
    s.push_str(&format!("exec /bin/sh -c {}\n", quote(command)));
    Ok(s)
}

/// Writes `text` to `path`, readable by its owner only (it may hold secrets).
pub fn write_private(path: &Path, text: &str) -> io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o700)
        .open(path)?;
    f.write_all(text.as_bytes())
}

/// The job's output file, read into the step's log line by line as it grows.
pub struct Tail {
    path: PathBuf,
    offset: u64,
    partial: Vec<u8>,
    /// Lines already in the log (a job re-attached after a restart): not written again.
    skip: u64,
}

impl Tail {
    pub fn new(path: PathBuf, skip: u64) -> Self {
        Self {
            path,
            offset: 0,
            partial: Vec::new(),
            skip,
        }
    }

    /// Appends the complete lines written since the last call (all of it, the last
    /// line completed, when `end`). A file not there yet is no error: the job has not
    /// started.
    pub fn pump(&mut self, log: &mut LogStream, masker: &Masker, end: bool) -> io::Result<()> {
        let mut file = match std::fs::File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        file.seek(SeekFrom::Start(self.offset))?;
        loop {
            let mut buf = Vec::with_capacity(CHUNK.min(64 * 1024));
            let n = (&mut file).take(CHUNK as u64).read_to_end(&mut buf)?;
            self.offset += n as u64;
            self.partial.extend_from_slice(&buf);
            self.ship(log, masker, end && n < CHUNK)?;
            if n < CHUNK {
                return Ok(());
            }
        }
    }

    fn ship(&mut self, log: &mut LogStream, masker: &Masker, end: bool) -> io::Result<()> {
        let mut lines = Vec::new();
        let mut count = 0;
        let mut rest = std::mem::take(&mut self.partial);
        loop {
            let cut = match memchr::memchr(b'\n', &rest) {
                Some(i) if i < MAX_LINE => i + 1,
                _ if rest.len() >= MAX_LINE => MAX_LINE,
                _ => break,
            };
            let line: Vec<u8> = rest.drain(..cut).collect();
            if self.skip > 0 {
                self.skip -= 1;
                continue;
            }
            lines.extend_from_slice(&line);
            if !line.ends_with(b"\n") {
                lines.push(b'\n');
            }
            count += 1;
        }
        if end && !rest.is_empty() {
            if self.skip > 0 {
                self.skip -= 1;
            } else {
                lines.append(&mut rest);
                lines.push(b'\n');
                count += 1;
            }
            rest.clear();
        }
        self.partial = rest;
        if count == 0 {
            return Ok(());
        }
        let data = masker.apply(&lines).into_owned();
        // A secret holding a newline is masked whole: count what is written.
        let count = memchr::memchr_iter(b'\n', &data).count() as u64;
        log.append(Batch {
            data,
            count,
            ts: now_ms(),
            stream: b'o',
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_quoted_whole() {
        let vars = vec![
            ("A".to_string(), "it's $(rm -rf /)\nnext".to_string()),
            ("B".to_string(), String::new()),
        ];
        let dir = tempfile::tempdir().unwrap();
        let cwd = dir.path().join("w'x");
        std::fs::create_dir(&cwd).unwrap();
        let s = script(&vars, &cwd, "echo \"$A\"; pwd", false).unwrap();
        let path = dir.path().join("s.sh");
        std::fs::write(&path, s).unwrap();
        let out = std::process::Command::new("/bin/sh")
            .arg(&path)
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("it's $(rm -rf /)\nnext\n{}\n", cwd.display())
        );
        assert!(script(&[("A B".into(), "x".into())], Path::new("/"), "true", false).is_err());
    }

    #[test]
    fn a_terraform_job_s_shells_outlive_an_interrupt() {
        let dir = tempfile::tempdir().unwrap();
        let run = |interrupt_first| {
            let s = script(
                &[],
                dir.path(),
                "kill -INT $$; echo outlived",
                interrupt_first,
            );
            let path = dir.path().join("s.sh");
            std::fs::write(&path, s.unwrap()).unwrap();
            let out = std::process::Command::new("/bin/sh")
                .arg(&path)
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        assert_eq!(run(true), "outlived\n");
        assert_eq!(run(false), "");
    }
}
