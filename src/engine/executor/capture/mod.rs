//! Reading a step's output: its stdout and stderr pipes are cut into lines (each at
//! most [`MAX_LINE`] bytes), masked, and handed in batches to the store's log-writer
//! thread. A step's first output is read on the runtime ([`front`], beside the
//! step's pidfd: most steps print little, and their end then wakes no other thread);
//! past a trickle, one blocking thread for the step takes over ([`run`]). It sleeps
//! in `poll` until output comes or a batch is due, and nothing spins (after a wakeup
//! that found little, it sleeps [`GATHER`] once so the next read takes more).

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use super::process::Masker;
use crate::domain::now_ms;
use crate::store::logs::{Batch, LogStream};

/// Longest line kept whole (longer ones are split into lines of this size).
pub const MAX_LINE: usize = 1024 * 1024;
/// The most one read takes from a pipe.
const READ_CHUNK: usize = 128 * 1024;
/// The most a pipe's first read takes.
const FIRST_READ: usize = 4 * 1024;
/// A batch goes to the writer once it holds this much.
const BATCH: usize = 256 * 1024;
/// ... or once its first line has waited this long (the writer makes lines durable
/// within 250 ms of getting them; this is small next to that).
const LINGER: Duration = Duration::from_millis(10);
/// A wakeup that found less than this in the pipes ...
const GATHER_BELOW: usize = 64 * 1024;
/// ... waits this long before the next poll, so the next read takes a larger chunk.
/// (One bounded sleep a wakeup, never a loop: a quiet pipe still sleeps in `poll`.)
///
/// Kept because it paid in every round: `yes | head -c 1G` writes 8 KiB at a time,
/// and the reader woke for nearly each write. With the gather (and the 1 MiB pipe),
/// `pipedeck run --wait` made 48-52k voluntary and 24-30k involuntary context
/// switches instead of 130-138k and 79-85k; `scripts/bench.sh --capture` (5 pairs a
/// round, 3 rounds interleaved with the code without it, load average about 4.5 on
/// 2 cores): median of the per-pair ratios 1.45/1.52/1.31 without, 1.22/1.23/1.11
/// with; the step's median 1.47/1.39/1.66 s without, 1.19/1.19/1.01 s with. Peak RSS
/// 28-29 MiB without, 38-39 MiB with (larger batches in flight).
const GATHER: Duration = Duration::from_micros(500);
/// The pipes are enlarged to this (the default limit for unprivileged users), so a
/// producer does not block while the reader gathers.
const PIPE_SIZE: libc::c_int = 1024 * 1024;

mod front;
pub use front::read;

/// One of the child's output pipes, cut into lines. (The descriptor is held by
/// [`Pipes`], or while the runtime watches it, by [`front`].)
struct Pump {
    stream: u8,
    /// Complete lines (up to `line_start`), then the start of a line.
    buf: Vec<u8>,
    line_start: usize,
    /// Since when complete lines wait in `buf`.
    held: Option<Instant>,
    /// Bytes the last `fill` read.
    got: usize,
}

/// What a read found.
#[derive(Debug, PartialEq)]
enum Got {
    /// The pipe is empty for now.
    Empty,
    /// A batch's worth of lines is waiting.
    Full,
    /// End of output (an unterminated last line was completed).
    End,
}

