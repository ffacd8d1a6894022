//! What the daemon refuses before it touches anything: a member id that is not a safe account
//! name, a worker binary someone other than root or the admin could change, a data directory or
//! backup folder that is not the admin's alone. The directories are opened once and checked on
//! what was opened, so swapping one afterwards redirects nothing.

use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use hearth_proto::supervisor::SupervisorError;
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::{FileStat, Mode};

use super::{failed, invalid, refused};
use crate::admin::{changeable_parent, others_may_change};
use crate::{accounts, dirs};

pub(super) fn check_member_id(id: &str) -> Result<(), SupervisorError> {
    if dirs::is_safe_member_id(id) && id.len() <= accounts::MAX_ACCOUNT_MEMBER_ID {
        Ok(())
    } else {
        Err(invalid(format!(
            "member id {id:?} is not a safe account name: use at most {} lower-case letters, digits and '-'",
            accounts::MAX_ACCOUNT_MEMBER_ID
        )))
    }
}

/// The worker binary, resolved: a regular file that only root and the admin (and, with
/// `--admin-group`, that group) can change, in directories only they can change (a sticky
/// directory such as /tmp is fine: only an entry's owner may rename it there), and that member
/// accounts may execute. What matters is that no member's account — nor any other user — could
/// swap it for code that then runs as every member: the admin is trusted with members' accounts
/// anyway (see the module's doc), so the admin's own `/Applications/Hearth.app` passes.
pub(super) fn check_exe(exe: &Path, admin: u32, admin_group: Option<u32>) -> Result<PathBuf, SupervisorError> {
    if !exe.is_absolute() {
        return Err(invalid(format!("the worker binary {} is not an absolute path", exe.display())));
    }
    let real = std::fs::canonicalize(exe)
        .map_err(|e| refused(format!("cannot find the worker binary {}: {e}", exe.display())))?;
    let meta = std::fs::metadata(&real).map_err(|e| refused(format!("cannot read {}: {e}", real.display())))?;
    if !meta.is_file() {
        return Err(refused(format!("the worker binary {} is not a regular file", real.display())));
    }
    let mode = meta.mode() & 0o7777;
    if others_may_change(meta.uid(), meta.gid(), mode, false, admin, admin_group) {
        return Err(refused(format!(
            "the worker binary {} could be changed by someone other than root or the admin (owner uid {}, group {}, mode {mode:04o}), so the supervisor will not run it; install Hearth so that only root can change it: `chown root {} && chmod 755 {}`",
            real.display(),
            meta.uid(),
            meta.gid(),
            real.display(),
            real.display()
        )));
    }
    if mode & 0o001 == 0 {
        return Err(refused(format!(
            "member accounts cannot execute the worker binary {} (mode {mode:04o}); run `chmod o+x {}`",
            real.display(),
            real.display()
        )));
    }
    match changeable_parent(&real, admin, admin_group) {
        Ok(None) => Ok(real),
        Ok(Some((dir, meta))) => Err(refused(format!(
            "the worker binary {} lies in {}, which someone other than root or the admin could change (owner uid {}, group {}, mode {:04o}), so they could replace the binary; install Hearth where only root can write",
            real.display(),
            dir.display(),
            meta.uid(),
            meta.gid(),
            meta.mode() & 0o7777
        ))),
        Err((dir, e)) => Err(refused(format!("cannot read {}: {e}", dir.display()))),
    }
}

/// Where root may put a backup for the admin: a real directory (not a link) of the admin's that
/// nobody else can write to, so the supervisor writes nowhere the admin could not. Opened once;
/// the backup is written relative to this descriptor (the checks are on what was opened, so
/// swapping the folder afterwards redirects nothing).
pub(super) fn open_backup_dest(dest: &Path, admin: u32) -> Result<(OwnedFd, FileStat), SupervisorError> {
    if !dest.is_absolute() {
        return Err(invalid(format!("the backup folder {} is not an absolute path", dest.display())));
    }
    let fd = crate::fsat::open_dir_path(dest, false).map_err(|e| match e.kind() {
        io::ErrorKind::NotADirectory => {
            refused(format!("the backup folder {} is not a directory (a link is not followed)", dest.display()))
        }
        _ => refused(format!("cannot use the backup folder {}: {e}", dest.display())),
    })?;
    let st = nix::sys::stat::fstat(&fd).map_err(failed)?;
    let mode = crate::fsat::mode_bits(&st);
    if st.st_uid != admin || mode & 0o022 != 0 {
        return Err(refused(format!(
            "the backup folder {} must be yours (uid {admin}) and writable by nobody else, but it belongs to uid {} with mode {mode:04o}; choose a folder of your own",
            dest.display(),
            st.st_uid
        )));
    }
    Ok((fd, st))
}

