//! The member's notes and lists: plain files in `<member_dir>/files/`, which the assistant may
//! list, read, write and delete through tools — and nothing outside that folder.
//!
//! - A name is one plain file name: no `/`, no `..`, no leading dot, at most [`MAX_NAME_CHARS`]
//!   characters of letters, digits, spaces and `._-(),` — so it cannot name another folder.
//! - Everything is reached through a [`cap_std::fs::Dir`] for `files/` itself (opened without
//!   following a symlink): cap-std resolves every name beneath it (the kernel's `openat2`
//!   `RESOLVE_BENEATH` where it has it, its own checked walk elsewhere), so nothing outside can be
//!   named, and each file is opened with `O_NOFOLLOW` after a look at the name itself: a symlink
//!   planted inside, or in place of `files/`, never redirects a read or a write. Hard-linked
//!   files are refused too.
//! - Each note the model writes is at most [`MAX_FILE_BYTES`]; all files together, the ones the
//!   member sent included, at most [`MAX_TOTAL_BYTES`] and [`MAX_FILES`] files; files are created 0600. A whole-file write goes to a temporary file
//!   renamed over the old one, so a crash leaves the old or the new text, never half.
//!
//! Contents are the member's words: never logged.

use std::io::{Read, Write};
use std::path::Path;

use cap_std::ambient_authority;
use cap_std::fs::{Dir, DirBuilder, DirBuilderExt as _, File, MetadataExt as _, OpenOptions, OpenOptionsExt as _};
use hearth_proto::llm::ToolSpec;
use serde_json::{Value, json};

use crate::tools::ToolError;

/// The folder inside the member directory.
pub const DIR_NAME: &str = "files";
/// Longest file name, in characters.
pub const MAX_NAME_CHARS: usize = 100;
/// Largest note the model writes, in bytes. With [`MAX_FILES`] this bounds what a looping model
/// can fill the folder with (50 MB) far below [`MAX_TOTAL_BYTES`].
pub const MAX_FILE_BYTES: u64 = 100 * 1024;
/// Largest total of all the member's files, in bytes: the voice notes, photos and documents they
/// sent and the notes. Large enough for a family's months of photos and letters; the member's
/// disk quota (checked by the gateway before it downloads a file) is usually the nearer limit.
pub const MAX_TOTAL_BYTES: u64 = 256 * 1024 * 1024;
/// Most files.
pub const MAX_FILES: usize = 500;
/// Most characters `read_file` returns at once; `offset` reads on.
pub const READ_CHARS: usize = 12_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    #[error("{0}")]
    BadName(String),
    #[error("there is no file called {0:?}")]
    NotFound(String),
    #[error("{0:?} is not a plain file and cannot be used")]
    NotPlain(String),
    #[error("that would make {name:?} {bytes} bytes; a file may be at most {} bytes", MAX_FILE_BYTES)]
    TooLarge { name: String, bytes: u64 },
    #[error(
        "that would take the files to {bytes} bytes; all files together may be at most {} bytes — delete some first",
        MAX_TOTAL_BYTES
    )]
    Full { bytes: u64 },
    #[error("there are {} files already; delete some first", MAX_FILES)]
    TooMany,
    #[error("the files folder cannot be used: {0}")]
    Io(String),
}

impl From<FileError> for ToolError {
    fn from(e: FileError) -> Self {
        match e {
            FileError::BadName(_) => ToolError::BadArguments(e.to_string()),
            FileError::Io(_) => ToolError::Failed(e.to_string()),
            other => ToolError::Failed(other.to_string()),
        }
    }
}

fn io(e: std::io::Error) -> FileError {
    FileError::Io(e.to_string())
}

/// Checks a file name from the model; the error says what a good one looks like.
pub fn check_name(name: &str) -> Result<(), FileError> {
    let bad = |why: &str| Err(FileError::BadName(format!("the file name {name:?} {why}")));
    if name.is_empty() {
        return bad("is empty");
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return bad(&format!("is longer than {MAX_NAME_CHARS} characters"));
    }
    if name.starts_with('.') {
        return bad("starts with a dot");
    }
    if name.contains("..") {
        return bad("contains \"..\"");
    }
    if name.trim() != name {
        return bad("starts or ends with a space");
    }
    if let Some(c) = name.chars().find(|&c| !(c.is_alphanumeric() || " ._-(),".contains(c))) {
        return bad(&format!(
            "contains {c:?}; use letters, digits, spaces and . _ - ( ) , only, e.g. shopping-list.txt"
        ));
    }
    Ok(())
}

