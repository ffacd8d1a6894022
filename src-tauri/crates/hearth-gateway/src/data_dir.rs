//! Before Hearth keeps anything in its data folder, the folder is checked: whoever else could
//! change it, or any folder above it, could read the secrets, swap `run/` to catch the API key
//! `hearth provider set` sends, or swap `workers/` to catch workers. On macOS the default,
//! `/Users/Shared/Hearth`, sits in a folder every login may write to, so another login (a
//! child's) could create it first, with an ACL granting itself access that the mode bits do
//! not show.
//!
//! [`prepare`] walks the path from `/` one component at a time, following a symbolic link only
//! when it belongs to root or to us, and accepts:
//!
//! - above the folder: directories owned by root or by us, which nobody else may write to —
//!   except through a sticky bit (`/tmp`, `/Users/Shared`: others cannot rename or remove what
//!   is ours there) or a group that is private to its owner — and whose ACL grants nobody
//!   write access;
//! - the folder itself: ours, writable by nobody else, with no ACL at all.
//!
//! A folder that does not exist is made with `mkdir` and then checked like any other, so one that
//! someone else makes between our look and our `mkdir` is caught. Anything else is refused
//! with a [`DataDirError`] that says what is wrong and what to do. Once the whole chain is
//! known to be changeable only by us and root, paths below it are as good as descriptors, which
//! is why the rest of the gateway may use them.
//!
//! [`prepare_subdir`] does the same for `run/` and `workers/` inside the checked folder, and
//! [`write_private`] is the one way the gateway (and the app) replaces a small file atomically.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::fs;
use std::io::{self, Write as _};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Component, Path, PathBuf};

/// The command that removes an ACL from a folder, named in refusals.
pub const ACL_CLEAR: &str = if cfg!(target_os = "macos") { "chmod -N" } else { "setfacl -b" };

/// At most this many symbolic links are followed on the way (as the kernel's own limit).
const MAX_LINKS: usize = 40;

/// Why a data folder (or a folder in it) is refused. Every message names the path and what to do.
#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    #[error(
        "the data folder {} is owned by {}, not by you ({}): another login created it, and could read or swap what \
         Hearth keeps there. Move it aside (`sudo mv {} {}.suspect`) and start Hearth again — or, if it is another \
         user's household, run Hearth as that user or choose another folder with --data-dir",
        path.display(), who(*owner), who(*me), path.display(), path.display()
    )]
    NotYours { path: PathBuf, owner: u32, me: u32 },
    #[error(
        "{} in Hearth's data folder is owned by {}, not by you ({}): someone else made it. Move it aside (`sudo mv {} \
         {}.suspect`), check the rest of the folder, and start Hearth again",
        path.display(), who(*owner), who(*me), path.display(), path.display()
    )]
    InsideNotYours { path: PathBuf, owner: u32, me: u32 },
    #[error(
        "{}, above the data folder {}, is owned by {}, who could swap the data folder for one of their own. Keep \
         Hearth's data in a folder only you and root control (--data-dir or HEARTH_DATA_DIR)",
        parent.display(), path.display(), who(*owner)
    )]
    ParentNotTrusted { path: PathBuf, parent: PathBuf, owner: u32 },
    #[error(
        "{} can be changed by {by} (mode {mode:04o}), so someone else may have put files in it. Check what is inside, \
         run `chmod go-w {}`, and start Hearth again",
        path.display(), path.display()
    )]
    Writable { path: PathBuf, mode: u32, by: String },
    #[error(
        "{}, above the data folder {}, can be changed by {by} (mode {mode:04o}), so they could swap the data folder. \
         Run `chmod go-w {}` (or `chmod +t` on a folder everyone shares, like /tmp), or keep Hearth's data elsewhere \
         with --data-dir",
        parent.display(), path.display(), parent.display()
    )]
    ParentWritable { path: PathBuf, parent: PathBuf, mode: u32, by: String },
    #[error(
        "{} carries an access control list (ACL), which can let other users in without showing in its mode bits. \
         Check what is inside, remove it with `{ACL_CLEAR} {}`, and start Hearth again",
        path.display(), path.display()
    )]
    Acl { path: PathBuf },
    #[error(
        "{}, above the data folder {}, carries an access control list (ACL) that lets other users change it, so they \
         could swap the data folder. Remove it with `{ACL_CLEAR} {}`, or keep Hearth's data elsewhere with --data-dir",
        parent.display(), path.display(), parent.display()
    )]
    ParentAcl { path: PathBuf, parent: PathBuf },
    #[error(
        "{}, on the way to the data folder {}, is a symbolic link owned by {}, who could point it anywhere. Give the \
         real path with --data-dir",
        link.display(), path.display(), who(*owner)
    )]
    Link { path: PathBuf, link: PathBuf, owner: u32 },
    #[error("{} is a symbolic link; Hearth will not follow it inside its data folder. Move it aside and start again", path.display())]
    InsideLink { path: PathBuf },
    #[error("{} is not a folder", path.display())]
    NotAFolder { path: PathBuf },
    #[error("the way to the data folder {} has more than {MAX_LINKS} symbolic links", path.display())]
    TooManyLinks { path: PathBuf },
    #[error("{} changed while Hearth was checking it; start Hearth again", path.display())]
    Changed { path: PathBuf },
    #[error("could not check {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> DataDirError + '_ {
    move |source| DataDirError::Io { path: path.to_owned(), source }
}

