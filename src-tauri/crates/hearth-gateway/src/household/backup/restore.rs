//! Restoring a backup into a data folder: refused while a gateway serves it, verified first,
//! never deleting a household (a non-empty one is moved aside), created through descriptors.
use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Local};
use hearth_isolation::fsat;

use super::*;

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error(transparent)]
    Serving(#[from] AlreadyServing),
    #[error(
        "{} already holds a household; restoring would replace it. Add --force to move it aside \
         (to {}.before-restore-<time>; nothing is deleted), or choose another --data-dir",
        .0.display(), .0.display()
    )]
    NotEmpty(PathBuf),
    #[error("the backup did not pass verification, so nothing was restored:\n  {}", .0.join("\n  "))]
    Damaged(Vec<String>),
    /// The backup folder is not root's nor the household's own user's (or others can write to
    /// it): whoever could change it could make the restore hand out what they like.
    #[error(
        "{} belongs to uid {uid} (mode {mode:04o}); Hearth restores only a backup folder that root or the household's \
         own user owns and nobody else can write to. If you made it and trust it, give it to root first \
         (`sudo chown -R root: {}` and `sudo chmod -R go-w {}`), then restore again",
        path.display(), path.display(), path.display()
    )]
    Foreign { path: PathBuf, uid: u32, mode: u32 },
    #[error(transparent)]
    Backup(#[from] BackupError),
    #[error("{0}")]
    Other(String),
}

/// What [`restore`] did.
#[derive(Debug)]
pub struct Restored {
    pub data_dir: PathBuf,
    /// Where the data directory that was there went (`force`).
    pub moved_aside: Option<PathBuf>,
    pub members: Vec<ManifestMember>,
    pub files: usize,
    pub secrets_restored: bool,
    /// Without secrets in the backup: whether the provider's key must be pasted again.
    pub provider_key_needed: bool,
    /// Member directories handed to their OS account (as root, when the account exists).
    pub owners_set: Vec<String>,
}

pub(super) fn serving(e: anyhow::Error) -> RestoreError {
    match e.downcast::<AlreadyServing>() {
        Ok(serving) => RestoreError::Serving(serving),
        Err(e) => RestoreError::Other(format!("{e:#}")),
    }
}

