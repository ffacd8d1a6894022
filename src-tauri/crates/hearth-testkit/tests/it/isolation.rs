//! The isolation suite (issue 4, item 5; issue 13): real OS accounts, real workers
//! (`hearth-probe` standing in for `hearth worker`), real kernel checks. Needs root — CI runs as
//! root — and says so instead of skipping.
//!
//! Every test makes its own members with random ids and removes their accounts in a `Drop`
//! guard, so nothing is left behind even when an assertion fails.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hearth_isolation::accounts::{self, Account};
use hearth_isolation::sandbox::{self, SandboxPlan};
use hearth_isolation::spawn::stderr;
use hearth_isolation::{IsolationError, IsolationLevel, WorkerCommand, WorkerLink, dirs, spawn_worker};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

fn needs_root() {
    // SAFETY: a credential query.
    assert_eq!(unsafe { libc::geteuid() }, 0, "needs root; CI runs as root");
}

/// A throw-away household: a data directory members can reach, a copy of the probe any
/// account may execute, and the accounts to remove at the end.
struct Household {
    root: tempfile::TempDir,
    data: PathBuf,
    probe: PathBuf,
    /// Member ids whose accounts (and groups) are removed on drop.
    members: Vec<String>,
    /// Extra groups a test created.
    groups: Vec<String>,
}

struct Member {
    id: String,
    account: Account,
    dir: PathBuf,
}

impl Household {
    fn new() -> Household {
        needs_root();
        let root = tempfile::tempdir().unwrap();
        std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
        let data = root.path().join("data");
        std::fs::create_dir(&data).unwrap();
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o711)).unwrap();
        dirs::data_dir_reachable_by_members(&data).unwrap();
        // The build directory need not be reachable by member accounts: run a root-owned copy.
        let bin = root.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        let probe = bin.join("hearth-probe");
        std::fs::copy(env!("CARGO_BIN_EXE_hearth-probe"), &probe).unwrap();
        std::fs::set_permissions(&probe, std::fs::Permissions::from_mode(0o755)).unwrap();
        Household { root, data, probe, members: Vec::new(), groups: Vec::new() }
    }

    fn new_id(&mut self, tag: &str) -> String {
        let id = format!("it{tag}-{:06x}", rand::random::<u32>() & 0xff_ffff);
        self.members.push(id.clone());
        id
    }

    /// A member with an account and a prepared directory.
    fn member(&mut self, tag: &str) -> Member {
        let id = self.new_id(tag);
        let account = accounts::ensure_account(&id).unwrap();
        let dir = dirs::prepare_member_dir(&self.data, &id, Some(&account)).unwrap();
        Member { id, account, dir }
    }

    fn command(&self, m: &Member, sandbox: bool, link: WorkerLink) -> WorkerCommand {
        WorkerCommand {
            exe: self.probe.clone(),
            args: vec![],
            member_id: m.id.clone(),
            member_dir: m.dir.clone(),
            account: Some(m.account.clone()),
            sandbox: sandbox.then(|| Arc::new(SandboxPlan::prepare(&m.dir, &self.probe).unwrap())),
            link,
        }
    }

    /// A directory anyone may write to (like /tmp): what the sandbox must still keep a worker
    /// out of.
    fn shared_dir(&self) -> PathBuf {
        let p = self.root.path().join("shared");
        if !p.exists() {
            std::fs::create_dir(&p).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o1777)).unwrap();
        }
        p
    }
}

impl Drop for Household {
    fn drop(&mut self) {
        for id in &self.members {
            if let Ok(Some(a)) = accounts::find_account(id) {
                kill_processes_of(a.uid);
            }
            let mut last = None;
            for _ in 0..50 {
                match accounts::remove_account(id) {
                    Ok(()) => {
                        last = None;
                        break;
                    }
                    Err(e) => {
                        last = Some(e);
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
            }
            if let Some(e) = last {
                eprintln!("could not remove the test account for {id}: {e}");
            }
        }
        for g in &self.groups {
            let _ = std::process::Command::new("groupdel").arg(g).output();
        }
    }
}

/// Ends the (test) processes still running under a test account — started by this test, found
/// by uid — and reaps them, so the account can be deleted.
fn kill_processes_of(uid: u32) {
    let Ok(dir) = std::fs::read_dir("/proc") else { return };
    for entry in dir.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
        if entry.metadata().is_ok_and(|m| m.uid() == uid) {
            // SAFETY: signalling and reaping a process by id.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, std::ptr::null_mut(), 0);
            }
        }
    }
}

/// Sends one request to a started probe and returns its results, keyed by the label each
/// probe was given (`"as"`), after the probe has exited successfully.
async fn ask<S>(stream: S, child: &mut tokio::process::Child, probes: Vec<Value>) -> Results
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let labels: Vec<String> = probes.iter().map(|p| p["as"].as_str().unwrap_or("").to_owned()).collect();
    let mut stream = BufReader::new(stream);
    let mut line = serde_json::to_string(&json!({ "probes": probes })).unwrap();
    line.push('\n');
    let mut reply = String::new();
    tokio::time::timeout(Duration::from_secs(15), async {
        stream.get_mut().write_all(line.as_bytes()).await.unwrap();
        stream.read_line(&mut reply).await.unwrap();
    })
    .await
    .expect("the probe answers within 15 s");
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait()).await.unwrap().unwrap();
    assert!(status.success(), "the probe failed: {status} (reply {reply:?})");
    let v: Value = serde_json::from_str(&reply).unwrap_or_else(|e| panic!("bad reply {reply:?}: {e}"));
    let list = v["results"].as_array().unwrap().clone();
    assert_eq!(list.len(), labels.len());
    Results(labels.into_iter().zip(list).collect())
}

struct Results(Vec<(String, Value)>);