/// "uid 502 (ana)", or "uid 502" for a number without an account.
fn who(uid: u32) -> String {
    match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
        Ok(Some(u)) => format!("uid {uid} ({})", u.name),
        _ => format!("uid {uid}"),
    }
}

fn me() -> u32 {
    nix::unistd::geteuid().as_raw()
}

/// Checks (and, where missing, creates) the data folder `path` and every folder above it, as the
/// module docs say; sets the folder's permission bits to `mode` when given. Returns the real,
/// absolute path with no symbolic link in it.
pub fn prepare(path: &Path, mode: Option<u32>) -> Result<PathBuf, DataDirError> {
    walk(path, mode, true)
}

/// The checks of [`prepare`] on a folder that exists, changing nothing (for `hearth doctor`).
pub fn check(path: &Path) -> Result<PathBuf, DataDirError> {
    walk(path, None, false)
}

fn walk(path: &Path, mode: Option<u32>, create: bool) -> Result<PathBuf, DataDirError> {
    let absolute =
        if path.is_absolute() { path.to_owned() } else { std::env::current_dir().map_err(io_err(path))?.join(path) };
    let me = me();
    let mut todo: VecDeque<OsString> = VecDeque::new();
    push_front(&mut todo, &absolute);
    let mut real = PathBuf::from("/");
    check_above(&real, &absolute, me)?;
    let mut links = 0;
    while let Some(name) = todo.pop_front() {
        if name == "." {
            continue;
        }
        if name == ".." {
            // `real` holds real folders only, so its parent is the physical parent.
            real.pop();
            continue;
        }
        let next = real.join(&name);
        let last = todo.is_empty();
        let (meta, created) = match fs::symlink_metadata(&next) {
            Ok(m) => (m, false),
            Err(e) if e.kind() == io::ErrorKind::NotFound && create => {
                let made = match fs::DirBuilder::new().mode(0o700).create(&next) {
                    Ok(()) => true,
                    // Made by someone else in between: checked below like anything found.
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
                    Err(e) => return Err(io_err(&next)(e)),
                };
                (fs::symlink_metadata(&next).map_err(io_err(&next))?, made)
            }
            Err(e) => return Err(io_err(&next)(e)),
        };
        if meta.file_type().is_symlink() {
            // The folder it sits in is checked already; the link must be as trustworthy.
            if meta.uid() != 0 && meta.uid() != me {
                return Err(DataDirError::Link { path: absolute, link: next, owner: meta.uid() });
            }
            links += 1;
            if links > MAX_LINKS {
                return Err(DataDirError::TooManyLinks { path: absolute });
            }
            let target = fs::read_link(&next).map_err(io_err(&next))?;
            if target.is_absolute() {
                real = PathBuf::from("/");
            }
            push_front(&mut todo, &target);
            continue;
        }
        if !meta.is_dir() {
            return Err(DataDirError::NotAFolder { path: next });
        }
        if created && meta.uid() == me {
            // Ours and new: an ACL on it was inherited from the folder above, not chosen by
            // anyone; it goes, so it can neither be refused nor let anyone in.
            strip_acl(&next)?;
        }
        real = next;
        if !last {
            check_above(&real, &absolute, me)?;
        }
    }
    check_folder(&real, me, mode, Kind::DataDir)?;
    Ok(real)
}

