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
//!
//! Files: this one holds the format, the options and [`copy_tree`]; `reader.rs` walks and
//! writes the stream, `receiver.rs` checks it and writes the copy.

use std::ffi::OsString;
use std::io::{self, BufWriter};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use hearth_isolation::owner;
use serde::{Deserialize, Serialize};

mod reader;
mod receiver;
#[cfg(test)]
mod tests;

pub(crate) use reader::open_snapshot;
pub use reader::{is_plain_name, read_tree, reader_main};
pub use receiver::{Received, ReceivedFile, hex, receive};
#[allow(unused_imports)] // each half uses some of the other's helpers
use {reader::*, receiver::*};

pub(super) const MAGIC: &[u8; 8] = b"HEARTHT1";
pub(super) const T_DIR: u8 = b'D';
pub(super) const T_UP: u8 = b'U';
pub(super) const T_FILE: u8 = b'F';
pub(super) const T_CHUNK: u8 = b'C';
pub(super) const T_EOF: u8 = b'X';
pub(super) const T_SKIP: u8 = b'S';
pub(super) const T_META: u8 = b'M';
pub(super) const T_FAIL: u8 = b'E';
pub(super) const T_END: u8 = b'Z';

/// Bytes per chunk a reader sends at most.
pub const CHUNK: usize = 256 * 1024;
pub(super) const MAX_NAME: usize = 255;
pub(super) const MAX_TEXT: usize = 2_000;
pub(super) const MAX_META: usize = 4 << 20;
/// Files and folders in one copied tree, at most.
pub const MAX_ENTRIES: u64 = 200_000;
/// Folders below the copied one, at most.
pub const MAX_DEPTH: usize = 32;
/// Skipped entries listed, at most (more are counted, not listed).
pub(super) const MAX_SKIPPED: usize = 1_000;
/// A reader that sends nothing for this long is stopped.
pub const STALL: Duration = Duration::from_secs(120);
/// Snapshots of databases are written beside them under this prefix, and never copied.
pub const SNAPSHOT_PREFIX: &str = ".hearth-snapshot-";
/// The worker's history database (`hearth_worker::history::FILE_NAME`).
pub(crate) const HISTORY: &str = "history.sqlite";
pub(super) const CONVERSATIONS: &str = "conversations.json";
/// What a household reader copies from the data folder; nothing else there.
pub(super) const HOUSEHOLD: [&str; 3] = ["app.json", "gateway.sqlite", "kb"];

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
