//! Household knowledge: the Markdown and text files the admin drops into `<data dir>/kb/` (the
//! wifi password, the school calendar, who to call when the boiler breaks), indexed here so every
//! member's assistant can search them — through the gateway, never by reading `kb/` itself.
//!
//! - `kb/` is the gateway's (0700): at account levels no worker can open it, and a worker's
//!   only way in is a [`hearth_proto::worker::WorkerToGateway::KbSearch`] during its own turn,
//!   answered read-only with at most [`KB_MAX_HITS`] passages, [`KB_MAX_CHARS`] together.
//! - The index is `<data dir>/kb.sqlite` (FTS5), not a table in `gateway.sqlite`: it is a cache of
//!   the files, rebuilt from them at will (a damaged or older-schema file is simply replaced), so
//!   it needs no frozen migrations, is left out of backups, and its writes never queue behind the
//!   store's one connection in the core loop.
//! - Files are cut into passages by heading (Markdown `#` lines) and paragraph, merged up to
//!   [`CHUNK_CHARS`]; each passage remembers its heading path.
//! - [`Knowledge::watch`] scans everything at start (only files whose size or modification time
//!   changed are read again) and then follows `notify` events: a change is searchable about
//!   [`DEBOUNCE`] later. Symlinks and hard-linked files inside `kb/` are skipped, so nothing
//!   outside it (`secrets.json`) can be planted into the index. PDF is not read: no pure-Rust
//!   extractor is both well kept and simple enough to trust with the admin's files.
//!
//! What the files say is never logged at info: only counts and, at debug, file names.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use hearth_proto::worker::{KB_MAX_CHARS, KB_MAX_HITS, KbHit};
use parking_lot::Mutex;
use rusqlite::{Connection, params};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Name of the directory inside the data directory.
pub const DIR_NAME: &str = "kb";
/// Name of the index database inside the data directory.
pub const DATABASE: &str = "kb.sqlite";
/// The note for the admin written into a new `kb/`; never indexed itself.
pub const README: &str = "README.txt";

/// How long after a change the index catches up: events within it are taken together.
pub const DEBOUNCE: Duration = Duration::from_millis(200);
/// Longest passage, in characters, before a paragraph is cut or the next is not merged in.
pub const CHUNK_CHARS: usize = 800;
/// Longest snippet of one hit, in characters.
const HIT_CHARS: usize = 600;
/// Files larger than this are skipped (and a warning names them): a household note is small.
pub const MAX_FILE_BYTES: u64 = 2 * 1024 * 1024;
/// Most files indexed; past it the rest are skipped.
const MAX_FILES: usize = 5000;
/// Longest a search may take before the worker is told the knowledge is unavailable.
pub const SEARCH_TIMEOUT: Duration = Duration::from_secs(5);

/// The index schema's version. A file with any other version is replaced: it is only a cache.
const SCHEMA_VERSION: u32 = 1;
const SCHEMA: &str = "
    CREATE TABLE kb_files (
        path      TEXT PRIMARY KEY,   -- relative to kb/, '/'-separated
        size      INTEGER NOT NULL,
        mtime_ns  INTEGER NOT NULL
    );
    CREATE VIRTUAL TABLE kb_chunks USING fts5 (
        path UNINDEXED, heading, body, tokenize = 'unicode61 remove_diacritics 2'
    );
";

const README_TEXT: &str = "\
Household knowledge for Hearth
==============================

Put Markdown (.md) and plain-text (.txt) files in this folder — the wifi password, the school
calendar, who to call when the boiler breaks, the bin days. Every member's assistant can search
them and answer from them. Sub-folders are fine.

