//! The one way backups and exports copy a folder: a **reader** walks it and writes a simple
//! stream of records; a **receiver** checks every record and writes what it allows through
//! descriptors into a destination folder it created itself.
//!
//! Who reads decides what can be read. A folder is read with its owner's rights
//! ([`hearth_isolation::owner`]): when this process is root and the folder belongs to someone
//! else (a member's account, the `hearth` user), the reader is a short-lived `hearth
//! tree-reader` process running as that owner, given the folder root opened (on descriptor 3);
//! otherwise it is a thread of this process. Either way root never opens anything inside a
//! folder someone else can write, and never opens a member's SQLite database — SQLite opens its
//! `-wal`, `-shm` and journal files by path, read-write, and as root would truncate and chown
//! whatever the member planted there. A swapped link or a planted hard link gains the owner
//! nothing: the reader has no more rights than they have.
//!
//! The reader walks with `openat(O_NOFOLLOW)` at every level; symbolic links, hard-linked
//! files, sockets and devices are left out (reported as skipped). Databases (`*.sqlite`) are
//! copied with `VACUUM INTO` — one consistent snapshot while a worker or the gateway writes —
//! into a `.hearth-snapshot-*` file beside them, which is streamed and removed; their sidecars
//! are not copied. For the household's own files it also reports what `gateway.sqlite` holds
//! (schema version, members, whether a provider is set); for an export it adds
//! `conversations.json`, read from its own snapshot of the history.
//!
//! The receiver trusts nothing in the stream: names are single plain components (no `/`, `..`,
//! NUL or control characters, at most 255 bytes), folders at most [`MAX_DEPTH`] deep, at most
//! [`MAX_ENTRIES`] entries, bytes bounded by the caller, a reader silent for [`STALL`] is
//! stopped, and anything unexpected ends the copy. Files are created `O_CREAT|O_EXCL|O_NOFOLLOW`
//! (0600) and folders with `mkdirat` then opened and checked (0700), each relative to the
//! folder the receiver opened; each file is hashed (SHA-256) as it is written.
//!
//! Record format: `HEARTHT1`, then records, each a tag byte: `D` name mode (enter a new folder),
//! `U` (leave it), `F` name mode (a file, followed by `C` len bytes chunks and an `X`), `S` name
//! reason (left out), `M` len JSON (what the household database holds), `E` message (the reader
//! failed), `Z` (the end). Names and texts are a u16 length and bytes; integers little-endian.

use std::ffi::OsString;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use hearth_isolation::{fsat, owner};
use nix::sys::stat::FileStat;
use rusqlite::{Connection, OpenFlags};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

const MAGIC: &[u8; 8] = b"HEARTHT1";
const T_DIR: u8 = b'D';
const T_UP: u8 = b'U';
const T_FILE: u8 = b'F';
const T_CHUNK: u8 = b'C';
const T_EOF: u8 = b'X';
const T_SKIP: u8 = b'S';
const T_META: u8 = b'M';
const T_FAIL: u8 = b'E';
const T_END: u8 = b'Z';

/// Bytes per chunk a reader sends at most.
pub const CHUNK: usize = 256 * 1024;
const MAX_NAME: usize = 255;
const MAX_TEXT: usize = 2_000;
const MAX_META: usize = 4 << 20;
/// Files and folders in one copied tree, at most.
pub const MAX_ENTRIES: u64 = 200_000;
/// Folders below the copied one, at most.
pub const MAX_DEPTH: usize = 32;
/// Skipped entries listed, at most (more are counted, not listed).
const MAX_SKIPPED: usize = 1_000;
/// A reader that sends nothing for this long is stopped.
pub const STALL: Duration = Duration::from_secs(120);
/// Snapshots of databases are written beside them under this prefix, and never copied.
pub const SNAPSHOT_PREFIX: &str = ".hearth-snapshot-";
/// The worker's history database (`hearth_worker::history::FILE_NAME`).
pub(crate) const HISTORY: &str = "history.sqlite";
const CONVERSATIONS: &str = "conversations.json";
/// What a household reader copies from the data folder; nothing else there.
const HOUSEHOLD: [&str; 3] = ["app.json", "gateway.sqlite", "kb"];

