//! Starting one member's worker.
//!
//! The worker always finds its connection to the gateway on fd 3 (`HEARTH_WORKER_FD=3`), never a
//! path, so the sandbox can refuse `socket` and `connect` outright. Two ways to make it
//! ([`WorkerLink`]): a socket pair (level "process": the connection itself says which member a
//! frame comes from), or — with accounts — a connection to the gateway's listening socket that
//! the child makes itself between fork and exec, after it has become the member and before the
//! sandbox closes in, so the gateway still identifies it by the uid and pid the kernel reports.
//!
//! Nothing secret crosses into the child: the environment is cleared down to an allowlist, and
//! every descriptor but stdio and fd 3 is closed on exec. The child leads a session of its own
//! (`setsid`): it has no controlling terminal, so it cannot push keystrokes into the terminal of
//! whoever started the gateway or the supervisor (`TIOCSTI`), and is not in that terminal's
//! process groups. stdin and stdout are `/dev/null`; stderr is a pipe the spawner reads
//! ([`stderr`]): each line is tagged with the member, stripped of control characters, cut to a
//! length and rate-limited before it reaches the log. With an [`Account`] the child drops to the
//! member's uid/gid with no supplementary groups and gets resource limits and `no_new_privs`;
//! with a [`SandboxPlan`] it is then confined by the kernel sandbox — on Linux between fork and
//! exec, on macOS by starting it through `/usr/bin/sandbox-exec`, which applies the plan's
//! Seatbelt profile and then executes the worker.

pub mod stderr;

use std::ffi::OsString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;

use hearth_proto::control::IsolationLevel;

use crate::IsolationError;
use crate::accounts::{Account, can_manage_accounts};
use crate::sandbox::SandboxPlan;

/// Descriptor number the worker finds its connection to the gateway on, whatever the link.
pub const WORKER_FD: RawFd = 3;

/// Environment variables passed through from the gateway when set. Everything else is dropped:
/// the gateway's environment may hold provider keys (`OPENAI_API_KEY` for `--api-key-env`).
const PASSTHROUGH_ENV: &[&str] = &["RUST_LOG", "RUST_BACKTRACE", "TZ", "LANG"];

/// Resource limits for a worker running as its own account. `RLIMIT_NPROC` counts every
/// process and thread of the account; the worker is single-threaded apart from short-lived
/// helpers, so 64 leaves room while stopping a fork bomb.
pub const LIMIT_NOFILE: u64 = 256;
pub const LIMIT_NPROC: u64 = 64;
/// Larger writes fail with `EFBIG` (`SIGXFSZ` is ignored) instead of filling the disk.
pub const LIMIT_FSIZE: u64 = 1 << 30;
/// Address space (Linux; macOS does not enforce `RLIMIT_AS`): an allocation beyond it fails
/// instead of waking the OOM killer for the whole machine. Measured: the real worker's `VmPeak`
/// over hearth-cli's end-to-end suite (111 workers: turns, tools, memory, reminders, summaries,
/// knowledge searches) is 166 MB with at most 2 threads, of which 16 MB resident. Each further
/// thread (`spawn_blocking` for a tool or SQLite) may reserve a 64 MiB glibc malloc arena and a
/// 2 MiB stack, so 1 GiB leaves room for a dozen more before an allocation fails.
pub const LIMIT_AS: u64 = 1 << 30;

/// How long the child waits to be let into the gateway's listening socket (a full backlog).
const CONNECT_TIMEOUT_SECS: libc::time_t = 10;

/// How the worker reaches the gateway. Either way its end is fd 3.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkerLink {
    /// A connected socket pair; the gateway's end is returned in [`SpawnedWorker::stream`].
    SocketPair,
    /// The gateway's listening socket at this path: the child connects to it between fork and
    /// exec, as the member and before the sandbox, and the connection arrives on the gateway's
    /// listener with the member's uid and the worker's pid as its peer credentials.
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
/// [`WorkerLink::SocketPair`], the gateway's end of the socket. Its stderr is already being
/// relayed to the log.
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
    let mut env: Vec<(OsString, OsString)> = vec![
        ("HEARTH_WORKER_FD".into(), WORKER_FD.to_string().into()),
        ("HEARTH_MEMBER_DIR".into(), cmd.member_dir.clone().into_os_string()),
        ("HEARTH_MEMBER_ID".into(), cmd.member_id.clone().into()),
        ("HOME".into(), cmd.member_dir.clone().into_os_string()),
        // Temporary files (SQLite's among them) stay inside the member's directory, the one
        // place a sandboxed worker may write.
        ("TMPDIR".into(), cmd.member_dir.clone().into_os_string()),
        ("PATH".into(), "/usr/bin:/bin".into()),
    ];
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

