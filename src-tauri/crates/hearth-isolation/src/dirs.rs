//! Member directories: `<data>/members/<id>/`, mode 0700, created before the first worker runs.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::IsolationError;

/// A member id is used as a directory name (and later an account name), so it is restricted to
/// lower-case ASCII letters, digits and `-`, at most 32 bytes, not starting with `-`.
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

/// Creates (or tightens) the member's directory: 0700, and its parent `members/` 0711 so a
/// member account can reach its own directory without listing the others.
pub fn prepare_member_dir(data_dir: &Path, member_id: &str) -> Result<PathBuf, IsolationError> {
    let dir = member_dir(data_dir, member_id)?;
    let err = |path: &Path| {
        let path = path.to_owned();
        move |source| IsolationError::Dir { path, source }
    };
    let parent = data_dir.join("members");
    fs::create_dir_all(&parent).map_err(err(&parent))?;
    fs::set_permissions(&parent, fs::Permissions::from_mode(0o711)).map_err(err(&parent))?;
    match fs::create_dir(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(err(&dir)(e)),
    }
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).map_err(err(&dir))?;
    Ok(dir)
}

/// Moves a removed member's directory to `<data>/archive/<id>-<stamp>/` so nothing of theirs is
/// left where a future member could be given the same path. Returns where it went, or `None` if
/// there was nothing to archive.
pub fn archive_member_dir(
    data_dir: &Path,
    member_id: &str,
    stamp: &str,
) -> Result<Option<PathBuf>, IsolationError> {
    let dir = member_dir(data_dir, member_id)?;
    if !dir.exists() {
        return Ok(None);
    }
    let archive = data_dir.join("archive");
    fs::create_dir_all(&archive).map_err(|source| IsolationError::Dir { path: archive.clone(), source })?;
    fs::set_permissions(&archive, fs::Permissions::from_mode(0o700))
        .map_err(|source| IsolationError::Dir { path: archive.clone(), source })?;
    let to = archive.join(format!("{member_id}-{stamp}"));
    fs::rename(&dir, &to).map_err(|source| IsolationError::Dir { path: dir.clone(), source })?;
    Ok(Some(to))
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
        let dir = prepare_member_dir(data.path(), "ana-1").unwrap();
        let mode = fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        fs::write(dir.join("history.sqlite"), b"x").unwrap();
        // Loosened by someone: preparing again tightens it.
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        prepare_member_dir(data.path(), "ana-1").unwrap();
        assert_eq!(fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);

        let to = archive_member_dir(data.path(), "ana-1", "20260101T000000").unwrap().unwrap();
        assert!(!dir.exists());
        assert!(to.join("history.sqlite").exists());
        assert_eq!(archive_member_dir(data.path(), "ana-1", "x").unwrap(), None);
    }
}
