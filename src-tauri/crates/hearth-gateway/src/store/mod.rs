//! `gateway.sqlite`: members, bots, pairings, inbox, ledger, audit, settings, when reminders
//! are due. Never conversation history: an inbox row holds a message's text only while it is in
//! flight, and the text is cleared when the row is done; a reminder's text never comes here.
//!
//! rusqlite is synchronous, so the one connection lives behind a mutex and every use goes
//! through [`Store::call`], which runs on tokio's blocking pool — the async runtime never waits
//! on SQLite. WAL mode lets readers (a backup, `sqlite3` for support) look while we write.
//!
//! This file holds the handle and the migrations; the functions live one file per table group —
//! `members.rs` (members and bots), `alerts.rs` (what the admins were told about), `pairing.rs`, `inbox.rs`, `reminders.rs`, `strangers.rs`,
//! `ledger.rs` (and the reports read from it), `spend.rs` (caps, prices, grants, notices,
//! approvals), `household.rs` (the household bot, its admins' chats, the groups) and
//! `settings.rs` (audit and settings) — and are all re-exported here, so a caller
//! writes `store::list_members` whichever file it is in.

use std::path::Path;
use std::sync::Arc;

use parking_lot::Mutex;
use rusqlite::Connection;

mod alerts;
mod household;
mod inbox;
mod ledger;
mod members;
mod pairing;
mod reminders;
mod settings;
mod spend;
mod strangers;
#[cfg(test)]
mod tests;

