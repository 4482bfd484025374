//! Starting a step's process ([`super::launch`]), everything prepared up front.
//!
//! `std::process::Command` rebuilds the whole environment (a sorted map of the
//! engine's own variables and the step's) and opens `/dev/null` in the parent for
//! every spawn, and tokio's wrapper adds a reaper of its own. A pipeline spawns
//! thousands of short steps, so here the engine's environment is captured once, a
//! spawn copies only the step's own variables, and the exit is awaited on a pidfd.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::ExitStatus;
use std::sync::OnceLock;

use tokio::io::unix::AsyncFd;

use super::children;
use super::token::StepToken;

/// Words the shell runs itself (builtins without a program of their own, keywords):
/// a line starting with one is shell syntax.
const SHELL_WORDS: &[&str] = &[
    ".", "alias", "break", "case", "cd", "command", "continue", "eval", "exec", "exit", "export",
    "for", "getopts", "hash", "if", "local", "read", "readonly", "return", "set", "shift",
    "source", "times", "trap", "type", "ulimit", "umask", "unalias", "unset", "until", "wait",
    "while",
];

/// What to run: a plain command line runs its program directly (as make does, one
/// exec fewer), anything with shell syntax (or a shell builtin) runs under `/bin/sh -c`.
pub fn argv(line: &str) -> Vec<String> {
    let plain = |c: char| c.is_ascii_alphanumeric() || " _./=:,+-@%".contains(c);
    let mut words = line.split_ascii_whitespace();
    match words.next() {
        Some(prog)
            if line.chars().all(plain) && !prog.contains('=') && !SHELL_WORDS.contains(&prog) =>
        {
            std::iter::once(prog)
                .chain(words)
                .map(String::from)
                .collect()
        }
        _ => vec!["/bin/sh".into(), "-c".into(), line.into()],
    }
}

fn cstring(s: impl Into<Vec<u8>>, what: &str) -> io::Result<CString> {
    CString::new(s).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{what} contains a NUL byte"),
        )
    })
}

/// The engine's own environment as `KEY=VALUE` strings, captured once (pipedeck
/// never changes its environment after start).
fn inherited() -> &'static [CString] {
    static ENV: OnceLock<Vec<CString>> = OnceLock::new();
    ENV.get_or_init(|| {
        std::env::vars_os()
            .filter_map(|(k, v)| {
                let mut kv = k.as_bytes().to_vec();
                kv.push(b'=');
                kv.extend_from_slice(v.as_bytes());
                CString::new(kv).ok()
            })
            .collect()
    })
}

/// Variables set over the engine's environment, as `KEY=VALUE` strings made once
/// (a run's for all of its steps, a resource's for its operations).
#[derive(Default)]
pub struct Env {
    vars: Vec<CString>,
}

/// The name in a `KEY=VALUE` string.
fn key(kv: &CStr) -> &[u8] {
    let kv = kv.to_bytes();
    kv.split(|&b| b == b'=').next().unwrap_or_default()
}

/// Names only: values may be secrets.
impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names = self.vars.iter().map(|kv| String::from_utf8_lossy(key(kv)));
        f.debug_list().entries(names).finish()
    }
}

impl Env {
    pub fn new<'a>(vars: impl IntoIterator<Item = &'a (String, String)>) -> io::Result<Self> {
        let vars = vars
            .into_iter()
            .map(|(k, v)| {
                if k.is_empty() || k.contains('=') {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("environment variable name `{k}` is not valid"),
                    ));
                }
                // Joined by hand: `format!` cost ~1,300 instructions a variable, and a
                // stack job's step sets ten of them (~5% of a 2,000-node infra run).
                let mut kv = Vec::with_capacity(k.len() + 1 + v.len());
                kv.extend_from_slice(k.as_bytes());
                kv.push(b'=');
                kv.extend_from_slice(v.as_bytes());
                cstring(kv, "an environment value")
            })
            .collect::<io::Result<_>>()?;
        Ok(Self { vars })
    }

    /// The PATH these variables set, if they set one.
    fn path(&self) -> Option<&[u8]> {
        self.vars
            .iter()
            .rev()
            .find(|kv| key(kv) == b"PATH")
            .map(|kv| &kv.to_bytes()[b"PATH=".len()..])
    }

    /// The child's environment: the engine's own, then these variables, then `extra`,
    /// each set once (a later one wins).
    fn entries<'a>(&'a self, extra: &'a Env) -> Vec<&'a CStr> {
        let ours: Vec<&[u8]> = self.vars.iter().map(|kv| key(kv)).collect();
        let theirs: Vec<&[u8]> = extra.vars.iter().map(|kv| key(kv)).collect();
        let inherited = inherited()
            .iter()
            .filter(|kv| !ours.contains(&key(kv)) && !theirs.contains(&key(kv)));
        let own = self.vars.iter().filter(|kv| !theirs.contains(&key(kv)));
        inherited
            .chain(own)
            .chain(extra.vars.iter())
            .map(CString::as_c_str)
            .collect()
    }
}

