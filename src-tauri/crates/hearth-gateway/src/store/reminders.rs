//! `reminder_schedule` and `reminder_firings`: when members' reminders are due, and the
//! occurrences committed as due (never a reminder's text).

use rusqlite::{Connection, params};

use super::{StoreError, now_unix};

/// One occurrence of a member's reminder that came due: the key of a `reminder_firings` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueReminder {
    pub member_id: String,
    pub reminder_id: i64,
    pub due_at: i64,
}

/// Done firings are kept this long (their key stops a stale schedule row from firing twice).
const FIRINGS_KEPT_SECS: i64 = 35 * 86_400;

/// Replaces what is scheduled for `member_id` with `due` (the worker's whole upcoming list).
pub fn replace_reminder_schedule(
    conn: &mut Connection,
    member_id: &str,
    due: &[hearth_proto::worker::ReminderDue],
) -> Result<(), StoreError> {
    let tx = conn.transaction()?;
    tx.execute("DELETE FROM reminder_schedule WHERE member_id = ?1", [member_id])?;
    {
        let mut stmt =
            tx.prepare("INSERT OR REPLACE INTO reminder_schedule (member_id, reminder_id, due_at) VALUES (?1, ?2, ?3)")?;
        for d in due {
            stmt.execute(params![member_id, d.id, d.due_at])?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// Commits every scheduled occurrence due at or before `now` as a pending firing and takes it
/// off the schedule, in one transaction; returns the firings newly committed (an occurrence
/// committed before is skipped). The earliest instant still scheduled comes back too.
pub fn take_due_reminders(conn: &mut Connection, now: i64) -> Result<(Vec<DueReminder>, Option<i64>), StoreError> {
    let tx = conn.transaction()?;
    let due: Vec<DueReminder> = {
        let mut stmt = tx.prepare(
            "SELECT member_id, reminder_id, due_at FROM reminder_schedule WHERE due_at <= ?1 ORDER BY due_at, member_id",
        )?;
        stmt.query_map([now], |r| Ok(DueReminder { member_id: r.get(0)?, reminder_id: r.get(1)?, due_at: r.get(2)? }))?
            .collect::<Result<_, _>>()?
    };
    let mut fresh = Vec::new();
    for d in due {
        let n = tx.execute(
            "INSERT OR IGNORE INTO reminder_firings (member_id, reminder_id, due_at, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![d.member_id, d.reminder_id, d.due_at, now_unix()],
        )?;
        tx.execute(
            "DELETE FROM reminder_schedule WHERE member_id = ?1 AND reminder_id = ?2 AND due_at = ?3",
            params![d.member_id, d.reminder_id, d.due_at],
        )?;
        if n == 1 {
            fresh.push(d);
        }
    }
    if !fresh.is_empty() {
        tx.execute(
            "DELETE FROM reminder_firings WHERE state != 'pending' AND due_at < ?1",
            [now - FIRINGS_KEPT_SECS],
        )?;
    }
    let next: Option<i64> = tx.query_row("SELECT min(due_at) FROM reminder_schedule", [], |r| r.get(0))?;
    tx.commit()?;
    Ok((fresh, next))
}

/// Firings committed but not delivered: what a restarted gateway delivers first.
pub fn pending_firings(conn: &Connection) -> Result<Vec<DueReminder>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT member_id, reminder_id, due_at FROM reminder_firings WHERE state = 'pending' ORDER BY due_at, created_at",
    )?;
    let rows = stmt
        .query_map([], |r| Ok(DueReminder { member_id: r.get(0)?, reminder_id: r.get(1)?, due_at: r.get(2)? }))?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

pub fn finish_firing(conn: &Connection, f: &DueReminder, state: &str, outcome: &str) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE reminder_firings SET state = ?4, outcome = ?5 WHERE member_id = ?1 AND reminder_id = ?2 AND due_at = ?3",
        params![f.member_id, f.reminder_id, f.due_at, state, outcome],
    )?;
    Ok(())
}
