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
    /// A voice note; its [`Media`] names the file, which is transcribed before the turn.
    Voice,
    /// A music or audio file, transcribed like a voice note.
    Audio,
    /// A photo (one size of it, see `telegram::extract`); `text` is its caption.
    Photo,
    /// A file sent as a document; `text` is its caption.
    Document,
    /// A sticker, video, location…: nothing the assistant can read.
    Unsupported,
    /// An inline-button press; `text` holds the button's callback data.
    Callback,
    /// The member pressed Stop on a draft (`stopped_message_generation`); `text` holds the
    /// draft's id. Never a turn: it stops the running one (`core/stream.rs`).
    Stop,
    /// The household bot's own membership in a group changed (`my_chat_member`): `text` holds
    /// its new status (`member`, `administrator`, `left`, `kicked`…). Never a turn.
    Membership,
}

impl MessageKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Voice => "voice",
            Self::Audio => "audio",
            Self::Photo => "photo",
            Self::Document => "document",
            Self::Unsupported => "unsupported",
            Self::Callback => "callback",
            Self::Stop => "stop",
            Self::Membership => "membership",
        }
    }
    fn parse(s: &str) -> Self {
        match s {
            "text" => Self::Text,
            "voice" => Self::Voice,
            "audio" => Self::Audio,
            "photo" => Self::Photo,
            "document" => Self::Document,
            "callback" => Self::Callback,
            "stop" => Self::Stop,
            "membership" => Self::Membership,
            _ => Self::Unsupported,
        }
    }

    /// Whether a message of this kind carries a file the turn fetches first.
    pub fn has_media(self) -> bool {
        matches!(self, Self::Voice | Self::Audio | Self::Photo | Self::Document)
    }
}

/// What a message carried besides text, kept in `inbox.media` as JSON: enough to fetch the file
/// (again, after a restart mid-download) and to describe it, never its bytes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Media {
    /// Telegram's id for the file, for `getFile`; valid for at least an hour.
    pub file_id: String,
    /// Telegram's size in bytes, when it says: checked against the limits before downloading.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// A voice note's or audio file's length as Telegram reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_secs: Option<u32>,
    /// A photo's pixels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    /// What the sender's app says the file is (`audio/ogg`, `application/pdf`…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The name it was sent under (documents, audio files), as the sender wrote it: cleaned
    /// before it names anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
    /// Telegram's album id: the parts of one album become one turn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_group_id: Option<String>,
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
    /// The file a voice note, audio file, photo or document carried.
    pub media: Option<Media>,
    /// In a group chat: its title, who the message mentions and whose message it replies to.
    pub group: Option<GroupInfo>,
}

/// What routing a group message needs beyond its text, kept in `inbox.chat_info` as JSON so a
/// restarted gateway routes it the same way.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GroupInfo {
    /// The group's title as Telegram sent it.
    #[serde(default)]
    pub title: String,
    /// `@username`s the message mentions (`mention` entities), lower case, without the `@`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mentions: Vec<String>,
    /// Users mentioned by id (`text_mention` entities: users without a username).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mentioned_ids: Vec<i64>,
    /// The author of the message this one replies to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to_user: Option<i64>,
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
            "INSERT OR IGNORE INTO inbox (bot_id, member_id, update_id, chat_id, chat_type, from_id, from_name, kind, text, sent_at, received_at, callback_id, message_id, media, chat_info)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
        )?;
        for m in messages {
            let media = m.media.as_ref().map(|d| serde_json::to_string(d).expect("plain fields always serialize"));
            let group = m.group.as_ref().map(|g| serde_json::to_string(g).expect("plain fields always serialize"));
            let n = stmt.execute(params![
                bot_id, member_id, m.update_id, m.chat_id, m.chat_type, m.from_id, m.from_name,
                m.kind.as_str(), m.text, m.sent_at, now, m.callback_id, m.message_id, media, group
            ])?;
            if n == 1 {
                inserted.push(InboxRow { id: tx.last_insert_rowid(), bot_id, member_id: member_id.to_owned(), msg: m.clone() });
            }
        }
    }
    // A member's bot or the household bot: whichever has this id.
    tx.execute(
        "UPDATE bots SET next_offset = MAX(next_offset, ?2) WHERE bot_id = ?1",
        params![bot_id, next_offset],
    )?;
    tx.execute(
        "UPDATE household_bot SET next_offset = MAX(next_offset, ?2) WHERE bot_id = ?1",
        params![bot_id, next_offset],
    )?;
    tx.commit()?;
    Ok(inserted)
}