/// Checks (creating it if missing) the folder `name` inside a data folder [`prepare`] returned:
/// ours, no link, no ACL, writable by nobody else; its permission bits are then set to `mode`.
pub fn prepare_subdir(root: &Path, name: &str, mode: u32) -> Result<PathBuf, DataDirError> {
    let path = root.join(name);
    let me = me();
    match fs::DirBuilder::new().mode(0o700).create(&path) {
        Ok(()) => {
            if fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir() && m.uid() == me) {
                strip_acl(&path)?;
            }
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io_err(&path)(e)),
    }
    check_folder(&path, me, Some(mode), Kind::Inside)?;
    Ok(path)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    DataDir,
    Inside,
}

/// The folder itself: ours, not a link, writable by nobody else, no ACL. Then opened without
/// following a link, compared with what was checked, and given `mode` on that descriptor.
fn check_folder(path: &Path, me: u32, mode: Option<u32>, kind: Kind) -> Result<(), DataDirError> {
    let meta = fs::symlink_metadata(path).map_err(io_err(path))?;
    if meta.file_type().is_symlink() {
        return Err(DataDirError::InsideLink { path: path.to_owned() });
    }
    if !meta.is_dir() {
        return Err(DataDirError::NotAFolder { path: path.to_owned() });
    }
    if meta.uid() != me {
        return Err(match kind {
            Kind::DataDir => DataDirError::NotYours { path: path.to_owned(), owner: meta.uid(), me },
            Kind::Inside => DataDirError::InsideNotYours { path: path.to_owned(), owner: meta.uid(), me },
        });
    }
    let bits = meta.mode() & 0o7777;
    if let Some(by) = written_by_others(bits, meta.gid(), meta.uid()) {
        return Err(DataDirError::Writable { path: path.to_owned(), mode: bits, by });
    }
    if acl(path).map_err(io_err(path))? != Acl::None {
        return Err(DataDirError::Acl { path: path.to_owned() });
    }
    let dir = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(io_err(path))?;
    let opened = dir.metadata().map_err(io_err(path))?;
    if opened.dev() != meta.dev() || opened.ino() != meta.ino() {
        return Err(DataDirError::Changed { path: path.to_owned() });
    }
    if let Some(mode) = mode
        && opened.mode() & 0o7777 != mode
    {
        dir.set_permissions(fs::Permissions::from_mode(mode)).map_err(io_err(path))?;
    }
    Ok(())
}

/// A folder above the data folder: owned by root or us, writable by nobody else except through a
/// sticky bit or the owner's private group, and no ACL that grants others write access.
fn check_above(parent: &Path, path: &Path, me: u32) -> Result<(), DataDirError> {
    let meta = fs::symlink_metadata(parent).map_err(io_err(parent))?;
    if meta.uid() != 0 && meta.uid() != me {
        return Err(DataDirError::ParentNotTrusted {
            path: path.to_owned(),
            parent: parent.to_owned(),
            owner: meta.uid(),
        });
    }
    let bits = meta.mode() & 0o7777;
    // Sticky: others may add entries but never rename or remove ours, and ours are checked.
    if bits & 0o1000 == 0
        && let Some(by) = written_by_others(bits, meta.gid(), meta.uid())
    {
        return Err(DataDirError::ParentWritable { path: path.to_owned(), parent: parent.to_owned(), mode: bits, by });
    }
    if acl(parent).map_err(io_err(parent))? == Acl::GrantsWrite {
        return Err(DataDirError::ParentAcl { path: path.to_owned(), parent: parent.to_owned() });
    }
    Ok(())
}

