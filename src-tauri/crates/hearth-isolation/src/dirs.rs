//! Member directories: `<data>/members/<id>/`, mode 0700, owned by the member's account.
//!
//! Everything here walks trees with descriptors (`openat` with `O_NOFOLLOW`, `fchown`,
//! `fchownat(AT_SYMLINK_NOFOLLOW)`), never with paths that could be redirected: a member
//! directory is written by a worker that may have been talked into planting symlinks, and these
//! functions run as root.

use std::ffi::{CStr, CString};
use std::fs;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{FileStat, Mode, SFlag};
use nix::unistd::{Gid, Uid};

use crate::IsolationError;
use crate::accounts::Account;

/// A member id is used as a directory name and in an account name, so it is restricted to
/// lower-case ASCII letters, digits and `-`, at most 32 bytes, not starting with `-`. (Account
/// names take at most [`crate::accounts::MAX_ACCOUNT_MEMBER_ID`] bytes of it.)
pub fn is_safe_member_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 32
        && !id.starts_with('-')
        && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

pub fn member_dir(data_dir: &Path, member_id: &str) -> Result<PathBuf, IsolationError> {
    if !is_safe_member_id(member_id) {
        return Err(IsolationError::BadMemberId(member_id.to_owned()));
    }
    Ok(data_dir.join("members").join(member_id))
}

fn dir_err(path: &Path, source: impl Into<io::Error>) -> IsolationError {
    IsolationError::Dir { path: path.to_owned(), source: source.into() }
}

fn refusal(path: &Path, why: &str) -> IsolationError {
    dir_err(path, io::Error::new(io::ErrorKind::InvalidData, why))
}

/// Creates (or repairs) the member's directory and returns its path:
///
/// - `members/` is 0711 — members can reach their own directory without listing the others —
///   and, when accounts are in use, owned by the supervisor (root);
/// - `members/<id>/` is 0700; with `owner` it and everything inside belong to the account
///   (hard links to files owned by someone else are left alone, with a warning);
/// - POSIX ACLs are stripped from the directory and everything inside;
/// - a member directory that is a symbolic link is refused, never followed.
///
/// Safe to call at every worker start; it walks the member's tree once.
pub fn prepare_member_dir(
    data_dir: &Path,
    member_id: &str,
    owner: Option<&Account>,
) -> Result<PathBuf, IsolationError> {
    member_dir(data_dir, member_id)?;
    fs::create_dir_all(data_dir).map_err(|e| dir_err(data_dir, e))?;
    let data = open_dir(data_dir)?;
    prepare_member_dir_at(&data, data_dir, member_id, owner)
}

/// [`prepare_member_dir`] inside an already opened data directory: every step below `data` goes
/// through descriptors, so renaming or replacing `members/` meanwhile redirects nothing. This is
/// how the `hearth supervisor` daemon (root) works in a data directory another user owns.
/// `data_path` is only used to name paths in the result and in errors.
pub fn prepare_member_dir_at(
    data: &OwnedFd,
    data_path: &Path,
    member_id: &str,
    owner: Option<&Account>,
) -> Result<PathBuf, IsolationError> {
    let dir = member_dir(data_path, member_id)?;
    let parent = data_path.join("members");
    let members = make_dir_at(data, "members", Mode::from_bits_truncate(0o711), &parent)?;
    nix::sys::stat::fchmod(&members, Mode::from_bits_truncate(0o711)).map_err(|e| dir_err(&parent, e))?;
    if owner.is_some() {
        let (uid, gid) = (nix::unistd::geteuid(), nix::unistd::getegid());
        nix::unistd::fchown(&members, Some(uid), Some(gid)).map_err(|e| dir_err(&parent, e))?;
    }
    let top = make_dir_at(&members, member_id, Mode::from_bits_truncate(0o700), &dir)?;
    nix::sys::stat::fchmod(&top, Mode::from_bits_truncate(0o700)).map_err(|e| dir_err(&dir, e))?;
    let walk = Walk {
        to: owner.map(|a| (a.uid, a.gid)),
        // A hard link whose file the member already owns may be chowned to the member.
        trusted_uid: owner.map(|a| a.uid),
    };
    walk_tree(&top, &dir, &walk, 0)?;
    fix_node(&top, &dir, &walk, true)?;
    Ok(dir)
}