- A change is picked up within a second; delete a file to take it out again.
- Headings (lines starting with #) help: each passage is found with the heading it sits under.
- Everyone in the household can be told what is written here, children too. Keep anything
  private out of this folder: health, money, anything about one person they would not want the
  others (or a guest on their phone) to read.
- No secrets beyond what everyone may know: no bank or email passwords, PINs, door or alarm
  codes, API keys or tokens. The wifi password is fine if everyone may have it.
- Notes are information, not orders: the assistants read them as quoted material and do not
  follow instructions written in them. Don't put instructions for the assistants here (to set
  how one member's assistant behaves, use `hearth member set NAME --persona \"…\"`), and don't
  drop in text you have not read — a pasted web page or a forwarded email may hold instructions
  meant to trick an assistant.
- PDF and Word files are not read: save them as text first. Files over 2 MB, hidden files,
  symbolic links and this README are skipped.
";

#[derive(Debug, thiserror::Error)]
pub enum KbError {
    #[error("cannot prepare {path}: {source}")]
    Dir { path: PathBuf, source: std::io::Error },
    #[error("household knowledge index error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("the household knowledge index stopped unexpectedly: {0}")]
    Join(String),
}

/// The household's knowledge: `kb/` and its index. Cheap to clone.
#[derive(Clone)]
pub struct Knowledge {
    inner: Arc<Inner>,
}

struct Inner {
    /// `<data dir>/kb`.
    root: PathBuf,
    // Only ever locked on a blocking thread, never across an await; does not poison.
    conn: Mutex<Connection>,
}

/// What one pass over `kb/` did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Scanned {
    /// Files read and indexed again.
    pub indexed: usize,
    /// Files taken out of the index (deleted, renamed away, no longer readable).
    pub removed: usize,
    /// Files in the index after the pass.
    pub files: usize,
}