/// Makes `fd`, the read end of a pipe just made (no status flags set), non-blocking.
fn nonblocking(fd: &OwnedFd) -> io::Result<()> {
    // SAFETY: F_SETFL on a descriptor the caller owns.
    if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

impl Pump {
    fn new(stream: u8) -> Self {
        Self {
            stream,
            buf: Vec::new(),
            line_start: 0,
            held: None,
            got: 0,
        }
    }

    /// Reads what the pipe `fd` holds, until it is empty, a batch is full, or it
    /// ends (then the caller closes `fd`). A line cut at the cap is cut before any
    /// start of one of `masker`'s secrets at its end, so that the secret, whole in
    /// the next line, is still masked.
    fn fill(&mut self, fd: RawFd, masker: &Masker) -> io::Result<Got> {
        self.got = 0;
        loop {
            let partial = self.buf.len() - self.line_start;
            // A pipe's first read takes little: most steps print little or nothing,
            // and a first read of READ_CHUNK was an allocation of that size (and
            // its free, at times a heap trim) per pipe and step.
            let chunk = if self.buf.capacity() == 0 {
                FIRST_READ
            } else {
                READ_CHUNK
            };
            let want = chunk.min(MAX_LINE - partial);
            if want == 0 {
                // A line as long as the cap: it ends here, or a little before.
                let carry = masker.open_prefix(&self.buf[self.line_start..]);
                if carry == 0 {
                    self.end_line();
                } else {
                    let at = self.buf.len() - carry;
                    self.buf.insert(at, b'\n');
                    self.complete_to(at + 1);
                }
                continue;
            }
            self.buf.reserve(want);
            let spare = self.buf.spare_capacity_mut();
            // SAFETY: reads at most `want` bytes into the vector's spare capacity,
            // which `reserve` made at least that large.
            let n = unsafe { libc::read(fd, spare.as_mut_ptr().cast(), want) };
            if n < 0 {
                let e = io::Error::last_os_error();
                match e.kind() {
                    io::ErrorKind::Interrupted => continue,
                    io::ErrorKind::WouldBlock => return Ok(Got::Empty),
                    _ => return Err(e),
                }
            }
            if n == 0 {
                self.finish();
                return Ok(Got::End);
            }
            let old = self.buf.len();
            // SAFETY: `read` initialised `n` bytes past the old length.
            unsafe { self.buf.set_len(old + n as usize) };
            self.got += n as usize;
            if let Some(i) = memchr::memrchr(b'\n', &self.buf[old..]) {
                self.complete_to(old + i + 1);
            }
            if self.line_start >= BATCH {
                return Ok(Got::Full);
            }
        }
    }

    /// The lines up to `end` are complete.
    fn complete_to(&mut self, end: usize) {
        self.line_start = end;
        self.held.get_or_insert_with(Instant::now);
    }

    /// The line being read ends here (at the cap, or at the end of output).
    fn end_line(&mut self) {
        self.buf.push(b'\n');
        self.complete_to(self.buf.len());
    }

    /// The output ended (or its end was forced: the pipe is held open by a process
    /// that left the step's group): an unterminated last line is completed.
    fn finish(&mut self) {
        if self.buf.len() > self.line_start {
            self.end_line();
        }
    }

    /// The complete lines, masked, as a batch; the start of a line stays.
    fn take(&mut self, masker: &Masker, open: bool) -> Option<Batch> {
        if self.line_start == 0 {
            return None;
        }
        let mut rest = Vec::with_capacity(if open { BATCH + READ_CHUNK } else { 0 });
        rest.extend_from_slice(&self.buf[self.line_start..]);
        let mut data = std::mem::replace(&mut self.buf, rest);
        data.truncate(self.line_start);
        self.line_start = 0;
        self.held = None;
        let masked = match masker.apply(&data) {
            std::borrow::Cow::Owned(m) => Some(m),
            std::borrow::Cow::Borrowed(_) => None,
        };
        if let Some(m) = masked {
            data = m;
        }
        let count = memchr::memchr_iter(b'\n', &data).count() as u64;
        Some(Batch {
            data,
            count,
            ts: now_ms(),
            stream: self.stream,
        })
    }
}

/// A step's stdout and stderr, cut into lines; what failed handing them over.
pub struct Pipes {
    pumps: [Pump; 2],
    /// The open pipes (a pump's is closed at its end).
    fds: [Option<OwnedFd>; 2],
    /// The first failure to hand lines to the log: kept, while the pipes are still
    /// drained (the step must not block on a full pipe).
    failed: Option<io::Error>,
}

impl Pipes {
    /// The read ends of a child's stdout and stderr pipes, freshly made.
    pub fn new(out: Option<OwnedFd>, err: Option<OwnedFd>) -> io::Result<Self> {
        for fd in out.iter().chain(err.iter()) {
            nonblocking(fd)?;
        }
        Ok(Self {
            pumps: [Pump::new(b'o'), Pump::new(b'e')],
            fds: [out, err],
            failed: None,
        })
    }

    /// Enlarges the open pipes where the system allows (failing to is no error), so
    /// that a flooding producer does not block while the reader gathers.
    fn enlarge(&self) {
        for fd in self.fds.iter().flatten() {
            // SAFETY: F_SETPIPE_SZ on a pipe this value owns.
            unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETPIPE_SZ, PIPE_SIZE) };
        }
    }

    /// Hands pump `i`'s complete lines to `log`.
    fn ship(&mut self, i: usize, open: bool, log: &mut LogStream, masker: &Masker) {
        if let Some(batch) = self.pumps[i].take(masker, open)
            && self.failed.is_none()
            && let Err(e) = log.append(batch)
        {
            self.failed = Some(e);
        }
    }

    /// Whether pump `i`'s held lines have waited [`LINGER`].
    fn due(&self, i: usize, now: Instant) -> bool {
        self.pumps[i].held.is_some_and(|t| now >= t + LINGER)
    }

    /// When the oldest held lines are due.
    fn next_due(&self) -> Option<Instant> {
        self.pumps
            .iter()
            .filter_map(|p| p.held)
            .min()
            .map(|t| t + LINGER)
    }

    /// Reads what pump `i`'s pipe holds now, handing its lines to `log`; closes the
    /// pipe at its end. The bytes read.
    fn read_now(&mut self, i: usize, log: &mut LogStream, masker: &Masker) -> io::Result<usize> {
        let mut read = 0;
        while let Some(fd) = &self.fds[i] {
            let got = self.pumps[i].fill(fd.as_raw_fd(), masker)?;
            read += self.pumps[i].got;
            if got == Got::End {
                self.fds[i] = None;
            }
            if got != Got::Empty {
                self.ship(i, self.fds[i].is_some(), log, masker);
            }
            if got != Got::Full {
                break;
            }
        }
        Ok(read)
    }

    /// Told to stop: takes what pipe `fd` (pump `i`'s) holds now, then no more.
    fn drain(
        &mut self,
        i: usize,
        fd: RawFd,
        log: &mut LogStream,
        masker: &Masker,
    ) -> io::Result<()> {
        while self.pumps[i].fill(fd, masker)? == Got::Full {
            self.ship(i, true, log, masker);
        }
        self.pumps[i].finish();
        self.ship(i, false, log, masker);
        Ok(())
    }

    /// The outcome: the first failure to hand lines over, if any.
    fn result(self) -> io::Result<()> {
        self.failed.map_or(Ok(()), Err)
    }
}