/// Moves a removed member's directory to `<data>/archive/<id>-<stamp>/` (0700) so nothing of
/// theirs is left where a future member could be given the same path, and hands the archived
/// tree to the gateway's own user, so that a future account reusing the uid owns none of it.
/// Returns where it went, or `None` if there was nothing to archive.
pub fn archive_member_dir(data_dir: &Path, member_id: &str, stamp: &str) -> Result<Option<PathBuf>, IsolationError> {
    member_dir(data_dir, member_id)?;
    let data = match open_dir(data_dir) {
        Ok(fd) => fd,
        Err(IsolationError::Dir { source, .. }) if source.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let me = (nix::unistd::geteuid().as_raw(), nix::unistd::getegid().as_raw());
    archive_member_dir_at(&data, data_dir, member_id, stamp, me)
}

/// [`archive_member_dir`] inside an already opened data directory, handing the archive (the
/// `archive/` directory and everything moved into it) to `to` = (uid, gid) — the gateway's user
/// when the `hearth supervisor` daemon archives for it. Every step goes through descriptors.
pub fn archive_member_dir_at(
    data: &OwnedFd,
    data_path: &Path,
    member_id: &str,
    stamp: &str,
    to: (u32, u32),
) -> Result<Option<PathBuf>, IsolationError> {
    let dir = member_dir(data_path, member_id)?;
    if !is_safe_stamp(stamp) {
        return Err(refusal(&dir, "the archive stamp is not a safe file name"));
    }
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let members_path = data_path.join("members");
    let members = match nix::fcntl::openat(data, "members", flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => return Ok(None),
        Err(Errno::ELOOP | Errno::ENOTDIR) => return Err(not_a_dir(data, "members", &members_path)),
        Err(e) => return Err(dir_err(&members_path, e)),
    };
    let seen = match nix::sys::stat::fstatat(&members, member_id, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::ENOENT) => return Ok(None),
        Err(e) => return Err(dir_err(&dir, e)),
    };
    let archive_path = data_path.join("archive");
    let archive = make_dir_at(data, "archive", Mode::from_bits_truncate(0o700), &archive_path)?;
    nix::sys::stat::fchmod(&archive, Mode::from_bits_truncate(0o700)).map_err(|e| dir_err(&archive_path, e))?;
    let (uid, gid) = to;
    let st = nix::sys::stat::fstat(&archive).map_err(|e| dir_err(&archive_path, e))?;
    if st.st_uid != uid || st.st_gid != gid {
        nix::unistd::fchown(&archive, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))
            .map_err(|e| dir_err(&archive_path, e))?;
    }
    let name = format!("{member_id}-{stamp}");
    let to_path = archive_path.join(&name);
    match nix::sys::stat::fstatat(&archive, name.as_str(), AtFlags::AT_SYMLINK_NOFOLLOW) {
        Err(Errno::ENOENT) => {}
        Ok(_) => return Err(refusal(&to_path, "it already exists; archive with another stamp")),
        Err(e) => return Err(dir_err(&to_path, e)),
    }
    nix::fcntl::renameat(&members, member_id, &archive, name.as_str()).map_err(|e| dir_err(&dir, e))?;
    let kind = SFlag::from_bits_truncate(seen.st_mode & SFlag::S_IFMT.bits());
    if kind != SFlag::S_IFDIR {
        // Only the entry moved (a link is not followed); there is nothing behind it of the
        // member's to hand over.
        return Ok(Some(to_path));
    }
    let top = match nix::fcntl::openat(&archive, name.as_str(), flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::ELOOP | Errno::ENOTDIR) => {
            return Err(refusal(&to_path, "it was replaced by something else while being archived"));
        }
        Err(e) => return Err(dir_err(&to_path, e)),
    };
    let st = nix::sys::stat::fstat(&top).map_err(|e| dir_err(&to_path, e))?;
    nix::sys::stat::fchmod(&top, Mode::from_bits_truncate(0o700)).map_err(|e| dir_err(&to_path, e))?;
    let walk = Walk {
        to: Some(to),
        // The member's own files may be hard-linked (by the member); they are taken back too.
        trusted_uid: Some(st.st_uid),
    };
    // Inside out: each folder goes to its new owner only once everything in it was handed
    // over, so the new owner can change nothing in a folder the walk is still in.
    walk_tree(&top, &to_path, &walk, 0)?;
    fix_node(&top, &to_path, &walk, true)?;
    Ok(Some(to_path))
}

