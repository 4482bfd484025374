//! A step's first output, read on the async runtime.
//!
//! Most steps of a pipeline print little. Their pipes are watched by the runtime's
//! reactor, beside the step's pidfd, so a quiet step's end wakes one thread; a
//! blocking reader from the start woke a second one for every step, which cost a
//! 2,000-step DAG of `/bin/true` about 60 µs a step. Once a step has printed
//! [`HANDOFF`] bytes, its pipes move to a blocking thread ([`super::run`]): a flood
//! is cut, masked and handed over there, off the runtime that also serves the
//! actor, the API and the dashboard.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use super::{Got, Pipes};
use crate::engine::executor::process::Masker;
use crate::store::logs::LogStream;

/// Bytes read on the runtime before the blocking reader takes over.
const HANDOFF: usize = 64 * 1024;

/// Reads the pipes to their ends (or until `stop` is readable or closed), handing
/// their lines to `log`; then the log back, and the first failure to read or to
/// hand lines over. `Err` when the blocking reader was lost (it panicked).
pub async fn read(
    mut pipes: Pipes,
    stop: OwnedFd,
    mut log: LogStream,
    masker: Arc<Masker>,
) -> io::Result<(LogStream, io::Result<()>)> {
    match front(&mut pipes, &stop, &mut log, &masker).await {
        Ok(true) => return Ok((log, pipes.result())),
        Ok(false) => {}
        Err(e) => return Ok((log, Err(e))),
    }
    tokio::task::spawn_blocking(move || {
        let read = super::run(pipes, &stop, &mut log, &masker);
        (log, read)
    })
    .await
    .map_err(|e| io::Error::other(format!("the output reader failed: {e}")))
}

/// Borrows a descriptor owned elsewhere (the stop pipe, which outlives the watch).
struct Borrowed(RawFd);

impl AsRawFd for Borrowed {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

/// Registers `fd` with the runtime's reactor; on failure gives it back.
fn watch<T: AsRawFd>(fd: T) -> Result<AsyncFd<T>, T> {
    // SAFETY: `fd` is open and stays open, the same file, while the AsyncFd holds
    // it: an OwnedFd is owned by the AsyncFd, and the stop pipe outlives the watch.
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
    stop: &OwnedFd,
    log: &mut LogStream,
    masker: &Masker,
) -> io::Result<bool> {
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
    let stop = if refused {
        None
    } else {
        watch(Borrowed(stop.as_raw_fd())).ok()
    };
    let Some(stop) = stop else {
        // The reactor would not take them: the blocking reader reads all.
        for (fd, w) in pipes.fds.iter_mut().zip(watched) {
            if let Some(w) = w {
                *fd = Some(w.into_inner());
            }
        }
        return Ok(false);
    };
    let mut read = 0;
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
            _ = stop.readable() => Wake::Stop,
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
        let (stop_r, _stop_w) = std::io::pipe().unwrap();
        let writers = [
            std::thread::spawn(move || out_w.write_all(&out).unwrap()),
            std::thread::spawn(move || err_w.write_all(&err).unwrap()),
        ];
        let pipes = Pipes::new(Some(out_r.into()), Some(err_r.into())).unwrap();
        let (log, read) = read(pipes, stop_r.into(), log, Arc::new(masker))
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
