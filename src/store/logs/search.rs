//! Searching a whole step log in bounded memory: the file is read in chunks from the
//! index entry at or before the starting line, each chunk's complete lines searched
//! with one `memmem` finder, and line numbers counted only up to a match.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};

use memchr::memmem;

use super::{INDEX_EVERY, LogStore, open_if_exists, read_u64_at};

/// Bytes read at a time.
const CHUNK: usize = 1 << 20;

/// Which way a search goes from its starting line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The first match at or after the line.
    Forward,
    /// The last match before the line.
    Backward,
}

/// Where the `count`-th newline (0-based) of `buf` is.
fn nth_newline(buf: &[u8], count: u64) -> Option<usize> {
    memchr::memchr_iter(b'\n', buf).nth(count as usize)
}

fn newlines(buf: &[u8]) -> u64 {
    memchr::memchr_iter(b'\n', buf).count() as u64
}

impl LogStore {
    /// The number of the line matching `needle` nearest `from` in `dir`, reading
    /// the log in chunks (memory stays at about two chunks, whatever its size).
    /// Lines still being written (no newline yet) are not searched.
    pub fn find(
        &self,
        run_id: i64,
        step_id: i64,
        from: u64,
        needle: &str,
        dir: Direction,
    ) -> io::Result<Option<u64>> {
        if needle.is_empty() {
            return Ok(None);
        }
        let p = self.paths(run_id, step_id);
        let (Some(idx), Some(mut log)) = (open_if_exists(&p.idx)?, super::open_log(&p)?) else {
            return Ok(None);
        };
        let entries = idx.metadata()?.len() / super::IDX_LEN;
        // Forward starts at the index entry before `from`; backward reads from the start.
        let k = match dir {
            Direction::Forward => (from / INDEX_EVERY).min(entries.saturating_sub(1)),
            Direction::Backward => 0,
        };
        if entries == 0 {
            return Ok(None);
        }
        log.seek(SeekFrom::Start(read_u64_at(&idx, k * super::IDX_LEN)?))?;
        scan(&mut log, k * INDEX_EVERY, from, needle.as_bytes(), dir)
    }
}

/// Reads `log` from line `n`, searching complete lines.
fn scan(
    log: &mut File,
    mut n: u64,
    from: u64,
    needle: &[u8],
    dir: Direction,
) -> io::Result<Option<u64>> {
    let finder = memmem::Finder::new(needle);
    let rfinder = memmem::FinderRev::new(needle);
    let mut buf: Vec<u8> = Vec::with_capacity(CHUNK * 2);
    let mut last: Option<u64> = None;
    loop {
        let had = buf.len();
        buf.resize(had + CHUNK, 0);
        let got = log.read(&mut buf[had..])?;
        buf.truncate(had + got);
        if got == 0 {
            return Ok(last);
        }
        let Some(end) = memchr::memrchr(b'\n', &buf) else {
            continue; // one long line so far: read on
        };
        let lines = &buf[..=end];
        let count = newlines(lines);
        match dir {
            Direction::Forward => {
                // Skip lines before `from`.
                let start = if n >= from {
                    0
                } else {
                    nth_newline(lines, from - n - 1).map_or(lines.len(), |i| i + 1)
                };
                if let Some(at) = finder.find(&lines[start..]) {
                    return Ok(Some(n + newlines(&lines[..start + at])));
                }
            }
            Direction::Backward => {
                // Only lines before `from`.
                let stop = if n + count <= from {
                    lines.len()
                } else {
                    nth_newline(lines, from.saturating_sub(n).saturating_sub(1))
                        .filter(|_| from > n)
                        .map_or(0, |i| i + 1)
                };
                if let Some(at) = rfinder.rfind(&lines[..stop]) {
                    last = Some(n + newlines(&lines[..at]));
                }
                if n + count >= from {
                    return Ok(last);
                }
            }
        }
        n += count;
        buf.drain(..=end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store_with(lines: &[String]) -> (tempfile::TempDir, LogStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::new(dir.path().to_path_buf());
        let mut w = store.writer(1, 1).unwrap();
        let mut bytes = Vec::new();
        for l in lines {
            bytes.extend_from_slice(l.as_bytes());
            bytes.push(b'\n');
        }
        w.append(&bytes, lines.len() as u64, 0, b'o').unwrap();
        w.sync().unwrap();
        (dir, store)
    }

    #[test]
    fn finds_matches_across_index_entries_and_chunks_both_ways() {
        // Long enough for several index entries and more than one chunk.
        let lines: Vec<String> = (0..40_000)
            .map(|i| match i {
                3 | 9_000 | 39_999 => format!("line {i} needle here {}", "x".repeat(40)),
                _ => format!("line {i} {}", "y".repeat(40)),
            })
            .collect();
        let (_d, s) = store_with(&lines);
        let f = |from, dir| s.find(1, 1, from, "needle", dir).unwrap();
        assert_eq!(f(0, Direction::Forward), Some(3));
        assert_eq!(f(3, Direction::Forward), Some(3));
        assert_eq!(f(4, Direction::Forward), Some(9_000));
        assert_eq!(f(8_999, Direction::Forward), Some(9_000));
        assert_eq!(f(9_001, Direction::Forward), Some(39_999));
        assert_eq!(f(40_000, Direction::Forward), None);
        assert_eq!(f(40_000, Direction::Backward), Some(39_999));
        assert_eq!(f(39_999, Direction::Backward), Some(9_000));
        assert_eq!(f(9_000, Direction::Backward), Some(3));
        assert_eq!(f(3, Direction::Backward), None);
        assert_eq!(f(0, Direction::Backward), None);
        assert_eq!(s.find(1, 1, 0, "absent", Direction::Forward).unwrap(), None);
        assert_eq!(s.find(1, 2, 0, "needle", Direction::Forward).unwrap(), None);
    }
}