/// Who besides the owner may write, by the mode bits: "other users", or the group when it is not
/// private to the owner (its own primary group with no other member, as user-private groups
/// are: a `umask 002` system makes folders group-writable for that group).
fn written_by_others(bits: u32, gid: u32, owner: u32) -> Option<String> {
    if bits & 0o002 != 0 {
        return Some("other users".into());
    }
    if bits & 0o020 != 0 && !group_is_private(gid, owner) {
        let name = nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(gid)).ok().flatten().map(|g| g.name);
        return Some(match name {
            Some(n) => format!("the group {n} (gid {gid})"),
            None => format!("the group gid {gid}"),
        });
    }
    None
}

fn group_is_private(gid: u32, owner: u32) -> bool {
    use nix::unistd::{Gid, Group, Uid, User};
    let Ok(Some(user)) = User::from_uid(Uid::from_raw(owner)) else { return false };
    let Ok(Some(group)) = Group::from_gid(Gid::from_raw(gid)) else { return false };
    user.gid.as_raw() == gid && group.mem.iter().all(|m| *m == user.name)
}

fn push_front(todo: &mut VecDeque<OsString>, path: &Path) {
    let names: Vec<OsString> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_owned()),
            Component::ParentDir => Some("..".into()),
            Component::CurDir => Some(".".into()),
            Component::RootDir | Component::Prefix(_) => None,
        })
        .collect();
    for n in names.into_iter().rev() {
        todo.push_front(n);
    }
}

/// What an ACL on a folder allows, beyond its mode bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Acl {
    None,
    /// An ACL is there, but it gives nobody write access (e.g. a Mac home folder's "everyone
    /// deny delete").
    Present,
    GrantsWrite,
}

/// Linux: the POSIX ACL xattrs, read without following a link. An access ACL with named users or
/// groups (or a mask), or any default ACL, is an ACL; one that gives a named user or group write
/// access (under its mask) grants write.
#[cfg(target_os = "linux")]
fn acl(path: &Path) -> io::Result<Acl> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(io::Error::other)?;
    let read = |name: &std::ffi::CStr| -> io::Result<Option<Vec<u8>>> {
        let absent = |e: io::Error| match e.raw_os_error() {
            Some(libc::ENODATA) | Some(libc::ENOTSUP) => Ok(None),
            _ => Err(e),
        };
        // SAFETY: a size query (null buffer, length 0) on a valid C path and attribute name.
        let size = unsafe { libc::lgetxattr(c.as_ptr(), name.as_ptr(), std::ptr::null_mut(), 0) };
        if size < 0 {
            return absent(io::Error::last_os_error());
        }
        // Room for an entry or two more, should one be added between the two calls.
        let mut buf = vec![0u8; size as usize + 64];
        // SAFETY: a valid C path and attribute name, and a buffer of the length given.
        let n = unsafe { libc::lgetxattr(c.as_ptr(), name.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            return absent(io::Error::last_os_error());
        }
        buf.truncate(n as usize);
        Ok(Some(buf))
    };
    let default = read(c"system.posix_acl_default")?;
    let access = read(c"system.posix_acl_access")?;
    let Some(access) = access else {
        return Ok(if default.is_some() { Acl::Present } else { Acl::None });
    };
    // struct posix_acl_xattr_header { le32 version } then entries { le16 tag; le16 perm; le32 id }.
    const USER: u16 = 0x02;
    const GROUP: u16 = 0x08;
    const MASK: u16 = 0x10;
    const WRITE: u16 = 0x02;
    let entries: Vec<(u16, u16)> = access
        .get(4..)
        .unwrap_or_default()
        .chunks_exact(8)
        .map(|e| (u16::from_le_bytes([e[0], e[1]]), u16::from_le_bytes([e[2], e[3]])))
        .collect();
    let mask_writes = entries.iter().find(|(tag, _)| *tag == MASK).is_none_or(|(_, perm)| perm & WRITE != 0);
    let named = entries.iter().filter(|(tag, _)| *tag == USER || *tag == GROUP);
    if mask_writes && named.clone().any(|(_, perm)| perm & WRITE != 0) {
        return Ok(Acl::GrantsWrite);
    }
    let extended = named.count() > 0 || entries.iter().any(|(tag, _)| *tag == MASK);
    Ok(if extended || default.is_some() { Acl::Present } else { Acl::None })
}