impl Knowledge {
    /// Creates `kb/` (0700, with a README for the admin) if missing, tightens it to 0700 if it
    /// was open to others, and opens the index (replacing one that is damaged or of another
    /// schema). Scanning is [`Knowledge::rescan`]'s, or [`Knowledge::watch`]'s.
    pub fn open(data_dir: &Path) -> Result<Knowledge, KbError> {
        let root = data_dir.join(DIR_NAME);
        prepare_dir(&root).map_err(|source| KbError::Dir { path: root.clone(), source })?;
        let db = data_dir.join(DATABASE);
        let conn = match open_index(&db) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "household knowledge index unusable; rebuilding it");
                for suffix in ["", "-wal", "-shm"] {
                    let _ = fs::remove_file(format!("{}{suffix}", db.display()));
                }
                open_index(&db)?
            }
        };
        Ok(Knowledge { inner: Arc::new(Inner { root, conn: Mutex::new(conn) }) })
    }

    /// `<data dir>/kb`.
    pub fn dir(&self) -> &Path {
        &self.inner.root
    }

    /// Brings the index up to date with `kb/`: files whose size or modification time changed,
    /// and every file in `force`, are read again; files gone are removed.
    pub fn rescan_sync(&self, force: &HashSet<PathBuf>) -> Result<Scanned, KbError> {
        let found = walk(&self.inner.root);
        let mut conn = self.inner.conn.lock();
        let known: HashMap<String, (u64, i64)> = {
            let mut stmt = conn.prepare("SELECT path, size, mtime_ns FROM kb_files")?;
            stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, (r.get::<_, i64>(1)? as u64, r.get::<_, i64>(2)?))))?
                .collect::<Result<_, _>>()?
        };
        let mut scanned = Scanned::default();
        let tx = conn.transaction()?;
        for (rel, _) in known.iter().filter(|(rel, _)| !found.contains_key(*rel)) {
            remove_file_rows(&tx, rel)?;
            tracing::debug!(file = %rel, "household knowledge file removed from the index");
            scanned.removed += 1;
        }
        for (rel, stamp) in &found {
            let forced = force.contains(&self.inner.root.join(rel));
            if !forced && known.get(rel) == Some(stamp) {
                continue;
            }
            remove_file_rows(&tx, rel)?;
            match read_text(&self.inner.root.join(rel)) {
                Some(text) => {
                    let chunks = chunk(&text, is_markdown(rel));
                    let mut insert =
                        tx.prepare_cached("INSERT INTO kb_chunks (path, heading, body) VALUES (?1, ?2, ?3)")?;
                    for c in &chunks {
                        insert.execute(params![rel, c.heading, c.body])?;
                    }
                    tx.execute(
                        "INSERT INTO kb_files (path, size, mtime_ns) VALUES (?1, ?2, ?3)",
                        params![rel, stamp.0 as i64, stamp.1],
                    )?;
                    tracing::debug!(file = %rel, passages = chunks.len(), "household knowledge file indexed");
                    scanned.indexed += 1;
                }
                None => {
                    // Gone or unreadable between the walk and now: out of the index until it changes.
                    if known.contains_key(rel) {
                        scanned.removed += 1;
                    }
                }
            }
        }
        tx.commit()?;
        scanned.files = conn.query_row("SELECT count(*) FROM kb_files", [], |r| r.get::<_, i64>(0))? as usize;
        Ok(scanned)
    }

    /// [`Knowledge::rescan_sync`] on a blocking thread.
    pub async fn rescan(&self, force: HashSet<PathBuf>) -> Result<Scanned, KbError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.rescan_sync(&force)).await.map_err(|e| KbError::Join(e.to_string()))?
    }

    /// The passages best matching `query`'s words: at most [`KB_MAX_HITS`], best first, their
    /// snippets at most [`KB_MAX_CHARS`] characters together. Empty when nothing matches.
    pub fn search_sync(&self, query: &str) -> Result<Vec<KbHit>, KbError> {
        let words = query_words(query);
        if words.is_empty() {
            return Ok(Vec::new());
        }
        let expr = words.iter().map(|w| format!("\"{w}\"*")).collect::<Vec<_>>().join(" OR ");
        let conn = self.inner.conn.lock();
        let mut stmt = conn.prepare_cached(
            "SELECT path, heading, body FROM kb_chunks WHERE kb_chunks MATCH ?1 \
             ORDER BY bm25(kb_chunks, 0.0, 2.0, 1.0) LIMIT ?2",
        )?;
        let rows = stmt
            .query_map(params![expr, KB_MAX_HITS as i64], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let mut left = KB_MAX_CHARS;
        let mut hits = Vec::new();
        for (file, heading, body) in rows {
            if left < 80 {
                break;
            }
            let snippet = snippet(&body, &words, HIT_CHARS.min(left));
            left = left.saturating_sub(snippet.chars().count());
            hits.push(KbHit { file, heading, snippet });
        }
        Ok(hits)
    }

    /// [`Knowledge::search_sync`] on a blocking thread, within [`SEARCH_TIMEOUT`]; the error is
    /// a sentence for the model.
    pub async fn search(&self, query: String) -> Result<Vec<KbHit>, String> {
        let this = self.clone();
        let work = tokio::task::spawn_blocking(move || this.search_sync(&query));
        match tokio::time::timeout(SEARCH_TIMEOUT, work).await {
            Ok(Ok(Ok(hits))) => Ok(hits),
            Ok(Ok(Err(e))) => {
                tracing::error!(error = %e, "household knowledge search failed");
                Err("the household knowledge could not be searched just now".into())
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "household knowledge search stopped");
                Err("the household knowledge could not be searched just now".into())
            }
            Err(_) => Err("searching the household knowledge took too long".into()),
        }
    }

    /// Keeps the index in step with `kb/` until `cancel`: watches first (so nothing changed
    /// during the scan is missed), scans everything, then re-scans [`DEBOUNCE`] after each burst
    /// of events, reading the files the events named again whatever their time stamps say. The
    /// watcher lives in this task and stops when it ends.
    pub async fn watch(self, cancel: CancellationToken) {
        let (tx, mut rx) = mpsc::unbounded_channel::<notify::Result<notify::Event>>();
        let watcher = {
            use notify::Watcher;
            notify::recommended_watcher(move |event| {
                let _ = tx.send(event);
            })
            .and_then(|mut w| w.watch(&self.inner.root, notify::RecursiveMode::Recursive).map(|()| w))
        };
        let _watcher = match watcher {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::error!(error = %e, dir = %self.inner.root.display(), "cannot watch the household knowledge folder; changes are picked up at the next start");
                None
            }
        };
        match self.rescan(HashSet::new()).await {
            Ok(s) => {
                tracing::info!(files = s.files, indexed = s.indexed, removed = s.removed, "household knowledge indexed")
            }
            Err(e) => tracing::error!(error = %e, "household knowledge could not be indexed"),
        }
        loop {
            let first = tokio::select! {
                _ = cancel.cancelled() => return,
                event = rx.recv() => match event {
                    Some(e) => e,
                    None => return,
                },
            };
            let mut force = HashSet::new();
            collect(first, &mut force);
            let settle = tokio::time::sleep(DEBOUNCE);
            tokio::pin!(settle);
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = &mut settle => break,
                    Some(event) = rx.recv() => collect(event, &mut force),
                }
            }
            match self.rescan(force).await {
                Ok(s) if s.indexed + s.removed > 0 => {
                    tracing::info!(
                        files = s.files,
                        indexed = s.indexed,
                        removed = s.removed,
                        "household knowledge updated"
                    )
                }
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "household knowledge could not be updated"),
            }
        }
    }
}

