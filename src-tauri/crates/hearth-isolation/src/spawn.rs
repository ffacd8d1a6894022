//! Starting one member's worker.
//!
//! Two ways to connect it ([`WorkerLink`]): a socket pair whose worker end arrives as fd 3
//! (`HEARTH_WORKER_FD=3`, level "process": the connection itself says which member a frame
//! comes from), or the path of the gateway's listening socket (`HEARTH_GATEWAY_SOCKET`, with
//! accounts: the gateway identifies the worker by the uid the kernel reports for the peer).
//!
//! Nothing secret crosses into the child: the environment is cleared down to an allowlist, and
//! every descriptor but stdio and the socket is closed on exec. With an [`Account`] the child
//! drops to the member's uid/gid with no supplementary groups, gets resource limits and
//! `no_new_privs`; with a [`SandboxPlan`] it is then confined by the kernel sandbox — on Linux
//! between fork and exec, on macOS by starting it through `/usr/bin/sandbox-exec`, which applies
//! the plan's Seatbelt profile and then executes the worker.

use std::ffi::OsString;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;

use hearth_proto::control::IsolationLevel;

use crate::IsolationError;
use crate::accounts::{Account, can_manage_accounts};
use crate::sandbox::SandboxPlan;

/// Descriptor number the worker finds its socket on ([`WorkerLink::SocketPair`]).
pub const WORKER_FD: RawFd = 3;

/// Environment variables passed through from the gateway when set. Everything else is dropped:
/// the gateway's environment may hold provider keys (`OPENAI_API_KEY` for `--api-key-env`).
const PASSTHROUGH_ENV: &[&str] = &["RUST_LOG", "RUST_BACKTRACE", "TZ", "LANG"];

/// Resource limits for a worker running as its own account. `RLIMIT_NPROC` counts every
/// process and thread of the account; the worker is single-threaded apart from short-lived
/// helpers, so 64 leaves room while stopping a fork bomb.
const LIMIT_NOFILE: libc::rlim_t = 256;
const LIMIT_NPROC: libc::rlim_t = 64;
/// Larger writes fail with `EFBIG` (`SIGXFSZ` is ignored) instead of filling the disk.
const LIMIT_FSIZE: libc::rlim_t = 1 << 30;

/// How the worker reaches the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkerLink {
    /// A connected socket pair; the worker's end is fd 3 and the gateway's is returned in
    /// [`SpawnedWorker::stream`].
    SocketPair,
    /// The worker connects to the gateway's listening socket at this path.
    Connect(PathBuf),
}

/// What to run for one member.
#[derive(Debug, Clone)]
pub struct WorkerCommand {
    /// The `hearth` binary (or any binary speaking the worker protocol).
    pub exe: PathBuf,
    /// Arguments, typically `["worker"]`.
    pub args: Vec<OsString>,
    pub member_id: String,
    /// `<data>/members/<id>`, already prepared (0700, owned by `account` if there is one).
    pub member_dir: PathBuf,
    /// Run as this account (needs root). `None`: the gateway's own user (level "process").
    pub account: Option<Account>,
    /// Confine the worker with the kernel sandbox. Works without an account too (for
    /// development); the level then stays "process".
    pub sandbox: Option<Arc<SandboxPlan>>,
    pub link: WorkerLink,
}

/// A running worker: the child process (killed when dropped) and, for
/// [`WorkerLink::SocketPair`], the gateway's end of the socket.
#[derive(Debug)]
pub struct SpawnedWorker {
    pub child: tokio::process::Child,
    /// `Some` for [`WorkerLink::SocketPair`]; with [`WorkerLink::Connect`] the worker's
    /// connection arrives on the gateway's listener.
    pub stream: Option<tokio::net::UnixStream>,
    pub pid: u32,
    /// The isolation actually in force.
    pub level: IsolationLevel,
}

