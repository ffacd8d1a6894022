//! The `hearth supervisor` daemon (hearth-isolation's `supervisor`), served in-process as root
//! with `hearth-probe` standing in for the worker: whom it admits, what it refuses to run, and
//! that the accounts and workers it makes are real and go away again. Needs root — CI runs as
//! root — and says so instead of skipping.
//!
//! Each test serves its own socket and uses random member ids; a `Drop` guard removes their
//! accounts even when an assertion fails.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use hearth_isolation::accounts;
use hearth_isolation::admin::Admin;
use hearth_isolation::supervisor::{ClientError, SupervisorClient, serve};
use hearth_proto::control::IsolationLevel;
use hearth_proto::frame;
use hearth_proto::supervisor::{
    SUPERVISOR_PROTOCOL_VERSION, SpawnRequest, SupervisorError, SupervisorErrorCode, SupervisorReply,
};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio_util::sync::CancellationToken;

fn needs_root() {
    // SAFETY: a credential query.
    assert_eq!(unsafe { libc::geteuid() }, 0, "needs root (the supervisor creates OS accounts); CI runs as root");
}

/// A supervisor serving one admin uid on a socket of its own, a data directory, a root-owned
/// copy of the probe, and the member ids whose accounts are removed at the end.
struct Bench {
    root: tempfile::TempDir,
    data: PathBuf,
    probe: PathBuf,
    socket: PathBuf,
    stop: CancellationToken,
    served: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    members: Vec<String>,
}