/// The engine's PATH (a step inherits it unless it sets its own), or the default
/// execvp uses without one.
fn engine_path() -> &'static [u8] {
    inherited()
        .iter()
        .rev()
        .find(|kv| key(kv) == b"PATH")
        .map_or(b"/bin:/usr/bin", |kv| &kv.to_bytes()[b"PATH=".len()..])
}

/// Fails with the OS error when a libc call returned -1.
fn check(r: libc::c_int) -> io::Result<libc::c_int> {
    if r == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// A pipe: (read end, write end), both close-on-exec, neither 0, 1 nor 2 (an engine
/// started with those closed gets them for its pipes; a child's stdio set-up would
/// then close or overwrite them).
pub(super) fn pipe_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: pipe2 writes two new descriptors into `fds`, which we then own.
    check(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: both were just created and are owned by nobody else.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    Ok((above_stdio(r)?, above_stdio(w)?))
}

/// `fd`, or a close-on-exec copy numbered 3 or more when it is 0, 1 or 2.
fn above_stdio(fd: OwnedFd) -> io::Result<OwnedFd> {
    if fd.as_raw_fd() > 2 {
        return Ok(fd);
    }
    // SAFETY: F_DUPFD_CLOEXEC returns a new descriptor (ours) or -1.
    let copy = check(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3) })?;
    // SAFETY: just made, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(copy) })
}

/// `prog` on `path` (relative entries from `cwd`, an empty one meaning `cwd`), as
/// execvp would find it: the first executable regular file.
fn search(path: &[u8], prog: &CStr, cwd: &Path) -> io::Result<CString> {
    use std::os::unix::fs::PermissionsExt;
    for dir in path.split(|&b| b == b':') {
        let dir = Path::new(std::ffi::OsStr::from_bytes(dir));
        let file = cwd
            .join(dir)
            .join(std::ffi::OsStr::from_bytes(prog.to_bytes()));
        if std::fs::metadata(&file)
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        {
            return cstring(file.as_os_str().as_bytes(), "the program path");
        }
    }
    Err(io::Error::new(
        io::ErrorKind::NotFound,
        format!("{} is not on the step's PATH", prog.to_string_lossy()),
    ))
}

/// A started step: its pid (also its process group), the read ends of its output
/// pipes (blocking; read them off the async runtime), and its exit.
pub struct Child {
    pub pid: i32,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
    exit: Option<AsyncFd<OwnedFd>>,
    /// Without a pidfd: the thread's `waitpid`, kept when a wait is given up, so the
    /// next wait takes its answer instead of starting a second one (which would find
    /// no child once the first had reaped it).
    waiter: Option<tokio::task::JoinHandle<io::Result<Option<ExitStatus>>>>,
    reaped: bool,
    start: super::launch::StartError,
}

