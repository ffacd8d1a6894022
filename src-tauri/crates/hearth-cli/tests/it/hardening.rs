//! Hearth's own footing (issue #13): the data folder and every folder above it are checked
//! before anything is kept there; a command checks who serves the control socket before it
//! sends a key; and `hearth doctor` finds — and as root removes — member accounts this household
//! left behind, never another household's. As root (CI runs as root): the cases need folders,
//! sockets and accounts of other uids.

use std::collections::BTreeSet;
use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use hearth_isolation::accounts;
use serde_json::Value;
use tokio::io::AsyncWriteExt as _;

use crate::supervisor::assert_root;
use crate::support::HEARTH;

/// Longest any one `hearth` command may take.
const LIMIT: Duration = Duration::from_secs(60);

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn chown(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid)).unwrap();
}

/// A uid (and gid) in 61000–64999 with no account and no group: "another login".
fn stranger() -> u32 {
    loop {
        let id = 61_000 + rand::random::<u32>() % 4_000;
        let none = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(id)).unwrap().is_none()
            && nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(id)).unwrap().is_none();
        if none {
            return id;
        }
    }
}

/// A throw-away folder, passable by everyone (the uids under test must reach what is inside).
fn scratch() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    chmod(tmp.path(), 0o711);
    tmp
}

#[derive(Debug)]
struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// `hearth ARGS` with a clean environment, as `uid` (root when `None`), bounded in time.
async fn hearth(data: &Path, uid: Option<u32>, args: &[&str], stdin: Option<&str>) -> Ran {
    let mut cmd = tokio::process::Command::new(HEARTH);
    cmd.args(args)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("HEARTH_DATA_DIR", data)
        .env("HEARTH_ISOLATION", "process")
        .env("HEARTH_TELEGRAM_API_URL", "http://127.0.0.1:9")
        .env("COLUMNS", "200")
        .current_dir("/")
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(uid) = uid {
        cmd.uid(uid).gid(uid);
    }
    let mut child = cmd.spawn().expect("spawn hearth");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        // A command that refuses early never reads it.
        let _ = pipe.write_all(input.as_bytes()).await;
    }
    let out = tokio::time::timeout(LIMIT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("`hearth {}` did not finish in {LIMIT:?}", args.join(" ")))
        .unwrap();
    Ran {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `hearth serve` as root on a folder it must refuse: exit code 12 and the message; nothing was
/// written in the folder (no log, no lock).
async fn refused(data: &Path) -> String {
    let before = listing(data);
    let ran = hearth(data, None, &["serve"], None).await;
    assert_eq!(ran.code, Some(12), "`hearth serve` must refuse {}: {ran:#?}", data.display());
    assert_eq!(listing(data), before, "nothing is written in a refused folder");
    ran.stderr
}

fn listing(dir: &Path) -> Vec<PathBuf> {
    let mut names: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(d) => d.map(|e| e.unwrap().path()).collect(),
        Err(_) => Vec::new(),
    };
    names.sort();
    names
}

