//! Whom `hearth supervisor` serves: the admin, the user the gateway runs as.
//!
//! On Linux the service names that user when it starts (`--admin-user hearth`). On macOS the
//! supervisor is a LaunchDaemon whose plist lives, signed, inside the app bundle, so it cannot
//! name anyone: a dmg is the same for every family. There the supervisor serves the first member
//! of the `admin` group (never root) who connects, which is the admin opening Hearth right after
//! allowing the daemon, and remembers that uid in a root-owned file ([`Admin::FirstOfGroup`]).
//! From then on it serves that uid alone, for as long as it stays in the group; removing the file
//! (as root) lets the next admin claim it.
//!
//! Trust on first use is sound here because of what the supervisor offers: members' accounts,
//! never root. Anyone in the admin group can already become root with their password, and the
//! pin keeps a second admin on the same Mac away from the first one's household.

use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Where the macOS supervisor remembers its admin (the plist names no pin file).
pub const DEFAULT_PIN_MACOS: &str = "/Library/Application Support/Hearth/supervisor-admin";
/// The same on Linux, for `--admin-group` there.
pub const DEFAULT_PIN_LINUX: &str = "/var/lib/hearth-supervisor/admin";
/// Where `--admin-group` remembers its admin unless told otherwise.
pub const DEFAULT_PIN: &str = if cfg!(target_os = "macos") { DEFAULT_PIN_MACOS } else { DEFAULT_PIN_LINUX };

/// Who may use the supervisor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admin {
    /// One uid, named when the supervisor starts.
    Uid(u32),
    /// The first user of group `gid` (never root) to connect; remembered in `pin`, a file only
    /// root can change, and the only one served after that.
    FirstOfGroup { gid: u32, pin: PathBuf },
}

/// An [`Admin`] with what has been learnt at run time.
#[derive(Debug)]
pub(crate) struct AdminRule {
    admin: Admin,
    // std Mutex: held for a file write at most, never across an await.
    pinned: Mutex<Option<u32>>,
}

impl AdminRule {
    /// Reads the pin when there is one. A pin file that is not root's, that others could change,
    /// or that does not hold a uid is an error: the supervisor does not start on it.
    pub(crate) fn load(admin: Admin) -> io::Result<AdminRule> {
        let pinned = match &admin {
            Admin::Uid(uid) => Some(*uid),
            Admin::FirstOfGroup { pin, .. } => read_pin(pin)?,
        };
        Ok(AdminRule { admin, pinned: Mutex::new(pinned) })
    }

    /// The group whose members may have written the worker binary's directories (on macOS,
    /// `/Applications` is root:admin 0775); `None` when only the named uid is trusted.
    pub(crate) fn group(&self) -> Option<u32> {
        match &self.admin {
            Admin::Uid(_) => None,
            Admin::FirstOfGroup { gid, .. } => Some(*gid),
        }
    }

    /// The admin served, once known.
    pub(crate) fn pinned(&self) -> Option<u32> {
        *self.pinned.lock().unwrap()
    }

    /// Whether a connection from `uid` is served; the first member of the group to ask is
    /// pinned. Blocking: it reads the account database and may write the pin file. The error
    /// says why, for the supervisor's log.
    pub(crate) fn admit(&self, uid: u32) -> Result<(), String> {
        let (gid, pin) = match &self.admin {
            Admin::Uid(admin) if *admin == uid => return Ok(()),
            Admin::Uid(admin) => return Err(format!("uid {uid} is not the admin's (uid {admin})")),
            Admin::FirstOfGroup { gid, pin } => (*gid, pin),
        };
        if uid == 0 {
            return Err("root is never the admin: a gateway running as root needs no supervisor".into());
        }
        let mut pinned = self.pinned.lock().unwrap();
        match *pinned {
            Some(admin) if admin != uid => Err(format!(
                "uid {uid} is not this supervisor's admin (uid {admin}, the first of group {gid} to use it); to hand the household's supervisor to another admin, remove {} as root and restart the supervisor",
                pin.display()
            )),
            _ if !in_group(uid, gid) => Err(format!("uid {uid} is not in group {gid}, whose members may use the supervisor")),
            Some(_) => Ok(()),
            None => {
                write_pin(pin, uid).map_err(|e| format!("could not remember uid {uid} as the admin in {}: {e}", pin.display()))?;
                tracing::info!(uid, pin = %pin.display(), "the supervisor's admin is now this uid");
                *pinned = Some(uid);
                Ok(())
            }
        }
    }
}

