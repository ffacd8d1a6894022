//! `gateway.sqlite`: members, bots, pairings, inbox, ledger, audit, settings, when reminders
//! are due. Never conversation history: an inbox row holds a message's text only while it is in
//! flight, and the text is cleared when the row is done; a reminder's text never comes here.
//!
//! rusqlite is synchronous, so the one connection lives behind a std `Mutex` and every use goes
//! through [`Store::call`], which runs on tokio's blocking pool — the async runtime never waits
//! on SQLite. WAL mode lets readers (a backup, `sqlite3` for support) look while we write.

use std::path::Path;
use std::sync::{Arc, Mutex};

use hearth_proto::control::Role;
use rusqlite::{Connection, OptionalExtension, params};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("the database is newer (schema {found}) than this Hearth understands (schema {known}); install the newer Hearth again")]
    TooNew { found: i64, known: i64 },
    #[error("database task failed: {0}")]
    Join(String),
}

/// Numbered, forward-only migrations. Index + 1 is the schema version (`PRAGMA user_version`).
/// Each one creates or changes the tables it names; never edit one that has shipped.
const MIGRATIONS: &[&str] = &[
    // 1: the foundation.
    r#"
    CREATE TABLE members (
        id               TEXT PRIMARY KEY,
        name             TEXT NOT NULL UNIQUE COLLATE NOCASE,
        persona          TEXT NOT NULL DEFAULT '',
        telegram_user_id INTEGER,
        chat_id          INTEGER,
        paired_at        INTEGER,
        created_at       INTEGER NOT NULL
    );
    -- One bot per member. next_offset is the getUpdates offset that confirms everything already
    -- committed to the inbox.
    CREATE TABLE bots (
        member_id   TEXT PRIMARY KEY REFERENCES members(id) ON DELETE CASCADE,
        bot_id      INTEGER NOT NULL UNIQUE,
        username    TEXT NOT NULL,
        next_offset INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE pairings (
        code       TEXT PRIMARY KEY,
        member_id  TEXT NOT NULL REFERENCES members(id) ON DELETE CASCADE,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        used_at    INTEGER,
        used_by    INTEGER
    );
    -- Every message update, committed before its offset is confirmed. (bot_id, update_id) makes
    -- redelivery after a crash harmless. `text` is cleared once the row is done.
    CREATE TABLE inbox (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        bot_id      INTEGER NOT NULL,
        member_id   TEXT NOT NULL,
        update_id   INTEGER NOT NULL,
        chat_id     INTEGER NOT NULL,
        chat_type   TEXT NOT NULL,
        from_id     INTEGER NOT NULL,
        from_name   TEXT NOT NULL,
        kind        TEXT NOT NULL,
        text        TEXT,
        sent_at     INTEGER NOT NULL,
        received_at INTEGER NOT NULL,
        state       TEXT NOT NULL DEFAULT 'pending',
        outcome     TEXT,
        UNIQUE (bot_id, update_id)
    );
    CREATE INDEX inbox_pending ON inbox(id) WHERE state = 'pending';
    -- One row per LLM call: reserved before the call, settled after.
    CREATE TABLE ledger (
        id                     INTEGER PRIMARY KEY AUTOINCREMENT,
        member_id              TEXT NOT NULL,
        chat_id                INTEGER,
        provider               TEXT NOT NULL,
        model                  TEXT NOT NULL,
        state                  TEXT NOT NULL,
        reserved_input_tokens  INTEGER NOT NULL,
        reserved_output_tokens INTEGER NOT NULL,
        input_tokens           INTEGER NOT NULL DEFAULT 0,
        output_tokens          INTEGER NOT NULL DEFAULT 0,
        cached_input_tokens    INTEGER NOT NULL DEFAULT 0,
        attempts               INTEGER NOT NULL DEFAULT 0,
        latency_ms             INTEGER,
        outcome                TEXT,
        created_at             INTEGER NOT NULL,
        settled_at             INTEGER
    );
    CREATE INDEX ledger_member_time ON ledger(member_id, created_at);
    CREATE TABLE audit (
        id        INTEGER PRIMARY KEY AUTOINCREMENT,
        at        INTEGER NOT NULL,
        actor     TEXT NOT NULL,
        action    TEXT NOT NULL,
        member_id TEXT,
        detail    TEXT NOT NULL DEFAULT ''
    );
    CREATE TABLE settings (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    -- When a stranger last got the short "this is a private bot" reply, per bot and user.
    CREATE TABLE stranger_replies (
        bot_id        INTEGER NOT NULL,
        user_id       INTEGER NOT NULL,
        last_reply_at INTEGER NOT NULL,
        PRIMARY KEY (bot_id, user_id)
    );
    "#,
    // 2: spend control — prices, caps, grants, notices, approval requests, cost in the ledger.
    r#"
    ALTER TABLE members ADD COLUMN is_admin INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE members ADD COLUMN cap_daily_micros INTEGER;
    ALTER TABLE members ADD COLUMN cap_monthly_micros INTEGER;
    -- A cheaper model to route down to when the member's own would exceed a cap.
    ALTER TABLE members ADD COLUMN fallback_model TEXT;
    -- Money is integer micro-USD everywhere. The period keys say which day and month (in the
    -- household's zone when reserved) the call is charged to.
    ALTER TABLE ledger ADD COLUMN reserved_micros INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE ledger ADD COLUMN cost_micros INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE ledger ADD COLUMN day_key TEXT;
    ALTER TABLE ledger ADD COLUMN month_key TEXT;
    CREATE INDEX ledger_day ON ledger(day_key);
    CREATE INDEX ledger_month ON ledger(month_key);
    -- Admin-set prices (micro-USD per million tokens); they override the shipped defaults.
    CREATE TABLE prices (
        model        TEXT PRIMARY KEY COLLATE NOCASE,
        input        INTEGER NOT NULL,
        output       INTEGER NOT NULL,
        cached_input INTEGER NOT NULL,
        set_at       INTEGER NOT NULL
    );
    -- Raises of one member's cap for one period only ("+$1 for today").
    CREATE TABLE cap_grants (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        member_id    TEXT NOT NULL REFERENCES members(id) ON DELETE CASCADE,
        kind         TEXT NOT NULL,
        period_key   TEXT NOT NULL,
        extra_micros INTEGER NOT NULL,
        granted_at   INTEGER NOT NULL,
        granted_by   TEXT NOT NULL
    );
    -- One-time messages already sent: the 80 % heads-up and the 100 % notice, per cap and period.
    CREATE TABLE notices (
        member_id  TEXT NOT NULL,
        kind       TEXT NOT NULL,
        period_key TEXT NOT NULL,
        percent    INTEGER NOT NULL,
        sent_at    INTEGER NOT NULL,
        PRIMARY KEY (member_id, kind, period_key, percent)
    );
    -- Questions put to the admin ("raise Ana's daily cap?") and how they were answered.
    CREATE TABLE approvals (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        member_id   TEXT NOT NULL REFERENCES members(id) ON DELETE CASCADE,
        kind        TEXT NOT NULL,
        period_key  TEXT NOT NULL,
        created_at  INTEGER NOT NULL,
        resolved_at INTEGER,
        resolution  TEXT
    );
    -- Button presses arrive as callback queries; they go through the inbox like messages.
    ALTER TABLE inbox ADD COLUMN callback_id TEXT;
    -- The Telegram message id (for a button press: the message the button was on).
    ALTER TABLE inbox ADD COLUMN message_id INTEGER;
    "#,
    // 3: member settings the admin changes from the app — age group, pause, own model.
    r#"
    -- 'adult', 'teen' or 'child': the worker's prompt adds age-appropriate guidance.
    ALTER TABLE members ADD COLUMN role TEXT NOT NULL DEFAULT 'adult';
    -- A paused member's messages reach no worker and no model.
    ALTER TABLE members ADD COLUMN paused INTEGER NOT NULL DEFAULT 0;
    -- The member's own model on the household's provider; NULL: the provider's model.
    ALTER TABLE members ADD COLUMN model TEXT;
    "#,
    // 4: reminders — when each member's reminders are due, never what they say (the text stays
    // in the member's own directory, with their worker).
    r#"
    -- The next instant of each upcoming reminder, as the member's worker last reported it.
    CREATE TABLE reminder_schedule (
        member_id   TEXT NOT NULL REFERENCES members(id) ON DELETE CASCADE,
        reminder_id INTEGER NOT NULL,
        due_at      INTEGER NOT NULL,  -- Unix seconds, UTC
        PRIMARY KEY (member_id, reminder_id)
    );
    CREATE INDEX reminder_schedule_due ON reminder_schedule(due_at);
    -- Occurrences that came due, committed before the worker is asked to deliver them: the
    -- inbox of reminders. The key makes taking the same occurrence twice harmless; a pending row
    -- is delivered after a restart.
    CREATE TABLE reminder_firings (
        member_id   TEXT NOT NULL REFERENCES members(id) ON DELETE CASCADE,
        reminder_id INTEGER NOT NULL,
        due_at      INTEGER NOT NULL,
        created_at  INTEGER NOT NULL,
        state       TEXT NOT NULL DEFAULT 'pending',
        outcome     TEXT,
        PRIMARY KEY (member_id, reminder_id, due_at)
    );
    CREATE INDEX reminder_firings_pending ON reminder_firings(created_at) WHERE state = 'pending';
    "#,
    // 5: quiet hours per member (role presets, `roles.rs`).
    r#"
    -- 'HH:MM-HH:MM' in the household's zone, may wrap midnight; NULL: no quiet hours. Members
    -- from before stay without: the child preset is applied when a member is added or made a
    -- child, not behind the admin's back.
    ALTER TABLE members ADD COLUMN quiet_hours TEXT;
    "#,
];

/// Schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// A cheap-to-clone handle to the gateway database.
#[derive(Clone)]
pub struct Store {
    // std Mutex: only ever locked inside `spawn_blocking`, never across an await.
    conn: Arc<Mutex<Connection>>,
}

impl Store {
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let mut conn = Connection::open(path)?;
        configure(&conn)?;
        migrate(&mut conn)?;
        Ok(Self { conn: Arc::new(Mutex::new(conn)) })
    }

    /// Runs `f` with the connection on the blocking pool.
    pub async fn call<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<R, StoreError> + Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            f(&mut guard)
        })
        .await
        .map_err(|e| StoreError::Join(e.to_string()))?
    }

    /// Runs `f` on the current thread. For start-up and tests only, where nothing else waits.
    pub fn call_sync<R>(&self, f: impl FnOnce(&mut Connection) -> Result<R, StoreError>) -> Result<R, StoreError> {
        let mut guard = self.conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut guard)
    }
}

