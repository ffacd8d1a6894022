//! A copy of one member's data for the admin (`MemberExport`): everything in `members/<id>/`,
//! written to a new folder `Hearth export - <Name> - <YYYY-MM-DD HHMM>/`.
//!
//! - SQLite databases (`*.sqlite`) are copied with `VACUUM INTO` from a read-only connection, so
//!   the copy is consistent even while the member's worker writes; their `-wal`/`-shm` files are
//!   not copied (the copy already holds what they held).
//! - Other regular files are copied as they are. Files are opened without following symlinks,
//!   and symlinks, hard-linked files, sockets and the like are skipped: the directory is the
//!   member's worker's to write, and an export must never carry anything from outside it.
//! - `conversations.json`: the conversations read back from the copied history, for people who
//!   do not open SQLite files.
//!
//! Blocking file work: call it from `spawn_blocking`.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use chrono::{DateTime, TimeZone};
use rusqlite::{Connection, OpenFlags};
use serde_json::{Value, json};

/// The worker's history database (`hearth_worker::history::FILE_NAME`).
const HISTORY: &str = "history.sqlite";

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The member's directory does not exist: nothing was ever stored for them.
    #[error("there is nothing to export yet: their assistant has not stored anything")]
    Nothing,
    #[error("Hearth cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("could not write {}: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },
    #[error("could not copy the database {}: {source}", path.display())]
    Database { path: PathBuf, source: rusqlite::Error },
}

/// What was written.
#[derive(Debug)]
pub struct Exported {
    pub path: PathBuf,
    pub files: usize,
    /// Entries left out (symlinks, hard links, special files), relative to the member directory.
    pub skipped: Vec<PathBuf>,
}

/// Copies `member_dir` into a new folder inside `dest_parent` (which must exist) named for
/// `name` and `now`. Nothing existing is overwritten: a name already taken gets " (2)", " (3)"…
pub fn export_member<Tz: TimeZone>(
    member_dir: &Path,
    dest_parent: &Path,
    name: &str,
    now: &DateTime<Tz>,
) -> Result<Exported, ExportError>
where
    Tz::Offset: std::fmt::Display,
{
    match fs::symlink_metadata(member_dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(ExportError::Nothing),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(ExportError::Nothing),
        Err(source) => return Err(ExportError::Read { path: member_dir.to_owned(), source }),
    }
    let base = format!("Hearth export - {} - {}", path_safe(name), now.format("%Y-%m-%d %H%M"));
    let dest = create_fresh_dir(dest_parent, &base)?;
    let mut out = Exported { path: dest.clone(), files: 0, skipped: Vec::new() };
    copy_dir(member_dir, &dest, Path::new(""), &mut out)?;
    let history = dest.join(HISTORY);
    if history.is_file() {
        match conversations(&history, name, &now.to_rfc3339()) {
            Ok(json) => {
                let path = dest.join("conversations.json");
                let text = serde_json::to_string_pretty(&json).unwrap_or_default();
                write_new(&path, text.as_bytes())?;
                out.files += 1;
            }
            // The databases are the export; the JSON is a convenience.
            Err(e) => tracing::warn!(error = %e, "could not write conversations.json; the export has the database"),
        }
    }
    Ok(out)
}

/// A member's name as a folder name: no path separators or control characters.
fn path_safe(name: &str) -> String {
    name.chars().map(|c| if c == '/' || c == '\\' || c.is_control() { '-' } else { c }).collect()
}

fn create_fresh_dir(parent: &Path, base: &str) -> Result<PathBuf, ExportError> {
    for n in 1..=100 {
        let path = if n == 1 { parent.join(base) } else { parent.join(format!("{base} ({n})")) };
        match fs::DirBuilder::new().mode(0o700).create(&path) {
            Ok(()) => return Ok(path),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(source) => return Err(ExportError::Write { path, source }),
        }
    }
    Err(ExportError::Write { path: parent.join(base), source: io::Error::other("too many exports with this name") })
}