impl Results {
    fn get(&self, label: &str) -> &Value {
        &self.0.iter().find(|(l, _)| l == label).unwrap_or_else(|| panic!("no probe {label}")).1
    }
    /// Asserts the outcome ("ok" or an errno name) of a probe and returns its value.
    fn expect(&self, label: &str, result: &str) -> &Value {
        let v = self.get(label);
        assert_eq!(v["result"], result, "probe {label}: {v}");
        &v["value"]
    }
}

fn probe(label: &str, op: &str, args: Value) -> Value {
    let mut v = args;
    v["as"] = json!(label);
    v["op"] = json!(op);
    v
}

fn s(p: &Path) -> String {
    p.to_str().unwrap().to_owned()
}

/// Keys a worker may find in its environment (spawn.rs's allowlist).
const ALLOWED_ENV: &[&str] = &[
    "HEARTH_WORKER_FD",
    "HEARTH_MEMBER_DIR",
    "HEARTH_MEMBER_ID",
    "HOME",
    "TMPDIR",
    "PATH",
    "LANG",
    "RUST_LOG",
    "RUST_BACKTRACE",
    "TZ",
];

#[tokio::test]
async fn isolation_a_worker_cannot_reach_another_members_things() {
    let mut h = Household::new();
    let a = h.member("a");
    let b = h.member("b");
    // B has a secret, written by root and then handed to B by preparing the directory again.
    std::fs::create_dir(b.dir.join("files")).unwrap();
    std::fs::write(b.dir.join("files/secret.txt"), "b-secret").unwrap();
    std::fs::write(b.dir.join("history.sqlite"), "b-history").unwrap();
    dirs::prepare_member_dir(&h.data, &b.id, Some(&b.account)).unwrap();
    for p in [&b.dir, &b.dir.join("files"), &b.dir.join("files/secret.txt")] {
        assert_eq!(std::fs::metadata(p).unwrap().uid(), b.account.uid, "{}", p.display());
    }
    let members = std::fs::metadata(h.data.join("members")).unwrap();
    assert_eq!((members.uid(), members.mode() & 0o777), (0, 0o711));
    let a_meta = std::fs::metadata(&a.dir).unwrap();
    assert_eq!((a_meta.uid(), a_meta.gid(), a_meta.mode() & 0o777), (a.account.uid, a.account.gid, 0o700));
    assert_ne!(a.account.uid, b.account.uid);

    // B's worker runs, waiting for a request that comes after A is done.
    let mut wb = spawn_worker(&h.command(&b, false, WorkerLink::SocketPair)).unwrap();
    assert_eq!(wb.level, IsolationLevel::Account);
    let b_pid = wb.pid as i64;

    // A secret in the gateway's environment must not reach A.
    // SAFETY: set before A is spawned; no other thread of this test reads the environment.
    unsafe { std::env::set_var("HEARTH_TEST_SECRET_KEY", "sk-live-test-secret") };
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = tcp.local_addr().unwrap().port();
    let shared = h.shared_dir();

    let mut wa = spawn_worker(&h.command(&a, false, WorkerLink::SocketPair)).unwrap();
    let secret = b.dir.join("files/secret.txt");
    let probes = vec![
        probe("read B's file", "read", json!({ "path": s(&secret) })),
        probe("read B's top-level file", "read", json!({ "path": s(&b.dir.join("history.sqlite")) })),
        probe("list B", "list", json!({ "path": s(&b.dir) })),
        probe("list members", "list", json!({ "path": s(&h.data.join("members")) })),
        probe("create in B", "create", json!({ "path": s(&b.dir.join("planted.txt")) })),
        probe("create own", "create", json!({ "path": s(&a.dir.join("own.txt")) })),
        probe("rename into B", "rename", json!({ "from": s(&a.dir.join("own.txt")), "to": s(&b.dir.join("own.txt")) })),
        probe("symlink to B", "symlink_read", json!({ "target": s(&secret), "link": s(&a.dir.join("link")) })),
        probe("symlink to B's dir", "symlink_read", json!({ "target": s(&b.dir), "link": s(&a.dir.join("dirlink")) })),
        probe("env", "env", json!({})),
        probe("fds", "fds", json!({})),
        probe("B's environ", "read", json!({ "path": format!("/proc/{b_pid}/environ") })),
        probe("signal 0 to B", "kill", json!({ "pid": b_pid, "signal": 0 })),
        probe("SIGTERM to B", "kill", json!({ "pid": b_pid, "signal": libc::SIGTERM })),
        probe("ptrace B", "ptrace", json!({ "pid": b_pid })),
        probe("ids", "ids", json!({})),
        probe("limits", "limits", json!({})),
        probe("tty", "tty", json!({})),
        probe("type", "type_into_terminal", json!({ "text": "touch /tmp/pwned\n" })),
        // Controls for the sandbox test: without the sandbox these work.
        probe("tcp", "tcp_connect", json!({ "port": port })),
        probe("write shared", "write", json!({ "path": s(&shared.join("from-a")) })),
    ];
    let r = ask(wa.stream.take().unwrap(), &mut wa.child, probes).await;
    assert_eq!(wa.level, IsolationLevel::Account);

    for label in ["read B's file", "read B's top-level file", "list B", "list members", "create in B", "rename into B"]
    {
        r.expect(label, "EACCES");
    }
    r.expect("symlink to B", "EACCES");
    r.expect("symlink to B's dir", "EACCES");
    assert_eq!(r.expect("create own", "ok"), "0600");
    assert!(!b.dir.join("planted.txt").exists() && !b.dir.join("own.txt").exists());

    let env = r.expect("env", "ok").as_object().unwrap();
    for (k, v) in env {
        assert!(ALLOWED_ENV.contains(&k.as_str()), "unexpected variable {k} in the worker's environment");
        assert!(!v.as_str().unwrap().contains("sk-live-test-secret"), "{k} leaks the secret");
    }
    assert_eq!(env["HOME"], s(&a.dir));
    assert_eq!(env["HEARTH_WORKER_FD"], "3");

    let fds: Vec<i64> = r.expect("fds", "ok").as_array().unwrap().iter().map(|f| f[0].as_i64().unwrap()).collect();
    assert_eq!(fds, [0, 1, 2, 3], "{}", r.get("fds"));
    let targets = &r.get("fds")["value"];
    assert_eq!((targets[0][1].as_str(), targets[1][1].as_str()), (Some("/dev/null"), Some("/dev/null")));
    assert!(targets[2][1].as_str().unwrap().starts_with("pipe:"), "stderr is the spawner's pipe: {targets}");
    assert!(targets[3][1].as_str().unwrap().starts_with("socket:"));
    // No terminal: a session of its own, no controlling terminal, nothing to type into.
    let tty = r.expect("tty", "ok");
    assert_eq!((&tty["session"], &tty["pgrp"]), (&tty["pid"], &tty["pid"]), "{tty}");
    assert_eq!(tty["tty_nr"], 0, "{tty}");
    assert_eq!(tty["dev_tty"], "ENXIO", "{tty}");
    for (fd, outcome) in r.expect("type", "ok").as_object().unwrap() {
        assert_eq!(outcome, &json!(["ENOTTY", "ENOTTY"]), "fd {fd}");
    }

    r.expect("B's environ", "EACCES");
    r.expect("signal 0 to B", "EPERM");
    r.expect("SIGTERM to B", "EPERM");
    r.expect("ptrace B", "EPERM");
    let ids = r.expect("ids", "ok");
    assert_eq!(ids["uid"], a.account.uid);
    assert_eq!(ids["euid"], a.account.uid);
    assert_eq!(ids["gid"], a.account.gid);
    assert_eq!(ids["egid"], a.account.gid);
    assert_eq!(ids["groups"], json!([]));
    let limits = r.expect("limits", "ok");
    assert_eq!(limits["core"], json!([0, 0]));
    assert_eq!(limits["nofile"], json!([256, 256]));
    assert_eq!(limits["nproc"], json!([64, 64]));
    assert_eq!(limits["fsize"], json!([1u64 << 30, 1u64 << 30]));
    assert_eq!(limits["as"], json!([1u64 << 30, 1u64 << 30]));
    assert_eq!(limits["umask"], "0077");
    r.expect("tcp", "ok");
    r.expect("write shared", "ok");
    assert_eq!(std::fs::metadata(shared.join("from-a")).unwrap().mode() & 0o777, 0o600);

    // B is untouched and still running; it answers and exits cleanly.
    assert_eq!(unsafe { libc::kill(wb.pid as i32, 0) }, 0, "B's worker was killed");
    let rb =
        ask(wb.stream.take().unwrap(), &mut wb.child, vec![probe("read own", "read", json!({ "path": s(&secret) }))])
            .await;
    assert_eq!(rb.expect("read own", "ok"), "b-secret");
}

