//! The `ledger`: one row per LLM call, reserved before it and settled after; and the reports
//! read from it.

use rusqlite::{Connection, params};

use super::StoreError;

#[derive(Debug, Clone)]
pub struct LedgerReservation {
    pub member_id: String,
    pub chat_id: Option<i64>,
    pub provider: String,
    pub model: String,
    pub reserved_input_tokens: u64,
    pub reserved_output_tokens: u64,
    pub reserved_micros: u64,
    /// The day and month (household zone) the call is charged to.
    pub day_key: String,
    pub month_key: String,
}

pub fn ledger_reserve(conn: &Connection, r: &LedgerReservation, now: i64) -> Result<i64, StoreError> {
    conn.execute(
        "INSERT INTO ledger (member_id, chat_id, provider, model, state, reserved_input_tokens, reserved_output_tokens,
                             reserved_micros, day_key, month_key, created_at)
         VALUES (?1, ?2, ?3, ?4, 'reserved', ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            r.member_id, r.chat_id, r.provider, r.model, r.reserved_input_tokens as i64, r.reserved_output_tokens as i64,
            r.reserved_micros as i64, r.day_key, r.month_key, now
        ],
    )?;
    Ok(conn.last_insert_rowid())
}

#[derive(Debug, Clone)]
pub struct LedgerSettlement {
    pub model: String,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_input_tokens: u64,
    pub attempts: u32,
    pub latency_ms: u64,
    /// "ok", or a short error kind ("http_429", "timeout", …).
    pub outcome: String,
    pub cost_micros: u64,
}

pub fn ledger_settle(conn: &Connection, id: i64, s: &LedgerSettlement, now: i64) -> Result<(), StoreError> {
    let state = if s.outcome == "ok" { "settled" } else { "released" };
    conn.execute(
        "UPDATE ledger SET state = ?2, model = ?3, input_tokens = ?4, output_tokens = ?5, cached_input_tokens = ?6,
                attempts = ?7, latency_ms = ?8, outcome = ?9, settled_at = ?10, cost_micros = ?11 WHERE id = ?1",
        params![
            id, state, s.model, s.input_tokens as i64, s.output_tokens as i64, s.cached_input_tokens as i64,
            s.attempts, s.latency_ms as i64, s.outcome, now, s.cost_micros as i64
        ],
    )?;
    Ok(())
}

/// Releases reservations a crashed gateway left open, so they do not count against anyone.
pub fn ledger_release_stale(conn: &Connection, now: i64) -> Result<usize, StoreError> {
    Ok(conn.execute(
        "UPDATE ledger SET state = 'released', outcome = 'interrupted', settled_at = ?1 WHERE state = 'reserved'",
        [now],
    )?)
}

/// Calls and tokens per member since `since` (Unix seconds).
pub fn usage_since(conn: &Connection, since: i64) -> Result<Vec<(String, hearth_proto::control::DayUsage)>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT member_id, COUNT(*), COALESCE(SUM(input_tokens + cached_input_tokens), 0), COALESCE(SUM(output_tokens), 0),
                COALESCE(SUM(cost_micros), 0)
         FROM ledger WHERE created_at >= ?1 AND state != 'reserved' GROUP BY member_id",
    )?;
    let rows = stmt
        .query_map([since], |r| {
            Ok((
                r.get::<_, String>(0)?,
                hearth_proto::control::DayUsage {
                    calls: r.get::<_, i64>(1)? as u64,
                    input_tokens: r.get::<_, i64>(2)? as u64,
                    output_tokens: r.get::<_, i64>(3)? as u64,
                    cost_micros: r.get::<_, i64>(4)? as u64,
                },
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Micro-USD per member.
pub type PerMember = Vec<(String, u64)>;

/// Spend already settled in the given day and month, per member: what the budget starts from.
pub fn spent_in(conn: &Connection, day_key: &str, month_key: &str) -> Result<(PerMember, PerMember), StoreError> {
    let sum = |col: &str, key: &str| -> Result<PerMember, StoreError> {
        let mut stmt = conn.prepare(&format!(
            "SELECT member_id, COALESCE(SUM(cost_micros), 0) FROM ledger WHERE {col} = ?1 AND state = 'settled' GROUP BY member_id"
        ))?;
        let rows = stmt.query_map([key], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))?.collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    };
    Ok((sum("day_key", day_key)?, sum("month_key", month_key)?))
}

/// One member's month: (member, calls, input, cached, output, cost micros).
pub type MonthTotal = (String, u64, u64, u64, u64, u64);

/// Per-member totals for a month.
pub fn month_totals(conn: &Connection, month_key: &str) -> Result<Vec<MonthTotal>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT member_id, COUNT(*), COALESCE(SUM(input_tokens), 0), COALESCE(SUM(cached_input_tokens), 0),
                COALESCE(SUM(output_tokens), 0), COALESCE(SUM(cost_micros), 0)
         FROM ledger WHERE month_key = ?1 AND state != 'reserved' GROUP BY member_id",
    )?;
    let rows = stmt
        .query_map([month_key], |r| {
            Ok((
                r.get(0)?,
                r.get::<_, i64>(1)? as u64,
                r.get::<_, i64>(2)? as u64,
                r.get::<_, i64>(3)? as u64,
                r.get::<_, i64>(4)? as u64,
                r.get::<_, i64>(5)? as u64,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Household spend per day of a month: (day key, cost micros), in day order.
pub fn month_per_day(conn: &Connection, month_key: &str) -> Result<Vec<(String, u64)>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT day_key, COALESCE(SUM(cost_micros), 0) FROM ledger WHERE month_key = ?1 AND state = 'settled'
         GROUP BY day_key ORDER BY day_key",
    )?;
    let rows = stmt.query_map([month_key], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))?.collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// One ledger row as exported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerExportRow {
    pub id: i64,
    pub created_at: i64,
    pub day_key: String,
    pub member_id: String,
    pub member_name: Option<String>,
    pub chat_id: Option<i64>,
    pub provider: String,
    pub model: String,
    pub input_tokens: u64,
    pub cached_input_tokens: u64,
    pub output_tokens: u64,
    pub cost_micros: u64,
    pub latency_ms: Option<u64>,
    pub attempts: u64,
    pub outcome: String,
}

pub fn month_rows(conn: &Connection, month_key: &str) -> Result<Vec<LedgerExportRow>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT l.id, l.created_at, COALESCE(l.day_key, ''), l.member_id, m.name, l.chat_id, l.provider, l.model,
                l.input_tokens, l.cached_input_tokens, l.output_tokens, l.cost_micros, l.latency_ms, l.attempts,
                COALESCE(l.outcome, l.state)
         FROM ledger l LEFT JOIN members m ON m.id = l.member_id WHERE l.month_key = ?1 ORDER BY l.id",
    )?;
    let rows = stmt
        .query_map([month_key], |r| {
            Ok(LedgerExportRow {
                id: r.get(0)?,
                created_at: r.get(1)?,
                day_key: r.get(2)?,
                member_id: r.get(3)?,
                member_name: r.get(4)?,
                chat_id: r.get(5)?,
                provider: r.get(6)?,
                model: r.get(7)?,
                input_tokens: r.get::<_, i64>(8)? as u64,
                cached_input_tokens: r.get::<_, i64>(9)? as u64,
                output_tokens: r.get::<_, i64>(10)? as u64,
                cost_micros: r.get::<_, i64>(11)? as u64,
                latency_ms: r.get::<_, Option<i64>>(12)?.map(|v| v as u64),
                attempts: r.get::<_, i64>(13)? as u64,
                outcome: r.get(14)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}
