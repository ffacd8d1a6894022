//! File work relative to an open directory, never through a path someone else could redirect.
//!
//! Root (the supervisor, `sudo hearth backup …`, a gateway running as root) often works in a
//! folder another uid can write: the admin's backup folder, the data folder of the `hearth` user,
//! a member's folder. A path there can be swapped for a symbolic link between a check and a use,
//! so every step here takes a directory descriptor and one plain name: `openat` with
//! `O_NOFOLLOW`, `mkdirat` then open-and-check, files created `O_CREAT|O_EXCL|O_NOFOLLOW`,
//! `fchmod`/`fchown` on what was opened, `renameat` without replacing, `unlinkat`. Renaming a
//! folder away while root writes into it then changes nothing: root holds the folder itself,
//! not its name.
//!
//! These are thin, blocking wrappers over `nix` (already what `dirs.rs` uses); errors are
//! `io::Error` so callers add the path they are about. `cap-std` was considered: its `Dir`
//! keeps every path beneath a directory (`openat2` with `RESOLVE_BENEATH` on Linux), but root's
//! work here also needs `fchown`, owner and mode checks on what was opened, device/inode checks
//! between a look and an open, and renames that never replace, on Linux and macOS alike — a
//! wrapper over cap-std would be no smaller. The worker's own file tools may still move to it
//! (issue #14).

use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{FileStat, Mode, SFlag};

/// A directory opened to be walked: never through a link at its last component.
pub const DIR_FLAGS: OFlag = OFlag::O_RDONLY.union(OFlag::O_DIRECTORY).union(OFlag::O_NOFOLLOW).union(OFlag::O_CLOEXEC);
/// A file opened to be read: never through a link, never as a controlling terminal, and without
/// waiting on a FIFO someone put there.
const READ_FLAGS: OFlag =
    OFlag::O_RDONLY.union(OFlag::O_NOFOLLOW).union(OFlag::O_NONBLOCK).union(OFlag::O_NOCTTY).union(OFlag::O_CLOEXEC);

/// What a name turned out to be when a directory was expected.
fn not_a_directory(name: &str) -> io::Error {
    io::Error::new(io::ErrorKind::NotADirectory, format!("{name} is a link or not a folder; Hearth does not follow it"))
}

pub fn is_dir(st: &FileStat) -> bool {
    SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) == SFlag::S_IFDIR
}

pub fn is_file(st: &FileStat) -> bool {
    SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) == SFlag::S_IFREG
}

/// The same file system object (device and inode).
pub fn same(a: &FileStat, b: &FileStat) -> bool {
    a.st_dev == b.st_dev && a.st_ino == b.st_ino
}

/// Permission bits only (no set-uid, set-gid or sticky bit).
pub fn mode_of(st: &FileStat) -> u32 {
    mode_bits(st) & 0o777
}

/// Permission bits as a [`Mode`] (a `mode_t` is a u16 on macOS).
pub fn mode(bits: u32) -> Mode {
    Mode::from_bits_truncate((bits & 0o7777) as libc::mode_t)
}

/// Permission bits with the set-uid, set-gid and sticky bits.
pub fn mode_bits(st: &FileStat) -> u32 {
    // `st_mode` is a u16 on macOS.
    #[allow(clippy::unnecessary_cast)]
    let mode = st.st_mode as u32;
    mode & 0o7777
}

/// Opens a directory the caller named by path. `follow_last`: whether a link at the last
/// component is followed (a folder a person typed may live behind one).
///
/// As root the path is walked from `/` one component at a time through descriptors, and a
/// symbolic link is followed only where it sits in a folder that nobody but root (or this
/// process's user) can write — or, in a sticky folder such as `/tmp`, only a link root made —
/// the rule of Linux's `protected_symlinks`, applied to every component: a link someone else
/// planted (in their own backup folder, in the `hearth` user's data folder) is refused, never
/// followed. Not as root, the path is opened as any program would: there is no privilege to
/// misuse.
pub fn open_dir_path(path: &Path, follow_last: bool) -> io::Result<OwnedFd> {
    if nix::unistd::geteuid().is_root() {
        return walk_from_root(path, follow_last);
    }
    let flags = if follow_last { DIR_FLAGS.difference(OFlag::O_NOFOLLOW) } else { DIR_FLAGS };
    nix::fcntl::open(path, flags, Mode::empty()).map_err(|e| match e {
        Errno::ELOOP => not_a_directory(&path.display().to_string()),
        e => e.into(),
    })
}