/// Starts `argv` in `cwd` with `env`, then `extra`, over the engine's environment:
/// stdin from /dev/null, stdout and stderr into pipes, in a new process group. The
/// child is registered with the reaper ([`children`]) as a step's leader, and
/// `token` (which `extra` sets) as live.
pub fn spawn(
    argv: &[String],
    cwd: &Path,
    env: &Env,
    extra: &Env,
    token: Option<&StepToken>,
) -> io::Result<Child> {
    let args = argv
        .iter()
        .map(|a| cstring(a.as_bytes(), "the command"))
        .collect::<io::Result<Vec<_>>>()?;
    let Some(prog) = args.first() else {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "empty command"));
    };
    let dir = cstring(cwd.as_os_str().as_bytes(), "the working directory")?;
    // A program named without a slash is looked up on PATH: the step's, when it sets
    // one, else the engine's.
    let found = if prog.as_bytes().contains(&b'/') {
        None
    } else {
        let path = extra.path().or_else(|| env.path()).unwrap_or(engine_path());
        Some(search(path, prog, cwd)?)
    };
    let argv: Vec<&CStr> = args.iter().map(CString::as_c_str).collect();
    let (out_r, out_w) = pipe_pair()?;
    let (err_r, err_w) = pipe_pair()?;
    let request = super::launch::Request {
        program: found.as_deref().unwrap_or(prog),
        argv: &argv,
        env: &env.entries(extra),
        dir: &dir,
        stdout: out_w.as_raw_fd(),
        stderr: err_w.as_raw_fd(),
    };
    let (pid, start) = {
        let _spawning = children::spawning();
        let started = super::launch::spawn(&request)?;
        children::register(started.0, token);
        started
    };
    drop((out_w, err_w));
    let mut child = Child {
        pid,
        stdout: None,
        stderr: None,
        exit: None,
        waiter: None,
        reaped: false,
        start,
    };
    child.stdout = Some(out_r);
    child.stderr = Some(err_r);
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if pidfd >= 0 {
        // SAFETY: a new descriptor, ours alone; an OwnedFd keeps it open and the same
        // for as long as the AsyncFd holds it.
        child.exit = Some(unsafe {
            let fd = OwnedFd::from_raw_fd(pidfd as RawFd);
            AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE)?
        });
    }
    Ok(child)
}

impl Child {
    /// Why the program did not run (a missing working directory, a file that is not
    /// executable): known once the process has exited (then with status 127).
    pub fn start_error(&self) -> Option<io::Error> {
        self.start.get()
    }

    /// Waits for the process to exit and reaps it (cancel safe).
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        let Some(pidfd) = &self.exit else {
            // No pidfd (a kernel older than 5.3): wait on a thread of its own, the same
            // one however many times this is called.
            let pid = self.pid;
            let waiter = self
                .waiter
                .get_or_insert_with(|| tokio::task::spawn_blocking(move || waitpid(pid, 0)));
            let status = waiter.await;
            self.waiter = None;
            self.reaped = true;
            children::reaped(pid);
            return status
                .map_err(io::Error::other)??
                .ok_or_else(|| io::Error::other("the process vanished"));
        };
        loop {
            let mut ready = pidfd.readable().await?;
            if let Some(status) = waitpid(self.pid, libc::WNOHANG)? {
                self.reaped = true;
                children::reaped(self.pid);
                return Ok(status);
            }
            ready.clear_ready();
        }
    }
}

/// waitpid: the status, or None when (with WNOHANG) the process is still running.
fn waitpid(pid: i32, flags: libc::c_int) -> io::Result<Option<ExitStatus>> {
    let mut status = 0;
    loop {
        // SAFETY: waitpid writes the status into a local.
        let r = unsafe { libc::waitpid(pid, &mut status, flags) };
        match r {
            0 => return Ok(None),
            -1 if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted => continue,
            -1 => return Err(io::Error::last_os_error()),
            _ => return Ok(Some(ExitStatus::from_raw(status))),
        }
    }
}