/// The member's `files/` folder.
pub struct Files {
    dir: Dir,
}

impl Files {
    /// Opens `<member_dir>/files/`, creating it (0700) if missing. A symlink in its place is
    /// refused, not followed.
    pub fn open(member_dir: &Path) -> Result<Files, FileError> {
        let refused = |e: std::io::Error| {
            FileError::Io(format!("{} ({e}); it must be a folder, not a link", member_dir.join(DIR_NAME).display()))
        };
        let member = Dir::open_ambient_dir(member_dir, ambient_authority()).map_err(io)?;
        match member.create_dir_with(DIR_NAME, DirBuilder::new().mode(0o700)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io(e)),
        }
        // The name itself, not what it may point to: a link is refused here, and O_NOFOLLOW
        // refuses one swapped in before the open.
        if !member.symlink_metadata(DIR_NAME).map_err(refused)?.is_dir() {
            return Err(refused(std::io::Error::from(std::io::ErrorKind::NotADirectory)));
        }
        let dir = member
            .open_with(DIR_NAME, OpenOptions::new().read(true).custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW))
            .map_err(refused)?;
        Ok(Files { dir: Dir::from_std_file(dir.into_std()) })
    }

    /// Opens one name in the folder, never through a link.
    fn open_file(&self, name: &str, options: &mut OpenOptions) -> std::io::Result<File> {
        self.dir.open_with(name, options.mode(0o600).custom_flags(libc::O_NOFOLLOW))
    }

    /// Plain files, by name, with their sizes, sorted.
    fn entries(&self) -> Result<Vec<(String, u64)>, FileError> {
        let mut out = Vec::new();
        for entry in self.dir.entries().map_err(io)? {
            let entry = entry.map_err(io)?;
            let Ok(name) = entry.file_name().into_string() else { continue };
            if name.starts_with('.') {
                continue;
            }
            if let Some((true, size)) = self.stat(&name)? {
                out.push((name, size));
            }
        }
        out.sort();
        Ok(out)
    }

    /// `(is a plain file, size)` of `name` without following a link; `None` if absent.
    fn stat(&self, name: &str) -> Result<Option<(bool, u64)>, FileError> {
        match self.dir.symlink_metadata(name) {
            Ok(meta) => Ok(Some((meta.is_file() && meta.nlink() == 1, meta.len()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(e)),
        }
    }

    /// Plain files, by name, with their sizes.
    pub fn list(&self) -> Result<Vec<(String, u64)>, FileError> {
        self.entries()
    }

    /// Up to [`READ_CHARS`] characters of `name` from character `offset`, and its length in
    /// characters.
    pub fn read(&self, name: &str, offset: usize) -> Result<(String, usize), FileError> {
        check_name(name)?;
        match self.stat(name)? {
            None => return Err(FileError::NotFound(name.into())),
            Some((false, _)) => return Err(FileError::NotPlain(name.into())),
            Some((true, _)) => {}
        }
        let bytes = self.read_bytes(name, MAX_FILE_BYTES)?;
        let text = String::from_utf8_lossy(&bytes);
        let total = text.chars().count();
        Ok((text.chars().skip(offset).take(READ_CHARS).collect(), total))
    }

    /// The bytes of `name`, at most `max` of them (a PDF the member sent, for its text).
    pub fn read_bytes(&self, name: &str, max: u64) -> Result<Vec<u8>, FileError> {
        check_name(name)?;
        // Non-blocking, so a FIFO swapped in after a look at the name cannot hang the tool.
        let mut file = match self.open_file(name, OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK)) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(FileError::NotFound(name.into())),
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Err(FileError::NotPlain(name.into())),
            Err(e) => return Err(io(e)),
        };
        let meta = file.metadata().map_err(io)?;
        if !meta.is_file() || meta.nlink() != 1 {
            return Err(FileError::NotPlain(name.into()));
        }
        let mut bytes = Vec::new();
        (&mut file).take(max).read_to_end(&mut bytes).map_err(io)?;
        Ok(bytes)
    }

    /// Writes `content` as the whole of `name` (or after what it holds, with `append`);
    /// returns the file's new size.
    pub fn write(&self, name: &str, content: &str, append: bool) -> Result<u64, FileError> {
        check_name(name)?;
        let files = self.entries()?;
        let existing = match self.stat(name)? {
            Some((false, _)) => return Err(FileError::NotPlain(name.into())),
            Some((true, size)) => Some(size),
            None => None,
        };
        if existing.is_none() && files.len() >= MAX_FILES {
            return Err(FileError::TooMany);
        }
        let old = existing.unwrap_or(0);
        let new_size = if append { old + content.len() as u64 } else { content.len() as u64 };
        if new_size > MAX_FILE_BYTES {
            return Err(FileError::TooLarge { name: name.into(), bytes: new_size });
        }
        let total: u64 = files.iter().map(|f| f.1).sum::<u64>() - old + new_size;
        if total > MAX_TOTAL_BYTES {
            return Err(FileError::Full { bytes: total });
        }
        if append {
            let mut file = match self.open_file(name, OpenOptions::new().append(true).create(true)) {
                Ok(f) => f,
                Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Err(FileError::NotPlain(name.into())),
                Err(e) => return Err(io(e)),
            };
            let meta = file.metadata().map_err(io)?;
            if !meta.is_file() || meta.nlink() != 1 {
                return Err(FileError::NotPlain(name.into()));
            }
            file.write_all(content.as_bytes()).and_then(|()| file.sync_data()).map_err(io)?;
            return Ok(meta.len() + content.len() as u64);
        }
        let temp = format!(".{name}.tmp");
        let _ = self.dir.remove_file(&temp);
        let mut file = self.open_file(&temp, OpenOptions::new().write(true).create_new(true)).map_err(io)?;
        let written = file.write_all(content.as_bytes()).and_then(|()| file.sync_data());
        drop(file);
        // rename(2) replaces `name` itself, never what a link there points to.
        if let Err(e) = written.and_then(|()| self.dir.rename(&temp, &self.dir, name)) {
            let _ = self.dir.remove_file(&temp);
            return Err(io(e));
        }
        Ok(new_size)
    }

    /// Keeps the files a member sent (voice notes, photos, documents), all or none: each under
    /// its wanted name if free, else "stem (2).ext", "stem (3).ext"…, created with `O_EXCL` so
    /// nothing already there is ever replaced. The caps are checked for all of them together
    /// before anything is written. [`MAX_FILE_BYTES`] is for the notes the model writes; a file
    /// the member sent is bounded by the folder's [`MAX_TOTAL_BYTES`] and [`MAX_FILES`] only.
    /// Each wanted name must pass [`check_name`]. Returns the names used, in order.
    pub fn keep(&self, wanted: &[(&str, &[u8])]) -> Result<Vec<String>, FileError> {
        for (name, _) in wanted {
            check_name(name)?;
        }
        let files = self.entries()?;
        if files.len() + wanted.len() > MAX_FILES {
            return Err(FileError::TooMany);
        }
        let total = files.iter().map(|f| f.1).sum::<u64>() + wanted.iter().map(|w| w.1.len() as u64).sum::<u64>();
        if total > MAX_TOTAL_BYTES {
            return Err(FileError::Full { bytes: total });
        }
        let mut kept: Vec<String> = Vec::new();
        for (name, bytes) in wanted {
            match self.keep_one(name, bytes) {
                Ok(used) => kept.push(used),
                Err(e) => {
                    for k in &kept {
                        let _ = self.dir.remove_file(k);
                    }
                    return Err(e);
                }
            }
        }
        Ok(kept)
    }

    fn keep_one(&self, wanted: &str, bytes: &[u8]) -> Result<String, FileError> {
        for n in 1..=MAX_FILES + 1 {
            let name = numbered(wanted, n);
            let mut file = match self.open_file(&name, OpenOptions::new().write(true).create_new(true)) {
                Ok(f) => f,
                // Taken (by a file, a link or anything else): try the next number.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io(e)),
            };
            if let Err(e) = file.write_all(bytes).and_then(|()| file.sync_data()) {
                drop(file);
                let _ = self.dir.remove_file(&name);
                return Err(io(e));
            }
            return Ok(name);
        }
        Err(FileError::TooMany)
    }

    /// Deletes `name`; false when there was no such file.
    pub fn delete(&self, name: &str) -> Result<bool, FileError> {
        check_name(name)?;
        match self.stat(name)? {
            None => Ok(false),
            Some((false, _)) => Err(FileError::NotPlain(name.into())),
            // unlink(2) removes the name itself (a link, never its target).
            Some((true, _)) => self.dir.remove_file(name).map(|()| true).map_err(io),
        }
    }
}

