//! Verified identity with real Unix users: an engine shared through a group-owned
//! socket, people acting as themselves, and the refusals they meet.
//!
//! Creating users needs root (CI runs as root). Run as anyone else, each test
//! prints SKIPPED and why, and passes without checking anything.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::bin::Proc;

/// Test users and a group, removed when dropped (a failed assertion included).
struct Accounts {
    users: Vec<String>,
    group: String,
}

impl Accounts {
    /// Creates `group`, then each user (with its own primary group); `members` join `group`.
    fn create(group: &str, users: &[&str], members: &[&str]) -> Self {
        let mut acc = Accounts {
            users: Vec::new(),
            group: String::new(),
        };
        sh("groupadd", &[group]);
        acc.group = group.to_string();
        for u in users {
            sh(
                "useradd",
                &[
                    "--no-create-home",
                    "--home-dir",
                    "/nonexistent",
                    "--user-group",
                    u,
                ],
            );
            acc.users.push(u.to_string());
        }
        for m in members {
            sh("usermod", &["--append", "--groups", group, m]);
        }
        acc
    }
}

impl Drop for Accounts {
    fn drop(&mut self) {
        for u in &self.users {
            let _ = Command::new("userdel").arg(u).status();
        }
        if !self.group.is_empty() {
            let _ = Command::new("groupdel").arg(&self.group).status();
        }
    }
}

fn sh(cmd: &str, args: &[&str]) {
    let out = Command::new(cmd).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn uid_of(user: &str) -> String {
    let out = Command::new("id").args(["-u", user]).output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A shared ops box in a folder: the binary (where every user can run it), the
/// project, the engine's data dir, the socket's dir and one home per user.
struct OpsBox {
    dir: tempfile::TempDir,
    bin: PathBuf,
}

/// The binary, copied once into a folder every user can reach (the build's own
/// folder may not be), and run once: a copy that another test's fork still held open
/// for writing would fail to run (ETXTBSY) only in the first moments.
fn shared_binary() -> &'static Path {
    static BIN: std::sync::OnceLock<(tempfile::TempDir, PathBuf)> = std::sync::OnceLock::new();
    &BIN.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let bin = dir.path().join("pipedeck");
        std::fs::copy(env!("CARGO_BIN_EXE_pipedeck"), &bin).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            match Command::new(&bin).arg("--version").output() {
                Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) => {
                    assert!(std::time::Instant::now() < deadline, "{e}");
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                r => {
                    assert!(r.unwrap().status.success());
                    break;
                }
            }
        }
        (dir, bin)
    })
    .1
}

