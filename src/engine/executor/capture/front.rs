//! A step's first output, read on the async runtime.
//!
//! Most steps of a pipeline print little. Their pipes are watched by the runtime's
//! reactor, beside the step's pidfd, so a quiet step's end wakes one thread; a
//! blocking reader from the start woke a second one for every step, which cost a
//! 2,000-step DAG of `/bin/true` about 60 µs a step. Once a step has printed
//! [`HANDOFF`] bytes, its pipes move to a blocking thread ([`super::run`]): a flood
//! is cut, masked and handed over there, off the runtime that also serves the
//! actor, the API and the dashboard.
//!
//! What only a flood needs is made at the hand-over: the pipe that tells the
//! blocking reader to stop, and the larger pipes. Made for every step, they cost a
//! pipe and eight more system calls a step. With this and the first read at the
//! step's exit (`process::WATCH_AFTER`), the engine thread of a 2,000-step DAG of
//! `/bin/true` took 289 ms of CPU instead of 340 ms (medians of 5 interleaved runs),
//! and the DAG's ratio to `make -j2` went from 1.29 to 1.26 (medians of 9 pairs).

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio_util::sync::CancellationToken;

use super::{Got, Pipes};
use crate::engine::executor::process::Masker;
use crate::store::logs::LogStream;

/// Bytes read on the runtime before the blocking reader takes over.
const HANDOFF: usize = 64 * 1024;

/// Reads the pipes to their ends (or until `stop` is cancelled), handing their
/// lines to `log`; then the log back, and the first failure to read or to hand
/// lines over. `Err` when the blocking reader was lost (it panicked).
pub async fn read(
    mut pipes: Pipes,
    stop: CancellationToken,
    mut log: LogStream,
    masker: Arc<Masker>,
) -> io::Result<(LogStream, io::Result<()>)> {
    match front(&mut pipes, &stop, &mut log, &masker).await {
        Ok(true) => return Ok((log, pipes.result())),
        Ok(false) => {}
        Err(e) => return Ok((log, Err(e))),
    }
    // Closing `stop_w` tells the blocking reader to stop.
    let (stop_r, stop_w) = crate::engine::executor::spawn::pipe_pair()?;
    let mut reader = tokio::task::spawn_blocking(move || {
        pipes.enlarge();
        let read = super::run(pipes, &stop_r, &mut log, &masker);
        (log, read)
    });
    let joined = tokio::select! {
        r = &mut reader => r,
        () = stop.cancelled() => {
            drop(stop_w);
            reader.await
        }
    };
    joined.map_err(|e| io::Error::other(format!("the output reader failed: {e}")))
}

/// Registers `fd` with the runtime's reactor; on failure gives it back.
fn watch(fd: OwnedFd) -> Result<AsyncFd<OwnedFd>, OwnedFd> {
    // SAFETY: `fd` is open and stays open, the same file, while the AsyncFd owns it.
    unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }.map_err(|e| e.into_parts().0)
}

/// Waits until `fd` (if any) is readable; `None` never is.
async fn readable(
    fd: &Option<AsyncFd<OwnedFd>>,
) -> io::Result<tokio::io::unix::AsyncFdReadyGuard<'_, OwnedFd>> {
    match fd {
        Some(fd) => fd.readable().await,
        None => std::future::pending().await,
    }
}

/// What woke the front reader.
enum Wake {
    /// Pump `i` read what its pipe held.
    Read(usize, Got),
    Stop,
    /// Held lines are due.
    Due,
}

