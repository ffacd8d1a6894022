//! Backups of the whole household: `hearth backup create | verify | restore | schedule`.
//!
//! A backup is a folder `hearth-backup-YYYYMMDD-HHMMSS/` (0700, local time) holding
//!
//! - `gateway.sqlite`, copied with `VACUUM INTO`: one consistent snapshot even while the gateway
//!   writes;
//! - `members/<id>/` for every member directory: databases through `VACUUM INTO` while their
//!   worker writes, other files as they are; symlinks, hard links and special files are left out;
//! - `kb/`, the household knowledge the admin wrote (not its index, `kb.sqlite`, which the
//!   gateway rebuilds);
//! - `app.json` (the app's settings) when there is one;
//! - `secrets.json` (bot tokens, provider key, 0600) **only** when asked for: written from the
//!   gateway's [`Secrets`](crate::secrets::Secrets) handle wherever it keeps them (the file, or
//!   the macOS Keychain), or read by [`read_secrets`] for a backup made without a gateway. A
//!   restore writes it back into the data directory, where a gateway that keeps secrets in the
//!   Keychain imports it at its next start ([`crate::secrets`]);
//! - `manifest.json`: format, Hearth version, time, the gateway schema version, the members, and
//!   every directory and file with its original mode, size and SHA-256.
//!
//! Everything is copied by [`crate::tree`]: each folder is read with its owner's rights — as
//! root, by a reader process running as the member's account (or the data folder's owner) — and
//! written through descriptors. Root never opens a file, link or database inside a folder
//! someone else can write, and never works by path there: the destination folder is opened
//! once, the backup is written as `hearth-backup-….partial` created with `mkdirat` and reached
//! only through its descriptor (renaming the name away while root writes gains nothing), modes
//! are the writer's (files 0600, folders 0700; the manifest keeps the originals), and the
//! finished folder is renamed within the destination without replacing anything. A folder with
//! the final name is always whole.
//!
//! [`verify`] re-hashes every file and runs `PRAGMA integrity_check` on every database — on a
//! private copy, never on the backup's own file — walking the backup through descriptors;
//! [`restore`] reads only a backup folder that root or the household's own user owns, verifies
//! it first, never deletes a data directory (a non-empty one is moved aside with `force`), and
//! creates everything in the data directory through descriptors it opened itself, handing it
//! over with `fchown`/`fchmod` on those descriptors. Scheduled backups: [`run_schedule`], one
//! timer owned by the gateway.
//!
//! Blocking file work (everything but the schedule and the `Gateway` methods): call it from
//! `spawn_blocking`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::{self, Read as _, Write as _};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Local, NaiveDateTime, TimeZone, Utc};
use hearth_isolation::fsat;
use hearth_proto::control::{BackupSummary, ControlError, ControlReply, ErrorCode};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::{FileStat, Mode};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::control::internal;
use crate::gateway::{AlreadyServing, Gateway};
use crate::secrets::{self, SecretsBackend};
use crate::store;
use crate::tree::{self, ReadOptions, ReaderExe, Received, Source, TreeError, hex};

/// The manifest format this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// Every backup folder's name starts with this; scheduled pruning touches nothing else.
pub const PREFIX: &str = "hearth-backup-";
pub const MANIFEST: &str = "manifest.json";
/// Scheduled backups kept in their folder.
pub const KEEP: usize = 7;
const PARTIAL: &str = ".partial";
const STAMP: &str = "%Y%m%d-%H%M%S";
const DATABASE: &str = "gateway.sqlite";
const SECRETS: &str = "secrets.json";
const LOCK: &str = "gateway.lock";
/// The most a backup copies of the household's own files, and of each member's folder.
const MAX_COPY_BYTES: u64 = 64 << 30;
/// A manifest larger than this is not one Hearth wrote.
const MAX_MANIFEST_BYTES: u64 = 64 << 20;

pub(crate) const SETTING_DIR: &str = "backup.dir";
pub(crate) const SETTING_EVERY_HOURS: &str = "backup.every_hours";

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("there is no folder {}: create it first or choose another (is the disk connected?)", .0.display())]
    NoDestination(PathBuf),
    #[error("there is no Hearth data in {}: nothing to back up", .0.display())]
    NoData(PathBuf),
    #[error("{} is not a Hearth backup: {detail}", path.display())]
    NotABackup { path: PathBuf, detail: String },
    #[error("could not copy {what}: {source}")]
    Copy { what: String, source: TreeError },
    #[error("could not write {}: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },
    #[error("could not read {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("could not read the database {}: {source}", path.display())]
    Database { path: PathBuf, source: rusqlite::Error },
    /// The unfinished backup folder was renamed or replaced while it was written: someone who
    /// can write the destination interfered. Nothing was backed up there.
    #[error(
        "the unfinished backup {} was moved or replaced while it was being written, so it was not finished; \
         make sure nobody else writes to that folder and back up again",
        .0.display()
    )]
    Moved(PathBuf),
    /// The secrets asked for cannot be read here; the message says why and what to do.
    #[error("{0}")]
    Secrets(String),
}

fn write_err(path: &Path) -> impl FnOnce(io::Error) -> BackupError + '_ {
    move |source| BackupError::Write { path: path.to_owned(), source }
}

fn read_err(path: &Path) -> impl FnOnce(io::Error) -> BackupError + '_ {
    move |source| BackupError::Read { path: path.to_owned(), source }
}