pub(crate) fn copy_dir(src: &Path, dst: &Path, rel: &Path, out: &mut Exported) -> Result<(), ExportError> {
    let read_err = |source| ExportError::Read { path: src.to_owned(), source };
    let mut entries: Vec<_> = fs::read_dir(src).map_err(read_err)?.collect::<Result<_, _>>().map_err(read_err)?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name();
        let (from, to, rel) = (entry.path(), dst.join(&name), rel.join(&name));
        let meta = fs::symlink_metadata(&from).map_err(|source| ExportError::Read { path: from.clone(), source })?;
        let text = name.to_string_lossy();
        if meta.is_dir() {
            fs::DirBuilder::new()
                .mode(0o700)
                .create(&to)
                .map_err(|source| ExportError::Write { path: to.clone(), source })?;
            copy_dir(&from, &to, &rel, out)?;
        } else if !meta.is_file() || meta.nlink() != 1 {
            out.skipped.push(rel);
        } else if ["-wal", "-shm", "-journal"].iter().any(|s| text.ends_with(s)) && is_sqlite_sidecar(src, &text) {
            // Part of a database copied below.
        } else if text.ends_with(".sqlite") {
            vacuum_into(&from, &to)?;
            out.files += 1;
        } else if copy_file(&from, &to)? {
            out.files += 1;
        } else {
            out.skipped.push(rel);
        }
    }
    Ok(())
}

fn is_sqlite_sidecar(dir: &Path, name: &str) -> bool {
    let base = name.trim_end_matches("-wal").trim_end_matches("-shm").trim_end_matches("-journal");
    base.ends_with(".sqlite") && dir.join(base).is_file()
}

/// Copies one regular file, opened without following a symlink; `false` if it turned out not
/// to be a plain file after all (changed since it was listed).
pub(crate) fn copy_file(from: &Path, to: &Path) -> Result<bool, ExportError> {
    let read_err = |source| ExportError::Read { path: from.to_owned(), source };
    let mut src = match OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(from) {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Ok(false),
        Err(source) => return Err(read_err(source)),
    };
    let meta = src.metadata().map_err(read_err)?;
    if !meta.is_file() || meta.nlink() != 1 {
        return Ok(false);
    }
    let mut dst = new_file(to)?;
    io::copy(&mut src, &mut dst).map_err(|source| ExportError::Write { path: to.to_owned(), source })?;
    dst.sync_all().map_err(|source| ExportError::Write { path: to.to_owned(), source })?;
    Ok(true)
}

fn new_file(path: &Path) -> Result<File, ExportError> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|source| ExportError::Write { path: path.to_owned(), source })
}

pub(crate) fn write_new(path: &Path, bytes: &[u8]) -> Result<(), ExportError> {
    use std::io::Write as _;
    let mut f = new_file(path)?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|source| ExportError::Write { path: path.to_owned(), source })
}

/// A consistent copy of a live database: `VACUUM INTO` reads one snapshot.
pub(crate) fn vacuum_into(from: &Path, to: &Path) -> Result<(), ExportError> {
    let db_err = |source| ExportError::Database { path: from.to_owned(), source };
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_NOFOLLOW;
    let conn = Connection::open_with_flags(from, flags).map_err(db_err)?;
    conn.busy_timeout(std::time::Duration::from_secs(10)).map_err(db_err)?;
    // The file is the worker's: run nothing its schema might carry.
    conn.pragma_update(None, "trusted_schema", "OFF").map_err(db_err)?;
    conn.execute("VACUUM INTO ?1", [to.to_string_lossy()]).map_err(db_err)?;
    Ok(())
}

