//! Backups of the whole household: `hearth backup create | verify | restore | schedule`.
//!
//! A backup is a folder `hearth-backup-YYYYMMDD-HHMMSS/` (0700, local time) holding
//!
//! - `gateway.sqlite`, copied with `VACUUM INTO` from a read-only connection: one consistent
//!   snapshot even while the gateway writes (the same copy [`crate::export`] makes of a member's
//!   databases, whose functions do the work here too);
//! - `members/<id>/` for every member directory: databases through `VACUUM INTO` while their
//!   worker writes, other files copied without following links (symlinks, hard links and
//!   special files are left out, as in an export);
//! - `kb/`, the household knowledge the admin wrote (not its index, `kb.sqlite`, which the
//!   gateway rebuilds);
//! - `app.json` (the app's settings) when there is one;
//! - `secrets.json` (bot tokens, provider key, 0600) **only** when asked for: written from the
//!   gateway's [`Secrets`](crate::secrets::Secrets) handle wherever it keeps them (the file, or
//!   the macOS Keychain), or read by [`read_secrets`] for a backup made without a gateway. A
//!   restore writes it back into the data directory, where a gateway that keeps secrets in the
//!   Keychain imports it at its next start ([`crate::secrets`]);
//! - `manifest.json`: format, Hearth version, time, the gateway schema version, the members, and
//!   every directory and file with its mode, size and SHA-256.
//!
//! It is written as `hearth-backup-….partial` and renamed when complete, so a folder with the
//! final name is always whole. [`verify`] re-hashes every file and runs `PRAGMA
//! integrity_check` on every database; [`restore`] verifies first, never deletes a data
//! directory (a non-empty one is moved aside with `force`), and copies back with the modes from
//! the manifest. Scheduled backups: [`run_schedule`], one timer owned by the gateway.
//!
//! Blocking file work (everything but the schedule and the `Gateway` methods): call it from
//! `spawn_blocking`.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read as _, Write as _};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Local, NaiveDateTime, TimeZone, Utc};
use hearth_proto::control::{BackupSummary, ControlError, ControlReply, ErrorCode};
use rusqlite::{Connection, OpenFlags};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::control::internal;
use crate::export::{self, ExportError, Exported};
use crate::gateway::{AlreadyServing, Gateway};
use crate::paths::DataDir;
use crate::secrets::{self, SecretsBackend};
use crate::store;

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
const APP_SETTINGS: &str = "app.json";

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
    #[error(transparent)]
    Copy(#[from] ExportError),
    #[error("could not write {}: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },
    #[error("could not read {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("could not read the database {}: {source}", path.display())]
    Database { path: PathBuf, source: rusqlite::Error },
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
    match dir.parent() {
        Some(parent) if parent.is_dir() => fs::DirBuilder::new().mode(0o700).create(dir).or_else(|e| match e.kind() {
            io::ErrorKind::AlreadyExists if dir.is_dir() => Ok(()),
            _ => Err(BackupError::Write { path: dir.to_owned(), source: e }),
        }),
        _ => Err(BackupError::NoDestination(dir.to_owned())),
    }
}