#[tokio::test]
async fn isolation_a_removed_member_leaves_nothing_for_a_reused_uid() {
    let mut h = Household::new();
    // The old member's account is made the way ensure_account makes it, but with a uid outside
    // the ranges useradd allocates from, so no concurrently running test can take it between
    // the removal and the reuse below. ensure_account then verifies and adopts it.
    let uid = free_high_id();
    let old_id = h.new_id("old");
    useradd_with_uid(&accounts::account_name(&old_id), uid);
    let account = accounts::ensure_account(&old_id).unwrap();
    assert_eq!((account.uid, account.gid), (uid, uid));
    let dir = dirs::prepare_member_dir(&h.data, &old_id, Some(&account)).unwrap();
    let a = Member { id: old_id, account, dir };
    std::fs::create_dir(a.dir.join("files")).unwrap();
    std::fs::write(a.dir.join("files/diary.txt"), "old member's diary").unwrap();
    dirs::prepare_member_dir(&h.data, &a.id, Some(&a.account)).unwrap();
    let mut w = spawn_worker(&h.command(&a, false, WorkerLink::SocketPair)).unwrap();
    let r = ask(
        w.stream.take().unwrap(),
        &mut w.child,
        vec![
            probe("note", "create", json!({ "path": s(&a.dir.join("note.txt")) })),
            probe("fifo-free file", "write", json!({ "path": s(&a.dir.join("files/more.txt")) })),
        ],
    )
    .await;
    r.expect("note", "ok");
    let (old_uid, old_gid) = (a.account.uid, a.account.gid);

    let archived = dirs::archive_member_dir(&h.data, &a.id, "20260101T000000").unwrap().unwrap();
    accounts::remove_account(&a.id).unwrap();
    accounts::remove_account(&a.id).unwrap(); // absent: still fine
    assert_eq!(accounts::find_account(&a.id).unwrap(), None);
    let name = accounts::account_name(&a.id);
    let getent =
        |db: &str, key: &str| std::process::Command::new("getent").args([db, key]).output().unwrap().status.success();
    assert!(!getent("passwd", &name) && !getent("group", &name), "{name} is still in the account database");
    assert!(!getent("passwd", &old_uid.to_string()), "uid {old_uid} still maps to an account");
    assert!(!a.dir.exists());

    // Nothing under the data directory belongs to the old uid or gid any more.
    let mut stack = vec![h.data.clone()];
    let mut seen = 0;
    while let Some(p) = stack.pop() {
        let m = std::fs::symlink_metadata(&p).unwrap();
        assert!(m.uid() != old_uid && m.gid() != old_gid, "{} still belongs to the removed account", p.display());
        seen += 1;
        if m.is_dir() {
            stack.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        }
    }
    assert!(seen >= 5, "the walk saw the archived tree");

    // A new member's account gets the same uid (forced: useradd would not reuse it at once).
    let new_id = h.new_id("new");
    useradd_with_uid(&accounts::account_name(&new_id), old_uid);
    let c_account = accounts::ensure_account(&new_id).unwrap();
    assert_eq!(c_account.uid, old_uid);
    let c_dir = dirs::prepare_member_dir(&h.data, &new_id, Some(&c_account)).unwrap();
    let c = Member { id: new_id, account: c_account, dir: c_dir };
    let mut w = spawn_worker(&h.command(&c, false, WorkerLink::SocketPair)).unwrap();
    let r = ask(
        w.stream.take().unwrap(),
        &mut w.child,
        vec![
            probe("own dir", "list", json!({ "path": s(&c.dir) })),
            probe("old dir", "list", json!({ "path": s(&a.dir) })),
            probe("archive", "list", json!({ "path": s(&archived) })),
            probe("archived diary", "read", json!({ "path": s(&archived.join("files/diary.txt")) })),
            probe("archived note", "read", json!({ "path": s(&archived.join("note.txt")) })),
        ],
    )
    .await;
    assert_eq!(r.expect("own dir", "ok"), &json!([]));
    r.expect("old dir", "ENOENT");
    r.expect("archive", "EACCES");
    r.expect("archived diary", "EACCES");
    r.expect("archived note", "EACCES");
}

