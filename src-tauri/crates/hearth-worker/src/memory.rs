//! What the assistant remembers about its member: `<member_dir>/memory.sqlite`, one row per
//! fact plus an FTS5 index over the text.
//!
//! Facts are saved by the model (the `remember` tool), found by it (`recall`) and brought into
//! every turn's prompt ([`Memory::relevant`]), and removed by it (`forget`) or by the member
//! (`/forget`). The file sits in the member's own directory, so one member's memories cannot
//! reach another member's prompt: no other worker can open it, and nothing is shared.
//!
//! Like the history, this is synchronous rusqlite. The agent reads it inline for the prompt;
//! tools open their own connection on a blocking thread so a per-tool timeout can abandon them.
//! Memory text is never logged at info: it is what the member told their assistant.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};

use crate::db;

/// File name of the memory database inside the member directory.
pub const FILE_NAME: &str = "memory.sqlite";

/// Longest fact kept, in characters: a fact is a sentence, not a document.
pub const MAX_FACT_CHARS: usize = 500;

/// Most facts kept per member; past it `remember` asks the model to forget something first.
pub const MAX_FACTS: usize = 2000;

#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    #[error("cannot create {path}: {source}")]
    Create { path: PathBuf, source: std::io::Error },
    #[error("cannot open memory database {path}: {source}")]
    Open { path: PathBuf, source: rusqlite::Error },
    #[error("memory database is at schema version {found}, newer than this worker's {known}; upgrade Hearth")]
    TooNew { found: u32, known: u32 },
    #[error("memory database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

// Schema: numbered, forward-only migrations, as in `history.rs`.

/// One row per fact. `created_at` orders "most recent".
const MEMORIES_1: &str = "
    CREATE TABLE memories (
        id          INTEGER PRIMARY KEY,
        text        TEXT NOT NULL,
        created_at  INTEGER NOT NULL  -- Unix seconds, worker clock
    );
    CREATE VIRTUAL TABLE memories_fts USING fts5 (
        text, content = 'memories', content_rowid = 'id', tokenize = 'unicode61 remove_diacritics 2'
    );
    CREATE TRIGGER memories_ai AFTER INSERT ON memories BEGIN
        INSERT INTO memories_fts (rowid, text) VALUES (new.id, new.text);
    END;
    CREATE TRIGGER memories_ad AFTER DELETE ON memories BEGIN
        INSERT INTO memories_fts (memories_fts, rowid, text) VALUES ('delete', old.id, old.text);
    END;
";

const MIGRATIONS: &[&str] = &[MEMORIES_1];

/// One remembered fact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fact {
    pub id: i64,
    pub text: String,
    pub created_at: i64,
}

#[derive(Debug)]
pub struct Memory {
    conn: Connection,
}

/// What [`Memory::remember`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Saved {
    New(i64),
    /// The same fact (ignoring case and surrounding space) was already kept.
    Known(i64),
    /// [`MAX_FACTS`] are kept already.
    Full,
}

impl Memory {
    /// Opens (creating, 0600) `<member_dir>/memory.sqlite` and migrates it.
    pub fn open(member_dir: &Path) -> Result<Self, MemoryError> {
        let path = member_dir.join(FILE_NAME);
        let mut conn = db::open(&path, Some(Duration::from_secs(5))).map_err(db::db_error!(MemoryError, path))?;
        db::migrate(&mut conn, MIGRATIONS).map_err(db::db_error!(MemoryError, path))?;
        Ok(Self { conn })
    }

    /// Keeps `text` (already trimmed and within [`MAX_FACT_CHARS`] — the tool checks).
    pub fn remember(&mut self, text: &str, now: i64) -> Result<Saved, MemoryError> {
        let tx = self.conn.transaction()?;
        let known: Option<i64> = tx
            .query_row("SELECT id FROM memories WHERE lower(trim(text)) = lower(trim(?1))", [text], |r| r.get(0))
            .optional()?;
        if let Some(id) = known {
            return Ok(Saved::Known(id));
        }
        let count: i64 = tx.query_row("SELECT count(*) FROM memories", [], |r| r.get(0))?;
        if count as usize >= MAX_FACTS {
            return Ok(Saved::Full);
        }
        tx.execute("INSERT INTO memories (text, created_at) VALUES (?1, ?2)", params![text, now])?;
        let id = tx.last_insert_rowid();
        tx.commit()?;
        Ok(Saved::New(id))
    }