impl Drop for Child {
    /// A child dropped before it was reaped (its task was aborted) is killed with its
    /// group and reaped on a thread, so it neither runs on nor lingers as a zombie.
    fn drop(&mut self) {
        if !self.reaped {
            super::process::signal_group(self.pid, libc::SIGKILL);
            let pid = self.pid;
            std::thread::spawn(move || {
                waitpid(pid, 0).ok();
                children::reaped(pid);
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_commands_skip_the_shell() {
        assert_eq!(argv("/bin/true"), ["/bin/true"]);
        assert_eq!(argv("cargo test --locked"), ["cargo", "test", "--locked"]);
        assert_eq!(argv("echo $HOME"), ["/bin/sh", "-c", "echo $HOME"]);
        assert_eq!(argv("A=1 env"), ["/bin/sh", "-c", "A=1 env"]);
        assert_eq!(argv("a | b"), ["/bin/sh", "-c", "a | b"]);
        // Shell builtins have no program of their own.
        assert_eq!(argv("exec sleep 9"), ["/bin/sh", "-c", "exec sleep 9"]);
        assert_eq!(argv("cd sub"), ["/bin/sh", "-c", "cd sub"]);
        assert_eq!(argv("true"), ["true"]);
    }

    /// The `KEY=VALUE` strings a child would get.
    fn child_env(env: &Env, extra: &Env) -> Vec<String> {
        env.entries(extra)
            .into_iter()
            .map(|kv| kv.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn step_variables_override_the_engine_environment() {
        let pair = |k: &str, v: &str| (k.to_string(), v.to_string());
        let run = Env::new(&[pair("PATH", "/nowhere"), pair("PD_A", "run")]).unwrap();
        let step = Env::new(&[pair("PD_A", "step"), pair("PD_B", "b")]).unwrap();
        let got = child_env(&run, &step);
        let with = |prefix: &str| -> Vec<&String> {
            got.iter().filter(|kv| kv.starts_with(prefix)).collect()
        };
        // Each set once, the most specific value winning, whether or not the engine had it.
        assert_eq!(with("PATH="), ["PATH=/nowhere"]);
        assert_eq!(with("PD_A="), ["PD_A=step"]);
        assert_eq!(with("PD_B="), ["PD_B=b"]);
        // The engine's own variables are all there, unless overridden.
        let home = std::env::var("HOME").unwrap_or_default();
        assert_eq!(with("HOME=").len(), usize::from(!home.is_empty()));
        assert!(Env::new(&[pair("A=B", "x")]).is_err());
        assert!(Env::new(&[pair("", "x")]).is_err());
    }

    #[tokio::test]
    async fn runs_a_process_in_its_own_group_and_reports_its_exit() {
        use std::io::Read;
        let dir = std::env::temp_dir();
        let vars = Env::new(&[("PD_X".to_string(), "42".to_string())]).unwrap();
        let mut c = spawn(
            &argv("echo $PD_X $(pwd -P) >&2; echo out; cut -d' ' -f5 /proc/$$/stat; exit 3"),
            &dir,
            &vars,
            &Env::default(),
            None,
        )
        .unwrap();
        let (mut out, mut err) = (String::new(), String::new());
        std::fs::File::from(c.stdout.take().unwrap())
            .read_to_string(&mut out)
            .unwrap();
        std::fs::File::from(c.stderr.take().unwrap())
            .read_to_string(&mut err)
            .unwrap();
        let status = c.wait().await.unwrap();
        assert_eq!(status.code(), Some(3));
        let canon = std::fs::canonicalize(&dir).unwrap();
        assert_eq!(err.trim(), format!("42 {}", canon.display()));
        let mut lines = out.lines();
        assert_eq!(lines.next(), Some("out"));
        assert_eq!(
            lines.next().map(str::trim),
            Some(c.pid.to_string().as_str())
        );
    }

    /// Without a pidfd (a kernel before 5.3: RHEL 8's 4.18) the exit is waited for on
    /// a thread; a wait given up (another branch of a `select!` won) and asked again
    /// gets the same exit, not ECHILD from a second `waitpid` racing the first.
    #[tokio::test]
    async fn waiting_without_a_pidfd_survives_a_wait_given_up() {
        let dir = std::env::temp_dir();
        let mut c = spawn(
            &argv("sleep 0.2; exit 4"),
            &dir,
            &Env::default(),
            &Env::default(),
            None,
        )
        .unwrap();
        c.exit = None;
        for _ in 0..3 {
            tokio::select! {
                _ = c.wait() => panic!("the process ended too soon"),
                _ = tokio::time::sleep(std::time::Duration::from_millis(20)) => {}
            }
        }
        let status = c.wait().await.unwrap();
        assert_eq!(status.code(), Some(4));
    }

    #[tokio::test]
    async fn a_path_the_step_sets_is_where_its_program_is_found() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let tool = dir.path().join("pd-only-here");
        std::fs::write(&tool, "#!/bin/sh\nexit 5\n").unwrap();
        std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = format!("/nowhere:{}", dir.path().display());
        let env = Env::new(&[("PATH".to_string(), path)]).unwrap();
        let mut c = spawn(
            &argv("pd-only-here"),
            dir.path(),
            &env,
            &Env::default(),
            None,
        )
        .unwrap();
        assert_eq!(c.wait().await.unwrap().code(), Some(5));
        // Not on the engine's PATH, so without the step's it is not found.
        let none = Env::default();
        assert!(spawn(&argv("pd-only-here"), dir.path(), &none, &none, None).is_err());
    }

    #[tokio::test]
    async fn a_program_not_on_path_is_an_error_at_spawn() {
        let none = Env::default();
        let e = spawn(
            &argv("no-such-program-pd"),
            Path::new("/"),
            &none,
            &none,
            None,
        )
        .err()
        .expect("spawn fails");
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }
}
