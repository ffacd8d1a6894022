//! The `alerts` table: each condition the admins were told about (or are about to be), while it
//! lasts and after it cleared, so a restart neither repeats an alert nor loses its "fixed" line.
//! The decisions are `core/alerts/rules.rs`'s; this file only keeps its rows.

use rusqlite::{Connection, OptionalExtension, params};

use super::StoreError;

/// One condition's row. Times are Unix seconds on the gateway's clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertRow {
    /// The condition: `bot:<member id>`, `provider`, `disk`, `backup`, `unclean_stop`.
    pub key: String,
    /// When the current episode began.
    pub raised_at: i64,
    /// What the admins read about it (a member's bot state, how full the disk is, an error).
    pub detail: String,
    /// When the admins were last told it was raised; before `raised_at`: not this episode.
    pub told_at: Option<i64>,
    /// When it cleared; `None` while it lasts.
    pub cleared_at: Option<i64>,
    /// When the "fixed" line went out for this episode.
    pub cleared_told_at: Option<i64>,
}

const COLUMNS: &str = "key, raised_at, detail, told_at, cleared_at, cleared_told_at";

fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AlertRow> {
    Ok(AlertRow {
        key: r.get(0)?,
        raised_at: r.get(1)?,
        detail: r.get(2)?,
        told_at: r.get(3)?,
        cleared_at: r.get(4)?,
        cleared_told_at: r.get(5)?,
    })
}

pub fn list_alerts(conn: &Connection) -> Result<Vec<AlertRow>, StoreError> {
    let mut stmt = conn.prepare(&format!("SELECT {COLUMNS} FROM alerts ORDER BY key"))?;
    let rows = stmt.query_map([], from_row)?.collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

pub fn get_alert(conn: &Connection, key: &str) -> Result<Option<AlertRow>, StoreError> {
    Ok(conn.query_row(&format!("SELECT {COLUMNS} FROM alerts WHERE key = ?1"), [key], from_row).optional()?)
}

/// Writes the whole row (inserted or replaced).
pub fn put_alert(conn: &Connection, a: &AlertRow) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO alerts (key, raised_at, detail, told_at, cleared_at, cleared_told_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (key) DO UPDATE SET raised_at = excluded.raised_at, detail = excluded.detail,
             told_at = excluded.told_at, cleared_at = excluded.cleared_at, cleared_told_at = excluded.cleared_told_at",
        params![a.key, a.raised_at, a.detail, a.told_at, a.cleared_at, a.cleared_told_at],
    )?;
    Ok(())
}

/// Forgets a condition that can no longer come back (a removed member's bot).
pub fn delete_alert(conn: &Connection, key: &str) -> Result<(), StoreError> {
    conn.execute("DELETE FROM alerts WHERE key = ?1", [key])?;
    Ok(())
}
