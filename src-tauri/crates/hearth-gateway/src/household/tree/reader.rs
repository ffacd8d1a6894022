//! The reader: walks a folder through descriptors and writes the stream of records; run in a
//! thread of this process, or as `hearth tree-reader` with the folder owner's rights.

use std::ffi::OsString;
use std::io::{self, BufWriter, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::Path;

use hearth_isolation::{fsat, owner};
use nix::sys::stat::FileStat;
use rusqlite::{Connection, OpenFlags};

use super::*;

/// Whether a name may travel in the stream (and be created by a receiver): one plain
/// component of text without control characters.
pub fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && name != "."
        && name != ".."
        && !name.contains('/')
        && !name.chars().any(char::is_control)
}

/// A name or message from a stream, fit for a log or an error: control characters replaced,
/// length capped.
pub(super) fn sanitize(text: &str) -> String {
    text.chars().take(MAX_TEXT).map(|c| if c.is_control() { '?' } else { c }).collect()
}

pub(super) struct Out<W: Write> {
    w: W,
}

impl<W: Write> Out<W> {
    pub(super) fn text(&mut self, tag: u8, text: &str) -> io::Result<()> {
        let bytes = text.as_bytes();
        let bytes = &bytes[..bytes.len().min(u16::MAX as usize)];
        self.w.write_all(&[tag])?;
        self.w.write_all(&(bytes.len() as u16).to_le_bytes())?;
        self.w.write_all(bytes)
    }

    pub(super) fn named(&mut self, tag: u8, name: &str, mode: u32) -> io::Result<()> {
        self.text(tag, name)?;
        self.w.write_all(&mode.to_le_bytes())
    }

    pub(super) fn skip(&mut self, name: &str, why: &str) -> io::Result<()> {
        self.text(T_SKIP, &sanitize(name))?;
        let why = sanitize(why);
        self.w.write_all(&(why.len() as u16).to_le_bytes())?;
        self.w.write_all(why.as_bytes())
    }

    pub(super) fn file(&mut self, name: &str, mode: u32, mut from: impl Read) -> io::Result<()> {
        self.named(T_FILE, name, mode)?;
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            self.w.write_all(&[T_CHUNK])?;
            self.w.write_all(&(n as u32).to_le_bytes())?;
            self.w.write_all(&buf[..n])?;
        }
        self.w.write_all(&[T_EOF])
    }
}

/// Reads `dir` (whose path is `base`, for the databases' snapshots) and writes the stream to
/// `out`. Failures are written as an `E` record too; `Err` only says the stream is not whole.
pub fn read_tree(dir: OwnedFd, base: &Path, options: &ReadOptions, out: impl Write) -> io::Result<()> {
    let mut out = Out { w: out };
    out.w.write_all(MAGIC)?;
    let mut r = Walker { out, base, options, snapshots: 0, meta: None, conversations: None, root_names: Vec::new() };
    let walked = r.walk(&dir, Path::new(""), 0).and_then(|()| r.finish());
    match &walked {
        Ok(()) => r.out.w.write_all(&[T_END])?,
        Err(e) => r.out.text(T_FAIL, &e.to_string())?,
    }
    r.out.w.flush()?;
    walked
}

pub(super) struct Walker<'a, W: Write> {
    out: Out<W>,
    base: &'a Path,
    options: &'a ReadOptions,
    snapshots: u32,
    meta: Option<HouseholdMeta>,
    conversations: Option<serde_json::Value>,
    root_names: Vec<OsString>,
}

/// Leaves a database snapshot no trace: removed however the copy ends.
pub(super) struct Snapshot<'a> {
    dir: BorrowedFd<'a>,
    name: String,
}

impl Drop for Snapshot<'_> {
    fn drop(&mut self) {
        let _ = nix::unistd::unlinkat(self.dir, self.name.as_str(), nix::unistd::UnlinkatFlags::NoRemoveDir);
    }
}

