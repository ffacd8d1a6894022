//! Checking a backup: every file re-hashed and every database's integrity checked, on private
//! copies, walking the backup through descriptors.
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, Read as _, Write as _};
use std::os::fd::OwnedFd;
use std::path::{Component, Path, PathBuf};

use hearth_isolation::fsat;
use nix::sys::stat::FileStat;
use sha2::{Digest, Sha256};

use super::*;

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

pub(super) fn open_backup(dir: &Path) -> Result<OwnedFd, BackupError> {
    fsat::open_dir_path(dir, true).map_err(|e| match e.raw_os_error() {
        Some(libc::ENOENT | libc::ENOTDIR) => {
            BackupError::NotABackup { path: dir.to_owned(), detail: "there is no such folder".into() }
        }
        _ => BackupError::Read { path: dir.to_owned(), source: e },
    })
}

/// Scratch space for copies of databases to check: a private folder of this process's in the
/// system's temporary directory, removed when done.
pub(super) struct Scratch {
    path: PathBuf,
    fd: OwnedFd,
}

impl Scratch {
    pub(super) fn new() -> io::Result<Scratch> {
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
pub(super) struct BackupReader<'a> {
    root: &'a OwnedFd,
    root_made: bool,
    dirs: HashMap<String, OwnedFd>,
    scratch: Option<Scratch>,
}

impl<'a> BackupReader<'a> {
    pub(super) fn new(root: &'a OwnedFd) -> io::Result<Self> {
        let st = nix::sys::stat::fstat(root)?;
        Ok(Self { root, root_made: st.st_uid == 0, dirs: HashMap::new(), scratch: None })
    }

    pub(super) fn dir(&mut self, rel: &str) -> io::Result<&OwnedFd> {
        if !self.dirs.contains_key(rel) {
            let fd = fsat::open_dir_beneath(self.root, rel)?;
            self.dirs.insert(rel.to_owned(), fd);
        }
        Ok(&self.dirs[rel])
    }

    /// Opens a file listed at `rel`; `Err` says what it is instead, in words.
    pub(super) fn open(&mut self, rel: &str) -> Result<(File, FileStat), String> {
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
    pub(super) fn hash(&mut self, rel: &str, mut into: Option<&mut File>) -> Result<(u64, String), String> {
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
    pub(super) fn check_database(&mut self, rel: &str) -> Result<(u64, String, Result<(), String>), String> {
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
pub(super) fn read_manifest(root: &OwnedFd, dir: &Path) -> Result<Manifest, BackupError> {
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

pub(super) fn integrity(path: &Path) -> Result<(), String> {
    let conn = open_read_only(path).map_err(|e| e.to_string())?;
    let mut stmt = conn.prepare("PRAGMA integrity_check").map_err(|e| e.to_string())?;
    let rows: Vec<String> =
        stmt.query_map([], |r| r.get::<_, String>(0)).and_then(|rows| rows.collect()).map_err(|e| e.to_string())?;
    if rows == ["ok"] { Ok(()) } else { Err(rows.join("; ")) }
}

/// Entries below `dir` (walked through descriptors) that the manifest does not list.
pub(super) fn unlisted(dir: &OwnedFd, rel: &str, listed: &HashSet<String>, out: &mut Vec<String>, depth: usize) {
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
pub(super) fn is_safe_relative(path: &str) -> bool {
    !path.is_empty()
        && Path::new(path).components().all(|c| matches!(c, Component::Normal(_)))
        && path.split('/').all(tree::is_plain_name)
}

pub(super) fn parse_mode(text: &str) -> Option<u32> {
    u32::from_str_radix(text, 8).ok().filter(|m| *m <= 0o777)
}
