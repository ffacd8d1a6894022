//! The `pairings` table: one-time codes that bind a Telegram account to a member.

use rusqlite::{Connection, params};

use super::StoreError;

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
