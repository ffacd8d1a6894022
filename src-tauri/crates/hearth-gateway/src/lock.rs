//! One gateway per data directory: an exclusive lock on `<data dir>/gateway.lock`, held for the
//! process's life. A backup or a restore that runs while no gateway serves takes the same lock,
//! so the two never work on one folder at once.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::PathBuf;

use anyhow::Context as _;

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

/// Another gateway (the app, or `hearth serve`) holds the data directory. Returned inside the
/// `anyhow::Error` of [`Gateway::start`](crate::Gateway::start); callers may downcast to it.
#[derive(Debug, thiserror::Error)]
#[error("another Hearth gateway is already serving {} (the app, or `hearth serve`). Stop it first, or use a different --data-dir", data_dir.display())]
pub struct AlreadyServing {
    pub data_dir: PathBuf,
}
