//! The `members` and `bots` tables: who is in the household, their settings and their bot.

use hearth_proto::control::{AlertLevel, Role, VoiceReplies};
use rusqlite::{Connection, OptionalExtension, params};

use super::StoreError;

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
    /// When a timed pause ends by itself (Unix seconds, the gateway's clock); `None` with
    /// `paused`: until the admin resumes them. Meaningless while not paused.
    pub paused_until: Option<i64>,
    /// The member's own model on the household's provider; `None`: the provider's model.
    pub model: Option<String>,
    /// When the assistant rests (household zone); `None`: never.
    pub quiet_hours: Option<hearth_proto::control::QuietHours>,
    /// When the assistant answers in voice.
    pub voice_replies: VoiceReplies,
    /// Replies shown as they are written (drafts in a private chat); on unless turned off.
    pub streaming: bool,
    /// What the member is told about the household's health over Telegram while an admin.
    pub alerts: AlertLevel,
}

const MEMBER_COLUMNS: &str = "m.rowid, m.id, m.name, m.persona, m.telegram_user_id, m.chat_id, m.created_at, \
                              b.bot_id, b.username, b.next_offset, m.is_admin, m.cap_daily_micros, \
                              m.cap_monthly_micros, m.fallback_model, m.role, m.paused, m.model, m.quiet_hours, \
                              m.voice_replies, m.streaming, m.alerts, m.paused_until";

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
        // Written only by `set_member_voice_replies`; a hand edit that does not parse reads as
        // the default.
        voice_replies: r.get::<_, String>(18)?.parse().unwrap_or_default(),
        streaming: r.get(19)?,
        // Written only by `set_member_alerts`; a hand edit that does not parse reads as "all".
        alerts: r.get::<_, String>(20)?.parse().unwrap_or_default(),
        paused_until: r.get(21)?,
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
        "INSERT INTO members (id, name, persona, created_at, role, quiet_hours, voice_replies)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            m.id,
            m.name,
            m.persona,
            m.created_at,
            m.role.as_str(),
            m.quiet_hours.map(|q| q.to_string()),
            m.voice_replies.as_str()
        ],
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

pub fn set_member_voice_replies(conn: &Connection, member_id: &str, voice: VoiceReplies) -> Result<(), StoreError> {
    conn.execute("UPDATE members SET voice_replies = ?2 WHERE id = ?1", params![member_id, voice.as_str()])?;
    Ok(())
}

pub fn set_member_streaming(conn: &Connection, member_id: &str, streaming: bool) -> Result<(), StoreError> {
    conn.execute("UPDATE members SET streaming = ?2 WHERE id = ?1", params![member_id, streaming])?;
    Ok(())
}

pub fn set_member_alerts(conn: &Connection, member_id: &str, alerts: AlertLevel) -> Result<(), StoreError> {
    conn.execute("UPDATE members SET alerts = ?2 WHERE id = ?1", params![member_id, alerts.as_str()])?;
    Ok(())
}

/// Pauses (until `until`, Unix seconds, or until resumed) or resumes a member.
pub fn set_member_paused(conn: &Connection, member_id: &str, paused: bool, until: Option<i64>) -> Result<(), StoreError> {
    let until = until.filter(|_| paused);
    conn.execute("UPDATE members SET paused = ?2, paused_until = ?3 WHERE id = ?1", params![member_id, paused, until])?;
    Ok(())
}

/// Resumes the member if their timed pause has ended by `now` (and they were not paused again
/// meanwhile with another end, or none); true if it did.
pub fn resume_if_due(conn: &Connection, member_id: &str, now: i64) -> Result<bool, StoreError> {
    let changed = conn.execute(
        "UPDATE members SET paused = 0, paused_until = NULL
         WHERE id = ?1 AND paused = 1 AND paused_until IS NOT NULL AND paused_until <= ?2",
        params![member_id, now],
    )?;
    Ok(changed > 0)
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

/// The offset that confirms everything the inbox holds for a bot: where its poll loop starts.
pub fn bot_offset(conn: &Connection, bot_id: i64) -> Result<Option<i64>, StoreError> {
    // A member's bot or the household bot.
    let sql = "SELECT next_offset FROM bots WHERE bot_id = ?1 UNION ALL SELECT next_offset FROM household_bot WHERE bot_id = ?1";
    Ok(conn.query_row(sql, [bot_id], |r| r.get(0)).optional()?)
}