/// A uid (and gid) in 61000–64999 — above UID_MAX/GID_MAX, so never handed out by useradd —
/// that is free as both.
fn free_high_id() -> u32 {
    loop {
        let id = 61_000 + rand::random::<u32>() % 4_000;
        let taken = |db: &str| {
            std::process::Command::new("getent").args([db, &id.to_string()]).output().unwrap().status.success()
        };
        if !taken("passwd") && !taken("group") {
            return id;
        }
    }
}

/// Creates an account exactly as `ensure_account` does on Linux, but with a chosen uid (and
/// the same number as its group's gid).
fn useradd_with_uid(name: &str, uid: u32) {
    let out = std::process::Command::new("groupadd").args(["--system", "-g", &uid.to_string(), name]).output().unwrap();
    assert!(out.status.success(), "groupadd -g {uid}: {}", String::from_utf8_lossy(&out.stderr));
    let out = std::process::Command::new("useradd")
        .args(["--system", "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin"])
        .args(["-u", &uid.to_string(), "-g", name, "--comment", "Hearth member (test)", name])
        .output()
        .unwrap();
    assert!(out.status.success(), "useradd -u {uid}: {}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test]
async fn isolation_the_sandbox_confines_a_worker_to_its_directory_and_its_one_connection() {
    let mut h = Household::new();
    let a = h.member("sbx");
    let shared = h.shared_dir();
    // The gateway's listening socket, and a second one elsewhere that anyone may connect to.
    let gateway_sock = h.root.path().join("gateway.sock");
    let listener = tokio::net::UnixListener::bind(&gateway_sock).unwrap();
    let other_sock = h.root.path().join("other.sock");
    let other = std::os::unix::net::UnixListener::bind(&other_sock).unwrap();
    other.set_nonblocking(true).unwrap();
    for p in [&gateway_sock, &other_sock] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o666)).unwrap();
    }
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = tcp.local_addr().unwrap().port();

    // A busy gateway: hundreds of descriptors open, none of which may reach the worker, and
    // the sandbox must still find free descriptor numbers under the worker's limit of 256.
    let busy: Vec<std::fs::File> = (0..300).map(|_| std::fs::File::open("/dev/null").unwrap()).collect();
    let cmd = h.command(&a, true, WorkerLink::Connect(gateway_sock.clone()));
    let mut w = spawn_worker(&cmd).unwrap();
    drop(busy);
    assert_eq!(w.level, IsolationLevel::AccountSandbox);
    assert!(w.stream.is_none());
    let (conn, _) = tokio::time::timeout(Duration::from_secs(10), listener.accept()).await.unwrap().unwrap();
    // The worker's own process connected, as the member, before it was exec'd.
    let cred = conn.peer_cred().unwrap();
    assert_eq!((cred.uid(), cred.pid()), (a.account.uid, Some(w.pid as i32)));

    let own = a.dir.join("work.txt");
    let r = ask(
        conn,
        &mut w.child,
        vec![
            probe("tcp socket", "socket", json!({ "domain": libc::AF_INET })),
            probe("tcp6 socket", "socket", json!({ "domain": libc::AF_INET6 })),
            probe("netlink socket", "socket", json!({ "domain": libc::AF_NETLINK })),
            probe("unix socket", "socket", json!({ "domain": libc::AF_UNIX })),
            probe("tcp connect", "tcp_connect", json!({ "port": port })),
            probe("unix connect", "unix_connect", json!({ "path": s(&other_sock) })),
            probe("gateway again", "unix_connect", json!({ "path": s(&gateway_sock) })),
            probe("write shared", "write", json!({ "path": s(&shared.join("from-sandbox")) })),
            probe("write tmp", "write", json!({ "path": format!("/tmp/hearth-it-{}", a.id) })),
            probe("create own", "create", json!({ "path": s(&own) })),
            probe("write own", "write", json!({ "path": s(&own) })),
            probe("read own", "read", json!({ "path": s(&own) })),
            probe("rename own", "rename", json!({ "from": s(&own), "to": s(&a.dir.join("renamed.txt")) })),
            probe("list own", "list", json!({ "path": s(&a.dir) })),
            probe("link in own", "symlink_read", json!({ "target": s(&own), "link": s(&a.dir.join("link")) })),
            probe("fds", "fds", json!({})),
            probe("ids", "ids", json!({})),
            probe("env", "env", json!({})),
            probe("thread", "thread", json!({})),
            probe("exec a tool", "exec", json!({ "path": "/bin/true" })),
            probe("read ld.so.cache", "read", json!({ "path": "/etc/ld.so.cache" })),
            probe("list /usr/bin", "list", json!({ "path": "/usr/bin" })),
            probe("read /etc/passwd", "read", json!({ "path": "/etc/passwd" })),
            probe("read /etc/hostname", "read", json!({ "path": "/etc/hostname" })),
            probe("list /home", "list", json!({ "path": "/home" })),
            probe("own /proc", "read", json!({ "path": "/proc/self/status" })),
            probe("pid 1 /proc", "read", json!({ "path": "/proc/1/status" })),
            probe("ptrace pid 1", "ptrace", json!({ "pid": 1 })),
            probe("tty", "tty", json!({})),
            probe("type", "type_into_terminal", json!({ "text": "touch /tmp/pwned\n" })),
            probe("limits", "limits", json!({})),
        ],
    )
    .await;
    // No socket of any kind, so no connection but the inherited one.
    for label in
        ["tcp socket", "tcp6 socket", "netlink socket", "unix socket", "tcp connect", "unix connect", "gateway again"]
    {
        r.expect(label, "EPERM");
    }
    assert!(other.accept().is_err(), "the other socket got a connection");
    r.expect("write shared", "EACCES");
    r.expect("write tmp", "EACCES");
    assert!(!shared.join("from-sandbox").exists());
    assert_eq!(r.expect("create own", "ok"), "0600");
    r.expect("write own", "ok");
    assert_eq!(r.expect("read own", "ok"), "probe");
    r.expect("rename own", "ok");
    assert_eq!(r.expect("list own", "ok"), &json!(["renamed.txt"]));
    // No links, even in its own folder: none for root to follow when it backs the folder up.
    r.expect("link in own", "EPERM");
    assert!(std::fs::symlink_metadata(a.dir.join("link")).is_err());
    let fds = r.expect("fds", "ok").as_array().unwrap();
    let numbers: Vec<i64> = fds.iter().map(|f| f[0].as_i64().unwrap()).collect();
    assert_eq!(numbers, [0, 1, 2, 3], "{}", r.get("fds"));
    assert!(fds[2][1].as_str().unwrap().starts_with("pipe:"), "{fds:?}");
    assert!(fds[3][1].as_str().unwrap().starts_with("socket:"), "{fds:?}");
    assert_eq!(r.expect("ids", "ok")["uid"], a.account.uid);
    let env = r.expect("env", "ok");
    assert_eq!(env["HEARTH_WORKER_FD"], "3");
    assert!(env.get("HEARTH_GATEWAY_SOCKET").is_none(), "the worker is told no path: {env}");
    r.expect("thread", "ok");
    assert_eq!(r.expect("exec a tool", "ok"), 0);
    r.expect("read ld.so.cache", "ok");
    r.expect("list /usr/bin", "ok");
    r.expect("read /etc/passwd", "EACCES");
    r.expect("read /etc/hostname", "EACCES");
    r.expect("list /home", "EACCES");
    r.expect("own /proc", "ok");
    r.expect("pid 1 /proc", "EACCES");
    r.expect("ptrace pid 1", "EPERM");
    let tty = r.expect("tty", "ok");
    assert_eq!((&tty["session"], &tty["tty_nr"]), (&tty["pid"], &json!(0)), "{tty}");
    assert_ne!(tty["dev_tty"], "ok", "{tty}");
    // The sandbox refuses the terminal requests whatever the descriptor is.
    for (fd, outcome) in r.expect("type", "ok").as_object().unwrap() {
        assert_eq!(outcome, &json!(["EPERM", "EPERM"]), "fd {fd}");
    }
    assert_eq!(r.expect("limits", "ok")["umask"], "0077");
}