/// Reads on the runtime until the output ends (`true`) or exceeds [`HANDOFF`]
/// (`false`: the pipes are back in `pipes`, for the blocking reader).
async fn front(
    pipes: &mut Pipes,
    stop: &CancellationToken,
    log: &mut LogStream,
    masker: &Masker,
) -> io::Result<bool> {
    // Most often the step has ended by the first call (see `process::run`), and the
    // pipes hold all it wrote: read them before asking the reactor to watch them.
    let mut read = 0;
    for i in 0..2 {
        read += pipes.read_now(i, log, masker)?;
    }
    if pipes.fds.iter().all(Option::is_none) {
        return Ok(true);
    }
    if read >= HANDOFF {
        return Ok(false);
    }
    let mut watched: [Option<AsyncFd<OwnedFd>>; 2] = [None, None];
    let mut refused = false;
    for (slot, fd) in watched.iter_mut().zip(pipes.fds.iter_mut()) {
        if let Some(f) = fd.take() {
            match watch(f) {
                Ok(w) => *slot = Some(w),
                Err(f) => {
                    *fd = Some(f);
                    refused = true;
                }
            }
        }
    }
    if refused {
        // The reactor would not take them: the blocking reader reads all.
        for (fd, w) in pipes.fds.iter_mut().zip(watched) {
            if let Some(w) = w {
                *fd = Some(w.into_inner());
            }
        }
        return Ok(false);
    }
    let ended = loop {
        if watched.iter().all(Option::is_none) {
            break true;
        }
        if read >= HANDOFF {
            break false;
        }
        let due = pipes.next_due();
        let sleep = async {
            match due {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        let pump = |i: usize,
                    guard: io::Result<tokio::io::unix::AsyncFdReadyGuard<'_, OwnedFd>>,
                    pipes: &mut Pipes|
         -> io::Result<Wake> {
            let mut guard = guard?;
            let got = pipes.pumps[i].fill(guard.get_inner().as_raw_fd(), masker)?;
            if got == Got::Empty {
                guard.clear_ready();
            }
            Ok(Wake::Read(i, got))
        };
        let wake = tokio::select! {
            g = readable(&watched[0]) => pump(0, g, pipes)?,
            g = readable(&watched[1]) => pump(1, g, pipes)?,
            () = stop.cancelled() => Wake::Stop,
            _ = sleep => Wake::Due,
        };
        let now = std::time::Instant::now();
        match wake {
            Wake::Read(i, got) => {
                read += pipes.pumps[i].got;
                if got == Got::End {
                    watched[i] = None;
                }
                if got != Got::Empty || pipes.due(i, now) {
                    pipes.ship(i, watched[i].is_some(), log, masker);
                }
            }
            Wake::Stop => {
                for (i, w) in watched.iter_mut().enumerate() {
                    if let Some(w) = w.take() {
                        pipes.drain(i, w.as_raw_fd(), log, masker)?;
                    }
                }
                break true;
            }
            Wake::Due => {
                for (i, w) in watched.iter().enumerate() {
                    if pipes.due(i, now) {
                        pipes.ship(i, w.is_some(), log, masker);
                    }
                }
            }
        }
    };
    for (fd, w) in pipes.fds.iter_mut().zip(watched) {
        *fd = w.map(AsyncFd::into_inner);
    }
    Ok(ended)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::LogStore;
    use std::io::Write;

    /// Writes `out` and `err` into pipes from threads of their own, reads them with
    /// [`read`]; the stored lines of each stream, in order.
    async fn capture(out: Vec<u8>, err: Vec<u8>, masker: Masker) -> (Vec<String>, Vec<String>) {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::new(dir.path().to_path_buf());
        let log = store.stream(1, 1, Arc::new(|_| {})).unwrap();
        let (out_r, mut out_w) = std::io::pipe().unwrap();
        let (err_r, mut err_w) = std::io::pipe().unwrap();
        let writers = [
            std::thread::spawn(move || out_w.write_all(&out).unwrap()),
            std::thread::spawn(move || err_w.write_all(&err).unwrap()),
        ];
        let pipes = Pipes::new(Some(out_r.into()), Some(err_r.into())).unwrap();
        let (log, read) = read(pipes, CancellationToken::new(), log, Arc::new(masker))
            .await
            .unwrap();
        read.unwrap();
        for w in writers {
            w.join().unwrap();
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        log.close(Box::new(move |r| tx.send(r).unwrap()));
        let total = rx.await.unwrap().unwrap();
        let lines = store.read(1, 1, 0, total as usize).unwrap();
        let of = |s: char| {
            lines
                .iter()
                .filter(|l| l.stream == s)
                .map(|l| l.text.clone())
                .collect()
        };
        (of('o'), of('e'))
    }

    fn numbered(n: usize, what: &str) -> Vec<u8> {
        (0..n)
            .flat_map(|i| format!("{what} {i}\n").into_bytes())
            .collect()
    }

    #[tokio::test]
    async fn a_quiet_step_is_read_on_the_runtime_to_its_end() {
        let (out, err) = capture(
            b"one\ntwo s3cret".to_vec(),
            b"oops\n".to_vec(),
            Masker::new(&["s3cret".into()]),
        )
        .await;
        assert_eq!(out, ["one", "two ***"]);
        assert_eq!(err, ["oops"]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_flood_moves_to_the_blocking_reader_and_no_line_is_lost_or_cut() {
        // Far more than HANDOFF on both streams, a secret in every line: lines that
        // straddle the hand-over stay whole and masked.
        let (n, m) = (200_000, 50_000);
        assert!(numbered(m, "err").len() > 4 * HANDOFF);
        let (out, err) = capture(
            numbered(n, "out k3y"),
            numbered(m, "err k3y"),
            Masker::new(&["k3y".into()]),
        )
        .await;
        assert_eq!(out.len(), n);
        assert_eq!(err.len(), m);
        assert!(
            out.iter()
                .enumerate()
                .all(|(i, l)| *l == format!("out *** {i}"))
        );
        assert!(
            err.iter()
                .enumerate()
                .all(|(i, l)| *l == format!("err *** {i}"))
        );
    }
}
