//! The start of a step's process: `clone(CLONE_VM)`, then in the child the few
//! calls a step needs before `exec`, as glibc's `posix_spawn` does, without what
//! that costs on every call here:
//! - it maps a stack for each child and unmaps it after (the unmap flushes the TLB
//!   of every core the engine's threads last ran on);
//! - it checks each file action's descriptor against `RLIMIT_NOFILE` (five
//!   `getrlimit` calls a step);
//! - its child asks for and resets all 64 signals' dispositions (128 calls);
//! - the engine waits for the child's `exec` (`CLONE_VFORK`).
//!
//! That wait cost most. The kernel puts a new process on the idlest core, which for
//! a busy engine is the other one, where the step queues behind the running one
//! while the engine sleeps (perf sched, 10,000-node infra run: 310 µs a spawn on
//! average, make's 50 µs). Here, on x86-64 and AArch64, the engine goes on at once:
//! the 10,000-node infra benchmark took 0.73-0.91 of the time in each of 6
//! interleaved rounds (tmpfs). So the child must not depend on the engine's memory
//! staying put: it runs on a stack and reads a [`Plan`] (every string it needs) of a
//! [`Slot`] that no other spawn takes until the kernel says the child has left this
//! memory, by its `exec` or exit (`CLONE_CHILD_CLEARTID`), and it calls the kernel
//! directly ([`sys`]). A call that fails before the `exec` is reported when the child
//! has exited ([`StartError`]).
//!
//! The child resets the 31 standard signals that have a handler. Real-time signals
//! keep their disposition: pipedeck installs no handler for any, and one ignored
//! stays ignored, as with `posix_spawn`.

mod plan;
mod sys;
#[cfg(test)]
mod tests;

use std::io;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use plan::Plan;
pub(super) use plan::Request;

/// The child's stack: it makes system calls and nothing else.
const STACK: usize = 64 * 1024;

/// What one child uses until its `exec`.
struct Slot {
    stack: Box<[u8]>,
    /// Nonzero from the clone until the child's `exec` or exit, when the kernel
    /// zeroes it: until then the child may read this slot.
    busy: AtomicI32,
    plan: Plan,
    /// The error number of the child's call that failed, left there before it exits.
    error: Arc<AtomicI32>,
}

/// The slots, each reused once its child has gone; as many as children were ever
/// between clone and `exec` at once (a few). Never freed: a child may still be
/// reading one when the thread that started it has ended.
#[expect(
    clippy::vec_box,
    reason = "a child holds its slot's address: a slot must not move when the list grows"
)]
static SLOTS: Mutex<Vec<Box<Slot>>> = Mutex::new(Vec::new());

/// Why a child did not get to run its program: known once it has exited.
#[derive(Clone, Debug, Default)]
pub struct StartError(Arc<AtomicI32>);

impl StartError {
    /// The failed call's error; `None` when the program ran (or the child is still
    /// before its `exec`).
    pub fn get(&self) -> Option<io::Error> {
        match self.0.load(Ordering::Acquire) {
            0 => None,
            e => Some(io::Error::from_raw_os_error(e)),
        }
    }
}