/// Gives `path` a POSIX access ACL that lets `uid` read, write and search — what `setfacl -m
/// u:<uid>:rwx` does (the `acl` tools are not installed in CI).
fn grant_acl(path: &Path, uid: u32) {
    // Header (version 2), then (tag, perm, id): USER_OBJ rwx, USER uid rwx, GROUP_OBJ ---,
    // MASK rwx, OTHER ---.
    let mut xattr = 2u32.to_le_bytes().to_vec();
    for (tag, perm, id) in
        [(0x01u16, 7u16, u32::MAX), (0x02, 7, uid), (0x04, 0, u32::MAX), (0x10, 7, u32::MAX), (0x20, 0, u32::MAX)]
    {
        xattr.extend(tag.to_le_bytes());
        xattr.extend(perm.to_le_bytes());
        xattr.extend(id.to_le_bytes());
    }
    let c = CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid path, attribute name and buffer.
    let r = unsafe {
        libc::setxattr(c.as_ptr(), c"system.posix_acl_access".as_ptr(), xattr.as_ptr().cast(), xattr.len(), 0)
    };
    assert_eq!(r, 0, "setting an ACL on {}: {}", path.display(), std::io::Error::last_os_error());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_folder_another_login_made_is_refused_with_the_fix() {
    assert_root();
    let tmp = scratch();
    let other = stranger();
    // As on a Mac's /Users/Shared: another login made "Hearth" first (and could have given itself
    // an ACL); Hearth, run by someone else, must not move in.
    let data = tmp.path().join("Hearth");
    std::fs::create_dir(&data).unwrap();
    chmod(&data, 0o755);
    chown(&data, other, other);
    let err = refused(&data).await;
    let d = data.display();
    assert!(
        err.contains(&format!("the data folder {d} is owned by uid {other}, not by you (uid 0 (root))"))
            && err.contains("another login created it")
            && err.contains(&format!("Move it aside (`sudo mv {d} {d}.suspect`) and start Hearth again")),
        "{err}"
    );

    // The same folder made by the other login *while* Hearth makes it: whoever wins, Hearth never
    // keeps a folder of theirs. (Their `mkdir` runs in a child with their uid, spinning on each
    // name until the name exists.)
    // In a folder every login may write to, with the sticky bit, like /Users/Shared or /tmp.
    let everyones = tmp.path().join("shared");
    std::fs::create_dir(&everyones).unwrap();
    chmod(&everyones, 0o1777);
    let names: Vec<PathBuf> = (0..50).map(|i| everyones.join(format!("Hearth-{i}"))).collect();
    let racer = MkdirRacer::start(other, &names);
    let (mut ours, mut theirs) = (0, 0);
    for (i, name) in names.iter().enumerate() {
        racer.go();
        // The other half of the sweep: early names give the other login a head start.
        for _ in 0..(names.len() - i) * 40 {
            nix::unistd::getppid();
        }
        match hearth_gateway::data_dir::prepare(name, Some(0o700)) {
            Ok(real) => {
                let meta = std::fs::metadata(&real).unwrap();
                assert_eq!((meta.uid(), meta.mode() & 0o777), (0, 0o700), "{} was accepted", real.display());
                ours += 1;
            }
            Err(e) => {
                assert_eq!(std::fs::metadata(name).unwrap().uid(), other, "{e}");
                assert!(e.to_string().contains(&format!("is owned by uid {other}")), "{e}");
                theirs += 1;
            }
        }
    }
    racer.finish();
    assert_eq!(ours + theirs, names.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_folders_others_could_change_are_refused_with_the_fix() {
    assert_root();
    let tmp = scratch();
    let other = stranger();

    // Group-writable, for a group that is not root's own.
    let shared = tmp.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    chown(&shared, 0, other);
    chmod(&shared, 0o770);
    let err = refused(&shared).await;
    assert!(
        err.contains(&format!("{} can be changed by the group gid {other} (mode 0770)", shared.display()))
            && err.contains(&format!("chmod go-w {}", shared.display())),
        "{err}"
    );

    // An ACL that lets another user in, which the mode bits (0770: the mask) do not name.
    let acl = tmp.path().join("acl");
    std::fs::create_dir(&acl).unwrap();
    chmod(&acl, 0o700);
    grant_acl(&acl, other);
    let err = refused(&acl).await;
    assert!(
        err.contains(&format!("{} carries an access control list (ACL)", acl.display()))
            && err.contains(&format!("setfacl -b {}", acl.display())),
        "{err}"
    );

    // Above the folder: an ACL that lets another user change the folder's parent…
    let parent = tmp.path().join("acl-parent");
    std::fs::create_dir(&parent).unwrap();
    grant_acl(&parent, other);
    let inner = parent.join("hearth");
    std::fs::create_dir(&inner).unwrap();
    let err = refused(&inner).await;
    assert!(
        err.contains(&format!(
            "{}, above the data folder {}, carries an access control list",
            parent.display(),
            inner.display()
        )),
        "{err}"
    );
    // …a parent another user owns…
    let theirs = tmp.path().join("theirs");
    std::fs::create_dir(&theirs).unwrap();
    chown(&theirs, other, other);
    let inner = theirs.join("hearth");
    std::fs::create_dir(&inner).unwrap();
    let err = refused(&inner).await;
    assert!(
        err.contains(&format!(
            "{}, above the data folder {}, is owned by uid {other}",
            theirs.display(),
            inner.display()
        )),
        "{err}"
    );
    // …and a world-writable one without the sticky bit.
    let open = tmp.path().join("open");
    std::fs::create_dir(&open).unwrap();
    chmod(&open, 0o777);
    let inner = open.join("hearth");
    std::fs::create_dir(&inner).unwrap();
    let err = refused(&inner).await;
    assert!(
        err.contains("can be changed by other users (mode 0777)")
            && err.contains(&format!("chmod go-w {}", open.display())),
        "{err}"
    );

    // Reached through a link another user owns (and could re-point).
    let real = tmp.path().join("real");
    std::fs::create_dir(&real).unwrap();
    chmod(&real, 0o700);
    let link = tmp.path().join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    chown(&link, other, other);
    let err = refused(&link).await;
    assert!(
        err.contains(&format!("{}, on the way to the data folder", link.display()))
            && err.contains(&format!("symbolic link owned by uid {other}")),
        "{err}"
    );
    // Root's own link to the same folder is fine: the folder is checked, and served.
    chown(&link, 0, 0);
    assert_eq!(hearth_gateway::data_dir::prepare(&link, None).unwrap(), real);

    // Inside a good folder, a `run/` someone else made is refused by the gateway itself.
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    chmod(&data, 0o700);
    std::fs::create_dir(data.join("run")).unwrap();
    chown(&data.join("run"), other, other);
    let ran = hearth(&data, None, &["serve"], None).await;
    assert_eq!(ran.code, Some(12), "{ran:#?}");
    let run = data.join("run");
    assert!(
        ran.stderr.contains(&format!("{} in Hearth's data folder is owned by uid {other}", run.display())),
        "{ran:#?}"
    );
}

/// A child process with another uid that `mkdir`s each name in turn once it is told to — as the
/// parent starts making the same folder — after a pause that grows with each name, so the
/// attempts sweep across the parent's look-then-`mkdir`. Everything it needs is prepared before
/// `fork`.
struct MkdirRacer {
    pid: nix::unistd::Pid,
    go: OwnedFd,
}

impl MkdirRacer {
    fn start(uid: u32, names: &[PathBuf]) -> MkdirRacer {
        let paths: Vec<CString> = names.iter().map(|p| CString::new(p.as_os_str().as_bytes()).unwrap()).collect();
        let ptrs: Vec<*const libc::c_char> = paths.iter().map(|p| p.as_ptr()).collect();
        let (go_r, go_w) = nix::unistd::pipe().unwrap();
        // Polled, not waited on: the child must start its attempt the moment it is told.
        nix::fcntl::fcntl(&go_r, nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK)).unwrap();
        let r = go_r.as_raw_fd();
        // SAFETY: the child makes only system calls (no allocation, no lock) and leaves with
        // `_exit`; `ptrs` points into `paths`, alive in both processes.
        match unsafe { nix::unistd::fork() }.unwrap() {
            nix::unistd::ForkResult::Child => unsafe {
                if libc::setgroups(0, std::ptr::null()) != 0
                    || libc::setresgid(uid, uid, uid) != 0
                    || libc::setresuid(uid, uid, uid) != 0
                {
                    libc::_exit(1);
                }
                libc::alarm(60);
                let mut byte = 0u8;
                for (i, &p) in ptrs.iter().enumerate() {
                    while libc::read(r, (&raw mut byte).cast(), 1) != 1 {}
                    for _ in 0..i * 40 {
                        libc::getppid();
                    }
                    libc::mkdir(p, 0o755);
                }
                libc::_exit(0);
            },
            nix::unistd::ForkResult::Parent { child } => MkdirRacer { pid: child, go: go_w },
        }
    }

    /// Lets the child make the next name.
    fn go(&self) {
        assert_eq!(nix::unistd::write(&self.go, b"g").unwrap(), 1);
    }

    fn finish(self) {
        let status = nix::sys::wait::waitpid(self.pid, None).unwrap();
        assert_eq!(status, nix::sys::wait::WaitStatus::Exited(self.pid, 0), "the racing mkdir child failed");
    }
}

/// A listener on a Unix socket, bound by a child process running as `uid`, that accepts one
/// connection and reports how many bytes arrived on it before the peer closed or 64 KiB came.
struct Impostor {
    pid: nix::unistd::Pid,
    report: OwnedFd,
    socket: PathBuf,
}

impl Impostor {
    /// Binds `<dir>/control.sock` (`dir` must be writable by `uid`).
    fn listen(uid: u32, dir: &Path) -> Impostor {
        let socket = dir.join("control.sock");
        // SAFETY: zeroed sockaddr_un, filled with a path shorter than sun_path.
        let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
        addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
        let bytes = socket.as_os_str().as_bytes();
        assert!(bytes.len() < addr.sun_path.len(), "socket path too long: {}", socket.display());
        for (d, s) in addr.sun_path.iter_mut().zip(bytes) {
            *d = *s as libc::c_char;
        }
        let (report_r, report_w) = nix::unistd::pipe().unwrap();
        let w = report_w.as_raw_fd();
        // SAFETY: the child makes only system calls on prepared data and leaves with `_exit`.
        match unsafe { nix::unistd::fork() }.unwrap() {
            nix::unistd::ForkResult::Child => unsafe {
                let mut buf = [0u8; 65536];
                if libc::setgroups(0, std::ptr::null()) != 0
                    || libc::setresgid(uid, uid, uid) != 0
                    || libc::setresuid(uid, uid, uid) != 0
                {
                    libc::_exit(1);
                }
                libc::alarm(60);
                let fd = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0);
                let len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
                if fd < 0 || libc::bind(fd, (&raw const addr).cast(), len) != 0 || libc::listen(fd, 4) != 0 {
                    libc::_exit(2);
                }
                libc::chmod(addr.sun_path.as_ptr(), 0o666);
                let ready: i64 = -1;
                libc::write(w, (&raw const ready).cast(), 8);
                let c = libc::accept(fd, std::ptr::null_mut(), std::ptr::null_mut());
                // One read: 0 when the peer closed without sending. A sender waits for a reply
                // that never comes; exiting closes the connection and it gives up.
                let got: i64 = if c < 0 { 0 } else { libc::read(c, buf.as_mut_ptr().cast(), buf.len()).max(0) as i64 };
                libc::write(w, (&raw const got).cast(), 8);
                libc::_exit(0);
            },
            nix::unistd::ForkResult::Parent { child } => {
                drop(report_w);
                let mut imp = Impostor { pid: child, report: report_r, socket };
                assert_eq!(imp.read_report(Duration::from_secs(30)), Some(-1), "the listener did not start");
                imp
            }
        }
    }

    fn read_report(&mut self, within: Duration) -> Option<i64> {
        let mut pfd = libc::pollfd { fd: self.report.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut pfd, 1, within.as_millis() as libc::c_int) } <= 0 {
            return None;
        }
        let mut v = [0u8; 8];
        let n = nix::unistd::read(&self.report, &mut v).unwrap();
        (n == 8).then(|| i64::from_ne_bytes(v))
    }

    /// How many bytes the one connection brought; 0 when none came (or none was made).
    fn received(mut self) -> i64 {
        let got = self.read_report(Duration::from_secs(10));
        let _ = nix::sys::signal::kill(self.pid, nix::sys::signal::Signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(self.pid, None);
        got.unwrap_or(0)
    }
}

/// A data folder owned by `owner` with its `run/`, and an impostor listening as `listener` whose
/// socket is moved to `run/control.sock` and then owned by `socket_owner`.
fn staged(tmp: &Path, name: &str, owner: u32, listener: u32, socket_owner: u32) -> (PathBuf, Impostor) {
    let data = tmp.join(name);
    std::fs::create_dir_all(data.join("run")).unwrap();
    for d in [&data, &data.join("run")] {
        chmod(d, 0o700);
        chown(d, owner, owner);
    }
    let lair = tmp.join(format!("{name}-lair"));
    std::fs::create_dir(&lair).unwrap();
    chown(&lair, listener, listener);
    let imp = Impostor::listen(listener, &lair);
    let at = data.join("run/control.sock");
    std::fs::rename(&imp.socket, &at).unwrap();
    chown(&at, socket_owner, socket_owner);
    (data, imp)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_key_goes_to_a_control_socket_someone_else_serves() {
    assert_root();
    let tmp = scratch();
    let (admin, other) = (stranger(), stranger());
    assert_ne!(admin, other);
    let set = ["provider", "set", "--kind", "openai", "--base-url", "http://127.0.0.1:9/v1", "--model", "m"];
    let key = Some("sk-MUST-NOT-LEAK\n");

    // Another uid listens where the admin's gateway should, behind a socket file that even looks
    // like the admin's: the kernel's word on the peer decides, and nothing is sent.
    let (data, imp) = staged(tmp.path(), "impostor", admin, other, admin);
    let ran = hearth(&data, Some(admin), &set, key).await;
    assert_eq!(ran.code, Some(12), "{ran:#?}");
    assert!(
        ran.stderr.contains(&format!("is served by uid {other}, not by you (uid {admin}) or root"))
            && ran.stderr.contains("Nothing was sent"),
        "{ran:#?}"
    );
    assert_eq!(imp.received(), 0, "the impostor received bytes");

    // Root (`sudo hearth …`) may talk to the folder owner's gateway, but not to another uid's.
    let (data, imp) = staged(tmp.path(), "impostor-root", admin, other, admin);
    let ran = hearth(&data, None, &set, key).await;
    assert_eq!(ran.code, Some(12), "{ran:#?}");
    assert!(ran.stderr.contains(&format!("root or the data folder's owner (uid {admin})")), "{ran:#?}");
    assert_eq!(imp.received(), 0, "the impostor received bytes from root");

    // The right uid behind a `run/` anyone may change (someone may have swapped the socket).
    let (data, imp) = staged(tmp.path(), "loose", admin, admin, admin);
    chmod(&data.join("run"), 0o777);
    let ran = hearth(&data, Some(admin), &set, key).await;
    assert_eq!(ran.code, Some(12), "{ran:#?}");
    assert!(ran.stderr.contains("is not a folder only its owner may change (mode 0777)"), "{ran:#?}");
    assert_eq!(imp.received(), 0, "bytes went through a loosened run/");

    // The check is what stops it: the same listener run as the admin does receive the request
    // (and, answering nothing, makes the command fail).
    for who in [Some(admin), None] {
        let (data, imp) = staged(tmp.path(), &format!("genuine-{}", who.is_some()), admin, admin, admin);
        let ran = hearth(&data, who, &set, key).await;
        assert_ne!(ran.code, Some(0), "{ran:#?}");
        assert!(imp.received() > 0, "the admin's own listener got nothing from {who:?}: {ran:#?}");
    }
}

/// Member accounts made by the test, removed at the end whatever happens (their processes
/// killed first).
struct Accounts(Vec<String>);

impl Drop for Accounts {
    fn drop(&mut self) {
        for id in &self.0 {
            if let Ok(Some(a)) = accounts::find_account(id) {
                crate::supervisor::kill_processes_of(a.uid);
                let _ = accounts::remove_account(id);
            }
        }
    }
}

fn test_id(tag: &str) -> String {
    let alphabet = b"abcdefghjkmnpqrstuvwxyz23456789";
    let suffix: String = (0..6).map(|_| alphabet[rand::random_range(0..alphabet.len())] as char).collect();
    format!("{tag}-{suffix}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_finds_this_households_left_over_accounts_and_fix_orphans_removes_them() {
    assert_root();
    let tmp = scratch();
    let data = tmp.path().join("data");
    let _serve = Serve::start(&data).await;
    let household = std::fs::canonicalize(&data).unwrap();
    let other_household = tmp.path().join("other");
    std::fs::create_dir(&other_household).unwrap();
    std::fs::write(other_household.join("gateway.sqlite"), b"").unwrap();

    let ids = ["former", "gone", "other", "folder", "busy", "legacy"].map(test_id);
    let _cleanup = Accounts(ids.to_vec());
    let [former, gone, other, folder, busy, legacy] = &ids;
    let make = |id: &str, home: &Path| accounts::ensure_account_in(id, home).unwrap();
    // A member since removed from this household (its folder archived, as removal does).
    make(former, &household);
    // A member of a household whose folder was deleted.
    make(gone, &tmp.path().join("deleted"));
    // Another household's member, while that household exists.
    make(other, &other_household);
    // A former member whose folder is still here, and one whose process still runs.
    make(folder, &household);
    std::fs::create_dir_all(household.join("members").join(folder)).unwrap();
    let busy_account = make(busy, &household);
    let mut sleeper = std::process::Command::new("/bin/sleep")
        .arg("120")
        .uid(busy_account.uid)
        .gid(busy_account.gid)
        .spawn()
        .unwrap();
    // Made by an older Hearth that recorded no household.
    accounts::ensure_account(legacy).unwrap();

    // Another household's account is never handed to this one.
    let err = accounts::ensure_account_in(other, &household).unwrap_err().to_string();
    assert!(
        err.contains(&format!("made for the household in {}, which still exists", other_household.display())),
        "{err}"
    );

    let name = |id: &str| accounts::account_name(id);
    let ran = hearth(&data, None, &["doctor", "--json"], None).await;
    let report: Value = serde_json::from_str(ran.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {ran:#?}"));
    let findings = report["findings"].as_array().unwrap();
    let about =
        |id: &str| findings.iter().find(|f| f["what"].as_str().unwrap().contains(&format!("{} (uid", name(id))));
    let f = about(former).unwrap_or_else(|| panic!("{former} is not listed: {report:#}"));
    assert_eq!(f["severity"], "warning", "{f}");
    assert!(
        f["what"].as_str().unwrap().contains("no longer in it")
            && f["fix"].as_str().unwrap().contains("sudo hearth doctor --fix-orphans"),
        "{f}"
    );
    let f = about(gone).unwrap_or_else(|| panic!("{gone} is not listed: {report:#}"));
    assert!(f["what"].as_str().unwrap().contains("which no longer exists"), "{f}");
    let f = about(legacy).unwrap_or_else(|| panic!("{legacy} is not listed: {report:#}"));
    assert_eq!(f["severity"], "info", "{f}");
    assert!(f["fix"].as_str().unwrap().contains(&format!("sudo userdel {}", name(legacy))), "{f}");
    assert!(about(folder).is_some() && about(busy).is_some(), "{report:#}");
    assert!(about(other).is_none(), "another household's account is not this one's business: {report:#}");
    assert!(
        findings.iter().any(|f| f["what"].as_str().unwrap().contains("every folder above it belong to you or root")),
        "the data folder check is reported: {report:#}"
    );

    // Not as root: refused, nothing removed.
    let owner = stranger();
    let ran = hearth(&data, Some(owner), &["doctor", "--fix-orphans"], None).await;
    assert_ne!(ran.code, Some(0), "{ran:#?}");
    assert!(accounts::find_account(former).unwrap().is_some());

    let ran = hearth(&data, None, &["doctor", "--fix-orphans"], None).await;
    let said = &ran.stderr;
    assert!(
        said.contains(&format!("removed {}", name(former))) && said.contains(&format!("removed {}", name(gone))),
        "{ran:#?}"
    );
    assert!(
        said.contains(&format!("kept {}", name(folder))) && said.contains("is still there; move it aside first"),
        "{ran:#?}"
    );
    assert!(said.contains(&format!("kept {}", name(busy))) && said.contains("it still runs processes"), "{ran:#?}");
    assert!(said.contains(&format!("left alone: The OS account {}", name(legacy))), "{ran:#?}");
    assert!(!said.contains(&name(other)), "{ran:#?}");
    let exists = |id: &str| accounts::find_account(id).unwrap().is_some();
    assert_eq!(
        ids.iter().filter(|id| exists(id)).cloned().collect::<BTreeSet<_>>(),
        [other, folder, busy, legacy].into_iter().cloned().collect(),
        "exactly the two removable leftovers are gone"
    );
    // The report that follows no longer lists them.
    assert!(!ran.stdout.contains(&name(former)) && ran.stdout.contains(&name(busy)), "{ran:#?}");

    // An older Hearth's account claimed by a household that uses it is relabelled, and then known.
    accounts::ensure_account_in(legacy, &household).unwrap();
    let listed = accounts::list_accounts().unwrap().into_iter().find(|a| a.member_id == *legacy).unwrap();
    assert_eq!(listed.household.as_deref(), Some(household.as_path()));
    let _ = sleeper.kill();
    let _ = sleeper.wait();
}

/// `hearth serve` as root, at level "process", until dropped.
struct Serve {
    child: tokio::process::Child,
}

impl Serve {
    async fn start(data: &Path) -> Serve {
        let child = tokio::process::Command::new(HEARTH)
            .arg("serve")
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("HEARTH_DATA_DIR", data)
            .env("HEARTH_ISOLATION", "process")
            .env("HEARTH_TELEGRAM_API_URL", "http://127.0.0.1:9")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut serve = Serve { child };
        let deadline = Instant::now() + Duration::from_secs(30);
        while hearth(data, None, &["status"], None).await.code != Some(0) {
            assert!(serve.child.try_wait().unwrap().is_none(), "hearth serve exited early");
            assert!(Instant::now() < deadline, "hearth serve did not answer within 30 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        serve
    }
}