/// The address of the gateway's listening socket, built before fork so the child only copies
/// it into a system call.
struct UnixAddr {
    addr: libc::sockaddr_un,
    len: libc::socklen_t,
}

impl UnixAddr {
    fn new(path: &Path) -> Result<UnixAddr, IsolationError> {
        use std::os::unix::ffi::OsStrExt;
        let bad = |why: &str| {
            IsolationError::Socket(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("the gateway's worker socket {} {why}", path.display()),
            ))
        };
        if !path.is_absolute() {
            return Err(bad("is not an absolute path"));
        }
        let bytes = path.as_os_str().as_bytes();
        // SAFETY: sockaddr_un is plain data; all zeroes is a valid (empty) value.
        let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
        if bytes.contains(&0) {
            return Err(bad("contains a NUL byte"));
        }
        if bytes.len() >= addr.sun_path.len() {
            return Err(bad(&format!("is longer than the {} bytes a socket path may have", addr.sun_path.len() - 1)));
        }
        addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
        for (dst, src) in addr.sun_path.iter_mut().zip(bytes) {
            *dst = *src as libc::c_char;
        }
        let len = std::mem::offset_of!(libc::sockaddr_un, sun_path) + bytes.len() + 1;
        #[cfg(any(target_os = "macos", target_os = "ios", target_os = "freebsd"))]
        {
            addr.sun_len = len as u8;
        }
        Ok(UnixAddr { addr, len: len as libc::socklen_t })
    }
}