/// The paths one event names; an error (e.g. a queue overflow) names none: the re-scan's time
/// stamps catch up.
fn collect(event: notify::Result<notify::Event>, into: &mut HashSet<PathBuf>) {
    match event {
        Ok(e) => into.extend(e.paths),
        Err(e) => tracing::warn!(error = %e, "household knowledge watcher reported a problem; re-scanning"),
    }
}

fn prepare_dir(root: &Path) -> std::io::Result<()> {
    match fs::symlink_metadata(root) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            fs::create_dir(root)?;
        }
        Err(e) => return Err(e),
    }
    // Followed on purpose: the admin may point kb/ at a folder they keep elsewhere.
    let meta = fs::metadata(root)?;
    if !meta.is_dir() {
        return Err(std::io::Error::other("it is not a folder"));
    }
    if meta.permissions().mode() & 0o077 != 0 {
        tracing::warn!(dir = %root.display(), "household knowledge folder was open to others; making it the gateway's only");
        fs::set_permissions(root, fs::Permissions::from_mode(0o700))?;
    }
    let readme = root.join(README);
    if fs::symlink_metadata(&readme).is_err() {
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&readme)
            .and_then(|mut f| std::io::Write::write_all(&mut f, README_TEXT.as_bytes()))?;
    }
    Ok(())
}

fn open_index(path: &Path) -> Result<Connection, KbError> {
    let conn = Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.busy_timeout(Duration::from_secs(5))?;
    let version: u32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version != SCHEMA_VERSION {
        // Only a cache: start over rather than migrate.
        conn.execute_batch("DROP TABLE IF EXISTS kb_files; DROP TABLE IF EXISTS kb_chunks;")?;
        conn.execute_batch(SCHEMA)?;
        conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    }
    // A damaged file fails here rather than at the first search.
    conn.query_row("SELECT count(*) FROM kb_chunks", [], |r| r.get::<_, i64>(0))?;
    Ok(conn)
}

fn remove_file_rows(tx: &rusqlite::Transaction<'_>, rel: &str) -> rusqlite::Result<()> {
    tx.execute("DELETE FROM kb_chunks WHERE path = ?1", [rel])?;
    tx.execute("DELETE FROM kb_files WHERE path = ?1", [rel])?;
    Ok(())
}

fn is_markdown(rel: &str) -> bool {
    rel.ends_with(".md") || rel.ends_with(".markdown")
}

fn indexable(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    [".md", ".markdown", ".txt"].iter().any(|ext| lower.ends_with(ext))
}

/// Every indexable file under `root` by its '/'-separated relative path, with its size and
/// modification time. Hidden entries, symlinks, hard-linked files, files over
/// [`MAX_FILE_BYTES`] and the README at the top are skipped; unreadable folders are passed over.
fn walk(root: &Path) -> HashMap<String, (u64, i64)> {
    let mut found = HashMap::new();
    let mut stack = vec![(root.to_owned(), String::new())];
    while let Some((dir, prefix)) = stack.pop() {
        let Ok(entries) = fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else { continue };
            if name.starts_with('.') || (prefix.is_empty() && name == README) {
                continue;
            }
            // symlink_metadata: a link is never followed, wherever it points.
            let Ok(meta) = fs::symlink_metadata(entry.path()) else { continue };
            let rel = format!("{prefix}{name}");
            if meta.is_dir() {
                stack.push((entry.path(), format!("{rel}/")));
            } else if meta.is_file() && indexable(&name) && meta.nlink() == 1 {
                if meta.len() > MAX_FILE_BYTES {
                    tracing::warn!(file = %rel, bytes = meta.len(), "household knowledge file too large; skipped");
                    continue;
                }
                if found.len() >= MAX_FILES {
                    tracing::warn!(max = MAX_FILES, "too many household knowledge files; the rest are skipped");
                    return found;
                }
                let mtime_ns = meta.mtime().saturating_mul(1_000_000_000).saturating_add(meta.mtime_nsec());
                found.insert(rel, (meta.len(), mtime_ns));
            }
        }
    }
    found
}