impl Bench {
    /// Serves the supervisor for `admin`; the data directory belongs to root (tests that act as
    /// the admin use admin uid 0, i.e. this process).
    async fn start(admin: Admin) -> Bench {
        needs_root();
        let root = tempfile::tempdir().unwrap();
        chmod(root.path(), 0o711);
        let data = root.path().join("data");
        std::fs::create_dir(&data).unwrap();
        chmod(&data, 0o711);
        let bin = root.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        chmod(&bin, 0o755);
        let probe = bin.join("hearth-probe");
        std::fs::copy(env!("CARGO_BIN_EXE_hearth-probe"), &probe).unwrap();
        chmod(&probe, 0o755);
        let socket = root.path().join("run").join("supervisor.sock");
        let stop = CancellationToken::new();
        let (path, token) = (socket.clone(), stop.clone());
        let served = tokio::spawn(async move { serve(&path, admin, token.cancelled_owned()).await });
        // The socket file appears at bind(), a moment before listen(): wait until it accepts.
        for _ in 0..500 {
            if std::os::unix::net::UnixStream::connect(&socket).is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(std::os::unix::net::UnixStream::connect(&socket).is_ok(), "the supervisor did not listen on {}", socket.display());
        Bench { root, data, probe, socket, stop, served: Some(served), members: Vec::new() }
    }

    fn new_id(&mut self, tag: &str) -> String {
        let id = format!("sv{tag}-{:06x}", rand::random::<u32>() & 0xff_ffff);
        self.members.push(id.clone());
        id
    }

    fn spawn_request(&self, member_id: &str, gateway_socket: &Path, sandbox: bool) -> SpawnRequest {
        SpawnRequest {
            member_id: member_id.to_owned(),
            data_dir: self.data.clone(),
            exe: self.probe.clone(),
            args: vec![],
            sandbox,
            gateway_socket: gateway_socket.to_owned(),
        }
    }

    /// A listening "gateway" socket anyone may connect to.
    fn gateway_listener(&self) -> (PathBuf, tokio::net::UnixListener) {
        let path = self.root.path().join("gateway.sock");
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        chmod(&path, 0o666);
        (path, listener)
    }

    async fn client(&self) -> SupervisorClient {
        SupervisorClient::connect(&self.socket).await.expect("the admin is served")
    }

    /// Stops the supervisor and checks it stopped cleanly and removed its socket.
    async fn shutdown(mut self) {
        self.stop.cancel();
        let served = self.served.take().unwrap();
        tokio::time::timeout(Duration::from_secs(20), served).await.expect("the supervisor stops").unwrap().unwrap();
        assert!(!self.socket.exists(), "the socket is removed on shutdown");
    }
}

impl Drop for Bench {
    fn drop(&mut self) {
        self.stop.cancel();
        for id in &self.members {
            if let Ok(Some(a)) = accounts::find_account(id) {
                kill_processes_of(a.uid);
            }
            for _ in 0..50 {
                if accounts::remove_account(id).is_ok() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn chown(path: &Path, uid: u32) {
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: a valid C path.
    assert_eq!(unsafe { libc::chown(c.as_ptr(), uid, uid) }, 0, "chown {}", path.display());
}

/// Ends processes still running under a test account (started by this test) so it can go.
fn kill_processes_of(uid: u32) {
    let Ok(dir) = std::fs::read_dir("/proc") else { return };
    for entry in dir.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
        if entry.metadata().is_ok_and(|m| m.uid() == uid) {
            // SAFETY: signalling a process by id.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

fn alive(pid: u32) -> bool {
    // SAFETY: signal 0 only checks for existence.
    unsafe { libc::kill(pid as i32, 0) == 0 }
}

/// Sends the probe its request on `conn` and returns the results by label.
async fn ask(conn: tokio::net::UnixStream, probes: Vec<Value>) -> Vec<(String, Value)> {
    let labels: Vec<String> = probes.iter().map(|p| p["as"].as_str().unwrap().to_owned()).collect();
    let mut conn = BufReader::new(conn);
    let mut line = serde_json::to_string(&json!({ "probes": probes })).unwrap();
    line.push('\n');
    conn.get_mut().write_all(line.as_bytes()).await.unwrap();
    let mut reply = String::new();
    tokio::time::timeout(Duration::from_secs(15), conn.read_line(&mut reply)).await.unwrap().unwrap();
    let v: Value = serde_json::from_str(&reply).unwrap_or_else(|e| panic!("bad reply {reply:?}: {e}"));
    labels.into_iter().zip(v["results"].as_array().unwrap().iter().cloned()).collect()
}

fn result<'a>(results: &'a [(String, Value)], label: &str) -> &'a Value {
    &results.iter().find(|(l, _)| l == label).unwrap().1
}

async fn accept(listener: &tokio::net::UnixListener) -> tokio::net::UnixStream {
    tokio::time::timeout(Duration::from_secs(15), listener.accept()).await.expect("the worker connects").unwrap().0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supervisor_serves_only_its_admin_uid() {
    // The admin is uid 65534 (nobody); this process is root, i.e. someone else.
    let bench = Bench::start(Admin::Uid(65534)).await;
    let meta = std::fs::metadata(&bench.socket).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o666, "anyone may connect; the peer's uid decides");
    let dir = std::fs::metadata(bench.socket.parent().unwrap()).unwrap();
    assert_eq!((dir.uid(), dir.mode() & 0o777), (0, 0o755));

    let err = SupervisorClient::connect(&bench.socket).await.unwrap_err();
    assert!(matches!(err, ClientError::NotAdmitted { uid: 0, .. }), "{err:?}");
    assert!(err.to_string().contains("serves only its admin's uid"), "{err}");

    // The admin's uid is served: a hello from uid 65534 gets the supervisor's hello back.
    assert!(hello_as(&bench.socket, 65534).await, "the admin is served");
    // Any other unprivileged uid is closed unread.
    assert!(!hello_as(&bench.socket, 65533).await, "another uid is closed unread");
    bench.shutdown().await;
}

/// Says hello to the supervisor at `socket` from a process running as `uid`: true when it
/// answers with its own hello, false when it closes the connection unread.
async fn hello_as(socket: &Path, uid: u32) -> bool {
    let script = r#"
import json, socket, struct, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(10)
s.connect(sys.argv[1])
b = json.dumps({"type": "hello", "version": int(sys.argv[2])}).encode()
try:
    s.sendall(struct.pack('>I', len(b)) + b)
    n = s.recv(4)
except (ConnectionResetError, BrokenPipeError):
    n = b''
if len(n) < 4:
    print("closed"); sys.exit(0)
(size,) = struct.unpack('>I', n)
body = b''
while len(body) < size:
    body += s.recv(size - len(body))
print(body.decode())
"#;
    let out = tokio::process::Command::new("python3")
        .args(["-c", script, socket.to_str().unwrap(), &SUPERVISOR_PROTOCOL_VERSION.to_string()])
        .uid(uid)
        .gid(65534)
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    if stdout.trim() == "closed" {
        return false;
    }
    let reply: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("bad reply {stdout:?}: {e}"));
    assert_eq!(reply["Ok"]["type"], "hello", "{reply}");
    assert_eq!(reply["Ok"]["version"], SUPERVISOR_PROTOCOL_VERSION);
    true
}

/// A group with two users in it (as a supplementary group) and one user outside it, removed on
/// drop: the admins of a Mac, as `--admin-group admin` sees them.
struct Admins {
    group: String,
    gid: u32,
    users: Vec<(String, u32)>,
}

impl Admins {
    fn create() -> Admins {
        let tag = format!("{:06x}", rand::random::<u32>() & 0xff_ffff);
        let group = format!("htg-{tag}");
        run(&["groupadd", "--system", &group]);
        let gid = hearth_isolation::supervisor::group_gid(&group).expect("the group exists");
        let mut admins = Admins { group, gid, users: Vec::new() };
        for (i, in_group) in [(1, true), (2, true), (3, false)] {
            let name = format!("htu{i}-{tag}");
            let mut args = vec!["useradd", "--system", "--no-create-home", "--no-user-group", "--gid", "nogroup", "--shell", "/usr/sbin/nologin"];
            if in_group {
                args.extend(["--groups", admins.group.as_str()]);
            }
            args.push(&name);
            run(&args);
            let uid = hearth_isolation::supervisor::user_uid(&name).expect("the user exists");
            admins.users.push((name, uid));
        }
        admins
    }

    fn uid(&self, i: usize) -> u32 {
        self.users[i].1
    }
}

impl Drop for Admins {
    fn drop(&mut self) {
        for (name, _) in &self.users {
            let _ = std::process::Command::new("userdel").arg(name).status();
        }
        let _ = std::process::Command::new("groupdel").arg(&self.group).status();
    }
}

fn run(args: &[&str]) {
    let out = std::process::Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// The macOS LaunchDaemon's way (`--admin-group admin`, since its signed plist cannot name
/// anyone): the first member of the group to connect becomes the admin and stays it across
/// restarts; root, strangers and the group's other members get nothing, until root removes the
/// remembered uid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_supervisor_serves_the_first_admin_to_connect_and_only_them() {
    needs_root();
    let admins = Admins::create();
    let (first, second, outsider) = (admins.uid(0), admins.uid(1), admins.uid(2));
    let state = tempfile::tempdir().unwrap();
    let pin = state.path().join("Hearth").join("supervisor-admin");
    let admin = Admin::FirstOfGroup { gid: admins.gid, pin: pin.clone() };

    let bench = Bench::start(admin.clone()).await;
    let err = SupervisorClient::connect(&bench.socket).await.unwrap_err();
    assert!(matches!(err, ClientError::NotAdmitted { uid: 0, .. }), "root is never the admin: {err:?}");
    assert!(!hello_as(&bench.socket, outsider).await, "someone outside the group is closed unread");
    assert!(!pin.exists(), "nobody has claimed the supervisor yet");

    assert!(hello_as(&bench.socket, first).await, "the first of the group is served");
    let meta = std::fs::metadata(&pin).unwrap();
    assert_eq!((meta.uid(), meta.mode() & 0o777), (0, 0o644), "the remembered admin is root's to change");
    assert_eq!(std::fs::read_to_string(&pin).unwrap().trim(), first.to_string());
    assert!(!hello_as(&bench.socket, second).await, "a second admin is not served");
    assert!(hello_as(&bench.socket, first).await);
    bench.shutdown().await;

    // A restart (a reboot) remembers whom it serves.
    let bench = Bench::start(admin.clone()).await;
    assert!(!hello_as(&bench.socket, second).await);
    assert!(hello_as(&bench.socket, first).await);
    bench.shutdown().await;

    // Root removes the file: the next admin to connect claims it.
    std::fs::remove_file(&pin).unwrap();
    let bench = Bench::start(admin.clone()).await;
    assert!(hello_as(&bench.socket, second).await);
    assert_eq!(std::fs::read_to_string(&pin).unwrap().trim(), second.to_string());
    assert!(!hello_as(&bench.socket, first).await);
    bench.shutdown().await;

    // A remembered admin that has since left the group is not served either.
    run(&["gpasswd", "--delete", &admins.users[1].0, &admins.group]);
    let bench = Bench::start(admin).await;
    assert!(!hello_as(&bench.socket, second).await, "no longer an admin, no longer served");
    bench.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supervisor_speaks_hello_first_and_one_version() {
    let bench = Bench::start(Admin::Uid(0)).await;
    let ask_raw = async |requests: Vec<Value>| -> Vec<Result<SupervisorReply, SupervisorError>> {
        let mut s = tokio::net::UnixStream::connect(&bench.socket).await.unwrap();
        let mut out = Vec::new();
        for r in requests {
            if frame::write_frame(&mut s, &r).await.is_err() {
                break;
            }
            match frame::read_frame(&mut s).await {
                Ok(reply) => out.push(reply),
                Err(_) => break,
            }
        }
        out
    };
    let got = ask_raw(vec![json!({"type": "status"}), json!({"type": "status"})]).await;
    assert_eq!(got.len(), 1, "the connection is closed after the refusal");
    let e = got[0].clone().unwrap_err();
    assert_eq!(e.code, SupervisorErrorCode::InvalidInput);
    assert!(e.message.contains("hello"), "{}", e.message);

    let got = ask_raw(vec![json!({"type": "hello", "version": 999})]).await;
    let e = got[0].clone().unwrap_err();
    assert_eq!(e.code, SupervisorErrorCode::VersionMismatch);
    assert!(e.message.contains("same Hearth version"), "{}", e.message);

    let mut client = bench.client().await;
    let status = client.status().await.unwrap();
    assert_eq!((status.admin_uid, status.version), (0, SUPERVISOR_PROTOCOL_VERSION));
    assert!(status.workers.is_empty() && status.accounts.is_empty());
    bench.shutdown().await;
}

/// Spawn makes the account and a worker under it that reaches the gateway's socket with the
/// uid and pid the reply names; stop ends only the worker asked for; remove leaves no account
/// and hands the member's files to the data directory's owner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supervisor_spawns_stops_and_removes_a_member() {
    let mut bench = Bench::start(Admin::Uid(0)).await;
    let id = bench.new_id("life");
    let (gateway, listener) = bench.gateway_listener();
    let mut client = bench.client().await;
    assert!(accounts::find_account(&id).unwrap().is_none());

    // 1. A plain account-level worker.
    let spawned = client.spawn(bench.spawn_request(&id, &gateway, false)).await.unwrap();
    let account = accounts::find_account(&id).unwrap().expect("the supervisor created the account");
    assert_eq!((spawned.uid, spawned.gid), (account.uid, account.gid));
    assert_ne!(spawned.uid, 0);
    assert_eq!(spawned.level, IsolationLevel::Account);
    let conn = accept(&listener).await;
    let cred = conn.peer_cred().unwrap();
    assert_eq!((cred.uid(), cred.pid()), (account.uid, Some(spawned.pid as i32)), "the kernel agrees with the reply");
    let dir = bench.data.join("members").join(&id);
    let meta = std::fs::metadata(&dir).unwrap();
    assert_eq!((meta.uid(), meta.mode() & 0o777), (account.uid, 0o700));
    let members = std::fs::metadata(bench.data.join("members")).unwrap();
    assert_eq!((members.uid(), members.mode() & 0o777), (0, 0o711));

    let status = client.status().await.unwrap();
    assert_eq!(status.workers.len(), 1);
    assert_eq!((status.workers[0].member_id.as_str(), status.workers[0].pid), (id.as_str(), spawned.pid));
    assert_eq!(status.accounts[0].name, account.name);

    // Stop with another pid leaves it running; stop without one ends it.
    assert!(!client.stop(&id, Some(spawned.pid + 1)).await.unwrap());
    assert!(alive(spawned.pid));
    assert!(client.stop(&id, None).await.unwrap());
    assert!(!alive(spawned.pid), "stop replies once the worker is gone");
    drop(conn);
    assert!(client.status().await.unwrap().workers.is_empty());
    assert!(!client.stop(&id, None).await.unwrap(), "nothing left to stop");

    // 2. The same member in the sandbox, under the same account.
    let spawned = client.spawn(bench.spawn_request(&id, &gateway, true)).await.unwrap();
    assert_eq!(spawned.level, IsolationLevel::AccountSandbox);
    assert_eq!(spawned.uid, account.uid, "the account is verified and reused");
    let results = ask(
        accept(&listener).await,
        vec![
            json!({"as": "ids", "op": "ids"}),
            json!({"as": "tcp", "op": "socket", "domain": libc::AF_INET}),
            json!({"as": "note", "op": "create", "path": dir.join("note.txt").to_str().unwrap()}),
            json!({"as": "env", "op": "env"}),
        ],
    )
    .await;
    assert_eq!(result(&results, "ids")["value"]["uid"], account.uid);
    assert_eq!(result(&results, "tcp")["result"], "EPERM", "sandboxed: no network sockets");
    assert_eq!(result(&results, "note")["result"], "ok");
    // Its connection was made for it before exec; it is told a descriptor, never a path.
    assert_eq!(result(&results, "env")["value"]["HEARTH_WORKER_FD"], "3");
    assert!(result(&results, "env")["value"].get("HEARTH_GATEWAY_SOCKET").is_none());

    // 3. A running worker, then remove: it is stopped, the files archived, the account gone.
    let spawned = client.spawn(bench.spawn_request(&id, &gateway, false)).await.unwrap();
    let _conn = accept(&listener).await;
    assert!(alive(spawned.pid));
    let removal = client.remove(&id, &bench.data, "20260101T000000Z").await.unwrap();
    assert!(removal.account_removed);
    assert!(!alive(spawned.pid));
    assert!(accounts::find_account(&id).unwrap().is_none(), "the account is gone");
    let archived = removal.archived_to.expect("the directory was archived");
    assert_eq!(archived, bench.data.join("archive").join(format!("{id}-20260101T000000Z")));
    assert!(!dir.exists());
    for p in [archived.clone(), archived.join("note.txt"), bench.data.join("archive")] {
        assert_eq!(std::fs::metadata(&p).unwrap().uid(), 0, "{} belongs to the data directory's owner", p.display());
    }
    let status = client.status().await.unwrap();
    assert!(status.workers.is_empty() && status.accounts.is_empty(), "{status:?}");
    // Removing again finds nothing to do.
    let again = client.remove(&id, &bench.data, "20260101T000001Z").await.unwrap();
    assert_eq!((again.archived_to, again.account_removed), (None, false));
    bench.shutdown().await;
}

/// What the supervisor will not do, each with a reason a person can act on — checked before
/// any account is made, except what only the member's directory can tell.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supervisor_refuses_unsafe_binaries_directories_and_ids() {
    let mut bench = Bench::start(Admin::Uid(0)).await;
    let id = bench.new_id("ref");
    let (gateway, _listener) = bench.gateway_listener();
    let mut client = bench.client().await;
    let refused = async |client: &mut SupervisorClient, request: SpawnRequest| -> SupervisorError {
        match client.spawn(request).await {
            Err(ClientError::Supervisor(e)) => e,
            other => panic!("expected a refusal, got {other:?}"),
        }
    };

    // A binary anyone may write to.
    let loose = bench.root.path().join("bin").join("loose-probe");
    std::fs::copy(&bench.probe, &loose).unwrap();
    chmod(&loose, 0o757);
    let e =
        refused(&mut client, SpawnRequest { exe: loose.clone(), ..bench.spawn_request(&id, &gateway, false) }).await;
    assert_eq!(e.code, SupervisorErrorCode::Refused);
    assert!(e.message.contains("could be changed by someone other than root"), "{}", e.message);
    assert!(e.message.contains(loose.to_str().unwrap()), "{}", e.message);

    // A binary of another user's.
    chmod(&loose, 0o755);
    chown(&loose, 65534);
    let e =
        refused(&mut client, SpawnRequest { exe: loose.clone(), ..bench.spawn_request(&id, &gateway, false) }).await;
    assert!(e.message.contains("owner uid 65534"), "{}", e.message);

    // A root-owned binary in a directory others may write to.
    let open_dir = bench.root.path().join("open");
    std::fs::create_dir(&open_dir).unwrap();
    chmod(&open_dir, 0o777);
    let inside = open_dir.join("hearth-probe");
    std::fs::copy(&bench.probe, &inside).unwrap();
    chmod(&inside, 0o755);
    let e = refused(&mut client, SpawnRequest { exe: inside, ..bench.spawn_request(&id, &gateway, false) }).await;
    assert!(e.message.contains(&format!("lies in {}", open_dir.display())), "{}", e.message);

    // A data directory that is not the admin's (uid 0 here).
    let foreign = bench.root.path().join("foreign");
    std::fs::create_dir(&foreign).unwrap();
    chmod(&foreign, 0o711);
    chown(&foreign, 65534);
    let e =
        refused(&mut client, SpawnRequest { data_dir: foreign.clone(), ..bench.spawn_request(&id, &gateway, false) })
            .await;
    assert_eq!(e.code, SupervisorErrorCode::Refused);
    assert!(e.message.contains("belongs to uid 65534"), "{}", e.message);
    assert!(!foreign.join("members").exists(), "nothing was made in it");
    let e = match client.remove(&id, &foreign, "x").await {
        Err(ClientError::Supervisor(e)) => e,
        other => panic!("{other:?}"),
    };
    assert!(e.message.contains("belongs to uid 65534"), "{}", e.message);

    // One others may write to, and one behind a symbolic link.
    let shared = bench.root.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    chmod(&shared, 0o777);
    let e = refused(&mut client, SpawnRequest { data_dir: shared, ..bench.spawn_request(&id, &gateway, false) }).await;
    assert!(e.message.contains("can be written by other users"), "{}", e.message);
    let link = bench.root.path().join("link");
    std::os::unix::fs::symlink(&bench.data, &link).unwrap();
    let e = refused(&mut client, SpawnRequest { data_dir: link, ..bench.spawn_request(&id, &gateway, false) }).await;
    assert!(e.message.contains("symbolic link"), "{}", e.message);

    // Ids that could escape, and relative paths.
    for bad in ["../etc", "Root", "a/b", ""] {
        let e = refused(&mut client, bench.spawn_request(bad, &gateway, false)).await;
        assert_eq!(e.code, SupervisorErrorCode::InvalidInput, "{bad:?}");
    }
    let e =
        refused(&mut client, SpawnRequest { exe: "hearth".into(), ..bench.spawn_request(&id, &gateway, false) }).await;
    assert_eq!(e.code, SupervisorErrorCode::InvalidInput);
    assert!(accounts::find_account(&id).unwrap().is_none(), "every refusal so far came before the account");

    // `members` swapped for a link to somewhere else is refused, not followed (this check comes
    // with the directory, after the account is made).
    let elsewhere = bench.root.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let before = std::fs::metadata(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, bench.data.join("members")).unwrap();
    let e = refused(&mut client, bench.spawn_request(&id, &gateway, false)).await;
    assert_eq!(e.code, SupervisorErrorCode::Failed);
    assert!(e.message.contains("symbolic link"), "{}", e.message);
    let after = std::fs::metadata(&elsewhere).unwrap();
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0, "nothing was made behind the link");
    assert_eq!((after.uid(), after.mode()), (before.uid(), before.mode()), "its target was left alone");
    assert!(client.status().await.unwrap().workers.is_empty());
    bench.shutdown().await;
}
