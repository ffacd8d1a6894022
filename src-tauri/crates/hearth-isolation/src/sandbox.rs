//! The kernel sandbox: level "account + sandbox".
//!
//! On Linux a worker is confined by three layers, all set up between `fork` and `exec`, after the
//! worker has become its member and has its connection to the gateway on fd 3
//! ([`crate::spawn`]):
//!
//! - `no_new_privs`: nothing it executes can gain privileges (setuid binaries, file caps);
//! - Landlock: the file system shrinks to what a Rust binary needs to run — read + execute
//!   `/usr`, `/lib`, `/lib64`, `/bin` and the worker binary itself; read `/etc/ld.so.cache`,
//!   `/etc/ld.so.preload`, `/etc/localtime`, `/etc/timezone`, `/dev/urandom`, `/dev/random` and
//!   its own `/proc/<pid>`; read + write `/dev/null`; and read + write (not execute) its member
//!   directory, where it can make no link, FIFO or device. TCP bind and connect are handled with
//!   no rule allowing them (ABI ≥ 4), and with ABI ≥ 6 it can neither signal processes outside
//!   its sandbox nor reach abstract Unix sockets created outside it;
//! - seccomp ([`seccomp`]): an allowlist of the system calls a worker makes; everything else
//!   fails with `EPERM`. No socket can be made or connected (`socket`, `connect`, `bind`,
//!   `listen`, `accept*`), so no named Unix socket elsewhere on the machine — the D-Bus system
//!   bus, systemd-resolved, `/dev/log` — can be reached, which Landlock does not govern;
//!   `ioctl` is limited to a handful of descriptor requests, so `TIOCSTI` / `TIOCLINUX` fail on
//!   any descriptor; `chmod` and `umask` cannot give group or other any access; no namespaces,
//!   no `ptrace`, mounts, BPF, keyrings, modules, `io_uring`, links or extended attributes. A
//!   system call from a foreign architecture (or the x32 ABI) kills the process.
//!
//! [`SandboxPlan::prepare`] does everything that can fail or allocate in the parent: it opens
//! every allowed path (`O_PATH`), proves the kernel accepts the rules, and assembles the BPF
//! program. [`apply_in_child`] then only makes system calls. The Landlock ruleset itself is
//! created in the child from the plan's descriptors, because only the child can name its own
//! `/proc/<pid>`, and a ruleset shared between spawns would collect every child's rule.
//!
//! On macOS the same intent is a Seatbelt profile ([`crate::seatbelt`]): deny by default on
//! Apple's `system.sb` baseline; execute only the worker binary; read and write only under the
//! member directory, with no links made there; no network at all. Nothing happens between `fork`
//! and `exec` there: the worker is started through `/usr/bin/sandbox-exec`, which compiles and
//! applies the profile in a fresh process and then executes the worker ([`crate::spawn`]).
//! [`SandboxPlan::prepare`] canonicalizes the paths the profile names and checks, once per
//! process, that this macOS runs a program under such a profile.
//!
//! Elsewhere [`SandboxPlan::prepare`] returns [`SandboxError::Unsupported`].

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
    /// macOS: whether `/usr/bin/sandbox-exec` is safe to run and ran a program under Hearth's
    /// Seatbelt profile. Always `false` elsewhere.
    pub seatbelt: bool,
    /// The same in words, with what is missing and how to get it.
    pub detail: String,
}

impl SandboxSupport {
    /// Whether level "account + sandbox" can be had: Landlock and seccomp on Linux, Seatbelt on
    /// macOS.
    pub fn available(&self) -> bool {
        (self.landlock_abi.is_some() && self.seccomp) || self.seatbelt
    }
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
    /// The canonical paths the Seatbelt profile names; the profile itself is written at each
    /// start, when the gateway's socket is known.
    #[cfg(target_os = "macos")]
    seatbelt: crate::seatbelt::ProfilePaths,
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
        format!("{}; {}", self.landlock.summary(), seccomp_summary(self.filter.len()))
    }
}

/// What the seccomp filter refuses, in words, for `hearth doctor`.
pub fn seccomp_protections() -> String {
    #[cfg(target_os = "linux")]
    let allowed = seccomp::allowed_count();
    #[cfg(not(target_os = "linux"))]
    let allowed = 0;
    format!(
        "seccomp: an allowlist of {allowed} system calls, everything else refused; no socket, connect, bind, listen or accept (only the inherited connection); ioctl only FIONBIO, FIOCLEX, FIONCLEX and FIONREAD, so no TIOCSTI or TIOCLINUX on any descriptor; chmod and umask never give group or other access; no namespaces, ptrace, mounts, links, extended attributes or io_uring"
    )
}