/// macOS: the extended ACL, read without following a link. Any entry is an ACL; an "allow"
/// entry with a right that changes the folder's contents, mode or owner grants write.
#[cfg(target_os = "macos")]
fn acl(path: &Path) -> io::Result<Acl> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(io::Error::other)?;
    // SAFETY: acl_get_link_np returns an ACL this function frees, or null; the entry and permset
    // calls only read it.
    unsafe {
        let acl = macos_acl::acl_get_link_np(c.as_ptr(), macos_acl::ACL_TYPE_EXTENDED);
        if acl.is_null() {
            return match io::Error::last_os_error().raw_os_error() {
                Some(libc::ENOENT) | Some(libc::ENOTSUP) | None | Some(0) => Ok(Acl::None),
                _ => Err(io::Error::last_os_error()),
            };
        }
        let mut state = Acl::None;
        let mut entry = std::ptr::null_mut();
        let mut which = macos_acl::ACL_FIRST_ENTRY;
        while macos_acl::acl_get_entry(acl, which, &mut entry) == 0 {
            which = macos_acl::ACL_NEXT_ENTRY;
            state = Acl::Present;
            let mut tag = 0;
            let mut perms = std::ptr::null_mut();
            if macos_acl::acl_get_tag_type(entry, &mut tag) != 0 || macos_acl::acl_get_permset(entry, &mut perms) != 0 {
                state = Acl::GrantsWrite;
                break;
            }
            if tag == macos_acl::ACL_EXTENDED_ALLOW
                && macos_acl::WRITE_RIGHTS.iter().any(|&p| macos_acl::acl_get_perm_np(perms, p) == 1)
            {
                state = Acl::GrantsWrite;
                break;
            }
        }
        macos_acl::acl_free(acl);
        Ok(state)
    }
}

#[cfg(not(any(target_os = "linux", target_os = "macos")))]
fn acl(_path: &Path) -> io::Result<Acl> {
    Ok(Acl::None)
}

/// Removes an ACL from a folder we just made (opened without following a link).
fn strip_acl(path: &Path) -> Result<(), DataDirError> {
    let dir = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(io_err(path))?;
    strip_acl_fd(&dir).map_err(io_err(path))
}

#[cfg(target_os = "linux")]
fn strip_acl_fd(dir: &fs::File) -> io::Result<()> {
    for name in [c"system.posix_acl_access", c"system.posix_acl_default"] {
        // SAFETY: a valid descriptor and a NUL-terminated attribute name.
        if unsafe { libc::fremovexattr(dir.as_raw_fd(), name.as_ptr()) } == -1 {
            let e = io::Error::last_os_error();
            if !matches!(e.raw_os_error(), Some(libc::ENODATA) | Some(libc::ENOTSUP)) {
                return Err(e);
            }
        }
    }
    Ok(())
}