/// The file's text (invalid UTF-8 replaced), opened without following a symlink planted since
/// the walk; `None` when it cannot be read.
fn read_text(path: &Path) -> Option<String> {
    let file = fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(path).ok()?;
    let meta = file.metadata().ok()?;
    if !meta.is_file() || meta.nlink() != 1 {
        return None;
    }
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES).read_to_end(&mut bytes).ok()?;
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

/// One searchable passage of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// The headings above it, outermost first, joined with " > "; empty before the first.
    pub heading: String,
    pub body: String,
}

/// Cuts a file into passages: a new one at every heading (Markdown only), paragraphs (blank-line
/// separated) merged while they fit in [`CHUNK_CHARS`], a longer paragraph cut at word breaks.
pub fn chunk(text: &str, markdown: bool) -> Vec<Chunk> {
    let mut chunks = Vec::new();
    let mut headings: Vec<(usize, String)> = Vec::new();
    let mut paragraphs: Vec<String> = Vec::new();
    let mut current = String::new();

    let flush = |headings: &[(usize, String)], paragraphs: &mut Vec<String>, chunks: &mut Vec<Chunk>| {
        let heading = headings.iter().map(|(_, h)| h.as_str()).collect::<Vec<_>>().join(" > ");
        let mut body = String::new();
        for p in paragraphs.drain(..) {
            for piece in split_long(&p, CHUNK_CHARS) {
                if !body.is_empty() && body.chars().count() + 2 + piece.chars().count() > CHUNK_CHARS {
                    chunks.push(Chunk { heading: heading.clone(), body: std::mem::take(&mut body) });
                }
                if !body.is_empty() {
                    body.push_str("\n\n");
                }
                body.push_str(&piece);
            }
        }
        if !body.is_empty() {
            chunks.push(Chunk { heading, body });
        }
    };

    for line in text.lines() {
        let heading = markdown.then(|| markdown_heading(line)).flatten();
        if let Some((level, title)) = heading {
            if !current.trim().is_empty() {
                paragraphs.push(std::mem::take(&mut current).trim().to_owned());
            }
            current.clear();
            flush(&headings, &mut paragraphs, &mut chunks);
            headings.retain(|(l, _)| *l < level);
            headings.push((level, title));
            continue;
        }
        if line.trim().is_empty() {
            if !current.trim().is_empty() {
                paragraphs.push(std::mem::take(&mut current).trim().to_owned());
            }
            current.clear();
        } else {
            if !current.is_empty() {
                current.push('\n');
            }
            current.push_str(line.trim_end());
        }
    }
    if !current.trim().is_empty() {
        paragraphs.push(current.trim().to_owned());
    }
    flush(&headings, &mut paragraphs, &mut chunks);
    chunks
}

/// `(level, title)` of a Markdown ATX heading line (`# Title`, up to six `#`).
fn markdown_heading(line: &str) -> Option<(usize, String)> {
    let trimmed = line.trim_start();
    if line.len() - trimmed.len() > 3 {
        return None;
    }
    let level = trimmed.chars().take_while(|&c| c == '#').count();
    if level == 0 || level > 6 {
        return None;
    }
    let rest = &trimmed[level..];
    if !(rest.is_empty() || rest.starts_with(' ') || rest.starts_with('\t')) {
        return None;
    }
    let title = rest.trim().trim_end_matches('#').trim().to_owned();
    Some((level, title))
}

/// `text` in pieces of at most `max` characters, cut at whitespace where there is some.
fn split_long(text: &str, max: usize) -> Vec<String> {
    let mut pieces = Vec::new();
    let mut rest = text.trim();
    while rest.chars().count() > max {
        let limit = rest.char_indices().nth(max).map(|(i, _)| i).unwrap_or(rest.len());
        let cut = rest[..limit].rfind(char::is_whitespace).filter(|&i| i > 0).unwrap_or(limit);
        pieces.push(rest[..cut].trim_end().to_owned());
        rest = rest[cut..].trim_start();
    }
    if !rest.is_empty() {
        pieces.push(rest.to_owned());
    }
    pieces
}