#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    /// The stream broke a rule; nothing more is read from it.
    #[error("the copy was stopped: {0}")]
    Refused(String),
    /// The reader said it failed, or ended badly.
    #[error("{0}")]
    Failed(String),
    #[error("could not write {path}: {source}")]
    Write { path: String, source: io::Error },
    #[error("could not start a reader as uid {uid}: {source}")]
    Spawn { uid: u32, source: io::Error },
}

/// The binary a reader process runs (`<exe> tree-reader …`).
#[derive(Debug, Clone)]
pub enum ReaderExe {
    /// This very binary (`hearth`): a supervisor, or `sudo hearth backup`.
    This,
    /// Another (a gateway embedded in a test or the app names its worker binary).
    Path(PathBuf),
}

impl ReaderExe {
    fn path(&self) -> io::Result<PathBuf> {
        match self {
            Self::This => owner::this_binary(),
            Self::Path(p) => Ok(p.clone()),
        }
    }
}

/// What a reader reads of its folder.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadOptions {
    /// The household's own files in the data folder ([`HOUSEHOLD`]) and what its database
    /// holds; otherwise everything (a member's folder).
    pub household: bool,
    /// For an export: add `conversations.json` for the member of this name, exported at this
    /// time (RFC 3339).
    pub conversations: Option<(String, String)>,
}

impl ReadOptions {
    pub fn household() -> Self {
        Self { household: true, conversations: None }
    }

    pub fn member() -> Self {
        Self::default()
    }

    /// The arguments of `hearth tree-reader` for these options.
    fn args(&self, base: &Path) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec!["tree-reader".into(), "--base".into(), base.as_os_str().to_owned()];
        if self.household {
            args.push("--household".into());
        }
        if let Some((name, at)) = &self.conversations {
            args.extend(["--conversations".into(), name.into(), at.into()]);
        }
        args
    }

    /// Reads what [`Self::args`] wrote (after `tree-reader`).
    fn parse(args: &[OsString]) -> Result<(PathBuf, Self), String> {
        let mut base = None;
        let mut options = Self::default();
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            match arg.to_str() {
                Some("--base") => base = it.next().map(PathBuf::from),
                Some("--household") => options.household = true,
                Some("--conversations") => {
                    let name = it.next().and_then(|s| s.to_str()).ok_or("--conversations needs a name")?;
                    let at = it.next().and_then(|s| s.to_str()).ok_or("--conversations needs a time")?;
                    options.conversations = Some((name.to_owned(), at.to_owned()));
                }
                _ => return Err(format!("unexpected argument {arg:?}")),
            }
        }
        let base = base.filter(|b| b.is_absolute()).ok_or("--base needs an absolute path")?;
        Ok((base, options))
    }
}

/// What `gateway.sqlite` holds, as its owner's reader saw it in its snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HouseholdMeta {
    /// `PRAGMA user_version`.
    pub schema: i64,
    pub members: Vec<MetaMember>,
    pub provider_set: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetaMember {
    pub id: String,
    pub name: String,
}

// ---------------------------------------------------------------------------------------------
// the reader

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
fn sanitize(text: &str) -> String {
    text.chars().take(MAX_TEXT).map(|c| if c.is_control() { '?' } else { c }).collect()
}

struct Out<W: Write> {
    w: W,
}

impl<W: Write> Out<W> {
    fn text(&mut self, tag: u8, text: &str) -> io::Result<()> {
        let bytes = text.as_bytes();
        let bytes = &bytes[..bytes.len().min(u16::MAX as usize)];
        self.w.write_all(&[tag])?;
        self.w.write_all(&(bytes.len() as u16).to_le_bytes())?;
        self.w.write_all(bytes)
    }

    fn named(&mut self, tag: u8, name: &str, mode: u32) -> io::Result<()> {
        self.text(tag, name)?;
        self.w.write_all(&mode.to_le_bytes())
    }

    fn skip(&mut self, name: &str, why: &str) -> io::Result<()> {
        self.text(T_SKIP, &sanitize(name))?;
        let why = sanitize(why);
        self.w.write_all(&(why.len() as u16).to_le_bytes())?;
        self.w.write_all(why.as_bytes())
    }