/// Links followed in one walk, at most (as the kernel's own limit).
const MAX_LINKS: usize = 40;

fn components(path: &Path) -> std::collections::VecDeque<OsString> {
    use std::path::Component;
    path.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_owned()),
            Component::ParentDir => Some(OsString::from("..")),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect()
}

/// Whether a link in the folder `dir` may be followed: the folder is root's or ours and nobody
/// else can write to it, or it is sticky and root or we made the link.
fn link_trusted(dir: &FileStat, link: &FileStat) -> bool {
    let me = nix::unistd::geteuid().as_raw();
    let trusted = |uid: u32| uid == 0 || uid == me;
    let others_write = mode_bits(dir) & 0o022 != 0;
    let sticky = mode_bits(dir) & 0o1000 != 0;
    trusted(dir.st_uid) && (!others_write || (sticky && trusted(link.st_uid)))
}

fn walk_from_root(path: &Path, follow_last: bool) -> io::Result<OwnedFd> {
    let shown = path.display().to_string();
    let path = std::path::absolute(path)?;
    let mut stack = vec![nix::fcntl::open("/", DIR_FLAGS, Mode::empty())?];
    let mut todo = components(&path);
    let mut links = 0;
    while let Some(name) = todo.pop_front() {
        if name == ".." {
            if stack.len() > 1 {
                stack.pop();
            }
            continue;
        }
        let cur = stack.last().expect("the root stays on the stack");
        let st = match nix::sys::stat::fstatat(cur, name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::ENOENT) => {
                return Err(io::Error::new(io::ErrorKind::NotFound, format!("{shown}: {name:?} does not exist")));
            }
            Err(e) => return Err(e.into()),
        };
        let kind = SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits());
        if kind == SFlag::S_IFLNK {
            if todo.is_empty() && !follow_last {
                return Err(not_a_directory(&shown));
            }
            let dir = nix::sys::stat::fstat(cur)?;
            if !link_trusted(&dir, &st) {
                return Err(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    format!(
                        "{shown} passes through the link {name:?} in a folder that uid {} (mode {:04o}) or others can change; \
                         Hearth, as root, does not follow it: give the real path",
                        dir.st_uid,
                        mode_bits(&dir)
                    ),
                ));
            }
            links += 1;
            if links > MAX_LINKS {
                return Err(Errno::ELOOP.into());
            }
            let target = PathBuf::from(nix::fcntl::readlinkat(cur, name.as_os_str())?);
            if target.is_absolute() {
                stack.truncate(1);
            }
            for part in components(&target).into_iter().rev() {
                todo.push_front(part);
            }
        } else if kind == SFlag::S_IFDIR {
            let fd = nix::fcntl::openat(cur, name.as_os_str(), DIR_FLAGS, Mode::empty())?;
            if !same(&nix::sys::stat::fstat(&fd)?, &st) {
                return Err(io::Error::other(format!("{shown} changed while Hearth was opening it")));
            }
            stack.push(fd);
        } else {
            return Err(not_a_directory(&shown));
        }
    }
    Ok(stack.pop().expect("the root stays on the stack"))
}

/// [`open_dir_path`] for a directory that may not exist yet: the missing folders at its end are
/// made (0700, this process's) with `mkdirat` below the deepest one that exists.
pub fn make_dirs_path(path: &Path) -> io::Result<OwnedFd> {
    let path = std::path::absolute(path)?;
    let mut missing = Vec::new();
    let mut at = path.as_path();
    let mut dir = loop {
        match open_dir_path(at, true) {
            Ok(fd) => break fd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let (Some(parent), Some(name)) = (at.parent(), at.file_name()) else { return Err(e) };
                missing.push(name.to_owned());
                at = parent;
            }
            Err(e) => return Err(e),
        }
    };
    for name in missing.into_iter().rev() {
        let name = name.to_str().ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "a folder name that is not text"))?;
        match nix::sys::stat::mkdirat(&dir, name, Mode::from_bits_truncate(0o700)) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(e.into()),
        }
        dir = open_dir_at(&dir, name)?;
    }
    Ok(dir)
}

