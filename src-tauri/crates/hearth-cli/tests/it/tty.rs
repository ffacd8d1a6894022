//! A worker cannot type into the terminal of whoever started Hearth (issue 13, confirmed
//! escalation 1). `sudo hearth supervisor --admin-user "$USER"` runs, as the README shows, in
//! a terminal: an interactive shell in a pseudo-terminal whose foreground job is the
//! supervisor. A hostile worker then tries `ioctl(TIOCSTI)` — pushing `touch /tmp/pwned-…` into
//! the terminal's input, which the shell would run as root once the supervisor exits — and
//! `TIOCLINUX` on every descriptor it has, opens `/dev/tty`, and writes an escape sequence to
//! stderr. Nothing may reach the shell, every attempt must fail, and its stderr must arrive in
//! the supervisor's log tagged with the member and with the escape shown, not interpreted.
//!
//! The hostile worker is a Python script (as in `isolation.rs`): `hearth-probe` lives in
//! hearth-testkit, whose tests cannot run this crate's `hearth`. It reports over the worker's
//! connection, whichever way the spawner hands it one. Needs root (CI runs as root).

use std::ffi::CStr;
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;

use crate::support::HEARTH;

const T: Duration = Duration::from_secs(30);

fn assert_root() {
    assert!(nix::unistd::geteuid().is_root(), "this test needs root (it runs `hearth supervisor`); CI runs as root");
}

/// An interactive `/bin/sh` in a fresh pseudo-terminal: the shell leads its own session and the
/// terminal is its controlling terminal, as in a terminal window. Everything the terminal shows
/// is kept in `transcript`.
struct Terminal {
    master: std::fs::File,
    shell: std::process::Child,
    transcript: Arc<(Mutex<Vec<u8>>, Condvar)>,
}

impl Terminal {
    fn open(home: &Path) -> Terminal {
        // SAFETY: plain libc calls; every result is checked and each descriptor owned once.
        let (master, slave) = unsafe {
            let m = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
            assert!(m >= 0, "posix_openpt: {}", std::io::Error::last_os_error());
            let master = OwnedFd::from_raw_fd(m);
            assert_eq!(libc::grantpt(m), 0);
            assert_eq!(libc::unlockpt(m), 0);
            let mut name = [0 as libc::c_char; 128];
            assert_eq!(libc::ptsname_r(m, name.as_mut_ptr(), name.len()), 0);
            let s = libc::open(CStr::from_ptr(name.as_ptr()).as_ptr(), libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
            assert!(s >= 0, "open the terminal: {}", std::io::Error::last_os_error());
            (std::fs::File::from(master), OwnedFd::from_raw_fd(s))
        };
        let mut cmd = std::process::Command::new("/bin/sh");
        cmd.arg("-i")
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("HOME", home)
            .env("PS1", "# ")
            .env("TERM", "dumb")
            .env("RUST_LOG", "info")
            .current_dir(home)
            .stdin(Stdio::from(slave.try_clone().unwrap()))
            .stdout(Stdio::from(slave.try_clone().unwrap()))
            .stderr(Stdio::from(slave));
        // SAFETY: setsid and ioctl are async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let shell = cmd.spawn().expect("start /bin/sh in the terminal");
        drop(cmd);
        let transcript = Arc::new((Mutex::new(Vec::new()), Condvar::new()));
        let (mut reader, seen) = (master.try_clone().unwrap(), transcript.clone());
        // Ends by itself: reading fails (EIO) once nothing holds the terminal open any more.
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = reader.read(&mut buf) {
                seen.0.lock().unwrap().extend_from_slice(&buf[..n]);
                seen.1.notify_all();
            }
        });
        Terminal { master, shell, transcript }
    }

    fn type_line(&mut self, line: &str) {
        self.master.write_all(format!("{line}\n").as_bytes()).unwrap();
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.transcript.0.lock().unwrap()).into_owned()
    }

    /// Waits until the terminal has shown `needle`.
    fn wait_for(&self, needle: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        let (lock, cvar) = &*self.transcript;
        let mut seen = lock.lock().unwrap();
        while !String::from_utf8_lossy(&seen).contains(needle) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "the terminal never showed {needle:?}; it shows:\n{}",
                String::from_utf8_lossy(&seen)
            );
            seen = cvar.wait_timeout(seen, left).unwrap().0;
        }
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = self.shell.kill();
        let _ = self.shell.wait();
    }
}