/// A root-owned socket anyone may connect to, in a directory of root's under /tmp — the D-Bus
/// system bus, systemd-resolved's varlink socket and `/dev/log` look like this on a real host —
/// is out of a sandboxed worker's reach: it cannot even make a socket. At level "account" (no
/// sandbox) the same worker reaches it, which is what shows the socket is reachable at all.
#[tokio::test]
async fn isolation_a_sandboxed_worker_reaches_no_unix_socket_on_the_machine() {
    let mut h = Household::new();
    let a = h.member("net");
    let dir = tempfile::Builder::new().prefix("hearth-it-bus").tempdir_in("/tmp").unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let bus = dir.path().join("bus.sock");
    let listener = std::os::unix::net::UnixListener::bind(&bus).unwrap();
    listener.set_nonblocking(true).unwrap();
    std::fs::set_permissions(&bus, std::fs::Permissions::from_mode(0o666)).unwrap();
    assert_eq!(std::fs::metadata(&bus).unwrap().uid(), 0);

    let probes = || {
        vec![
            probe("connect", "unix_connect", json!({ "path": s(&bus) })),
            probe("socket", "socket", json!({ "domain": libc::AF_UNIX })),
            probe("pair", "socketpair", json!({ "domain": libc::AF_UNIX })),
            probe("inet pair", "socketpair", json!({ "domain": libc::AF_INET })),
        ]
    };
    let mut w = spawn_worker(&h.command(&a, true, WorkerLink::SocketPair)).unwrap();
    let r = ask(w.stream.take().unwrap(), &mut w.child, probes()).await;
    r.expect("connect", "EPERM");
    r.expect("socket", "EPERM");
    // tokio's runtime makes an anonymous pair at start; it reaches nothing.
    r.expect("pair", "ok");
    r.expect("inet pair", "EPERM");
    assert!(listener.accept().is_err(), "the sandboxed worker reached the socket");

    let mut w = spawn_worker(&h.command(&a, false, WorkerLink::SocketPair)).unwrap();
    let r = ask(w.stream.take().unwrap(), &mut w.child, probes()).await;
    r.expect("connect", "ok");
    assert!(listener.accept().is_ok(), "the control: without the sandbox the socket is reachable");
}