/// The environment a worker starts with: the allowlist, nothing else.
pub fn worker_env(cmd: &WorkerCommand) -> Vec<(OsString, OsString)> {
    let mut env: Vec<(OsString, OsString)> = Vec::new();
    match &cmd.link {
        WorkerLink::SocketPair => env.push(("HEARTH_WORKER_FD".into(), WORKER_FD.to_string().into())),
        WorkerLink::Connect(path) => env.push(("HEARTH_GATEWAY_SOCKET".into(), path.clone().into_os_string())),
    }
    env.extend([
        ("HEARTH_MEMBER_DIR".into(), cmd.member_dir.clone().into_os_string()),
        ("HEARTH_MEMBER_ID".into(), cmd.member_id.clone().into()),
        ("HOME".into(), cmd.member_dir.clone().into_os_string()),
        // Temporary files (SQLite's among them) stay inside the member's directory, the one
        // place a sandboxed worker may write.
        ("TMPDIR".into(), cmd.member_dir.clone().into_os_string()),
        ("PATH".into(), "/usr/bin:/bin".into()),
    ]);
    for key in PASSTHROUGH_ENV {
        if let Some(v) = std::env::var_os(key) {
            env.push((key.into(), v));
        }
    }
    if !env.iter().any(|(k, _)| k == "LANG") {
        env.push(("LANG".into(), "C.UTF-8".into()));
    }
    env
}

/// Starts the worker: own process group, cleared environment, umask 077, no core dumps, only
/// stdio and (for a socket pair) fd 3 open; then, per `cmd`, the member's account and the
/// sandbox. Must be called within a Tokio runtime.
pub fn spawn_worker(cmd: &WorkerCommand) -> Result<SpawnedWorker, IsolationError> {
    if let Some(account) = &cmd.account {
        if !can_manage_accounts() {
            return Err(IsolationError::NeedsRoot("running a worker as its member's account"));
        }
        check_member_dir(cmd, account)?;
    }
    if let Some(plan) = &cmd.sandbox
        && plan.member_dir() != cmd.member_dir
    {
        return Err(IsolationError::Dir {
            path: cmd.member_dir.clone(),
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("the sandbox plan was prepared for {}", plan.member_dir().display()),
            ),
        });
    }
    let level = match (&cmd.account, &cmd.sandbox) {
        (None, _) => IsolationLevel::Process,
        (Some(_), None) => IsolationLevel::Account,
        (Some(_), Some(_)) => IsolationLevel::AccountSandbox,
    };
    let pair = match cmd.link {
        WorkerLink::SocketPair => {
            let (ours, theirs) = std::os::unix::net::UnixStream::pair().map_err(IsolationError::Socket)?;
            ours.set_nonblocking(true).map_err(IsolationError::Socket)?;
            Some((ours, theirs))
        }
        WorkerLink::Connect(_) => None,
    };
    let child_fd = pair.as_ref().map(|(_, theirs)| theirs.as_raw_fd());

    let mut command = worker_command(cmd)?;
    command
        .env_clear()
        .envs(worker_env(cmd))
        .current_dir(&cmd.member_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .process_group(0)
        .kill_on_drop(true);
    let ids = cmd.account.as_ref().map(|a| (a.uid, a.gid));
    // macOS: `sandbox-exec` applies the plan after exec (`worker_command`).
    #[cfg(not(target_os = "macos"))]
    let plan = cmd.sandbox.clone();
    // SAFETY: the closure runs in the forked child before exec and only makes
    // async-signal-safe system calls; it reads captured data but allocates nothing.
    unsafe {
        command.pre_exec(move || {
            prepare_child(child_fd)?;
            if let Some((uid, gid)) = ids {
                limit_resources()?;
                become_account(uid, gid)?;
            }
            #[cfg(not(target_os = "macos"))]
            if let Some(plan) = &plan {
                crate::sandbox::apply_in_child(plan).map_err(|e| report(b"applying the sandbox", e))?;
            }
            if ids.is_some() {
                // Last: the sandbox needs a few new descriptors, and in a busy gateway the
                // lowest free number may already be above the limit.
                limit_descriptors()?;
            }
            Ok(())
        });
    }
    let child = command.spawn().map_err(|source| IsolationError::Spawn { exe: cmd.exe.clone(), source })?;
    let pid = child.id().unwrap_or(0);
    let stream = match pair {
        Some((ours, theirs)) => {
            drop(theirs);
            Some(tokio::net::UnixStream::from_std(ours).map_err(IsolationError::Socket)?)
        }
        None => None,
    };
    Ok(SpawnedWorker { child, stream, pid, level })
}