/// An archive stamp becomes part of a file name: no separators, no leading dot, not empty.
pub fn is_safe_stamp(stamp: &str) -> bool {
    !stamp.is_empty() && stamp.len() <= 64 && !stamp.starts_with('.') && !stamp.contains('/') && !stamp.contains('\0')
}

/// Checks that a member account can reach `<data>/members/<id>`: every directory from `/` down
/// to `<data>/members` must be traversable (`o+x`) by other users. The error names the first
/// directory that is not and the command that fixes it.
pub fn data_dir_reachable_by_members(data_dir: &Path) -> Result<(), String> {
    let root = fs::canonicalize(data_dir)
        .map_err(|e| format!("cannot resolve the data directory {}: {e}", data_dir.display()))?;
    let members = root.join("members");
    let mut chain: Vec<&Path> = members.ancestors().collect();
    chain.reverse();
    for p in chain {
        let meta = match fs::metadata(p) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => break,
            Err(e) => return Err(format!("cannot check {}: {e}", p.display())),
        };
        let mode = meta.mode() & 0o7777;
        if !meta.is_dir() {
            return Err(format!("{} is not a directory", p.display()));
        }
        if mode & 0o001 == 0 {
            return Err(format!(
                "{} (mode {:04o}) cannot be passed through by other users, so member accounts cannot reach their directories in {}; run `chmod o+x {}`",
                p.display(),
                mode,
                members.display(),
                p.display()
            ));
        }
    }
    Ok(())
}

/// How much disk a member's folder takes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Allocated bytes (`st_blocks * 512`) of everything inside, each file counted once however
    /// many links it has, the folders included.
    pub bytes: u64,
    /// Entries counted.
    pub files: u64,
}

/// Entries a usage walk counts at most; a folder with more is reported as at least this full.
const USAGE_MAX_ENTRIES: u64 = 1_000_000;

/// Measures `members/<member_id>` inside the opened data directory for the disk quota: a walk
/// through descriptors (`openat` with `O_NOFOLLOW`, `fstatat` without following links) that
/// opens only directories and reads no file, so it is safe as root in a folder the member
/// writes. `Usage::default()` when the member has no folder yet.
pub fn usage_at(data: &OwnedFd, member_id: &str) -> Result<Usage, IsolationError> {
    let path = PathBuf::from("members").join(member_id);
    if !is_safe_member_id(member_id) {
        return Err(IsolationError::BadMemberId(member_id.to_owned()));
    }
    let top = match crate::fsat::open_dir_beneath(data, &format!("members/{member_id}")) {
        Ok(fd) => fd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Usage::default()),
        Err(e) => return Err(dir_err(&path, e)),
    };
    let st = nix::sys::stat::fstat(&top).map_err(|e| dir_err(&path, e))?;
    let mut usage = Usage { bytes: st.st_blocks as u64 * 512, files: 0 };
    let mut seen = std::collections::HashSet::new();
    count_tree(&top, &path, 0, &mut usage, &mut seen)?;
    Ok(usage)
}

/// [`usage_at`] for a data directory named by path (the gateway measuring its own members'
/// folders, at level "process" or as root).
pub fn usage(data_dir: &Path, member_id: &str) -> Result<Usage, IsolationError> {
    let data = open_dir(data_dir)?;
    usage_at(&data, member_id)
}