fn configure(conn: &Connection) -> Result<(), StoreError> {
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(())
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let found: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::TooNew { found, known: SCHEMA_VERSION });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
    }
    Ok(())
}

pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------
// Members and bots

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRow {
    /// Insertion order (the row id): the order the admin added members in.
    pub seq: i64,
    pub id: String,
    pub name: String,
    pub persona: String,
    pub telegram_user_id: Option<i64>,
    pub chat_id: Option<i64>,
    pub created_at: i64,
    pub bot_id: i64,
    pub bot_username: String,
    pub next_offset: i64,
    /// Asked over Telegram when someone hits a cap; may use `/family`.
    pub is_admin: bool,
    /// Caps in micro-USD; `None` means no cap.
    pub cap_daily_micros: Option<u64>,
    pub cap_monthly_micros: Option<u64>,
    /// Cheaper model to route down to instead of refusing.
    pub fallback_model: Option<String>,
    /// Adult, teen or child: shapes the worker's prompt.
    pub role: Role,
    /// Messages are answered with a short note instead of reaching a worker.
    pub paused: bool,
    /// The member's own model on the household's provider; `None`: the provider's model.
    pub model: Option<String>,
    /// When the assistant rests (household zone); `None`: never.
    pub quiet_hours: Option<hearth_proto::control::QuietHours>,
}

const MEMBER_COLUMNS: &str = "m.rowid, m.id, m.name, m.persona, m.telegram_user_id, m.chat_id, m.created_at, \
                              b.bot_id, b.username, b.next_offset, m.is_admin, m.cap_daily_micros, \
                              m.cap_monthly_micros, m.fallback_model, m.role, m.paused, m.model, m.quiet_hours";

