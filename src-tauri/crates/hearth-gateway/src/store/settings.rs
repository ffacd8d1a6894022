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

pub fn delete_setting(conn: &Connection, key: &str) -> Result<(), StoreError> {
    conn.execute("DELETE FROM settings WHERE key = ?1", [key])?;
    Ok(())
}

/// Every setting whose key starts with `prefix`, as (the rest of the key, value), in key order:
/// settings that hold one entry per model (`price.per_minute.<model>`).
pub fn settings_with_prefix(conn: &Connection, prefix: &str) -> Result<Vec<(String, String)>, StoreError> {
    let mut stmt = conn.prepare("SELECT key, value FROM settings WHERE substr(key, 1, length(?1)) = ?1 ORDER BY key")?;
    let rows = stmt
        .query_map([prefix], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows.into_iter().map(|(k, v)| (k[prefix.len()..].to_owned(), v)).collect())
}