/// Holds the data directory's lock, as a gateway does, so none starts while a backup is made
/// without one. Fails with [`AlreadyServing`] (inside the error) when one serves.
pub fn hold(data_dir: &Path) -> anyhow::Result<File> {
    crate::gateway::take_lock(&DataDir::new(data_dir))
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
pub fn create(
    data_dir: &Path,
    dest_parent: &Path,
    include_secrets: bool,
    now: DateTime<Local>,
) -> Result<BackupSummary, BackupError> {
    // What is wrong with the folders first; only then the secrets (the Keychain may ask).
    if !dest_parent.is_dir() {
        return Err(BackupError::NoDestination(dest_parent.to_owned()));
    }
    if !DataDir::new(data_dir).database().is_file() {
        return Err(BackupError::NoData(data_dir.to_owned()));
    }
    let secrets = if include_secrets { Some(read_secrets(data_dir)?) } else { None };
    create_with_secrets(data_dir, dest_parent, secrets.as_ref(), now)
}

/// [`create`] with the secrets given: the gateway's own, from its
/// [`Secrets::snapshot`](crate::secrets::Secrets::snapshot) (no second trip to the Keychain).
/// `None` leaves them out.
pub fn create_with_secrets(
    data_dir: &Path,
    dest_parent: &Path,
    secrets: Option<&BTreeMap<String, String>>,
    now: DateTime<Local>,
) -> Result<BackupSummary, BackupError> {
    if !dest_parent.is_dir() {
        return Err(BackupError::NoDestination(dest_parent.to_owned()));
    }
    let dir = DataDir::new(data_dir);
    if !dir.database().is_file() {
        return Err(BackupError::NoData(data_dir.to_owned()));
    }
    let (partial, name) = fresh_partial(dest_parent, &now)?;
    let done = fill(&dir, &partial, secrets, &now);
    let (manifest, bytes) = match done {
        Ok(m) => m,
        Err(e) => {
            let _ = fs::remove_dir_all(&partial);
            return Err(e);
        }
    };
    let path = dest_parent.join(&name);
    if let Err(source) = fs::rename(&partial, &path) {
        let _ = fs::remove_dir_all(&partial);
        return Err(BackupError::Write { path, source });
    }
    if let Ok(d) = File::open(dest_parent) {
        let _ = d.sync_all();
    }
    Ok(BackupSummary {
        path: path.display().to_string(),
        members: manifest.members.len() as u32,
        bytes,
        created_at: manifest.created_at,
        includes_secrets: manifest.includes_secrets,
    })
}

/// A new, empty `hearth-backup-<stamp>[-n].partial` folder (0700) and the final name.
fn fresh_partial(parent: &Path, now: &DateTime<Local>) -> Result<(PathBuf, String), BackupError> {
    let stamp = now.format(STAMP).to_string();
    for n in 1..=100 {
        let name = if n == 1 { format!("{PREFIX}{stamp}") } else { format!("{PREFIX}{stamp}-{n}") };
        if parent.join(&name).exists() {
            continue;
        }
        let partial = parent.join(format!("{name}{PARTIAL}"));
        match fs::DirBuilder::new().mode(0o700).create(&partial) {
            Ok(()) => {
                // A umask or a file system may have loosened it.
                let _ = fs::set_permissions(&partial, fs::Permissions::from_mode(0o700));
                return Ok((partial, name));
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(source) => return Err(BackupError::Write { path: partial, source }),
        }
    }
    Err(BackupError::Write { path: parent.join(PREFIX), source: io::Error::other("too many backups this second") })
}

/// Copies everything into `out` and writes the manifest; returns it and the bytes copied.
fn fill(
    dir: &DataDir,
    out: &Path,
    secrets: Option<&BTreeMap<String, String>>,
    now: &DateTime<Local>,
) -> Result<(Manifest, u64), BackupError> {
    let root = dir.root();
    export::vacuum_into(&dir.database(), &out.join(DATABASE))?;
    let from = root.join(APP_SETTINGS);
    if fs::symlink_metadata(&from).is_ok_and(|m| m.is_file()) {
        export::copy_file(&from, &out.join(APP_SETTINGS))?;
    }
    // From the values, not a file: with the Keychain there is no file to copy. Nothing to keep
    // (no token, no key) is no secrets file, as before.
    if let Some(values) = secrets.filter(|v| !v.is_empty()) {
        let text = serde_json::to_vec_pretty(values).expect("a map of strings always serialises");
        export::write_new(&out.join(SECRETS), &text)?;
    }
    // The household's knowledge (`kb/`) is the admin's own writing: kept. Its search index
    // (`kb.sqlite`) is a cache the gateway rebuilds, so it is not.
    let kb = root.join("kb");
    if fs::symlink_metadata(&kb).is_ok_and(|m| m.is_dir()) {
        let to = out.join("kb");
        fs::DirBuilder::new().mode(0o700).create(&to).map_err(write_err(&to))?;
        let mut copied = Exported { path: to.clone(), files: 0, skipped: Vec::new() };
        export::copy_dir(&kb, &to, Path::new(""), &mut copied)?;
        if !copied.skipped.is_empty() {
            let skipped = &copied.skipped;
            tracing::warn!(?skipped, "left links and special files in kb/ out of the backup");
        }
    }
    let members_dir = root.join("members");
    if fs::symlink_metadata(&members_dir).is_ok_and(|m| m.is_dir()) {
        let to = out.join("members");
        fs::DirBuilder::new().mode(0o700).create(&to).map_err(write_err(&to))?;
        let mut entries: Vec<_> = fs::read_dir(&members_dir)
            .and_then(|d| d.collect::<Result<Vec<_>, _>>())
            .map_err(read_err(&members_dir))?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let id = entry.file_name().to_string_lossy().into_owned();
            let from = entry.path();
            let is_dir = fs::symlink_metadata(&from).is_ok_and(|m| m.is_dir());
            if !is_dir || !hearth_isolation::dirs::is_safe_member_id(&id) {
                tracing::warn!(entry = %from.display(), "left out of the backup: not a member directory");
                continue;
            }
            let dest = to.join(&id);
            fs::DirBuilder::new().mode(0o700).create(&dest).map_err(write_err(&dest))?;
            let mut copied = Exported { path: dest.clone(), files: 0, skipped: Vec::new() };
            export::copy_dir(&from, &dest, Path::new(""), &mut copied)?;
            if !copied.skipped.is_empty() {
                let skipped = &copied.skipped;
                tracing::warn!(member = %id, ?skipped, "left links and special files out of the backup");
            }
        }
    }

    let (schema, members, provider_set) = read_gateway_db(&out.join(DATABASE))?;
    let mut manifest = Manifest {
        format: FORMAT_VERSION,
        hearth_version: env!("CARGO_PKG_VERSION").to_owned(),
        created_at: now.with_timezone(&Utc).to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        gateway_schema_version: schema,
        includes_secrets: out.join(SECRETS).is_file(),
        provider_set,
        members,
        dirs: Vec::new(),
        files: Vec::new(),
    };
    let mut bytes = 0;
    describe(out, root, Path::new(""), &mut manifest, &mut bytes)?;
    let text = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| BackupError::Write { path: out.join(MANIFEST), source: io::Error::other(e) })?;
    export::write_new(&out.join(MANIFEST), &text)?;
    if let Ok(d) = File::open(out) {
        let _ = d.sync_all();
    }
    Ok((manifest, bytes))
}