/// A pipe for the child's stderr: the read end (the parent's, close-on-exec) and the write end.
fn stderr_pipe() -> Result<(OwnedFd, OwnedFd), IsolationError> {
    let mut fds = [0 as RawFd; 2];
    #[cfg(target_os = "linux")]
    // SAFETY: pipe2 fills the two-element array.
    let r = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    #[cfg(not(target_os = "linux"))]
    // SAFETY: pipe fills the two-element array; both ends are marked close-on-exec at once (the
    // write end becomes the child's fd 2 through dup2, which clears the flag there).
    let r = unsafe {
        let r = libc::pipe(fds.as_mut_ptr());
        if r == 0 {
            libc::fcntl(fds[0], libc::F_SETFD, libc::FD_CLOEXEC);
            libc::fcntl(fds[1], libc::F_SETFD, libc::FD_CLOEXEC);
        }
        r
    };
    if r != 0 {
        return Err(IsolationError::Socket(std::io::Error::last_os_error()));
    }
    // SAFETY: both descriptors were just created and are owned by nothing else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Starts the worker: a session of its own, cleared environment, umask 077, no core dumps,
/// stdin and stdout `/dev/null`, stderr a pipe relayed to the log, only fd 3 open besides; then,
/// per `cmd`, the member's account, the connection to the gateway, and the sandbox. Must be
/// called within a Tokio runtime (the stderr relay runs on it).
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
    let (pair, gateway) = match &cmd.link {
        WorkerLink::SocketPair => {
            let (ours, theirs) = std::os::unix::net::UnixStream::pair().map_err(IsolationError::Socket)?;
            ours.set_nonblocking(true).map_err(IsolationError::Socket)?;
            (Some((ours, theirs)), None)
        }
        WorkerLink::Connect(path) => (None, Some(UnixAddr::new(path)?)),
    };
    let child_fd = pair.as_ref().map(|(_, theirs)| theirs.as_raw_fd());
    let (stderr_read, stderr_write) = stderr_pipe()?;

    let mut command = worker_command(cmd)?;
    command
        .env_clear()
        .envs(worker_env(cmd))
        .current_dir(&cmd.member_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(stderr_write))
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
            // As the member, so the gateway sees the member's uid; before the sandbox, which
            // refuses `socket` and `connect`.
            if let Some(addr) = &gateway {
                connect_gateway(addr)?;
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
    let spawned = command.spawn();
    // The command holds the pipe's write end: once it is gone, the pipe ends with the child.
    drop(command);
    let child = match spawned {
        Ok(child) => child,
        Err(source) => {
            // The child has been reaped: whatever it said about the step that failed is all in
            // the pipe already.
            let said = stderr::drain(&cmd.member_id, stderr_read);
            let source = match said {
                Some(said) => std::io::Error::new(source.kind(), format!("{source} ({said})")),
                None => source,
            };
            return Err(IsolationError::Spawn { exe: cmd.exe.clone(), source });
        }
    };
    let pid = child.id().unwrap_or(0);
    match tokio::net::unix::pipe::Receiver::from_owned_fd(stderr_read) {
        Ok(pipe) => {
            tokio::spawn(stderr::relay(cmd.member_id.clone(), pid, pipe));
        }
        // The pipe's read end is closed and a write by the worker fails with EPIPE (SIGPIPE is
        // ignored by Rust programs); its lines are lost, nothing else.
        Err(e) => tracing::warn!(member = %cmd.member_id, pid, error = %e, "cannot read the worker's stderr"),
    }
    let stream = match pair {
        Some((ours, theirs)) => {
            drop(theirs);
            Some(tokio::net::UnixStream::from_std(ours).map_err(IsolationError::Socket)?)
        }
        None => None,
    };
    Ok(SpawnedWorker { child, stream, pid, level })
}

/// What protects every worker at `level`, one sentence each, for `hearth doctor` (and the docs):
/// what this module and the sandbox put in force, from the same constants.
pub fn protections(level: IsolationLevel) -> Vec<String> {
    let mib = |bytes: u64| bytes >> 20;
    let mut out = vec![
        "each worker leads a session of its own with no controlling terminal (setsid), so it cannot type into the terminal Hearth or its supervisor was started from; its stdin and stdout are /dev/null".to_owned(),
        format!(
            "a worker's stderr reaches the log only through a pipe: one event per line, tagged with the member, control characters escaped, lines cut at {} bytes, at most {} lines at once and {} a second",
            stderr::MAX_LINE,
            stderr::BURST,
            stderr::PER_SECOND
        ),
        "it starts with an allowlisted environment (no key, no token) and no open descriptor but its connection to the gateway on fd 3".to_owned(),
    ];
    if level == IsolationLevel::Process {
        return out;
    }
    out.push("at account levels that connection is made by the worker's own process, as the member, before it runs the worker binary, so the gateway knows it by the uid and pid the kernel reports and the worker is told no path".to_owned());
    let memory =
        if cfg!(target_os = "linux") { format!("{} MiB of address space, ", mib(LIMIT_AS)) } else { String::new() };
    out.push(format!(
        "limits: {memory}{LIMIT_NPROC} processes, files up to {} MiB, {LIMIT_NOFILE} open files, no core dumps; no_new_privs",
        mib(LIMIT_FSIZE)
    ));
    if level == IsolationLevel::AccountSandbox {
        if cfg!(target_os = "macos") {
            out.push("Seatbelt: no network at all, no links made in the member's folder, its folders never opened to others, no ACLs".to_owned());
        } else {
            out.push(crate::sandbox::seccomp_protections());
            out.push("no private mount namespace: Landlock already narrows the file system to the member's folder and the system paths a worker reads".to_owned());
        }
    }
    out
}

/// What the kernel reports about a running worker, for `hearth doctor`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerFacts {
    /// It leads its own session (its session id is its pid).
    pub session_leader: bool,
    /// It has a controlling terminal.
    pub controlling_terminal: bool,
    /// A seccomp filter is installed (`Seccomp: 2`).
    pub seccomp_filter: bool,
    pub no_new_privs: bool,
    /// The soft address-space limit in bytes; `None` for unlimited.
    pub address_space: Option<u64>,
}