/// `fstatat` without following a link; `None` when nothing has that name.
pub fn stat_at(dir: &impl AsFd, name: &str) -> io::Result<Option<FileStat>> {
    match nix::sys::stat::fstatat(dir.as_fd(), name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(st)),
        Err(Errno::ENOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Opens the directory `name` inside `dir`, refusing a link or anything else.
pub fn open_dir_at(dir: &impl AsFd, name: &str) -> io::Result<OwnedFd> {
    nix::fcntl::openat(dir.as_fd(), name, DIR_FLAGS, Mode::empty()).map_err(|e| match e {
        Errno::ELOOP | Errno::ENOTDIR => not_a_directory(name),
        e => e.into(),
    })
}

/// [`open_dir_at`], and it must still be the directory `seen` describes (a swap between the
/// look and the open is an error, never followed).
pub fn open_dir_seen(dir: &impl AsFd, name: &str, seen: &FileStat) -> io::Result<OwnedFd> {
    let fd = open_dir_at(dir, name)?;
    let now = nix::sys::stat::fstat(&fd)?;
    if !same(&now, seen) {
        return Err(io::Error::other(format!("{name} was replaced while Hearth was reading it")));
    }
    Ok(fd)
}

/// Walks `rel` (plain components, `/`-separated) down from `dir`, opening every level with
/// [`open_dir_at`].
pub fn open_dir_beneath(dir: &impl AsFd, rel: &str) -> io::Result<OwnedFd> {
    let mut cur = nix::fcntl::openat(dir.as_fd(), ".", DIR_FLAGS, Mode::empty())?;
    for part in rel.split('/').filter(|p| !p.is_empty()) {
        if part == "." || part == ".." {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("{rel} is not a plain relative path")));
        }
        cur = open_dir_at(&cur, part)?;
    }
    Ok(cur)
}

/// Opens the regular file `name` inside `dir` for reading: not through a link, and only if it is
/// a regular file once opened. Returns it with what `fstat` says of it.
pub fn open_file_at(dir: &impl AsFd, name: &str) -> io::Result<(File, FileStat)> {
    let fd = nix::fcntl::openat(dir.as_fd(), name, READ_FLAGS, Mode::empty()).map_err(|e| match e {
        Errno::ELOOP => {
            io::Error::new(io::ErrorKind::InvalidData, format!("{name} is a link; Hearth does not follow it"))
        }
        e => e.into(),
    })?;
    let st = nix::sys::stat::fstat(&fd)?;
    if !is_file(&st) {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("{name} is not a plain file")));
    }
    // Reads block again from here on (O_NONBLOCK only kept a FIFO from hanging the open).
    nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_SETFL(OFlag::empty()))?;
    Ok((File::from(fd), st))
}

/// Creates the file `name` inside `dir` (0600 before the umask): a new one, never an existing
/// file or whatever a link points at.
pub fn create_file_at(dir: &impl AsFd, name: &str) -> io::Result<File> {
    let flags = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let fd = nix::fcntl::openat(dir.as_fd(), name, flags, Mode::from_bits_truncate(0o600))?;
    Ok(File::from(fd))
}

/// Makes a new directory `name` inside `dir` and opens it, checking that what was opened is the
/// empty directory this process just made (not one someone slipped in between), then sets its
/// mode on the descriptor. `AlreadyExists` when the name is taken.
pub fn make_fresh_dir(dir: &impl AsFd, name: &str, mode: u32) -> io::Result<OwnedFd> {
    nix::sys::stat::mkdirat(dir.as_fd(), name, Mode::from_bits_truncate(0o700))?;
    let fd = open_dir_at(dir, name)?;
    let st = nix::sys::stat::fstat(&fd)?;
    if st.st_uid != nix::unistd::geteuid().as_raw() || !names(&fd)?.is_empty() {
        return Err(io::Error::other(format!("{name} was replaced while Hearth was creating it")));
    }
    nix::sys::stat::fchmod(&fd, self::mode(mode))?;
    Ok(fd)
}