/// `manifest.json`: what a backup holds, to check it against and to restore it from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT_VERSION`] of the Hearth that wrote it.
    pub format: u32,
    pub hearth_version: String,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// `PRAGMA user_version` of `gateway.sqlite`: a newer Hearth's backup is not restored by an
    /// older one.
    pub gateway_schema_version: i64,
    /// Whether `secrets.json` is in the backup.
    pub includes_secrets: bool,
    /// Whether a provider was set, so a restore without secrets can say its key is needed.
    pub provider_set: bool,
    pub members: Vec<ManifestMember>,
    /// Directories, parents before children, relative to the backup (and the data directory).
    pub dirs: Vec<ManifestDir>,
    pub files: Vec<ManifestFile>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestMember {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestDir {
    pub path: String,
    /// Permission bits as octal text, e.g. "0700".
    pub mode: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestFile {
    pub path: String,
    pub mode: String,
    pub bytes: u64,
    /// Lower-case hex.
    pub sha256: String,
}

/// Where backups go when no folder is given: `<data-dir>-backups` beside the data directory
/// (`/var/lib/hearth-backups`, `~/.local/share/hearth-backups`), so that wiping or replacing the
/// data directory leaves them alone. An external disk is better: `--to`, or a schedule.
pub fn default_dir(data_dir: &Path) -> PathBuf {
    let data_dir = std::path::absolute(data_dir).unwrap_or_else(|_| data_dir.to_owned());
    let name = data_dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "hearth".into());
    data_dir.with_file_name(format!("{name}-backups"))
}

/// Makes sure `dir` exists: created (0700) when its parent does, refused otherwise — an
/// unmounted disk's mount point must not silently fill the system disk's parent.
pub fn ensure_destination(dir: &Path) -> Result<(), BackupError> {
    if dir.is_dir() {
        return Ok(());
    }
    let (Some(parent), Some(name)) = (dir.parent(), dir.file_name().and_then(|n| n.to_str())) else {
        return Err(BackupError::NoDestination(dir.to_owned()));
    };
    let Ok(parent) = fsat::open_dir_path(parent, true) else { return Err(BackupError::NoDestination(dir.to_owned())) };
    match nix::sys::stat::mkdirat(&parent, name, Mode::from_bits_truncate(0o700)) {
        Ok(()) | Err(Errno::EEXIST) => Ok(()),
        Err(e) => Err(BackupError::Write { path: dir.to_owned(), source: e.into() }),
    }
}

/// Holds the data directory's lock, as a gateway does, so none starts while a backup is made
/// without one. Fails with [`AlreadyServing`] (inside the error) when one serves.
pub fn hold(data_dir: &Path) -> anyhow::Result<File> {
    let data = fsat::open_dir_path(data_dir, true)
        .map_err(|e| anyhow::anyhow!("cannot open the data directory {}: {e}", data_dir.display()))?;
    lock_at(&data, data_dir)
}

/// The data directory's lock (`gateway.lock`, the one a gateway holds), taken through the opened
/// directory. A lock file this process creates as root in someone else's data directory is
/// handed to that owner (the gateway must open it later); an existing one is only opened, never
/// through a link, and never changed.
pub(crate) fn lock_at(data: &OwnedFd, data_path: &Path) -> anyhow::Result<File> {
    use std::os::fd::AsRawFd;
    let path = data_path.join(LOCK);
    let create = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let fd = match nix::fcntl::openat(data, LOCK, create, Mode::from_bits_truncate(0o600)) {
        Ok(fd) => {
            let owner = nix::sys::stat::fstat(data)?;
            if nix::unistd::geteuid().is_root() && owner.st_uid != 0 {
                nix::unistd::fchown(
                    &fd,
                    Some(nix::unistd::Uid::from_raw(owner.st_uid)),
                    Some(nix::unistd::Gid::from_raw(owner.st_gid)),
                )?;
            }
            fd
        }
        Err(Errno::EEXIST) => {
            let (file, _) =
                fsat::open_file_at(data, LOCK).map_err(|e| anyhow::anyhow!("open {}: {e}", path.display()))?;
            OwnedFd::from(file)
        }
        Err(e) => return Err(anyhow::anyhow!("open {}: {e}", path.display())),
    };
    // SAFETY: flock on a descriptor we own.
    if unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Err(AlreadyServing { data_dir: data_path.to_owned() }.into());
    }
    Ok(File::from(fd))
}

/// The bot tokens and provider key for a backup made without a gateway (`hearth backup create`
/// as root, or with none serving), read from where a gateway here would keep them
/// ([`SecretsBackend::resolve`]: `HEARTH_SECRETS`, else the platform's default), changing nothing.
/// Root cannot open the admin's macOS Keychain: rather than leave the secrets out without a
/// word, that is an error that says what to do.
pub fn read_secrets(data_dir: &Path) -> Result<BTreeMap<String, String>, BackupError> {
    let backend = SecretsBackend::resolve(None).map_err(|e| BackupError::Secrets(e.to_string()))?;
    if backend == SecretsBackend::Keychain && nix::unistd::geteuid().is_root() {
        return Err(BackupError::Secrets(
            "the bot tokens and the provider key are in the admin's macOS Keychain, which root cannot open, so a \
             backup made as root cannot include them. Leave out --include-secrets (after a restore you paste them \
             again), or run `hearth backup create --include-secrets` as the admin, without sudo, while Hearth runs"
                .into(),
        ));
    }
    secrets::read(data_dir, backend).map_err(|e| BackupError::Secrets(e.to_string()))
}