/// The schema version, the members and whether a provider is set, from a copy of
/// `gateway.sqlite`.
fn read_gateway_db(path: &Path) -> Result<(i64, Vec<ManifestMember>, bool), BackupError> {
    let db_err = |source| BackupError::Database { path: path.to_owned(), source };
    let conn = open_read_only(path).map_err(db_err)?;
    let schema: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(db_err)?;
    let mut stmt = conn.prepare("SELECT id, name FROM members ORDER BY rowid").map_err(db_err)?;
    let members = stmt
        .query_map([], |r| Ok(ManifestMember { id: r.get(0)?, name: r.get(1)? }))
        .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
        .map_err(db_err)?;
    let provider: Option<String> = conn
        .query_row("SELECT value FROM settings WHERE key = 'provider.kind'", [], |r| r.get(0))
        .or_else(|e| if e == rusqlite::Error::QueryReturnedNoRows { Ok(None) } else { Err(e) })
        .map_err(db_err)?;
    Ok((schema, members, provider.is_some()))
}

/// A database in a backup, opened so that nothing is written beside it (no `-wal`, no `-shm`).
fn open_read_only(path: &Path) -> rusqlite::Result<Connection> {
    let mut uri = String::from("file:");
    for b in path.as_os_str().as_encoded_bytes() {
        match b {
            b'?' | b'#' | b'%' => uri.push_str(&format!("%{b:02X}")),
            _ => uri.push(*b as char),
        }
    }
    // Paths are not always UTF-8: fall back to a plain read-only open for those.
    if !path.to_str().is_some_and(|p| p.is_ascii()) {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags)?;
        conn.pragma_update(None, "trusted_schema", "OFF")?;
        return Ok(conn);
    }
    uri.push_str("?immutable=1");
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(uri, flags)?;
    conn.pragma_update(None, "trusted_schema", "OFF")?;
    Ok(conn)
}