    fn file(&mut self, name: &str, mode: u32, mut from: impl Read) -> io::Result<()> {
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

struct Walker<'a, W: Write> {
    out: Out<W>,
    base: &'a Path,
    options: &'a ReadOptions,
    snapshots: u32,
    meta: Option<HouseholdMeta>,
    conversations: Option<serde_json::Value>,
    root_names: Vec<OsString>,
}

/// Leaves a database snapshot no trace: removed however the copy ends.
struct Snapshot<'a> {
    dir: BorrowedFd<'a>,
    name: String,
}

impl Drop for Snapshot<'_> {
    fn drop(&mut self) {
        let _ = nix::unistd::unlinkat(self.dir, self.name.as_str(), nix::unistd::UnlinkatFlags::NoRemoveDir);
    }
}

impl<W: Write> Walker<'_, W> {
    fn walk(&mut self, dir: &OwnedFd, rel: &Path, depth: usize) -> io::Result<()> {
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
    fn foreign(&self, st: &FileStat) -> bool {
        nix::unistd::geteuid().is_root() && st.st_uid != 0
    }

    /// A consistent copy of a live database, streamed under the database's name.
    fn database(&mut self, dir: &OwnedFd, rel: &Path, name: &str, st: &FileStat, depth: usize) -> io::Result<()> {
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
            match crate::export::conversations(&folder.join(&snap.name), member, at) {
                Ok(json) => self.conversations = Some(json),
                // The databases are the export; the JSON is a convenience.
                Err(e) => tracing::warn!(error = %e, "could not read the conversations; the export has the database"),
            }
        }
        let (f, _) = fsat::open_file_at(dir, &snap.name).map_err(|e| failed(&e))?;
        drop(snap);
        self.out.file(name, fsat::mode_of(st), f)
    }

    fn finish(&mut self) -> io::Result<()> {
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

fn is_sidecar(name: &str, names: &[OsString]) -> bool {
    let Some(base) = ["-wal", "-shm", "-journal"].iter().find_map(|s| name.strip_suffix(s)) else { return false };
    base.ends_with(".sqlite") && names.iter().any(|n| n == base)
}

/// `VACUUM INTO` from a read-only connection: one consistent snapshot of a live database.
fn vacuum_into(from: &Path, to: &Path) -> rusqlite::Result<()> {
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

fn household_meta(snapshot: &Path) -> rusqlite::Result<HouseholdMeta> {
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

// ---------------------------------------------------------------------------------------------
// the receiver

/// What a receiver wrote, relative to the folder the copy went into (with the caller's prefix).
#[derive(Debug, Default)]
pub struct Received {
    /// Folders, parents first, with the mode the original had.
    pub dirs: Vec<(String, u32)>,
    pub files: Vec<ReceivedFile>,
    /// Entries the reader left out, and why.
    pub skipped: Vec<(String, String)>,
    pub meta: Option<HouseholdMeta>,
    pub bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedFile {
    pub path: String,
    /// The original's permission bits.
    pub mode: u32,
    pub bytes: u64,
    /// Lower-case hex.
    pub sha256: String,
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads with a bound on silence: `poll` first, so a reader that stalls is noticed.
struct Timed<R: Read + AsFd> {
    inner: R,
}

impl<R: Read + AsFd> Read for Timed<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut pfd = libc::pollfd { fd: self.inner.as_fd().as_raw_fd(), events: libc::POLLIN, revents: 0 };
        loop {
            // SAFETY: one valid pollfd.
            let r = unsafe { libc::poll(&mut pfd, 1, STALL.as_millis() as libc::c_int) };
            match r {
                0 => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("the reader sent nothing for {} seconds", STALL.as_secs()),
                    ));
                }
                r if r < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted => continue,
                r if r < 0 => return Err(io::Error::last_os_error()),
                _ => return self.inner.read(buf),
            }
        }
    }
}

struct In<R: BufRead> {
    r: R,
}