fn member_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<MemberRow> {
    Ok(MemberRow {
        seq: r.get(0)?,
        id: r.get(1)?,
        name: r.get(2)?,
        persona: r.get(3)?,
        telegram_user_id: r.get(4)?,
        chat_id: r.get(5)?,
        created_at: r.get(6)?,
        bot_id: r.get(7)?,
        bot_username: r.get(8)?,
        next_offset: r.get(9)?,
        is_admin: r.get(10)?,
        cap_daily_micros: r.get::<_, Option<i64>>(11)?.map(|v| v.max(0) as u64),
        cap_monthly_micros: r.get::<_, Option<i64>>(12)?.map(|v| v.max(0) as u64),
        fallback_model: r.get(13)?,
        // Only this code writes the column; anything else would be a hand edit, read as adult.
        role: r.get::<_, String>(14)?.parse().unwrap_or_default(),
        paused: r.get(15)?,
        model: r.get(16)?,
        // Written only by `set_member_quiet_hours`; a hand edit that does not parse reads as none.
        quiet_hours: r.get::<_, Option<String>>(17)?.and_then(|q| q.parse().ok()),
    })
}

pub fn list_members(conn: &Connection) -> Result<Vec<MemberRow>, StoreError> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {MEMBER_COLUMNS} FROM members m JOIN bots b ON b.member_id = m.id ORDER BY m.rowid"
    ))?;
    let rows = stmt.query_map([], member_from_row)?.collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Finds a member by id, or by name ignoring case.
pub fn find_member(conn: &Connection, key: &str) -> Result<Option<MemberRow>, StoreError> {
    let row = conn
        .query_row(
            &format!(
                "SELECT {MEMBER_COLUMNS} FROM members m JOIN bots b ON b.member_id = m.id \
                 WHERE m.id = ?1 OR m.name = ?1 COLLATE NOCASE ORDER BY m.id = ?1 DESC LIMIT 1"
            ),
            [key],
            member_from_row,
        )
        .optional()?;
    Ok(row)
}

pub fn name_taken(conn: &Connection, name: &str) -> Result<bool, StoreError> {
    Ok(conn.query_row("SELECT EXISTS(SELECT 1 FROM members WHERE name = ?1 COLLATE NOCASE)", [name], |r| r.get(0))?)
}

pub fn member_id_for_bot(conn: &Connection, bot_id: i64) -> Result<Option<String>, StoreError> {
    Ok(conn.query_row("SELECT member_id FROM bots WHERE bot_id = ?1", [bot_id], |r| r.get(0)).optional()?)
}

/// Inserts the member and their bot; returns the member's `seq`.
pub fn insert_member(conn: &mut Connection, m: &MemberRow) -> Result<i64, StoreError> {
    let tx = conn.transaction()?;
    tx.execute(
        "INSERT INTO members (id, name, persona, created_at, role, quiet_hours) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![m.id, m.name, m.persona, m.created_at, m.role.as_str(), m.quiet_hours.map(|q| q.to_string())],
    )?;
    let seq = tx.last_insert_rowid();
    tx.execute(
        "INSERT INTO bots (member_id, bot_id, username, next_offset) VALUES (?1, ?2, ?3, 0)",
        params![m.id, m.bot_id, m.bot_username],
    )?;
    tx.commit()?;
    Ok(seq)
}

/// Deletes the member (bot and pairings go with it) and closes their in-flight inbox rows so
/// no text of theirs stays behind.
pub fn delete_member(conn: &mut Connection, member_id: &str) -> Result<(), StoreError> {
    let tx = conn.transaction()?;
    tx.execute(
        "UPDATE inbox SET state = 'done', outcome = 'member_removed', text = NULL WHERE member_id = ?1 AND state = 'pending'",
        [member_id],
    )?;
    tx.execute("DELETE FROM members WHERE id = ?1", [member_id])?;
    tx.commit()?;
    Ok(())
}

/// The member's role, persona and own model (`None` in each: keep it as it is; for the model,
/// `Some(None)` means the household's).
pub fn update_member_settings(
    conn: &Connection,
    member_id: &str,
    role: Option<Role>,
    persona: Option<&str>,
    model: Option<Option<&str>>,
) -> Result<(), StoreError> {
    if let Some(role) = role {
        conn.execute("UPDATE members SET role = ?2 WHERE id = ?1", params![member_id, role.as_str()])?;
    }
    if let Some(persona) = persona {
        conn.execute("UPDATE members SET persona = ?2 WHERE id = ?1", params![member_id, persona])?;
    }
    if let Some(model) = model {
        conn.execute("UPDATE members SET model = ?2 WHERE id = ?1", params![member_id, model])?;
    }
    Ok(())
}

pub fn set_member_quiet_hours(
    conn: &Connection,
    member_id: &str,
    quiet: Option<hearth_proto::control::QuietHours>,
) -> Result<(), StoreError> {
    conn.execute("UPDATE members SET quiet_hours = ?2 WHERE id = ?1", params![member_id, quiet.map(|q| q.to_string())])?;
    Ok(())
}

pub fn set_member_paused(conn: &Connection, member_id: &str, paused: bool) -> Result<(), StoreError> {
    conn.execute("UPDATE members SET paused = ?2 WHERE id = ?1", params![member_id, paused])?;
    Ok(())
}

/// Points the member at another bot (or the same bot with a new token). The offset starts over
/// only when the bot changed: its update ids are another bot's.
pub fn replace_bot(conn: &Connection, member_id: &str, bot_id: i64, username: &str) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE bots SET next_offset = CASE WHEN bot_id = ?2 THEN next_offset ELSE 0 END, bot_id = ?2, username = ?3
         WHERE member_id = ?1",
        params![member_id, bot_id, username],
    )?;
    Ok(())
}

/// When each member last wrote (Unix seconds the gateway received it): messages from their paired
/// Telegram account only, never strangers'.
pub fn last_activity(conn: &Connection) -> Result<Vec<(String, i64)>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT i.member_id, MAX(i.received_at) FROM inbox i JOIN members m ON m.id = i.member_id
         WHERE i.from_id = m.telegram_user_id GROUP BY i.member_id",
    )?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

