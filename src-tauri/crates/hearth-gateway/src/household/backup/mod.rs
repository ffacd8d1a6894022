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
//! Everything is copied by [`crate::household::tree`]: each folder is read with its owner's rights — as
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
//!
//! Files: this one holds the format (the manifest, names, errors) and the few things every step
//! shares; `create.rs`, `verify.rs`, `restore.rs` and `schedule.rs` (the timer, pruning, and
//! [`Backups`], the one-at-a-time and schedule state a running gateway keeps) are the steps.
//! The admin's side — `BackupCreate` and `BackupSchedule` while a gateway serves — is
//! `control/backup.rs`.

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use hearth_isolation::fsat;
use nix::errno::Errno;
use nix::sys::stat::Mode;
use serde::{Deserialize, Serialize};

use crate::household::tree::{self, ReadOptions, ReaderExe, Received, Source, TreeError, hex};
use crate::lock::{AlreadyServing, lock_at};
use crate::secrets::{self, SecretsBackend};
use crate::store;

mod create;
mod restore;
mod schedule;
#[cfg(test)]
mod tests;
mod verify;

pub use create::*;
pub use restore::*;
pub use schedule::*;
pub use verify::*;

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
    crate::lock::lock_at(&data, data_dir)
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