fn broken(e: io::Error) -> TreeError {
    match e.kind() {
        io::ErrorKind::UnexpectedEof => TreeError::Refused("the reader stopped before the end".into()),
        _ => TreeError::Refused(format!("reading the copy failed: {e}")),
    }
}

impl<R: BufRead> In<R> {
    fn u8(&mut self) -> Result<u8, TreeError> {
        let mut b = [0u8; 1];
        self.r.read_exact(&mut b).map_err(broken)?;
        Ok(b[0])
    }
    fn u16(&mut self) -> Result<u16, TreeError> {
        let mut b = [0u8; 2];
        self.r.read_exact(&mut b).map_err(broken)?;
        Ok(u16::from_le_bytes(b))
    }
    fn u32(&mut self) -> Result<u32, TreeError> {
        let mut b = [0u8; 4];
        self.r.read_exact(&mut b).map_err(broken)?;
        Ok(u32::from_le_bytes(b))
    }
    fn bytes(&mut self, n: usize) -> Result<Vec<u8>, TreeError> {
        let mut v = vec![0u8; n];
        self.r.read_exact(&mut v).map_err(broken)?;
        Ok(v)
    }
    fn text(&mut self, max: usize) -> Result<String, TreeError> {
        let n = self.u16()? as usize;
        if n > max {
            return Err(TreeError::Refused(format!("a name or message of {n} bytes (at most {max})")));
        }
        String::from_utf8(self.bytes(n)?).map_err(|_| TreeError::Refused("a name that is not text".into()))
    }
    fn name(&mut self) -> Result<String, TreeError> {
        let name = self.text(MAX_NAME)?;
        if !is_plain_name(&name) || name.starts_with(SNAPSHOT_PREFIX) {
            return Err(TreeError::Refused(format!("the name {:?} is not a plain file name", sanitize(&name))));
        }
        Ok(name)
    }
}

fn join(rel: &str, name: &str) -> String {
    if rel.is_empty() { name.to_owned() } else { format!("{rel}/{name}") }
}