pub fn bind_telegram_user(conn: &Connection, member_id: &str, user_id: i64, chat_id: i64, at: i64) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE members SET telegram_user_id = ?2, chat_id = ?3, paired_at = ?4 WHERE id = ?1",
        params![member_id, user_id, chat_id, at],
    )?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Pairing codes

/// At most this many unused, unexpired codes per member; issuing another retires the oldest.
pub const MAX_PENDING_CODES: i64 = 3;

pub fn insert_pairing(conn: &mut Connection, member_id: &str, code: &str, now: i64, ttl_secs: i64) -> Result<(), StoreError> {
    let tx = conn.transaction()?;
    tx.execute(
        "DELETE FROM pairings WHERE member_id = ?1 AND used_at IS NULL AND code NOT IN (
             SELECT code FROM pairings WHERE member_id = ?1 AND used_at IS NULL AND expires_at > ?2
             ORDER BY created_at DESC, rowid DESC LIMIT ?3)",
        params![member_id, now, MAX_PENDING_CODES - 1],
    )?;
    tx.execute(
        "INSERT INTO pairings (code, member_id, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
        params![code, member_id, now, now + ttl_secs],
    )?;
    tx.commit()?;
    Ok(())
}

/// Uses a pairing code for `member_id` if it is valid: unused, unexpired, issued for that
/// member. Returns whether it was accepted. Single use is enforced in the same statement.
pub fn redeem_pairing(conn: &Connection, member_id: &str, code: &str, user_id: i64, now: i64) -> Result<bool, StoreError> {
    let n = conn.execute(
        "UPDATE pairings SET used_at = ?4, used_by = ?3
         WHERE code = ?1 AND member_id = ?2 AND used_at IS NULL AND expires_at > ?4",
        params![code, member_id, user_id, now],
    )?;
    Ok(n == 1)
}

// ---------------------------------------------------------------------------------------------
// Inbox

/// One message update as committed to the inbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxRow {
    pub id: i64,
    pub bot_id: i64,
    pub member_id: String,
    pub msg: NewMessage,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    Text,
    /// A photo, sticker, voice note…: nothing the assistant can read yet.
    Unsupported,
    /// An inline-button press; `text` holds the button's callback data.
    Callback,
}

impl MessageKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Unsupported => "unsupported",
            Self::Callback => "callback",
        }
    }
    fn parse(s: &str) -> Self {
        match s {
            "text" => Self::Text,
            "callback" => Self::Callback,
            _ => Self::Unsupported,
        }
    }
}

/// A message as extracted from an update (and as stored in the inbox).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    pub update_id: i64,
    pub chat_id: i64,
    pub chat_type: String,
    pub from_id: i64,
    pub from_name: String,
    pub kind: MessageKind,
    pub text: Option<String>,
    pub sent_at: i64,
    /// For a button press: the callback query to answer.
    pub callback_id: Option<String>,
    /// Telegram's message id; for a button press, the message the button was on.
    pub message_id: Option<i64>,
}

/// Commits a batch of updates for one bot and advances its offset, in one transaction: after it
/// returns, confirming the offset to Telegram can lose nothing. Returns the rows newly inserted
/// (duplicates of earlier deliveries are skipped).
pub fn commit_updates(
    conn: &mut Connection,
    member_id: &str,
    bot_id: i64,
    messages: &[NewMessage],
    next_offset: i64,
) -> Result<Vec<InboxRow>, StoreError> {
    let now = now_unix();
    let tx = conn.transaction()?;
    let mut inserted = Vec::new();
    {
        let mut stmt = tx.prepare(
            "INSERT OR IGNORE INTO inbox (bot_id, member_id, update_id, chat_id, chat_type, from_id, from_name, kind, text, sent_at, received_at, callback_id, message_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
        )?;
        for m in messages {
            let n = stmt.execute(params![
                bot_id, member_id, m.update_id, m.chat_id, m.chat_type, m.from_id, m.from_name,
                m.kind.as_str(), m.text, m.sent_at, now, m.callback_id, m.message_id
            ])?;
            if n == 1 {
                inserted.push(InboxRow { id: tx.last_insert_rowid(), bot_id, member_id: member_id.to_owned(), msg: m.clone() });
            }
        }
    }
    tx.execute(
        "UPDATE bots SET next_offset = MAX(next_offset, ?2) WHERE bot_id = ?1",
        params![bot_id, next_offset],
    )?;
    tx.commit()?;
    Ok(inserted)
}

