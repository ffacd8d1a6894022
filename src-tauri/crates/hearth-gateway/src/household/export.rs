//! A copy of one member's data for the admin (`MemberExport`): everything in `members/<id>/`,
//! written to a new folder `Hearth export - <Name> - <YYYY-MM-DD HHMM>/`.
//!
//! The copy is made by [`crate::household::tree`], the one mechanism backups use too: the member's folder
//! is read with its owner's rights (a reader process as the member's account when this gateway
//! runs as root), and written through descriptors into a folder this process creates.
//!
//! - SQLite databases (`*.sqlite`) are copied with `VACUUM INTO`, so the copy is consistent
//!   even while the member's worker writes; their `-wal`/`-shm` files are not copied (the copy
//!   already holds what they held).
//! - Other regular files are copied as they are. Symlinks, hard-linked files, sockets and the
//!   like are skipped: the directory is the member's worker's to write, and an export must never
//!   carry anything from outside it.
//! - `conversations.json`: the conversations read back from the reader's copy of the history,
//!   for people who do not open SQLite files.
//!
//! Blocking file work: call it from `spawn_blocking`.

use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use chrono::{DateTime, TimeZone};
use hearth_isolation::fsat;
use serde_json::{Value, json};

use crate::household::tree::{self, ReadOptions, ReaderExe, Received, Source, TreeError};

/// The most an export copies of one member's folder.
const MAX_EXPORT_BYTES: u64 = 64 << 30;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The member's directory does not exist: nothing was ever stored for them.
    #[error("there is nothing to export yet: their assistant has not stored anything")]
    Nothing,
    #[error("Hearth cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("could not write {}: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },
    #[error("could not copy {}: {source}", path.display())]
    Copy { path: PathBuf, source: TreeError },
    /// The new export folder was renamed or replaced while it was written: someone else can
    /// write the destination. Nothing was left there.
    #[error("the export {} was moved or replaced while it was being written; choose a folder nobody else can write to", .0.display())]
    Moved(PathBuf),
}

/// What was written.
#[derive(Debug)]
pub struct Exported {
    pub path: PathBuf,
    pub files: usize,
    /// Entries left out (symlinks, hard links, special files), relative to the member directory.
    pub skipped: Vec<PathBuf>,
}

/// Copies the folder of member `member_id` in `data_dir` into a new folder inside `dest_parent`
/// (which must exist) named for `name` and `now`. Nothing existing is overwritten: a name already
/// taken gets " (2)", " (3)"… `exe` runs the reader when the folder must be read as its owner.
pub fn export_member<Tz: TimeZone>(
    data_dir: &Path,
    member_id: &str,
    dest_parent: &Path,
    name: &str,
    now: &DateTime<Tz>,
    exe: &ReaderExe,
) -> Result<Exported, ExportError>
where
    Tz::Offset: std::fmt::Display,
{
    let member_path = hearth_isolation::dirs::member_dir(data_dir, member_id)
        .map_err(|e| ExportError::Read { path: data_dir.to_owned(), source: io::Error::other(e.to_string()) })?;
    let read_err = |source| ExportError::Read { path: member_path.clone(), source };
    let data = fsat::open_dir_path(data_dir, true).map_err(read_err)?;
    let member = match fsat::open_dir_beneath(&data, &format!("members/{member_id}")) {
        Ok(fd) => fd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(ExportError::Nothing),
        Err(e) => return Err(read_err(e)),
    };
    let dest = fsat::open_dir_path(dest_parent, true)
        .map_err(|source| ExportError::Write { path: dest_parent.to_owned(), source })?;
    let base = format!("Hearth export - {} - {}", path_safe(name), now.format("%Y-%m-%d %H%M"));
    let (folder, folder_name) = create_fresh_dir(&dest, dest_parent, &base)?;
    let path = dest_parent.join(&folder_name);
    let options = ReadOptions { household: false, conversations: Some((name.to_owned(), now.to_rfc3339())) };
    let src = Source { dir: &member, path: &member_path, options, exe };
    let mut got = Received::default();
    let copied = tree::copy_tree(&src, &folder, "", MAX_EXPORT_BYTES, &mut got);
    // The export must still be where it is said to be: a folder renamed away meanwhile (by
    // someone who can write the destination) is not reported as done.
    let ours = nix::sys::stat::fstat(&folder).ok();
    let in_place = fsat::stat_at(&dest, &folder_name).ok().flatten().zip(ours).is_some_and(|(a, b)| fsat::same(&a, &b));
    if copied.is_err() || !in_place {
        // Nothing half-made or misplaced is left behind (the folder is reached through its
        // descriptor, wherever its name went).
        let _ = fsat::clear_dir(&folder);
        let _ = fsat::remove_empty_dir_at(&dest, &folder_name, &folder);
        return Err(match copied {
            Err(source) => ExportError::Copy { path: member_path, source },
            Ok(()) => ExportError::Moved(path),
        });
    }
    Ok(Exported {
        path,
        files: got.files.len(),
        skipped: got.skipped.into_iter().map(|(p, _)| PathBuf::from(p)).collect(),
    })
}

/// A member's name as a folder name: no path separators or control characters.
fn path_safe(name: &str) -> String {
    name.chars().map(|c| if c == '/' || c == '\\' || c.is_control() { '-' } else { c }).collect()
}

fn create_fresh_dir(parent: &OwnedFd, parent_path: &Path, base: &str) -> Result<(OwnedFd, String), ExportError> {
    for n in 1..=100 {
        let name = if n == 1 { base.to_owned() } else { format!("{base} ({n})") };
        match fsat::make_fresh_dir(parent, &name, 0o700) {
            Ok(fd) => return Ok((fd, name)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(source) => return Err(ExportError::Write { path: parent_path.join(name), source }),
        }
    }
    Err(ExportError::Write {
        path: parent_path.join(base),
        source: io::Error::other("too many exports with this name"),
    })
}

/// The conversations in a (copied) history database, as JSON a person can read.
pub(crate) fn conversations(history: &Path, name: &str, exported_at: &str) -> rusqlite::Result<Value> {
    let conn = crate::household::tree::open_snapshot(history)?;
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
    use crate::household::tree::HISTORY;
    use rusqlite::Connection;
    use std::fs;

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
        let data = tmp.path().join("data");
        let member = data.join("members/ana-1");
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

        let done = export_member(&data, "ana-1", &dest, "Ana/Maria", &now, &ReaderExe::This).unwrap();
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
        let again = export_member(&data, "ana-1", &dest, "Ana/Maria", &now, &ReaderExe::This).unwrap();
        assert!(again.path.ends_with("Hearth export - Ana-Maria - 2026-03-01 0905 (2)"), "{:?}", again.path);
        // No directory, nothing to export.
        let none = export_member(&data, "bo-2", &dest, "Bo", &now, &ReaderExe::This);
        assert!(matches!(none, Err(ExportError::Nothing)), "{none:?}");
        // A member folder that is a link is not followed.
        std::os::unix::fs::symlink(&member, data.join("members/cy-3")).unwrap();
        let linked = export_member(&data, "cy-3", &dest, "Cy", &now, &ReaderExe::This).unwrap_err();
        assert!(linked.to_string().contains("does not follow"), "{linked}");
    }
}
