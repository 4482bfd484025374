//! Old logs (`[retention] compress`): compressed with zstd, or dropped for a note.
//!
//! A compressed log keeps its index and `.meta`; only `STEP.log` becomes
//! `STEP.log.zst`. Readers open it through [`open_log`], which decompresses it into an
//! unnamed temporary file beside it (bounded memory, O(log) time; old logs are read
//! seldom), so every reader (`pipedeck logs`, the dashboard, search) works unchanged
//! and a backup copies the compressed file as it is. The compressed file is written
//! and synced under a temporary name, renamed into place, and only then is the
//! plain log removed: a reader finds one or the other at every moment.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{LogStore, Paths, open_if_exists};
use crate::config::schema::LogAging;

/// The first words of the note a dropped log is replaced with.
const DROPPED: &str = "pipedeck: this log was dropped by retention";

/// What aging did to a run's logs (or would do, in a dry run).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgedLogs {
    /// Step logs compressed or dropped.
    pub logs: usize,
    /// Their bytes before, and after (0 in a dry run).
    pub bytes_before: u64,
    pub bytes_after: u64,
}

impl AgedLogs {
    pub fn add(&mut self, o: AgedLogs) {
        self.logs += o.logs;
        self.bytes_before += o.bytes_before;
        self.bytes_after += o.bytes_after;
    }
}

/// A step's log for reading: the plain file, or the compressed one decompressed into
/// an unnamed temporary file; `None` when there is neither.
pub(crate) fn open_log(p: &Paths) -> io::Result<Option<File>> {
    if let Some(f) = open_if_exists(&p.log)? {
        return Ok(Some(f));
    }
    let Some(z) = open_if_exists(&p.zst)? else {
        // Renamed in between: the plain file went after the compressed one came.
        return open_if_exists(&p.log);
    };
    let dir = p.zst.parent().unwrap_or(Path::new("."));
    let mut tmp = OpenOptions::new()
        .read(true)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_TMPFILE)
        .open(dir)?;
    zstd::stream::copy_decode(z, &mut tmp)?;
    tmp.seek(SeekFrom::Start(0))?;
    Ok(Some(tmp))
}

fn len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

impl LogStore {
    /// The step ids with a log under run `run_id`.
    fn steps_of(&self, run_id: i64) -> io::Result<Vec<i64>> {
        let dir = self.root.join(run_id.to_string());
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut ids: Vec<i64> = entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let stem = name
                    .strip_suffix(".log.zst")
                    .or_else(|| name.strip_suffix(".log"))?;
                stem.parse().ok()
            })
            .collect();
        ids.sort_unstable();
        ids.dedup();
        Ok(ids)
    }

    /// Ages every step log of run `run_id` as `how` says; logs already aged are left
    /// as they are. With `dry_run`, only counts what would change.
    pub fn age_run(&self, run_id: i64, how: LogAging, dry_run: bool) -> io::Result<AgedLogs> {
        let mut total = AgedLogs::default();
        for step_id in self.steps_of(run_id)? {
            let p = self.paths(run_id, step_id);
            let o = match how {
                LogAging::Zstd => compress(&p, dry_run)?,
                LogAging::Drop => self.drop_log(&p, run_id, step_id, dry_run)?,
            };
            total.add(o);
        }
        Ok(total)
    }

    fn drop_log(
        &self,
        p: &Paths,
        run_id: i64,
        step_id: i64,
        dry_run: bool,
    ) -> io::Result<AgedLogs> {
        let first = self.read(run_id, step_id, 0, 2)?;
        if first.len() == 1 && first[0].stream == 'p' && first[0].text.starts_with(DROPPED) {
            return Ok(AgedLogs::default());
        }
        let lines = self.line_count(run_id, step_id)?;
        let before = len(&p.log) + len(&p.zst) + len(&p.idx) + len(&p.meta);
        if dry_run {
            return Ok(AgedLogs {
                logs: 1,
                bytes_before: before,
                bytes_after: 0,
            });
        }
        for f in [&p.log, &p.zst, &p.idx, &p.meta] {
            match std::fs::remove_file(f) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        let note = format!(
            "{DROPPED} ([retention] compress = \"drop\"): it held {lines} lines, {}\n",
            crate::domain::bytes::format_bytes(before)
        );
        let mut w = self.writer(run_id, step_id)?;
        w.append(note.as_bytes(), 1, crate::domain::now_ms(), b'p')?;
        if let Some(h) = w.sync_handle() {
            h.sync()?;
        }
        drop(w);
        Ok(AgedLogs {
            logs: 1,
            bytes_before: before,
            bytes_after: len(&p.log) + len(&p.idx) + len(&p.meta),
        })
    }
}