/// Rows still waiting for an answer, oldest first: what a restarted gateway picks up again.
pub fn pending_inbox(conn: &Connection) -> Result<Vec<InboxRow>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT id, bot_id, member_id, update_id, chat_id, chat_type, from_id, from_name, kind, text, sent_at, callback_id, message_id
         FROM inbox WHERE state = 'pending' ORDER BY id",
    )?;
    let rows = stmt
        .query_map([], |r| {
            Ok(InboxRow {
                id: r.get(0)?,
                bot_id: r.get(1)?,
                member_id: r.get(2)?,
                msg: NewMessage {
                    update_id: r.get(3)?,
                    chat_id: r.get(4)?,
                    chat_type: r.get(5)?,
                    from_id: r.get(6)?,
                    from_name: r.get(7)?,
                    kind: MessageKind::parse(&r.get::<_, String>(8)?),
                    text: r.get(9)?,
                    sent_at: r.get(10)?,
                    callback_id: r.get(11)?,
                    message_id: r.get(12)?,
                },
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Marks rows finished and forgets their text.
pub fn finish_inbox(conn: &mut Connection, ids: &[i64], state: &str, outcome: &str) -> Result<(), StoreError> {
    let tx = conn.transaction()?;
    {
        let mut stmt = tx.prepare("UPDATE inbox SET state = ?2, outcome = ?3, text = NULL WHERE id = ?1")?;
        for id in ids {
            stmt.execute(params![id, state, outcome])?;
        }
    }
    tx.commit()?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Reminders

/// One occurrence of a member's reminder that came due: the key of a `reminder_firings` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueReminder {
    pub member_id: String,
    pub reminder_id: i64,
    pub due_at: i64,
}

/// Done firings are kept this long (their key stops a stale schedule row from firing twice).
const FIRINGS_KEPT_SECS: i64 = 35 * 86_400;

/// Replaces what is scheduled for `member_id` with `due` (the worker's whole upcoming list).
pub fn replace_reminder_schedule(
    conn: &mut Connection,
    member_id: &str,
    due: &[hearth_proto::worker::ReminderDue],
) -> Result<(), StoreError> {
    let tx = conn.transaction()?;
    tx.execute("DELETE FROM reminder_schedule WHERE member_id = ?1", [member_id])?;
    {
        let mut stmt =
            tx.prepare("INSERT OR REPLACE INTO reminder_schedule (member_id, reminder_id, due_at) VALUES (?1, ?2, ?3)")?;
        for d in due {
            stmt.execute(params![member_id, d.id, d.due_at])?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// Commits every scheduled occurrence due at or before `now` as a pending firing and takes it
/// off the schedule, in one transaction; returns the firings newly committed (an occurrence
/// committed before is skipped). The earliest instant still scheduled comes back too.
pub fn take_due_reminders(conn: &mut Connection, now: i64) -> Result<(Vec<DueReminder>, Option<i64>), StoreError> {
    let tx = conn.transaction()?;
    let due: Vec<DueReminder> = {
        let mut stmt = tx.prepare(
            "SELECT member_id, reminder_id, due_at FROM reminder_schedule WHERE due_at <= ?1 ORDER BY due_at, member_id",
        )?;
        stmt.query_map([now], |r| Ok(DueReminder { member_id: r.get(0)?, reminder_id: r.get(1)?, due_at: r.get(2)? }))?
            .collect::<Result<_, _>>()?
    };
    let mut fresh = Vec::new();
    for d in due {
        let n = tx.execute(
            "INSERT OR IGNORE INTO reminder_firings (member_id, reminder_id, due_at, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![d.member_id, d.reminder_id, d.due_at, now_unix()],
        )?;
        tx.execute(
            "DELETE FROM reminder_schedule WHERE member_id = ?1 AND reminder_id = ?2 AND due_at = ?3",
            params![d.member_id, d.reminder_id, d.due_at],
        )?;
        if n == 1 {
            fresh.push(d);
        }
    }
    if !fresh.is_empty() {
        tx.execute(
            "DELETE FROM reminder_firings WHERE state != 'pending' AND due_at < ?1",
            [now - FIRINGS_KEPT_SECS],
        )?;
    }
    let next: Option<i64> = tx.query_row("SELECT min(due_at) FROM reminder_schedule", [], |r| r.get(0))?;
    tx.commit()?;
    Ok((fresh, next))
}

/// Firings committed but not delivered: what a restarted gateway delivers first.
pub fn pending_firings(conn: &Connection) -> Result<Vec<DueReminder>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT member_id, reminder_id, due_at FROM reminder_firings WHERE state = 'pending' ORDER BY due_at, created_at",
    )?;
    let rows = stmt
        .query_map([], |r| Ok(DueReminder { member_id: r.get(0)?, reminder_id: r.get(1)?, due_at: r.get(2)? }))?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

pub fn finish_firing(conn: &Connection, f: &DueReminder, state: &str, outcome: &str) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE reminder_firings SET state = ?4, outcome = ?5 WHERE member_id = ?1 AND reminder_id = ?2 AND due_at = ?3",
        params![f.member_id, f.reminder_id, f.due_at, state, outcome],
    )?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Strangers

/// Records that a stranger is being answered now, unless they were answered within
/// `window_secs`. Returns whether to reply.
pub fn stranger_may_reply(conn: &Connection, bot_id: i64, user_id: i64, now: i64, window_secs: i64) -> Result<bool, StoreError> {
    let n = conn.execute(
        "INSERT INTO stranger_replies (bot_id, user_id, last_reply_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (bot_id, user_id) DO UPDATE SET last_reply_at = excluded.last_reply_at
         WHERE stranger_replies.last_reply_at <= ?3 - ?4",
        params![bot_id, user_id, now, window_secs],
    )?;
    Ok(n == 1)
}

// ---------------------------------------------------------------------------------------------
// Ledger

#[derive(Debug, Clone)]
pub struct LedgerReservation {
    pub member_id: String,
    pub chat_id: Option<i64>,
    pub provider: String,
    pub model: String,
    pub reserved_input_tokens: u64,
    pub reserved_output_tokens: u64,
    pub reserved_micros: u64,
    /// The day and month (household zone) the call is charged to.
    pub day_key: String,
    pub month_key: String,
}

pub fn ledger_reserve(conn: &Connection, r: &LedgerReservation, now: i64) -> Result<i64, StoreError> {
    conn.execute(
        "INSERT INTO ledger (member_id, chat_id, provider, model, state, reserved_input_tokens, reserved_output_tokens,
                             reserved_micros, day_key, month_key, created_at)
         VALUES (?1, ?2, ?3, ?4, 'reserved', ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            r.member_id, r.chat_id, r.provider, r.model, r.reserved_input_tokens as i64, r.reserved_output_tokens as i64,
            r.reserved_micros as i64, r.day_key, r.month_key, now
        ],
    )?;
    Ok(conn.last_insert_rowid())
}

#[derive(Debug, Clone)]
pub struct LedgerSettlement {
    pub model: String,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_input_tokens: u64,
    pub attempts: u32,
    pub latency_ms: u64,
    /// "ok", or a short error kind ("http_429", "timeout", …).
    pub outcome: String,
    pub cost_micros: u64,
}

pub fn ledger_settle(conn: &Connection, id: i64, s: &LedgerSettlement, now: i64) -> Result<(), StoreError> {
    let state = if s.outcome == "ok" { "settled" } else { "released" };
    conn.execute(
        "UPDATE ledger SET state = ?2, model = ?3, input_tokens = ?4, output_tokens = ?5, cached_input_tokens = ?6,
                attempts = ?7, latency_ms = ?8, outcome = ?9, settled_at = ?10, cost_micros = ?11 WHERE id = ?1",
        params![
            id, state, s.model, s.input_tokens as i64, s.output_tokens as i64, s.cached_input_tokens as i64,
            s.attempts, s.latency_ms as i64, s.outcome, now, s.cost_micros as i64
        ],
    )?;
    Ok(())
}

/// Releases reservations a crashed gateway left open, so they do not count against anyone.
pub fn ledger_release_stale(conn: &Connection, now: i64) -> Result<usize, StoreError> {
    Ok(conn.execute(
        "UPDATE ledger SET state = 'released', outcome = 'interrupted', settled_at = ?1 WHERE state = 'reserved'",
        [now],
    )?)
}

/// Calls and tokens per member since `since` (Unix seconds).
pub fn usage_since(conn: &Connection, since: i64) -> Result<Vec<(String, hearth_proto::control::DayUsage)>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT member_id, COUNT(*), COALESCE(SUM(input_tokens + cached_input_tokens), 0), COALESCE(SUM(output_tokens), 0),
                COALESCE(SUM(cost_micros), 0)
         FROM ledger WHERE created_at >= ?1 AND state != 'reserved' GROUP BY member_id",
    )?;
    let rows = stmt
        .query_map([since], |r| {
            Ok((
                r.get::<_, String>(0)?,
                hearth_proto::control::DayUsage {
                    calls: r.get::<_, i64>(1)? as u64,
                    input_tokens: r.get::<_, i64>(2)? as u64,
                    output_tokens: r.get::<_, i64>(3)? as u64,
                    cost_micros: r.get::<_, i64>(4)? as u64,
                },
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

// ---------------------------------------------------------------------------------------------
// Spend: member settings, prices, grants, notices, approvals, reports

pub fn set_member_caps(conn: &Connection, member_id: &str, daily: Option<u64>, monthly: Option<u64>) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE members SET cap_daily_micros = ?2, cap_monthly_micros = ?3 WHERE id = ?1",
        params![member_id, daily.map(|v| v as i64), monthly.map(|v| v as i64)],
    )?;
    Ok(())
}

pub fn set_member_admin(conn: &Connection, member_id: &str, admin: bool) -> Result<(), StoreError> {
    conn.execute("UPDATE members SET is_admin = ?2 WHERE id = ?1", params![member_id, admin])?;
    Ok(())
}

pub fn set_member_fallback(conn: &Connection, member_id: &str, model: Option<&str>) -> Result<(), StoreError> {
    conn.execute("UPDATE members SET fallback_model = ?2 WHERE id = ?1", params![member_id, model])?;
    Ok(())
}

/// Admin-set prices: (model, input, output, cached input), micro-USD per million tokens.
pub fn list_prices(conn: &Connection) -> Result<Vec<(String, u64, u64, u64)>, StoreError> {
    let mut stmt = conn.prepare("SELECT model, input, output, cached_input FROM prices ORDER BY set_at, model")?;
    let rows = stmt
        .query_map([], |r| {
            Ok((r.get(0)?, r.get::<_, i64>(1)? as u64, r.get::<_, i64>(2)? as u64, r.get::<_, i64>(3)? as u64))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

pub fn set_price(conn: &Connection, model: &str, input: u64, output: u64, cached: u64, now: i64) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO prices (model, input, output, cached_input, set_at) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (model) DO UPDATE SET input = excluded.input, output = excluded.output,
             cached_input = excluded.cached_input, set_at = excluded.set_at",
        params![model, input as i64, output as i64, cached as i64, now],
    )?;
    Ok(())
}

pub fn insert_grant(conn: &Connection, member_id: &str, kind: &str, period_key: &str, extra: u64, by: &str) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO cap_grants (member_id, kind, period_key, extra_micros, granted_at, granted_by) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![member_id, kind, period_key, extra as i64, now_unix(), by],
    )?;
    Ok(())
}

/// Grants for the given period keys: (member, kind, period key, extra micros).
pub fn grants_for(conn: &Connection, keys: &[&str]) -> Result<Vec<(String, String, String, u64)>, StoreError> {
    let mut out = Vec::new();
    let mut stmt = conn.prepare("SELECT member_id, kind, period_key, SUM(extra_micros) FROM cap_grants WHERE period_key = ?1 GROUP BY member_id, kind, period_key")?;
    for key in keys {
        let rows = stmt.query_map([key], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get::<_, i64>(3)? as u64)))?;
        for row in rows {
            out.push(row?);
        }
    }
    Ok(out)
}

/// Records a one-time notice; returns false if it was already sent.
pub fn insert_notice(conn: &Connection, member_id: &str, kind: &str, period_key: &str, percent: u8) -> Result<bool, StoreError> {
    let n = conn.execute(
        "INSERT OR IGNORE INTO notices (member_id, kind, period_key, percent, sent_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![member_id, kind, period_key, percent, now_unix()],
    )?;
    Ok(n == 1)
}

/// Opens an approval question unless one for the same member, cap and period exists already
/// (answered or not). Returns its id when a new one was opened.
pub fn open_approval(conn: &Connection, member_id: &str, kind: &str, period_key: &str) -> Result<Option<i64>, StoreError> {
    let exists: bool = conn.query_row(
        "SELECT EXISTS(SELECT 1 FROM approvals WHERE member_id = ?1 AND kind = ?2 AND period_key = ?3 AND (resolution IS NULL OR resolution = 'ignored'))",
        params![member_id, kind, period_key],
        |r| r.get(0),
    )?;
    if exists {
        return Ok(None);
    }
    conn.execute(
        "INSERT INTO approvals (member_id, kind, period_key, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![member_id, kind, period_key, now_unix()],
    )?;
    Ok(Some(conn.last_insert_rowid()))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approval {
    pub id: i64,
    pub member_id: String,
    pub kind: String,
    pub period_key: String,
    pub resolution: Option<String>,
}

/// Resolves an open approval; returns it as it was, or `None` if unknown. A second answer to the
/// same question changes nothing and returns the first resolution.
pub fn resolve_approval(conn: &mut Connection, id: i64, resolution: &str) -> Result<Option<Approval>, StoreError> {
    let tx = conn.transaction()?;
    let found = tx
        .query_row("SELECT id, member_id, kind, period_key, resolution FROM approvals WHERE id = ?1", [id], |r| {
            Ok(Approval { id: r.get(0)?, member_id: r.get(1)?, kind: r.get(2)?, period_key: r.get(3)?, resolution: r.get(4)? })
        })
        .optional()?;
    if let Some(a) = &found
        && a.resolution.is_none()
    {
        tx.execute("UPDATE approvals SET resolution = ?2, resolved_at = ?3 WHERE id = ?1", params![id, resolution, now_unix()])?;
    }
    tx.commit()?;
    Ok(found)
}

/// Spend already settled in the given day and month, per member: what the budget starts from.
pub fn spent_in(conn: &Connection, day_key: &str, month_key: &str) -> Result<(Vec<(String, u64)>, Vec<(String, u64)>), StoreError> {
    let sum = |col: &str, key: &str| -> Result<Vec<(String, u64)>, StoreError> {
        let mut stmt = conn.prepare(&format!(
            "SELECT member_id, COALESCE(SUM(cost_micros), 0) FROM ledger WHERE {col} = ?1 AND state = 'settled' GROUP BY member_id"
        ))?;
        let rows = stmt.query_map([key], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))?.collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    };
    Ok((sum("day_key", day_key)?, sum("month_key", month_key)?))
}

/// Per-member totals for a month: (member, calls, input, cached, output, cost micros).
pub fn month_totals(conn: &Connection, month_key: &str) -> Result<Vec<(String, u64, u64, u64, u64, u64)>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT member_id, COUNT(*), COALESCE(SUM(input_tokens), 0), COALESCE(SUM(cached_input_tokens), 0),
                COALESCE(SUM(output_tokens), 0), COALESCE(SUM(cost_micros), 0)
         FROM ledger WHERE month_key = ?1 AND state != 'reserved' GROUP BY member_id",
    )?;
    let rows = stmt
        .query_map([month_key], |r| {
            Ok((
                r.get(0)?,
                r.get::<_, i64>(1)? as u64,
                r.get::<_, i64>(2)? as u64,
                r.get::<_, i64>(3)? as u64,
                r.get::<_, i64>(4)? as u64,
                r.get::<_, i64>(5)? as u64,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Household spend per day of a month: (day key, cost micros), in day order.
pub fn month_per_day(conn: &Connection, month_key: &str) -> Result<Vec<(String, u64)>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT day_key, COALESCE(SUM(cost_micros), 0) FROM ledger WHERE month_key = ?1 AND state = 'settled'
         GROUP BY day_key ORDER BY day_key",
    )?;
    let rows = stmt.query_map([month_key], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))?.collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// One ledger row as exported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerExportRow {
    pub id: i64,
    pub created_at: i64,
    pub day_key: String,
    pub member_id: String,
    pub member_name: Option<String>,
    pub chat_id: Option<i64>,
    pub provider: String,
    pub model: String,
    pub input_tokens: u64,
    pub cached_input_tokens: u64,
    pub output_tokens: u64,
    pub cost_micros: u64,
    pub latency_ms: Option<u64>,
    pub attempts: u64,
    pub outcome: String,
}

pub fn month_rows(conn: &Connection, month_key: &str) -> Result<Vec<LedgerExportRow>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT l.id, l.created_at, COALESCE(l.day_key, ''), l.member_id, m.name, l.chat_id, l.provider, l.model,
                l.input_tokens, l.cached_input_tokens, l.output_tokens, l.cost_micros, l.latency_ms, l.attempts,
                COALESCE(l.outcome, l.state)
         FROM ledger l LEFT JOIN members m ON m.id = l.member_id WHERE l.month_key = ?1 ORDER BY l.id",
    )?;
    let rows = stmt
        .query_map([month_key], |r| {
            Ok(LedgerExportRow {
                id: r.get(0)?,
                created_at: r.get(1)?,
                day_key: r.get(2)?,
                member_id: r.get(3)?,
                member_name: r.get(4)?,
                chat_id: r.get(5)?,
                provider: r.get(6)?,
                model: r.get(7)?,
                input_tokens: r.get::<_, i64>(8)? as u64,
                cached_input_tokens: r.get::<_, i64>(9)? as u64,
                output_tokens: r.get::<_, i64>(10)? as u64,
                cost_micros: r.get::<_, i64>(11)? as u64,
                latency_ms: r.get::<_, Option<i64>>(12)?.map(|v| v as u64),
                attempts: r.get::<_, i64>(13)? as u64,
                outcome: r.get(14)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

// ---------------------------------------------------------------------------------------------
// Audit and settings

pub fn audit(conn: &Connection, actor: &str, action: &str, member_id: Option<&str>, detail: &str) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO audit (at, actor, action, member_id, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![now_unix(), actor, action, member_id, detail],
    )?;
    Ok(())
}

pub fn get_setting(conn: &Connection, key: &str) -> Result<Option<String>, StoreError> {
    Ok(conn.query_row("SELECT value FROM settings WHERE key = ?1", [key], |r| r.get(0)).optional()?)
}

pub fn set_setting(conn: &Connection, key: &str, value: &str) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO settings (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        params![key, value],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("g.sqlite")).unwrap();
        (dir, s)
    }

    fn member(id: &str, bot_id: i64) -> MemberRow {
        MemberRow {
            seq: 0,
            id: id.into(),
            name: id.to_uppercase(),
            persona: String::new(),
            telegram_user_id: None,
            chat_id: None,
            created_at: 1,
            bot_id,
            bot_username: format!("{id}_bot"),
            next_offset: 0,
            is_admin: false,
            cap_daily_micros: None,
            cap_monthly_micros: None,
            fallback_model: None,
            role: Role::Adult,
            paused: false,
            model: None,
            quiet_hours: None,
        }
    }

    fn msg(update_id: i64, text: &str) -> NewMessage {
        NewMessage {
            update_id,
            chat_id: 7,
            chat_type: "private".into(),
            from_id: 7,
            from_name: "Ana".into(),
            kind: MessageKind::Text,
            text: Some(text.into()),
            sent_at: 1,
            callback_id: None,
            message_id: Some(update_id),
        }
    }

    #[test]
    fn inbox_dedupes_redelivered_updates_and_advances_offset() {
        let (_d, s) = store();
        s.call_sync(|c| {
            insert_member(c, &member("ana", 11))?;
            let first = commit_updates(c, "ana", 11, &[msg(5, "a"), msg(6, "b")], 7)?;
            assert_eq!(first.len(), 2);
            // Telegram redelivers 6 (offset was never confirmed) plus a new 7.
            let again = commit_updates(c, "ana", 11, &[msg(6, "b"), msg(7, "c")], 8)?;
            assert_eq!(again.iter().map(|r| r.msg.update_id).collect::<Vec<_>>(), vec![7]);
            assert_eq!(find_member(c, "ana")?.unwrap().next_offset, 8);
            // The offset never goes backwards.
            commit_updates(c, "ana", 11, &[], 3)?;
            assert_eq!(find_member(c, "ANA")?.unwrap().next_offset, 8);
            let pending = pending_inbox(c)?;
            assert_eq!(pending.len(), 3);
            finish_inbox(c, &[pending[0].id], "done", "replied")?;
            let left = pending_inbox(c)?;
            assert_eq!(left.len(), 2);
            let text: Option<String> = c.query_row("SELECT text FROM inbox WHERE id = ?1", [pending[0].id], |r| r.get(0))?;
            assert_eq!(text, None, "finished rows keep no text");
            Ok(())
        })
        .unwrap();
    }

    #[test]
    fn pairing_codes_are_single_use_member_bound_and_expire() {
        let (_d, s) = store();
        s.call_sync(|c| {
            insert_member(c, &member("ana", 11))?;
            insert_member(c, &member("bo", 12))?;
            insert_pairing(c, "ana", "AAAA2222", 100, 3600)?;
            assert!(!redeem_pairing(c, "bo", "AAAA2222", 9, 101)?, "another member's code");
            assert!(!redeem_pairing(c, "ana", "AAAA2222", 9, 3700)?, "expired");
            assert!(redeem_pairing(c, "ana", "AAAA2222", 9, 200)?);
            assert!(!redeem_pairing(c, "ana", "AAAA2222", 9, 201)?, "single use");
            Ok(())
        })
        .unwrap();
    }

    #[test]
    fn at_most_three_codes_pending_per_member() {
        let (_d, s) = store();
        s.call_sync(|c| {
            insert_member(c, &member("ana", 11))?;
            for (i, code) in ["C1", "C2", "C3", "C4"].iter().enumerate() {
                insert_pairing(c, "ana", code, 100 + i as i64, 3600)?;
            }
            assert!(!redeem_pairing(c, "ana", "C1", 9, 200)?, "oldest retired");
            for code in ["C2", "C3", "C4"] {
                assert!(redeem_pairing(c, "ana", code, 9, 200)?, "{code}");
            }
            Ok(())
        })
        .unwrap();
    }

    #[test]
    fn strangers_get_one_reply_per_window() {
        let (_d, s) = store();
        s.call_sync(|c| {
            assert!(stranger_may_reply(c, 1, 99, 1000, 3600)?);
            assert!(!stranger_may_reply(c, 1, 99, 1500, 3600)?);
            assert!(stranger_may_reply(c, 2, 99, 1500, 3600)?, "other bot");
            assert!(stranger_may_reply(c, 1, 99, 4600, 3600)?);
            Ok(())
        })
        .unwrap();
    }

    #[test]
    fn removing_a_member_clears_their_in_flight_text() {
        let (_d, s) = store();
        s.call_sync(|c| {
            insert_member(c, &member("ana", 11))?;
            commit_updates(c, "ana", 11, &[msg(5, "private words")], 6)?;
            delete_member(c, "ana")?;
            assert!(pending_inbox(c)?.is_empty());
            let n: i64 = c.query_row("SELECT COUNT(*) FROM inbox WHERE text IS NOT NULL", [], |r| r.get(0))?;
            assert_eq!(n, 0);
            assert!(find_member(c, "ana")?.is_none());
            Ok(())
        })
        .unwrap();
    }

    #[test]
    fn member_settings_and_bot_replacement() {
        let (_d, s) = store();
        s.call_sync(|c| {
            let mut m = member("ana", 11);
            m.role = Role::Child;
            insert_member(c, &m)?;
            assert_eq!(find_member(c, "ana")?.unwrap().role, Role::Child);
            update_member_settings(c, "ana", Some(Role::Teen), Some("likes chess"), Some(Some("small-model")))?;
            set_member_paused(c, "ana", true)?;
            let got = find_member(c, "ana")?.unwrap();
            assert_eq!(
                (got.role, got.persona.as_str(), got.model.as_deref(), got.paused),
                (Role::Teen, "likes chess", Some("small-model"), true)
            );
            update_member_settings(c, "ana", None, None, Some(None))?;
            let got = find_member(c, "ana")?.unwrap();
            assert_eq!((got.role, got.persona.as_str(), got.model), (Role::Teen, "likes chess", None), "None keeps");

            commit_updates(c, "ana", 11, &[msg(5, "a")], 6)?;
            replace_bot(c, "ana", 11, "ana_bot")?;
            assert_eq!(find_member(c, "ana")?.unwrap().next_offset, 6, "same bot, new token: offset kept");
            replace_bot(c, "ana", 21, "ana_new_bot")?;
            let got = find_member(c, "ana")?.unwrap();
            assert_eq!((got.bot_id, got.bot_username.as_str(), got.next_offset), (21, "ana_new_bot", 0));

            // Last activity counts the paired member's messages only.
            assert_eq!(last_activity(c)?, vec![]);
            bind_telegram_user(c, "ana", 7, 7, 1)?;
            let mut stranger = msg(9, "hi");
            stranger.from_id = 99;
            commit_updates(c, "ana", 21, &[stranger], 10)?;
            let seen = last_activity(c)?;
            assert_eq!(seen.len(), 1);
            assert_eq!(seen[0].0, "ana");
            Ok(())
        })
        .unwrap();
    }

    #[test]
    fn a_newer_schema_is_refused_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.sqlite");
        {
            let c = Connection::open(&path).unwrap();
            c.pragma_update(None, "user_version", 99).unwrap();
        }
        let err = Store::open(&path).err().unwrap().to_string();
        assert!(err.contains("newer"), "{err}");
    }
}
