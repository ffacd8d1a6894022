//! Landlock through its three system calls (no crate: the interface is three calls and three
//! structs, and the child side must not allocate).

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use super::SandboxError;

const CREATE_RULESET_VERSION: libc::c_uint = 1 << 0;
const RULE_PATH_BENEATH: libc::c_int = 1;
const RESTRICT_SELF_LOG_SAME_EXEC_OFF: libc::c_uint = 1 << 0;
const RESTRICT_SELF_LOG_NEW_EXEC_ON: libc::c_uint = 1 << 1;

// File system access rights (ABI 1 unless noted).
const EXECUTE: u64 = 1 << 0;
const WRITE_FILE: u64 = 1 << 1;
const READ_FILE: u64 = 1 << 2;
const READ_DIR: u64 = 1 << 3;
const REMOVE_DIR: u64 = 1 << 4;
const REMOVE_FILE: u64 = 1 << 5;
const MAKE_DIR: u64 = 1 << 7;
const MAKE_REG: u64 = 1 << 8;
/// ABI 2: link or rename a file into another directory.
const REFER: u64 = 1 << 13;
/// ABI 3.
const TRUNCATE: u64 = 1 << 14;
/// ABI 5.
const IOCTL_DEV: u64 = 1 << 15;
/// Rights that make sense on a file (as opposed to a directory).
const FILE_RIGHTS: u64 = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV;

// ABI 4: network.
const NET_BIND_TCP: u64 = 1 << 0;
const NET_CONNECT_TCP: u64 = 1 << 1;
// ABI 6: scopes.
const SCOPE_ABSTRACT_UNIX_SOCKET: u64 = 1 << 0;
const SCOPE_SIGNAL: u64 = 1 << 1;

const READ_EXEC: u64 = READ_FILE | READ_DIR | EXECUTE;
/// The member directory: everything a worker does with its own files, but not executing them,
/// and no device nodes, sockets, FIFOs or symbolic links. A worker needs none of those; a link
/// planted in its own folder is how a compromised one would try to make root (a backup, an
/// export) read something else in its name, so it cannot make one.
const MEMBER_RW: u64 =
    READ_FILE | READ_DIR | WRITE_FILE | TRUNCATE | REMOVE_DIR | REMOVE_FILE | MAKE_DIR | MAKE_REG | REFER;

/// Read + execute: where the worker's code and its shared libraries live.
const SYSTEM_DIRS: &[&str] = &["/usr", "/lib", "/lib64", "/bin"];
/// Single files read at start-up by the dynamic loader or for the local time.
const READ_FILES: &[&str] =
    &["/etc/ld.so.cache", "/etc/ld.so.preload", "/etc/localtime", "/etc/timezone", "/dev/urandom", "/dev/random"];
const READ_WRITE_FILES: &[&str] = &["/dev/null"];

#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct RulesetAttr {
    handled_access_fs: u64,
    handled_access_net: u64,
    scoped: u64,
}

#[repr(C, packed)]
struct PathBeneathAttr {
    allowed_access: u64,
    parent_fd: i32,
}

/// The Landlock ABI version, or why there is none.
pub(super) fn abi() -> Result<u32, String> {
    // SAFETY: the documented way to ask for the version: no attribute, size 0.
    let r = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<RulesetAttr>(),
            0usize,
            CREATE_RULESET_VERSION,
        )
    };
    if r >= 1 {
        return Ok(r as u32);
    }
    Err(match io::Error::last_os_error().raw_os_error() {
        Some(libc::ENOSYS) => {
            "this kernel has no Landlock (Linux 5.13 or later, built with CONFIG_SECURITY_LANDLOCK)".into()
        }
        Some(libc::EOPNOTSUPP) => {
            "Landlock is built into this kernel but not enabled: add `landlock` to the kernel's `lsm=` boot parameter"
                .into()
        }
        _ => format!("Landlock is not usable: {}", io::Error::last_os_error()),
    })
}

fn fs_rights(abi: u32) -> u64 {
    match abi {
        1 => (1 << 13) - 1,
        2 => (1 << 14) - 1,
        3 | 4 => (1 << 15) - 1,
        _ => (1 << 16) - 1,
    }
}

/// The ruleset attribute for an ABI, and the size the kernel of that ABI expects.
fn attr(abi: u32) -> (RulesetAttr, usize) {
    let attr = RulesetAttr {
        handled_access_fs: fs_rights(abi),
        handled_access_net: if abi >= 4 { NET_BIND_TCP | NET_CONNECT_TCP } else { 0 },
        scoped: if abi >= 6 { SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL } else { 0 },
    };
    let size = match abi {
        1..=3 => 8,
        4 | 5 => 16,
        _ => std::mem::size_of::<RulesetAttr>(),
    };
    (attr, size)
}

