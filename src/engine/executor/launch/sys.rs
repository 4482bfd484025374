//! The system calls a child makes between its clone and its `exec`.
//!
//! On x86-64 and AArch64 the child runs beside the engine, in its memory, until the
//! `exec` ([`CONCURRENT`]). There it must not touch libc's state: a failed libc
//! wrapper writes `errno` in the thread-local area, which is the engine thread's (the
//! child has none of its own), and some wrappers mark the thread's cancellation state.
//! So these calls go straight to the kernel, and a failure is only a return value.
//! Elsewhere they go through libc, and the engine waits for the child's `exec`
//! (`CLONE_VFORK`), so nothing else runs in that memory meanwhile.

use libc::{c_char, c_int, c_long};

/// Whether the engine goes on while the child prepares its `exec`.
pub(super) const CONCURRENT: bool = cfg!(any(target_arch = "x86_64", target_arch = "aarch64"));

/// A failed call: its error number.
pub(super) type Errno = c_int;

/// A system call with up to four arguments: its result, or minus an error number.
///
/// SAFETY (all three): the arguments must be what call `n` expects.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn call(n: c_long, a: [usize; 4]) -> isize {
    let ret: isize;
    // SAFETY: the kernel's system call convention; it clobbers rcx and r11 only.
    unsafe {
        std::arch::asm!(
            "syscall",
            inlateout("rax") n as isize => ret,
            in("rdi") a[0], in("rsi") a[1], in("rdx") a[2], in("r10") a[3],
            lateout("rcx") _, lateout("r11") _,
            options(nostack)
        );
    }
    ret
}

#[cfg(target_arch = "aarch64")]
#[inline(always)]
unsafe fn call(n: c_long, a: [usize; 4]) -> isize {
    let ret: isize;
    // SAFETY: the kernel's system call convention (number in x8, result in x0).
    unsafe {
        std::arch::asm!(
            "svc 0",
            in("x8") n as usize,
            inlateout("x0") a[0] => ret, in("x1") a[1], in("x2") a[2], in("x3") a[3],
            options(nostack)
        );
    }
    ret
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
unsafe fn call(n: c_long, a: [usize; 4]) -> isize {
    // SAFETY: as the caller's; errno is this (suspended-parent) child's to write.
    unsafe {
        match libc::syscall(n, a[0], a[1], a[2], a[3]) {
            r if r < 0 => -(*libc::__errno_location() as isize),
            r => r as isize,
        }
    }
}

fn result(r: isize) -> Result<usize, Errno> {
    if r < 0 {
        Err(-r as Errno)
    } else {
        Ok(r as usize)
    }
}

/// A process group of its own, numbered after it.
pub(super) fn new_group() -> Result<(), Errno> {
    // SAFETY: setpgid(0, 0) takes two integers.
    result(unsafe { call(libc::SYS_setpgid, [0; 4]) }).map(drop)
}

/// `/dev/null`, for reading.
pub(super) fn open_null() -> Result<c_int, Errno> {
    let path = c"/dev/null";
    let args = [
        libc::AT_FDCWD as usize,
        path.as_ptr() as usize,
        libc::O_RDONLY as usize,
        0,
    ];
    // SAFETY: openat with a NUL-terminated path that lives for the program's life.
    result(unsafe { call(libc::SYS_openat, args) }).map(|fd| fd as c_int)
}

/// `from` copied onto `to` (which must differ), replacing what `to` was.
pub(super) fn dup_onto(from: c_int, to: c_int) -> Result<(), Errno> {
    // SAFETY: dup3 takes two descriptors and flags.
    result(unsafe { call(libc::SYS_dup3, [from as usize, to as usize, 0, 0]) }).map(drop)
}

pub(super) fn close(fd: c_int) -> Result<(), Errno> {
    // SAFETY: close takes a descriptor.
    result(unsafe { call(libc::SYS_close, [fd as usize, 0, 0, 0]) }).map(drop)
}

/// SAFETY: `dir` is a NUL-terminated string that lives until the call returns.
pub(super) unsafe fn chdir(dir: *const c_char) -> Result<(), Errno> {
    // SAFETY: as the caller promises.
    result(unsafe { call(libc::SYS_chdir, [dir as usize, 0, 0, 0]) }).map(drop)
}

/// The kernel's `struct sigaction` on x86-64 and AArch64 (and the generic layout with
/// a restorer): not libc's, whose mask is 128 bytes.
#[repr(C)]
#[derive(Default)]
struct KernelSigaction {
    handler: usize,
    flags: u64,
    restorer: usize,
    mask: u64,
}

/// The size of the kernel's signal set: 64 signals.
const SIGSET_SIZE: usize = 8;

/// Signal `sig`'s handler: `SIG_DFL`, `SIG_IGN` or a function's address.
pub(super) fn handler(sig: c_int) -> Result<usize, Errno> {
    let mut now = KernelSigaction::default();
    let args = [sig as usize, 0, (&raw mut now) as usize, SIGSET_SIZE];
    // SAFETY: rt_sigaction writes the current disposition into a local.
    result(unsafe { call(libc::SYS_rt_sigaction, args) })?;
    Ok(now.handler)
}

/// Signal `sig` back to its default action.
pub(super) fn default_action(sig: c_int) -> Result<(), Errno> {
    let dfl = KernelSigaction {
        handler: libc::SIG_DFL,
        ..Default::default()
    };
    let args = [sig as usize, (&raw const dfl) as usize, 0, SIGSET_SIZE];
    // SAFETY: rt_sigaction reads the new disposition from a local.
    result(unsafe { call(libc::SYS_rt_sigaction, args) }).map(drop)
}

/// No signal blocked.
pub(super) fn unblock_all() -> Result<(), Errno> {
    let none: u64 = 0;
    let args = [
        libc::SIG_SETMASK as usize,
        (&raw const none) as usize,
        0,
        SIGSET_SIZE,
    ];
    // SAFETY: rt_sigprocmask reads the new mask from a local.
    result(unsafe { call(libc::SYS_rt_sigprocmask, args) }).map(drop)
}

/// Runs `program`; returns only when that failed, with why.
///
/// SAFETY: `program` is a NUL-terminated string, `argv` and `envp` NULL-terminated
/// arrays of them, all living until the call returns.
pub(super) unsafe fn execve(
    program: *const c_char,
    argv: *const *const c_char,
    envp: *const *const c_char,
) -> Errno {
    let args = [program as usize, argv as usize, envp as usize, 0];
    // SAFETY: as the caller promises.
    match result(unsafe { call(libc::SYS_execve, args) }) {
        Ok(_) => libc::EINVAL,
        Err(e) => e,
    }
}