/// Reads one stream from `input` into the folder `into` (opened by the caller, empty or holding
/// only what earlier streams wrote), naming what it wrote `rel/…`. `household`: the stream must
/// carry the household database's report. `max_bytes`: the most file bytes accepted.
pub fn receive(
    input: impl Read,
    into: &OwnedFd,
    rel: &str,
    household: bool,
    max_bytes: u64,
    got: &mut Received,
) -> Result<(), TreeError> {
    let mut input = In { r: BufReader::with_capacity(CHUNK + 64, input) };
    if input.bytes(MAGIC.len())? != MAGIC {
        return Err(TreeError::Refused("it is not a Hearth copy stream".into()));
    }
    let write_err = |path: &str, source: io::Error| TreeError::Write { path: path.to_owned(), source };
    let mut stack: Vec<(OwnedFd, String)> = Vec::new();
    let mut entries = 0u64;
    let mut bytes = 0u64;
    let mut skipped = 0usize;
    loop {
        let tag = input.u8()?;
        let (cur, cur_rel): (&OwnedFd, &str) = match stack.last() {
            Some((fd, r)) => (fd, r.as_str()),
            None => (into, rel),
        };
        match tag {
            T_DIR => {
                let name = input.name()?;
                let mode = input.u32()? & 0o777;
                entries += 1;
                if stack.len() >= MAX_DEPTH {
                    return Err(TreeError::Refused(format!("folders nested more than {MAX_DEPTH} deep")));
                }
                let path = join(cur_rel, &name);
                let fd = fsat::make_fresh_dir(cur, &name, 0o700).map_err(|e| write_err(&path, e))?;
                got.dirs.push((path.clone(), mode));
                stack.push((fd, path));
            }
            T_UP => {
                if stack.pop().is_none() {
                    return Err(TreeError::Refused("it left the folder it was copying".into()));
                }
            }
            T_FILE => {
                let name = input.name()?;
                let mode = input.u32()? & 0o777;
                entries += 1;
                let path = join(cur_rel, &name);
                let mut file = fsat::create_file_at(cur, &name).map_err(|e| write_err(&path, e))?;
                let mut hasher = Sha256::new();
                let mut size = 0u64;
                loop {
                    match input.u8()? {
                        T_CHUNK => {
                            let n = input.u32()? as usize;
                            if n == 0 || n > CHUNK {
                                return Err(TreeError::Refused(format!("a chunk of {n} bytes")));
                            }
                            size += n as u64;
                            bytes += n as u64;
                            if bytes > max_bytes {
                                return Err(TreeError::Refused(format!("more than {max_bytes} bytes")));
                            }
                            let chunk = input.bytes(n)?;
                            hasher.update(&chunk);
                            file.write_all(&chunk).map_err(|e| write_err(&path, e))?;
                        }
                        T_EOF => break,
                        T_FAIL => return Err(TreeError::Failed(sanitize(&input.text(u16::MAX as usize)?))),
                        other => return Err(TreeError::Refused(format!("record {other} inside a file"))),
                    }
                }
                file.sync_all().map_err(|e| write_err(&path, e))?;
                got.files.push(ReceivedFile { path, mode, bytes: size, sha256: hex(&hasher.finalize()) });
            }
            T_SKIP => {
                let name = input.text(u16::MAX as usize)?;
                let why = input.text(u16::MAX as usize)?;
                skipped += 1;
                if skipped <= MAX_SKIPPED {
                    got.skipped.push((join(cur_rel, &sanitize(&name)), sanitize(&why)));
                }
            }
            T_META => {
                let n = input.u32()? as usize;
                if !household || got.meta.is_some() || n > MAX_META {
                    return Err(TreeError::Refused("an unexpected report of the household database".into()));
                }
                let meta: HouseholdMeta = serde_json::from_slice(&input.bytes(n)?)
                    .map_err(|e| TreeError::Refused(format!("an unreadable report of the household database: {e}")))?;
                if meta.members.len() > 10_000
                    || meta.members.iter().any(|m| {
                        !hearth_isolation::dirs::is_safe_member_id(&m.id)
                            || m.name.len() > 200
                            || m.name.chars().any(char::is_control)
                    })
                {
                    return Err(TreeError::Refused("the household database lists an unsafe member".into()));
                }
                got.meta = Some(meta);
            }
            T_FAIL => return Err(TreeError::Failed(sanitize(&input.text(u16::MAX as usize)?))),
            T_END => {
                if !stack.is_empty() {
                    return Err(TreeError::Refused("it ended inside a folder".into()));
                }
                let mut rest = [0u8; 1];
                if input.r.read(&mut rest).map_err(broken)? != 0 {
                    return Err(TreeError::Refused("more came after the end".into()));
                }
                break;
            }
            other => return Err(TreeError::Refused(format!("unknown record {other}"))),
        }
        if entries > MAX_ENTRIES {
            return Err(TreeError::Refused(format!("more than {MAX_ENTRIES} files and folders")));
        }
    }
    if household && got.meta.is_none() {
        return Err(TreeError::Refused("it did not report what the household database holds".into()));
    }
    if skipped > MAX_SKIPPED {
        got.skipped.push((rel.to_owned(), format!("{} more entries left out", skipped - MAX_SKIPPED)));
    }
    got.bytes += bytes;
    Ok(())
}

/// The folder to copy: opened by the caller, its path (for the databases' snapshots and the
/// reader's check), what to read, and the binary a reader process runs.
pub struct Source<'a> {
    pub dir: &'a OwnedFd,
    pub path: &'a Path,
    pub options: ReadOptions,
    pub exe: &'a ReaderExe,
}

