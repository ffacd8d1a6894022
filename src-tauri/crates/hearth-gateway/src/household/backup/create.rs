//! Making a backup: the data folder and every member's folder copied through `tree`, then a
//! manifest, then the finished folder renamed into place.
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Write as _};
use std::os::fd::OwnedFd;
use std::path::Path;

use chrono::{DateTime, Local, Utc};
use hearth_isolation::fsat;
use hearth_proto::control::BackupSummary;
use sha2::{Digest, Sha256};

use super::*;

/// Writes a new backup of `data_dir` into `dest_parent` (which must exist) and returns what it
/// holds, made by a process other than the gateway (`hearth backup create` as root, or with no
/// gateway serving). Safe while a gateway serves `data_dir` and workers write; without one, the
/// caller holds the data directory's lock. With `include_secrets` the bot tokens and provider key
/// are read by [`read_secrets`] — an error, not a backup without them, when they cannot be.
/// `exe` runs the readers of folders that must be read as their owners.
pub fn create(
    data_dir: &Path,
    dest_parent: &Path,
    include_secrets: bool,
    now: DateTime<Local>,
    exe: &ReaderExe,
) -> Result<BackupSummary, BackupError> {
    // What is wrong with the folders first; only then the secrets (the Keychain may ask).
    let (data, dest) = open_both(data_dir, dest_parent)?;
    let secrets = if include_secrets { Some(read_secrets(data_dir)?) } else { None };
    create_at(&data, data_dir, &dest, dest_parent, secrets.as_ref(), now, exe)
}

/// [`create`] with the secrets given: the gateway's own, from its
/// [`Secrets::snapshot`](crate::secrets::Secrets::snapshot) (no second trip to the Keychain).
/// `None` leaves them out.
pub fn create_with_secrets(
    data_dir: &Path,
    dest_parent: &Path,
    secrets: Option<&BTreeMap<String, String>>,
    now: DateTime<Local>,
    exe: &ReaderExe,
) -> Result<BackupSummary, BackupError> {
    let (data, dest) = open_both(data_dir, dest_parent)?;
    create_at(&data, data_dir, &dest, dest_parent, secrets, now, exe)
}

/// The data directory and the destination, opened by the paths the caller named.
pub(super) fn open_both(data_dir: &Path, dest_parent: &Path) -> Result<(OwnedFd, OwnedFd), BackupError> {
    let dest = fsat::open_dir_path(dest_parent, true).map_err(|e| match e.raw_os_error() {
        Some(libc::ENOENT | libc::ENOTDIR) => BackupError::NoDestination(dest_parent.to_owned()),
        _ => BackupError::Write { path: dest_parent.to_owned(), source: e },
    })?;
    let data = fsat::open_dir_path(data_dir, true).map_err(|_| BackupError::NoData(data_dir.to_owned()))?;
    Ok((data, dest))
}

