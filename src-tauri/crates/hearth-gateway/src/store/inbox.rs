//! The `inbox` table: every message update, committed before its offset is confirmed.

use rusqlite::{Connection, params};

use super::{StoreError, now_unix};

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