/// Reads the pipes to their ends (or until `stop` is readable or closed), handing
/// their lines to `log`, on the calling (blocking) thread. A failure to hand them
/// over is kept and returned, and the pipes are still drained.
fn run(mut pipes: Pipes, stop: &OwnedFd, log: &mut LogStream, masker: &Masker) -> io::Result<()> {
    loop {
        if pipes.fds.iter().all(Option::is_none) {
            break;
        }
        // Sleep until output comes, or the oldest held lines are due.
        let now = Instant::now();
        let timeout = pipes.next_due().map_or(-1, |t| {
            t.saturating_duration_since(now).as_millis() as libc::c_int
        });
        let mut fds = [
            poll_fd(pipes.fds[0].as_ref()),
            poll_fd(pipes.fds[1].as_ref()),
            poll_fd(Some(stop)),
        ];
        // SAFETY: poll on an array of three pollfd (negative fds are ignored).
        let r = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if fds[2].revents != 0 {
            for i in 0..2 {
                if let Some(fd) = pipes.fds[i].take() {
                    pipes.drain(i, fd.as_raw_fd(), log, masker)?;
                }
            }
            break;
        }
        let now = Instant::now();
        let mut read = 0;
        let mut ended = false;
        for (i, polled) in fds[..2].iter().enumerate() {
            let got = match &pipes.fds[i] {
                Some(fd) if polled.revents != 0 => pipes.pumps[i].fill(fd.as_raw_fd(), masker)?,
                _ => Got::Empty,
            };
            read += pipes.pumps[i].got;
            if got == Got::End {
                ended = true;
                pipes.fds[i] = None;
            }
            if got != Got::Empty || pipes.due(i, now) {
                pipes.ship(i, pipes.fds[i].is_some(), log, masker);
            }
        }
        // Output coming in small writes: let it pile up a little before the next read,
        // instead of waking for every write.
        if read > 0 && read < GATHER_BELOW && !ended {
            std::thread::sleep(GATHER);
        }
    }
    pipes.result()
}