/// Walks the written backup: sets each entry's mode to its original's (best effort: some disks
/// keep no modes — the manifest does) and lists it in the manifest.
fn describe(out: &Path, data: &Path, rel: &Path, manifest: &mut Manifest, bytes: &mut u64) -> Result<(), BackupError> {
    let here = out.join(rel);
    let mut entries: Vec<_> =
        fs::read_dir(&here).and_then(|d| d.collect::<Result<Vec<_>, _>>()).map_err(read_err(&here))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let rel = rel.join(entry.file_name());
        let path = entry.path();
        let meta = fs::symlink_metadata(&path).map_err(read_err(&path))?;
        let original = fs::symlink_metadata(data.join(&rel)).ok();
        let mode = if rel == Path::new(SECRETS) {
            // Whatever mode (or Keychain) the secrets had, their copy is the owner's alone.
            0o600
        } else {
            original.map(|m| m.mode() & 0o777).unwrap_or(meta.mode() & 0o777)
        };
        let _ = fs::set_permissions(&path, fs::Permissions::from_mode(mode));
        let text = rel.to_string_lossy().into_owned();
        if meta.is_dir() {
            manifest.dirs.push(ManifestDir { path: text, mode: format!("{mode:04o}") });
            describe(out, data, &rel, manifest, bytes)?;
        } else if meta.is_file() {
            let (size, sha256) = hash_file(&path)?;
            *bytes += size;
            manifest.files.push(ManifestFile { path: text, mode: format!("{mode:04o}"), bytes: size, sha256 });
        }
    }
    Ok(())
}