fn count_tree(
    dir: &OwnedFd,
    path: &Path,
    depth: usize,
    usage: &mut Usage,
    seen: &mut std::collections::HashSet<(u64, u64)>,
) -> Result<(), IsolationError> {
    for name in entries(dir, path)? {
        if usage.files >= USAGE_MAX_ENTRIES {
            return Ok(());
        }
        let st = match nix::sys::stat::fstatat(dir, name.as_c_str(), AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::ENOENT) => continue,
            Err(e) => return Err(dir_err(path, e)),
        };
        usage.files += 1;
        let kind = SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits());
        // A file with several links counts once (the member may link a file many times).
        if st.st_nlink > 1 && kind != SFlag::S_IFDIR && !seen.insert((st.st_dev as u64, st.st_ino as u64)) {
            continue;
        }
        usage.bytes = usage.bytes.saturating_add(st.st_blocks as u64 * 512);
        if kind == SFlag::S_IFDIR && depth < MAX_DEPTH {
            let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
            let child_path = path.join(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(name.as_bytes()));
            // Gone or swapped meanwhile: not counted, never followed.
            if let Ok(Some(child)) = open_entry(dir, &name, flags, &st, &child_path) {
                count_tree(&child, &child_path, depth + 1, usage, seen)?;
            }
        }
    }
    Ok(())
}

/// Deeper trees than this are refused rather than walked (each level holds a descriptor).
const MAX_DEPTH: usize = 128;

/// What a walk does to each entry.
struct Walk {
    /// New owner (uid, gid); `None` leaves ownership alone and only strips ACLs.
    to: Option<(u32, u32)>,
    /// Files with more than one link are only re-owned when this uid owns them already.
    trusted_uid: Option<u32>,
}

impl Walk {
    fn may_take(&self, st: &FileStat) -> bool {
        let kind = SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits());
        kind == SFlag::S_IFDIR || st.st_nlink <= 1 || Some(st.st_uid) == self.trusted_uid
    }
}

/// Opens a directory the caller named, following a symbolic link in its path as any program
/// would (the data directory may live behind one).
fn open_dir(path: &Path) -> Result<OwnedFd, IsolationError> {
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    nix::fcntl::open(path, flags, Mode::empty()).map_err(|e| dir_err(path, e))
}

/// Creates `name` inside `parent` if missing and opens it, refusing (never following) a symbolic
/// link or anything that is not a directory.
fn make_dir_at(parent: &OwnedFd, name: &str, mode: Mode, path: &Path) -> Result<OwnedFd, IsolationError> {
    match nix::sys::stat::mkdirat(parent, name, mode) {
        Ok(()) | Err(Errno::EEXIST) => {}
        Err(e) => return Err(dir_err(path, e)),
    }
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    nix::fcntl::openat(parent, name, flags, Mode::empty()).map_err(|e| match e {
        Errno::ELOOP | Errno::ENOTDIR => not_a_dir(parent, name, path),
        e => dir_err(path, e),
    })
}

/// Why `name` in `parent` could not be opened as a directory without following a link (the
/// kernel answers ELOOP or ENOTDIR for a link, depending on the flags).
fn not_a_dir(parent: &OwnedFd, name: &str, path: &Path) -> IsolationError {
    match nix::sys::stat::fstatat(parent, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) if SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) == SFlag::S_IFLNK => {
            refusal(path, "it is a symbolic link; Hearth will not follow it — move it away and start again")
        }
        _ => refusal(path, "it is not a directory"),
    }
}

/// Re-owns (if asked and allowed) and strips ACLs from one opened file or directory.
fn fix_node(fd: &OwnedFd, path: &Path, walk: &Walk, take: bool) -> Result<(), IsolationError> {
    if let (Some((uid, gid)), true) = (walk.to, take) {
        let st = nix::sys::stat::fstat(fd).map_err(|e| dir_err(path, e))?;
        if st.st_uid != uid || st.st_gid != gid {
            nix::unistd::fchown(fd, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))
                .map_err(|e| dir_err(path, e))?;
        }
    }
    strip_acls(fd, path)
}

#[cfg(target_os = "linux")]
fn strip_acls(fd: &OwnedFd, path: &Path) -> Result<(), IsolationError> {
    use std::os::fd::AsRawFd;
    for name in [c"system.posix_acl_access", c"system.posix_acl_default"] {
        // SAFETY: a valid descriptor and a NUL-terminated attribute name.
        if unsafe { libc::fremovexattr(fd.as_raw_fd(), name.as_ptr()) } == -1 {
            match Errno::last() {
                // No ACL of that kind, or a file system without ACLs: nothing to strip.
                Errno::ENODATA | Errno::ENOTSUP => {}
                e => return Err(dir_err(path, e)),
            }
        }
    }
    Ok(())
}