fn poll_fd(fd: Option<&OwnedFd>) -> libc::pollfd {
    libc::pollfd {
        fd: fd.map_or(-1, |f| f.as_raw_fd()),
        events: libc::POLLIN,
        revents: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `chunks` through a pump as if read from a pipe; the lines it hands over.
    fn cut(chunks: &[&[u8]], masker: &Masker) -> Vec<String> {
        use std::io::Write;
        let (r, w) = std::io::pipe().unwrap();
        let r: OwnedFd = r.into();
        nonblocking(&r).unwrap();
        let mut p = Pump::new(b'o');
        let mut w = Some(w);
        let mut out = Vec::new();
        let mut keep = |p: &mut Pump| {
            if let Some(b) = p.take(masker, true) {
                let text = String::from_utf8(b.data).unwrap();
                assert_eq!(b.count as usize, text.lines().count());
                assert_eq!(b.stream, b'o');
                out.extend(text.lines().map(str::to_string));
            }
        };
        let mut feed: Vec<u8> = chunks.concat();
        // Write in pieces the pipe holds, reading between them.
        while !feed.is_empty() || w.is_some() {
            if feed.is_empty() {
                w = None;
            } else {
                let n = feed.len().min(32 * 1024);
                w.as_mut().unwrap().write_all(&feed[..n]).unwrap();
                feed.drain(..n);
            }
            loop {
                let got = p.fill(r.as_raw_fd(), masker).unwrap();
                keep(&mut p);
                if got != Got::Full {
                    break;
                }
            }
        }
        out
    }

    #[test]
    fn lines_are_cut_across_reads_and_long_ones_at_the_cap() {
        let m = Masker::default();
        assert_eq!(cut(&[b"a\nb", b"c\nd"], &m), ["a", "bc", "d"]);
        assert_eq!(cut(&[b"", b"x\n"], &m), ["x"]);
        // A line just under the cap stays whole.
        let almost = vec![b'y'; MAX_LINE - 1];
        let mut feed = almost.clone();
        feed.extend_from_slice(b"\nz\n");
        assert_eq!(
            cut(&[&feed], &m),
            [String::from_utf8(almost).unwrap(), "z".to_string()]
        );
        // A longer one is cut at the cap, twice over, and what follows is whole.
        let long = vec![b'w'; 2 * MAX_LINE + 10];
        let got = cut(&[&long, b"\nafter\n"], &m);
        assert_eq!(got.len(), 4);
        assert_eq!(
            (got[0].len(), got[1].len(), got[2].len()),
            (MAX_LINE, MAX_LINE, 10)
        );
        assert_eq!(got[3], "after");
        // An unterminated last line is kept, completed.
        assert_eq!(cut(&[b"p\nq"], &m), ["p", "q"]);
        // Many lines come in batches of about BATCH bytes, none lost.
        let many: Vec<u8> = (0..100_000)
            .flat_map(|i| format!("{i}\n").into_bytes())
            .collect();
        let got = cut(&[&many], &m);
        assert_eq!(got.len(), 100_000);
        assert!(got.iter().enumerate().all(|(i, l)| *l == i.to_string()));
    }

    #[test]
    fn secrets_are_masked_in_every_line_and_batches_count_lines_after_masking() {
        let m = Masker::new(&["hunter2".into(), "".into(), "hunter2x".into()]);
        assert_eq!(&*m.apply(b"a hunter2x b hunter2\n"), b"a *** b ***\n");
        assert!(matches!(m.apply(b"clean\n"), std::borrow::Cow::Borrowed(_)));
        // A secret split across two reads is still one line when masked.
        let got = cut(&[b"one hun", b"ter2 two\nhunter2x\n"], &m);
        assert_eq!(got, ["one *** two", "***"]);
        // A secret across the long-line cap goes whole into the next line, masked.
        for before in [1, 4, 7] {
            let mut long = vec![b'w'; MAX_LINE - before];
            long.extend_from_slice(b"hunter2 tail\n");
            let got = cut(&[&long], &m);
            assert_eq!(got.len(), 2, "{before}");
            assert_eq!(got[0].len(), MAX_LINE - before);
            assert!(got[0].bytes().all(|b| b == b'w'));
            assert_eq!(got[1], "*** tail");
        }
        assert!(
            cut(&[&vec![b'h'; 3 * MAX_LINE]], &m)
                .iter()
                .all(|l| !l.is_empty())
        );
    }

    #[test]
    fn run_reads_both_pipes_to_their_ends_and_stops_when_told() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::LogStore::new(dir.path().to_path_buf());
        let mut log = store.stream(1, 1, std::sync::Arc::new(|_| {})).unwrap();
        let (out_r, mut out_w) = std::io::pipe().unwrap();
        let (err_r, mut err_w) = std::io::pipe().unwrap();
        let (stop_r, stop_w) = std::io::pipe().unwrap();
        let m = Masker::new(&["s3cret".into()]);
        std::thread::scope(|s| {
            let reader = s.spawn(|| {
                let pipes = Pipes::new(Some(out_r.into()), Some(err_r.into())).unwrap();
                run(pipes, &stop_r.into(), &mut log, &m)
            });
            out_w.write_all(b"out s3cret\n").unwrap();
            std::thread::sleep(LINGER * 3);
            err_w.write_all(b"err 1\nerr ").unwrap();
            drop(err_w);
            std::thread::sleep(LINGER * 3);
            // stdout stays open (as if a process outside the group held it).
            out_w.write_all(b"no newline yet").unwrap();
            std::thread::sleep(LINGER * 3);
            drop(stop_w);
            reader.join().unwrap().unwrap();
        });
        let (tx, rx) = std::sync::mpsc::channel();
        log.close(Box::new(move |r| tx.send(r).unwrap()));
        assert_eq!(rx.recv().unwrap().unwrap(), 4);
        let got: Vec<(String, char)> = store
            .read(1, 1, 0, 10)
            .unwrap()
            .into_iter()
            .map(|l| (l.text, l.stream))
            .collect();
        let want = [
            ("out ***", 'o'),
            ("err 1", 'e'),
            ("err ", 'e'),
            ("no newline yet", 'o'),
        ];
        assert_eq!(got, want.map(|(t, s)| (t.to_string(), s)));
    }
}
