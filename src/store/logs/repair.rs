//! Repair of a step log after a crash (a torn last line, index and `.meta` entries
//! for lines that never made it), and the one-time conversion of logs of the older,
//! prefixed format. Both stream the files: memory stays bounded.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::{
    IDX_LEN, INDEX_EVERY, META_LEN, Paths, decode_meta, encode_meta, open_if_exists, paths,
    read_u64_at,
};

/// Bytes of the `<millis> <stream> ` prefix of the older format (converted on open).
pub const PREFIX_LEN: usize = 16;
/// What a streaming scan (repair, conversion) reads at a time.
const SCAN_CHUNK: usize = 64 * 1024;
/// Written in the store's root once every log in it is in the current format.
const FORMAT_MARK: &str = "FORMAT";

fn remove_if_exists(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// The offset just past the last `\n` in the first `len` bytes of `f`, scanning back
/// from the end a chunk at a time.
fn end_of_last_line(f: &File, len: u64) -> io::Result<u64> {
    let mut buf = vec![0u8; SCAN_CHUNK];
    let mut end = len;
    while end > 0 {
        let start = end.saturating_sub(SCAN_CHUNK as u64);
        let chunk = &mut buf[..(end - start) as usize];
        f.read_exact_at(chunk, start)?;
        if let Some(i) = memchr::memrchr(b'\n', chunk) {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

/// Trims a torn last line, makes the index and the `.meta` entries agree with the
/// log, returns the line count. Reads the log in chunks from the last index entry
/// that still holds (all of it only when the index is gone): memory stays bounded.
///
/// What it changed is logged as a warning, naming the log.
pub(super) fn repair(p: &Paths) -> io::Result<u64> {
    let mut fixed = Vec::new();
    convert_legacy(p, &mut fixed)?;
    let log = match OpenOptions::new().read(true).write(true).open(&p.log) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            remove_if_exists(&p.idx)?;
            return Ok(0);
        }
        Err(e) => return Err(e),
    };
    let len = log.metadata()?.len();
    let keep = end_of_last_line(&log, len)?;
    if keep != len {
        log.set_len(keep)?;
        fixed.push(format!("dropped a torn last line ({} bytes)", len - keep));
    }
    let lines = repair_index(&log, keep, &p.idx, &mut fixed)?;
    if let Some(meta) = open_if_exists(&p.meta)? {
        let len = meta.metadata()?.len();
        let valid = valid_meta(&meta, len / META_LEN as u64, lines)?;
        if valid * META_LEN as u64 != len {
            OpenOptions::new()
                .write(true)
                .open(&p.meta)?
                .set_len(valid * META_LEN as u64)?;
            fixed.push(format!(
                "dropped {} bytes of time entries for lines it does not hold, or garbage",
                len - valid * META_LEN as u64
            ));
        }
    }
    if !fixed.is_empty() {
        tracing::warn!(
            log = %p.log.display(),
            lines,
            "repaired a step log: {}",
            fixed.join("; ")
        );
    }
    Ok(lines)
}

/// How many `.meta` entries from the start hold: each for a line the log has, each
/// after the one before (an entry for a line that never made it, a torn entry, or a
/// zero-filled block a crash left does not).
fn valid_meta(meta: &File, entries: u64, lines: u64) -> io::Result<u64> {
    let mut buf = vec![0u8; SCAN_CHUNK - SCAN_CHUNK % META_LEN];
    let (mut at, mut last) = (0u64, None);
    while at < entries {
        let n = (entries - at).min((buf.len() / META_LEN) as u64) as usize;
        meta.read_exact_at(&mut buf[..n * META_LEN], at * META_LEN as u64)?;
        for e in buf[..n * META_LEN].chunks_exact(META_LEN) {
            let first = decode_meta(e).0;
            if first >= lines || last.is_some_and(|l| first <= l) {
                return Ok(at);
            }
            last = Some(first);
            at += 1;
        }
    }
    Ok(at)
}

/// Keeps the index entries, from the first, that point at a line start within the
/// log's first `keep` bytes, each after the one before; rebuilds the rest from the
/// last of them on; returns the line count.
fn repair_index(
    log: &File,
    keep: u64,
    idx_path: &Path,
    fixed: &mut Vec<String>,
) -> io::Result<u64> {
    let idx = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(idx_path)?;
    let stored = idx.metadata()?.len();
    // The entries that hold: the first is 0; each later one is within the log, after
    // the one before, just after a `\n`.
    let (mut entries, mut start) = (0u64, 0u64);
    while entries < stored / IDX_LEN {
        let e = read_u64_at(&idx, entries * IDX_LEN)?;
        let mut before = [0u8; 1];
        let ok = if entries == 0 {
            e == 0 && keep > 0
        } else {
            e < keep
                && e > start
                && log.read_exact_at(&mut before, e - 1).is_ok()
                && before[0] == b'\n'
        };
        if !ok {
            break;
        }
        start = e;
        entries += 1;
    }
    if entries * IDX_LEN != stored {
        fixed.push(format!(
            "kept {entries} of {} index entries, rebuilt the rest from the log",
            stored.div_ceil(IDX_LEN)
        ));
    }
    idx.set_len(entries * IDX_LEN)?;
    let mut lines = entries.saturating_sub(1) * INDEX_EVERY;
    let mut out = Vec::with_capacity(4096);
    if entries == 0 && keep > 0 {
        out.extend_from_slice(&0u64.to_le_bytes());
        entries = 1;
    }
    let mut buf = vec![0u8; SCAN_CHUNK];
    let mut pos = start;
    let mut written = entries * IDX_LEN - out.len() as u64;
    while pos < keep {
        let chunk = &mut buf[..(keep - pos).min(SCAN_CHUNK as u64) as usize];
        log.read_exact_at(chunk, pos)?;
        for nl in memchr::memchr_iter(b'\n', chunk) {
            lines += 1;
            let next = pos + nl as u64 + 1;
            if lines.is_multiple_of(INDEX_EVERY) && next < keep {
                out.extend_from_slice(&next.to_le_bytes());
            }
        }
        pos += chunk.len() as u64;
        if out.len() >= 4096 {
            idx.write_all_at(&out, written)?;
            written += out.len() as u64;
            out.clear();
        }
    }
    idx.write_all_at(&out, written)?;
    Ok(lines)
}

/// Converts every log of the older, prefixed format under `root`, then marks the
/// store as converted.
pub(super) fn convert_store(root: &Path) -> io::Result<()> {
    if !root.is_dir() || root.join(FORMAT_MARK).exists() {
        return Ok(());
    }
    for run in std::fs::read_dir(root)? {
        let run = run?;
        let Some(run_id) = run.file_name().to_str().and_then(|s| s.parse::<i64>().ok()) else {
            continue;
        };
        if !run.file_type()?.is_dir() {
            continue;
        }
        for f in std::fs::read_dir(run.path())? {
            let name = f?.file_name();
            let step = name.to_str().and_then(|n| n.split_once('.'));
            if let Some((step, "log" | "log.v1" | "log.new")) = step
                && let Ok(step_id) = step.parse::<i64>()
            {
                convert_legacy(&paths(root, run_id, step_id), &mut Vec::new())?;
            }
        }
    }
    std::fs::write(root.join(FORMAT_MARK), "2\n")
}

/// Converts one log of the older format (lines prefixed `<13-digit millis> <stream> `,
/// no `.meta`) to the current one, streaming; a no-op for a current log. Crash-safe:
/// the old log is kept as `.log.v1` until the new files are in place, and a
/// conversion a crash interrupted is finished or started again.
fn convert_legacy(p: &Paths, fixed: &mut Vec<String>) -> io::Result<()> {
    let old = p.log.with_extension("log.v1");
    let new_log = p.log.with_extension("log.new");
    let new_meta = p.meta.with_extension("meta.new");
    if p.meta.exists() {
        // Current format; finish a conversion stopped after its `.meta` was in place.
        if new_log.exists() {
            std::fs::rename(&new_log, &p.log)?;
        }
        return remove_if_exists(&old);
    }
    if old.exists() && !p.log.exists() {
        std::fs::rename(&old, &p.log)?;
    }
    if std::fs::metadata(&p.log).map_or(true, |m| m.len() == 0) {
        return Ok(());
    }
    if !has_legacy_prefix(&p.log)? {
        // A log of the current format that lost its `.meta`: its lines stay as they
        // are; their times and streams are unknown from here on.
        File::create(&p.meta)?.sync_all()?;
        fixed.push("its time entries (.meta) were missing; made an empty set".into());
        return Ok(());
    }
    let mut r = BufReader::with_capacity(SCAN_CHUNK, File::open(&p.log)?);
    let mut log = BufWriter::with_capacity(SCAN_CHUNK, File::create(&new_log)?);
    let mut meta = BufWriter::new(File::create(&new_meta)?);
    let (mut n, mut last) = (0u64, None);
    let mut rec = Vec::new();
    loop {
        rec.clear();
        // Old lines were capped at 1 MiB too; a longer "line" is cut, not loaded whole.
        let got = r
            .by_ref()
            .take(PREFIX_LEN as u64 + (1 << 20) + 1)
            .read_until(b'\n', &mut rec)?;
        if got == 0 || rec.last() != Some(&b'\n') {
            break; // the end, or a torn last line
        }
        let ts = std::str::from_utf8(rec.get(..13).unwrap_or_default())
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let stream = rec.get(14).copied().unwrap_or(b'o');
        if last != Some((ts, stream)) {
            meta.write_all(&encode_meta(n, ts, stream))?;
            last = Some((ts, stream));
        }
        log.write_all(rec.get(PREFIX_LEN..).unwrap_or(b"\n"))?;
        n += 1;
    }
    let (log, meta) = (log.into_inner()?, meta.into_inner()?);
    log.sync_all()?;
    meta.sync_all()?;
    std::fs::rename(&p.log, &old)?;
    std::fs::rename(&new_meta, &p.meta)?;
    std::fs::rename(&new_log, &p.log)?;
    remove_if_exists(&old)?;
    // The old index counted the same lines at other offsets.
    remove_if_exists(&p.idx)?;
    let log = File::open(&p.log)?;
    repair_index(&log, log.metadata()?.len(), &p.idx, &mut Vec::new())?;
    if let Some(dir) = p.log.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Whether the log's first line starts `<13 digits> <o|e|p> `, as in the older format.
fn has_legacy_prefix(log: &Path) -> io::Result<bool> {
    let mut head = [0u8; PREFIX_LEN];
    match File::open(log)?.read_exact_at(&mut head, 0) {
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(false),
        r => r?,
    }
    Ok(head[..13].iter().all(u8::is_ascii_digit)
        && head[13] == b' '
        && matches!(head[14], b'o' | b'e' | b'p')
        && head[15] == b' ')
}

#[cfg(test)]
mod tests {
    use super::super::LogStore;
    use super::super::tests::{T0, lines};
    use super::*;

    #[test]
    fn torn_last_line_and_its_entries_are_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::new(dir.path().to_path_buf());
        let mut w = store.writer(1, 1).unwrap();
        w.append(&lines(0, 5000), 5000, T0, b'o').unwrap();
        drop(w);
        // A crash after the entry for the next lines, amid their first line; the
        // index got an entry ahead of lines that never made it, and half of another.
        let path = |ext: &str| dir.path().join(format!("1/1.{ext}"));
        let mut meta = OpenOptions::new().append(true).open(path("meta")).unwrap();
        meta.write_all(&encode_meta(5000, T0 + 9, b'e')).unwrap();
        meta.write_all(&[1, 2, 3]).unwrap();
        let mut idx = OpenOptions::new().append(true).open(path("idx")).unwrap();
        let len = std::fs::metadata(path("log")).unwrap().len();
        idx.write_all(&(len + 10).to_le_bytes()).unwrap();
        idx.write_all(&[7, 7]).unwrap();
        let mut log = OpenOptions::new().append(true).open(path("log")).unwrap();
        log.write_all(b"half a li").unwrap();
        assert_eq!(store.repair(1, 1).unwrap(), 5000);
        assert_eq!(std::fs::read(path("meta")).unwrap().len(), META_LEN);
        assert_eq!(
            std::fs::read(path("idx")).unwrap().len(),
            2 * IDX_LEN as usize
        );
        assert_eq!(std::fs::metadata(path("log")).unwrap().len(), len);
        // A writer continues the repaired log: its next line is line 5000.
        let mut w = store.writer(1, 1).unwrap();
        w.append(&lines(5000, 1), 1, T0 + 5, b'e').unwrap();
        assert_eq!(w.lines(), 5001);
        let got = store.read(1, 1, 4999, 10).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!((got[0].ts, got[0].stream), (T0, 'o'));
        assert_eq!(
            (got[1].text.as_str(), got[1].ts, got[1].stream),
            ("line 5000", T0 + 5, 'e')
        );
    }

    /// The process's peak resident memory (bytes), after resetting it to the current.
    fn reset_peak_rss() {
        std::fs::write("/proc/self/clear_refs", "5").unwrap();
    }

    fn peak_rss() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap();
        kib * 1024
    }

    #[test]
    fn repair_streams_a_large_log_in_bounded_memory() {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::new(dir.path().to_path_buf());
        let mut w = store.writer(3, 1).unwrap();
        // 300,000 lines (about 3.5 MiB), then a 256 MiB hole of zeros (one long line,
        // the file stays sparse), then two lines and a torn third.
        w.append(&lines(0, 300_000), 300_000, T0, b'o').unwrap();
        drop(w);
        let path = dir.path().join("3/1.log");
        let f = OpenOptions::new().append(true).open(&path).unwrap();
        f.set_len(f.metadata().unwrap().len() + (256 << 20))
            .unwrap();
        (&f).write_all(b"\nafter\nlast\ntorn").unwrap();
        // The index is lost as well: everything is rebuilt from the log.
        std::fs::remove_file(dir.path().join("3/1.idx")).unwrap();
        reset_peak_rss();
        let before = peak_rss();
        assert_eq!(store.repair(3, 1).unwrap(), 300_003);
        let grew = peak_rss().saturating_sub(before);
        assert!(grew < 16 << 20, "repair grew the peak RSS by {grew} bytes");
        assert!(!std::fs::read(&path).unwrap().ends_with(b"torn"));
        assert_eq!(store.line_count(3, 1).unwrap(), 300_003);
        let got = store.read(3, 1, 300_001, 5).unwrap();
        let texts: Vec<&str> = got.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(texts, ["after", "last"]);
        assert_eq!(store.read(3, 1, 299_999, 1).unwrap()[0].text, "line 299999");
    }

    /// `lines` in the older format: each with the prefix `<13-digit millis> <stream> `.
    fn prefix_lines(lines: &[u8], ts: i64, stream: u8) -> Vec<u8> {
        let prefix = format!("{ts:013} {} ", stream as char);
        let mut out = Vec::new();
        for l in lines.split_inclusive(|&b| b == b'\n') {
            out.extend_from_slice(prefix.as_bytes());
            out.extend_from_slice(l);
        }
        out
    }

    #[test]
    fn logs_of_the_older_prefixed_format_are_converted_once() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("4")).unwrap();
        let mut old = prefix_lines(&lines(0, 5000), T0, b'e');
        old.extend_from_slice(&prefix_lines(&lines(5000, 2), T0 + 7, b'o'));
        assert!(old.starts_with(b"1700000000000 e line 0\n"));
        old.extend_from_slice(b"1700000000009 o torn");
        std::fs::write(dir.path().join("4/7.log"), &old).unwrap();
        // A conversion a crash interrupted, after the old log was moved aside.
        std::fs::write(
            dir.path().join("4/8.log.v1"),
            prefix_lines(b"a\n", T0, b'o'),
        )
        .unwrap();
        let store = LogStore::new(dir.path().to_path_buf());
        assert!(dir.path().join(FORMAT_MARK).exists());
        assert!(!dir.path().join("4/8.log.v1").exists());
        assert_eq!(store.repair(4, 8).unwrap(), 1);
        assert_eq!(store.read(4, 8, 0, 1).unwrap()[0].text, "a");
        // Read through the one reader, as written.
        assert_eq!(store.line_count(4, 7).unwrap(), 5002);
        let got = store.read(4, 7, 4999, 5).unwrap();
        let got: Vec<_> = got
            .iter()
            .map(|l| (l.text.as_str(), l.ts, l.stream))
            .collect();
        assert_eq!(
            got,
            [
                ("line 4999", T0, 'e'),
                ("line 5000", T0 + 7, 'o'),
                ("line 5001", T0 + 7, 'o')
            ]
        );
        // And it goes on in the current format.
        let mut w = store.writer(4, 7).unwrap();
        w.note("restarted").unwrap();
        assert_eq!(w.lines(), 5003);
        let last = &store.read(4, 7, 5002, 1).unwrap()[0];
        assert_eq!((last.text.as_str(), last.stream), ("restarted", 'p'));
    }
}