/// Starts the child: its pid, in a process group of its own (which exists when this
/// returns), and where its start's failure will show.
pub(super) fn spawn(req: &Request) -> io::Result<(libc::pid_t, StartError)> {
    let mut slots = SLOTS.lock().unwrap_or_else(PoisonError::into_inner);
    let free = slots
        .iter()
        .position(|s| s.busy.load(Ordering::Acquire) == 0);
    let i = free.unwrap_or_else(|| {
        slots.push(Box::new(Slot {
            stack: vec![0; STACK].into_boxed_slice(),
            busy: AtomicI32::new(0),
            plan: Plan::default(),
            error: Arc::default(),
        }));
        slots.len() - 1
    });
    let slot = &mut *slots[i];
    slot.plan.fill(req);
    slot.error = Arc::default();
    let started = StartError(slot.error.clone());
    slot.busy.store(1, Ordering::Relaxed);
    // The stack grows down from its 16-byte-aligned top.
    let top = (slot.stack.as_mut_ptr() as usize + STACK) & !15;
    let mut flags = libc::CLONE_VM | libc::CLONE_CHILD_CLEARTID | libc::SIGCHLD;
    if !sys::CONCURRENT {
        flags |= libc::CLONE_VFORK;
    }
    let busy = slot.busy.as_ptr();
    let arg: *const Slot = slot;
    // SAFETY: every signal is blocked in this thread while it clones, so the child
    // starts with all blocked and no handler of ours runs in it. The child reads
    // only its slot, which stays as it is (no spawn takes a busy slot, slots are
    // never freed, and this one is not touched here after the clone) until the
    // kernel zeroes `busy`, after the child's last look.
    let pid = unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        let pid = libc::clone(
            child,
            top as *mut libc::c_void,
            flags,
            arg.cast_mut().cast(),
            std::ptr::null_mut::<libc::pid_t>(),
            std::ptr::null_mut::<libc::c_void>(),
            busy,
        );
        let cloned = io::Error::last_os_error();
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        if pid < 0 {
            // No child: the slot is free again.
            (*arg).busy.store(0, Ordering::Release);
            return Err(cloned);
        }
        pid
    };
    // The child makes its group too, but may not have yet: a signal to the group
    // (a cancel) must find it. Once the child ran `exec` this fails, and is moot.
    // SAFETY: setpgid takes two pids.
    unsafe { libc::setpgid(pid, pid) };
    Ok((pid, started))
}

/// The child, until its `exec`: every signal blocked, in the engine's memory.
extern "C" fn child(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is a slot that stays as it is while this process may read it.
    let slot = unsafe { &*arg.cast::<Slot>() };
    // SAFETY: the plan's pointers point into itself.
    let error = unsafe { start(&slot.plan) };
    slot.error.store(error.max(1), Ordering::Release);
    127
}

/// The calls before `exec`, then `exec`: returns only with the error of the call
/// that failed.
///
/// SAFETY: only in the child; `plan`'s pointers are valid.
unsafe fn start(plan: &Plan) -> sys::Errno {
    let ready = sys::new_group()
        .and_then(|()| stdio(plan))
        // SAFETY: a string in the plan.
        .and_then(|()| unsafe { sys::chdir(plan.dir()) })
        .and_then(|()| default_signals())
        .and_then(|()| sys::unblock_all());
    if let Err(e) = ready {
        return e;
    }
    // SAFETY: NULL-terminated arrays of strings in the plan.
    unsafe {
        match sys::execve(plan.program(), plan.argv(), plan.envp()) {
            // Neither a binary nor a `#!` script: the shell runs it, as execvp does.
            libc::ENOEXEC => sys::execve(c"/bin/sh".as_ptr(), plan.sh_argv(), plan.envp()),
            e => e,
        }
    }
}

/// stdin from /dev/null, stdout and stderr into the step's pipes (descriptors above
/// 2, see `spawn::pipe_pair`).
fn stdio(plan: &Plan) -> Result<(), sys::Errno> {
    // Nothing to close when the engine runs without a stdin.
    sys::close(0).or_else(|e| if e == libc::EBADF { Ok(()) } else { Err(e) })?;
    let null = sys::open_null()?;
    if null != 0 {
        sys::dup_onto(null, 0)?;
        sys::close(null)?;
    }
    sys::dup_onto(plan.stdout, 1)?;
    sys::dup_onto(plan.stderr, 2)
}

/// Signals with a handler go back to their default (the handler is this process's
/// code), as do SIGPIPE and SIGXFSZ, which the engine ignores; other ignored signals
/// stay ignored.
fn default_signals() -> Result<(), sys::Errno> {
    for sig in 1..32 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        let now = sys::handler(sig)?;
        let handled = now != libc::SIG_DFL && now != libc::SIG_IGN;
        let ignored_by_us = now == libc::SIG_IGN && (sig == libc::SIGPIPE || sig == libc::SIGXFSZ);
        if handled || ignored_by_us {
            sys::default_action(sig)?;
        }
    }
    Ok(())
}
