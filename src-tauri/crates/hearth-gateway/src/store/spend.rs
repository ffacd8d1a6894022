//! Spend settings and their paper trail: members' caps, admin and fallback; `prices`,
//! `cap_grants`, `notices` and `approvals`.

use rusqlite::{Connection, OptionalExtension, params};

use super::{StoreError, now_unix};

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

/// One admin-set price as stored, in micro-USD per million tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPrice {
    pub model: String,
    pub input: u64,
    pub output: u64,
    pub cached_input: u64,
    /// `None` (NULL): the shipped default for cache writes, 1.25 × input.
    pub cache_write: Option<u64>,
}

/// Admin-set prices, oldest first.
pub fn list_prices(conn: &Connection) -> Result<Vec<StoredPrice>, StoreError> {
    let mut stmt =
        conn.prepare("SELECT model, input, output, cached_input, cache_write FROM prices ORDER BY set_at, model")?;
    let rows = stmt
        .query_map([], |r| {
            Ok(StoredPrice {
                model: r.get(0)?,
                input: r.get::<_, i64>(1)? as u64,
                output: r.get::<_, i64>(2)? as u64,
                cached_input: r.get::<_, i64>(3)? as u64,
                cache_write: r.get::<_, Option<i64>>(4)?.map(|v| v.max(0) as u64),
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Sets (or replaces) a model's price; a price set again without a cache-write price goes back
/// to the default for it.
pub fn set_price(conn: &Connection, p: &StoredPrice, now: i64) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO prices (model, input, output, cached_input, cache_write, set_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (model) DO UPDATE SET input = excluded.input, output = excluded.output,
             cached_input = excluded.cached_input, cache_write = excluded.cache_write, set_at = excluded.set_at",
        params![p.model, p.input as i64, p.output as i64, p.cached_input as i64, p.cache_write.map(|v| v as i64), now],
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