/// Opens the gateway's data directory — never through a link at its last component — and checks
/// that it belongs to the admin and nobody else can write to it.
pub(super) fn open_data_dir(path: &Path, admin_uid: u32) -> Result<(OwnedFd, FileStat), SupervisorError> {
    if !path.is_absolute() {
        return Err(invalid(format!("the data directory {} is not an absolute path", path.display())));
    }
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let fd = nix::fcntl::open(path, flags, Mode::empty()).map_err(|e| match e {
        // A link at the last component: ELOOP or ENOTDIR, depending on the kernel's order of checks.
        Errno::ELOOP | Errno::ENOTDIR if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) => {
            refused(format!("the data directory {} is a symbolic link; pass the real path", path.display()))
        }
        Errno::ENOTDIR => refused(format!("the data directory {} is not a directory", path.display())),
        Errno::ENOENT => refused(format!("the data directory {} does not exist", path.display())),
        e => failed(format!("cannot open the data directory {}: {e}", path.display())),
    })?;
    let st = nix::sys::stat::fstat(&fd).map_err(failed)?;
    if st.st_uid != admin_uid {
        return Err(refused(format!(
            "the data directory {} belongs to uid {}, not to the gateway's user (uid {admin_uid}); the supervisor works only in its admin's own data directory",
            path.display(),
            st.st_uid
        )));
    }
    let mode = st.st_mode as u32 & 0o7777;
    if mode & 0o022 != 0 {
        return Err(refused(format!(
            "the data directory {} can be written by other users (mode {mode:04o}); run `chmod 711 {}`",
            path.display(),
            path.display()
        )));
    }
    Ok((fd, st))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use hearth_proto::supervisor::SupervisorErrorCode;

    use super::*;

    #[test]
    fn unsafe_member_ids_are_refused_with_a_reason() {
        for bad in ["", "../x", "A", "a b", &"x".repeat(accounts::MAX_ACCOUNT_MEMBER_ID + 1)] {
            let e = check_member_id(bad).unwrap_err();
            assert_eq!(e.code, SupervisorErrorCode::InvalidInput, "{bad:?}");
            assert!(e.message.contains("lower-case"), "{}", e.message);
        }
        check_member_id("ana-7k2p").unwrap();
    }

    #[test]
    fn relative_paths_are_refused() {
        assert_eq!(check_exe(Path::new("hearth"), 0, None).unwrap_err().code, SupervisorErrorCode::InvalidInput);
        assert_eq!(open_data_dir(Path::new("data"), 0).unwrap_err().code, SupervisorErrorCode::InvalidInput);
    }

    #[test]
    fn backups_go_only_into_a_real_folder_of_the_admins() {
        let me = nix::unistd::geteuid().as_raw();
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        open_backup_dest(dir.path(), me).unwrap();
        assert_eq!(open_backup_dest(Path::new("backups"), me).unwrap_err().code, SupervisorErrorCode::InvalidInput);
        let e = open_backup_dest(dir.path(), me + 1).unwrap_err();
        assert!(e.message.contains("must be yours"), "{}", e.message);
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(open_backup_dest(dir.path(), me).unwrap_err().message.contains("writable by nobody else"));
        let link = dir.path().join("link");
        let real = dir.path().join("real");
        std::fs::create_dir(&real).unwrap();
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert!(open_backup_dest(&link, me).unwrap_err().message.contains("link is not followed"));
    }

    #[test]
    fn a_binary_in_a_directory_others_can_write_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let exe = dir.path().join("hearth");
        std::fs::write(&exe, b"#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        let e = check_exe(&exe, 0, None).unwrap_err();
        assert_eq!(e.code, SupervisorErrorCode::Refused);
        // Either the file (not root's when this runs unprivileged) or its directory is named.
        assert!(e.message.contains("someone other than root"), "{}", e.message);
    }
}