#[cfg(target_os = "macos")]
fn strip_acl_fd(dir: &fs::File) -> io::Result<()> {
    // SAFETY: acl_init returns a fresh ACL (or null) freed below; acl_set_fd_np reads it and a
    // valid descriptor.
    unsafe {
        let empty = macos_acl::acl_init(0);
        if empty.is_null() {
            return Err(io::Error::last_os_error());
        }
        let set = macos_acl::acl_set_fd_np(dir.as_raw_fd(), empty, macos_acl::ACL_TYPE_EXTENDED);
        let e = io::Error::last_os_error();
        macos_acl::acl_free(empty);
        if set != 0 && e.raw_os_error() != Some(libc::ENOTSUP) {
            return Err(e);
        }
    }
    Ok(())
}

#[cfg(not(any(target_os = "linux", target_os = "macos")))]
fn strip_acl_fd(_dir: &fs::File) -> io::Result<()> {
    Ok(())
}

/// The calls of macOS's <sys/acl.h> (libSystem) this module needs; the libc crate has none.
#[cfg(target_os = "macos")]
mod macos_acl {
    pub type Acl = *mut std::ffi::c_void;
    pub type Entry = *mut std::ffi::c_void;
    pub type Permset = *mut std::ffi::c_void;
    pub const ACL_TYPE_EXTENDED: libc::c_int = 0x0000_0100;
    pub const ACL_FIRST_ENTRY: libc::c_int = 0;
    pub const ACL_NEXT_ENTRY: libc::c_int = -1;
    pub const ACL_EXTENDED_ALLOW: libc::c_int = 1;
    /// ACL_WRITE_DATA (add a file), ACL_DELETE, ACL_APPEND_DATA (add a folder),
    /// ACL_DELETE_CHILD, ACL_WRITE_SECURITY, ACL_CHANGE_OWNER.
    pub const WRITE_RIGHTS: [libc::c_int; 6] = [1 << 2, 1 << 4, 1 << 5, 1 << 6, 1 << 12, 1 << 13];
    unsafe extern "C" {
        pub fn acl_init(count: libc::c_int) -> Acl;
        pub fn acl_free(obj: *mut std::ffi::c_void) -> libc::c_int;
        pub fn acl_set_fd_np(fd: libc::c_int, acl: Acl, kind: libc::c_int) -> libc::c_int;
        pub fn acl_get_link_np(path: *const libc::c_char, kind: libc::c_int) -> Acl;
        pub fn acl_get_entry(acl: Acl, entry_id: libc::c_int, entry: *mut Entry) -> libc::c_int;
        pub fn acl_get_tag_type(entry: Entry, tag: *mut libc::c_int) -> libc::c_int;
        pub fn acl_get_permset(entry: Entry, permset: *mut Permset) -> libc::c_int;
        pub fn acl_get_perm_np(permset: Permset, perm: libc::c_int) -> libc::c_int;
    }
}