/// What an ABI adds, in words, including what it still cannot do.
pub(super) fn describe(abi: u32) -> String {
    let mut s = format!("Landlock ABI {abi}: file access");
    if abi >= 4 {
        s.push_str(", TCP bind/connect");
    } else {
        s.push_str(" (TCP is not covered by this ABI; seccomp still refuses network sockets)");
    }
    if abi >= 6 {
        s.push_str(", signal and abstract Unix socket scoping");
    } else {
        s.push_str(" (abstract Unix sockets and signals are not scoped before ABI 6)");
    }
    if abi >= 7 {
        s.push_str(", audit logging of denials");
    }
    s
}

struct Rule {
    /// `O_PATH`, close-on-exec.
    fd: OwnedFd,
    access: u64,
    path: PathBuf,
    /// (device, inode), to merge paths that resolve to the same directory.
    inode: (u64, u64),
}

/// The opened paths and the ruleset attributes for one member.
pub(super) struct Plan {
    abi: u32,
    attr: RulesetAttr,
    attr_size: usize,
    rules: Vec<Rule>,
}

impl Plan {
    pub(super) fn prepare(abi: u32, member_dir: &Path, exe: &Path) -> Result<Plan, SandboxError> {
        let (attr, attr_size) = attr(abi);
        let mut plan = Plan { abi, attr, attr_size, rules: Vec::new() };
        let nofollow_dir = libc::O_PATH | libc::O_CLOEXEC | libc::O_DIRECTORY | libc::O_NOFOLLOW;
        plan.add(member_dir, nofollow_dir, MEMBER_RW, true)?;
        plan.add(exe, libc::O_PATH | libc::O_CLOEXEC, READ_FILE | EXECUTE, true)?;
        for dir in SYSTEM_DIRS {
            plan.add(Path::new(dir), libc::O_PATH | libc::O_CLOEXEC | libc::O_DIRECTORY, READ_EXEC, false)?;
        }
        for file in READ_FILES {
            plan.add(Path::new(file), libc::O_PATH | libc::O_CLOEXEC, READ_FILE, false)?;
        }
        for file in READ_WRITE_FILES {
            plan.add(Path::new(file), libc::O_PATH | libc::O_CLOEXEC, READ_FILE | WRITE_FILE, false)?;
        }
        Ok(plan)
    }