/// Landlock does not govern `chmod`: without the seccomp rule a worker could open its folder
/// to 0777 and let any local user plant links in it for root's backups to follow. Modes that
/// keep everything to the owner still work, as the worker's databases need.
#[tokio::test]
async fn isolation_a_sandboxed_worker_cannot_open_its_folder_to_others() {
    let mut h = Household::new();
    let a = h.member("chm");
    let file = a.dir.join("notes.txt");
    std::fs::write(&file, "mine").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    dirs::prepare_member_dir(&h.data, &a.id, Some(&a.account)).unwrap();
    let chmod = |label: &str, path: &Path, mode: &str| probe(label, "chmod", json!({ "path": s(path), "mode": mode }));
    let mut w = spawn_worker(&h.command(&a, true, WorkerLink::SocketPair)).unwrap();
    let r = ask(
        w.stream.take().unwrap(),
        &mut w.child,
        vec![
            chmod("dir 0777", &a.dir, "777"),
            chmod("dir 0755", &a.dir, "755"),
            chmod("dir 0711", &a.dir, "711"),
            chmod("dir 01700", &a.dir, "1700"),
            chmod("file 0666", &file, "666"),
            chmod("file 0644", &file, "644"),
            chmod("file 04700", &file, "4700"),
            chmod("dir 0700", &a.dir, "700"),
            chmod("file 0400", &file, "400"),
            chmod("file 0600", &file, "600"),
            probe("umask 022", "umask", json!({ "mask": "022" })),
            probe("umask 000", "umask", json!({ "mask": "0" })),
            probe("umask 077", "umask", json!({ "mask": "077" })),
            probe("acl", "set_acl", json!({ "path": s(&file) })),
            probe("acl dir", "set_acl", json!({ "path": s(&a.dir) })),
            probe("hard link", "hard_link", json!({ "target": s(&file), "link": s(&a.dir.join("hard")) })),
            probe("created after", "create", json!({ "path": s(&a.dir.join("new.txt")) })),
        ],
    )
    .await;
    for label in ["dir 0777", "dir 0755", "dir 0711", "dir 01700", "file 0666", "file 0644", "file 04700"] {
        r.expect(label, "EPERM");
    }
    for label in ["dir 0700", "file 0400", "file 0600"] {
        r.expect(label, "ok");
    }
    r.expect("umask 022", "EPERM");
    r.expect("umask 000", "EPERM");
    assert_eq!(r.expect("umask 077", "ok"), "0077");
    r.expect("acl", "EPERM");
    r.expect("acl dir", "EPERM");
    r.expect("hard link", "EPERM");
    assert_eq!(r.expect("created after", "ok"), "0600");
    let meta = |p: &Path| std::fs::symlink_metadata(p).unwrap();
    assert_eq!(meta(&a.dir).mode() & 0o7777, 0o700);
    assert_eq!(meta(&file).mode() & 0o7777, 0o600);
    assert!(!has_xattr(&file, "system.posix_acl_access") && !has_xattr(&a.dir, "system.posix_acl_access"));
    assert!(std::fs::symlink_metadata(a.dir.join("hard")).is_err());
}

/// A worker that allocates more than its address-space limit gets an error back, not the
/// machine's memory; the supervisor that started it goes on serving, and starts the member again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolation_a_worker_cannot_allocate_beyond_its_memory_limit() {
    use hearth_isolation::supervisor::{SupervisorClient, serve};
    let mut h = Household::new();
    let id = h.new_id("mem");
    let socket = h.root.path().join("run").join("supervisor.sock");
    let stop = tokio_util::sync::CancellationToken::new();
    let (path, token) = (socket.clone(), stop.clone());
    let admin = hearth_isolation::admin::Admin::Uid(0);
    let served = tokio::spawn(async move { serve(&path, admin, token.cancelled_owned()).await });
    let mut client = None;
    for _ in 0..500 {
        if let Ok(c) = SupervisorClient::connect(&socket).await {
            client = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut client = client.expect("the supervisor serves");
    let gateway = h.root.path().join("gateway.sock");
    let listener = tokio::net::UnixListener::bind(&gateway).unwrap();
    std::fs::set_permissions(&gateway, std::fs::Permissions::from_mode(0o666)).unwrap();
    let request = hearth_proto::supervisor::SpawnRequest {
        member_id: id.clone(),
        data_dir: h.data.clone(),
        exe: h.probe.clone(),
        args: vec![],
        sandbox: true,
        gateway_socket: gateway.clone(),
    };
    for round in 0..2 {
        let spawned = client.spawn(request.clone()).await.unwrap();
        let (conn, _) = tokio::time::timeout(Duration::from_secs(10), listener.accept()).await.unwrap().unwrap();
        let mut probes =
            vec![probe("limits", "limits", json!({})), probe("small", "alloc", json!({ "bytes": 64u64 << 20 }))];
        if round == 0 {
            probes.push(probe("2 GiB", "alloc", json!({ "bytes": 2u64 << 30 })));
            probes.push(probe("8 GiB", "alloc", json!({ "bytes": 8u64 << 30 })));
        }
        let r = ask_connection(conn, probes).await;
        assert_eq!(r.expect("limits", "ok")["as"], json!([1u64 << 30, 1u64 << 30]));
        assert_eq!(r.expect("small", "ok"), 64u64 << 20);
        if round == 0 {
            r.expect("2 GiB", "ENOMEM");
            r.expect("8 GiB", "ENOMEM");
        }
        // The supervisor is unaffected: it answers, and the worker exits normally.
        let status = client.status().await.unwrap();
        assert!(status.workers.iter().all(|w| w.pid == spawned.pid || w.member_id != id), "{status:?}");
    }
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(20), served).await.unwrap().unwrap().unwrap();
}

/// [`ask`] for a worker that is not this process's child (the supervisor's).
async fn ask_connection(stream: tokio::net::UnixStream, probes: Vec<Value>) -> Results {
    let labels: Vec<String> = probes.iter().map(|p| p["as"].as_str().unwrap_or("").to_owned()).collect();
    let mut stream = BufReader::new(stream);
    let mut line = serde_json::to_string(&json!({ "probes": probes })).unwrap();
    line.push('\n');
    let mut reply = String::new();
    tokio::time::timeout(Duration::from_secs(15), async {
        stream.get_mut().write_all(line.as_bytes()).await.unwrap();
        stream.read_line(&mut reply).await.unwrap();
    })
    .await
    .expect("the probe answers within 15 s");
    let v: Value = serde_json::from_str(&reply).unwrap_or_else(|e| panic!("bad reply {reply:?}: {e}"));
    Results(labels.into_iter().zip(v["results"].as_array().unwrap().iter().cloned()).collect())
}