/// Restores the backup in `backup` into `data_dir`: refuses while a gateway serves it, refuses a
/// non-empty one unless `force` (then moves it aside), verifies first, copies back with modes.
pub fn restore(backup: &Path, data_dir: &Path, force: bool, now: DateTime<Local>) -> Result<Restored, RestoreError> {
    let root = open_backup(backup)?;
    // Whose backups are read: root's, this process's own, and those of the data directory's
    // owner (the household's user, e.g. the Linux package's `hearth`).
    let st = nix::sys::stat::fstat(&root).map_err(|e| RestoreError::Backup(read_err(backup)(e.into())))?;
    let me = nix::unistd::geteuid().as_raw();
    let data_owner = std::fs::metadata(data_dir).ok().map(|m| std::os::unix::fs::MetadataExt::uid(&m));
    let trusted = st.st_uid == 0 || st.st_uid == me || Some(st.st_uid) == data_owner;
    if !trusted || st.st_mode & 0o022 != 0 {
        return Err(RestoreError::Foreign {
            path: backup.to_owned(),
            uid: st.st_uid,
            mode: fsat::mode_bits(&st),
        });
    }
    let verified = verify_at(&root, backup)?;
    if !verified.problems.is_empty() {
        return Err(RestoreError::Damaged(verified.problems));
    }
    let manifest = verified.manifest;

    // The data directory's parent is the caller's choice (created if missing, as before); the
    // data directory itself is reached only through the parent's descriptor from here on.
    let (Some(parent_path), Some(name)) = (data_dir.parent(), data_dir.file_name().and_then(|n| n.to_str())) else {
        return Err(RestoreError::Other(format!("{} cannot be a data directory", data_dir.display())));
    };
    let parent_path = if parent_path.as_os_str().is_empty() { Path::new(".") } else { parent_path };
    let parent = fsat::make_dirs_path(parent_path).map_err(|e| RestoreError::Backup(write_err(parent_path)(e)))?;

    let mut moved_aside = None;
    // Restored as root into a folder someone else owns (the Linux package's `hearth` user), the
    // household's files go to that owner, so the gateway can open them.
    let mut owner = None;
    let mut keep_mode = 0o700;
    let existing = fsat::stat_at(&parent, name).map_err(|e| RestoreError::Backup(read_err(data_dir)(e)))?;
    let mut data = None;
    if let Some(old) = existing {
        let old_fd =
            fsat::open_dir_seen(&parent, name, &old).map_err(|e| RestoreError::Backup(read_err(data_dir)(e)))?;
        let old_lock = lock_at(&old_fd, data_dir).map_err(serving)?;
        owner = Some((old.st_uid, old.st_gid));
        keep_mode = fsat::mode_of(&old) & 0o711 | 0o700;
        let names = fsat::names(&old_fd).map_err(|e| RestoreError::Backup(read_err(data_dir)(e)))?;
        if names.iter().all(|n| n == LOCK) {
            data = Some((old_fd, old_lock));
        } else {
            if !force {
                return Err(RestoreError::NotEmpty(data_dir.to_owned()));
            }
            let aside = format!("{name}.before-restore-{}", now.format(STAMP));
            fsat::rename_new(&parent, name, &aside)
                .map_err(|e| RestoreError::Backup(write_err(&parent_path.join(&aside))(e)))?;
            moved_aside = Some(parent_path.join(aside));
            drop(old_lock);
        }
    }
    // Held while copying, so no gateway starts on a half-restored directory. A directory made
    // here is this process's, 0700, until everything is in it.
    let (data, _lock) = match data {
        Some(kept) => kept,
        None => {
            let fd =
                fsat::make_fresh_dir(&parent, name, 0o700).map_err(|e| RestoreError::Backup(write_err(data_dir)(e)))?;
            let lock = lock_at(&fd, data_dir).map_err(serving)?;
            (fd, lock)
        }
    };
    let hand = owner.filter(|(uid, _)| *uid != 0 && nix::unistd::geteuid().is_root());
    let mut writer = RestoreWriter { data: &data, data_path: data_dir, dirs: HashMap::new(), hand };
    for d in &manifest.dirs {
        writer.make_dir(&d.path, parse_mode(&d.mode).unwrap_or(0o700))?;
    }
    let mut reader = BackupReader::new(&root).map_err(|e| RestoreError::Backup(read_err(backup)(e)))?;
    let mut files = 0;
    for f in &manifest.files {
        writer.copy_file(&mut reader, backup, f)?;
        files += 1;
    }
    if let Some((uid, gid)) = hand {
        chown_fd(&data, uid, gid).map_err(|e| {
            RestoreError::Other(format!("the backup was restored but could not be handed to uid {uid}: {e}"))
        })?;
    }
    nix::sys::stat::fchmod(&data, fsat::mode(keep_mode))
        .map_err(|e| RestoreError::Backup(write_err(data_dir)(e.into())))?;
    let mut owners_set = Vec::new();
    if hearth_isolation::accounts::can_manage_accounts() {
        for m in &manifest.members {
            let Ok(Some(account)) = hearth_isolation::accounts::find_account(&m.id) else { continue };
            if fsat::open_dir_beneath(&data, &format!("members/{}", m.id)).is_err() {
                continue;
            }
            hearth_isolation::dirs::prepare_member_dir_at(&data, data_dir, &m.id, Some(&account)).map_err(|e| {
                RestoreError::Other(format!("{}'s folder was restored but not handed to their account: {e}", m.name))
            })?;
            owners_set.push(m.name.clone());
        }
    }
    let secrets_restored = manifest.includes_secrets;
    Ok(Restored {
        data_dir: data_dir.to_owned(),
        moved_aside,
        provider_key_needed: !secrets_restored && manifest.provider_set,
        members: manifest.members,
        files,
        secrets_restored,
        owners_set,
    })
}