/// macOS ACLs are not POSIX ACLs but one "extended" ACL per file, often inherited from the
/// folder above (a home folder's "everyone deny delete", a shared folder's "allow read"):
/// replacing it with an empty one leaves the mode bits alone in charge.
#[cfg(target_os = "macos")]
fn strip_acls(fd: &OwnedFd, path: &Path) -> Result<(), IsolationError> {
    use std::os::fd::AsRawFd;
    // SAFETY: acl_init returns a fresh ACL (or null) that is freed below; acl_set_fd_np reads
    // it and a valid descriptor.
    unsafe {
        let empty = macos_acl::acl_init(0);
        if empty.is_null() {
            return Err(dir_err(path, Errno::last()));
        }
        let set = macos_acl::acl_set_fd_np(fd.as_raw_fd(), empty, macos_acl::ACL_TYPE_EXTENDED);
        let errno = Errno::last();
        macos_acl::acl_free(empty);
        match set {
            0 => Ok(()),
            // A file system without ACLs: nothing to strip.
            _ if errno == Errno::ENOTSUP => Ok(()),
            _ => Err(dir_err(path, errno)),
        }
    }
}

#[cfg(not(any(target_os = "linux", target_os = "macos")))]
fn strip_acls(_fd: &OwnedFd, _path: &Path) -> Result<(), IsolationError> {
    Ok(())
}

/// Whether `path` (not followed if a link) carries an ACL beyond its mode bits, for `hearth
/// doctor`: a POSIX ACL on Linux, an extended ACL with any entry on macOS.
pub fn has_acl(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = CString::new(path.as_os_str().as_bytes()) else { return false };
    #[cfg(target_os = "linux")]
    return [c"system.posix_acl_access", c"system.posix_acl_default"].iter().any(|name| {
        // SAFETY: a size query (null buffer, 0 length) on a valid C path.
        unsafe { libc::lgetxattr(c.as_ptr(), name.as_ptr(), std::ptr::null_mut(), 0) > 0 }
    });
    #[cfg(target_os = "macos")]
    // SAFETY: acl_get_link_np returns an ACL this function frees, or null when there is none;
    // acl_get_entry only reads it.
    return unsafe {
        let acl = macos_acl::acl_get_link_np(c.as_ptr(), macos_acl::ACL_TYPE_EXTENDED);
        if acl.is_null() {
            return false;
        }
        let mut entry = std::ptr::null_mut();
        let any = macos_acl::acl_get_entry(acl, macos_acl::ACL_FIRST_ENTRY, &mut entry) == 0;
        macos_acl::acl_free(acl);
        any
    };
    #[cfg(not(any(target_os = "linux", target_os = "macos")))]
    {
        let _ = c;
        false
    }
}

/// The few calls of macOS's <sys/acl.h> (libSystem) that Hearth needs; the libc crate has none.
#[cfg(target_os = "macos")]
mod macos_acl {
    pub type Acl = *mut std::ffi::c_void;
    pub const ACL_TYPE_EXTENDED: libc::c_int = 0x0000_0100;
    pub const ACL_FIRST_ENTRY: libc::c_int = 0;
    unsafe extern "C" {
        pub fn acl_init(count: libc::c_int) -> Acl;
        pub fn acl_free(obj: *mut std::ffi::c_void) -> libc::c_int;
        pub fn acl_set_fd_np(fd: libc::c_int, acl: Acl, kind: libc::c_int) -> libc::c_int;
        pub fn acl_get_link_np(path: *const libc::c_char, kind: libc::c_int) -> Acl;
        pub fn acl_get_entry(acl: Acl, entry_id: libc::c_int, entry: *mut *mut std::ffi::c_void) -> libc::c_int;
    }
}