/// A PDF the member sent, as its text: `READ_CHARS` from `offset` on.
fn read_pdf(files: &Files, name: &str, offset: usize) -> Result<String, ToolError> {
    let bytes = files.read_bytes(name, MAX_TOTAL_BYTES)?;
    let want = offset.saturating_add(READ_CHARS);
    match crate::media::pdf_text_blocking(bytes, want) {
        Ok((text, more)) => {
            let part: String = text.chars().skip(offset).take(READ_CHARS).collect();
            let end = offset + part.chars().count();
            if offset == 0 && !more {
                return Ok(part);
            }
            let tail = if more { format!("; more from offset {end}") } else { String::new() };
            Ok(format!("[the PDF's text, characters {offset}–{end}{tail}]\n{part}"))
        }
        Err(e) => Err(ToolError::Failed(e.sentence(name))),
    }
}

/// `name` for `n == 1`, else "stem (n).ext", the stem shortened so the whole stays within
/// [`MAX_NAME_CHARS`]. A plain name stays plain.
fn numbered(name: &str, n: usize) -> String {
    if n == 1 {
        return name.to_owned();
    }
    let (stem, ext) = match name.rfind('.') {
        Some(i) if i > 0 => name.split_at(i),
        _ => (name, ""),
    };
    let suffix = format!(" ({n}){ext}");
    let room = MAX_NAME_CHARS.saturating_sub(suffix.chars().count());
    let stem: String = stem.chars().take(room).collect();
    format!("{}{suffix}", stem.trim_end())
}