/// The program to start with its arguments: the worker binary itself or — on macOS with a
/// sandbox plan — `/usr/bin/sandbox-exec`, which applies the plan's Seatbelt profile (naming the
/// gateway's socket when the worker connects to one) and then executes the worker. The uid drop
/// in `pre_exec` still comes first, so `sandbox-exec` already runs as the member.
fn worker_command(cmd: &WorkerCommand) -> Result<tokio::process::Command, IsolationError> {
    #[cfg(target_os = "macos")]
    if let Some(plan) = &cmd.sandbox {
        let socket = match &cmd.link {
            WorkerLink::Connect(path) => Some(path.as_path()),
            WorkerLink::SocketPair => None,
        };
        let mut command = tokio::process::Command::new(crate::seatbelt::SANDBOX_EXEC);
        command.args(plan.sandbox_exec_args(&cmd.exe, &cmd.args, socket)?);
        return Ok(command);
    }
    let mut command = tokio::process::Command::new(&cmd.exe);
    command.args(&cmd.args);
    Ok(command)
}

/// Refuses to start a worker whose directory is not its own private one.
fn check_member_dir(cmd: &WorkerCommand, account: &Account) -> Result<(), IsolationError> {
    let bad = |why: String| IsolationError::Dir {
        path: cmd.member_dir.clone(),
        source: std::io::Error::new(std::io::ErrorKind::PermissionDenied, why),
    };
    let meta = std::fs::symlink_metadata(&cmd.member_dir)
        .map_err(|source| IsolationError::Dir { path: cmd.member_dir.clone(), source })?;
    if !meta.is_dir() {
        return Err(bad("it is not a directory (or is a symbolic link)".into()));
    }
    if meta.uid() != account.uid || meta.mode() & 0o7777 != 0o700 {
        return Err(bad(format!(
            "it is owned by uid {} with mode {:04o}, not by {} (uid {}) with mode 0700; prepare it first",
            meta.uid(),
            meta.mode() & 0o7777,
            account.name,
            account.uid
        )));
    }
    Ok(())
}

/// Writes which step failed to the worker's stderr (the gateway's log) — the error that
/// reaches the parent carries only an errno. `write` is async-signal-safe.
fn report(step: &'static [u8], e: std::io::Error) -> std::io::Error {
    // SAFETY: writing static buffers to fd 2.
    unsafe {
        let prefix = b"hearth: starting the worker failed while ";
        libc::write(2, prefix.as_ptr().cast(), prefix.len());
        libc::write(2, step.as_ptr().cast(), step.len());
        libc::write(2, b"\n".as_ptr().cast(), 1);
    }
    e
}

fn last_error(step: &'static [u8]) -> std::io::Error {
    let e = std::io::Error::last_os_error();
    report(step, e)
}

/// Runs in the child between fork and exec: the socket on fd 3, umask, no core dumps, every
/// other descriptor close-on-exec.
fn prepare_child(child_fd: Option<RawFd>) -> std::io::Result<()> {
    // SAFETY: plain system calls on descriptors this process owns.
    unsafe {
        match child_fd {
            Some(WORKER_FD) if libc::fcntl(WORKER_FD, libc::F_SETFD, 0) == -1 => {
                return Err(std::io::Error::last_os_error());
            }
            Some(fd) if fd != WORKER_FD && libc::dup2(fd, WORKER_FD) == -1 => {
                return Err(std::io::Error::last_os_error());
            }
            _ => {}
        }
        libc::umask(0o077);
        let no_core = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        libc::setrlimit(libc::RLIMIT_CORE, &no_core);
        mark_cloexec_from(if child_fd.is_some() { WORKER_FD + 1 } else { WORKER_FD });
    }
    Ok(())
}

/// Hard resource limits: lowered for good (raising a hard limit needs a privilege the worker
/// no longer has).
fn limit_resources() -> std::io::Result<()> {
    for (resource, value) in [(libc::RLIMIT_NPROC, LIMIT_NPROC), (libc::RLIMIT_FSIZE, LIMIT_FSIZE)] {
        let lim = libc::rlimit { rlim_cur: value, rlim_max: value };
        // SAFETY: a valid rlimit struct.
        if unsafe { libc::setrlimit(resource, &lim) } != 0 {
            return Err(last_error(b"setting resource limits"));
        }
    }
    // SAFETY: sigaction with a zeroed struct and SIG_IGN; ignored dispositions survive exec.
    unsafe {
        let mut act: libc::sigaction = std::mem::zeroed();
        act.sa_sigaction = libc::SIG_IGN;
        libc::sigaction(libc::SIGXFSZ, &act, std::ptr::null_mut());
    }
    Ok(())
}

