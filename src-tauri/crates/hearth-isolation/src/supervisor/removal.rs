//! The end of a member's account when the member is removed: whatever still runs as it is
//! killed (by a short-lived child that becomes the account, so it can signal nothing else),
//! then the account is deleted.

use std::io;
use std::time::Duration;

use crate::{IsolationError, accounts};

/// Deletes the account, retrying briefly: the kernel may take a moment to let go of processes
/// that were just killed, and `userdel` refuses while any is left.
pub(super) fn remove_account_retrying(member_id: &str) -> Result<(), IsolationError> {
    let mut tries = 0;
    loop {
        match accounts::remove_account(member_id) {
            Ok(()) => return Ok(()),
            Err(e) if tries < 20 => {
                tries += 1;
                tracing::debug!(error = %e, "account removal failed; retrying");
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Kills every process running as `uid`: a forked child becomes that account and sends SIGKILL
/// to every process it may signal — exactly that account's (uid is never 0 here).
pub(super) fn kill_processes_of(uid: u32, gid: u32) -> io::Result<()> {
    if uid == 0 {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "refusing to kill root's processes"));
    }
    // SAFETY: after fork the child makes only async-signal-safe system calls and leaves with
    // `_exit`; the parent waits for exactly that child.
    unsafe {
        let pid = libc::fork();
        if pid < 0 {
            return Err(io::Error::last_os_error());
        }
        if pid == 0 {
            let mut ok = libc::setgroups(0, std::ptr::null()) == 0;
            #[cfg(target_os = "linux")]
            {
                ok = ok && libc::setresgid(gid, gid, gid) == 0 && libc::setresuid(uid, uid, uid) == 0;
            }
            #[cfg(not(target_os = "linux"))]
            {
                ok = ok && libc::setgid(gid) == 0 && libc::setuid(uid) == 0;
            }
            if ok && libc::getuid() == uid && libc::geteuid() == uid {
                libc::kill(-1, libc::SIGKILL);
                libc::_exit(0);
            }
            libc::_exit(1);
        }
        let mut status = 0;
        loop {
            if libc::waitpid(pid, &mut status, 0) == pid {
                break;
            }
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EINTR) {
                return Err(e);
            }
        }
        // Where kill(-1) includes the sender itself, the child dies of it: that is success too.
        let done = (libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0)
            || (libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGKILL);
        if !done {
            return Err(io::Error::other("the helper could not become the member's account"));
        }
    }
    Ok(())
}
