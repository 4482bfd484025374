//! The spawn path end to end: what a child starts with, and what it owns.

use std::io::{self, Read};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;

use crate::engine::executor::process::signal_group;
use crate::engine::executor::spawn::{Child, Env, argv, spawn};

/// A signal's bit in a /proc status mask.
fn bit(sig: libc::c_int) -> u64 {
    1 << (sig - 1)
}

fn stdout(c: &mut Child) -> String {
    let mut out = String::new();
    std::fs::File::from(c.stdout.take().unwrap())
        .read_to_string(&mut out)
        .unwrap();
    out
}

/// A mask from `/proc/…/status` output.
fn mask(out: &str, name: &str) -> u64 {
    let l = out.lines().find(|l| l.starts_with(name)).expect(name);
    u64::from_str_radix(l.split_whitespace().nth(1).unwrap(), 16).unwrap()
}

#[tokio::test]
async fn a_child_starts_with_no_signal_blocked_sigpipe_default_and_stdin_empty() {
    // SAFETY: this test binary neither handles nor expects SIGUSR2.
    unsafe { libc::signal(libc::SIGUSR2, libc::SIG_IGN) };
    let none = Env::default();
    let line = "grep -E '^Sig(Blk|Ign)' /proc/self/status; read x; echo read=$?";
    let mut c = spawn(&argv(line), Path::new("/"), &none, &none, None).unwrap();
    let out = stdout(&mut c);
    assert_eq!(c.wait().await.unwrap().code(), Some(0));
    assert_eq!(mask(&out, "SigBlk:"), 0, "{out}");
    let ignored = mask(&out, "SigIgn:");
    // Ignored by the engine (the Rust runtime) and reset; ignored and kept.
    assert_eq!(ignored & bit(libc::SIGPIPE), 0, "{out}");
    assert_ne!(ignored & bit(libc::SIGUSR2), 0, "{out}");
    assert!(out.contains("read=1"), "stdin is /dev/null: {out}");
}

extern "C" fn on_usr1(_: libc::c_int) {}

#[tokio::test]
async fn a_handler_of_the_engine_is_not_the_childs() {
    // SAFETY: a handler that does nothing, for a signal no test sends.
    unsafe { libc::signal(libc::SIGUSR1, on_usr1 as *const () as libc::sighandler_t) };
    let none = Env::default();
    // grep itself (no shell, which catches signals of its own) reads its status.
    let line = "grep ^SigCgt /proc/self/status";
    let mut c = spawn(&argv(line), Path::new("/"), &none, &none, None).unwrap();
    let out = stdout(&mut c);
    assert_eq!(c.wait().await.unwrap().code(), Some(0), "{out}");
    assert_eq!(mask(&out, "SigCgt:") & bit(libc::SIGUSR1), 0, "{out}");
}

/// The child reads its strings after `spawn` returned, and the engine's copies
/// (the step's variables, its command) are gone by then: each child runs with its own.
#[tokio::test]
async fn each_child_runs_with_its_own_strings_after_the_engine_dropped_them() {
    let mut children = Vec::new();
    for i in 0..64 {
        let env = Env::new(&[("PD_N".to_string(), i.to_string())]).unwrap();
        let line = format!("echo {i} $PD_N; cut -d' ' -f5 /proc/$$/stat");
        let c = spawn(&argv(&line), Path::new("/"), &env, &Env::default(), None).unwrap();
        drop((env, line));
        children.push(c);
    }
    for (i, mut c) in children.into_iter().enumerate() {
        let out = stdout(&mut c);
        assert_eq!(c.wait().await.unwrap().code(), Some(0), "{out}");
        let mut lines = out.lines();
        assert_eq!(lines.next(), Some(format!("{i} {i}").as_str()));
        // Its own process group.
        assert_eq!(
            lines.next().map(str::trim),
            Some(c.pid.to_string().as_str())
        );
    }
}

/// What fails between the clone and the program is reported once the child exited.
#[tokio::test]
async fn a_start_that_fails_says_why_after_the_exit() {
    let none = Env::default();
    let dir = tempfile::tempdir().unwrap();
    let start = |line: &str, cwd: &Path| {
        let mut c = spawn(&argv(line), cwd, &none, &none, None).unwrap();
        async move {
            let status = c.wait().await.unwrap();
            (status.code(), c.start_error().map(|e| e.kind()))
        }
    };
    let (code, e) = start("/bin/true", Path::new("/no/such/dir")).await;
    assert_eq!((code, e), (Some(127), Some(io::ErrorKind::NotFound)));
    let plain = dir.path().join("plain");
    std::fs::write(&plain, "exit 0\n").unwrap();
    let (code, e) = start(plain.to_str().unwrap(), dir.path()).await;
    assert_eq!(
        (code, e),
        (Some(127), Some(io::ErrorKind::PermissionDenied))
    );
    // Ran: no start error, whatever the exit.
    assert_eq!(start("/bin/false", dir.path()).await, (Some(1), None));
}

/// An executable text file without `#!` runs under /bin/sh, as execvp and a shell do.
#[tokio::test]
async fn a_script_without_an_interpreter_line_runs_under_the_shell() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("bare");
    std::fs::write(&script, "echo \"$0 $1\"\nexit 6\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let none = Env::default();
    let line = format!("{} arg", script.display());
    let mut c = spawn(&argv(&line), dir.path(), &none, &none, None).unwrap();
    let out = stdout(&mut c);
    assert_eq!(c.wait().await.unwrap().code(), Some(6));
    assert!(c.start_error().is_none());
    assert_eq!(out.trim(), format!("{} arg", script.display()));
}

/// A cancel right after the spawn finds the step's group, whether or not the child
/// has made it yet: the engine makes it too.
#[tokio::test]
async fn a_group_signal_right_after_the_spawn_reaches_the_step() {
    let none = Env::default();
    for _ in 0..20 {
        let mut c = spawn(&argv("sleep 30"), Path::new("/"), &none, &none, None).unwrap();
        signal_group(c.pid, libc::SIGKILL);
        let status = tokio::time::timeout(std::time::Duration::from_secs(10), c.wait())
            .await
            .expect("the step was killed")
            .unwrap();
        assert_eq!(status.signal(), Some(libc::SIGKILL));
    }
}