/// [`create_with_secrets`] into folders already opened: `data` (the data directory, named
/// `data_path`) and `dest` (the destination, named `dest_path`; the paths only name things in
/// the summary and in errors). How the `hearth supervisor` daemon backs up for the admin: it
/// opens and checks both, then everything happens through these descriptors.
pub fn create_at(
    data: &OwnedFd,
    data_path: &Path,
    dest: &OwnedFd,
    dest_path: &Path,
    secrets: Option<&BTreeMap<String, String>>,
    now: DateTime<Local>,
    exe: &ReaderExe,
) -> Result<BackupSummary, BackupError> {
    if !fsat::stat_at(data, DATABASE).ok().flatten().is_some_and(|st| fsat::is_file(&st)) {
        return Err(BackupError::NoData(data_path.to_owned()));
    }
    let (partial, partial_name, name) = fresh_partial(dest, dest_path, &now)?;
    let partial_path = dest_path.join(&partial_name);
    let (manifest, bytes) = match fill(data, data_path, &partial, &partial_path, secrets, &now, exe) {
        Ok(done) => done,
        Err(e) => {
            discard(dest, &partial_name, &partial);
            return Err(e);
        }
    };
    // Only our own folder is given the final name: if the name was taken over meanwhile, what is
    // there now is someone else's.
    let ours = nix::sys::stat::fstat(&partial)
        .map_err(|e| BackupError::Write { path: partial_path.clone(), source: e.into() })?;
    if !fsat::stat_at(dest, &partial_name).ok().flatten().is_some_and(|st| fsat::same(&st, &ours)) {
        discard(dest, &partial_name, &partial);
        return Err(BackupError::Moved(partial_path));
    }
    let path = dest_path.join(&name);
    if let Err(source) = fsat::rename_new(dest, &partial_name, &name) {
        discard(dest, &partial_name, &partial);
        return Err(BackupError::Write { path, source });
    }
    if !fsat::stat_at(dest, &name).ok().flatten().is_some_and(|st| fsat::same(&st, &ours)) {
        return Err(BackupError::Moved(partial_path));
    }
    let _ = File::from(dest.try_clone().map_err(write_err(dest_path))?).sync_all();
    Ok(BackupSummary {
        path: path.display().to_string(),
        members: manifest.members.len() as u32,
        bytes,
        created_at: manifest.created_at,
        includes_secrets: manifest.includes_secrets,
    })
}

