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
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
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
    let dir = member_dir(data_dir, member_id)?;
    let parent = data_dir.join("members");
    fs::create_dir_all(&parent).map_err(|e| dir_err(&parent, e))?;
    let members = open_dir_nofollow(&parent)?;
    nix::sys::stat::fchmod(&members, Mode::from_bits_truncate(0o711)).map_err(|e| dir_err(&parent, e))?;
    if owner.is_some() {
        let (uid, gid) = (nix::unistd::geteuid(), nix::unistd::getegid());
        nix::unistd::fchown(&members, Some(uid), Some(gid)).map_err(|e| dir_err(&parent, e))?;
    }

    match fs::symlink_metadata(&dir) {
        Ok(m) if m.file_type().is_symlink() => {
            return Err(refusal(
                &dir,
                "it is a symbolic link; Hearth will not follow it — move it away and start again",
            ));
        }
        Ok(m) if !m.is_dir() => return Err(refusal(&dir, "it is not a directory")),
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => match fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(dir_err(&dir, e)),
        },
        Err(e) => return Err(dir_err(&dir, e)),
    }
    let top = open_dir_nofollow(&dir)?;
    nix::sys::stat::fchmod(&top, Mode::from_bits_truncate(0o700)).map_err(|e| dir_err(&dir, e))?;
    let walk = Walk {
        to: owner.map(|a| (a.uid, a.gid)),
        // A hard link whose file the member already owns may be chowned to the member.
        trusted_uid: owner.map(|a| a.uid),
    };
    fix_node(&top, &dir, &walk, true)?;
    walk_tree(&top, &dir, &walk, 0)?;
    Ok(dir)
}

/// Moves a removed member's directory to `<data>/archive/<id>-<stamp>/` (0700) so nothing of
/// theirs is left where a future member could be given the same path, and hands the archived
/// tree to the gateway's own user, so that a future account reusing the uid owns none of it.
/// Returns where it went, or `None` if there was nothing to archive.
pub fn archive_member_dir(data_dir: &Path, member_id: &str, stamp: &str) -> Result<Option<PathBuf>, IsolationError> {
    let dir = member_dir(data_dir, member_id)?;
    if stamp.is_empty() || stamp.starts_with('.') || stamp.contains('/') || stamp.contains('\0') {
        return Err(refusal(&dir, "the archive stamp is not a safe file name"));
    }
    let meta = match fs::symlink_metadata(&dir) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(dir_err(&dir, e)),
    };
    let archive = data_dir.join("archive");
    fs::create_dir_all(&archive).map_err(|e| dir_err(&archive, e))?;
    fs::set_permissions(&archive, fs::Permissions::from_mode(0o700)).map_err(|e| dir_err(&archive, e))?;
    let to = archive.join(format!("{member_id}-{stamp}"));
    fs::rename(&dir, &to).map_err(|e| dir_err(&dir, e))?;
    if meta.file_type().is_symlink() {
        // Only the link moved; it is not followed, and there is nothing behind it of the member's.
        return Ok(Some(to));
    }
    let top = open_dir_nofollow(&to)?;
    let st = nix::sys::stat::fstat(&top).map_err(|e| dir_err(&to, e))?;
    nix::sys::stat::fchmod(&top, Mode::from_bits_truncate(0o700)).map_err(|e| dir_err(&to, e))?;
    let walk = Walk {
        to: Some((nix::unistd::geteuid().as_raw(), nix::unistd::getegid().as_raw())),
        // The member's own files may be hard-linked (by the member); they are taken back too.
        trusted_uid: Some(st.st_uid),
    };
    fix_node(&top, &to, &walk, true)?;
    walk_tree(&top, &to, &walk, 0)?;
    Ok(Some(to))
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

fn open_dir_nofollow(path: &Path) -> Result<OwnedFd, IsolationError> {
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    nix::fcntl::open(path, flags, Mode::empty()).map_err(|e| match e {
        Errno::ELOOP => refusal(path, "it is a symbolic link; Hearth will not follow it"),
        e => dir_err(path, e),
    })
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

/// macOS ACLs are not POSIX ACLs; clearing them (`acl_set_fd` with an empty ACL) is a follow-up.
#[cfg(not(target_os = "linux"))]
fn strip_acls(_fd: &OwnedFd, _path: &Path) -> Result<(), IsolationError> {
    Ok(())
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
            fix_node(&child, &child_path, walk, take)?;
            walk_tree(&child, &child_path, walk, depth + 1)?;
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
