//! The engine's children, and what its steps leave behind.
//!
//! The engine is a child subreaper (`PR_SET_CHILD_SUBREAPER`): a process a step
//! started that left the step's process group (`setsid`, a double fork) is
//! re-parented to the engine, not to init, once its parents are gone. Every step
//! process carries its step's [`StepToken`] in its environment
//! (`PIPEDECK_STEP_TOKEN`, the way Jenkins' ProcessTreeKiller marks a build's
//! processes). A reaper thread looks at the engine's children shortly after a step
//! ends, and every [`SWEEP_EVERY`]:
//! - a child whose token names a step that has ended is killed, with every process
//!   under it (the step is over: what it left running goes, as its group does);
//! - a child that exited and that nobody waits for is reaped (no zombies pile up).
//!
//! The children the engine waits for itself must never be reaped here. A step's
//! leader is [`register`]ed while its spawn holds [`SPAWNING`] for reading (the
//! reaper looks while holding it for writing). Commands the engine runs through
//! `std::process` (`git`, `terraform version`) stay in the engine's own process
//! group, and a child in that group is never reaped here: only a process that a
//! step started is (a step runs in a group of its own, and what leaves it goes
//! further away still).

use std::collections::HashSet;
use std::sync::{Condvar, Mutex, OnceLock, RwLock, RwLockReadGuard};
use std::time::Duration;

use super::token::{self, StepToken};

/// How often the reaper looks, without being asked.
const SWEEP_EVERY: Duration = Duration::from_millis(500);
/// After a step ends, how long the reaper waits for more to end before it looks
/// (one look for many short steps).
const SETTLE: Duration = Duration::from_millis(20);

/// Held for reading while a step's leader is started and registered; for writing
/// while the reaper looks.
static SPAWNING: RwLock<()> = RwLock::new(());

/// What the reaper knows.
#[derive(Default)]
struct State {
    /// Step leaders being waited for on their pidfd (not to be reaped here).
    leaders: HashSet<i32>,
    /// The stores of the engines in this process: a token of another store (an
    /// engine that runs this one as a step) is not ours to act on.
    stores: HashSet<String>,
    /// Steps still running: their processes are theirs to keep.
    live: HashSet<StepToken>,
    /// A step ended since the last look.
    ended: bool,
}

struct Reaper {
    state: Mutex<State>,
    wake: Condvar,
}

fn reaper() -> &'static Reaper {
    static REAPER: OnceLock<Reaper> = OnceLock::new();
    REAPER.get_or_init(|| {
        // SAFETY: prctl with PR_SET_CHILD_SUBREAPER takes an integer flag.
        if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
            tracing::warn!(
                "cannot become a child subreaper: {}; processes that leave a step's group \
                 are found only while their parents live",
                std::io::Error::last_os_error()
            );
        }
        if let Err(e) = std::thread::Builder::new()
            .name("pd-reaper".into())
            .spawn(reap_loop)
        {
            tracing::error!("cannot start the reaper thread: {e}");
        }
        Reaper {
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
        }
    })
}

fn state() -> std::sync::MutexGuard<'static, State> {
    reaper()
        .state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Makes the engine a subreaper and starts the reaper (once per process); the
/// reaper stops what the steps of `store` leave behind. Also: a file that grows past
/// the process's size limit fails its write (EFBIG, a step's log then fails that
/// step) instead of killing the engine with SIGXFSZ.
pub fn start(store: &str) {
    // SAFETY: setting a signal's disposition to SIG_IGN has no other effect.
    unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
    state().stores.insert(store.to_string());
}

/// Held while a step's leader is spawned and [`register`]ed.
pub fn spawning() -> RwLockReadGuard<'static, ()> {
    SPAWNING
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A step's leader was started (call while holding [`spawning`]); its token is live.
pub fn register(pid: i32, token: Option<&StepToken>) {
    let mut s = state();
    s.leaders.insert(pid);
    if let Some(t) = token {
        s.live.insert(t.clone());
    }
}

/// The step's leader has exited: what its step left is now the reaper's to stop.
pub fn ended(token: &StepToken) {
    let mut s = state();
    s.live.remove(token);
    // Already set, the reaper has not taken the last one yet and looks anyway: no
    // wake (a futex call a step, most of them, in a DAG of short steps).
    if !std::mem::replace(&mut s.ended, true) {
        reaper().wake.notify_one();
    }
}

/// Calls [`ended`] when dropped: however a step's task ends (even aborted), what
/// its step left behind is not kept alive by a token still marked live.
pub struct EndOnDrop(pub StepToken);

impl Drop for EndOnDrop {
    fn drop(&mut self) {
        ended(&self.0);
    }
}

/// A step's leader was reaped by whoever waited for it.
pub fn reaped(pid: i32) {
    state().leaders.remove(&pid);
}

fn reap_loop() {
    let r = reaper();
    loop {
        {
            let s = r.state.lock().unwrap_or_else(|p| p.into_inner());
            let (mut s, _) = r
                .wake
                .wait_timeout_while(s, SWEEP_EVERY, |s| !s.ended)
                .unwrap_or_else(|p| p.into_inner());
            s.ended = false;
        }
        std::thread::sleep(SETTLE);
        sweep();
    }
}

/// One look at the engine's children: stops what ended steps left, reaps the dead.
pub fn sweep() {
    let _held = SPAWNING.write().unwrap_or_else(|p| p.into_inner());
    // SAFETY: getpgrp has no preconditions.
    let own_group = unsafe { libc::getpgrp() };
    // No leader is registered while the write lock is held; one reaped meanwhile is
    // no longer a child.
    let (leaders, live, stores) = {
        let s = state();
        (s.leaders.clone(), s.live.clone(), s.stores.clone())
    };
    for pid in token::children(std::process::id() as i32) {
        if leaders.contains(&pid) {
            continue;
        }
        match token::Proc::read(pid) {
            Some(p) if p.zombie && p.group != own_group => {
                // SAFETY: waitpid on a child of ours that nobody else waits for.
                unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG) };
            }
            Some(p) => {
                if let Some(t) = p
                    .token
                    .filter(|t| stores.contains(&t.store) && !live.contains(t))
                {
                    tracing::info!(
                        pid,
                        run = t.run,
                        step = t.step,
                        "stopping a process the step left behind"
                    );
                    token::kill_tree(pid, libc::SIGKILL);
                }
            }
            None => {}
        }
    }
}
