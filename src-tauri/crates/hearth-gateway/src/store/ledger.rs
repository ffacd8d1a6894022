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
    /// What the call is for: a completion or a transcription.
    pub kind: LedgerKind,
    /// A transcription's audio, as Telegram reported its length (0 for a completion).
    pub audio_seconds: u64,
    /// Images a completion shows the model.
    pub images: u64,
    /// Characters a voice reply speaks (0 for any other kind).
    pub characters: u64,
}

/// The `ledger.kind` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LedgerKind {
    /// A completion (`'chat'`).
    Chat,
    /// A transcription of a voice note or audio file (`'speech_in'`).
    SpeechIn,
    /// A voice reply: text spoken by a text-to-speech model (`'speech_out'`).
    SpeechOut,
}

impl LedgerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Chat => "chat",
            Self::SpeechIn => "speech_in",
            Self::SpeechOut => "speech_out",
        }
    }
}

pub fn ledger_reserve(conn: &Connection, r: &LedgerReservation, now: i64) -> Result<i64, StoreError> {
    conn.execute(
        "INSERT INTO ledger (member_id, chat_id, provider, model, state, reserved_input_tokens, reserved_output_tokens,
                             reserved_micros, day_key, month_key, created_at, kind, audio_seconds, images, characters)
         VALUES (?1, ?2, ?3, ?4, 'reserved', ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        params![
            r.member_id,
            r.chat_id,
            r.provider,
            r.model,
            r.reserved_input_tokens as i64,
            r.reserved_output_tokens as i64,
            r.reserved_micros as i64,
            r.day_key,
            r.month_key,
            now,
            r.kind.as_str(),
            r.audio_seconds as i64,
            r.images as i64,
            r.characters as i64
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
    /// Prompt tokens written into the provider's prompt cache (`ledger.cache_write_tokens`).
    pub cache_write_tokens: u64,
    pub attempts: u32,
    pub latency_ms: u64,
    /// "ok", "stopped" (the member stopped the answer; charged an estimate of what was used),
    /// or a short error kind ("http_429", "timeout", …).
    pub outcome: String,
    pub cost_micros: u64,
}

pub fn ledger_settle(conn: &Connection, id: i64, s: &LedgerSettlement, now: i64) -> Result<(), StoreError> {
    // A stopped call was charged for what it used: it counts like any answered one.
    let state = if s.outcome == "ok" || s.outcome == "stopped" { "settled" } else { "released" };
    conn.execute(
        "UPDATE ledger SET state = ?2, model = ?3, input_tokens = ?4, output_tokens = ?5, cached_input_tokens = ?6,
                attempts = ?7, latency_ms = ?8, outcome = ?9, settled_at = ?10, cost_micros = ?11,
                cache_write_tokens = ?12 WHERE id = ?1",
        params![
            id, state, s.model, s.input_tokens as i64, s.output_tokens as i64, s.cached_input_tokens as i64,
            s.attempts, s.latency_ms as i64, s.outcome, now, s.cost_micros as i64, s.cache_write_tokens as i64
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

/// One member's spend in one period, split by what it paid for. Released rows (failed calls)
/// count as calls, at no cost, with no audio or images.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SplitTotals {
    pub calls: u64,
    pub input_tokens: u64,
    pub cached_input_tokens: u64,
    pub output_tokens: u64,
    pub cost_micros: u64,
    pub chat_calls: u64,
    pub chat_cost_micros: u64,
    pub images: u64,
    pub speech_calls: u64,
    pub audio_seconds: u64,
    pub speech_cost_micros: u64,
    pub voice_calls: u64,
    pub voice_chars: u64,
    pub voice_cost_micros: u64,
}

/// Per-member totals, split into chat, speech in and speech out (voice replies), for the rows whose `day_key` (`by_day`) or
/// `month_key` is `key`.
pub fn split_totals(conn: &Connection, key: &str, by_day: bool) -> Result<Vec<(String, SplitTotals)>, StoreError> {
    let col = if by_day { "day_key" } else { "month_key" };
    let settled = "state = 'settled'";
    let mut stmt = conn.prepare(&format!(
        "SELECT member_id, COUNT(*), COALESCE(SUM(input_tokens), 0), COALESCE(SUM(cached_input_tokens), 0),
                COALESCE(SUM(output_tokens), 0), COALESCE(SUM(cost_micros), 0),
                COUNT(*) FILTER (WHERE kind = 'chat'),
                COALESCE(SUM(cost_micros) FILTER (WHERE kind = 'chat'), 0),
                COALESCE(SUM(images) FILTER (WHERE kind = 'chat' AND {settled}), 0),
                COUNT(*) FILTER (WHERE kind = 'speech_in'),
                COALESCE(SUM(audio_seconds) FILTER (WHERE kind = 'speech_in' AND {settled}), 0),
                COALESCE(SUM(cost_micros) FILTER (WHERE kind = 'speech_in'), 0),
                COUNT(*) FILTER (WHERE kind = 'speech_out'),
                COALESCE(SUM(characters) FILTER (WHERE kind = 'speech_out' AND {settled}), 0),
                COALESCE(SUM(cost_micros) FILTER (WHERE kind = 'speech_out'), 0)
         FROM ledger WHERE {col} = ?1 AND state != 'reserved' GROUP BY member_id ORDER BY member_id"
    ))?;
    let n = |r: &rusqlite::Row<'_>, i: usize| -> rusqlite::Result<u64> { Ok(r.get::<_, i64>(i)?.max(0) as u64) };
    let rows = stmt
        .query_map([key], |r| {
            Ok((
                r.get(0)?,
                SplitTotals {
                    calls: n(r, 1)?,
                    input_tokens: n(r, 2)?,
                    cached_input_tokens: n(r, 3)?,
                    output_tokens: n(r, 4)?,
                    cost_micros: n(r, 5)?,
                    chat_calls: n(r, 6)?,
                    chat_cost_micros: n(r, 7)?,
                    images: n(r, 8)?,
                    speech_calls: n(r, 9)?,
                    audio_seconds: n(r, 10)?,
                    speech_cost_micros: n(r, 11)?,
                    voice_calls: n(r, 12)?,
                    voice_chars: n(r, 13)?,
                    voice_cost_micros: n(r, 14)?,
                },
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

/// Settled spend per member and day over `[from_day, to_day]` (inclusive `YYYY-MM-DD` keys):
/// `(member_id, day_key, micros)`, oldest day first. For the members' activity and the chart.
pub fn member_per_day(conn: &Connection, from_day: &str, to_day: &str) -> Result<Vec<(String, String, u64)>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT member_id, day_key, COALESCE(SUM(cost_micros), 0) FROM ledger
         WHERE day_key >= ?1 AND day_key <= ?2 AND state = 'settled'
         GROUP BY member_id, day_key ORDER BY day_key, member_id",
    )?;
    let rows = stmt
        .query_map([from_day, to_day], |r| Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? as u64)))?
        .collect::<Result<Vec<_>, _>>()?;
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
    /// "chat", "speech_in" or "speech_out".
    pub kind: String,
    pub audio_seconds: u64,
    pub images: u64,
    pub characters: u64,
}

pub fn month_rows(conn: &Connection, month_key: &str) -> Result<Vec<LedgerExportRow>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT l.id, l.created_at, COALESCE(l.day_key, ''), l.member_id, m.name, l.chat_id, l.provider, l.model,
                l.input_tokens, l.cached_input_tokens, l.output_tokens, l.cost_micros, l.latency_ms, l.attempts,
                COALESCE(l.outcome, l.state), l.kind, l.audio_seconds, l.images,
                l.characters
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
                kind: r.get(15)?,
                audio_seconds: r.get::<_, i64>(16)? as u64,
                images: r.get::<_, i64>(17)? as u64,
                characters: r.get::<_, i64>(18)? as u64,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}
