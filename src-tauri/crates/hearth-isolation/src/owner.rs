//! Reading a folder with its owner's rights, not root's.
//!
//! When root copies a folder another uid owns (a member's, or the data folder of the `hearth`
//! user) it does not read it itself: a swapped link, a hard link or a database's `-shm` file
//! planted there would make root read or write what the owner never could. Instead root opens
//! the folder (through descriptors, checked) and starts a short-lived reader process **as the
//! folder's owner**: the `hearth` binary, given the opened folder on descriptor 3, writing what
//! it reads to a pipe. Whatever the owner planted, the reader can reach no more than the owner
//! can, and root only validates the stream and writes it where it chose
//! (`hearth_gateway::tree`).
//!
//! The reader is spawned like a worker, with less: its own session (no terminal), no
//! supplementary groups, the owner's uid and gid (real, effective, saved), `no_new_privs`, no
//! core dumps, an empty environment but `PATH` and `LANG`, stdin and stderr `/dev/null`, and no
//! descriptor but the folder and the pipe.

use std::ffi::OsString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};

use nix::sys::stat::FileStat;

/// Descriptor number the reader finds its folder on.
pub const FOLDER_FD: RawFd = 3;

/// A reader may write files up to this size (its snapshots of databases); `EFBIG` beyond.
const LIMIT_FSIZE: libc::rlim_t = 64 << 30;
const LIMIT_NOFILE: libc::rlim_t = 256;

/// Whose rights a reader of a folder with `st` takes: `None` for this process itself (it is not
/// root, so it can only read what it may anyway, or the folder is root's own), else the
/// folder's owner.
pub fn reader_for(st: &FileStat) -> Option<(u32, u32)> {
    if !nix::unistd::geteuid().is_root() || st.st_uid == 0 {
        return None;
    }
    Some((st.st_uid, owner_gid(st.st_uid, st.st_gid)))
}

/// The group a reader runs in: the owner's primary group from the account database; for a uid
/// with no account, the folder's group — unless that is root's, which no reader is given.
fn owner_gid(uid: u32, folder_gid: u32) -> u32 {
    match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
        Ok(Some(user)) => user.gid.as_raw(),
        _ if folder_gid != 0 => folder_gid,
        // `nogroup`: no group's rights at all.
        _ => 65_534,
    }
}

/// The binary to run a reader from when it is this process's own: on Linux `/proc/self/exe`,
/// which reaches the very file being run without passing through the directories above it (the
/// owner may not be able to), and survives an upgrade that replaced the file on disk.
pub fn this_binary() -> io::Result<PathBuf> {
    if cfg!(target_os = "linux") { Ok(PathBuf::from("/proc/self/exe")) } else { std::env::current_exe() }
}

/// A running reader: the process and the pipe it writes to.
pub struct Reader {
    pub child: Child,
    pub out: ChildStdout,
}

/// Starts `exe args` as `uid`:`gid` with `folder` on descriptor [`FOLDER_FD`] and its stdout a
/// pipe. Refuses uid 0: a reader never runs as root. Must be called as root.
pub fn spawn_reader(exe: &Path, args: &[OsString], uid: u32, gid: u32, folder: BorrowedFd<'_>) -> io::Result<Reader> {
    if uid == 0 || gid == 0 {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "a reader never runs as root"));
    }
    let folder_fd = folder.as_raw_fd();
    let mut command = Command::new(exe);
    command
        .args(args)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("LANG", "C.UTF-8")
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    // SAFETY: the closure runs in the forked child before exec and only makes async-signal-safe
    // system calls; it allocates nothing.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut command, move || {
            // A session of its own: no controlling terminal to type into.
            if libc::setsid() == -1 {
                return Err(io::Error::last_os_error());
            }
            if folder_fd == FOLDER_FD {
                if libc::fcntl(FOLDER_FD, libc::F_SETFD, 0) == -1 {
                    return Err(io::Error::last_os_error());
                }
            } else if libc::dup2(folder_fd, FOLDER_FD) == -1 {
                return Err(io::Error::last_os_error());
            }
            libc::umask(0o077);
            for (resource, value) in
                [(libc::RLIMIT_CORE, 0), (libc::RLIMIT_FSIZE, LIMIT_FSIZE), (libc::RLIMIT_NOFILE, LIMIT_NOFILE)]
            {
                let lim = libc::rlimit { rlim_cur: value, rlim_max: value };
                if libc::setrlimit(resource, &lim) != 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            crate::spawn::become_account(uid, gid)?;
            crate::spawn::mark_cloexec_from(FOLDER_FD + 1);
            Ok(())
        });
    }
    let mut child = command.spawn()?;
    let out = child.stdout.take().ok_or_else(|| io::Error::other("the reader has no output pipe"))?;
    Ok(Reader { child, out })
}
