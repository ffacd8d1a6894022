//! The receiver: trusts nothing in the stream, and writes what it allows through descriptors
//! into a folder it made itself, hashing each file as it goes.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use hearth_isolation::fsat;
use sha2::{Digest, Sha256};

use super::*;

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
pub(super) struct Timed<R: Read + AsFd> {
    pub(super) inner: R,
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

pub(super) struct In<R: BufRead> {
    r: R,
}

pub(super) fn broken(e: io::Error) -> TreeError {
    match e.kind() {
        io::ErrorKind::UnexpectedEof => TreeError::Refused("the reader stopped before the end".into()),
        _ => TreeError::Refused(format!("reading the copy failed: {e}")),
    }
}

impl<R: BufRead> In<R> {
    pub(super) fn u8(&mut self) -> Result<u8, TreeError> {
        let mut b = [0u8; 1];
        self.r.read_exact(&mut b).map_err(broken)?;
        Ok(b[0])
    }
    pub(super) fn u16(&mut self) -> Result<u16, TreeError> {
        let mut b = [0u8; 2];
        self.r.read_exact(&mut b).map_err(broken)?;
        Ok(u16::from_le_bytes(b))
    }
    pub(super) fn u32(&mut self) -> Result<u32, TreeError> {
        let mut b = [0u8; 4];
        self.r.read_exact(&mut b).map_err(broken)?;
        Ok(u32::from_le_bytes(b))
    }
    pub(super) fn bytes(&mut self, n: usize) -> Result<Vec<u8>, TreeError> {
        let mut v = vec![0u8; n];
        self.r.read_exact(&mut v).map_err(broken)?;
        Ok(v)
    }
    pub(super) fn text(&mut self, max: usize) -> Result<String, TreeError> {
        let n = self.u16()? as usize;
        if n > max {
            return Err(TreeError::Refused(format!("a name or message of {n} bytes (at most {max})")));
        }
        String::from_utf8(self.bytes(n)?).map_err(|_| TreeError::Refused("a name that is not text".into()))
    }
    pub(super) fn name(&mut self) -> Result<String, TreeError> {
        let name = self.text(MAX_NAME)?;
        if !is_plain_name(&name) || name.starts_with(SNAPSHOT_PREFIX) {
            return Err(TreeError::Refused(format!("the name {:?} is not a plain file name", sanitize(&name))));
        }
        Ok(name)
    }
}

pub(super) fn join(rel: &str, name: &str) -> String {
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