// One flat `store::` namespace for callers: the files split the tables, not the API.
pub use alerts::*;
pub use household::*;
pub use inbox::*;
pub use ledger::*;
pub use members::*;
pub use pairing::*;
pub use reminders::*;
pub use settings::*;
pub use spend::*;
pub use strangers::*;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error(
        "the database is newer (schema {found}) than this Hearth understands (schema {known}); install the newer Hearth again"
    )]
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
    // 6: media — voice notes, photos and documents (#15), and what each ledger row paid for.
    r#"
    -- What a message carried besides text, as JSON: the Telegram file to fetch (`file_id`, kept
    -- so a restart mid-download fetches it again), its size, duration or pixels, media type,
    -- name and album (`media_group_id`). NULL for text. Never the file's bytes.
    ALTER TABLE inbox ADD COLUMN media TEXT;
    -- 'chat' (a completion) or 'speech_in' (a transcription, which counts `audio_seconds`).
    ALTER TABLE ledger ADD COLUMN kind TEXT NOT NULL DEFAULT 'chat';
    ALTER TABLE ledger ADD COLUMN audio_seconds INTEGER NOT NULL DEFAULT 0;
    -- Images the model was shown in this call (each reserved by its token cost).
    ALTER TABLE ledger ADD COLUMN images INTEGER NOT NULL DEFAULT 0;
    "#,
    // 7: voice replies (#15) — when each member is answered in voice, and what speaking cost.
    r#"
    -- 'never', 'when_spoken' or 'always' (hearth_proto's VoiceReplies). Everyone starts with
    -- 'when_spoken': a voice note is answered in voice once a speech-out service is in force.
    ALTER TABLE members ADD COLUMN voice_replies TEXT NOT NULL DEFAULT 'when_spoken';
    -- Characters of text a 'speech_out' row had spoken (0 for every other kind).
    ALTER TABLE ledger ADD COLUMN characters INTEGER NOT NULL DEFAULT 0;
    "#,
    // 8: whether a member sees replies as they are written (#16).
    r#"
    -- 1: drafts in the member's private chat while the model writes (`core/stream.rs`); 0: the
    -- finished reply only. On for everyone, members from before included.
    ALTER TABLE members ADD COLUMN streaming INTEGER NOT NULL DEFAULT 1;
    "#,
    // 9: the admin away from the closet (#18) — alerts to admins' phones, pauses that end — and
    // prompt caching (#19).
    r#"
    -- What an admin is told over Telegram: 'all' (every alert and its "fixed" line),
    -- 'important' (a bot that stopped working, the provider down, the disk nearly full, a failed
    -- backup) or 'off'. Read only for admins.
    ALTER TABLE members ADD COLUMN alerts TEXT NOT NULL DEFAULT 'all';
    -- A pause that ends by itself (Unix seconds, UTC); NULL: until resumed. Only meaningful
    -- while `paused` is 1.
    ALTER TABLE members ADD COLUMN paused_until INTEGER;
    -- Conditions the admins were told about, one row per condition: while it lasts
    -- (`cleared_at` NULL) and after it cleared, so a restart neither repeats an alert nor loses
    -- its "fixed" line. `key` names the condition: 'bot:<member id>', 'provider', 'disk',
    -- 'backup', 'unclean_stop', ….
    CREATE TABLE alerts (
        key        TEXT PRIMARY KEY,
        raised_at  INTEGER NOT NULL,
        detail     TEXT NOT NULL DEFAULT '',
        told_at    INTEGER,
        cleared_at INTEGER,
        cleared_told_at INTEGER
    );
    -- Prompt caching (#19): tokens a call wrote into the provider's prompt cache (Anthropic's
    -- `cache_creation_input_tokens`), and their price per million (micro-USD); NULL: the
    -- shipped default for the model.
    ALTER TABLE ledger ADD COLUMN cache_write_tokens INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE prices ADD COLUMN cache_write INTEGER;
    "#,
    // 10: the household bot and the family groups (#17).
    r#"
    -- The household's one shared bot (its token is a secret, `household/bot`). At most one row.
    -- Its inbox rows carry the reserved member id 'household' (`HOUSEHOLD_ID`): the speaker is
    -- decided when the row is routed, and a stranger's row has no member at all.
    CREATE TABLE household_bot (
        id          INTEGER PRIMARY KEY CHECK (id = 1),
        bot_id      INTEGER NOT NULL UNIQUE,
        username    TEXT NOT NULL,
        next_offset INTEGER NOT NULL DEFAULT 0,
        set_at      INTEGER NOT NULL
    );
    -- Admins' private chats with the household bot (they sent /start there): where alerts and
    -- approvals may go. Forgotten with the bot, and with the member.
    CREATE TABLE household_admin_chats (
        member_id  TEXT PRIMARY KEY REFERENCES members(id) ON DELETE CASCADE,
        chat_id    INTEGER NOT NULL,
        started_at INTEGER NOT NULL
    );
    -- Group chats the household bot was added to or heard from. 'pending' until the admin
    -- decides: 'allowed' (answers mentions) or 'refused' (silent for good).
    CREATE TABLE groups (
        chat_id    INTEGER PRIMARY KEY,
        title      TEXT NOT NULL DEFAULT '',
        state      TEXT NOT NULL DEFAULT 'pending',
        present    INTEGER NOT NULL DEFAULT 1,
        first_seen INTEGER NOT NULL,
        decided_at INTEGER,
        decided_by TEXT
    );
    -- A group message's context as JSON (`store::GroupInfo`: the group's title, who it mentions,
    -- whose message it replies to); NULL in private chats. Cleared with the text.
    ALTER TABLE inbox ADD COLUMN chat_info TEXT;
    "#,
];

/// Schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// A cheap-to-clone handle to the gateway database.
#[derive(Clone)]
pub struct Store {
    // Only ever locked inside `spawn_blocking`, never across an await. parking_lot's does not
    // poison: a panic in one query does not make the database unusable for the rest.
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
            let mut guard = conn.lock();
            f(&mut guard)
        })
        .await
        .map_err(|e| StoreError::Join(e.to_string()))?
    }

    /// Runs `f` on the current thread. For start-up and tests only, where nothing else waits.
    pub fn call_sync<R>(&self, f: impl FnOnce(&mut Connection) -> Result<R, StoreError>) -> Result<R, StoreError> {
        let mut guard = self.conn.lock();
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
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}