impl OpsBox {
    fn new(project: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let bin = shared_binary().to_path_buf();
        std::fs::create_dir_all(dir.path().join("proj/src")).unwrap();
        std::fs::write(dir.path().join("proj/src/README"), "shared\n").unwrap();
        std::fs::write(dir.path().join("proj/pipedeck.toml"), project).unwrap();
        std::fs::create_dir_all(dir.path().join("run")).unwrap();
        std::fs::set_permissions(
            dir.path().join("run"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        OpsBox { dir, bin }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn socket(&self) -> PathBuf {
        self.path().join("run/pipedeck.sock")
    }

    /// `pipedeck serve` as this (root) process, sharing the socket with `group`.
    fn serve(&self, group: &str) -> Proc {
        let mut c = Command::new(&self.bin);
        c.arg("--data-dir")
            .arg(self.path().join("engine-data"))
            .arg("--project")
            .arg(self.path().join("proj/pipedeck.toml"))
            .arg("--socket")
            .arg(self.socket())
            .args(["serve", "--socket-group", group])
            .env("PIPEDECK_CONFIG", self.path().join("no-config.toml"))
            .stdin(Stdio::null());
        let mut p = Proc::spawn(c, true);
        p.until("serving");
        p
    }

    /// `pipedeck ARGS` run as `user` (its own uid, gid and groups), on the shared socket.
    fn as_user(&self, user: &str, args: &[&str]) -> Output {
        let home = self.path().join(format!("home-{user}"));
        if !home.exists() {
            std::fs::create_dir(&home).unwrap();
            sh(
                "chown",
                &[&format!("{user}:{user}"), home.to_str().unwrap()],
            );
            std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700)).unwrap();
        }
        let uid = uid_of(user);
        Command::new("setpriv")
            .arg(format!("--reuid={uid}"))
            .arg(format!("--regid={user}"))
            .arg("--init-groups")
            .arg("--")
            .arg(&self.bin)
            .arg("--data-dir")
            .arg(home.join("data"))
            .arg("--socket")
            .arg(self.socket())
            .args(args)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("HOME", &home)
            .env("PIPEDECK_CONFIG", self.path().join("no-config.toml"))
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// As `as_user`, asserting success; the stdout.
    fn ok(&self, user: &str, args: &[&str]) -> String {
        let out = self.as_user(user, args);
        assert!(
            out.status.success(),
            "{user} {args:?}: exit {:?}: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// As `as_user`, asserting the refusal: exit 5 and `message` on stderr.
    fn refused(&self, user: &str, args: &[&str], message: &str) {
        let out = self.as_user(user, args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(5), "{user} {args:?}: {err}");
        assert!(err.contains(message), "{user} {args:?}: {err}");
    }

    fn show(&self, user: &str, id: &str) -> serde_json::Value {
        serde_json::from_str(&self.ok(user, &["show", id, "--json"])).unwrap()
    }

    /// Polls until run `id` has `status` (bounded).
    fn wait_status(&self, user: &str, id: &str, status: &str) -> serde_json::Value {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let shown = self.show(user, id);
            if shown["run"]["status"] == status {
                return shown;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "run {id} never got to {status}: {shown:#}"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

/// Names unique to this test process (user names: at most 32 characters).
fn names(tag: &str) -> (String, [String; 4]) {
    let n = std::process::id() % 100_000;
    let u = |who: &str| format!("pd{tag}{who}{n}");
    (u("ops"), [u("alice"), u("bob"), u("carol"), u("mallory")])
}

#[test]
fn people_on_a_shared_socket_act_as_themselves() {
    if !is_root() {
        println!("SKIPPED: needs root to create users (CI runs as root)");
        return;
    }
    let (group, [alice, bob, carol, mallory]) = names("a");
    let _accounts = Accounts::create(
        &group,
        &[&alice, &bob, &carol, &mallory],
        &[&alice, &bob, &carol],
    );
    let project = format!(
        r#"
[environments.prod]
approval = true
approvers = ["{alice}", "{bob}"]
forbid_self_approval = true

[services.web]
repo_seed = "src"
environments = ["prod"]
[[services.web.steps]]
name = "build"
run = "true"
[services.web.deploy.prod]
run = "true"

[access]
[access.users]
{alice} = "operator"
{bob} = "operator"
[access.groups]
{group} = "viewer"
"#
    );
    let ops = OpsBox::new(&project);
    let _engine = ops.serve(&group);

    // The socket: 0660, owned by the group.
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(ops.socket()).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o660);
    let gid: u32 = {
        let out = Command::new("getent")
            .args(["group", &group])
            .output()
            .unwrap();
        let line = String::from_utf8(out.stdout).unwrap();
        line.split(':').nth(2).unwrap().parse().unwrap()
    };
    assert_eq!(meta.gid(), gid);

    // alice triggers: the run records her, as the socket says.
    let id = ops
        .ok(&alice, &["run", "web"])
        .lines()
        .next()
        .unwrap()
        .to_string();
    let shown = ops.wait_status(&alice, &id, "awaiting_approval");
    assert_eq!(shown["run"]["triggered_by"], alice.as_str());

    // alice may not approve her own run.
    ops.refused(
        &alice,
        &["approve", &id, "prod"],
        &format!("{alice} may not approve prod: {alice} triggered run {id} and prod forbids self-approval"),
    );
    // carol, a viewer through the group, may read but not trigger nor approve; the
    // engine says who it takes her for (the dashboard's status line shows it).
    ops.ok(&carol, &["runs"]);
    let me: serde_json::Value =
        serde_json::from_str(&ops.ok(&carol, &["whoami", "--json"])).unwrap();
    assert_eq!(me["user"], carol.as_str(), "{me:#}");
    assert_eq!(me["role"], "viewer", "{me:#}");
    assert!(
        me["groups"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g == group.as_str()),
        "{me:#}"
    );
    assert!(ops.ok(&alice, &["whoami"]).contains("role: operator"));
    ops.refused(
        &carol,
        &["run", "web"],
        &format!("{carol} may not trigger runs: role viewer, needs operator"),
    );
    ops.refused(
        &carol,
        &["approve", &id, "prod"],
        &format!("{carol} may not approve prod: not in approvers [{alice}, {bob}]"),
    );
    // mallory, outside the group, cannot even connect.
    ops.refused(
        &mallory,
        &["runs"],
        &format!(
            "you may not connect to the engine at {}: permission denied",
            ops.socket().display()
        ),
    );

    // bob approves; the decision is his.
    let out = ops.ok(&bob, &["approve", &id, "prod", "--comment", "ship it"]);
    assert!(out.contains(&format!("approved by {bob}")), "{out}");
    let shown = ops.wait_status(&bob, &id, "succeeded");
    let gate = &shown["gates"][0];
    assert_eq!(gate["decided_by"], bob.as_str(), "{shown:#}");
    assert_eq!(gate["comment"], "ship it");

    // The audit log, as a viewer reads it: who did what, as verified, and every
    // refusal with its reason (mallory's never reached the engine: the kernel
    // refused her connection).
    let audit: serde_json::Value =
        serde_json::from_str(&ops.ok(&carol, &["audit", "--json"])).unwrap();
    let entries: Vec<(&str, &str, &str)> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["actor"].as_str().unwrap(),
                e["action"].as_str().unwrap(),
                e["target"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        entries,
        [
            (alice.as_str(), "trigger", ""),
            (alice.as_str(), "refused", "approve prod"),
            (carol.as_str(), "refused", "trigger web"),
            (carol.as_str(), "refused", "approve prod"),
            (bob.as_str(), "approve", "prod"),
        ]
    );
    let why = audit[1]["comment"].as_str().unwrap();
    assert!(why.contains("forbids self-approval"), "{why}");
    assert_eq!(
        audit[1]["run_id"],
        serde_json::json!(id.parse::<i64>().unwrap())
    );
    let text = ops.ok(&carol, &["audit", "--run", &id]);
    assert!(
        text.contains(bob.as_str()) && text.contains("prod: ship it"),
        "{text}"
    );
}

#[test]
fn without_access_rules_the_group_operates_and_others_are_kept_out() {
    if !is_root() {
        println!("SKIPPED: needs root to create users (CI runs as root)");
        return;
    }
    let (group, [alice, bob, _, mallory]) = names("b");
    let _accounts = Accounts::create(&group, &[&alice, &bob, &mallory], &[&alice, &bob]);
    let project = r#"
[environments.prod]
approval = true

[services.web]
repo_seed = "src"
environments = ["prod"]
[[services.web.steps]]
name = "build"
run = "echo built"
[services.web.deploy.prod]
run = "true"
"#;
    let ops = OpsBox::new(project);
    let _engine = ops.serve(&group);
    let id = ops
        .ok(&alice, &["run", "web"])
        .lines()
        .next()
        .unwrap()
        .to_string();
    ops.wait_status(&bob, &id, "awaiting_approval");
    // No approvers list and self-approval allowed: any operator, alice included.
    let out = ops.ok(&alice, &["reject", &id, "prod", "--comment", "not today"]);
    assert!(out.contains(&format!("rejected by {alice}")), "{out}");
    ops.refused(&mallory, &["show", &id], "permission denied");
    // The engine's own data dir is its account's alone.
    let mode = std::fs::metadata(ops.path().join("engine-data"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);
    for f in ["state.db", "engine.json", "engine.lock"] {
        let mode = std::fs::metadata(ops.path().join("engine-data").join(f))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{f}");
    }
    let logs = ops.path().join("engine-data/logs");
    let run_dir = std::fs::read_dir(&logs)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let log = std::fs::read_dir(&run_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "log"))
        .unwrap();
    assert_eq!(
        std::fs::metadata(&run_dir).unwrap().permissions().mode() & 0o777,
        0o700
    );
    assert_eq!(
        std::fs::metadata(&log).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

/// Needs no other user: an engine will not start on a data dir others can write.
#[test]
fn a_data_dir_others_can_write_is_refused_with_the_fix() {
    let ops = OpsBox::new("[services]\n");
    let data = ops.path().join("shared-data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = Command::new(&ops.bin)
        .arg("--data-dir")
        .arg(&data)
        .arg("--project")
        .arg(ops.path().join("proj/pipedeck.toml"))
        .arg("serve")
        .env("PIPEDECK_CONFIG", ops.path().join("no-config.toml"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "refusing to start: the data dir {0} is writable by other users (mode 0777)\n  hint: chmod 700 {0}",
            data.display()
        )),
        "{err}"
    );
}

/// Needs no other user: tokens made, listed (never their secret) and revoked from
/// the CLI; a listener off loopback is refused, saying why.
#[test]
fn tokens_from_the_cli_and_a_refused_listen() {
    let ops = OpsBox::new("[services]\n");
    let cli = |args: &[&str]| {
        Command::new(&ops.bin)
            .arg("--data-dir")
            .arg(ops.path().join("engine-data"))
            .arg("--project")
            .arg(ops.path().join("proj/pipedeck.toml"))
            .args(args)
            .env("PIPEDECK_CONFIG", ops.path().join("no-config.toml"))
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let out = cli(&["token", "create", "--user", "alice", "--role", "viewer"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(token.starts_with("pdt_"), "{token}");
    let id = token.split('_').nth(1).unwrap().to_string();
    let list = String::from_utf8(cli(&["token", "list"]).stdout).unwrap();
    assert!(
        list.contains(&id) && list.contains("alice") && list.contains("viewer"),
        "{list}"
    );
    assert!(!list.contains(&token), "{list}");
    let out = cli(&["token", "create", "--user", "bob", "--role", "root"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("`root` is not a role"));
    assert!(cli(&["token", "revoke", &id]).status.success());
    let list = String::from_utf8(cli(&["token", "list"]).stdout).unwrap();
    assert!(
        list.lines().nth(1).is_some_and(|l| !l.ends_with(" -")),
        "{list}"
    );

    let out = cli(&["serve", "--listen", "192.0.2.1:7878"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(
            "refusing to listen on 192.0.2.1:7878 without TLS: it is not a loopback address"
        ) && err.contains("--tls-cert CERT.pem --tls-key KEY.pem"),
        "{err}"
    );
}
