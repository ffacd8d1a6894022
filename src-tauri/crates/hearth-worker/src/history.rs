//! The member's conversation history: `<member_dir>/history.sqlite`.
//!
//! Conversations are kept per Telegram chat; `/new` starts a new one and the old ones stay on
//! disk. User messages carry the gateway's inbox id (unique), which is what makes a replayed
//! turn recognisable: see [`History::begin_turn`].
//!
//! rusqlite is synchronous and this module is called straight from the worker's async code.
//! That is deliberate: a worker serves one member, one turn at a time, on a current-thread
//! runtime whose only other job is waiting on its socket, so a blocking SQLite call stalls
//! nothing that could otherwise run. Move it to `spawn_blocking` if the worker ever does work
//! concurrently with a turn (reminders, tools that stream).

use std::path::{Path, PathBuf};

use hearth_proto::llm::ChatMessage;
use hearth_proto::worker::IncomingMessage;
use rusqlite::{Connection, OptionalExtension, Transaction, params};

use crate::db;

/// File name of the history database inside the member directory.
pub const FILE_NAME: &str = "history.sqlite";

/// Why the history could not be read or written. The agent turns any of these into a failed
/// turn (never a panic); `TooNew` is split out because it needs a different fix (upgrade the
/// worker) than a damaged file.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("cannot create {path}: {source}")]
    Create { path: PathBuf, source: std::io::Error },
    #[error("cannot open history database {path}: {source}")]
    Open { path: PathBuf, source: rusqlite::Error },
    #[error(
        "history database is at schema version {found}, newer than this worker's {known}; \
         upgrade Hearth rather than letting an old worker touch it"
    )]
    TooNew { found: u32, known: u32 },
    #[error("history database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

// ---------------------------------------------------------------------------------------------
// Schema. Migrations are numbered and forward only: `PRAGMA user_version` is the number of the
// last one applied. Never edit a shipped step; add a new one next to the table it changes and
// append it to `MIGRATIONS`.

/// One row per conversation. A chat's current conversation is its newest row; `/new` adds a
/// row, so older conversations stay on disk (later: searchable memory).
const CONVERSATIONS_1: &str = "
    CREATE TABLE conversations (
        id          INTEGER PRIMARY KEY,
        chat_id     INTEGER NOT NULL,
        started_at  INTEGER NOT NULL  -- Unix seconds, worker clock
    );
    CREATE INDEX conversations_by_chat ON conversations (chat_id, id);
";

/// Every message the member sent and every reply the assistant gave, in order (`id`).
/// `inbox_id` is set on user messages only and is unique: the gateway's inbox row id, used to
/// recognise a replayed turn. `reply_to` is set on assistant messages only: the id of the newest
/// user message the reply answered, so a replay can find *its* reply and not a later one.
const MESSAGES_1: &str = "
    CREATE TABLE messages (
        id               INTEGER PRIMARY KEY,
        conversation_id  INTEGER NOT NULL REFERENCES conversations (id),
        role             TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
        text             TEXT NOT NULL,
        created_at       INTEGER NOT NULL,  -- Unix seconds, worker clock
        inbox_id         INTEGER UNIQUE,
        reply_to         INTEGER REFERENCES messages (id),
        CHECK ((role = 'user') = (inbox_id IS NOT NULL)),
        CHECK ((role = 'assistant') = (reply_to IS NOT NULL))
    );
    CREATE INDEX messages_by_conversation ON messages (conversation_id, id);
    CREATE INDEX messages_by_reply_to ON messages (reply_to);
";

/// A running summary of a conversation's older messages, written when they no longer fit the
/// prompt (`context.rs`). `summary_through` is the id of the newest message it covers: only
/// messages after it are read back as history. A new conversation (`/new`) starts without one.
const SUMMARIES_3: &str = "
    ALTER TABLE conversations ADD COLUMN summary TEXT;
    ALTER TABLE conversations ADD COLUMN summary_through INTEGER NOT NULL DEFAULT 0;
";

/// Applied in order; entry `i` brings the schema to version `i + 1`.
const MIGRATIONS: &[&str] = &[CONVERSATIONS_1, MESSAGES_1, SUMMARIES_3];

// ---------------------------------------------------------------------------------------------

/// The one open connection to the member's history. The worker is its only user.
#[derive(Debug)]
pub struct History {
    conn: Connection,
}