/// The names in an open directory (without `.` and `..`), sorted, read completely first. Names
/// are bytes: they need not be UTF-8.
pub fn names(dir: &impl AsFd) -> io::Result<Vec<OsString>> {
    // A fresh open file description of the same directory (a dup would share the position).
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    let mut d = nix::dir::Dir::openat(dir.as_fd(), c".", flags, Mode::empty())?;
    let mut out = Vec::new();
    for entry in d.iter() {
        let name = entry?.file_name().to_bytes().to_vec();
        if name != b"." && name != b".." {
            out.push(OsString::from_vec(name));
        }
    }
    out.sort();
    Ok(out)
}

/// Renames `from` to `to`, both inside `dir`, failing if `to` exists (never replacing it).
pub fn rename_new(dir: &impl AsFd, from: &str, to: &str) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        nix::fcntl::renameat2(dir.as_fd(), from, dir.as_fd(), to, nix::fcntl::RenameFlags::RENAME_NOREPLACE)?;
        Ok(())
    }
    #[cfg(target_os = "macos")]
    {
        use std::os::fd::AsRawFd;
        let (from, to) = (std::ffi::CString::new(from)?, std::ffi::CString::new(to)?);
        let fd = dir.as_fd().as_raw_fd();
        // SAFETY: a valid descriptor and NUL-terminated names.
        let r = unsafe { libc::renameatx_np(fd, from.as_ptr(), fd, to.as_ptr(), libc::RENAME_EXCL) };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
    #[cfg(not(any(target_os = "linux", target_os = "macos")))]
    {
        if stat_at(dir, to)?.is_some() {
            return Err(io::Error::from(io::ErrorKind::AlreadyExists));
        }
        nix::fcntl::renameat(dir.as_fd(), from, dir.as_fd(), to)?;
        Ok(())
    }
}

/// Deeper trees than this are refused rather than walked (each level holds a descriptor).
pub const MAX_DEPTH: usize = 64;

/// Removes everything inside the open directory `dir`, through descriptors: links are unlinked,
/// never followed.
pub fn clear_dir(dir: &OwnedFd) -> io::Result<()> {
    clear_dir_depth(dir, 0)
}