fn read_pin(path: &Path) -> io::Result<Option<u32>> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let bad = |why: String| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("the supervisor's admin file {} {why}; remove it as root to let the next admin claim the supervisor", path.display()),
        )
    };
    if !meta.is_file() || meta.uid() != 0 || meta.mode() & 0o022 != 0 {
        return Err(bad(format!(
            "must be a regular file of root's that nobody else can change (owner uid {}, mode {:04o})",
            meta.uid(),
            meta.mode() & 0o7777
        )));
    }
    let text = std::fs::read_to_string(path)?;
    match text.trim().parse::<u32>() {
        Ok(uid) if uid != 0 => Ok(Some(uid)),
        _ => Err(bad(format!("does not hold a user's uid ({:?})", text.trim()))),
    }
}

/// Writes the pin next to itself and renames it in place, so a crash leaves no half of one.
fn write_pin(path: &Path, uid: u32) -> io::Result<()> {
    let parent = path.parent().ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the admin file needs a directory"))?;
    std::fs::DirBuilder::new().recursive(true).mode(0o755).create(parent)?;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o644).open(&tmp)?;
    writeln!(f, "{uid}")?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)
}

/// Whether the user `uid` belongs to group `gid`, as the account database says now (primary
/// or supplementary).
fn in_group(uid: u32, gid: u32) -> bool {
    imp::in_group(uid, gid)
}

#[cfg(target_os = "macos")]
mod imp {
    // Membership on macOS lives in Open Directory, which getgrouplist(3) sees only in part; the
    // membership API asks opendirectoryd (<membership.h>, libSystem).
    unsafe extern "C" {
        fn mbr_uid_to_uuid(uid: libc::uid_t, uu: *mut u8) -> libc::c_int;
        fn mbr_gid_to_uuid(gid: libc::gid_t, uu: *mut u8) -> libc::c_int;
        fn mbr_check_membership(user: *const u8, group: *const u8, ismember: *mut libc::c_int) -> libc::c_int;
    }

    pub(super) fn in_group(uid: u32, gid: u32) -> bool {
        let (mut user, mut group, mut member) = ([0u8; 16], [0u8; 16], 0);
        // SAFETY: each call writes at most 16 bytes (a uuid_t) into the buffer it is given, or
        // one int; the buffers outlive the calls.
        unsafe {
            mbr_uid_to_uuid(uid, user.as_mut_ptr()) == 0
                && mbr_gid_to_uuid(gid, group.as_mut_ptr()) == 0
                && mbr_check_membership(user.as_ptr(), group.as_ptr(), &mut member) == 0
                && member == 1
        }
    }
}

#[cfg(not(target_os = "macos"))]
mod imp {
    use nix::unistd::{Gid, Uid, User, getgrouplist};

    pub(super) fn in_group(uid: u32, gid: u32) -> bool {
        let Ok(Some(user)) = User::from_uid(Uid::from_raw(uid)) else { return false };
        if user.gid.as_raw() == gid {
            return true;
        }
        let Ok(name) = std::ffi::CString::new(user.name) else { return false };
        getgrouplist(&name, user.gid).is_ok_and(|groups| groups.contains(&Gid::from_raw(gid)))
    }
}