fn limit_descriptors() -> std::io::Result<()> {
    let lim = libc::rlimit { rlim_cur: LIMIT_NOFILE, rlim_max: LIMIT_NOFILE };
    // SAFETY: a valid rlimit struct.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
        return Err(last_error(b"limiting open files"));
    }
    Ok(())
}

/// Drops every privilege: no supplementary groups, the member's gid and uid (real, effective
/// and saved), then checks the result and that root cannot be regained; sets `no_new_privs`.
pub(crate) fn become_account(uid: u32, gid: u32) -> std::io::Result<()> {
    // SAFETY: plain system calls on the calling process's credentials.
    unsafe {
        if libc::setgroups(0, std::ptr::null()) != 0 {
            return Err(last_error(b"clearing supplementary groups"));
        }
        #[cfg(target_os = "linux")]
        {
            if libc::setresgid(gid, gid, gid) != 0 {
                return Err(last_error(b"setting the group id"));
            }
            if libc::setresuid(uid, uid, uid) != 0 {
                return Err(last_error(b"setting the user id"));
            }
            let (mut r, mut e, mut s) = (0, 0, 0);
            if libc::getresuid(&mut r, &mut e, &mut s) != 0 || (r, e, s) != (uid, uid, uid) {
                return Err(report(b"verifying the user id", std::io::Error::from_raw_os_error(libc::EPERM)));
            }
            if libc::getresgid(&mut r, &mut e, &mut s) != 0 || (r, e, s) != (gid, gid, gid) {
                return Err(report(b"verifying the group id", std::io::Error::from_raw_os_error(libc::EPERM)));
            }
        }
        #[cfg(not(target_os = "linux"))]
        {
            // setgid/setuid as root set the real, effective and saved ids.
            if libc::setgid(gid) != 0 {
                return Err(last_error(b"setting the group id"));
            }
            if libc::setuid(uid) != 0 {
                return Err(last_error(b"setting the user id"));
            }
            if libc::getuid() != uid || libc::geteuid() != uid || libc::getgid() != gid || libc::getegid() != gid {
                return Err(report(b"verifying the ids", std::io::Error::from_raw_os_error(libc::EPERM)));
            }
        }
        // macOS may report the effective gid as a group; Linux reports none.
        let most = if cfg!(target_os = "linux") { 0 } else { 1 };
        if libc::getgroups(0, std::ptr::null_mut()) > most {
            return Err(report(b"verifying the groups", std::io::Error::from_raw_os_error(libc::EPERM)));
        }
        if uid != 0 && libc::setuid(0) == 0 {
            return Err(report(b"checking root cannot be regained", std::io::Error::from_raw_os_error(libc::EPERM)));
        }
        #[cfg(target_os = "linux")]
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return Err(last_error(b"setting no_new_privs"));
        }
    }
    Ok(())
}

