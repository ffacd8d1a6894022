//! The `audit` log and household `settings`.

use rusqlite::{Connection, OptionalExtension, params};

use super::{StoreError, now_unix};

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
