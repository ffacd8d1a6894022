//! `stranger_replies`: when a stranger last got the short "this is private" reply.

use rusqlite::{Connection, params};

use super::StoreError;

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