/// The file tools' definitions.
pub fn specs() -> Vec<ToolSpec> {
    // Every tool definition rides along on every call, so these are terse.
    let name = json!({ "type": "string", "description": "Plain file name, e.g. list.txt" });
    vec![
        ToolSpec {
            name: "list_files".into(),
            description: "List this person's saved notes and lists.".into(),
            parameters: json!({ "type": "object", "properties": {} }),
        },
        ToolSpec {
            name: "read_file".into(),
            description: "Read a note; long ones come in parts, `offset` reads on.".into(),
            parameters: json!({
                "type": "object",
                "properties": { "name": name, "offset": { "type": "integer" } },
                "required": ["name"]
            }),
        },
        ToolSpec {
            name: "write_file".into(),
            description: "Save a note or list for this person, replacing the file, or adding to its end with `append`."
                .into(),
            parameters: json!({
                "type": "object",
                "properties": { "name": name, "content": { "type": "string" }, "append": { "type": "boolean" } },
                "required": ["name", "content"]
            }),
        },
        ToolSpec {
            name: "delete_file".into(),
            description: "Delete a note.".into(),
            parameters: json!({ "type": "object", "properties": { "name": name }, "required": ["name"] }),
        },
    ]
}

/// Runs one file tool (blocking: call it on a blocking thread).
pub fn run(member_dir: &Path, tool: &str, args: &Value) -> Result<String, ToolError> {
    let name = || {
        args.get("name")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| ToolError::BadArguments("\"name\" must be a file name".into()))
    };
    let files = Files::open(member_dir)?;
    match tool {
        "list_files" => {
            let all = files.list()?;
            if all.is_empty() {
                return Ok("No files yet.".into());
            }
            Ok(all.iter().map(|(n, size)| format!("{n} ({size} bytes)")).collect::<Vec<_>>().join("\n"))
        }
        "read_file" => {
            let name = name()?;
            let offset = args.get("offset").and_then(Value::as_u64).unwrap_or(0) as usize;
            if name.to_ascii_lowercase().ends_with(".pdf") {
                return read_pdf(&files, &name, offset);
            }
            let (text, total) = files.read(&name, offset)?;
            let end = offset + text.chars().count();
            Ok(if offset == 0 && end >= total {
                text
            } else {
                format!("[characters {offset}–{end} of {total}]\n{text}")
            })
        }
        "write_file" => {
            let name = name()?;
            let content = args
                .get("content")
                .and_then(Value::as_str)
                .ok_or_else(|| ToolError::BadArguments("\"content\" must be text".into()))?;
            let append = args.get("append").and_then(Value::as_bool).unwrap_or(false);
            let size = files.write(&name, content, append)?;
            Ok(format!("Saved {name} ({size} bytes)."))
        }
        "delete_file" => {
            let name = name()?;
            Ok(match files.delete(&name)? {
                true => format!("Deleted {name}."),
                false => format!("There is no file called {name}; nothing was deleted."),
            })
        }
        other => Err(ToolError::Unknown(other.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn kept_files_never_replace_one_and_go_in_all_or_none() {
        let dir = tempfile::tempdir().unwrap();
        let files = Files::open(dir.path()).unwrap();
        files.write("a.txt", "mine", false).unwrap();
        let kept = files.keep(&[("a.txt", b"one"), ("a.txt", b"two"), ("b", b"three")]).unwrap();
        assert_eq!(kept, ["a (2).txt", "a (3).txt", "b"]);
        assert_eq!(files.read("a.txt", 0).unwrap().0, "mine");
        assert_eq!(files.read("a (3).txt", 0).unwrap().0, "two");
        assert_eq!(numbered(&format!("{}.txt", "x".repeat(100)), 12).chars().count(), MAX_NAME_CHARS);
        assert!(check_name(&numbered(&format!("{}.txt", "x".repeat(96)), 2)).is_ok());
        // Over the folder's cap: nothing of the lot is written. A sparse file stands for what the
        // member sent before.
        std::fs::File::create(dir.path().join("files/sent.bin")).unwrap().set_len(MAX_TOTAL_BYTES - 100).unwrap();
        assert!(matches!(files.keep(&[("c", &[0u8; 60]), ("d", &[0u8; 60])]), Err(FileError::Full { .. })));
        std::fs::remove_file(dir.path().join("files/sent.bin")).unwrap();
        assert!(matches!(files.keep(&[("../x", b"x")]), Err(FileError::BadName(_))));
        assert_eq!(files.list().unwrap().len(), 4);
    }

    #[test]
    fn names_are_plain() {
        for good in ["shopping-list.txt", "Ideas (2025).md", "Einkaufsliste_ä.txt", "a", &"x".repeat(100)] {
            assert_eq!(check_name(good), Ok(()), "{good}");
        }
        for bad in
            ["", "../memory.sqlite", "a/b", "/etc/passwd", ".hidden", "a..b", " x", "x ", "a\\b", "a\0b", "a\nb", "*"]
        {
            assert!(matches!(check_name(bad), Err(FileError::BadName(_))), "{bad:?}");
        }
        assert!(check_name(&"x".repeat(101)).is_err());
    }

    #[test]
    fn round_trip_append_list_delete() {
        let dir = tempfile::tempdir().unwrap();
        let files = Files::open(dir.path()).unwrap();
        assert_eq!(files.write("list.txt", "milk\n", false).unwrap(), 5);
        assert_eq!(files.write("list.txt", "eggs\n", true).unwrap(), 10);
        assert_eq!(files.read("list.txt", 0).unwrap(), ("milk\neggs\n".into(), 10));
        assert_eq!(files.read("list.txt", 5).unwrap().0, "eggs\n");
        files.write("list.txt", "bread", false).unwrap();
        assert_eq!(files.read("list.txt", 0).unwrap().0, "bread");
        files.write("b.md", "x", false).unwrap();
        assert_eq!(files.list().unwrap(), [("b.md".to_owned(), 1), ("list.txt".to_owned(), 5)]);
        let mode = std::fs::metadata(dir.path().join("files/list.txt")).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(std::fs::metadata(dir.path().join("files")).unwrap().permissions().mode() & 0o777, 0o700);
        assert!(files.delete("list.txt").unwrap());
        assert!(!files.delete("list.txt").unwrap());
        assert_eq!(files.read("list.txt", 0), Err(FileError::NotFound("list.txt".into())));
    }

    #[test]
    fn caps_are_enforced() {
        let dir = tempfile::tempdir().unwrap();
        let files = Files::open(dir.path()).unwrap();
        let big = "x".repeat(MAX_FILE_BYTES as usize);
        files.write("a.txt", &big, false).unwrap();
        assert!(matches!(files.write("a.txt", "y", true), Err(FileError::TooLarge { .. })));
        assert!(matches!(files.write("b.txt", &format!("{big}y"), false), Err(FileError::TooLarge { .. })));
        // Fill to the total cap: a sparse file stands for the photos the member sent.
        std::fs::File::create(dir.path().join("files/sent.bin"))
            .unwrap()
            .set_len(MAX_TOTAL_BYTES - MAX_FILE_BYTES - 1)
            .unwrap();
        files.write("rest.txt", "r", false).unwrap();
        assert!(matches!(files.write("one-more.txt", "z", false), Err(FileError::Full { .. })));
        // Replacing a file with something smaller always fits.
        files.write("a.txt", "small", false).unwrap();
        files.write("one-more.txt", "z", false).unwrap();
        assert_eq!(files.list().unwrap().len(), 4);
    }

    #[test]
    fn links_are_never_followed() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("memory.sqlite");
        std::fs::write(&outside, "private").unwrap();
        let files = Files::open(dir.path()).unwrap();
        let inside = dir.path().join("files");
        std::os::unix::fs::symlink(&outside, inside.join("link.txt")).unwrap();
        std::fs::hard_link(&outside, inside.join("hard.txt")).unwrap();
        for name in ["link.txt", "hard.txt"] {
            assert_eq!(files.read(name, 0), Err(FileError::NotPlain(name.into())), "{name}");
            assert_eq!(files.write(name, "owned", false), Err(FileError::NotPlain(name.into())), "{name}");
            assert_eq!(files.write(name, "owned", true), Err(FileError::NotPlain(name.into())), "{name}");
            assert_eq!(files.delete(name), Err(FileError::NotPlain(name.into())), "{name}");
        }
        assert_eq!(std::fs::read_to_string(&outside).unwrap(), "private");
        assert!(files.list().unwrap().is_empty(), "links are not listed as files");

        // files/ itself replaced by a link to the member directory: refused, not followed.
        let other = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(dir.path(), other.path().join(DIR_NAME)).unwrap();
        assert!(matches!(Files::open(other.path()), Err(FileError::Io(_))));
    }

    #[test]
    fn relative_links_are_refused_too() {
        // Links that stay inside the member's directory: one inside files/ to a sibling of it,
        // one in place of files/ to the member directory itself.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("memory.sqlite"), "private").unwrap();
        let files = Files::open(dir.path()).unwrap();
        std::os::unix::fs::symlink("../memory.sqlite", dir.path().join("files/up.txt")).unwrap();
        files.write("real.txt", "mine", false).unwrap();
        std::os::unix::fs::symlink("real.txt", dir.path().join("files/alias.txt")).unwrap();
        for name in ["up.txt", "alias.txt"] {
            assert_eq!(files.read(name, 0), Err(FileError::NotPlain(name.into())), "{name}");
            assert_eq!(files.write(name, "owned", true), Err(FileError::NotPlain(name.into())), "{name}");
        }
        assert_eq!(files.list().unwrap(), [("real.txt".to_owned(), 4)]);

        let member = tempfile::tempdir().unwrap();
        std::fs::write(member.path().join("history.sqlite"), "private").unwrap();
        std::os::unix::fs::symlink(".", member.path().join(DIR_NAME)).unwrap();
        assert!(matches!(Files::open(member.path()), Err(FileError::Io(_))));
    }

    #[test]
    fn tool_calls_go_through_the_same_checks() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        assert_eq!(run(d, "list_files", &json!({})).unwrap(), "No files yet.");
        assert_eq!(
            run(d, "write_file", &json!({"name": "todo.txt", "content": "call gran"})).unwrap(),
            "Saved todo.txt (9 bytes)."
        );
        assert_eq!(run(d, "read_file", &json!({"name": "todo.txt"})).unwrap(), "call gran");
        assert_eq!(run(d, "list_files", &json!({})).unwrap(), "todo.txt (9 bytes)");
        let e = run(d, "write_file", &json!({"name": "a/../../history.sqlite", "content": "x"})).unwrap_err();
        assert!(matches!(&e, ToolError::BadArguments(m) if m.contains("\"..\"")), "{e:?}");
        assert!(matches!(run(d, "read_file", &json!({})), Err(ToolError::BadArguments(_))));
        assert_eq!(run(d, "delete_file", &json!({"name": "todo.txt"})).unwrap(), "Deleted todo.txt.");
        assert!(!d.join("history.sqlite").exists());
    }
}