/// What a worker writes to stderr reaches the spawner's log as one event per line, tagged with
/// the member and its pid, control characters shown as escapes, a flood capped and counted.
#[tokio::test]
async fn isolation_a_workers_stderr_reaches_the_log_tagged_cleaned_and_capped() {
    let log = CapturedLog::default();
    let _guard = tracing::subscriber::set_default(
        tracing_subscriber::fmt()
            .with_writer(log.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .finish(),
    );
    let mut h = Household::new();
    let a = h.member("log");
    let flood: String = (0..5_000).map(|i| format!("flood line {i}\n")).collect();
    let mut w = spawn_worker(&h.command(&a, true, WorkerLink::SocketPair)).unwrap();
    let pid = w.pid;
    let r = ask(
        w.stream.take().unwrap(),
        &mut w.child,
        vec![
            probe("escape", "stderr", json!({ "text": "title \u{1b}]0;owned\u{7} red \u{1b}[31mRED\u{1b}[0m\rFORGED INFO hearth_gateway: ok\n" })),
            probe("long", "stderr", json!({ "text": format!("{}\n", "y".repeat(10_000)) })),
            probe("flood", "stderr", json!({ "text": flood })),
        ],
    )
    .await;
    r.expect("escape", "ok");
    // The relay ends when the pipe does, once the worker has exited.
    let text = log.wait_for("lines left out", Duration::from_secs(10)).await;
    let tagged = |line: &&str| line.contains(&format!("member={}", a.id)) && line.contains(&format!("pid={pid}"));
    let escape = text.lines().find(|l| l.contains("title ")).expect("the line arrived");
    assert!(tagged(&escape), "{escape}");
    assert!(escape.contains(r"title \x1b]0;owned\x07 red \x1b[31mRED\x1b[0m\x0dFORGED"), "{escape}");
    assert!(
        !text.contains('\u{1b}') && !text.contains('\u{7}') && !text.contains('\r'),
        "a control character got through"
    );
    let long = text.lines().find(|l| l.contains("yyyy")).unwrap();
    assert!(long.contains("9000 more bytes left out") && long.len() < 1_300, "{} bytes", long.len());
    let flood_lines = text.lines().filter(|l| l.contains("flood line")).count();
    assert!(
        flood_lines <= stderr::BURST as usize + 2 * stderr::PER_SECOND as usize,
        "{flood_lines} lines of the flood were logged"
    );
    assert!(flood_lines >= stderr::BURST as usize - 2, "{flood_lines}");
    assert!(text.lines().filter(|l| l.contains("flood line")).all(|l| tagged(&l)));
}

/// A log writer for one test: what `tracing` writes, kept in memory, with a wake-up per write.
#[derive(Clone, Default)]
struct CapturedLog(std::sync::Arc<(std::sync::Mutex<Vec<u8>>, tokio::sync::Notify)>);

impl CapturedLog {
    async fn wait_for(&self, needle: &str, limit: Duration) -> String {
        let wait = async {
            loop {
                let written = self.0.1.notified();
                let text = String::from_utf8_lossy(&self.0.0.lock().unwrap()).into_owned();
                if text.contains(needle) {
                    return text;
                }
                written.await;
            }
        };
        match tokio::time::timeout(limit, wait).await {
            Ok(text) => text,
            Err(_) => panic!("the log never said {needle:?}:\n{}", String::from_utf8_lossy(&self.0.0.lock().unwrap())),
        }
    }
}

impl std::io::Write for CapturedLog {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.0.lock().unwrap().extend_from_slice(buf);
        self.0.1.notify_waiters();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for CapturedLog {
    type Writer = CapturedLog;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// For development without root: the sandbox applies to a worker running as the gateway's own
/// user, and the level reported stays "process".
#[tokio::test]
async fn isolation_the_sandbox_works_at_process_level() {
    let h = Household::new();
    let dir = dirs::prepare_member_dir(&h.data, "itproc", None).unwrap();
    let cmd = WorkerCommand {
        exe: h.probe.clone(),
        args: vec![],
        member_id: "itproc".into(),
        member_dir: dir.clone(),
        account: None,
        sandbox: Some(Arc::new(SandboxPlan::prepare(&dir, &h.probe).unwrap())),
        link: WorkerLink::SocketPair,
    };
    let mut w = spawn_worker(&cmd).unwrap();
    assert_eq!(w.level, IsolationLevel::Process);
    let r = ask(
        w.stream.take().unwrap(),
        &mut w.child,
        vec![
            probe("tcp socket", "socket", json!({ "domain": libc::AF_INET })),
            probe("write outside", "write", json!({ "path": s(&h.root.path().join("escaped")) })),
            probe("read shadow", "read", json!({ "path": "/etc/shadow" })),
            probe("create own", "create", json!({ "path": s(&dir.join("x")) })),
            probe("ids", "ids", json!({})),
        ],
    )
    .await;
    r.expect("tcp socket", "EPERM");
    // Root, yet confined: Landlock does not care about uid 0.
    assert_eq!(r.expect("ids", "ok")["uid"], 0);
    r.expect("write outside", "EACCES");
    r.expect("read shadow", "EACCES");
    assert_eq!(r.expect("create own", "ok"), "0600");
}

#[test]
fn isolation_the_kernel_offers_landlock_and_seccomp() {
    let support = sandbox::support();
    let abi = support.landlock_abi.expect(&support.detail);
    assert!(abi >= 1);
    assert!(support.seccomp, "{}", support.detail);
    assert!(support.detail.contains(&format!("Landlock ABI {abi}")), "{}", support.detail);
    assert!(support.detail.contains("seccomp filters: available"), "{}", support.detail);
}

#[test]
fn isolation_accounts_are_verified_not_trusted() {
    let mut h = Household::new();
    let id = h.new_id("ver");
    let first = accounts::ensure_account(&id).unwrap();
    assert_eq!(accounts::ensure_account(&id).unwrap(), first, "idempotent");
    assert_eq!(accounts::find_account(&id).unwrap(), Some(first.clone()));
    assert_eq!(first.name, accounts::account_name(&id));
    assert!(first.uid > 0 && first.gid > 0);
    let entry = std::process::Command::new("getent").args(["passwd", &first.name]).output().unwrap();
    let entry = String::from_utf8(entry.stdout).unwrap();
    assert!(entry.trim_end().ends_with(":/nonexistent:/usr/sbin/nologin"), "{entry}");

    let run = |args: &[&str]| {
        let out = std::process::Command::new(args[0]).args(&args[1..]).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    // A login shell makes it unusable.
    run(&["usermod", "--shell", "/bin/sh", &first.name]);
    let err = accounts::ensure_account(&id).unwrap_err();
    assert!(matches!(err, IsolationError::AccountMismatch { .. }) && err.to_string().contains("shell"), "{err}");
    run(&["usermod", "--shell", "/usr/sbin/nologin", &first.name]);
    accounts::ensure_account(&id).unwrap();

    // So does a supplementary group.
    let group = format!("{}g", first.name);
    h.groups.push(group.clone());
    run(&["groupadd", "--system", &group]);
    run(&["usermod", "--append", "--groups", &group, &first.name]);
    let err = accounts::ensure_account(&id).unwrap_err();
    assert!(err.to_string().contains("other groups"), "{err}");

    // A group left behind without its user is reported, not adopted.
    let stale = h.new_id("stl");
    run(&["groupadd", "--system", &accounts::account_name(&stale)]);
    let err = accounts::ensure_account(&stale).unwrap_err();
    assert!(err.to_string().contains("groupdel"), "{err}");
    accounts::remove_account(&stale).unwrap();
    assert!(
        std::process::Command::new("getent")
            .args(["group", &accounts::account_name(&stale)])
            .output()
            .unwrap()
            .stdout
            .is_empty()
    );
}

#[test]
fn isolation_preparing_a_directory_never_follows_links() {
    let mut h = Household::new();
    let a = h.member("lnk");
    let outside = h.root.path().join("outside.txt");
    std::fs::write(&outside, "root's").unwrap();
    std::os::unix::fs::symlink(&outside, a.dir.join("escape")).unwrap();
    std::fs::hard_link(&outside, a.dir.join("hard")).unwrap();
    std::fs::create_dir_all(a.dir.join("files/deep")).unwrap();
    std::fs::write(a.dir.join("files/deep/x.txt"), "x").unwrap();
    // ACLs granting a stranger access, on a file and (as a default) on a directory.
    set_acl(&a.dir.join("files/deep/x.txt"), "system.posix_acl_access");
    set_acl(&a.dir.join("files"), "system.posix_acl_default");
    set_acl(&a.dir, "system.posix_acl_access");

    dirs::prepare_member_dir(&h.data, &a.id, Some(&a.account)).unwrap();
    let meta = |p: &Path| std::fs::symlink_metadata(p).unwrap();
    assert_eq!(meta(&outside).uid(), 0, "followed a symlink or a foreign hard link");
    assert_eq!(meta(&a.dir.join("escape")).uid(), a.account.uid, "the link itself is the member's");
    assert_eq!(meta(&a.dir.join("hard")).uid(), 0, "a hard link to someone else's file is left alone");
    for p in ["files", "files/deep", "files/deep/x.txt"] {
        assert_eq!(meta(&a.dir.join(p)).uid(), a.account.uid, "{p}");
        assert_eq!(meta(&a.dir.join(p)).gid(), a.account.gid, "{p}");
    }
    assert!(!has_xattr(&a.dir.join("files/deep/x.txt"), "system.posix_acl_access"));
    assert!(!has_xattr(&a.dir.join("files"), "system.posix_acl_default"));
    assert!(!has_xattr(&a.dir, "system.posix_acl_access"));
    assert_eq!(meta(&a.dir).mode() & 0o7777, 0o700);

    // A member directory swapped for a symlink is refused, and its target left alone.
    let b = h.member("lnk2");
    let victim = h.root.path().join("victim");
    std::fs::create_dir(&victim).unwrap();
    std::fs::remove_dir(&b.dir).unwrap();
    std::os::unix::fs::symlink(&victim, &b.dir).unwrap();
    let err = dirs::prepare_member_dir(&h.data, &b.id, Some(&b.account)).unwrap_err();
    assert!(err.to_string().contains("symbolic link"), "{err}");
    assert_eq!(meta(&victim).uid(), 0);
    // And spawning a worker into it is refused too.
    let err = spawn_worker(&h.command(&b, false, WorkerLink::SocketPair)).unwrap_err();
    assert!(err.to_string().contains("not a directory"), "{err}");
}

/// Writes a POSIX ACL (user::rw-, user:4242:r--, group::---, mask::r--, other::---).
fn set_acl(path: &Path, name: &str) {
    let mut blob = 2u32.to_le_bytes().to_vec();
    for (tag, perm, id) in
        [(0x01u16, 6u16, u32::MAX), (0x02, 4, 4242), (0x04, 0, u32::MAX), (0x10, 4, u32::MAX), (0x20, 0, u32::MAX)]
    {
        blob.extend(tag.to_le_bytes());
        blob.extend(perm.to_le_bytes());
        blob.extend(id.to_le_bytes());
    }
    let p = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    let n = std::ffi::CString::new(name).unwrap();
    // SAFETY: valid C strings and buffer.
    let r = unsafe { libc::setxattr(p.as_ptr(), n.as_ptr(), blob.as_ptr().cast(), blob.len(), 0) };
    assert_eq!(r, 0, "setxattr {name} on {}: {}", path.display(), std::io::Error::last_os_error());
    assert!(has_xattr(path, name));
}

fn has_xattr(path: &Path, name: &str) -> bool {
    let p = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    let n = std::ffi::CString::new(name).unwrap();
    // SAFETY: a size query with a null buffer.
    unsafe { libc::lgetxattr(p.as_ptr(), n.as_ptr(), std::ptr::null_mut(), 0) >= 0 }
}