/// Whether someone other than root, the admin, or members of the admin's group could change a
/// file or directory with this owner, group and mode — and so replace the worker binary the
/// supervisor runs as members. A sticky directory (such as /tmp) is fine however open it is:
/// only an entry's owner may rename it there, and that owner is checked one level down.
pub(crate) fn others_may_change(owner: u32, group: u32, mode: u32, is_dir: bool, admin: u32, admin_group: Option<u32>) -> bool {
    if owner != 0 && owner != admin {
        return true;
    }
    if is_dir && mode & 0o1000 != 0 {
        return false;
    }
    let group_writable = mode & 0o020 != 0 && Some(group) != admin_group;
    group_writable || mode & 0o002 != 0
}

/// The first directory above `file`, up to `/`, that [`others_may_change`], with its metadata;
/// `None` when only root and the admin can change every one of them. An unreadable directory is
/// the error, named.
pub(crate) fn changeable_parent(
    file: &Path,
    admin: u32,
    admin_group: Option<u32>,
) -> Result<Option<(PathBuf, std::fs::Metadata)>, (PathBuf, io::Error)> {
    for dir in file.ancestors().skip(1) {
        let meta = std::fs::metadata(dir).map_err(|e| (dir.to_owned(), e))?;
        if others_may_change(meta.uid(), meta.gid(), meta.mode() & 0o7777, true, admin, admin_group) {
            return Ok(Some((dir.to_owned(), meta)));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn who_may_change_the_worker_binary() {
        const ADMIN: u32 = 501;
        const ADMINS: Option<u32> = Some(80);
        // Root's 0755 file, the admin's own drag-installed app, /Applications (root:admin 0775).
        assert!(!others_may_change(0, 0, 0o755, false, ADMIN, None));
        assert!(!others_may_change(ADMIN, 20, 0o755, false, ADMIN, ADMINS));
        assert!(!others_may_change(0, 80, 0o775, true, ADMIN, ADMINS));
        // The same directory when only the admin's uid is trusted (the Linux service).
        assert!(others_may_change(0, 80, 0o775, true, ADMIN, None));
        // Another user's file, a group-writable file of a group that is not the admins'.
        assert!(others_may_change(502, 20, 0o755, false, ADMIN, ADMINS));
        assert!(others_may_change(ADMIN, 20, 0o775, false, ADMIN, ADMINS));
        // World-writable: never, unless a sticky directory.
        assert!(others_may_change(0, 0, 0o757, false, ADMIN, ADMINS));
        assert!(!others_may_change(0, 0, 0o1777, true, ADMIN, ADMINS));
        assert!(others_may_change(0, 0, 0o1777, false, ADMIN, ADMINS));
    }

    #[test]
    fn a_named_uid_is_the_only_one_served() {
        let rule = AdminRule::load(Admin::Uid(1000)).unwrap();
        assert_eq!(rule.pinned(), Some(1000));
        rule.admit(1000).unwrap();
        let e = rule.admit(1001).unwrap_err();
        assert!(e.contains("not the admin's"), "{e}");
        assert_eq!(rule.group(), None);
    }

    #[test]
    fn a_pin_file_must_hold_a_uid() {
        let dir = tempfile::tempdir().unwrap();
        let pin = dir.path().join("admin");
        // None yet: nobody has claimed the supervisor.
        assert_eq!(read_pin(&pin).unwrap(), None);
        std::fs::write(&pin, "root\n").unwrap();
        std::fs::set_permissions(&pin, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
        let owner_is_root = std::fs::metadata(&pin).unwrap().uid() == 0;
        let e = read_pin(&pin).unwrap_err().to_string();
        // Not root's when this runs unprivileged; not a uid when it runs as root.
        let expected = if owner_is_root { "does not hold a user's uid" } else { "regular file of root's" };
        assert!(e.contains(expected) && e.contains("remove it as root"), "{e}");
        if owner_is_root {
            write_pin(&pin, 501).unwrap();
            assert_eq!(read_pin(&pin).unwrap(), Some(501));
            assert_eq!(std::fs::metadata(&pin).unwrap().mode() & 0o777, 0o644);
        }
    }
}