/// The search's words: letters and digits, lower-cased, two characters or more, at most 16;
/// each is quoted in the FTS expression, so nothing a model writes is FTS syntax.
fn query_words(query: &str) -> Vec<String> {
    let mut words: Vec<String> = Vec::new();
    for w in query.split(|c: char| !c.is_alphanumeric()) {
        let w = w.to_lowercase();
        if w.chars().count() >= 2 && !words.contains(&w) {
            words.push(w);
        }
        if words.len() == 16 {
            break;
        }
    }
    words
}

/// `body` when it fits in `max` characters, else a window of it around the first word of the
/// search found in it, with "…" where it was cut.
pub fn snippet(body: &str, words: &[String], max: usize) -> String {
    let total = body.chars().count();
    if total <= max {
        return body.to_owned();
    }
    let lower: Vec<char> = body.chars().flat_map(char::to_lowercase).collect();
    // Lower-casing can change the length (rarely); fall back to the start then.
    let at = if lower.len() == total {
        let lower: String = lower.into_iter().collect();
        words.iter().filter_map(|w| lower.find(w.as_str())).min().map(|byte| lower[..byte].chars().count()).unwrap_or(0)
    } else {
        0
    };
    let room = max.saturating_sub(2);
    let start = at.saturating_sub(room / 4).min(total.saturating_sub(room));
    let end = (start + room).min(total);
    let mut out = String::new();
    if start > 0 {
        out.push('…');
    }
    out.extend(body.chars().skip(start).take(end - start));
    if end < total {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_is_cut_by_heading_and_paragraph() {
        let text = "Intro line.\n\n# House\n\n## Wifi\nNetwork: Home\nPassword: swordfish\n\n## Bins\nBlue on \
                    Monday.\n\nGreen on Thursday.\n# Phone numbers\nPlumber: 0123\n";
        let chunks = chunk(text, true);
        let got: Vec<(&str, &str)> = chunks.iter().map(|c| (c.heading.as_str(), c.body.as_str())).collect();
        assert_eq!(
            got,
            [
                ("", "Intro line."),
                ("House > Wifi", "Network: Home\nPassword: swordfish"),
                ("House > Bins", "Blue on Monday.\n\nGreen on Thursday."),
                ("Phone numbers", "Plumber: 0123"),
            ]
        );
        // Text files have no headings: a '#' line is text.
        let plain = chunk("# not a heading\nline\n\nnext paragraph", false);
        assert_eq!(plain, [Chunk { heading: String::new(), body: "# not a heading\nline\n\nnext paragraph".into() }]);
        assert_eq!(markdown_heading("#hashtag"), None);
        assert_eq!(markdown_heading("### Title ###"), Some((3, "Title".into())));
    }

    #[test]
    fn long_paragraphs_are_cut_at_words_and_small_ones_merged() {
        let long = "word ".repeat(400);
        let chunks = chunk(&long, true);
        assert!(chunks.len() >= 3, "{}", chunks.len());
        assert!(chunks.iter().all(|c| c.body.chars().count() <= CHUNK_CHARS && !c.body.ends_with(' ')));
        assert!(chunks.iter().all(|c| c.body.split_whitespace().all(|w| w == "word")));

        let many = (0..100).map(|i| format!("Paragraph {i}.")).collect::<Vec<_>>().join("\n\n");
        let chunks = chunk(&many, false);
        assert!(chunks.len() < 10, "{}", chunks.len());
        assert!(chunks.iter().all(|c| c.body.chars().count() <= CHUNK_CHARS));
    }

    #[test]
    fn snippets_centre_on_the_match_and_mark_cuts() {
        let body = format!("{} the password is swordfish {}", "a ".repeat(500), "b ".repeat(500));
        let s = snippet(&body, &["password".into()], 200);
        assert!(s.contains("the password is swordfish"), "{s}");
        assert!(s.starts_with('…') && s.ends_with('…'), "{s}");
        assert!(s.chars().count() <= 200);
        assert_eq!(snippet("short", &["x".into()], 200), "short");
        let s = snippet(&"é".repeat(300), &["zz".into()], 100);
        assert!(s.chars().count() <= 100 && s.ends_with('…'), "{s}");
    }

    #[test]
    fn search_ranks_bounds_and_ignores_fts_syntax() {
        let dir = tempfile::tempdir().unwrap();
        let kb = Knowledge::open(dir.path()).unwrap();
        fs::write(kb.dir().join("wifi.md"), "# Wifi\nNetwork: Home\nPassword: swordfish\n").unwrap();
        let big =
            (0..40).map(|i| format!("## Part {i}\n{}\nwifi note {i}\n", "filler ".repeat(100))).collect::<String>();
        fs::write(kb.dir().join("big.md"), big).unwrap();
        assert_eq!(kb.rescan_sync(&HashSet::new()).unwrap(), Scanned { indexed: 2, removed: 0, files: 2 });

        let hits = kb.search_sync("What is the WIFI password?").unwrap();
        assert_eq!(hits[0].file, "wifi.md");
        assert_eq!(hits[0].heading, "Wifi");
        assert!(hits[0].snippet.contains("swordfish"));
        assert!(hits.len() <= KB_MAX_HITS);
        assert!(hits.iter().map(|h| h.snippet.chars().count()).sum::<usize>() <= KB_MAX_CHARS);

        for q in ["\"", "AND OR NOT", "wifi*) OR (", "", "?!"] {
            kb.search_sync(q).unwrap();
        }
        assert!(kb.search_sync("zebra").unwrap().is_empty());
        // The README is the admin's, not knowledge; nothing else in an unchanged folder is read.
        assert!(kb.search_sync("boiler").unwrap().is_empty());
        assert_eq!(kb.rescan_sync(&HashSet::new()).unwrap(), Scanned { indexed: 0, removed: 0, files: 2 });
    }

    #[test]
    fn links_hidden_and_foreign_files_stay_out() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("secrets.json"), "token 12345:SECRET").unwrap();
        let kb = Knowledge::open(dir.path()).unwrap();
        assert_eq!(fs::metadata(kb.dir()).unwrap().permissions().mode() & 0o777, 0o700);
        assert!(fs::read_to_string(kb.dir().join(README)).unwrap().contains("Markdown"));
        std::os::unix::fs::symlink(dir.path().join("secrets.json"), kb.dir().join("secrets.md")).unwrap();
        fs::hard_link(dir.path().join("secrets.json"), kb.dir().join("hard.txt")).unwrap();
        fs::write(kb.dir().join(".hidden.md"), "SECRET").unwrap();
        fs::write(kb.dir().join("notes.pdf"), "SECRET").unwrap();
        fs::create_dir(kb.dir().join("school")).unwrap();
        fs::write(kb.dir().join("school/terms.txt"), "Autumn term starts 3 September.").unwrap();
        kb.rescan_sync(&HashSet::new()).unwrap();
        assert!(kb.search_sync("SECRET token").unwrap().is_empty());
        let hits = kb.search_sync("autumn term").unwrap();
        assert_eq!(hits.iter().map(|h| h.file.as_str()).collect::<Vec<_>>(), ["school/terms.txt"]);
    }

    /// The admin reads what not to put here: private things, secrets, instructions for the
    /// assistants (which read notes as quoted material) and text they have not read.
    #[test]
    fn the_readme_says_what_not_to_drop_here() {
        let dir = tempfile::tempdir().unwrap();
        let kb = Knowledge::open(dir.path()).unwrap();
        let readme = fs::read_to_string(kb.dir().join(README)).unwrap();
        for words in ["private", "passwords", "codes", "API keys", "not orders", "instructions", "--persona", "not read"] {
            assert!(readme.contains(words), "the README does not mention {words:?}:\n{readme}");
        }
    }

    #[test]
    fn a_damaged_index_is_rebuilt() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(DATABASE), "not a database at all, just some bytes that sqlite will refuse").unwrap();
        let kb = Knowledge::open(dir.path()).unwrap();
        fs::write(kb.dir().join("a.txt"), "hello household").unwrap();
        kb.rescan_sync(&HashSet::new()).unwrap();
        assert_eq!(kb.search_sync("household").unwrap().len(), 1);
    }
}
