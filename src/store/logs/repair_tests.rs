//! Damage a crash or a disk can leave in a step log, beyond a torn last line: the
//! zero-filled tails a filesystem leaves when a file's size reached the disk before
//! its data, index entries that are garbage, a lost `.meta`, bytes that are not text.

use std::fs::OpenOptions;
use std::io::Write;

use super::tests::{T0, lines};
use super::{IDX_LEN, INDEX_EVERY, LogStore, META_LEN};

fn path(dir: &tempfile::TempDir, ext: &str) -> std::path::PathBuf {
    dir.path().join(format!("1/1.{ext}"))
}

fn append(dir: &tempfile::TempDir, ext: &str, bytes: &[u8]) {
    let mut f = OpenOptions::new()
        .append(true)
        .open(path(dir, ext))
        .unwrap();
    f.write_all(bytes).unwrap();
}

/// 5,000 lines on stdout at T0, then 3 on stderr at T0 + 1.
fn two_batches(dir: &tempfile::TempDir) -> LogStore {
    let store = LogStore::new(dir.path().to_path_buf());
    let mut w = store.writer(1, 1).unwrap();
    w.append(&lines(0, 5000), 5000, T0, b'o').unwrap();
    w.append(&lines(5000, 3), 3, T0 + 1, b'e').unwrap();
    w.sync().unwrap();
    store
}

fn stamps(store: &LogStore, from: u64, n: usize) -> Vec<(String, i64, char)> {
    store
        .read(1, 1, from, n)
        .unwrap()
        .into_iter()
        .map(|l| (l.text, l.ts, l.stream))
        .collect()
}

#[test]
fn zero_filled_tails_are_dropped_from_every_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = two_batches(&dir);
    let sizes: Vec<u64> = ["log", "idx", "meta"]
        .iter()
        .map(|e| std::fs::metadata(path(&dir, e)).unwrap().len())
        .collect();
    append(&dir, "log", &[0; 4096]);
    append(&dir, "idx", &[0; 3 * IDX_LEN as usize]);
    append(&dir, "meta", &[0; 2 * META_LEN]);
    assert_eq!(store.repair(1, 1).unwrap(), 5003);
    for (e, size) in ["log", "idx", "meta"].iter().zip(&sizes) {
        assert_eq!(
            std::fs::metadata(path(&dir, e)).unwrap().len(),
            *size,
            "{e}"
        );
    }
    assert_eq!(
        stamps(&store, 4999, 10),
        [
            ("line 4999".to_string(), T0, 'o'),
            ("line 5000".to_string(), T0 + 1, 'e'),
            ("line 5001".to_string(), T0 + 1, 'e'),
            ("line 5002".to_string(), T0 + 1, 'e'),
        ]
    );
    // Appending goes on where the lines end, with times that read back.
    let mut w = store.writer(1, 1).unwrap();
    w.append(&lines(5003, 1), 1, T0 + 2, b'o').unwrap();
    assert_eq!(
        stamps(&store, 5002, 5),
        [
            ("line 5002".to_string(), T0 + 1, 'e'),
            ("line 5003".to_string(), T0 + 2, 'o'),
        ]
    );
}

#[test]
fn garbage_index_entries_are_rebuilt_from_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::new(dir.path().to_path_buf());
    let mut w = store.writer(1, 1).unwrap();
    let n = 5 * INDEX_EVERY + 7;
    w.append(&lines(0, n), n, T0, b'o').unwrap();
    drop(w);
    let good = std::fs::read(path(&dir, "idx")).unwrap();
    assert_eq!(good.len() as u64, 6 * IDX_LEN);
    // Entry 2 points into the middle of a line, entry 4 backwards: both in the middle
    // of an index whose last entry holds.
    let mut bad = good.clone();
    let e2 = u64::from_le_bytes(bad[16..24].try_into().unwrap());
    bad[16..24].copy_from_slice(&(e2 + 3).to_le_bytes());
    bad[32..40].copy_from_slice(&7u64.to_le_bytes());
    std::fs::write(path(&dir, "idx"), &bad).unwrap();
    assert_eq!(store.repair(1, 1).unwrap(), n);
    assert!(std::fs::read(path(&dir, "idx")).unwrap() == good);
    for from in [2 * INDEX_EVERY, 4 * INDEX_EVERY + 1, n - 1] {
        assert_eq!(stamps(&store, from, 1)[0].0, format!("line {from}"));
    }
}

#[test]
fn a_log_that_lost_its_meta_keeps_its_lines() {
    let dir = tempfile::tempdir().unwrap();
    let store = two_batches(&dir);
    let log = std::fs::read(path(&dir, "log")).unwrap();
    std::fs::remove_file(path(&dir, "meta")).unwrap();
    // Not taken for the older, prefixed format: no line loses its first bytes.
    assert_eq!(store.repair(1, 1).unwrap(), 5003);
    assert!(std::fs::read(path(&dir, "log")).unwrap() == log);
    let got = stamps(&store, 4999, 2);
    assert_eq!(
        got.iter().map(|l| l.0.as_str()).collect::<Vec<_>>(),
        ["line 4999", "line 5000"]
    );
    // Times and streams are unknown now; new lines get their own.
    let mut w = store.writer(1, 1).unwrap();
    w.append(b"after\n", 1, T0 + 5, b'e').unwrap();
    assert_eq!(
        stamps(&store, 5003, 1),
        [("after".to_string(), T0 + 5, 'e')]
    );
}

#[test]
fn bytes_that_are_not_text_read_back_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let store = two_batches(&dir);
    append(&dir, "log", b"\xff\xfe\x00bin\xc3\n\x80torn");
    assert_eq!(store.repair(1, 1).unwrap(), 5004);
    let last = &store.read(1, 1, 5003, 5).unwrap();
    assert_eq!(last.len(), 1);
    assert_eq!(last[0].text, "\u{fffd}\u{fffd}\u{0}bin\u{fffd}");
    // A reader may ask for any number of lines (an API client's limit, unchecked).
    assert_eq!(store.read(1, 1, 5000, usize::MAX).unwrap().len(), 4);
    assert!(store.read(1, 1, u64::MAX, usize::MAX).unwrap().is_empty());
}