/// Marks every descriptor from `first` up close-on-exec. Marking instead of closing keeps the
/// standard library's own exec-error pipe working (it is already close-on-exec).
pub(crate) unsafe fn mark_cloexec_from(first: RawFd) {
    #[cfg(target_os = "linux")]
    {
        const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
        // SAFETY: close_range with the CLOEXEC flag only changes descriptor flags.
        let r = unsafe {
            libc::syscall(libc::SYS_close_range, first as libc::c_uint, libc::c_uint::MAX, CLOSE_RANGE_CLOEXEC)
        };
        if r == 0 {
            return;
        }
    }
    // Older kernels and macOS: walk a bounded range.
    // SAFETY: fcntl on arbitrary numbers is harmless; unopened ones return EBADF.
    let max = unsafe { libc::sysconf(libc::_SC_OPEN_MAX) }.clamp(256, 65_536) as RawFd;
    for fd in first..max {
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags != -1 {
                libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A shell stands in for the worker: it reports its environment, umask and open descriptors
    /// over fd 3, which is exactly what a misbehaving worker could learn about its situation.
    #[tokio::test]
    async fn child_gets_only_the_socket_and_the_allowlisted_env() {
        let data = tempfile::tempdir().unwrap();
        let dir = crate::dirs::prepare_member_dir(data.path(), "ana", None).unwrap();
        // A secret in the gateway's environment and an extra open descriptor must not leak.
        // SAFETY: the test sets a variable no other test reads.
        unsafe { std::env::set_var("HEARTH_TEST_SECRET_KEY", "sk-live-secret") };
        let leaked = std::fs::File::open("/dev/null").unwrap();
        let script = r#"{ env; echo "umask=$(umask)"; echo "fds=$(ls /proc/self/fd | tr '\n' ' ')"; } >&3"#;
        let cmd = WorkerCommand {
            exe: "/bin/sh".into(),
            args: vec!["-c".into(), script.into()],
            member_id: "ana".into(),
            member_dir: dir.clone(),
            account: None,
            sandbox: None,
            link: WorkerLink::SocketPair,
        };
        let mut w = spawn_worker(&cmd).unwrap();
        let mut out = String::new();
        w.stream.as_mut().unwrap().read_to_string(&mut out).await.unwrap();
        assert!(w.child.wait().await.unwrap().success());
        drop(leaked);

        assert!(!out.contains("sk-live-secret"), "{out}");
        assert!(out.contains("HEARTH_WORKER_FD=3"), "{out}");
        assert!(out.contains(&format!("HEARTH_MEMBER_DIR={}", dir.display())), "{out}");
        assert!(out.contains("umask=0077"), "{out}");
        let fds = out.lines().find_map(|l| l.strip_prefix("fds=")).unwrap();
        let fds: Vec<&str> = fds.split_whitespace().collect();
        // stdio, the socket, and the one `ls` opens to read /proc/self/fd.
        assert!(fds.len() <= 5, "unexpected descriptors: {fds:?}");
        for fd in &fds {
            let n: i32 = fd.parse().unwrap();
            assert!(n <= 4, "descriptor {n} leaked into the worker: {fds:?}");
        }
        let env_keys: Vec<&str> =
            out.lines().filter_map(|l| l.split_once('=').map(|(k, _)| k)).filter(|k| !k.is_empty()).collect();
        for key in env_keys {
            let allowed = [
                "HEARTH_WORKER_FD",
                "HEARTH_MEMBER_DIR",
                "HEARTH_MEMBER_ID",
                "HOME",
                "TMPDIR",
                "PATH",
                "LANG",
                "PWD",
                "SHLVL",
                "_",
                "umask",
                "fds",
                "RUST_LOG",
                "RUST_BACKTRACE",
                "TZ",
                "OLDPWD",
            ];
            assert!(allowed.contains(&key), "unexpected env var {key} in worker");
        }
    }

    #[tokio::test]
    async fn the_gateway_end_talks_to_the_child() {
        let data = tempfile::tempdir().unwrap();
        let dir = crate::dirs::prepare_member_dir(data.path(), "bo", None).unwrap();
        let cmd = WorkerCommand {
            exe: "/bin/sh".into(),
            args: vec!["-c".into(), "read line <&3; echo \"got $line\" >&3".into()],
            member_id: "bo".into(),
            member_dir: dir,
            account: None,
            sandbox: None,
            link: WorkerLink::SocketPair,
        };
        let mut w = spawn_worker(&cmd).unwrap();
        w.stream.as_mut().unwrap().write_all(b"hello\n").await.unwrap();
        let mut out = String::new();
        w.stream.as_mut().unwrap().read_to_string(&mut out).await.unwrap();
        assert_eq!(out.trim(), "got hello");
    }

    #[test]
    fn a_missing_binary_is_a_clear_error() {
        let data = tempfile::tempdir().unwrap();
        let dir = crate::dirs::prepare_member_dir(data.path(), "cy", None).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let _g = rt.enter();
        let cmd = WorkerCommand {
            exe: "/nonexistent/hearth".into(),
            args: vec![],
            member_id: "cy".into(),
            member_dir: dir,
            account: None,
            sandbox: None,
            link: WorkerLink::SocketPair,
        };
        let err = spawn_worker(&cmd).unwrap_err().to_string();
        assert!(err.contains("/nonexistent/hearth"), "{err}");
    }
}