/// Size and SHA-256 of a file, opened without following a symlink.
fn hash_file(path: &Path) -> Result<(u64, String), BackupError> {
    let mut f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(read_err(path))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(read_err(path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((size, hex(&hasher.finalize())))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
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
    let not_a_backup = |detail: String| BackupError::NotABackup { path: dir.to_owned(), detail };
    let text = match fs::read(dir.join(MANIFEST)) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(not_a_backup(format!("it has no {MANIFEST}"))),
        Err(source) => return Err(BackupError::Read { path: dir.join(MANIFEST), source }),
    };
    let manifest: Manifest =
        serde_json::from_slice(&text).map_err(|e| not_a_backup(format!("{MANIFEST} cannot be read ({e})")))?;
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
    let mut listed = std::collections::HashSet::new();
    for d in &v.manifest.dirs {
        listed.insert(d.path.clone());
        if !is_safe_relative(&d.path) || parse_mode(&d.mode).is_none() {
            v.problems.push(format!("{}: the manifest lists an unsafe path or mode", d.path));
            continue;
        }
        if !fs::symlink_metadata(dir.join(&d.path)).is_ok_and(|m| m.is_dir()) {
            v.problems.push(format!("{}/: missing (or not a folder)", d.path));
        }
    }
    for f in &v.manifest.files {
        listed.insert(f.path.clone());
        if !is_safe_relative(&f.path) || parse_mode(&f.mode).is_none() {
            v.problems.push(format!("{}: the manifest lists an unsafe path or mode", f.path));
            continue;
        }
        let path = dir.join(&f.path);
        match fs::symlink_metadata(&path) {
            Ok(m) if m.is_file() => {}
            Ok(_) => {
                v.problems.push(format!("{}: not a plain file", f.path));
                continue;
            }
            Err(_) => {
                v.problems.push(format!("{}: missing", f.path));
                continue;
            }
        }
        match hash_file(&path) {
            Ok((size, sha)) if size == f.bytes && sha == f.sha256 => {
                v.files += 1;
                v.bytes += size;
            }
            Ok((size, _)) => {
                v.problems.push(format!(
                    "{}: changed since the backup was made ({size} bytes, {} expected, or a different checksum)",
                    f.path, f.bytes
                ));
                continue;
            }
            Err(e) => {
                v.problems.push(format!("{}: {e}", f.path));
                continue;
            }
        }
        if f.path.ends_with(".sqlite") {
            match integrity(&path) {
                Ok(()) => v.databases += 1,
                Err(why) => v.problems.push(format!("{}: the database is damaged ({why})", f.path)),
            }
        }
    }
    let mut extra = Vec::new();
    unlisted(dir, Path::new(""), &listed, &mut extra);
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

fn unlisted(dir: &Path, rel: &Path, listed: &std::collections::HashSet<String>, out: &mut Vec<String>) {
    let Ok(entries) = fs::read_dir(dir.join(rel)) else { return };
    for entry in entries.flatten() {
        let rel = rel.join(entry.file_name());
        let text = rel.to_string_lossy().into_owned();
        if text == MANIFEST {
            continue;
        }
        if !listed.contains(&text) {
            out.push(text);
        } else if entry.file_type().is_ok_and(|t| t.is_dir()) {
            unlisted(dir, &rel, listed, out);
        }
    }
    out.sort();
}

/// A manifest path names something inside the backup: relative, no `..`, nothing odd.
fn is_safe_relative(path: &str) -> bool {
    !path.is_empty() && Path::new(path).components().all(|c| matches!(c, Component::Normal(_)))
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

/// Restores the backup in `backup` into `data_dir`: refuses while a gateway serves it, refuses a
/// non-empty one unless `force` (then moves it aside), verifies first, copies back with modes.
pub fn restore(backup: &Path, data_dir: &Path, force: bool, now: DateTime<Local>) -> Result<Restored, RestoreError> {
    let verified = verify(backup)?;
    if !verified.problems.is_empty() {
        return Err(RestoreError::Damaged(verified.problems));
    }
    let manifest = verified.manifest;
    let mut moved_aside = None;
    // Restored as root into a folder someone else owns (the Linux package's `hearth` user), the
    // household's files go to that owner, so the gateway can open them.
    let owner = fs::metadata(data_dir).ok().map(|m| (m.uid(), m.gid()));
    if data_dir.exists() {
        let old_lock =
            crate::gateway::take_lock(&DataDir::new(data_dir)).map_err(|e| match e.downcast::<AlreadyServing>() {
                Ok(serving) => RestoreError::Serving(serving),
                Err(e) => RestoreError::Other(format!("{e:#}")),
            })?;
        if !is_empty_data_dir(data_dir).map_err(|e| RestoreError::Backup(read_err(data_dir)(e)))? {
            if !force {
                return Err(RestoreError::NotEmpty(data_dir.to_owned()));
            }
            let aside = PathBuf::from(format!("{}.before-restore-{}", data_dir.display(), now.format(STAMP)));
            fs::rename(data_dir, &aside).map_err(|e| RestoreError::Backup(write_err(&aside)(e)))?;
            moved_aside = Some(aside);
        }
        drop(old_lock);
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(data_dir)
        .map_err(|e| RestoreError::Backup(write_err(data_dir)(e)))?;
    // Held while copying, so no gateway starts on a half-restored directory.
    let _lock =
        crate::gateway::take_lock(&DataDir::new(data_dir)).map_err(|e| match e.downcast::<AlreadyServing>() {
            Ok(serving) => RestoreError::Serving(serving),
            Err(e) => RestoreError::Other(format!("{e:#}")),
        })?;
    for d in &manifest.dirs {
        let to = data_dir.join(&d.path);
        let mode = parse_mode(&d.mode).unwrap_or(0o700);
        match fs::DirBuilder::new().mode(0o700).create(&to) {
            Ok(()) => {}
            Err(e)
                if e.kind() == io::ErrorKind::AlreadyExists && fs::symlink_metadata(&to).is_ok_and(|m| m.is_dir()) => {}
            Err(e) => return Err(write_err(&to)(e).into()),
        }
        fs::set_permissions(&to, fs::Permissions::from_mode(mode)).map_err(write_err(&to))?;
    }
    let mut files = 0;
    for f in &manifest.files {
        copy_checked(&backup.join(&f.path), &data_dir.join(&f.path), f)?;
        files += 1;
    }
    if let Some((uid, gid)) = owner
        && uid != 0
        && nix::unistd::geteuid().is_root()
    {
        give_to(data_dir, uid, gid).map_err(|e| {
            RestoreError::Other(format!("the backup was restored but could not be handed to uid {uid}: {e}"))
        })?;
    }
    let mut owners_set = Vec::new();
    if hearth_isolation::accounts::can_manage_accounts() {
        for m in &manifest.members {
            let Ok(Some(account)) = hearth_isolation::accounts::find_account(&m.id) else { continue };
            if !data_dir.join("members").join(&m.id).is_dir() {
                continue;
            }
            hearth_isolation::dirs::prepare_member_dir(data_dir, &m.id, Some(&account)).map_err(|e| {
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

/// Gives `dir` and everything in it to `uid`:`gid`, never following a symlink. Member folders
/// are handed on to their own accounts afterwards (here when the account exists, otherwise by
/// the supervisor when the member's worker first starts).
fn give_to(dir: &Path, uid: u32, gid: u32) -> io::Result<()> {
    std::os::unix::fs::lchown(dir, Some(uid), Some(gid))?;
    if fs::symlink_metadata(dir)?.is_dir() {
        for entry in fs::read_dir(dir)? {
            give_to(&entry?.path(), uid, gid)?;
        }
    }
    Ok(())
}

/// Empty, or nothing but a lock file.
fn is_empty_data_dir(dir: &Path) -> io::Result<bool> {
    for entry in fs::read_dir(dir)? {
        if entry?.file_name() != "gateway.lock" {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Copies one file out of a backup, checking it against the manifest on the way (it may have
/// changed since it was verified), with the manifest's mode.
fn copy_checked(from: &Path, to: &Path, f: &ManifestFile) -> Result<(), BackupError> {
    let mut src = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(from)
        .map_err(read_err(from))?;
    let mut dst = OpenOptions::new().write(true).create_new(true).mode(0o600).open(to).map_err(write_err(to))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        let n = src.read(&mut buf).map_err(read_err(from))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        dst.write_all(&buf[..n]).map_err(write_err(to))?;
        size += n as u64;
    }
    if size != f.bytes || hex(&hasher.finalize()) != f.sha256 {
        return Err(BackupError::Read { path: from.to_owned(), source: io::Error::other("changed while restoring") });
    }
    let mode = parse_mode(&f.mode).unwrap_or(0o600);
    dst.set_permissions(fs::Permissions::from_mode(mode)).map_err(write_err(to))?;
    dst.sync_all().map_err(write_err(to))
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
    let mut finished = Vec::new();
    let mut deleted = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Ok(meta) = fs::symlink_metadata(entry.path()) else { continue };
        if !name.starts_with(PREFIX) || !meta.is_dir() {
            continue;
        }
        if name.ends_with(PARTIAL) {
            let stale = meta
                .modified()
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > Duration::from_secs(86_400));
            if stale {
                fs::remove_dir_all(entry.path())?;
                deleted.push(entry.path());
            }
        } else {
            finished.push((sort_key(&name), entry.path()));
        }
    }
    finished.sort();
    let excess = finished.len().saturating_sub(keep);
    for (_, path) in finished.into_iter().take(excess) {
        fs::remove_dir_all(&path)?;
        deleted.push(path);
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
    fs::read_dir(dir)
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
        let done = tokio::task::spawn_blocking(move || create_with_secrets(&data, &dest, secrets.as_ref(), now))
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

        let plain = create(data.path(), out.path(), false, now).unwrap();
        assert!(!plain.includes_secrets && !Path::new(&plain.path).join(SECRETS).exists());
        let with = create(data.path(), out.path(), true, now).unwrap();
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
        let with = create_with_secrets(data.path(), out.path(), Some(&snapshot), now).unwrap();
        assert!(with.includes_secrets);
        assert_eq!(mode(&Path::new(&with.path).join(SECRETS)), 0o600);
        let without = create_with_secrets(data.path(), out.path(), None, now).unwrap();
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