// ---------------------------------------------------------------------------------------------
// create

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
fn open_both(data_dir: &Path, dest_parent: &Path) -> Result<(OwnedFd, OwnedFd), BackupError> {
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
fn fresh_partial(
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
fn discard(dest: &OwnedFd, name: &str, partial: &OwnedFd) {
    let _ = fsat::clear_dir(partial);
    let _ = fsat::remove_empty_dir_at(dest, name, partial);
}

/// Copies everything into `out` and writes the manifest; returns it and the bytes copied.
fn fill(
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
fn write_new_at(dir: &OwnedFd, name: &str, bytes: &[u8]) -> io::Result<()> {
    let mut f = fsat::create_file_at(dir, name)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// A database opened so that nothing is written beside it (no `-wal`, no `-shm`): a private
/// copy this process made.
fn open_read_only(path: &Path) -> rusqlite::Result<rusqlite::Connection> {
    crate::tree::open_snapshot(path)
}

// ---------------------------------------------------------------------------------------------
// verify

/// What [`verify`] found.
#[derive(Debug)]
pub struct Verified {
    pub manifest: Manifest,
    pub files: usize,
    pub databases: usize,
    pub bytes: u64,
    /// One sentence each, naming the file; empty when the backup is sound.
    pub problems: Vec<String>,
}

/// Re-hashes every file against the manifest, looks for missing and unexpected entries, and
/// runs `PRAGMA integrity_check` on every database. `Err` only when `dir` is not a backup at all.
pub fn verify(dir: &Path) -> Result<Verified, BackupError> {
    let fd = open_backup(dir)?;
    verify_at(&fd, dir)
}

fn open_backup(dir: &Path) -> Result<OwnedFd, BackupError> {
    fsat::open_dir_path(dir, true).map_err(|e| match e.raw_os_error() {
        Some(libc::ENOENT | libc::ENOTDIR) => {
            BackupError::NotABackup { path: dir.to_owned(), detail: "there is no such folder".into() }
        }
        _ => BackupError::Read { path: dir.to_owned(), source: e },
    })
}

/// Scratch space for copies of databases to check: a private folder of this process's in the
/// system's temporary directory, removed when done.
struct Scratch {
    path: PathBuf,
    fd: OwnedFd,
}

impl Scratch {
    fn new() -> io::Result<Scratch> {
        let tmp = std::env::temp_dir();
        let parent = fsat::open_dir_path(&tmp, true)?;
        let st = nix::sys::stat::fstat(&parent)?;
        let me = nix::unistd::geteuid().as_raw();
        // Nobody else may rename our folder away: the parent is ours or root's, and shared only
        // with the sticky bit.
        if (st.st_uid != 0 && st.st_uid != me) || (st.st_mode & 0o022 != 0 && st.st_mode & 0o1000 == 0) {
            return Err(io::Error::other(format!(
                "the temporary folder {} can be changed by others; set TMPDIR to a private folder",
                tmp.display()
            )));
        }
        for _ in 0..100 {
            let name = format!("hearth-verify-{:016x}", rand::random::<u64>());
            match fsat::make_fresh_dir(&parent, &name, 0o700) {
                Ok(fd) => return Ok(Scratch { path: tmp.join(name), fd }),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::other("could not make a private temporary folder"))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fsat::clear_dir(&self.fd);
        let _ = std::fs::remove_dir(&self.path);
    }
}

/// How to read files out of a backup folder opened as `root`: through descriptors, and — unless
/// root made the backup — only files with a single link (a hard link planted in a backup could
/// be anyone's file).
struct BackupReader<'a> {
    root: &'a OwnedFd,
    root_made: bool,
    dirs: HashMap<String, OwnedFd>,
    scratch: Option<Scratch>,
}

impl<'a> BackupReader<'a> {
    fn new(root: &'a OwnedFd) -> io::Result<Self> {
        let st = nix::sys::stat::fstat(root)?;
        Ok(Self { root, root_made: st.st_uid == 0, dirs: HashMap::new(), scratch: None })
    }

    fn dir(&mut self, rel: &str) -> io::Result<&OwnedFd> {
        if !self.dirs.contains_key(rel) {
            let fd = fsat::open_dir_beneath(self.root, rel)?;
            self.dirs.insert(rel.to_owned(), fd);
        }
        Ok(&self.dirs[rel])
    }

    /// Opens a file listed at `rel`; `Err` says what it is instead, in words.
    fn open(&mut self, rel: &str) -> Result<(File, FileStat), String> {
        let (parent, name) = rel.rsplit_once('/').unwrap_or(("", rel));
        let root_made = self.root_made;
        let dir = self.dir(parent).map_err(|_| "missing".to_owned())?;
        match fsat::stat_at(dir, name) {
            Ok(Some(st)) if fsat::is_file(&st) => {
                if st.st_nlink != 1 && !(root_made && st.st_uid == 0) {
                    return Err("a hard link, which Hearth reads only from a backup root made".into());
                }
                let (f, now) = fsat::open_file_at(dir, name).map_err(|e| e.to_string())?;
                if !fsat::same(&st, &now) {
                    return Err("replaced while being read".into());
                }
                Ok((f, now))
            }
            Ok(Some(_)) => Err("not a plain file".into()),
            Ok(None) => Err("missing".into()),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Size and SHA-256 of a listed file, and — when `into` is given — a copy written there.
    fn hash(&mut self, rel: &str, mut into: Option<&mut File>) -> Result<(u64, String), String> {
        let (mut f, _) = self.open(rel)?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        let mut size = 0u64;
        loop {
            let n = f.read(&mut buf).map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            if let Some(out) = into.as_deref_mut() {
                out.write_all(&buf[..n]).map_err(|e| format!("could not copy it to check it: {e}"))?;
            }
            size += n as u64;
        }
        Ok((size, hex(&hasher.finalize())))
    }

    /// Hashes a database and checks its integrity on a private copy.
    fn check_database(&mut self, rel: &str) -> Result<(u64, String, Result<(), String>), String> {
        if self.scratch.is_none() {
            self.scratch = Some(Scratch::new().map_err(|e| format!("no room to check it: {e}"))?);
        }
        let scratch = self.scratch.as_ref().map(|s| (s.fd.try_clone(), s.path.clone())).expect("made above");
        let (fd, path) = (scratch.0.map_err(|e| e.to_string())?, scratch.1);
        let _ = nix::unistd::unlinkat(&fd, "check.sqlite", nix::unistd::UnlinkatFlags::NoRemoveDir);
        let mut copy = fsat::create_file_at(&fd, "check.sqlite").map_err(|e| e.to_string())?;
        let (size, sha) = self.hash(rel, Some(&mut copy))?;
        drop(copy);
        let checked = integrity(&path.join("check.sqlite"));
        let _ = nix::unistd::unlinkat(&fd, "check.sqlite", nix::unistd::UnlinkatFlags::NoRemoveDir);
        Ok((size, sha, checked))
    }
}

/// The manifest of the backup opened as `root`.
fn read_manifest(root: &OwnedFd, dir: &Path) -> Result<Manifest, BackupError> {
    let not_a_backup = |detail: String| BackupError::NotABackup { path: dir.to_owned(), detail };
    let (file, st) = match fsat::open_file_at(root, MANIFEST) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(not_a_backup(format!("it has no {MANIFEST}"))),
        Err(source) => return Err(BackupError::Read { path: dir.join(MANIFEST), source }),
    };
    if st.st_size as u64 > MAX_MANIFEST_BYTES {
        return Err(not_a_backup(format!("its {MANIFEST} is far too large")));
    }
    let mut text = Vec::new();
    file.take(MAX_MANIFEST_BYTES).read_to_end(&mut text).map_err(read_err(&dir.join(MANIFEST)))?;
    serde_json::from_slice(&text).map_err(|e| not_a_backup(format!("{MANIFEST} cannot be read ({e})")))
}

/// [`verify`] on a backup folder already opened.
pub fn verify_at(root: &OwnedFd, dir: &Path) -> Result<Verified, BackupError> {
    let manifest = read_manifest(root, dir)?;
    let mut v = Verified { files: 0, databases: 0, bytes: 0, problems: Vec::new(), manifest };
    if v.manifest.format > FORMAT_VERSION {
        v.problems.push(format!(
            "it was made by a newer Hearth ({}, format {}); upgrade Hearth to restore it",
            v.manifest.hearth_version, v.manifest.format
        ));
        return Ok(v);
    }
    if v.manifest.gateway_schema_version > store::SCHEMA_VERSION {
        v.problems.push(format!(
            "its database is from a newer Hearth ({}, schema {} > {}); upgrade Hearth to restore it",
            v.manifest.hearth_version,
            v.manifest.gateway_schema_version,
            store::SCHEMA_VERSION
        ));
    }
    if !v.manifest.files.iter().any(|f| f.path == DATABASE) {
        v.problems.push(format!("{DATABASE} is not listed in the manifest"));
    }
    let mut reader = BackupReader::new(root).map_err(read_err(dir))?;
    let mut listed = HashSet::new();
    for d in &v.manifest.dirs {
        listed.insert(d.path.clone());
        if !is_safe_relative(&d.path) || parse_mode(&d.mode).is_none() {
            v.problems.push(format!("{}: the manifest lists an unsafe path or mode", d.path));
            continue;
        }
        if reader.dir(&d.path).is_err() {
            v.problems.push(format!("{}/: missing (or not a folder)", d.path));
        }
    }
    for f in &v.manifest.files {
        listed.insert(f.path.clone());
        if !is_safe_relative(&f.path) || parse_mode(&f.mode).is_none() {
            v.problems.push(format!("{}: the manifest lists an unsafe path or mode", f.path));
            continue;
        }
        let database = f.path.ends_with(".sqlite");
        let hashed = if database {
            reader.check_database(&f.path).map(|(size, sha, checked)| (size, sha, Some(checked)))
        } else {
            reader.hash(&f.path, None).map(|(size, sha)| (size, sha, None))
        };
        match hashed {
            Ok((size, sha, checked)) if size == f.bytes && sha == f.sha256 => {
                v.files += 1;
                v.bytes += size;
                match checked {
                    Some(Ok(())) => v.databases += 1,
                    Some(Err(why)) => v.problems.push(format!("{}: the database is damaged ({why})", f.path)),
                    None => {}
                }
            }
            Ok((size, _, _)) => v.problems.push(format!(
                "{}: changed since the backup was made ({size} bytes, {} expected, or a different checksum)",
                f.path, f.bytes
            )),
            Err(why) => v.problems.push(format!("{}: {why}", f.path)),
        }
    }
    let mut extra = Vec::new();
    unlisted(root, "", &listed, &mut extra, 0);
    extra.sort();
    v.problems.extend(extra.into_iter().map(|p| format!("{p}: not in the manifest (added after the backup was made)")));
    Ok(v)
}

fn integrity(path: &Path) -> Result<(), String> {
    let conn = open_read_only(path).map_err(|e| e.to_string())?;
    let mut stmt = conn.prepare("PRAGMA integrity_check").map_err(|e| e.to_string())?;
    let rows: Vec<String> =
        stmt.query_map([], |r| r.get::<_, String>(0)).and_then(|rows| rows.collect()).map_err(|e| e.to_string())?;
    if rows == ["ok"] { Ok(()) } else { Err(rows.join("; ")) }
}

/// Entries below `dir` (walked through descriptors) that the manifest does not list.
fn unlisted(dir: &OwnedFd, rel: &str, listed: &HashSet<String>, out: &mut Vec<String>, depth: usize) {
    let Ok(names) = fsat::names(dir) else { return };
    for raw in names {
        let name = raw.to_string_lossy();
        let path = if rel.is_empty() { name.to_string() } else { format!("{rel}/{name}") };
        if path == MANIFEST {
            continue;
        }
        if !listed.contains(&path) {
            out.push(path);
        } else if depth < fsat::MAX_DEPTH
            && let Ok(Some(st)) = fsat::stat_at(dir, &name)
            && fsat::is_dir(&st)
            && let Ok(child) = fsat::open_dir_seen(dir, &name, &st)
        {
            unlisted(&child, &path, listed, out, depth + 1);
        }
    }
}

/// A manifest path names something inside the backup: relative, plain components, nothing odd.
fn is_safe_relative(path: &str) -> bool {
    !path.is_empty()
        && Path::new(path).components().all(|c| matches!(c, Component::Normal(_)))
        && path.split('/').all(tree::is_plain_name)
}

fn parse_mode(text: &str) -> Option<u32> {
    u32::from_str_radix(text, 8).ok().filter(|m| *m <= 0o777)
}

// ---------------------------------------------------------------------------------------------
// restore

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

fn serving(e: anyhow::Error) -> RestoreError {
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

fn chown_fd(fd: &impl AsFd, uid: u32, gid: u32) -> nix::Result<()> {
    nix::unistd::fchown(fd.as_fd(), Some(nix::unistd::Uid::from_raw(uid)), Some(nix::unistd::Gid::from_raw(gid)))
}

/// Creates a restored household inside the data directory opened as `data`: every folder with
/// `mkdirat` and opened again without following links, every file new (`O_EXCL|O_NOFOLLOW`),
/// modes and owners set on those descriptors.
struct RestoreWriter<'a> {
    data: &'a OwnedFd,
    data_path: &'a Path,
    dirs: HashMap<String, OwnedFd>,
    /// Who gets everything (root restoring into another user's data directory).
    hand: Option<(u32, u32)>,
}

impl RestoreWriter<'_> {
    fn dir(&mut self, rel: &str) -> Result<&OwnedFd, RestoreError> {
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

    fn make_dir(&mut self, rel: &str, mode: u32) -> Result<(), RestoreError> {
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
    fn copy_file(
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

// ---------------------------------------------------------------------------------------------
// the schedule

/// Where and how often scheduled backups run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    pub dir: PathBuf,
    pub every: Duration,
}

/// Deletes all but the newest `keep` finished backups in `dir`, and unfinished ones older than
/// a day. Only `hearth-backup-*` folders are touched. Returns what was deleted.
pub fn prune(dir: &Path, keep: usize) -> io::Result<Vec<PathBuf>> {
    let fd = fsat::open_dir_path(dir, true)?;
    prune_at(&fd, dir, keep)
}

/// [`prune`] in a folder already opened: every deletion goes through descriptors (`unlinkat`
/// inside folders opened without following links), so a folder swapped for a link meanwhile
/// loses only the link.
pub fn prune_at(dir: &OwnedFd, dir_path: &Path, keep: usize) -> io::Result<Vec<PathBuf>> {
    let mut finished = Vec::new();
    let mut deleted = Vec::new();
    for raw in fsat::names(dir)? {
        let Some(name) = raw.to_str().filter(|n| n.starts_with(PREFIX)) else { continue };
        let Some(st) = fsat::stat_at(dir, name)?.filter(fsat::is_dir) else { continue };
        if name.ends_with(PARTIAL) {
            let modified = std::time::UNIX_EPOCH + Duration::from_secs(st.st_mtime.max(0) as u64);
            let stale = modified.elapsed().is_ok_and(|age| age > Duration::from_secs(86_400));
            if stale {
                fsat::remove_tree_at(dir, name)?;
                deleted.push(dir_path.join(name));
            }
        } else {
            finished.push((sort_key(name), name.to_owned()));
        }
    }
    finished.sort();
    let excess = finished.len().saturating_sub(keep);
    for (_, name) in finished.into_iter().take(excess) {
        fsat::remove_tree_at(dir, &name)?;
        deleted.push(dir_path.join(name));
    }
    Ok(deleted)
}

/// Orders `hearth-backup-<stamp>` before `-<stamp>-2` before `-<stamp>-10`.
fn sort_key(name: &str) -> (String, u32) {
    let rest = &name[PREFIX.len()..];
    let (stamp, n) = rest.split_at(rest.len().min(15));
    (stamp.to_owned(), n.trim_start_matches('-').parse().unwrap_or(1))
}

/// When the newest finished backup in `dir` was made, from its name.
pub fn newest(dir: &Path) -> Option<DateTime<Local>> {
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let stamp = name.strip_prefix(PREFIX)?.get(..15)?.to_owned();
            if name.ends_with(PARTIAL) {
                return None;
            }
            let naive = NaiveDateTime::parse_from_str(&stamp, STAMP).ok()?;
            Local.from_local_datetime(&naive).earliest()
        })
        .max()
}

/// The shortest wait before a scheduled backup: a gateway that just started is left a minute
/// (or one period, if that is shorter).
const FIRST_WAIT: Duration = Duration::from_secs(60);

/// How long until the next backup is due: a period after the newest one in the folder, so a
/// box that restarts more often than the period still backs up.
pub fn first_wait(newest: Option<DateTime<Local>>, now: DateTime<Local>, every: Duration) -> Duration {
    let least = FIRST_WAIT.min(every);
    let due = newest.and_then(|t| chrono::Duration::from_std(every).ok().map(|e| t + e));
    match due.map(|due| (due - now).to_std()) {
        Some(Ok(wait)) => wait.max(least),
        _ => least,
    }
}

/// Runs scheduled backups until `cancel`: one timer while a schedule is set, none otherwise. A
/// change on `schedule` restarts the timer. `backup` makes one backup in the folder at the time
/// given; a failure (a disk not connected) is logged and the next run comes as planned. After
/// each backup all but the last [`KEEP`] are deleted.
pub async fn run_schedule<F, Fut>(
    mut schedule: watch::Receiver<Option<Schedule>>,
    cancel: CancellationToken,
    clock: impl Fn() -> DateTime<Local>,
    mut backup: F,
) where
    F: FnMut(PathBuf, DateTime<Local>) -> Fut,
    Fut: Future<Output = Result<BackupSummary, String>>,
{
    loop {
        let current = schedule.borrow_and_update().clone();
        let Some(s) = current else {
            tokio::select! {
                _ = cancel.cancelled() => return,
                changed = schedule.changed() => if changed.is_err() { return } else { continue },
            }
        };
        let dir = s.dir.clone();
        let last = tokio::task::spawn_blocking(move || newest(&dir)).await.ok().flatten();
        let wait = first_wait(last, clock(), s.every);
        let mut timer = tokio::time::interval_at(tokio::time::Instant::now() + wait, s.every);
        timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                changed = schedule.changed() => if changed.is_err() { return } else { break },
                _ = timer.tick() => {
                    let result = backup(s.dir.clone(), clock()).await;
                    after_scheduled(&s.dir, result).await;
                }
            }
        }
    }
}

/// Logs a scheduled run and, after a success, prunes the folder. Nothing here stops the schedule.
async fn after_scheduled(dir: &Path, result: Result<BackupSummary, String>) {
    let done = match result {
        Ok(done) => done,
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "scheduled backup failed; trying again at the next one");
            return;
        }
    };
    tracing::info!(path = %done.path, bytes = done.bytes, "scheduled backup written");
    let d = dir.to_owned();
    match tokio::task::spawn_blocking(move || prune(&d, KEEP)).await {
        Ok(Ok(deleted)) if !deleted.is_empty() => {
            tracing::info!(deleted = deleted.len(), "older backups deleted (the last {KEEP} are kept)")
        }
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::warn!(dir = %dir.display(), error = %e, "could not delete older backups"),
        Err(e) => tracing::warn!(error = %e, "deleting older backups failed"),
    }
}

// ---------------------------------------------------------------------------------------------
// the gateway's side

/// The gateway's backup state: one backup at a time, and the schedule its timer follows.
pub(crate) struct Backups {
    // tokio Mutex: held across the await of the blocking copy.
    running: tokio::sync::Mutex<()>,
    schedule: watch::Sender<Option<Schedule>>,
}

impl Backups {
    pub(crate) fn new() -> Self {
        Self { running: tokio::sync::Mutex::new(()), schedule: watch::channel(None).0 }
    }
}

impl Gateway {
    /// Reads the stored schedule and starts the (single) schedule task. Called once at start.
    pub(crate) async fn start_backup_schedule(&self) {
        let stored = self
            .inner
            .store
            .call(|c| Ok((store::get_setting(c, SETTING_DIR)?, store::get_setting(c, SETTING_EVERY_HOURS)?)))
            .await;
        match stored {
            Ok((Some(dir), Some(hours))) => match hours.parse::<u64>() {
                Ok(h) if h > 0 => {
                    let every = Duration::from_secs(h * 3600);
                    self.inner.backups.schedule.send_replace(Some(Schedule { dir: PathBuf::from(dir), every }));
                }
                _ => tracing::error!(value = %hours, "stored backup.every_hours is invalid; set the schedule again"),
            },
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "could not read the backup schedule"),
        }
        let gw = self.clone();
        let rx = self.inner.backups.schedule.subscribe();
        let cancel = self.inner.cancel.clone();
        self.inner.tracker.spawn(run_schedule(rx, cancel, Local::now, move |dir, now| {
            let gw = gw.clone();
            async move { gw.backup_into(dir, false, now).await.map_err(|e| e.message) }
        }));
    }

    pub(crate) async fn backup_create(
        &self,
        dest_dir: &str,
        include_secrets: bool,
    ) -> Result<ControlReply, ControlError> {
        let dest = checked_dir(dest_dir)?;
        let d = dest.clone();
        tokio::task::spawn_blocking(move || ensure_destination(&d)).await.map_err(internal)?.map_err(backup_error)?;
        self.backup_into(dest, include_secrets, Local::now()).await.map(ControlReply::BackedUp)
    }

    async fn backup_into(
        &self,
        dest: PathBuf,
        include_secrets: bool,
        now: DateTime<Local>,
    ) -> Result<BackupSummary, ControlError> {
        let _one_at_a_time = self.inner.backups.running.lock().await;
        let data = self.inner.dir.root().to_owned();
        let done = match self.inner.workers.supervisor() {
            // Members' folders belong to their own accounts, which this user cannot read: root
            // makes the backup (and keeps the newest KEEP, since these folders are root's).
            Some(supervisor) => self.backup_through(supervisor, &data, &dest, include_secrets).await?,
            None => self.backup_here(data, dest, include_secrets, now).await?,
        };
        let detail = format!(
            "{} members, {} bytes, secrets: {}, to {}",
            done.members, done.bytes, done.includes_secrets, done.path
        );
        self.inner
            .store
            .call(move |c| store::audit(c, "admin", "backup_created", None, &detail))
            .await
            .map_err(internal)?;
        Ok(done)
    }

    async fn backup_through(
        &self,
        supervisor: &Path,
        data: &Path,
        dest: &Path,
        include_secrets: bool,
    ) -> Result<BackupSummary, ControlError> {
        if include_secrets {
            return Err(ControlError::new(
                ErrorCode::InvalidInput,
                "Members' files belong to their own OS accounts, so the Hearth supervisor makes this backup, and it never \
                 handles the bot tokens or the API key. Back up without them (you paste them again after a restore), or \
                 on Linux run `sudo hearth backup create --include-secrets`",
            ));
        }
        let data = std::fs::canonicalize(data).map_err(internal)?;
        let dest = std::fs::canonicalize(dest).map_err(internal)?;
        let keep = u32::try_from(KEEP).unwrap_or(u32::MAX);
        let mut client = hearth_isolation::SupervisorClient::connect(supervisor).await.map_err(|e| {
            ControlError::new(ErrorCode::Internal, format!("the backup needs the Hearth supervisor: {e}"))
        })?;
        client.backup(&data, &dest, keep).await.map_err(|e| ControlError::new(ErrorCode::Internal, e.to_string()))
    }

    /// A backup made by this process, which can read every member's folder (no accounts, or
    /// the gateway is root).
    async fn backup_here(
        &self,
        data: PathBuf,
        dest: PathBuf,
        include_secrets: bool,
        now: DateTime<Local>,
    ) -> Result<BackupSummary, ControlError> {
        // The values the gateway holds, wherever it keeps them (the file or the Keychain).
        let secrets = include_secrets.then(|| self.inner.secrets.snapshot());
        // A gateway running as root reads members' folders through readers running as their
        // accounts: its worker binary is `hearth`, which serves as the reader too.
        let exe = ReaderExe::Path(self.inner.config.worker_exe.clone());
        let done = tokio::task::spawn_blocking(move || create_with_secrets(&data, &dest, secrets.as_ref(), now, &exe))
            .await
            .map_err(internal)?;
        done.map_err(backup_error)
    }

    /// The backup schedule in force: the folder and every how many hours; `None` when off.
    pub fn scheduled_backups(&self) -> Option<(PathBuf, u32)> {
        self.inner.backups.schedule.borrow().as_ref().map(|s| (s.dir.clone(), (s.every.as_secs() / 3600) as u32))
    }

    pub(crate) async fn backup_schedule(
        &self,
        dest_dir: Option<String>,
        every_hours: u32,
    ) -> Result<ControlReply, ControlError> {
        let schedule = match dest_dir {
            None => None,
            Some(dir) => {
                if !(1..=24 * 31).contains(&every_hours) {
                    return Err(ControlError::new(
                        ErrorCode::InvalidInput,
                        format!("every {every_hours} hours is out of range; choose from 1 to 744 (a month)"),
                    ));
                }
                let dir = checked_dir(&dir)?;
                let d = dir.clone();
                tokio::task::spawn_blocking(move || ensure_destination(&d))
                    .await
                    .map_err(internal)?
                    .map_err(backup_error)?;
                Some(Schedule { dir, every: Duration::from_secs(u64::from(every_hours) * 3600) })
            }
        };
        let s = schedule.clone();
        self.inner
            .store
            .call(move |c| match &s {
                Some(s) => {
                    let hours = (s.every.as_secs() / 3600).to_string();
                    store::set_setting(c, SETTING_DIR, &s.dir.to_string_lossy())?;
                    store::set_setting(c, SETTING_EVERY_HOURS, &hours)?;
                    store::audit(
                        c,
                        "admin",
                        "backup_schedule",
                        None,
                        &format!("every {hours} h to {}", s.dir.display()),
                    )
                }
                None => {
                    c.execute("DELETE FROM settings WHERE key IN (?1, ?2)", [SETTING_DIR, SETTING_EVERY_HOURS])?;
                    store::audit(c, "admin", "backup_schedule", None, "off")
                }
            })
            .await
            .map_err(internal)?;
        self.inner.backups.schedule.send_replace(schedule);
        Ok(ControlReply::Done)
    }
}

