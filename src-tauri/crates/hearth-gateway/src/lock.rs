//! One gateway per data directory: an exclusive lock on `<data dir>/gateway.lock`, held for the
//! process's life. A backup or a restore that runs while no gateway serves takes the same lock
//! ([`lock_at`], through the opened folder), so the two never work on one folder at once.
//!
//! Beside the lock, `gateway.running` says a gateway was serving: written at start, removed at a
//! clean shutdown ([`mark_running`], [`mark_stopped`]). Found at start, it means the last run
//! ended without one — a power cut, `kill -9`, a crash — which the admins are told.

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

/// The marker's name in the data directory.
const RUNNING: &str = "gateway.running";

/// Records that a gateway serves the folder (the lock must be held). `true` when the marker was
/// already there: the previous run did not stop cleanly.
pub(crate) fn mark_running(dir: &DataDir) -> std::io::Result<bool> {
    let path = dir.root().join(RUNNING);
    let unclean = std::fs::symlink_metadata(&path).is_ok();
    if unclean {
        // A link someone put there is removed, never followed.
        std::fs::remove_file(&path)?;
    }
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file =
        std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).custom_flags(libc::O_NOFOLLOW).open(&path)?;
    writeln!(file, "{}", std::process::id())?;
    Ok(unclean)
}

/// Records a clean shutdown: the next start finds no marker.
pub(crate) fn mark_stopped(dir: &DataDir) {
    if let Err(e) = std::fs::remove_file(dir.root().join(RUNNING))
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(error = %e, "could not note the clean shutdown; the next start will report an unexpected stop");
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_marker_left_behind_means_an_unclean_stop() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = super::DataDir::new(tmp.path());
        assert!(!super::mark_running(&dir).unwrap(), "first start");
        super::mark_stopped(&dir);
        assert!(!super::mark_running(&dir).unwrap(), "after a clean stop");
        assert!(super::mark_running(&dir).unwrap(), "after a run that never stopped");
    }
}