/// What [`History::begin_turn`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prepared {
    /// Every message of the turn is stored and was already answered: send this stored reply
    /// again instead of asking the model (and paying) twice.
    Answered { reply: String },
    /// The turn's messages are stored (now or by an earlier, unanswered attempt); ask the model.
    Ask {
        /// Conversation the turn's messages belong to, where the reply goes.
        conversation_id: i64,
        /// Newest user message of the turn; recorded as the reply's `reply_to`.
        reply_to: i64,
        /// The conversation before the turn's first message, oldest first, capped as described
        /// on [`History::begin_turn`]. May start with an assistant message or hold consecutive
        /// same-role messages (an unanswered earlier turn); the prompt builder normalises.
        /// Only messages after the conversation's summary.
        earlier: Vec<ChatMessage>,
        /// The history id of each message in `earlier`, same order.
        earlier_ids: Vec<i64>,
        /// The running summary of the conversation's older messages, if it has one.
        summary: Option<String>,
    },
}

impl History {
    /// Opens (creating if needed) `<member_dir>/history.sqlite` and brings its schema up to
    /// date. The file is created 0600 here even though the spawner sets umask 077: a member's
    /// history must not depend on someone remembering the umask. SQLite gives the `-wal` and
    /// `-shm` files the main file's mode.
    pub fn open(member_dir: &Path) -> Result<Self, HistoryError> {
        let path = member_dir.join(FILE_NAME);
        let mut conn = db::open(&path, None).map_err(db::db_error!(HistoryError, path))?;
        // Conversations and their messages are linked; keep SQLite checking it.
        conn.pragma_update(None, "foreign_keys", true)
            .map_err(|source| HistoryError::Open { path: path.clone(), source })?;
        db::migrate(&mut conn, MIGRATIONS).map_err(db::db_error!(HistoryError, path))?;
        Ok(Self { conn })
    }