    /// Opens `path` and records a rule for it. Optional paths that do not exist are skipped;
    /// a path that resolves to something already allowed (`/bin` → `/usr/bin`) is not added
    /// twice.
    fn add(&mut self, path: &Path, flags: libc::c_int, access: u64, required: bool) -> Result<(), SandboxError> {
        use std::os::unix::ffi::OsStrExt;
        let err = |source: io::Error| SandboxError::Path { path: path.to_owned(), source };
        let cpath = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(|e| err(e.into()))?;
        // SAFETY: a NUL-terminated path; the result is checked.
        let raw = unsafe { libc::open(cpath.as_ptr(), flags) };
        if raw < 0 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::ENOENT | libc::ENOTDIR) if !required => Ok(()),
                Some(libc::ELOOP) => {
                    Err(err(io::Error::other("it is a symbolic link, which the sandbox will not follow")))
                }
                _ => Err(err(e)),
            };
        }
        // SAFETY: `raw` was just opened and is owned by nothing else.
        let fd: OwnedFd = unsafe { std::os::fd::FromRawFd::from_raw_fd(raw) };
        let meta = std::fs::File::from(fd.try_clone().map_err(err)?).metadata().map_err(err)?;
        let ft = meta.file_type();
        let access = if ft.is_dir() {
            access
        } else if ft.is_file() || ft.is_char_device() {
            access & FILE_RIGHTS
        } else if required {
            return Err(err(io::Error::other("it is neither a file nor a directory")));
        } else {
            return Ok(());
        };
        let access = access & fs_rights(self.abi);
        use std::os::unix::fs::MetadataExt;
        let inode = (meta.dev(), meta.ino());
        if let Some(existing) = self.rules.iter_mut().find(|r| r.inode == inode) {
            existing.access |= access;
            return Ok(());
        }
        self.rules.push(Rule { fd, access, path: path.to_owned(), inode });
        Ok(())
    }

    /// Creates a ruleset with every rule of the plan; the caller owns the returned descriptor.
    /// Only system calls: usable in the child.
    fn build(&self) -> io::Result<RawFd> {
        // SAFETY: `attr` is a valid struct of at least `attr_size` bytes.
        let fd = unsafe {
            libc::syscall(libc::SYS_landlock_create_ruleset, &self.attr as *const RulesetAttr, self.attr_size, 0)
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let fd = fd as RawFd;
        for rule in &self.rules {
            if let Err(e) = add_rule(fd, rule.fd.as_raw_fd(), rule.access) {
                // SAFETY: closing the descriptor created above.
                unsafe { libc::close(fd) };
                return Err(e);
            }
        }
        Ok(fd)
    }

    /// Proves, in the parent, that the kernel accepts every rule.
    pub(super) fn check(&self) -> io::Result<()> {
        let fd = self.build()?;
        // SAFETY: closing the descriptor `build` created.
        unsafe { libc::close(fd) };
        Ok(())
    }

    /// Builds the ruleset, adds the calling process's own `/proc/<pid>` (read-only), and
    /// restricts the calling thread. Only system calls; for the child before `exec`.
    ///
    /// The `/proc/<pid>` rule is best effort: it is tied to the directory's inode, which the
    /// kernel may recreate if it drops the cached entry; reads under `/proc/self` then fail
    /// closed (`EACCES`). The worker must not depend on them.
    pub(super) fn restrict_self(&self) -> io::Result<()> {
        let ruleset = self.build()?;
        // SAFETY: constant NUL-terminated path; the descriptor is closed right after use.
        unsafe {
            let own = libc::open(c"/proc/self".as_ptr(), libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC);
            if own >= 0 {
                let _ = add_rule(ruleset, own, READ_FILE | READ_DIR);
                libc::close(own);
            }
        }
        let flags = if self.abi >= 7 { RESTRICT_SELF_LOG_SAME_EXEC_OFF | RESTRICT_SELF_LOG_NEW_EXEC_ON } else { 0 };
        // SAFETY: a ruleset descriptor we own.
        let r = unsafe { libc::syscall(libc::SYS_landlock_restrict_self, ruleset, flags) };
        let e = io::Error::last_os_error();
        // SAFETY: as above.
        unsafe { libc::close(ruleset) };
        if r != 0 { Err(e) } else { Ok(()) }
    }

    pub(super) fn summary(&self) -> String {
        let list = |want: fn(u64) -> bool| {
            self.rules
                .iter()
                .filter(|r| want(r.access))
                .map(|r| r.path.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!(
            "Landlock ABI {}: read-write {}; read-execute {}; read {}; TCP {}",
            self.abi,
            list(|a| a & WRITE_FILE != 0),
            list(|a| a & EXECUTE != 0),
            list(|a| a & (EXECUTE | WRITE_FILE) == 0),
            if self.abi >= 4 { "denied" } else { "not covered (seccomp denies it)" }
        )
    }
}

fn add_rule(ruleset: RawFd, parent: RawFd, access: u64) -> io::Result<()> {
    let attr = PathBeneathAttr { allowed_access: access, parent_fd: parent };
    // SAFETY: a valid, packed attribute as the kernel defines it.
    let r = unsafe {
        libc::syscall(libc::SYS_landlock_add_rule, ruleset, RULE_PATH_BENEATH, &attr as *const PathBeneathAttr, 0)
    };
    if r != 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rights_are_masked_to_what_each_abi_knows() {
        assert_eq!(fs_rights(1) & REFER, 0);
        assert_eq!(fs_rights(2) & TRUNCATE, 0);
        assert_ne!(fs_rights(2) & REFER, 0);
        assert_eq!(fs_rights(4) & IOCTL_DEV, 0);
        assert_ne!(fs_rights(7) & IOCTL_DEV, 0);
        assert_eq!(attr(3).0.handled_access_net, 0);
        assert_eq!(attr(3).1, 8);
        assert_eq!(attr(4).0.handled_access_net, NET_BIND_TCP | NET_CONNECT_TCP);
        assert_eq!(attr(5).1, 16);
        assert_eq!(attr(6).0.scoped, SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL);
        assert_eq!(attr(7).1, 24);
        assert_eq!(std::mem::size_of::<PathBeneathAttr>(), 12);
        // The member directory is never executable.
        assert_eq!(MEMBER_RW & EXECUTE, 0);
    }

    #[test]
    fn a_plan_opens_its_paths_and_the_kernel_accepts_it() {
        let abi = abi().expect("Landlock is needed for the sandbox tests (Linux 5.13+ with landlock in lsm=)");
        let dir = tempfile::tempdir().unwrap();
        let exe = std::env::current_exe().unwrap();
        let plan = Plan::prepare(abi, dir.path(), &exe).unwrap();
        plan.check().unwrap();
        let s = plan.summary();
        assert!(s.contains(&dir.path().display().to_string()), "{s}");
        assert!(s.contains("/usr"), "{s}");
        // A member directory that is a symlink is refused.
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(dir.path(), &link).unwrap();
        assert!(Plan::prepare(abi, &link, &exe).is_err());
    }
}
