//! What a child reads until its `exec`: copies of every string it needs, in buffers
//! its slot owns (the engine's own may be gone by the time the child reads them) and
//! reuses from one spawn to the next.

use std::ffi::CStr;
use std::ptr;

use libc::{c_char, c_int};

/// What the engine asks for.
pub(in crate::engine::executor) struct Request<'a> {
    /// A path: the caller has looked a bare name up on PATH.
    pub program: &'a CStr,
    pub argv: &'a [&'a CStr],
    pub env: &'a [&'a CStr],
    pub dir: &'a CStr,
    /// Become the child's stdout and stderr (descriptors above 2); stdin is `/dev/null`.
    pub stdout: c_int,
    pub stderr: c_int,
}

/// A NULL in the offsets.
const NULL: usize = usize::MAX;

#[derive(Default)]
pub(super) struct Plan {
    /// Every string, NUL-terminated, back to back.
    strings: Vec<u8>,
    /// Offsets into `strings` of the arguments, the environment and the shell's
    /// arguments, each list ending in [`NULL`].
    offsets: Vec<usize>,
    /// The same as pointers, made once `strings` is complete.
    pointers: Vec<*const c_char>,
    program: *const c_char,
    dir: *const c_char,
    argv: *const *const c_char,
    envp: *const *const c_char,
    sh_argv: *const *const c_char,
    pub stdout: c_int,
    pub stderr: c_int,
}

// SAFETY: the raw pointers point into the plan's own buffers, which move with it.
unsafe impl Send for Plan {}

impl Plan {
    fn push(&mut self, s: &CStr) -> usize {
        let at = self.strings.len();
        self.strings.extend_from_slice(s.to_bytes_with_nul());
        at
    }

    pub fn fill(&mut self, req: &Request) {
        self.strings.clear();
        self.offsets.clear();
        let program = self.push(req.program);
        let dir = self.push(req.dir);
        let sh = self.push(c"/bin/sh");
        for a in req.argv {
            let at = self.push(a);
            self.offsets.push(at);
        }
        self.offsets.push(NULL);
        let env_at = self.offsets.len();
        for e in req.env {
            let at = self.push(e);
            self.offsets.push(at);
        }
        self.offsets.push(NULL);
        // A program that is neither a binary nor a `#!` script: `/bin/sh program args`.
        let sh_at = self.offsets.len();
        self.offsets.extend([sh, program]);
        for i in 1..req.argv.len() {
            self.offsets.push(self.offsets[i]);
        }
        self.offsets.push(NULL);

        let base = self.strings.as_ptr().cast::<c_char>();
        let at = |o: usize| {
            if o == NULL {
                ptr::null()
            } else {
                base.wrapping_add(o)
            }
        };
        self.pointers.clear();
        self.pointers.extend(self.offsets.iter().map(|&o| at(o)));
        self.program = at(program);
        self.dir = at(dir);
        let list = self.pointers.as_ptr();
        self.argv = list;
        self.envp = list.wrapping_add(env_at);
        self.sh_argv = list.wrapping_add(sh_at);
        self.stdout = req.stdout;
        self.stderr = req.stderr;
    }

    pub fn program(&self) -> *const c_char {
        self.program
    }

    pub fn dir(&self) -> *const c_char {
        self.dir
    }

    pub fn argv(&self) -> *const *const c_char {
        self.argv
    }

    pub fn envp(&self) -> *const *const c_char {
        self.envp
    }

    pub fn sh_argv(&self) -> *const *const c_char {
        self.sh_argv
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The strings of a NULL-terminated list.
    fn list(p: *const *const c_char) -> Vec<String> {
        let mut out = Vec::new();
        // SAFETY: a NULL-terminated list of strings in a live plan.
        unsafe {
            let mut p = p;
            while !(*p).is_null() {
                out.push(CStr::from_ptr(*p).to_string_lossy().into_owned());
                p = p.add(1);
            }
        }
        out
    }

    #[test]
    fn a_plan_holds_its_own_copies_and_is_reused() {
        let mut plan = Plan::default();
        for round in 0..2 {
            let (a, b) = (c"-c".to_owned(), format!("echo {round}"));
            let b = std::ffi::CString::new(b).unwrap();
            let env = std::ffi::CString::new(format!("PD_R={round}")).unwrap();
            plan.fill(&Request {
                program: c"/bin/dash",
                argv: &[c"sh", &a, &b],
                env: &[&env, c"X=1"],
                dir: c"/tmp",
                stdout: 5,
                stderr: 6,
            });
            drop((a, b, env));
            assert_eq!(list(plan.argv()), ["sh", "-c", &format!("echo {round}")]);
            assert_eq!(list(plan.envp()), [&format!("PD_R={round}"), "X=1"]);
            assert_eq!(
                list(plan.sh_argv()),
                ["/bin/sh", "/bin/dash", "-c", &format!("echo {round}")]
            );
            // SAFETY: strings in the plan.
            unsafe {
                assert_eq!(CStr::from_ptr(plan.program()), c"/bin/dash");
                assert_eq!(CStr::from_ptr(plan.dir()), c"/tmp");
            }
        }
    }
}