    /// Stores a chat turn's messages and says whether the model still has to be asked.
    ///
    /// - None stored yet: all are added to the chat's current conversation (started if the chat
    ///   has none).
    /// - All stored and a reply recorded for the newest of them: [`Prepared::Answered`]. The
    ///   gateway crashed after the worker answered but before the reply went out.
    /// - Some or all stored, no reply: the missing ones are added to the conversation that holds
    ///   the stored ones, nothing is inserted twice, and the model is asked.
    ///
    /// `earlier` is read newest first and stops once it holds more than `earlier_bytes` bytes of
    /// text: anything older could not fit in the prompt anyway, and a long conversation should
    /// not be read whole for every turn.
    pub fn begin_turn(
        &mut self,
        chat_id: i64,
        messages: &[IncomingMessage],
        now: i64,
        earlier_bytes: usize,
    ) -> Result<Prepared, HistoryError> {
        let tx = self.conn.transaction()?;
        let mut stored: Vec<(i64, i64)> = Vec::new(); // (message id, conversation id)
        let mut missing: Vec<&IncomingMessage> = Vec::new();
        for m in messages {
            let row = tx
                .query_row("SELECT id, conversation_id FROM messages WHERE inbox_id = ?1", [m.inbox_id], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()?;
            match row {
                Some(row) => stored.push(row),
                None => missing.push(m),
            }
        }

        if missing.is_empty()
            && let Some(newest) = stored.iter().map(|&(id, _)| id).max()
            && let Some(reply) = tx
                .query_row("SELECT text FROM messages WHERE reply_to = ?1 ORDER BY id LIMIT 1", [newest], |r| {
                    r.get::<_, String>(0)
                })
                .optional()?
        {
            return Ok(Prepared::Answered { reply });
        }

        let conversation_id = match stored.iter().min() {
            Some(&(_, conversation)) => conversation,
            None => current_conversation(&tx, chat_id, now)?,
        };
        let mut ids: Vec<i64> = stored.iter().map(|&(id, _)| id).collect();
        for m in missing {
            tx.execute(
                "INSERT INTO messages (conversation_id, role, text, created_at, inbox_id)
                 VALUES (?1, 'user', ?2, ?3, ?4)",
                params![conversation_id, m.text, now, m.inbox_id],
            )?;
            ids.push(tx.last_insert_rowid());
        }
        let first = ids.iter().copied().min().unwrap_or(i64::MAX);
        let reply_to = ids.iter().copied().max().unwrap_or(0);
        let (summary, through): (Option<String>, i64) = tx.query_row(
            "SELECT summary, summary_through FROM conversations WHERE id = ?1",
            [conversation_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let (earlier_ids, earlier) = read_before(&tx, conversation_id, through, first, earlier_bytes)?.into_iter().unzip();
        tx.commit()?;
        Ok(Prepared::Ask { conversation_id, reply_to, earlier, earlier_ids, summary })
    }

    /// The text stored for the member's message from inbox row `inbox_id`, if it is stored: a
    /// replayed turn finds its attachments already kept in `files/` and uses the line written
    /// then, instead of keeping them a second time.
    pub fn stored_text(&self, inbox_id: i64) -> Result<Option<String>, HistoryError> {
        Ok(self.conn.query_row("SELECT text FROM messages WHERE inbox_id = ?1", [inbox_id], |r| r.get(0)).optional()?)
    }

    /// Records the assistant's reply to a turn prepared by [`History::begin_turn`].
    pub fn record_reply(
        &mut self,
        conversation_id: i64,
        reply_to: i64,
        text: &str,
        now: i64,
    ) -> Result<(), HistoryError> {
        self.conn.execute(
            "INSERT INTO messages (conversation_id, role, text, created_at, reply_to)
             VALUES (?1, 'assistant', ?2, ?3, ?4)",
            params![conversation_id, text, now, reply_to],
        )?;
        Ok(())
    }

    /// Replaces the conversation's running summary: `text` now covers every message up to and
    /// including `through`.
    pub fn set_summary(&mut self, conversation_id: i64, text: &str, through: i64) -> Result<(), HistoryError> {
        self.conn.execute(
            "UPDATE conversations SET summary = ?2, summary_through = ?3 WHERE id = ?1",
            params![conversation_id, text, through],
        )?;
        Ok(())
    }

    /// Starts a fresh conversation in `chat_id` (the member sent `/new`). When the current
    /// conversation is still empty it is reused, so a repeated or replayed `/new` does not pile
    /// up empty rows. Returns the conversation id.
    pub fn new_conversation(&mut self, chat_id: i64, now: i64) -> Result<i64, HistoryError> {
        let tx = self.conn.transaction()?;
        let current = latest_conversation(&tx, chat_id)?;
        if let Some(id) = current {
            let empty: bool =
                tx.query_row("SELECT NOT EXISTS (SELECT 1 FROM messages WHERE conversation_id = ?1)", [id], |r| {
                    r.get(0)
                })?;
            if empty {
                tx.commit()?;
                return Ok(id);
            }
        }
        let id = insert_conversation(&tx, chat_id, now)?;
        tx.commit()?;
        Ok(id)
    }
}

fn latest_conversation(tx: &Transaction<'_>, chat_id: i64) -> rusqlite::Result<Option<i64>> {
    tx.query_row("SELECT id FROM conversations WHERE chat_id = ?1 ORDER BY id DESC LIMIT 1", [chat_id], |r| r.get(0))
        .optional()
}

fn insert_conversation(tx: &Transaction<'_>, chat_id: i64, now: i64) -> rusqlite::Result<i64> {
    tx.execute("INSERT INTO conversations (chat_id, started_at) VALUES (?1, ?2)", params![chat_id, now])?;
    Ok(tx.last_insert_rowid())
}

fn current_conversation(tx: &Transaction<'_>, chat_id: i64, now: i64) -> rusqlite::Result<i64> {
    match latest_conversation(tx, chat_id)? {
        Some(id) => Ok(id),
        None => insert_conversation(tx, chat_id, now),
    }
}

/// Messages of `conversation_id` after message `after` and older than message `before`, with
/// their ids, oldest first, read newest first until more than `max_bytes` of text has been
/// collected.
fn read_before(
    tx: &Transaction<'_>,
    conversation_id: i64,
    after: i64,
    before: i64,
    max_bytes: usize,
) -> rusqlite::Result<Vec<(i64, ChatMessage)>> {
    let mut stmt = tx.prepare(
        "SELECT role, text, id FROM messages WHERE conversation_id = ?1 AND id > ?2 AND id < ?3 ORDER BY id DESC",
    )?;
    let mut rows = stmt.query(params![conversation_id, after, before])?;
    let mut out = Vec::new();
    let mut bytes = 0usize;
    while bytes <= max_bytes
        && let Some(row) = rows.next()?
    {
        let assistant = row.get_ref(0)?.as_str()? == "assistant";
        let content: String = row.get(1)?;
        bytes += content.len();
        let id: i64 = row.get(2)?;
        out.push((id, if assistant { ChatMessage::assistant(content) } else { ChatMessage::user(content) }));
    }
    out.reverse();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(inbox_id: i64, text: &str) -> IncomingMessage {
        IncomingMessage { inbox_id, text: text.into(), sent_at: 0, attachment: None }
    }

    fn ask(p: Prepared) -> (i64, i64, Vec<ChatMessage>) {
        match p {
            Prepared::Ask { conversation_id, reply_to, earlier, .. } => (conversation_id, reply_to, earlier),
            other => panic!("expected Ask, got {other:?}"),
        }
    }

    #[test]
    fn reply_is_found_for_its_own_turn_only() {
        let dir = tempfile::tempdir().unwrap();
        let mut h = History::open(dir.path()).unwrap();
        // Turn 1 fails (no reply), turn 2 is answered.
        let (_, _, _) = ask(h.begin_turn(7, &[msg(1, "one")], 0, 1000).unwrap());
        let (c2, r2, earlier) = ask(h.begin_turn(7, &[msg(2, "two")], 0, 1000).unwrap());
        assert_eq!(earlier, vec![ChatMessage::user("one")]);
        h.record_reply(c2, r2, "answer two", 0).unwrap();
        // Replaying turn 2 returns its reply; replaying turn 1 must not return turn 2's reply.
        assert_eq!(
            h.begin_turn(7, &[msg(2, "two")], 0, 1000).unwrap(),
            Prepared::Answered { reply: "answer two".into() }
        );
        let (_, _, earlier) = ask(h.begin_turn(7, &[msg(1, "one")], 0, 1000).unwrap());
        assert!(earlier.is_empty());
    }

    #[test]
    fn partial_replay_inserts_only_the_missing_message() {
        let dir = tempfile::tempdir().unwrap();
        let mut h = History::open(dir.path()).unwrap();
        let (c, r1, _) = ask(h.begin_turn(7, &[msg(1, "one")], 0, 1000).unwrap());
        let (c_again, r2, earlier) = ask(h.begin_turn(7, &[msg(1, "one"), msg(2, "two")], 0, 1000).unwrap());
        assert_eq!(c, c_again);
        assert!(r2 > r1);
        assert!(earlier.is_empty());
        let count: i64 = h.conn.query_row("SELECT count(*) FROM messages", [], |r| r.get(0)).unwrap();
        assert_eq!(count, 2);
    }

    #[test]
    fn earlier_is_capped_by_bytes_newest_kept() {
        let dir = tempfile::tempdir().unwrap();
        let mut h = History::open(dir.path()).unwrap();
        for i in 0..10 {
            let (c, r, _) = ask(h.begin_turn(7, &[msg(i, "0123456789")], 0, 1000).unwrap());
            h.record_reply(c, r, "abcdefghij", 0).unwrap();
        }
        let (_, _, earlier) = ask(h.begin_turn(7, &[msg(99, "new")], 0, 25).unwrap());
        // Reads until more than 25 bytes are held: three messages of ten bytes.
        assert_eq!(earlier.len(), 3);
        assert_eq!(earlier.last().unwrap(), &ChatMessage::assistant("abcdefghij"));
    }

    #[test]
    fn summary_hides_what_it_covers_and_a_new_conversation_has_none() {
        let dir = tempfile::tempdir().unwrap();
        let mut h = History::open(dir.path()).unwrap();
        let mut last = 0;
        for i in 0..3 {
            let (c, r, _) = ask(h.begin_turn(7, &[msg(i, &format!("q{i}"))], 0, 1000).unwrap());
            h.record_reply(c, r, &format!("a{i}"), 0).unwrap();
            last = r;
        }
        let Prepared::Ask { conversation_id, earlier_ids, summary, .. } = h.begin_turn(7, &[msg(10, "x")], 0, 1000).unwrap()
        else {
            panic!()
        };
        assert_eq!((earlier_ids.len(), summary), (6, None));
        // The summary covers the first two exchanges (through the second question's reply).
        h.set_summary(conversation_id, "They talked about q0 and q1.", earlier_ids[3]).unwrap();
        let Prepared::Ask { earlier, summary, .. } = h.begin_turn(7, &[msg(11, "y")], 0, 1000).unwrap() else { panic!() };
        assert_eq!(summary.as_deref(), Some("They talked about q0 and q1."));
        assert_eq!(earlier[0], ChatMessage::user("q2"));
        assert!(last > 0);
        h.new_conversation(7, 0).unwrap();
        let Prepared::Ask { earlier, summary, .. } = h.begin_turn(7, &[msg(12, "z")], 0, 1000).unwrap() else { panic!() };
        assert!(earlier.is_empty() && summary.is_none());
    }

    #[test]
    fn new_conversation_reuses_an_empty_one() {
        let dir = tempfile::tempdir().unwrap();
        let mut h = History::open(dir.path()).unwrap();
        let a = h.new_conversation(7, 0).unwrap();
        assert_eq!(h.new_conversation(7, 0).unwrap(), a);
        let (c, _, _) = ask(h.begin_turn(7, &[msg(1, "hi")], 0, 1000).unwrap());
        assert_eq!(c, a);
        let b = h.new_conversation(7, 0).unwrap();
        assert_ne!(a, b);
        // Other chats are separate.
        assert_ne!(h.new_conversation(8, 0).unwrap(), b);
    }

    #[test]
    fn reopening_keeps_schema_and_refuses_newer() {
        let dir = tempfile::tempdir().unwrap();
        drop(History::open(dir.path()).unwrap());
        let h = History::open(dir.path()).unwrap();
        let v: u32 = h.conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
        assert_eq!(v, MIGRATIONS.len() as u32);
        h.conn.pragma_update(None, "user_version", 99).unwrap();
        drop(h);
        let err = History::open(dir.path()).unwrap_err();
        assert!(matches!(err, HistoryError::TooNew { found: 99, .. }), "{err}");
    }
}