pub(super) fn chown_fd(fd: &impl AsFd, uid: u32, gid: u32) -> nix::Result<()> {
    nix::unistd::fchown(fd.as_fd(), Some(nix::unistd::Uid::from_raw(uid)), Some(nix::unistd::Gid::from_raw(gid)))
}

/// Creates a restored household inside the data directory opened as `data`: every folder with
/// `mkdirat` and opened again without following links, every file new (`O_EXCL|O_NOFOLLOW`),
/// modes and owners set on those descriptors.
pub(super) struct RestoreWriter<'a> {
    data: &'a OwnedFd,
    data_path: &'a Path,
    dirs: HashMap<String, OwnedFd>,
    /// Who gets everything (root restoring into another user's data directory).
    hand: Option<(u32, u32)>,
}

impl RestoreWriter<'_> {
    pub(super) fn dir(&mut self, rel: &str) -> Result<&OwnedFd, RestoreError> {
        if rel.is_empty() {
            return Ok(self.data);
        }
        if !self.dirs.contains_key(rel) {
            let fd = fsat::open_dir_beneath(self.data, rel)
                .map_err(|e| RestoreError::Backup(write_err(&self.data_path.join(rel))(e)))?;
            self.dirs.insert(rel.to_owned(), fd);
        }
        Ok(&self.dirs[rel])
    }

    pub(super) fn make_dir(&mut self, rel: &str, mode: u32) -> Result<(), RestoreError> {
        let (parent, name) = rel.rsplit_once('/').unwrap_or(("", rel));
        let path = self.data_path.join(rel);
        let parent = self.dir(parent)?;
        let fd = fsat::make_fresh_dir(parent, name, 0o700).map_err(|e| RestoreError::Backup(write_err(&path)(e)))?;
        if let Some((uid, gid)) = self.hand {
            chown_fd(&fd, uid, gid).map_err(|e| RestoreError::Backup(write_err(&path)(e.into())))?;
        }
        nix::sys::stat::fchmod(&fd, fsat::mode(mode))
            .map_err(|e| RestoreError::Backup(write_err(&path)(e.into())))?;
        self.dirs.insert(rel.to_owned(), fd);
        Ok(())
    }

    /// Copies one file out of the backup, checking it against the manifest on the way (it may
    /// have changed since it was verified), with the manifest's mode.
    pub(super) fn copy_file(
        &mut self,
        reader: &mut BackupReader<'_>,
        backup: &Path,
        f: &ManifestFile,
    ) -> Result<(), RestoreError> {
        let (parent, name) = f.path.rsplit_once('/').unwrap_or(("", f.path.as_str()));
        let to = self.data_path.join(&f.path);
        let hand = self.hand;
        let dir = self.dir(parent)?;
        let mut dst = fsat::create_file_at(dir, name).map_err(|e| RestoreError::Backup(write_err(&to)(e)))?;
        let (size, sha) = reader.hash(&f.path, Some(&mut dst)).map_err(|why| {
            RestoreError::Backup(BackupError::Read { path: backup.join(&f.path), source: io::Error::other(why) })
        })?;
        if size != f.bytes || sha != f.sha256 {
            return Err(RestoreError::Backup(BackupError::Read {
                path: backup.join(&f.path),
                source: io::Error::other("changed while restoring"),
            }));
        }
        if let Some((uid, gid)) = hand {
            chown_fd(&dst, uid, gid).map_err(|e| RestoreError::Backup(write_err(&to)(e.into())))?;
        }
        let mode = parse_mode(&f.mode).unwrap_or(0o600);
        nix::sys::stat::fchmod(&dst, fsat::mode(mode))
            .map_err(|e| RestoreError::Backup(write_err(&to)(e.into())))?;
        dst.sync_all().map_err(|e| RestoreError::Backup(write_err(&to)(e)))
    }
}