impl<W: Write> Walker<'_, W> {
    pub(super) fn walk(&mut self, dir: &OwnedFd, rel: &Path, depth: usize) -> io::Result<()> {
        let names = fsat::names(dir)?;
        if depth == 0 {
            self.root_names = names.clone();
        }
        for raw in &names {
            let Some(name) = raw.to_str() else {
                self.out.skip(&raw.to_string_lossy(), "its name is not text")?;
                continue;
            };
            if depth == 0 && self.options.household && !HOUSEHOLD.contains(&name) {
                continue;
            }
            if name.starts_with(SNAPSHOT_PREFIX) {
                continue;
            }
            if !is_plain_name(name) {
                self.out.skip(name, "its name holds control characters")?;
                continue;
            }
            let Some(st) = fsat::stat_at(dir, name)? else { continue };
            if self.foreign(&st) {
                self.out.skip(name, &format!("it belongs to uid {}, whose files root does not read", st.st_uid))?;
            } else if fsat::is_dir(&st) {
                if depth + 1 > MAX_DEPTH {
                    self.out.skip(name, "it is nested too deeply")?;
                    continue;
                }
                let child = match fsat::open_dir_seen(dir, name, &st) {
                    Ok(fd) => fd,
                    Err(e) => {
                        self.out.skip(name, &e.to_string())?;
                        continue;
                    }
                };
                self.out.named(T_DIR, name, fsat::mode_of(&st))?;
                self.walk(&child, &rel.join(name), depth + 1)?;
                self.out.w.write_all(&[T_UP])?;
            } else if !fsat::is_file(&st) {
                self.out.skip(name, "a link or a special file")?;
            } else if is_sidecar(name, &names) {
                // Part of a database copied whole by its snapshot.
            } else if st.st_nlink != 1 {
                self.out.skip(name, "a hard link (it may be someone else's file)")?;
            } else if name.ends_with(".sqlite") {
                self.database(dir, rel, name, &st, depth)?;
            } else {
                match fsat::open_file_at(dir, name) {
                    Ok((f, now)) if fsat::same(&now, &st) && now.st_nlink == 1 => {
                        self.out.file(name, fsat::mode_of(&st), f)?
                    }
                    Ok(_) => self.out.skip(name, "it was replaced while being read")?,
                    Err(e) => self.out.skip(name, &e.to_string())?,
                }
            }
        }
        Ok(())
    }

    /// Reading as root (a folder of root's): anything another uid owns was not made by root,
    /// and is read only by a reader running as that uid.
    pub(super) fn foreign(&self, st: &FileStat) -> bool {
        nix::unistd::geteuid().is_root() && st.st_uid != 0
    }

    /// A consistent copy of a live database, streamed under the database's name.
    pub(super) fn database(
        &mut self,
        dir: &OwnedFd,
        rel: &Path,
        name: &str,
        st: &FileStat,
        depth: usize,
    ) -> io::Result<()> {
        let folder = self.base.join(rel);
        self.snapshots += 1;
        let snap = Snapshot {
            dir: dir.as_fd(),
            name: format!("{SNAPSHOT_PREFIX}{}-{}.sqlite", std::process::id(), self.snapshots),
        };
        let shown = rel.join(name);
        let failed = |e: &dyn std::fmt::Display| {
            io::Error::other(format!("could not copy the database {}: {e}", shown.display()))
        };
        vacuum_into(&folder.join(name), &folder.join(&snap.name)).map_err(|e| failed(&e))?;
        if depth == 0 && self.options.household && name == "gateway.sqlite" {
            self.meta = Some(household_meta(&folder.join(&snap.name)).map_err(|e| failed(&e))?);
        }
        if depth == 0
            && name == HISTORY
            && let Some((member, at)) = &self.options.conversations
        {
            match crate::household::export::conversations(&folder.join(&snap.name), member, at) {
                Ok(json) => self.conversations = Some(json),
                // The databases are the export; the JSON is a convenience.
                Err(e) => tracing::warn!(error = %e, "could not read the conversations; the export has the database"),
            }
        }
        let (f, _) = fsat::open_file_at(dir, &snap.name).map_err(|e| failed(&e))?;
        drop(snap);
        self.out.file(name, fsat::mode_of(st), f)
    }

    pub(super) fn finish(&mut self) -> io::Result<()> {
        if self.options.household {
            let meta = self.meta.take().ok_or_else(|| io::Error::other("there is no gateway.sqlite to back up"))?;
            let text = serde_json::to_vec(&meta).map_err(io::Error::other)?;
            self.out.w.write_all(&[T_META])?;
            self.out.w.write_all(&(text.len() as u32).to_le_bytes())?;
            self.out.w.write_all(&text)?;
        }
        if let Some(json) = self.conversations.take()
            && !self.root_names.iter().any(|n| n == CONVERSATIONS)
        {
            let text = serde_json::to_vec_pretty(&json).map_err(io::Error::other)?;
            self.out.file(CONVERSATIONS, 0o600, &text[..])?;
        }
        Ok(())
    }
}

pub(super) fn is_sidecar(name: &str, names: &[OsString]) -> bool {
    let Some(base) = ["-wal", "-shm", "-journal"].iter().find_map(|s| name.strip_suffix(s)) else { return false };
    base.ends_with(".sqlite") && names.iter().any(|n| n == base)
}