/// The conversations in a (copied) history database, as JSON a person can read.
fn conversations(history: &Path, name: &str, exported_at: &str) -> rusqlite::Result<Value> {
    let conn =
        Connection::open_with_flags(history, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
    let time = |t: i64| chrono::DateTime::from_timestamp(t, 0).map(|t| t.to_rfc3339()).unwrap_or_default();
    let mut list: Vec<(i64, Value)> = Vec::new();
    let mut stmt = conn.prepare("SELECT id, chat_id, started_at FROM conversations ORDER BY id")?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?)))?;
    for row in rows {
        let (id, chat_id, started) = row?;
        list.push((id, json!({ "chat_id": chat_id, "started_at": time(started), "messages": [] })));
    }
    let mut stmt = conn.prepare("SELECT conversation_id, role, text, created_at FROM messages ORDER BY id")?;
    let rows = stmt.query_map([], |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get::<_, i64>(3)?))
    })?;
    for row in rows {
        let (conversation, role, text, at) = row?;
        if let Ok(i) = list.binary_search_by_key(&conversation, |(id, _)| *id)
            && let Some(messages) = list[i].1.get_mut("messages").and_then(Value::as_array_mut)
        {
            messages.push(json!({ "role": role, "text": text, "at": time(at) }));
        }
    }
    Ok(json!({
        "member": name,
        "exported_at": exported_at,
        "conversations": list.into_iter().map(|(_, v)| v).collect::<Vec<_>>(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history(dir: &Path) -> Connection {
        let c = Connection::open(dir.join(HISTORY)).unwrap();
        c.pragma_update(None, "journal_mode", "WAL").unwrap();
        c.execute_batch(
            "CREATE TABLE conversations (id INTEGER PRIMARY KEY, chat_id INTEGER NOT NULL, started_at INTEGER NOT NULL);
             CREATE TABLE messages (id INTEGER PRIMARY KEY, conversation_id INTEGER NOT NULL, role TEXT NOT NULL,
                 text TEXT NOT NULL, created_at INTEGER NOT NULL, inbox_id INTEGER, reply_to INTEGER);
             INSERT INTO conversations VALUES (1, 42, 1700000000);
             INSERT INTO messages VALUES (1, 1, 'user', 'When do tulips go in?', 1700000001, 7, NULL);
             INSERT INTO messages VALUES (2, 1, 'assistant', 'In autumn.', 1700000002, NULL, 1);",
        )
        .unwrap();
        c
    }

    #[test]
    fn a_live_member_directory_is_copied_consistently_and_safely() {
        let tmp = tempfile::tempdir().unwrap();
        let member = tmp.path().join("member");
        fs::create_dir_all(member.join("files")).unwrap();
        // The worker keeps its connection open (WAL not checkpointed) while the export runs.
        let live = history(&member);
        fs::write(member.join("files/note.txt"), "bring a jacket").unwrap();
        fs::write(tmp.path().join("secret.txt"), "gateway secret").unwrap();
        std::os::unix::fs::symlink(tmp.path().join("secret.txt"), member.join("files/link.txt")).unwrap();
        fs::hard_link(tmp.path().join("secret.txt"), member.join("hard.txt")).unwrap();
        let dest = tmp.path().join("out");
        fs::create_dir(&dest).unwrap();
        let now = chrono::FixedOffset::east_opt(3600).unwrap().with_ymd_and_hms(2026, 3, 1, 9, 5, 0).unwrap();

        let done = export_member(&member, &dest, "Ana/Maria", &now).unwrap();
        assert_eq!(done.path, dest.join("Hearth export - Ana-Maria - 2026-03-01 0905"));
        assert_eq!(done.files, 3, "history, note, conversations.json");
        let mut skipped = done.skipped.clone();
        skipped.sort();
        assert_eq!(skipped, vec![PathBuf::from("files/link.txt"), PathBuf::from("hard.txt")]);
        assert_eq!(fs::read_to_string(done.path.join("files/note.txt")).unwrap(), "bring a jacket");
        assert!(!done.path.join(format!("{HISTORY}-wal")).exists());
        let copy = Connection::open(done.path.join(HISTORY)).unwrap();
        let n: i64 = copy.query_row("SELECT COUNT(*) FROM messages", [], |r| r.get(0)).unwrap();
        assert_eq!(n, 2, "the copy has what was only in the WAL");
        let json: Value =
            serde_json::from_str(&fs::read_to_string(done.path.join("conversations.json")).unwrap()).unwrap();
        assert_eq!(json["member"], "Ana/Maria");
        assert_eq!(json["conversations"][0]["chat_id"], 42);
        assert_eq!(
            json["conversations"][0]["messages"][1],
            json!({"role": "assistant", "text": "In autumn.", "at": "2023-11-14T22:13:22+00:00"})
        );
        drop(live);

        // A second export in the same minute gets its own folder.
        let again = export_member(&member, &dest, "Ana/Maria", &now).unwrap();
        assert!(again.path.ends_with("Hearth export - Ana-Maria - 2026-03-01 0905 (2)"), "{:?}", again.path);
        // No directory, nothing to export.
        assert!(matches!(export_member(&tmp.path().join("none"), &dest, "Bo", &now), Err(ExportError::Nothing)));
    }
}
