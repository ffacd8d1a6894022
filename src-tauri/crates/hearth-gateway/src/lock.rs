//! One gateway per data directory: an exclusive lock on `<data dir>/gateway.lock`, held for the
//! process's life. A backup or a restore that runs while no gateway serves takes the same lock
//! ([`lock_at`], through the opened folder), so the two never work on one folder at once.

use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use hearth_isolation::fsat;
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use crate::paths::DataDir;

/// Takes the data directory's lock: an exclusive, non-blocking `flock` held as long as the file
/// is open (the kernel drops it if we crash). [`AlreadyServing`] when another process holds it.
pub(crate) fn take_lock(dir: &DataDir) -> anyhow::Result<File> {
    let path = dir.lock_file();
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("open {}", path.display()))?;
    // SAFETY: flock on a descriptor we own.
    let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if r != 0 {
        return Err(AlreadyServing { data_dir: dir.root().to_owned() }.into());
    }
    Ok(file)
}

/// The lock file's name in the data directory.
const LOCK: &str = "gateway.lock";

/// The data directory's lock (`gateway.lock`, the one a gateway holds), taken through the opened
/// directory. A lock file this process creates as root in someone else's data directory is
/// handed to that owner (the gateway must open it later); an existing one is only opened, never
/// through a link, and never changed.
pub(crate) fn lock_at(data: &OwnedFd, data_path: &Path) -> anyhow::Result<File> {
    let path = data_path.join(LOCK);
    let create = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let fd = match nix::fcntl::openat(data, LOCK, create, Mode::from_bits_truncate(0o600)) {
        Ok(fd) => {
            let owner = nix::sys::stat::fstat(data)?;
            if nix::unistd::geteuid().is_root() && owner.st_uid != 0 {
                nix::unistd::fchown(
                    &fd,
                    Some(nix::unistd::Uid::from_raw(owner.st_uid)),
                    Some(nix::unistd::Gid::from_raw(owner.st_gid)),
                )?;
            }
            fd
        }
        Err(Errno::EEXIST) => {
            let (file, _) =
                fsat::open_file_at(data, LOCK).map_err(|e| anyhow::anyhow!("open {}: {e}", path.display()))?;
            OwnedFd::from(file)
        }
        Err(e) => return Err(anyhow::anyhow!("open {}: {e}", path.display())),
    };
    // SAFETY: flock on a descriptor we own.
    if unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Err(AlreadyServing { data_dir: data_path.to_owned() }.into());
    }
    Ok(File::from(fd))
}

/// Another gateway (the app, or `hearth serve`) holds the data directory. Returned inside the
/// `anyhow::Error` of [`Gateway::start`](crate::Gateway::start); callers may downcast to it.
#[derive(Debug, thiserror::Error)]
#[error("another Hearth gateway is already serving {} (the app, or `hearth serve`). Stop it first, or use a different --data-dir", data_dir.display())]
pub struct AlreadyServing {
    pub data_dir: PathBuf,
}