/// Reads [`WorkerFacts`] from `/proc/<pid>` (Linux; `None` elsewhere, or when the process is
/// gone). Every file read is one any user may read.
pub fn inspect(pid: u32) -> Option<WorkerFacts> {
    if !cfg!(target_os = "linux") {
        return None;
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // After the name: state, ppid, pgrp, session, tty_nr.
    let session: u32 = fields.get(3)?.parse().ok()?;
    let tty: i64 = fields.get(4)?.parse().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| status.lines().find_map(|l| l.strip_prefix(name)).map(str::trim);
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let address_space = limits
        .lines()
        .find_map(|l| l.strip_prefix("Max address space"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|soft| soft.parse().ok());
    Some(WorkerFacts {
        session_leader: session == pid,
        controlling_terminal: tty != 0,
        seccomp_filter: field("Seccomp:") == Some("2"),
        no_new_privs: field("NoNewPrivs:") == Some("1"),
        address_space,
    })
}

/// The program to start with its arguments: the worker binary itself or — on macOS with a
/// sandbox plan — `/usr/bin/sandbox-exec`, which applies the plan's Seatbelt profile (no network
/// at all: the connection is already on fd 3) and then executes the worker. The uid drop and the
/// connection in `pre_exec` still come first, so `sandbox-exec` already runs as the member.
fn worker_command(cmd: &WorkerCommand) -> Result<tokio::process::Command, IsolationError> {
    #[cfg(target_os = "macos")]
    if let Some(plan) = &cmd.sandbox {
        let mut command = tokio::process::Command::new(crate::seatbelt::SANDBOX_EXEC);
        command.args(plan.sandbox_exec_args(&cmd.exe, &cmd.args)?);
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

/// Writes which step failed to the worker's stderr — the pipe the spawner reads into its log
/// and into the error it returns — since the error that reaches the parent carries only an
/// errno. `write` is async-signal-safe.
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

/// Runs in the child between fork and exec: a session of its own (no controlling terminal; its
/// process group id is its pid, so the spawner can still signal the whole group), the socket
/// pair's end on fd 3, umask, no core dumps, every other descriptor close-on-exec.
fn prepare_child(child_fd: Option<RawFd>) -> std::io::Result<()> {
    // SAFETY: plain system calls on descriptors this process owns.
    unsafe {
        if libc::setsid() == -1 {
            return Err(last_error(b"starting a session of its own"));
        }
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

/// Runs in the child between fork and exec: connects to the gateway's listening socket and puts
/// the connection on fd 3. Whatever fd 3 was is marked close-on-exec by then and is replaced.
fn connect_gateway(addr: &UnixAddr) -> std::io::Result<()> {
    // SAFETY: plain system calls on descriptors this process creates; `addr` outlives them.
    unsafe {
        #[cfg(target_os = "linux")]
        let fd = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        #[cfg(not(target_os = "linux"))]
        let fd = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0);
        if fd < 0 {
            return Err(last_error(b"making a socket for the gateway"));
        }
        // A blocking connect waits while the gateway's backlog is full; never for ever.
        let limit = libc::timeval { tv_sec: CONNECT_TIMEOUT_SECS, tv_usec: 0 };
        let size = std::mem::size_of::<libc::timeval>() as libc::socklen_t;
        libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_SNDTIMEO, (&limit as *const libc::timeval).cast(), size);
        let r = loop {
            let r = libc::connect(fd, (&addr.addr as *const libc::sockaddr_un).cast(), addr.len);
            if r == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                break r;
            }
        };
        if r != 0 {
            let e = last_error(b"connecting to the gateway's worker socket");
            libc::close(fd);
            return Err(e);
        }
        let none = libc::timeval { tv_sec: 0, tv_usec: 0 };
        libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_SNDTIMEO, (&none as *const libc::timeval).cast(), size);
        if fd == WORKER_FD {
            // Already in place: only the close-on-exec flag has to go.
            if libc::fcntl(WORKER_FD, libc::F_SETFD, 0) == -1 {
                return Err(last_error(b"keeping the gateway connection open"));
            }
        } else {
            // dup2 leaves the new descriptor without close-on-exec.
            if libc::dup2(fd, WORKER_FD) == -1 {
                let e = last_error(b"moving the gateway connection to fd 3");
                libc::close(fd);
                return Err(e);
            }
            libc::close(fd);
        }
    }
    Ok(())
}

/// Hard resource limits: lowered for good (raising a hard limit needs a privilege the worker
/// no longer has).
fn limit_resources() -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    let limits = [(libc::RLIMIT_NPROC, LIMIT_NPROC), (libc::RLIMIT_FSIZE, LIMIT_FSIZE), (libc::RLIMIT_AS, LIMIT_AS)];
    // macOS does not enforce RLIMIT_AS, and lowering it could keep dyld from mapping the shared
    // cache.
    #[cfg(not(target_os = "linux"))]
    let limits = [(libc::RLIMIT_NPROC, LIMIT_NPROC), (libc::RLIMIT_FSIZE, LIMIT_FSIZE)];
    for (resource, value) in limits {
        let value = value as libc::rlim_t;
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
    let lim = libc::rlimit { rlim_cur: LIMIT_NOFILE as libc::rlim_t, rlim_max: LIMIT_NOFILE as libc::rlim_t };
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

    /// The child leads a session of its own with no controlling terminal (field 7 of
    /// /proc/self/stat is 0), is its own process group, and its stderr is a pipe, stdin and
    /// stdout `/dev/null`.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn the_child_has_no_terminal_and_its_stderr_is_a_pipe() {
        let data = tempfile::tempdir().unwrap();
        let dir = crate::dirs::prepare_member_dir(data.path(), "dee", None).unwrap();
        let script = r#"read -r stat < /proc/self/stat; echo "stat=$stat $$" >&3; for fd in 0 1 2; do echo "fd$fd=$(readlink /proc/$$/fd/$fd)" >&3; done"#;
        let cmd = WorkerCommand {
            exe: "/bin/sh".into(),
            args: vec!["-c".into(), script.into()],
            member_id: "dee".into(),
            member_dir: dir,
            account: None,
            sandbox: None,
            link: WorkerLink::SocketPair,
        };
        let mut w = spawn_worker(&cmd).unwrap();
        let mut out = String::new();
        w.stream.as_mut().unwrap().read_to_string(&mut out).await.unwrap();
        assert!(w.child.wait().await.unwrap().success());
        let stat = out.lines().find_map(|l| l.strip_prefix("stat=")).unwrap();
        // `read` runs in the shell itself: its /proc/self is the shell's, whose pid ends the line.
        let (stat, pid) = stat.rsplit_once(' ').unwrap();
        let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
        // After the name: state, ppid, pgrp, session, tty_nr.
        assert_eq!(fields[2], pid, "its own process group: {stat}");
        assert_eq!(fields[3], pid, "its own session: {stat}");
        assert_eq!(fields[4], "0", "no controlling terminal: {stat}");
        assert!(out.contains("fd0=/dev/null") && out.contains("fd1=/dev/null"), "{out}");
        assert!(out.lines().any(|l| l.starts_with("fd2=pipe:")), "{out}");
    }

    /// What the child says about a step that failed before exec reaches the error, cleaned.
    #[tokio::test]
    async fn a_failed_step_before_exec_is_named_in_the_error() {
        let data = tempfile::tempdir().unwrap();
        let dir = crate::dirs::prepare_member_dir(data.path(), "eve", None).unwrap();
        let cmd = WorkerCommand {
            exe: "/bin/true".into(),
            args: vec![],
            member_id: "eve".into(),
            member_dir: dir,
            account: None,
            sandbox: None,
            link: WorkerLink::Connect(data.path().join("no-such.sock")),
        };
        let err = spawn_worker(&cmd).unwrap_err().to_string();
        assert!(err.contains("connecting to the gateway's worker socket"), "{err}");
        // A path no socket address can hold is refused before any fork.
        let long = data.path().join("x".repeat(200));
        let err = spawn_worker(&WorkerCommand { link: WorkerLink::Connect(long), ..cmd }).unwrap_err().to_string();
        assert!(err.contains("longer than"), "{err}");
    }

    /// What doctor reads back: a worker is its own session leader with no terminal; this
    /// process, unconfined, has no seccomp filter.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn inspect_reads_what_the_kernel_reports() {
        let data = tempfile::tempdir().unwrap();
        let dir = crate::dirs::prepare_member_dir(data.path(), "fay", None).unwrap();
        let cmd = WorkerCommand {
            exe: "/bin/sh".into(),
            args: vec!["-c".into(), "read -r line <&3".into()],
            member_id: "fay".into(),
            member_dir: dir,
            account: None,
            sandbox: None,
            link: WorkerLink::SocketPair,
        };
        let mut w = spawn_worker(&cmd).unwrap();
        let facts = inspect(w.pid).unwrap();
        assert!(facts.session_leader && !facts.controlling_terminal, "{facts:?}");
        assert!(!facts.seccomp_filter, "{facts:?}");
        w.stream.as_mut().unwrap().write_all(b"bye\n").await.unwrap();
        assert!(w.child.wait().await.unwrap().success());
        assert_eq!(inspect(w.pid), None, "gone");
    }

    #[test]
    fn protections_say_more_at_each_level() {
        let process = protections(IsolationLevel::Process);
        let account = protections(IsolationLevel::Account);
        let sandbox = protections(IsolationLevel::AccountSandbox);
        assert!(process.len() < account.len() && account.len() < sandbox.len());
        assert!(process[0].contains("no controlling terminal"), "{process:?}");
        let text = sandbox.join("; ");
        for needed in ["fd 3", "1024 MiB of address space", "64 processes", "seccomp", "TIOCSTI", "chmod"] {
            assert!(text.contains(needed), "{needed} missing from: {text}");
        }
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