/// Names in an open directory, read completely before anything is changed.
fn entries(dir: &OwnedFd, path: &Path) -> Result<Vec<CString>, IsolationError> {
    // A fresh open file description of the same directory (a dup would share the position).
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    let mut d = nix::dir::Dir::openat(dir.as_fd(), c".", flags, Mode::empty()).map_err(|e| dir_err(path, e))?;
    let mut names = Vec::new();
    for entry in d.iter() {
        let entry = entry.map_err(|e| dir_err(path, e))?;
        let name = entry.file_name();
        if name != c"." && name != c".." {
            names.push(name.to_owned());
        }
    }
    Ok(names)
}

fn walk_tree(dir: &OwnedFd, path: &Path, walk: &Walk, depth: usize) -> Result<(), IsolationError> {
    for name in entries(dir, path)? {
        let child_path = path.join(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(name.as_bytes()));
        let st = match nix::sys::stat::fstatat(dir, name.as_c_str(), AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::ENOENT) => continue,
            Err(e) => return Err(dir_err(&child_path, e)),
        };
        let take = walk.to.is_some() && walk.may_take(&st);
        if walk.to.is_some() && !take {
            tracing::warn!(path = %child_path.display(), "left alone: a hard link to a file owned by another user");
        }
        let kind = SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits());
        if kind == SFlag::S_IFDIR {
            if depth >= MAX_DEPTH {
                return Err(refusal(&child_path, "the directory tree is nested too deeply"));
            }
            let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
            let Some(child) = open_entry(dir, &name, flags, &st, &child_path)? else { continue };
            walk_tree(&child, &child_path, walk, depth + 1)?;
            fix_node(&child, &child_path, walk, take)?;
        } else if kind == SFlag::S_IFREG || kind == SFlag::S_IFIFO {
            // Non-blocking so a FIFO opens at once; no controlling terminal, never a link.
            let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_NOCTTY | OFlag::O_CLOEXEC;
            let Some(file) = open_entry(dir, &name, flags, &st, &child_path)? else { continue };
            fix_node(&file, &child_path, walk, take)?;
        } else if let (Some((uid, gid)), true) = (walk.to, take) {
            // Symbolic links, sockets, device nodes: re-owned in place, never followed or
            // opened. (ACLs on them need no stripping: nothing reaches them through a 0700
            // directory without an ACL.)
            if st.st_uid != uid || st.st_gid != gid {
                match nix::unistd::fchownat(
                    dir,
                    name.as_c_str(),
                    Some(Uid::from_raw(uid)),
                    Some(Gid::from_raw(gid)),
                    AtFlags::AT_SYMLINK_NOFOLLOW,
                ) {
                    Ok(()) | Err(Errno::ENOENT) => {}
                    Err(e) => return Err(dir_err(&child_path, e)),
                }
            }
        }
    }
    Ok(())
}