/// The children of `parent` whose command line contains `needle`.
fn children_with(parent: u32, needle: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        // The fields after the command name, which is in parentheses and may hold spaces.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else { continue };
        let ppid: Option<u32> = rest.split_whitespace().nth(1).and_then(|p| p.parse().ok());
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if ppid == Some(parent) && String::from_utf8_lossy(&cmdline).contains(needle) {
            out.push(pid);
        }
    }
    out
}

/// A uid in 61000–64999 (above what useradd hands out) with no account and no group.
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

/// Removes the member accounts the supervisor made, whatever happens.
struct Accounts(Vec<String>);

impl Drop for Accounts {
    fn drop(&mut self) {
        for id in &self.0 {
            if let Ok(Some(a)) = hearth_isolation::accounts::find_account(id) {
                for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
                    let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
                    if std::os::unix::fs::MetadataExt::uid(&entry.metadata().unwrap()) == a.uid {
                        // SAFETY: signalling a test process by id.
                        unsafe { libc::kill(pid, libc::SIGKILL) };
                    }
                }
            }
            for _ in 0..50 {
                if hearth_isolation::accounts::remove_account(id).is_ok() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// The hostile worker. `sys.argv[1]` names the file it tries to make root create.
const HOSTILE: &str = r#"
import errno, fcntl, json, os, socket, sys, termios
target = sys.argv[1]
res = {}
def err(e): return errno.errorcode.get(e.errno, str(e.errno))
for fd in range(0, 1024):
    try:
        os.fstat(fd)
    except OSError:
        continue
    try:
        for ch in ("touch /tmp/" + target + "\n").encode():
            fcntl.ioctl(fd, termios.TIOCSTI, bytes([ch]))
        res["TIOCSTI %d" % fd] = "ok"
    except OSError as e:
        res["TIOCSTI %d" % fd] = err(e)
    try:
        fcntl.ioctl(fd, 0x541C, bytes([3]))  # TIOCLINUX, TIOCL_PASTESEL
        res["TIOCLINUX %d" % fd] = "ok"
    except OSError as e:
        res["TIOCLINUX %d" % fd] = err(e)
try:
    os.close(os.open("/dev/tty", os.O_RDWR))
    res["/dev/tty"] = "ok"
except OSError as e:
    res["/dev/tty"] = err(e)
sys.stderr.write("hostile worker: \x1b[31mRED-" + target.upper() + "\x1b[0m\n")
sys.stderr.flush()
if os.environ.get("HEARTH_WORKER_FD"):
    s = socket.socket(fileno=int(os.environ["HEARTH_WORKER_FD"]))
else:
    s = socket.socket(socket.AF_UNIX)
    s.connect(os.environ["HEARTH_GATEWAY_SOCKET"])
s.sendall((json.dumps(res) + "\n").encode())
"#;

/// Asks the supervisor, as the admin's uid, to start one worker; returns its reply.
async fn spawn_as_admin(socket: &Path, uid: u32, request: Value) -> Value {
    let script = r#"
import json, socket, struct, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(30)
s.connect(sys.argv[1])
def send(o):
    b = json.dumps(o).encode()
    s.sendall(struct.pack('>I', len(b)) + b)
def recv():
    n = b''
    while len(n) < 4:
        c = s.recv(4 - len(n))
        if not c: raise SystemExit("the supervisor closed the connection")
        n += c
    (size,) = struct.unpack('>I', n)
    b = b''
    while len(b) < size:
        b += s.recv(size - len(b))
    return json.loads(b)
send({"type": "hello", "version": int(sys.argv[2])})
recv()
send(json.loads(sys.argv[3]))
print(json.dumps(recv()))
"#;
    let out = tokio::process::Command::new("python3")
        .args(["-c", script, socket.to_str().unwrap()])
        .arg(hearth_proto::supervisor::SUPERVISOR_PROTOCOL_VERSION.to_string())
        .arg(request.to_string())
        .uid(uid)
        .gid(uid)
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The supervisor in a terminal, as the README runs it, starts a hostile worker at level
/// "account" and at "account + sandbox". On the code before issue 13 the first worker typed
/// `touch /tmp/pwned-…` into the shell, which ran it as root once the supervisor stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_cannot_type_into_the_terminal_of_the_supervisor() {
    assert_root();
    let root = tempfile::tempdir().unwrap();
    std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    let admin = free_high_id();
    let data = root.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o711)).unwrap();
    std::os::unix::fs::chown(&data, Some(admin), Some(admin)).unwrap();
    let socket = root.path().join("run").join("supervisor.sock");
    // The "gateway": a socket any member account may connect to.
    let gw_dir = root.path().join("gw");
    std::fs::create_dir(&gw_dir).unwrap();
    std::fs::set_permissions(&gw_dir, std::fs::Permissions::from_mode(0o711)).unwrap();
    let gateway = gw_dir.join("gateway.sock");
    let listener = tokio::net::UnixListener::bind(&gateway).unwrap();
    std::fs::set_permissions(&gateway, std::fs::Permissions::from_mode(0o666)).unwrap();

    let mut term = Terminal::open(root.path());
    term.type_line("echo READY-$((40+2))");
    term.wait_for("READY-42", T);
    term.type_line(&format!("{HEARTH} supervisor --admin-uid {admin} --socket {}", socket.display()));
    term.wait_for("Press Ctrl-C to stop", T);
    let deadline = Instant::now() + T;
    while std::os::unix::net::UnixStream::connect(&socket).is_err() {
        assert!(Instant::now() < deadline, "the supervisor does not listen:\n{}", term.text());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let supervisor = children_with(term.shell.id(), "supervisor");
    assert_eq!(supervisor.len(), 1, "the shell's foreground job: {supervisor:?}");

    let mut accounts = Accounts(Vec::new());
    let mut targets = Vec::new();
    for sandbox in [false, true] {
        let id = format!("tty{}-{:06x}", u8::from(sandbox), rand::random::<u32>() & 0xff_ffff);
        accounts.0.push(id.clone());
        let target = format!("pwned-{id}");
        let _ = std::fs::remove_file(Path::new("/tmp").join(&target));
        targets.push(target.clone());
        let request = json!({
            "type": "spawn",
            "member_id": id,
            "data_dir": data,
            "exe": "/usr/bin/python3",
            "args": ["-c", HOSTILE, target],
            "sandbox": sandbox,
            "gateway_socket": gateway,
        });
        let reply = spawn_as_admin(&socket, admin, request).await;
        assert_eq!(reply["Ok"]["type"], "spawned", "{reply}\n{}", term.text());
        let (conn, _) = tokio::time::timeout(T, listener.accept()).await.expect("the worker connects").unwrap();
        let mut line = String::new();
        tokio::time::timeout(T, tokio::io::BufReader::new(conn).read_line(&mut line))
            .await
            .expect("the worker reports")
            .unwrap();
        let results: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
        let results = results.as_object().unwrap();
        assert!(results.contains_key("TIOCSTI 2"), "{results:?}");
        for (attempt, outcome) in results {
            assert_ne!(outcome, "ok", "{attempt} succeeded (sandbox: {sandbox}): {results:?}");
            if sandbox && attempt.starts_with("TIOC") {
                // The sandbox refuses them outright, whatever the descriptor is.
                assert_eq!(outcome, "EPERM", "{attempt} (sandbox): {results:?}");
            }
        }
        // No controlling terminal: the worker leads a session of its own.
        assert_ne!(results["/dev/tty"], "ok");
        // Its stderr reaches the supervisor's log tagged with the member, the escape shown.
        let shown = format!("\\x1b[31mRED-{}\\x1b[0m", target.to_uppercase());
        term.wait_for(&shown, T);
        let text = term.text();
        let line = text.lines().find(|l| l.contains(&shown)).unwrap();
        assert!(line.contains(&id), "the line is not tagged with the member: {line:?}");
        assert!(!text.contains(&format!("\x1b[31mRED-{}", target.to_uppercase())), "a raw escape reached the terminal");
    }

    // The supervisor stops; the shell reads whatever is waiting in the terminal's input.
    // SAFETY: signalling the supervisor this test started.
    unsafe { libc::kill(supervisor[0] as i32, libc::SIGTERM) };
    term.wait_for("supervisor stopped", T);
    term.type_line("echo DONE-$((6*7))");
    term.wait_for("DONE-42", T);
    let text = term.text();
    for target in &targets {
        let planted = PathBuf::from("/tmp").join(target);
        let exists = planted.exists();
        let _ = std::fs::remove_file(&planted);
        assert!(!exists, "the worker made root's shell run `touch {}`", planted.display());
        assert!(!text.contains(&format!("touch /tmp/{target}")), "the worker typed into the terminal:\n{text}");
    }
}

/// The gateway's own start path (`hearth serve` as root, no supervisor): its workers lead their
/// own sessions with no terminal, stdin and stdout `/dev/null`, stderr a pipe, the connection
/// on fd 3 — the kernel's word, read from `/proc` — and `hearth doctor` says what is in force
/// and finds nothing wrong with them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_starts_its_workers_without_its_terminal() {
    use hearth_proto::control::{ControlReply, ControlRequest, Severity};
    assert_root();
    let h = crate::support::Household::with(1, |c| c.isolation = hearth_gateway::IsolationChoice::AccountSandbox).await;
    let _accounts = Accounts(h.members.iter().map(|m| m.id.clone()).collect());
    h.say(0, "hello");
    assert_eq!(h.replies(0, 2, T).await[1].text, "You said: hello");
    let pid = h.status().await.members[0].worker_pid.expect("the worker runs");
    let facts = hearth_isolation::spawn::inspect(pid).unwrap();
    assert!(facts.session_leader && !facts.controlling_terminal, "{facts:?}");
    assert!(facts.seccomp_filter && facts.no_new_privs, "{facts:?}");
    assert_eq!(facts.address_space, Some(hearth_isolation::spawn::LIMIT_AS));
    let fd = |n: u32| std::fs::read_link(format!("/proc/{pid}/fd/{n}")).unwrap().display().to_string();
    assert_eq!((fd(0), fd(1)), ("/dev/null".to_owned(), "/dev/null".to_owned()));
    assert!(fd(2).starts_with("pipe:"), "{}", fd(2));
    assert!(fd(3).starts_with("socket:"), "{}", fd(3));

    let ControlReply::Doctor(report) = h.gateway.control(ControlRequest::Doctor).await.unwrap() else { panic!() };
    let said =
        report.findings.iter().find(|f| f.what.starts_with("What protects each worker")).expect("doctor says it");
    for needed in ["no controlling terminal", "fd 3", "seccomp", "TIOCSTI", "address space"] {
        assert!(said.what.contains(needed), "{needed}: {}", said.what);
    }
    let bad: Vec<_> = report.members[0].findings.iter().filter(|f| f.severity > Severity::Info).collect();
    assert!(bad.is_empty(), "{bad:?}");
    h.stop().await;
}