/// A new, empty `hearth-backup-<stamp>[-n].partial` folder (0700) made in `dest` by this
/// process, opened; its name and the final name.
pub(super) fn fresh_partial(
    dest: &OwnedFd,
    dest_path: &Path,
    now: &DateTime<Local>,
) -> Result<(OwnedFd, String, String), BackupError> {
    let stamp = now.format(STAMP).to_string();
    for n in 1..=100 {
        let name = if n == 1 { format!("{PREFIX}{stamp}") } else { format!("{PREFIX}{stamp}-{n}") };
        if fsat::stat_at(dest, &name).map_err(read_err(dest_path))?.is_some() {
            continue;
        }
        let partial = format!("{name}{PARTIAL}");
        match fsat::make_fresh_dir(dest, &partial, 0o700) {
            Ok(fd) => return Ok((fd, partial, name)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(source) => return Err(BackupError::Write { path: dest_path.join(partial), source }),
        }
    }
    Err(BackupError::Write { path: dest_path.join(PREFIX), source: io::Error::other("too many backups this second") })
}

/// Empties an unfinished backup through its descriptor and removes it if it still has its name.
pub(super) fn discard(dest: &OwnedFd, name: &str, partial: &OwnedFd) {
    let _ = fsat::clear_dir(partial);
    let _ = fsat::remove_empty_dir_at(dest, name, partial);
}

/// Copies everything into `out` and writes the manifest; returns it and the bytes copied.
pub(super) fn fill(
    data: &OwnedFd,
    data_path: &Path,
    out: &OwnedFd,
    out_path: &Path,
    secrets: Option<&BTreeMap<String, String>>,
    now: &DateTime<Local>,
    exe: &ReaderExe,
) -> Result<(Manifest, u64), BackupError> {
    let mut got = Received::default();
    let household = Source { dir: data, path: data_path, options: ReadOptions::household(), exe };
    tree::copy_tree(&household, out, "", MAX_COPY_BYTES, &mut got).map_err(|source| BackupError::Copy {
        what: format!("the household's files in {}", data_path.display()),
        source,
    })?;
    if !got.skipped.is_empty() {
        let skipped = &got.skipped;
        tracing::warn!(?skipped, "left links and special files out of the backup");
    }
    let members_path = data_path.join("members");
    if let Some(st) = fsat::stat_at(data, "members").map_err(read_err(&members_path))?
        && fsat::is_dir(&st)
    {
        let members = fsat::open_dir_seen(data, "members", &st).map_err(read_err(&members_path))?;
        let to = fsat::make_fresh_dir(out, "members", 0o700).map_err(write_err(&out_path.join("members")))?;
        got.dirs.push(("members".into(), fsat::mode_of(&st)));
        for raw in fsat::names(&members).map_err(read_err(&members_path))? {
            let Some(id) = raw.to_str().filter(|id| hearth_isolation::dirs::is_safe_member_id(id)) else {
                tracing::warn!(entry = ?raw, "left out of the backup: not a member directory");
                continue;
            };
            let from = members_path.join(id);
            let Some(mst) = fsat::stat_at(&members, id).map_err(read_err(&from))?.filter(fsat::is_dir) else {
                tracing::warn!(entry = %from.display(), "left out of the backup: not a member directory");
                continue;
            };
            let dir = fsat::open_dir_seen(&members, id, &mst).map_err(read_err(&from))?;
            let rel = format!("members/{id}");
            let into = fsat::make_fresh_dir(&to, id, 0o700).map_err(write_err(&out_path.join(&rel)))?;
            got.dirs.push((rel.clone(), fsat::mode_of(&mst)));
            let before = got.skipped.len();
            let src = Source { dir: &dir, path: &from, options: ReadOptions::member(), exe };
            tree::copy_tree(&src, &into, &rel, MAX_COPY_BYTES, &mut got)
                .map_err(|source| BackupError::Copy { what: format!("the folder of member {id}"), source })?;
            if got.skipped.len() > before {
                let skipped = &got.skipped[before..];
                tracing::warn!(member = %id, ?skipped, "left links and special files out of the backup");
            }
        }
    }
    // From the values, not a file: with the Keychain there is no file to copy. Nothing to keep
    // (no token, no key) is no secrets file, as before.
    let mut includes_secrets = false;
    if let Some(values) = secrets.filter(|v| !v.is_empty()) {
        let text = serde_json::to_vec_pretty(values).expect("a map of strings always serialises");
        write_new_at(out, SECRETS, &text).map_err(write_err(&out_path.join(SECRETS)))?;
        // Whatever mode (or Keychain) the secrets had, their copy is the owner's alone.
        got.files.push(tree::ReceivedFile {
            path: SECRETS.into(),
            mode: 0o600,
            bytes: text.len() as u64,
            sha256: hex(&Sha256::digest(&text)),
        });
        got.bytes += text.len() as u64;
        includes_secrets = true;
    }
    let meta = got.meta.take().ok_or_else(|| BackupError::NoData(data_path.to_owned()))?;
    let manifest = Manifest {
        format: FORMAT_VERSION,
        hearth_version: env!("CARGO_PKG_VERSION").to_owned(),
        created_at: now.with_timezone(&Utc).to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        gateway_schema_version: meta.schema,
        includes_secrets,
        provider_set: meta.provider_set,
        members: meta.members.into_iter().map(|m| ManifestMember { id: m.id, name: m.name }).collect(),
        dirs: got
            .dirs
            .iter()
            .map(|(path, mode)| ManifestDir { path: path.clone(), mode: format!("{mode:04o}") })
            .collect(),
        files: got
            .files
            .iter()
            .map(|f| ManifestFile {
                path: f.path.clone(),
                mode: format!("{:04o}", f.mode),
                bytes: f.bytes,
                sha256: f.sha256.clone(),
            })
            .collect(),
    };
    let text = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| BackupError::Write { path: out_path.join(MANIFEST), source: io::Error::other(e) })?;
    write_new_at(out, MANIFEST, &text).map_err(write_err(&out_path.join(MANIFEST)))?;
    let _ = File::from(out.try_clone().map_err(write_err(out_path))?).sync_all();
    Ok((manifest, got.bytes))
}

/// Writes a new file (0600, never an existing one or through a link) in an opened folder.
pub(super) fn write_new_at(dir: &OwnedFd, name: &str, bytes: &[u8]) -> io::Result<()> {
    let mut f = fsat::create_file_at(dir, name)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// A database opened so that nothing is written beside it (no `-wal`, no `-shm`): a private
/// copy this process made.
pub(super) fn open_read_only(path: &Path) -> rusqlite::Result<rusqlite::Connection> {
    crate::household::tree::open_snapshot(path)
}