/// Opens an entry relative to its directory and checks it is still the one `fstatat` saw (a
/// concurrent swap is skipped, not followed). `None` when it vanished meanwhile.
fn open_entry(
    dir: &OwnedFd,
    name: &CStr,
    flags: OFlag,
    seen: &FileStat,
    path: &Path,
) -> Result<Option<OwnedFd>, IsolationError> {
    let fd = match nix::fcntl::openat(dir.as_fd(), name, flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => return Ok(None),
        Err(Errno::ELOOP | Errno::ENOTDIR) => {
            return Err(refusal(path, "it changed into a symbolic link while being prepared"));
        }
        Err(e) => return Err(dir_err(path, e)),
    };
    let now = nix::sys::stat::fstat(&fd).map_err(|e| dir_err(path, e))?;
    if now.st_dev != seen.st_dev || now.st_ino != seen.st_ino {
        return Err(refusal(path, "it was replaced while being prepared"));
    }
    Ok(Some(fd))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn ids_that_could_escape_are_refused() {
        for bad in ["", "..", "a/b", "-x", "A", "a b", "ä", &"x".repeat(33)] {
            assert!(!is_safe_member_id(bad), "{bad:?}");
            assert!(member_dir(Path::new("/d"), bad).is_err());
        }
        assert!(is_safe_member_id("alice-7k2p"));
    }

    #[test]
    fn member_dir_is_private_and_archive_moves_it() {
        let data = tempfile::tempdir().unwrap();
        let dir = prepare_member_dir(data.path(), "ana-1", None).unwrap();
        let mode = fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        assert_eq!(fs::metadata(data.path().join("members")).unwrap().permissions().mode() & 0o777, 0o711);
        fs::create_dir(dir.join("files")).unwrap();
        fs::write(dir.join("files/note.txt"), b"x").unwrap();
        fs::write(dir.join("history.sqlite"), b"x").unwrap();
        // Loosened by someone: preparing again tightens it.
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        prepare_member_dir(data.path(), "ana-1", None).unwrap();
        assert_eq!(fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);

        let to = archive_member_dir(data.path(), "ana-1", "20260101T000000").unwrap().unwrap();
        assert!(!dir.exists());
        assert!(to.join("history.sqlite").exists());
        assert!(to.join("files/note.txt").exists());
        assert_eq!(archive_member_dir(data.path(), "ana-1", "x").unwrap(), None);
        assert!(archive_member_dir(data.path(), "ana-1", "../x").is_err());
    }

    #[test]
    fn usage_counts_what_is_inside_once_and_follows_no_link() {
        let data = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        assert_eq!(usage(data.path(), "ana-1").unwrap(), Usage::default(), "no folder yet");
        let dir = prepare_member_dir(data.path(), "ana-1", None).unwrap();
        fs::create_dir(dir.join("files")).unwrap();
        fs::write(dir.join("files/note.bin"), vec![1u8; 256 * 1024]).unwrap();
        let small = usage(data.path(), "ana-1").unwrap();
        assert!(small.bytes >= 256 * 1024, "{small:?}");
        // A link to something big outside is not followed; a hard link is one file.
        fs::write(elsewhere.path().join("big.bin"), vec![2u8; 4 << 20]).unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), dir.join("files/out")).unwrap();
        std::os::unix::fs::symlink(elsewhere.path().join("big.bin"), dir.join("big-link")).unwrap();
        fs::hard_link(dir.join("files/note.bin"), dir.join("again.bin")).unwrap();
        let linked = usage(data.path(), "ana-1").unwrap();
        assert!(linked.bytes < small.bytes + 64 * 1024, "{small:?} then {linked:?}");
        assert_eq!(linked.files, small.files + 3);
        assert!(matches!(usage(data.path(), "../x"), Err(IsolationError::BadMemberId(_))));
    }

    #[test]
    fn a_member_dir_that_is_a_symlink_is_refused() {
        let data = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        fs::create_dir_all(data.path().join("members")).unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), data.path().join("members/bo")).unwrap();
        let err = prepare_member_dir(data.path(), "bo", None).unwrap_err().to_string();
        assert!(err.contains("symbolic link"), "{err}");
        // The target was not touched.
        assert_ne!(fs::metadata(elsewhere.path()).unwrap().permissions().mode() & 0o777, 0o711);
    }

    #[test]
    fn reachability_names_the_directory_and_the_fix() {
        let outer = tempfile::tempdir().unwrap();
        let data = outer.path().join("data");
        fs::create_dir(&data).unwrap();
        fs::set_permissions(outer.path(), fs::Permissions::from_mode(0o711)).unwrap();
        fs::set_permissions(&data, fs::Permissions::from_mode(0o700)).unwrap();
        // Every ancestor of the temp dir must itself be passable for the positive case.
        let passable =
            |p: &Path| p.ancestors().all(|a| fs::metadata(a).map(|m| m.mode() & 0o001 != 0).unwrap_or(false));
        let err = data_dir_reachable_by_members(&data).unwrap_err();
        let canon = fs::canonicalize(&data).unwrap();
        if passable(&fs::canonicalize(outer.path()).unwrap()) {
            assert!(err.contains(&format!("chmod o+x {}", canon.display())), "{err}");
            fs::set_permissions(&data, fs::Permissions::from_mode(0o711)).unwrap();
            data_dir_reachable_by_members(&data).unwrap();
            prepare_member_dir(&data, "cy", None).unwrap();
            data_dir_reachable_by_members(&data).unwrap();
        } else {
            assert!(err.contains("chmod o+x"), "{err}");
        }
    }
}