/// Replaces the file at `path` with `bytes`, atomically, readable by its owner only: the bytes
/// go to `<name>.tmp` — created new (`O_EXCL`, never through a link), 0600, fsynced — which is
/// then renamed over `path`, and the folder is fsynced. A `.tmp` left by a crash is removed first
/// only if it is a plain file of ours; anything else there is refused, not followed.
pub fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let name = path.file_name().ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file path"))?;
    let mut tmp_name = name.to_owned();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    match fs::symlink_metadata(&tmp) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Ok(m) if m.file_type().is_file() && m.uid() == me() => fs::remove_file(&tmp)?,
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "{} is in the way and is not a file of yours (a link, or someone else's); move it aside and try again",
                    tmp.display()
                ),
            ));
        }
        Err(e) => return Err(e),
    }
    let written = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    if let Some(dir) =
        path.parent().and_then(|d| fs::File::open(if d.as_os_str().is_empty() { Path::new(".") } else { d }).ok())
    {
        let _ = dir.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().mode() & 0o7777
    }

    #[test]
    fn a_new_folder_is_made_private_and_its_real_path_returned() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("a/b/hearth");
        let real = prepare(&data, Some(0o700)).unwrap();
        assert_eq!(real, fs::canonicalize(&data).unwrap());
        assert_eq!(mode(&data), 0o700);
        // Again, with the mode a sandboxed household wants, through a link of our own and `..`.
        std::os::unix::fs::symlink(tmp.path().join("a"), tmp.path().join("link")).unwrap();
        let again = prepare(&tmp.path().join("link/b/../b/hearth"), Some(0o711)).unwrap();
        assert_eq!(again, real);
        assert_eq!(mode(&data), 0o711);
        // A relative path is taken from the working directory.
        assert!(prepare(Path::new("."), None).unwrap().is_absolute());
    }

    #[test]
    fn a_folder_others_may_change_is_refused_with_the_fix() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("hearth");
        fs::create_dir(&data).unwrap();
        fs::set_permissions(&data, fs::Permissions::from_mode(0o777)).unwrap();
        let err = prepare(&data, Some(0o700)).unwrap_err().to_string();
        assert!(err.contains("can be changed by other users (mode 0777)") && err.contains("chmod go-w"), "{err}");
        assert_eq!(mode(&data), 0o777, "a refused folder is left as it was");
        // World-writable but sticky is fine above the folder, never as the folder itself.
        fs::set_permissions(&data, fs::Permissions::from_mode(0o1777)).unwrap();
        assert!(prepare(&data, None).unwrap_err().to_string().contains("mode 1777"));
        let inner = prepare(&data.join("inner"), Some(0o700)).unwrap();
        assert_eq!(mode(&inner), 0o700);
        // Above the folder, a plain world-writable one is refused.
        fs::set_permissions(&data, fs::Permissions::from_mode(0o777)).unwrap();
        let err = prepare(&data.join("inner"), None).unwrap_err().to_string();
        assert!(err.contains("above the data folder") && err.contains("chmod +t"), "{err}");
    }

    #[test]
    fn what_is_inside_must_be_ours_and_no_link() {
        let tmp = tempfile::tempdir().unwrap();
        let root = prepare(&tmp.path().join("data"), Some(0o700)).unwrap();
        let run = prepare_subdir(&root, "run", 0o700).unwrap();
        assert_eq!(mode(&run), 0o700);
        fs::set_permissions(&run, fs::Permissions::from_mode(0o755)).unwrap();
        prepare_subdir(&root, "run", 0o700).unwrap();
        assert_eq!(mode(&run), 0o700, "tightened");
        std::os::unix::fs::symlink(tmp.path(), root.join("workers")).unwrap();
        let err = prepare_subdir(&root, "workers", 0o711).unwrap_err().to_string();
        assert!(err.contains("symbolic link"), "{err}");
        assert_ne!(mode(tmp.path()), 0o711, "the link's target is untouched");
        fs::write(root.join("file"), b"x").unwrap();
        assert!(prepare_subdir(&root, "file", 0o700).unwrap_err().to_string().contains("not a folder"));
    }

    #[test]
    fn an_atomic_write_never_follows_or_reuses_what_is_in_the_way() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("secrets.json");
        write_private(&path, b"one").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"one");
        assert_eq!(mode(&path), 0o600);
        // A crash's leftover of ours is replaced.
        fs::write(tmp.path().join("secrets.json.tmp"), b"half").unwrap();
        write_private(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert!(!tmp.path().join("secrets.json.tmp").exists());
        // A link in the way is refused, and its target untouched.
        let victim = tmp.path().join("victim");
        fs::write(&victim, b"victim").unwrap();
        std::os::unix::fs::symlink(&victim, tmp.path().join("secrets.json.tmp")).unwrap();
        let err = write_private(&path, b"three").unwrap_err().to_string();
        assert!(err.contains("in the way"), "{err}");
        assert_eq!(fs::read(&victim).unwrap(), b"victim");
        assert_eq!(fs::read(&path).unwrap(), b"two");
    }
}