fn clear_dir_depth(dir: &OwnedFd, depth: usize) -> io::Result<()> {
    if depth > MAX_DEPTH {
        return Err(io::Error::other("the folder is nested too deeply to remove"));
    }
    for name in names(dir)? {
        let Some(name) = name.to_str().map(str::to_owned) else {
            // Not UTF-8: unlink it by its bytes (a link or file; a directory stays).
            let _ = nix::unistd::unlinkat(dir.as_fd(), name.as_os_str(), nix::unistd::UnlinkatFlags::NoRemoveDir);
            continue;
        };
        let Some(st) = stat_at(dir, &name)? else { continue };
        if is_dir(&st) {
            let child = open_dir_seen(dir, &name, &st)?;
            clear_dir_depth(&child, depth + 1)?;
            match nix::unistd::unlinkat(dir.as_fd(), name.as_str(), nix::unistd::UnlinkatFlags::RemoveDir) {
                Ok(()) | Err(Errno::ENOENT) => {}
                Err(e) => return Err(e.into()),
            }
        } else {
            match nix::unistd::unlinkat(dir.as_fd(), name.as_str(), nix::unistd::UnlinkatFlags::NoRemoveDir) {
                Ok(()) | Err(Errno::ENOENT) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

/// Removes the directory `name` inside `parent` and everything in it, through descriptors. A
/// link there is removed itself, never followed.
pub fn remove_tree_at(parent: &impl AsFd, name: &str) -> io::Result<()> {
    let Some(st) = stat_at(parent, name)? else { return Ok(()) };
    if !is_dir(&st) {
        return match nix::unistd::unlinkat(parent.as_fd(), name, nix::unistd::UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => Ok(()),
            Err(e) => Err(e.into()),
        };
    }
    let dir = open_dir_seen(parent, name, &st)?;
    clear_dir(&dir)?;
    remove_empty_dir_at(parent, name, &dir)
}

/// Removes the (emptied) directory `dir` from `parent` if `name` there still is `dir`.
pub fn remove_empty_dir_at(parent: &impl AsFd, name: &str, dir: &OwnedFd) -> io::Result<()> {
    let ours = nix::sys::stat::fstat(dir)?;
    match stat_at(parent, name)? {
        Some(st) if same(&st, &ours) => {
            match nix::unistd::unlinkat(parent.as_fd(), name, nix::unistd::UnlinkatFlags::RemoveDir) {
                Ok(()) | Err(Errno::ENOENT) => Ok(()),
                Err(e) => Err(e.into()),
            }
        }
        // Moved away meanwhile: what is under that name now is not ours to remove.
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn as_root_only_links_in_folders_nobody_else_can_write_are_followed() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let chmod = |p: &Path, m: u32| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
        let target = tmp.path().join("target");
        std::fs::create_dir(&target).unwrap();
        for (folder, mode) in [("private", 0o755), ("shared", 0o777), ("sticky", 0o1777)] {
            let dir = tmp.path().join(folder);
            std::fs::create_dir(&dir).unwrap();
            std::os::unix::fs::symlink(&target, dir.join("link")).unwrap();
            std::os::unix::fs::symlink("../target/..", dir.join("up")).unwrap();
            chmod(&dir, mode);
        }
        let me = nix::sys::stat::stat(&target).unwrap();
        let reach = |p: &str| walk_from_root(&tmp.path().join(p), true).map(|fd| same(&nix::sys::stat::fstat(&fd).unwrap(), &me));
        assert!(reach("private/link").unwrap(), "a folder only its owner writes");
        assert!(reach("sticky/link").unwrap(), "a sticky folder, a link its owner made");
        let refused = reach("shared/link").unwrap_err();
        assert_eq!(refused.kind(), io::ErrorKind::PermissionDenied, "{refused}");
        assert!(refused.to_string().contains("give the real path"), "{refused}");
        assert!(reach("private/up/target").unwrap(), "relative links and .. walk through descriptors");
        assert_eq!(walk_from_root(&tmp.path().join("private/link"), false).unwrap_err().kind(), io::ErrorKind::NotADirectory);
        assert_eq!(walk_from_root(&tmp.path().join("none/x"), true).unwrap_err().kind(), io::ErrorKind::NotFound);
        // Missing folders at the end are made.
        let made = make_dirs_path(&tmp.path().join("private/link/a/b")).unwrap();
        assert!(same(&nix::sys::stat::fstat(&made).unwrap(), &nix::sys::stat::stat(&target.join("a/b")).unwrap()));
    }

    #[test]
    fn links_are_refused_at_every_level_and_removed_never_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("keep.txt"), "keep").unwrap();
        let inside = tmp.path().join("inside");
        std::fs::create_dir_all(inside.join("a/b")).unwrap();
        std::fs::write(inside.join("a/b/file.txt"), "x").unwrap();
        std::os::unix::fs::symlink(&outside, inside.join("a/link")).unwrap();
        std::os::unix::fs::symlink(outside.join("keep.txt"), inside.join("a/file-link")).unwrap();

        let root = open_dir_path(&inside, false).unwrap();
        assert!(open_dir_beneath(&root, "a/b").is_ok());
        assert_eq!(open_dir_beneath(&root, "a/link").unwrap_err().kind(), io::ErrorKind::NotADirectory);
        assert!(open_dir_beneath(&root, "a/../a").is_err());
        let a = open_dir_at(&root, "a").unwrap();
        assert_eq!(open_file_at(&a, "file-link").unwrap_err().kind(), io::ErrorKind::InvalidData);
        assert_eq!(names(&a).unwrap(), ["b", "file-link", "link"]);
        // A fresh folder is made only where the name is free, and a new file never replaces.
        assert_eq!(make_fresh_dir(&a, "b", 0o700).unwrap_err().kind(), io::ErrorKind::AlreadyExists);
        let fresh = make_fresh_dir(&a, "fresh", 0o750).unwrap();
        assert_eq!(mode_of(&nix::sys::stat::fstat(&fresh).unwrap()), 0o750);
        assert_eq!(create_file_at(&a, "file-link").unwrap_err().kind(), io::ErrorKind::AlreadyExists);
        rename_new(&a, "fresh", "renamed").unwrap();
        assert_eq!(rename_new(&a, "renamed", "b").unwrap_err().kind(), io::ErrorKind::AlreadyExists);

        remove_tree_at(&root, "a").unwrap();
        assert!(!inside.join("a").exists());
        assert_eq!(std::fs::read_to_string(outside.join("keep.txt")).unwrap(), "keep", "nothing behind a link went");
    }
}