    /// Facts matching any word of `query`, best match first (FTS5 rank), at most `limit`.
    pub fn search(&self, query: &str, limit: usize) -> Result<Vec<Fact>, MemoryError> {
        let Some(expr) = fts_query(query, " OR ") else { return Ok(Vec::new()) };
        self.select(
            "SELECT m.id, m.text, m.created_at FROM memories_fts f JOIN memories m ON m.id = f.rowid
             WHERE memories_fts MATCH ?1 ORDER BY f.rank LIMIT ?2",
            params![expr, limit as i64],
        )
    }

    /// The newest `limit` facts, newest first.
    pub fn recent(&self, limit: usize) -> Result<Vec<Fact>, MemoryError> {
        self.select(
            "SELECT id, text, created_at FROM memories ORDER BY created_at DESC, id DESC LIMIT ?1",
            params![limit as i64],
        )
    }

    /// Every fact, oldest first (what `/memory` lists).
    pub fn all(&self) -> Result<Vec<Fact>, MemoryError> {
        self.select("SELECT id, text, created_at FROM memories ORDER BY created_at, id", [])
    }

    /// What the prompt carries for a turn whose new text is `text`: up to `matching` facts that
    /// share words with it (best first), then up to `recent` of the newest not already chosen.
    pub fn relevant(&self, text: &str, matching: usize, recent: usize) -> Result<Vec<Fact>, MemoryError> {
        let mut out = self.search(text, matching)?;
        let found = out.len();
        for fact in self.recent(recent + found)? {
            if out.len() == found + recent {
                break;
            }
            if !out[..found].iter().any(|f| f.id == fact.id) {
                out.push(fact);
            }
        }
        Ok(out)
    }

    /// Forgets one fact by id; returns it if it was kept.
    pub fn forget_id(&mut self, id: i64) -> Result<Option<Fact>, MemoryError> {
        let fact = self
            .select("SELECT id, text, created_at FROM memories WHERE id = ?1", [id])?
            .into_iter()
            .next();
        self.conn.execute("DELETE FROM memories WHERE id = ?1", [id])?;
        Ok(fact)
    }

    /// Forgets every fact containing all words of `query` (so "Miso vet" does not forget every
    /// fact about a vet); returns what was forgotten.
    pub fn forget_matching(&mut self, query: &str) -> Result<Vec<Fact>, MemoryError> {
        let Some(expr) = fts_query(query, " AND ") else { return Ok(Vec::new()) };
        let tx = self.conn.transaction()?;
        let facts = select(
            &tx,
            "SELECT m.id, m.text, m.created_at FROM memories_fts f JOIN memories m ON m.id = f.rowid
             WHERE memories_fts MATCH ?1 ORDER BY m.id",
            params![expr],
        )?;
        for f in &facts {
            tx.execute("DELETE FROM memories WHERE id = ?1", [f.id])?;
        }
        tx.commit()?;
        Ok(facts)
    }

    /// Forgets everything; returns how many facts there were.
    pub fn forget_all(&mut self) -> Result<usize, MemoryError> {
        let tx = self.conn.transaction()?;
        let n = tx.execute("DELETE FROM memories", [])?;
        // Rebuild so no deleted text lingers in the index's pages.
        tx.execute("INSERT INTO memories_fts (memories_fts) VALUES ('rebuild')", [])?;
        tx.commit()?;
        self.conn.execute_batch("VACUUM")?;
        Ok(n)
    }

    fn select(&self, sql: &str, params: impl rusqlite::Params) -> Result<Vec<Fact>, MemoryError> {
        select(&self.conn, sql, params)
    }
}

fn select(conn: &Connection, sql: &str, params: impl rusqlite::Params) -> Result<Vec<Fact>, MemoryError> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map(params, |r| Ok(Fact { id: r.get(0)?, text: r.get(1)?, created_at: r.get(2)? }))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Words too common to say what a message is about.
const STOP_WORDS: &[&str] = &[
    "the", "and", "for", "are", "but", "not", "you", "your", "all", "any", "can", "had", "her", "was", "one",
    "our", "out", "has", "him", "his", "how", "its", "may", "now", "see", "who", "did", "yes", "she", "too",
    "use", "that", "with", "have", "this", "will", "what", "when", "from", "they", "been", "were", "would",
    "there", "their", "about", "which", "could", "should", "does", "just", "like", "into", "than", "then",
    "them", "some", "also", "please", "tell", "know", "remember", "me", "my", "is", "it", "to", "of", "in",
    "on", "at", "do", "be", "we", "an", "or", "if", "so", "no", "by", "up",
];