/// `VACUUM INTO` from a read-only connection: one consistent snapshot of a live database.
pub(super) fn vacuum_into(from: &Path, to: &Path) -> rusqlite::Result<()> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_NOFOLLOW;
    let conn = Connection::open_with_flags(from, flags)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    // The file is the worker's (or the gateway's): run nothing its schema might carry.
    conn.pragma_update(None, "trusted_schema", "OFF")?;
    conn.execute("VACUUM INTO ?1", [to.to_string_lossy()])?;
    Ok(())
}

/// Opens a database copy this process made so that nothing is written beside it (no `-wal`,
/// no `-shm`, no locks): read-only and immutable, running nothing its schema might carry.
pub(crate) fn open_snapshot(path: &Path) -> rusqlite::Result<Connection> {
    let no_link = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_NOFOLLOW;
    let conn = match path.to_str().filter(|p| p.is_ascii()) {
        Some(text) => {
            let mut uri = String::from("file:");
            for c in text.chars() {
                match c {
                    '?' | '#' | '%' => uri.push_str(&format!("%{:02X}", c as u32)),
                    c => uri.push(c),
                }
            }
            uri.push_str("?immutable=1");
            Connection::open_with_flags(uri, no_link | OpenFlags::SQLITE_OPEN_URI)?
        }
        // Paths are not always ASCII: a plain read-only open for those.
        None => Connection::open_with_flags(path, no_link)?,
    };
    conn.pragma_update(None, "trusted_schema", "OFF")?;
    Ok(conn)
}

pub(super) fn household_meta(snapshot: &Path) -> rusqlite::Result<HouseholdMeta> {
    let conn = open_snapshot(snapshot)?;
    let schema: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let mut stmt = conn.prepare("SELECT id, name FROM members ORDER BY rowid")?;
    let members =
        stmt.query_map([], |r| Ok(MetaMember { id: r.get(0)?, name: r.get(1)? }))?.collect::<Result<Vec<_>, _>>()?;
    let provider: Option<String> = conn
        .query_row("SELECT value FROM settings WHERE key = 'provider.kind'", [], |r| r.get(0))
        .or_else(|e| if e == rusqlite::Error::QueryReturnedNoRows { Ok(None) } else { Err(e) })?;
    Ok(HouseholdMeta { schema, members, provider_set: provider.is_some() })
}

/// `hearth tree-reader …`: the reader process root starts as a folder's owner. Its folder is on
/// descriptor 3 and must be the one at `--base`; the stream goes to stdout. Returns the exit
/// code.
pub fn reader_main(args: &[OsString]) -> u8 {
    // Not to be traced or dumped by other processes of the same uid (the member's worker).
    #[cfg(target_os = "linux")]
    // SAFETY: prctl with plain integer arguments.
    unsafe {
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
    }
    // SAFETY: descriptor 1 is this process's stdout; it is owned here from now on.
    let stdout = unsafe { std::fs::File::from_raw_fd(1) };
    let mut out = BufWriter::with_capacity(CHUNK + 64, stdout);
    let fail = |out: &mut BufWriter<std::fs::File>, why: String| {
        let _ = out.write_all(MAGIC);
        let _ = Out { w: &mut *out }.text(T_FAIL, &why);
        let _ = out.flush();
        2
    };
    let (base, options) = match ReadOptions::parse(args) {
        Ok(parsed) => parsed,
        Err(why) => return fail(&mut out, why),
    };
    // SAFETY: F_GETFD on a number only asks whether it is open.
    if unsafe { libc::fcntl(owner::FOLDER_FD, libc::F_GETFD) } == -1 {
        return fail(&mut out, "no folder was given on descriptor 3".into());
    }
    // SAFETY: descriptor 3 is open (checked above) for as long as this function runs.
    let folder = unsafe { BorrowedFd::borrow_raw(owner::FOLDER_FD) };
    let given = match nix::sys::stat::fstat(folder) {
        Ok(st) if fsat::is_dir(&st) => st,
        _ => return fail(&mut out, "no folder was given on descriptor 3".into()),
    };
    match nix::sys::stat::stat(&base) {
        Ok(st) if fsat::same(&st, &given) => {}
        _ => return fail(&mut out, format!("{} is not the folder given to read (was it moved?)", base.display())),
    }
    // SAFETY: descriptor 3 was checked to be an open directory; it is owned here from now on.
    let dir = unsafe { OwnedFd::from_raw_fd(owner::FOLDER_FD) };
    match read_tree(dir, &base, &options, &mut out) {
        Ok(()) => 0,
        Err(_) => 1,
    }
}