fn checked_dir(dir: &str) -> Result<PathBuf, ControlError> {
    let path = PathBuf::from(dir.trim());
    if !path.is_absolute() {
        return Err(ControlError::new(
            ErrorCode::InvalidInput,
            format!("{dir:?} is not a full path; choose a folder such as /media/backup-disk/hearth"),
        ));
    }
    Ok(path)
}

fn backup_error(e: BackupError) -> ControlError {
    match e {
        BackupError::NoDestination(_) => ControlError::new(ErrorCode::InvalidInput, e.to_string()),
        e => ControlError::new(ErrorCode::Internal, format!("{e}; nothing was changed")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn backups_sort_by_time_then_by_their_number() {
        let mut names = [
            "hearth-backup-20260301-090000-10",
            "hearth-backup-20260301-090000-2",
            "hearth-backup-20260301-090000",
            "hearth-backup-20260228-235959",
        ];
        names.sort_by_key(|n| sort_key(n));
        assert_eq!(
            names,
            [
                "hearth-backup-20260228-235959",
                "hearth-backup-20260301-090000",
                "hearth-backup-20260301-090000-2",
                "hearth-backup-20260301-090000-10"
            ]
        );
    }

    #[test]
    fn the_next_backup_is_due_a_period_after_the_newest() {
        let now = Local.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap();
        let day = Duration::from_secs(86_400);
        assert_eq!(first_wait(None, now, day), FIRST_WAIT);
        assert_eq!(first_wait(Some(now - chrono::Duration::hours(20)), now, day), Duration::from_secs(4 * 3600));
        assert_eq!(first_wait(Some(now - chrono::Duration::days(3)), now, day), FIRST_WAIT, "overdue: soon");
        assert_eq!(first_wait(None, now, Duration::from_millis(250)), Duration::from_millis(250));
    }

    #[test]
    fn manifest_paths_stay_inside_the_backup() {
        assert!(is_safe_relative("members/rosa-1/history.sqlite"));
        for bad in ["", "/etc/passwd", "../secrets.json", "members/../../x", "./gateway.sqlite"] {
            assert!(!is_safe_relative(bad), "{bad}");
        }
        assert_eq!(parse_mode("0700"), Some(0o700));
        assert_eq!(parse_mode("4755"), None, "no set-uid bits from a manifest");
    }

    /// A data directory with an empty household database.
    fn household() -> tempfile::TempDir {
        let data = tempfile::tempdir().unwrap();
        drop(store::Store::open(&data.path().join(DATABASE)).unwrap());
        data
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_backup_without_a_gateway_takes_the_secrets_from_where_they_are_kept_0600() {
        let data = household();
        let secrets = crate::secrets::Secrets::open(data.path(), SecretsBackend::File).unwrap();
        secrets.set("bot/ana", "111:SECRET-ANA-TOKEN").unwrap();
        // Someone loosened the file; its copy is the owner's alone all the same.
        fs::set_permissions(data.path().join(SECRETS), fs::Permissions::from_mode(0o644)).unwrap();
        let out = tempfile::tempdir().unwrap();
        let now = Local.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap();

        let plain = create(data.path(), out.path(), false, now, &ReaderExe::This).unwrap();
        assert!(!plain.includes_secrets && !Path::new(&plain.path).join(SECRETS).exists());
        let with = create(data.path(), out.path(), true, now, &ReaderExe::This).unwrap();
        assert!(with.includes_secrets);
        let copy = Path::new(&with.path).join(SECRETS);
        assert!(fs::read_to_string(&copy).unwrap().contains("111:SECRET-ANA-TOKEN"));
        assert_eq!(mode(&copy), 0o600);
        let manifest: Manifest =
            serde_json::from_slice(&fs::read(Path::new(&with.path).join(MANIFEST)).unwrap()).unwrap();
        assert!(manifest.files.iter().any(|f| f.path == SECRETS && f.mode == "0600"));
        assert!(verify(Path::new(&with.path)).unwrap().problems.is_empty());
    }

    #[test]
    fn keychain_secrets_go_into_a_backup_and_come_back_through_the_next_start() {
        use crate::secrets::tests::MemoryVault;
        // A household whose secrets are in the Keychain: no secrets.json in the data directory.
        let data = household();
        let vault = MemoryVault::default();
        let kept = crate::secrets::Secrets::open_vault(data.path().join(SECRETS), Box::new(vault.clone())).unwrap();
        kept.set("bot/ana", "111:SECRET-ANA-TOKEN").unwrap();
        kept.set(crate::secrets::PROVIDER_KEY, "sk-SECRET-KEY").unwrap();
        assert!(!data.path().join(SECRETS).exists());
        let out = tempfile::tempdir().unwrap();
        let now = Local.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap();
        let snapshot = kept.snapshot();
        let with = create_with_secrets(data.path(), out.path(), Some(&snapshot), now, &ReaderExe::This).unwrap();
        assert!(with.includes_secrets);
        assert_eq!(mode(&Path::new(&with.path).join(SECRETS)), 0o600);
        let without = create_with_secrets(data.path(), out.path(), None, now, &ReaderExe::This).unwrap();
        assert!(!without.includes_secrets);

        // Restored onto a machine whose Keychain has none of it: the file waits in the data
        // directory, and the next start imports it and deletes it.
        let target = tempfile::tempdir().unwrap();
        let restored_dir = target.path().join("data");
        let restored = restore(Path::new(&with.path), &restored_dir, false, now).unwrap();
        assert!(restored.secrets_restored);
        assert_eq!(mode(&restored_dir.join(SECRETS)), 0o600);
        let fresh = MemoryVault::default();
        let opened = crate::secrets::Secrets::open_vault(restored_dir.join(SECRETS), Box::new(fresh.clone())).unwrap();
        assert_eq!(opened.get("bot/ana").as_deref(), Some("111:SECRET-ANA-TOKEN"));
        assert_eq!(fresh.map().unwrap(), snapshot);
        assert!(!restored_dir.join(SECRETS).exists());
    }

    #[test]
    fn the_default_folder_sits_beside_the_data_directory() {
        assert_eq!(default_dir(Path::new("/var/lib/hearth")), PathBuf::from("/var/lib/hearth-backups"));
        assert_eq!(
            default_dir(Path::new("/home/a/.local/share/hearth/")),
            PathBuf::from("/home/a/.local/share/hearth-backups")
        );
    }
}