/// Compresses one log (unless it already is).
fn compress(p: &Paths, dry_run: bool) -> io::Result<AgedLogs> {
    let Some(mut src) = open_if_exists(&p.log)? else {
        return Ok(AgedLogs::default());
    };
    let before = src.metadata()?.len();
    if dry_run {
        return Ok(AgedLogs {
            logs: 1,
            bytes_before: before,
            bytes_after: 0,
        });
    }
    let mut tmp_name = p.zst.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp_name);
    let out = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    let mut enc = zstd::stream::Encoder::new(out, 3)?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = src.read(&mut buf)?;
        if n == 0 {
            break;
        }
        enc.write_all(&buf[..n])?;
    }
    let out = enc.finish()?;
    out.sync_all()?;
    let after = out.metadata()?.len();
    std::fs::rename(&tmp, &p.zst)?;
    if let Some(dir) = p.zst.parent() {
        File::open(dir)?.sync_all()?;
    }
    std::fs::remove_file(&p.log)?;
    Ok(AgedLogs {
        logs: 1,
        bytes_before: before,
        bytes_after: after,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store_with_log(lines: u64) -> (tempfile::TempDir, LogStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::new(dir.path().join("logs"));
        let mut w = store.writer(7, 70).unwrap();
        let data: Vec<u8> = (0..lines)
            .flat_map(|i| format!("line {i} of a long step log\n").into_bytes())
            .collect();
        w.append(&data, lines, 1_000, b'o').unwrap();
        drop(w);
        (dir, store)
    }

    #[test]
    fn a_compressed_log_reads_searches_and_counts_as_before() {
        let (_d, store) = store_with_log(20_000);
        let before = store.read(7, 70, 9_000, 5).unwrap();
        let aged = store.age_run(7, LogAging::Zstd, true).unwrap();
        assert_eq!(aged.logs, 1);
        assert!(store.paths(7, 70).log.exists(), "a dry run changes nothing");
        let aged = store.age_run(7, LogAging::Zstd, false).unwrap();
        assert_eq!(aged.logs, 1);
        assert!(aged.bytes_after * 5 < aged.bytes_before, "{aged:?}");
        let p = store.paths(7, 70);
        assert!(!p.log.exists() && p.zst.exists());
        assert_eq!(store.read(7, 70, 9_000, 5).unwrap(), before);
        assert_eq!(store.line_count(7, 70).unwrap(), 20_000);
        let hit = store
            .find(7, 70, 0, "line 19998 ", super::super::Direction::Forward)
            .unwrap();
        assert_eq!(hit, Some(19_998));
        // Again: nothing left to do.
        assert_eq!(store.age_run(7, LogAging::Zstd, false).unwrap().logs, 0);
    }

    #[test]
    fn a_dropped_log_leaves_a_note_once() {
        let (_d, store) = store_with_log(1_000);
        store.age_run(7, LogAging::Zstd, false).unwrap();
        let aged = store.age_run(7, LogAging::Drop, false).unwrap();
        assert_eq!(aged.logs, 1);
        let lines = store.read(7, 70, 0, 10).unwrap();
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].stream, 'p');
        assert!(
            lines[0].text.starts_with(DROPPED) && lines[0].text.contains("it held 1000 lines"),
            "{}",
            lines[0].text
        );
        assert!(!store.paths(7, 70).zst.exists());
        assert_eq!(store.age_run(7, LogAging::Drop, false).unwrap().logs, 0);
    }
}
