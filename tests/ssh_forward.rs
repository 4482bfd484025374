//! `ssh -L` forwarding of the engine's socket identifies the SSH user: a real sshd
//! (scripts/sshd-test.sh, on a loopback port with a temporary host key), a real Unix
//! user, and a local socket forwarded to the engine's. Whoever uses the forwarded
//! socket acts as the user who logged in over SSH: the connection to the engine's
//! socket is made by that user's sshd process, and the engine reads its peer.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::bin::Proc;

fn sh(cmd: &str, args: &[&str]) {
    let out = Command::new(cmd).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The user and its group, removed when dropped.
struct Account(String, String);

impl Drop for Account {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg(&self.0).status();
        let _ = Command::new("groupdel").arg(&self.1).status();
    }
}

/// A child process, killed (by its own pid) when dropped.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Waits (bounded) until `path` exists.
fn wait_for_path(path: &Path, what: &str, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{what} never appeared: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
#[ignore = "needs root (useradd, sshd) and Debian's openssh-server; .ci/run installs it and runs this with --ignored"]
fn a_socket_forwarded_over_ssh_acts_as_the_ssh_user() {
    assert!(
        // SAFETY: geteuid cannot fail.
        unsafe { libc::geteuid() } == 0,
        "needs root: it creates a user and runs sshd"
    );
    assert!(
        Path::new("/usr/sbin/sshd").exists(),
        "needs /usr/sbin/sshd (Debian's openssh-server; .ci/run installs it)"
    );
    let n = std::process::id() % 100_000;
    let (user, group) = (format!("pdssh{n}"), format!("pdsshops{n}"));
    sh("groupadd", &[&group]);
    sh(
        "useradd",
        &[
            "--no-create-home",
            "--home-dir",
            "/nonexistent",
            "--shell",
            "/bin/sh",
            "--user-group",
            "--groups",
            &group,
            &user,
        ],
    );
    let _account = Account(user.clone(), group.clone());
    // Not locked (a locked account may not log in, keys or not), yet no password.
    sh("usermod", &["-p", "*", &user]);

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::create_dir_all(dir.join("proj/src")).unwrap();
    std::fs::write(dir.join("proj/src/README"), "forwarded\n").unwrap();
    std::fs::write(
        dir.join("proj/pipedeck.toml"),
        format!(
            "[services.web]\nrepo_seed = \"src\"\n[[services.web.steps]]\nname = \"build\"\nrun = \"true\"\n\n[access]\n[access.users]\n{user} = \"operator\"\n"
        ),
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("run")).unwrap();
    std::fs::set_permissions(dir.join("run"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let engine_sock = dir.join("run/pipedeck.sock");
    let pipedeck = |socket: &Path| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_pipedeck"));
        c.arg("--data-dir")
            .arg(dir.join("engine-data"))
            .arg("--project")
            .arg(dir.join("proj/pipedeck.toml"))
            .arg("--socket")
            .arg(socket)
            .env("PIPEDECK_CONFIG", dir.join("no-config.toml"))
            .stdin(Stdio::null());
        c
    };
    let mut serve = pipedeck(&engine_sock);
    serve.args(["serve", "--socket-group", &group]);
    let mut engine = Proc::spawn(serve, true);
    engine.until("serving");

    // sshd on a loopback port; the user's key authorised.
    let ssh_dir = dir.join("ssh");
    std::fs::create_dir_all(ssh_dir.join("authorized_keys")).unwrap();
    sh(
        "ssh-keygen",
        &[
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-f",
            ssh_dir.join("client").to_str().unwrap(),
        ],
    );
    std::fs::copy(
        ssh_dir.join("client.pub"),
        ssh_dir.join("authorized_keys").join(&user),
    )
    .unwrap();
    std::fs::set_permissions(&ssh_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let port = free_port();
    let sshd_log = ssh_dir.join("sshd.log");
    let _sshd = Child(
        Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/sshd-test.sh"))
            .arg(&ssh_dir)
            .arg(port.to_string())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&sshd_log).unwrap())
            .spawn()
            .unwrap(),
    );
    wait_for_path(&ssh_dir.join("sshd.pid"), "sshd's pid file", &sshd_log);

    // ssh -L: a local socket forwarded to the engine's, logged in as the user.
    let fwd = dir.join("fwd.sock");
    let ssh_log = ssh_dir.join("ssh.log");
    let _ssh = Child(
        Command::new("ssh")
            .args(["-F", "/dev/null", "-i"])
            .arg(ssh_dir.join("client"))
            .args([
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "BatchMode=yes",
                "-o",
                "ExitOnForwardFailure=yes",
                "-N",
                "-p",
                &port.to_string(),
                "-L",
                &format!("{}:{}", fwd.display(), engine_sock.display()),
                &format!("{user}@127.0.0.1"),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&ssh_log).unwrap())
            .spawn()
            .unwrap(),
    );
    wait_for_path(&fwd, "the forwarded socket", &ssh_log);

    // This process (root) triggers through the forward: the engine sees the SSH user.
    let out = pipedeck(&fwd).args(["run", "web"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}\nsshd: {}",
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(&sshd_log).unwrap_or_default()
    );
    let id = String::from_utf8(out.stdout).unwrap();
    let id = id.split_whitespace().next().unwrap().to_string();
    let out = pipedeck(&fwd)
        .args(["show", &id, "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["run"]["triggered_by"], user.as_str(), "{shown:#}");
    // The audit log (read by root, on the engine's own socket) has the SSH user too.
    let out = pipedeck(&engine_sock)
        .args(["audit", "--json"])
        .output()
        .unwrap();
    let audit: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(audit[0]["actor"], user.as_str(), "{audit:#}");
    assert_eq!(audit[0]["action"], "trigger");
}