/// An FTS5 expression from free text: its words (letters and digits, two characters or more,
/// common words dropped, a plural "s" dropped, at most 32), each quoted — so nothing the member
/// types is FTS syntax — and prefix-matched from three characters ("cat" finds "cats"), joined by
/// `op`. `None` when no word is left.
pub fn fts_query(text: &str, op: &str) -> Option<String> {
    let mut words: Vec<String> = Vec::new();
    for word in text.split(|c: char| !c.is_alphanumeric()) {
        let mut word = word.to_lowercase();
        // The crudest stemming: "cats" looks for "cat…", which finds "cat" and "cats" alike.
        if word.chars().count() > 3 && word.ends_with('s') && !word.ends_with("ss") {
            word.pop();
        }
        if word.chars().count() < 2 || STOP_WORDS.contains(&word.as_str()) || words.contains(&word) {
            continue;
        }
        words.push(word);
        if words.len() == 32 {
            break;
        }
    }
    let terms: Vec<String> = words
        .iter()
        .map(|w| if w.chars().count() >= 3 { format!("\"{w}\"*") } else { format!("\"{w}\"") })
        .collect();
    (!terms.is_empty()).then(|| terms.join(op))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn fts5_is_available_in_the_bundled_sqlite() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE VIRTUAL TABLE t USING fts5 (x)").unwrap();
    }

    #[test]
    fn queries_are_words_never_syntax() {
        assert_eq!(fts_query("What's my cat's name?", " OR ").unwrap(), "\"cat\"* OR \"name\"*");
        assert_eq!(fts_query("cats glass", " OR ").unwrap(), "\"cat\"* OR \"glass\"*");
        assert_eq!(fts_query("NEAR(\"a\" OR b) AND -x*", " AND ").as_deref(), Some("\"near\"*"));
        assert_eq!(fts_query("the and ? !", " OR "), None);
        assert_eq!(fts_query("Ünïcödé 日本", " OR ").unwrap(), "\"ünïcödé\"* OR \"日本\"");
    }

    #[test]
    fn remember_search_forget() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = Memory::open(dir.path()).unwrap();
        let Saved::New(miso) = m.remember("Sam's cat is called Miso", 10).unwrap() else { panic!() };
        assert_eq!(m.remember("  sam's CAT is called miso ", 11).unwrap(), Saved::Known(miso));
        m.remember("Sam's dentist is Dr Park, on Tuesdays", 12).unwrap();
        m.remember("Favourite colour: green", 13).unwrap();

        let found = m.search("what are cats like?", 5).unwrap();
        assert_eq!(found.iter().map(|f| f.id).collect::<Vec<_>>(), vec![miso]);
        // Relevant first, then the newest others.
        let r = m.relevant("my cat", 3, 1).unwrap();
        assert_eq!(r.iter().map(|f| f.text.as_str()).collect::<Vec<_>>(), ["Sam's cat is called Miso", "Favourite colour: green"]);

        // All words must match to forget.
        assert!(m.forget_matching("cat dentist").unwrap().is_empty());
        let gone = m.forget_matching("dentist").unwrap();
        assert_eq!(gone.len(), 1);
        assert!(m.search("dentist", 5).unwrap().is_empty());
        assert_eq!(m.forget_id(miso).unwrap().map(|f| f.id), Some(miso));
        assert_eq!(m.all().unwrap().len(), 1);
        assert_eq!(m.forget_all().unwrap(), 1);
        assert!(m.all().unwrap().is_empty() && m.search("green", 5).unwrap().is_empty());

        // Survives reopening, file is private.
        m.remember("Tea, no sugar", 20).unwrap();
        drop(m);
        let m = Memory::open(dir.path()).unwrap();
        assert_eq!(m.all().unwrap()[0].text, "Tea, no sugar");
        let mode = std::fs::metadata(dir.path().join(FILE_NAME)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
