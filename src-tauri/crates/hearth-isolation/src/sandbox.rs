//! The kernel sandbox: level "account + sandbox".
//!
//! On Linux a worker is confined by three layers, all set up between `fork` and `exec`:
//!
//! - `no_new_privs`: nothing it executes can gain privileges (setuid binaries, file caps);
//! - Landlock: the file system shrinks to what a Rust binary needs to run — read + execute
//!   `/usr`, `/lib`, `/lib64`, `/bin` and the worker binary itself; read `/etc/ld.so.cache`,
//!   `/etc/ld.so.preload`, `/etc/localtime`, `/etc/timezone`, `/dev/urandom`, `/dev/random` and
//!   its own `/proc/<pid>`; read + write `/dev/null`; and read + write (not execute) its member
//!   directory. TCP bind and connect are handled with no rule allowing them (ABI ≥ 4), and with
//!   ABI ≥ 6 it can neither signal processes outside its sandbox nor reach abstract Unix sockets
//!   created outside it. Connecting to a *named* Unix socket (the gateway's) is not something
//!   Landlock governs, so it keeps working;
//! - seccomp: sockets of any family but `AF_UNIX`, and the kernel's attack surface a worker
//!   never needs (ptrace, process_vm_*, mount and the new mount API, kexec, bpf, perf, keyrings,
//!   modules, reboot, swap, namespaces via unshare/setns/clone flags, io_uring, userfaultfd,
//!   pivot_root) fail with `EPERM`; `clone3` fails with `ENOSYS` so the C library falls back to
//!   `clone`, whose flags the filter can see. A system call from a foreign architecture (or the
//!   x32 ABI) kills the process.
//!
//! [`SandboxPlan::prepare`] does everything that can fail or allocate in the parent: it opens
//! every allowed path (`O_PATH`), proves the kernel accepts the rules, and assembles the BPF
//! program. [`apply_in_child`] then only makes system calls. The Landlock ruleset itself is
//! created in the child from the plan's descriptors, because only the child can name its own
//! `/proc/<pid>`, and a ruleset shared between spawns would collect every child's rule.
//!
//! macOS: not implemented — [`SandboxPlan::prepare`] returns [`SandboxError::Unsupported`]. The
//! intended follow-up is a Seatbelt profile (deny by default; allow `process-exec` of the worker
//! and reads of system paths; `file-read*`/`file-write*` under the member directory; allow
//! `network-outbound` only to the gateway's Unix socket path) applied with `sandbox_init` in the
//! child, which is how Chromium and Firefox sandbox their helpers.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("the kernel sandbox is not available: {0}")]
    Unsupported(String),
    #[error("cannot open {path} for the sandbox rules: {source}")]
    Path { path: PathBuf, source: std::io::Error },
    #[error("the kernel refused the sandbox rules: {0}")]
    Rules(std::io::Error),
}

/// What the running kernel offers, for `hearth doctor` and for choosing the isolation level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxSupport {
    /// The Landlock ABI version, `None` when Landlock is absent or disabled.
    pub landlock_abi: Option<u32>,
    /// Whether seccomp filters can be installed (and a filter exists for this architecture).
    pub seccomp: bool,
    /// The same in words, with what is missing and how to get it.
    pub detail: String,
}

#[cfg(target_os = "linux")]
mod landlock;
#[cfg(target_os = "linux")]
mod seccomp;

/// Everything needed to sandbox one member's worker, prepared before `fork`. Share it between
/// restarts of the same member (it holds a few `O_PATH` descriptors, all close-on-exec).
pub struct SandboxPlan {
    /// The one directory the worker may write to.
    member_dir: PathBuf,
    #[cfg(target_os = "linux")]
    landlock: landlock::Plan,
    #[cfg(target_os = "linux")]
    filter: Vec<libc::sock_filter>,
}

impl SandboxPlan {
    /// The member directory this plan allows writing to.
    pub fn member_dir(&self) -> &Path {
        &self.member_dir
    }
}

impl std::fmt::Debug for SandboxPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.summary())
    }
}

#[cfg(target_os = "linux")]
impl SandboxPlan {
    /// Opens the allowed paths, checks the kernel accepts the rules, and builds the seccomp
    /// program. `member_dir` must exist and not be a symbolic link; `exe` is the binary that
    /// will be executed (the only file outside system paths the worker may execute).
    pub fn prepare(member_dir: &Path, exe: &Path) -> Result<SandboxPlan, SandboxError> {
        let abi = landlock::abi().map_err(SandboxError::Unsupported)?;
        let filter = seccomp::program().ok_or_else(|| {
            SandboxError::Unsupported(format!("no seccomp filter is written for {}", std::env::consts::ARCH))
        })?;
        if !seccomp::available() {
            return Err(SandboxError::Unsupported(
                "this kernel cannot install seccomp filters (it needs CONFIG_SECCOMP_FILTER)".into(),
            ));
        }
        let landlock = landlock::Plan::prepare(abi, member_dir, exe)?;
        landlock.check().map_err(SandboxError::Rules)?;
        Ok(SandboxPlan { member_dir: member_dir.to_owned(), landlock, filter })
    }

    /// One line saying what the plan allows, for logs and `hearth doctor`.
    pub fn summary(&self) -> String {
        format!("{}; network: Unix sockets only ({} seccomp instructions)", self.landlock.summary(), self.filter.len())
    }
}

/// Applies the plan to the calling process. Meant for the forked child before `exec`: it makes
/// only system calls (prctl, open/close, landlock_*, seccomp) and does not allocate.
#[cfg(target_os = "linux")]
pub fn apply_in_child(plan: &SandboxPlan) -> std::io::Result<()> {
    // SAFETY: plain system calls with valid pointers into `plan`, which outlives them.
    unsafe {
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        plan.landlock.restrict_self()?;
        seccomp::install(&plan.filter)
    }
}

/// What the kernel offers, in words.
#[cfg(target_os = "linux")]
pub fn support() -> SandboxSupport {
    let landlock = landlock::abi();
    let filter = seccomp::program().is_some();
    let seccomp = filter && seccomp::available();
    let mut detail = match &landlock {
        Ok(abi) => landlock::describe(*abi),
        Err(why) => why.clone(),
    };
    detail.push_str(match (seccomp, filter) {
        (true, _) => "; seccomp filters: available",
        (false, false) => "; seccomp: no filter is written for this CPU architecture (x86_64 and aarch64 are)",
        (false, true) => "; seccomp: this kernel cannot install filters (it needs CONFIG_SECCOMP_FILTER)",
    });
    SandboxSupport { landlock_abi: landlock.ok(), seccomp, detail }
}

#[cfg(not(target_os = "linux"))]
const NOT_HERE: &str = "the kernel sandbox is implemented for Linux (Landlock + seccomp) only; the macOS Seatbelt profile is a planned follow-up";

#[cfg(not(target_os = "linux"))]
impl SandboxPlan {
    pub fn prepare(_member_dir: &Path, _exe: &Path) -> Result<SandboxPlan, SandboxError> {
        Err(SandboxError::Unsupported(NOT_HERE.into()))
    }

    pub fn summary(&self) -> String {
        NOT_HERE.into()
    }
}

#[cfg(not(target_os = "linux"))]
pub fn apply_in_child(_plan: &SandboxPlan) -> std::io::Result<()> {
    Err(std::io::Error::from(std::io::ErrorKind::Unsupported))
}

#[cfg(not(target_os = "linux"))]
pub fn support() -> SandboxSupport {
    SandboxSupport { landlock_abi: None, seccomp: false, detail: NOT_HERE.into() }
}