/// Copies `src` into the folder `into`, read with the rights of `src`'s owner (a reader
/// process as that owner when this process is root and the owner is not; a thread otherwise).
pub fn copy_tree(
    src: &Source<'_>,
    into: &OwnedFd,
    rel: &str,
    max_bytes: u64,
    got: &mut Received,
) -> Result<(), TreeError> {
    let st = nix::sys::stat::fstat(src.dir)
        .map_err(|e| TreeError::Failed(format!("cannot read {}: {e}", src.path.display())))?;
    let household = src.options.household;
    match owner::reader_for(&st) {
        None => {
            let dir = src.dir.try_clone().map_err(|e| TreeError::Failed(e.to_string()))?;
            let (rx, tx) = std::io::pipe().map_err(|e| TreeError::Failed(e.to_string()))?;
            let (base, options) = (src.path.to_owned(), src.options.clone());
            let reader = std::thread::Builder::new()
                .name("hearth-tree-reader".into())
                .spawn(move || read_tree(dir, &base, &options, BufWriter::with_capacity(CHUNK + 64, tx)))
                .map_err(|e| TreeError::Failed(e.to_string()))?;
            // Our end is dropped when `receive` returns, which ends a reader still writing (EPIPE).
            let result = receive(Timed { inner: rx }, into, rel, household, max_bytes, got);
            let _ = reader.join();
            result
        }
        Some((uid, gid)) => {
            let exe = src.exe.path().map_err(|source| TreeError::Spawn { uid, source })?;
            let args = src.options.args(src.path);
            let mut reader = owner::spawn_reader(&exe, &args, uid, gid, src.dir.as_fd())
                .map_err(|source| TreeError::Spawn { uid, source })?;
            let result = receive(Timed { inner: reader.out }, into, rel, household, max_bytes, got);
            if result.is_err() {
                let _ = reader.child.kill();
            }
            let status = reader.child.wait();
            match (result, status) {
                (Ok(()), Ok(s)) if s.success() => Ok(()),
                (Ok(()), s) => Err(TreeError::Failed(format!("the reader (uid {uid}) ended badly: {s:?}"))),
                (Err(e), _) => Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(records: &[u8]) -> Vec<u8> {
        let mut v = MAGIC.to_vec();
        v.extend_from_slice(records);
        v
    }

    fn named(tag: u8, name: &str, mode: u32) -> Vec<u8> {
        let mut v = vec![tag];
        v.extend_from_slice(&(name.len() as u16).to_le_bytes());
        v.extend_from_slice(name.as_bytes());
        v.extend_from_slice(&mode.to_le_bytes());
        v
    }

    fn into() -> (tempfile::TempDir, OwnedFd) {
        let tmp = tempfile::tempdir().unwrap();
        let fd = fsat::open_dir_path(tmp.path(), false).unwrap();
        (tmp, fd)
    }

    #[test]
    fn a_folder_goes_through_the_stream_with_its_databases_and_without_its_links() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("member");
        std::fs::create_dir_all(src.join("files/deeper")).unwrap();
        std::fs::write(src.join("files/deeper/note.txt"), "bring a jacket").unwrap();
        std::fs::write(tmp.path().join("secret.txt"), "not theirs").unwrap();
        std::os::unix::fs::symlink(tmp.path().join("secret.txt"), src.join("files/link.txt")).unwrap();
        std::os::unix::fs::symlink(tmp.path(), src.join("up")).unwrap();
        std::fs::hard_link(tmp.path().join("secret.txt"), src.join("hard.txt")).unwrap();
        let live = Connection::open(src.join(HISTORY)).unwrap();
        live.pragma_update(None, "journal_mode", "WAL").unwrap();
        live.execute_batch("CREATE TABLE t (x TEXT); INSERT INTO t VALUES ('only in the WAL');").unwrap();

        let dir = fsat::open_dir_path(&src, false).unwrap();
        let mut bytes = Vec::new();
        read_tree(dir, &src, &ReadOptions::member(), &mut bytes).unwrap();
        let (out, fd) = into();
        let mut got = Received::default();
        receive(&bytes[..], &fd, "members/ana", false, 1 << 30, &mut got).unwrap();

        let files: Vec<&str> = got.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(files, ["members/ana/files/deeper/note.txt", "members/ana/history.sqlite"]);
        assert_eq!(
            got.dirs.iter().map(|d| d.0.as_str()).collect::<Vec<_>>(),
            ["members/ana/files", "members/ana/files/deeper"]
        );
        let mut skipped: Vec<&str> = got.skipped.iter().map(|s| s.0.as_str()).collect();
        skipped.sort();
        assert_eq!(skipped, ["members/ana/files/link.txt", "members/ana/hard.txt", "members/ana/up"]);
        assert_eq!(std::fs::read_to_string(out.path().join("files/deeper/note.txt")).unwrap(), "bring a jacket");
        let copy = Connection::open(out.path().join(HISTORY)).unwrap();
        let x: String = copy.query_row("SELECT x FROM t", [], |r| r.get(0)).unwrap();
        assert_eq!(x, "only in the WAL", "the snapshot holds what the WAL held");
        assert!(
            !std::fs::read_dir(&src).unwrap().any(|e| e
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with(SNAPSHOT_PREFIX))
        );
        assert_eq!(got.files[0].sha256, hex(&Sha256::digest(b"bring a jacket")));
        drop(live);
    }

    #[test]
    fn a_hostile_stream_writes_nothing_outside_and_is_stopped() {
        let bad_names = ["..", ".", "a/b", "", "x\u{1b}[2J", ".hearth-snapshot-1.sqlite"];
        for name in bad_names {
            let (out, fd) = into();
            let records = stream(&named(T_FILE, name, 0o644));
            let err = receive(&records[..], &fd, "", false, 1 << 20, &mut Received::default()).unwrap_err();
            assert!(matches!(err, TreeError::Refused(_)), "{name:?}: {err}");
            assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 0);
        }
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("no magic", b"HEARTHT0Z".to_vec()),
            ("leaving the top", stream(b"U")),
            ("ending inside a folder", stream(&[named(T_DIR, "a", 0o700), vec![T_END]].concat())),
            ("nothing after the end", stream(b"ZZ")),
            ("a truncated stream", stream(&named(T_FILE, "a", 0o600))),
            (
                "an oversized chunk",
                stream(&[named(T_FILE, "a", 0o600), vec![T_CHUNK], (CHUNK as u32 + 1).to_le_bytes().to_vec()].concat()),
            ),
            (
                "too deep",
                stream(&(0..=MAX_DEPTH).flat_map(|i| named(T_DIR, &format!("d{i}"), 0o700)).collect::<Vec<_>>()),
            ),
            ("an unasked report", stream(&[vec![T_META], 2u32.to_le_bytes().to_vec(), b"{}".to_vec()].concat())),
            ("an unknown record", stream(b"Q")),
        ];
        for (what, records) in cases {
            let (_out, fd) = into();
            let err = receive(&records[..], &fd, "", false, 1 << 20, &mut Received::default()).unwrap_err();
            assert!(matches!(err, TreeError::Refused(_)), "{what}: {err}");
        }
        // Bytes beyond the bound stop the copy.
        let (_out, fd) = into();
        let mut records = named(T_FILE, "big", 0o600);
        for _ in 0..3 {
            records.push(T_CHUNK);
            records.extend_from_slice(&1000u32.to_le_bytes());
            records.extend_from_slice(&[7u8; 1000]);
        }
        let err = receive(&stream(&records)[..], &fd, "", false, 2500, &mut Received::default()).unwrap_err();
        assert!(err.to_string().contains("more than 2500 bytes"), "{err}");
        // A failure the reader reports ends the copy with its (sanitised) words.
        let (_out, fd) = into();
        let mut records = vec![T_FAIL];
        let why = "disk \u{7} on fire";
        records.extend_from_slice(&(why.len() as u16).to_le_bytes());
        records.extend_from_slice(why.as_bytes());
        let err = receive(&stream(&records)[..], &fd, "", false, 1 << 20, &mut Received::default()).unwrap_err();
        assert_eq!(err.to_string(), "disk ? on fire");
    }

    #[test]
    fn reader_arguments_round_trip() {
        let options =
            ReadOptions { household: true, conversations: Some(("Ana Maria".into(), "2026-03-01T09:00:00Z".into())) };
        let args = options.args(Path::new("/var/lib/hearth"));
        assert_eq!(args[0], "tree-reader");
        assert_eq!(ReadOptions::parse(&args[1..]).unwrap(), (PathBuf::from("/var/lib/hearth"), options));
        assert!(ReadOptions::parse(&["--base".into(), "relative".into()]).is_err());
        assert!(ReadOptions::parse(&["--what".into()]).is_err());
    }
}
