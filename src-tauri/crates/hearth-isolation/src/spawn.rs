//! Starting one member's worker.
//!
//! The gateway and the worker talk over one end each of a Unix socket pair created here; the
//! worker's end arrives as fd 3 (`HEARTH_WORKER_FD=3`). Because the gateway holds the other end,
//! the connection itself says which member a frame comes from — a worker cannot claim to be
//! someone else. (With per-member accounts the gateway additionally checks the kernel-reported
//! peer uid.)
//!
//! Nothing secret crosses into the child: the environment is cleared down to an allowlist, and
//! every descriptor but stdio and the socket is closed on exec.

use std::ffi::OsString;
use std::os::fd::{AsRawFd, RawFd};
use std::path::PathBuf;
use std::process::Stdio;

use hearth_proto::control::IsolationLevel;

use crate::IsolationError;

/// Descriptor number the worker finds its socket on.
pub const WORKER_FD: RawFd = 3;

/// Environment variables passed through from the gateway when set. Everything else is dropped:
/// the gateway's environment may hold provider keys (`OPENAI_API_KEY` for `--api-key-env`).
const PASSTHROUGH_ENV: &[&str] = &["RUST_LOG", "RUST_BACKTRACE", "TZ", "LANG"];

/// What to run for one member.
#[derive(Debug, Clone)]
pub struct WorkerCommand {
    /// The `hearth` binary (or any binary speaking the worker protocol).
    pub exe: PathBuf,
    /// Arguments, typically `["worker"]`.
    pub args: Vec<OsString>,
    pub member_id: String,
    /// `<data>/members/<id>`, already prepared (0700).
    pub member_dir: PathBuf,
}

/// A running worker: the child process (killed when dropped) and the gateway's end of the
/// socket.
#[derive(Debug)]
pub struct SpawnedWorker {
    pub child: tokio::process::Child,
    pub stream: tokio::net::UnixStream,
    pub pid: u32,
    pub level: IsolationLevel,
}

/// The environment a worker starts with: the allowlist, nothing else.
pub fn worker_env(cmd: &WorkerCommand) -> Vec<(OsString, OsString)> {
    let mut env: Vec<(OsString, OsString)> = vec![
        ("HEARTH_WORKER_FD".into(), WORKER_FD.to_string().into()),
        ("HEARTH_MEMBER_DIR".into(), cmd.member_dir.clone().into_os_string()),
        ("HEARTH_MEMBER_ID".into(), cmd.member_id.clone().into()),
        ("HOME".into(), cmd.member_dir.clone().into_os_string()),
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

/// Starts the worker at isolation level "process": same OS user as the gateway, own process
/// group, cleared environment, umask 077, no core dumps, only stdio and fd 3 open.
pub fn spawn_worker(cmd: &WorkerCommand) -> Result<SpawnedWorker, IsolationError> {
    let (ours, theirs) = std::os::unix::net::UnixStream::pair().map_err(IsolationError::Socket)?;
    ours.set_nonblocking(true).map_err(IsolationError::Socket)?;
    let child_fd = theirs.as_raw_fd();

    let mut command = tokio::process::Command::new(&cmd.exe);
    command
        .args(&cmd.args)
        .env_clear()
        .envs(worker_env(cmd))
        .current_dir(&cmd.member_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .process_group(0)
        .kill_on_drop(true);
    // SAFETY: the closure runs in the forked child before exec and only makes
    // async-signal-safe system calls (dup2, fcntl, umask, setrlimit, close_range).
    unsafe {
        command.pre_exec(move || prepare_child(child_fd));
    }
    let child = command
        .spawn()
        .map_err(|source| IsolationError::Spawn { exe: cmd.exe.clone(), source })?;
    drop(theirs);
    let pid = child.id().unwrap_or(0);
    let stream = tokio::net::UnixStream::from_std(ours).map_err(IsolationError::Socket)?;
    Ok(SpawnedWorker { child, stream, pid, level: IsolationLevel::Process })
}

/// Runs in the child between fork and exec.
fn prepare_child(child_fd: RawFd) -> std::io::Result<()> {
    // SAFETY: plain system calls on descriptors this process owns.
    unsafe {
        if child_fd == WORKER_FD {
            if libc::fcntl(WORKER_FD, libc::F_SETFD, 0) == -1 {
                return Err(std::io::Error::last_os_error());
            }
        } else if libc::dup2(child_fd, WORKER_FD) == -1 {
            return Err(std::io::Error::last_os_error());
        }
        libc::umask(0o077);
        let no_core = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        libc::setrlimit(libc::RLIMIT_CORE, &no_core);
        mark_cloexec_from(WORKER_FD + 1);
    }
    Ok(())
}

/// Marks every descriptor from `first` up close-on-exec. Marking instead of closing keeps the
/// standard library's own exec-error pipe working (it is already close-on-exec).
unsafe fn mark_cloexec_from(first: RawFd) {
    #[cfg(target_os = "linux")]
    {
        const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
        // SAFETY: close_range with the CLOEXEC flag only changes descriptor flags.
        let r = unsafe { libc::syscall(libc::SYS_close_range, first as libc::c_uint, libc::c_uint::MAX, CLOSE_RANGE_CLOEXEC) };
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
        let dir = crate::dirs::prepare_member_dir(data.path(), "ana").unwrap();
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
        };
        let mut w = spawn_worker(&cmd).unwrap();
        let mut out = String::new();
        w.stream.read_to_string(&mut out).await.unwrap();
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
            let allowed = ["HEARTH_WORKER_FD", "HEARTH_MEMBER_DIR", "HEARTH_MEMBER_ID", "HOME", "PATH", "LANG", "PWD", "SHLVL", "_", "umask", "fds", "RUST_LOG", "RUST_BACKTRACE", "TZ", "OLDPWD"];
            assert!(allowed.contains(&key), "unexpected env var {key} in worker");
        }
    }

    #[tokio::test]
    async fn the_gateway_end_talks_to_the_child() {
        let data = tempfile::tempdir().unwrap();
        let dir = crate::dirs::prepare_member_dir(data.path(), "bo").unwrap();
        let cmd = WorkerCommand {
            exe: "/bin/sh".into(),
            args: vec!["-c".into(), "read line <&3; echo \"got $line\" >&3".into()],
            member_id: "bo".into(),
            member_dir: dir,
        };
        let mut w = spawn_worker(&cmd).unwrap();
        w.stream.write_all(b"hello\n").await.unwrap();
        let mut out = String::new();
        w.stream.read_to_string(&mut out).await.unwrap();
        assert_eq!(out.trim(), "got hello");
    }

    #[test]
    fn a_missing_binary_is_a_clear_error() {
        let data = tempfile::tempdir().unwrap();
        let dir = crate::dirs::prepare_member_dir(data.path(), "cy").unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let _g = rt.enter();
        let cmd = WorkerCommand { exe: "/nonexistent/hearth".into(), args: vec![], member_id: "cy".into(), member_dir: dir };
        let err = spawn_worker(&cmd).unwrap_err().to_string();
        assert!(err.contains("/nonexistent/hearth"), "{err}");
    }
}