/// What the seccomp filter does, in words.
#[cfg(target_os = "linux")]
fn seccomp_summary(instructions: usize) -> String {
    format!(
        "seccomp: an allowlist of {} system calls ({instructions} instructions), the rest refused; no socket, connect, bind, listen or accept; ioctl only FIONBIO/FIOCLEX/FIONCLEX/FIONREAD (no TIOCSTI, no TIOCLINUX); chmod and umask never give group or other access",
        seccomp::allowed_count()
    )
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
        (true, _) => "; seccomp filters: available (workers get an allowlist: no sockets, no terminal ioctls, no chmod for group or other)",
        (false, false) => "; seccomp: no filter is written for this CPU architecture (x86_64 and aarch64 are)",
        (false, true) => "; seccomp: this kernel cannot install filters (it needs CONFIG_SECCOMP_FILTER)",
    });
    SandboxSupport { landlock_abi: landlock.ok(), seccomp, seatbelt: false, detail }
}

#[cfg(target_os = "macos")]
impl SandboxPlan {
    /// Checks `/usr/bin/sandbox-exec` and that this macOS runs a program under Hearth's profile
    /// (once per process), then canonicalizes the member directory and the worker binary — the
    /// only file outside system paths the worker may execute. `member_dir` must exist and not
    /// be a symbolic link.
    pub fn prepare(member_dir: &Path, exe: &Path) -> Result<SandboxPlan, SandboxError> {
        crate::seatbelt::probe().map_err(SandboxError::Unsupported)?;
        crate::seatbelt::check_sandbox_exec().map_err(SandboxError::Unsupported)?;
        let seatbelt = crate::seatbelt::ProfilePaths::resolve(member_dir, exe)?;
        Ok(SandboxPlan { member_dir: member_dir.to_owned(), seatbelt })
    }

    /// One line saying what the plan allows, for logs and `hearth doctor`.
    pub fn summary(&self) -> String {
        let p = &self.seatbelt;
        let bundle = p.bundle.as_ref().map(|b| format!(", its bundle {}", b.display())).unwrap_or_default();
        format!(
            "Seatbelt via {}: read-write {} (no links made there, its folders never opened to others, no ACLs); execute {}; read system paths (Apple's system.sb){bundle}; no network (the gateway connection is inherited)",
            crate::seatbelt::SANDBOX_EXEC,
            p.member_dir.display(),
            p.exe.display(),
        )
    }

    /// The arguments for `/usr/bin/sandbox-exec` that run `exe args…` under this plan's profile.
    /// `exe` must be the binary the plan was prepared for. Runs in the parent: it allocates and
    /// looks at the file system.
    pub fn sandbox_exec_args(
        &self,
        exe: &Path,
        args: &[std::ffi::OsString],
    ) -> Result<Vec<std::ffi::OsString>, SandboxError> {
        use crate::seatbelt;
        let real = std::fs::canonicalize(exe).map_err(|source| SandboxError::Path { path: exe.to_owned(), source })?;
        if real != self.seatbelt.exe {
            return Err(SandboxError::Path {
                path: exe.to_owned(),
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!("the sandbox plan was prepared for {}", self.seatbelt.exe.display()),
                ),
            });
        }
        let profile = seatbelt::profile(&self.seatbelt)?;
        Ok(seatbelt::sandbox_exec_args(profile, &self.seatbelt.exe, args))
    }
}

/// What this Mac offers, in words.
#[cfg(target_os = "macos")]
pub fn support() -> SandboxSupport {
    let (seatbelt, detail) = match crate::seatbelt::probe() {
        Ok(()) => (true, crate::seatbelt::DESCRIPTION.to_owned()),
        Err(why) => (false, why),
    };
    SandboxSupport { landlock_abi: None, seccomp: false, seatbelt, detail }
}

/// Outside Linux nothing is applied between `fork` and `exec`: on macOS `sandbox-exec` applies
/// the profile after `exec` (`SandboxPlan::sandbox_exec_args`, used by [`crate::spawn`]).
#[cfg(not(target_os = "linux"))]
pub fn apply_in_child(_plan: &SandboxPlan) -> std::io::Result<()> {
    Err(std::io::Error::from(std::io::ErrorKind::Unsupported))
}

#[cfg(not(any(target_os = "linux", target_os = "macos")))]
const NOT_HERE: &str = "the kernel sandbox is implemented for Linux (Landlock + seccomp) and macOS (Seatbelt) only";

#[cfg(not(any(target_os = "linux", target_os = "macos")))]
impl SandboxPlan {
    pub fn prepare(_member_dir: &Path, _exe: &Path) -> Result<SandboxPlan, SandboxError> {
        Err(SandboxError::Unsupported(NOT_HERE.into()))
    }

    pub fn summary(&self) -> String {
        NOT_HERE.into()
    }
}

#[cfg(not(any(target_os = "linux", target_os = "macos")))]
pub fn support() -> SandboxSupport {
    SandboxSupport { landlock_abi: None, seccomp: false, seatbelt: false, detail: NOT_HERE.into() }
}