/// When each member's messages arrived (unix seconds), for those received in `[from, to)`:
/// `(member_id, received_at)`. Only the times, never the text; button taps and /stop are not
/// messages the member wrote.
pub fn message_times(conn: &Connection, from: i64, to: i64) -> Result<Vec<(String, i64)>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT member_id, received_at FROM inbox
         WHERE received_at >= ?1 AND received_at < ?2 AND kind NOT IN ('callback', 'stop')
         ORDER BY received_at",
    )?;
    let rows = stmt.query_map([from, to], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Rows still waiting for an answer, oldest first: what a restarted gateway picks up again.
pub fn pending_inbox(conn: &Connection) -> Result<Vec<InboxRow>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT id, bot_id, member_id, update_id, chat_id, chat_type, from_id, from_name, kind, text, sent_at, callback_id, message_id, media, chat_info
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
                    // Unreadable media (a newer build's field shapes) reads as none: the row is
                    // then answered as a message Hearth cannot read, not lost.
                    media: r.get::<_, Option<String>>(13)?.and_then(|j| serde_json::from_str(&j).ok()),
                    // Likewise: an unreadable context reads as none, and the row as unaddressed.
                    group: r.get::<_, Option<String>>(14)?.and_then(|j| serde_json::from_str(&j).ok()),
                },
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Which of `ids` are still pending.
pub fn pending_among(conn: &Connection, ids: &[i64]) -> Result<std::collections::HashSet<i64>, StoreError> {
    let mut stmt = conn.prepare("SELECT state = 'pending' FROM inbox WHERE id = ?1")?;
    let mut out = std::collections::HashSet::new();
    for id in ids {
        let pending: Option<bool> = stmt.query_row([id], |r| r.get(0)).map(Some).or_else(|e| match e {
            rusqlite::Error::QueryReturnedNoRows => Ok(None),
            e => Err(e),
        })?;
        if pending == Some(true) {
            out.insert(*id);
        }
    }
    Ok(out)
}

/// Marks rows finished and forgets their text and media.
pub fn finish_inbox(conn: &mut Connection, ids: &[i64], state: &str, outcome: &str) -> Result<(), StoreError> {
    let tx = conn.transaction()?;
    {
        let mut stmt = tx.prepare("UPDATE inbox SET state = ?2, outcome = ?3, text = NULL, media = NULL, chat_info = NULL WHERE id = ?1")?;
        for id in ids {
            stmt.execute(params![id, state, outcome])?;
        }
    }
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The media survives a restart (the file is fetched again from it) and is forgotten with
    /// the text once the row is answered.
    #[test]
    fn media_is_kept_while_pending_and_forgotten_when_done() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open(&dir.path().join("g.sqlite")).unwrap();
        store
            .call_sync(|c| {
                let media = Media {
                    file_id: "AwACAgQ".into(),
                    size: Some(4096),
                    duration_secs: Some(31),
                    width: None,
                    height: None,
                    media_type: Some("audio/ogg".into()),
                    file_name: None,
                    media_group_id: None,
                };
                let msg = NewMessage {
                    update_id: 5,
                    chat_id: 7,
                    chat_type: "private".into(),
                    from_id: 7,
                    from_name: "Ana".into(),
                    kind: MessageKind::Voice,
                    text: None,
                    sent_at: 1,
                    callback_id: None,
                    message_id: Some(5),
                    media: Some(media.clone()),
                    group: None,
                };
                let rows = commit_updates(c, "ana", 11, std::slice::from_ref(&msg), 6)?;
                assert_eq!(pending_among(c, &[rows[0].id, 999])?, [rows[0].id].into());
                let pending = pending_inbox(c)?;
                assert_eq!(pending.len(), 1);
                assert_eq!(pending[0].msg, msg, "kind and media read back as written");
                finish_inbox(c, &[rows[0].id], "done", "replied")?;
                let left: Option<String> = c.query_row("SELECT media FROM inbox WHERE id = ?1", [rows[0].id], |r| r.get(0))?;
                assert_eq!(left, None);
                assert!(pending_among(c, &[rows[0].id])?.is_empty());
                Ok(())
            })
            .unwrap();
    }
}
