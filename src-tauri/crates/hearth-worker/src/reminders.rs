//! The member's reminders: `<member_dir>/reminders.sqlite`, one row per reminder, and the
//! recurrence math in the household's time zone.
//!
//! The text is the member's and stays here. The gateway only learns ids and due instants
//! ([`Reminders::schedule`]) and asks this worker to deliver an occurrence when it is due
//! ([`Reminders::fire`]). Firing is idempotent per occurrence: asked again for the occurrence
//! it last fired (the gateway restarted before sending), it answers the same text and moves
//! nothing on.
//!
//! A reminder keeps its first occurrence as local wall time (`anchor`) and its zone, and every
//! occurrence is computed from the anchor: "every day at 08:00" stays at 08:00 across DST
//! changes, and "monthly on the 31st" is on the last day of shorter months without drifting to
//! the 28th for good.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Datelike, Days, Months, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use hearth_proto::worker::ReminderDue;
use rusqlite::{Connection, OptionalExtension, params};

use crate::db;

/// File name of the reminders database inside the member directory.
pub const FILE_NAME: &str = "reminders.sqlite";
/// Longest reminder text, in characters.
pub const MAX_TEXT_CHARS: usize = 500;
/// Most active reminders per member; the gateway refuses a longer schedule.
pub const MAX_ACTIVE: usize = hearth_proto::worker::MAX_REMINDERS;
/// How local times are written to and read from the model: `2026-11-22T08:00`.
pub const LOCAL_FORMAT: &str = "%Y-%m-%dT%H:%M";

#[derive(Debug, thiserror::Error)]
pub enum ReminderError {
    #[error("cannot create {path}: {source}")]
    Create { path: PathBuf, source: std::io::Error },
    #[error("cannot open reminders database {path}: {source}")]
    Open { path: PathBuf, source: rusqlite::Error },
    #[error("reminders database is at schema version {found}, newer than this worker's {known}; upgrade Hearth")]
    TooNew { found: u32, known: u32 },
    #[error("reminders database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

/// Schema: numbered, forward-only migrations, as in `history.rs`.
const REMINDERS_1: &str = "
    CREATE TABLE reminders (
        id            INTEGER PRIMARY KEY AUTOINCREMENT,
        text          TEXT NOT NULL,
        anchor        TEXT NOT NULL,     -- first occurrence, local wall time (LOCAL_FORMAT)
        timezone      TEXT NOT NULL,     -- IANA zone the anchor is in
        repeat        TEXT NOT NULL,     -- none | daily | weekly | monthly
        next_at       INTEGER,           -- next occurrence, Unix seconds UTC; NULL: finished or cancelled
        last_fired_at INTEGER,           -- the occurrence fired last (its due instant)
        created_at    INTEGER NOT NULL,
        cancelled_at  INTEGER
    );
    CREATE INDEX reminders_next ON reminders(next_at) WHERE next_at IS NOT NULL;
";

const MIGRATIONS: &[&str] = &[REMINDERS_1];

/// How often a reminder comes back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repeat {
    None,
    Daily,
    Weekly,
    Monthly,
}

impl Repeat {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "" | "none" | "once" | "no" => Self::None,
            "daily" | "day" | "every day" => Self::Daily,
            "weekly" | "week" | "every week" => Self::Weekly,
            "monthly" | "month" | "every month" => Self::Monthly,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Daily => "daily",
            Self::Weekly => "weekly",
            Self::Monthly => "monthly",
        }
    }
}

/// One reminder as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reminder {
    pub id: i64,
    pub text: String,
    pub anchor: NaiveDateTime,
    pub tz: Tz,
    pub repeat: Repeat,
    /// Next occurrence (UTC); `None` once a one-off fired or the reminder was cancelled.
    pub next_at: Option<i64>,
}

impl Reminder {
    /// "every day at 08:00, next Saturday 22 November 2026 at 08:00", for the model and member.
    pub fn describe(&self) -> String {
        let time = self.anchor.format("%H:%M");
        let how = match self.repeat {
            Repeat::None => String::new(),
            Repeat::Daily => format!("every day at {time}, "),
            Repeat::Weekly => format!("every {} at {time}, ", self.anchor.format("%A")),
            Repeat::Monthly => format!("every month on day {} at {time}, ", self.anchor.day()),
        };
        match self.next_at.and_then(|t| DateTime::from_timestamp(t, 0)) {
            Some(next) => format!("{how}next {}", next.with_timezone(&self.tz).format("%A %-d %B %Y at %H:%M")),
            None => format!("{how}finished"),
        }
    }
}

/// What [`Reminders::fire`] found for an occurrence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fired {
    /// Deliver this text (the first ask for the occurrence, or a repeat of the last one).
    Deliver(String),
    /// Nothing to deliver: no such reminder, cancelled, or not due at that instant any more.
    Stale,
}

/// Why a reminder could not be set; its `Display` is for the model.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SetError {
    #[error("that time has already passed (it is now {now}); give a time in the future")]
    Past { now: String },
    #[error("{MAX_ACTIVE} reminders are set already; cancel some first")]
    Full,
}

pub struct Reminders {
    conn: Connection,
}

impl Reminders {
    /// Opens (creating, 0600) `<member_dir>/reminders.sqlite` and migrates it.
    pub fn open(member_dir: &Path) -> Result<Self, ReminderError> {
        let path = member_dir.join(FILE_NAME);
        let mut conn = db::open(&path, Some(Duration::from_secs(5))).map_err(db::db_error!(ReminderError, path))?;
        db::migrate(&mut conn, MIGRATIONS).map_err(db::db_error!(ReminderError, path))?;
        Ok(Self { conn })
    }

    /// Sets a reminder first due at local time `at` in `tz`. A recurring one whose `at` has
    /// passed starts at its next occurrence after `now`; a one-off in the past is refused.
    pub fn set(
        &mut self,
        text: &str,
        at: NaiveDateTime,
        tz: Tz,
        repeat: Repeat,
        now: DateTime<Utc>,
    ) -> Result<Result<Reminder, SetError>, ReminderError> {
        let Some(next_at) = next_after(at, tz, repeat, now.timestamp()) else {
            let now = now.with_timezone(&tz).format(LOCAL_FORMAT).to_string();
            return Ok(Err(SetError::Past { now }));
        };
        let active: i64 =
            self.conn.query_row("SELECT count(*) FROM reminders WHERE next_at IS NOT NULL", [], |r| r.get(0))?;
        if active as usize >= MAX_ACTIVE {
            return Ok(Err(SetError::Full));
        }
        self.conn.execute(
            "INSERT INTO reminders (text, anchor, timezone, repeat, next_at, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![text, at.format(LOCAL_FORMAT).to_string(), tz.name(), repeat.as_str(), next_at, now.timestamp()],
        )?;
        let id = self.conn.last_insert_rowid();
        Ok(Ok(Reminder { id, text: text.to_owned(), anchor: at, tz, repeat, next_at: Some(next_at) }))
    }

    /// Active reminders, soonest first.
    pub fn upcoming(&self) -> Result<Vec<Reminder>, ReminderError> {
        let mut stmt = self.conn.prepare(
            "SELECT id, text, anchor, timezone, repeat, next_at FROM reminders WHERE next_at IS NOT NULL
             ORDER BY next_at, id",
        )?;
        let rows = stmt.query_map([], row)?.collect::<Result<Vec<_>, _>>()?;
        Ok(rows.into_iter().flatten().collect())
    }

    /// What the gateway should schedule: every active reminder's next instant.
    pub fn schedule(&self) -> Result<Vec<ReminderDue>, ReminderError> {
        Ok(self.upcoming()?.into_iter().filter_map(|r| Some(ReminderDue { id: r.id, due_at: r.next_at? })).collect())
    }

    /// Cancels an active reminder; returns it if there was one.
    pub fn cancel(&mut self, id: i64, now: i64) -> Result<Option<Reminder>, ReminderError> {
        let found = self.upcoming()?.into_iter().find(|r| r.id == id);
        if found.is_some() {
            self.conn
                .execute("UPDATE reminders SET next_at = NULL, cancelled_at = ?2 WHERE id = ?1", params![id, now])?;
        }
        Ok(found)
    }

    /// The occurrence of reminder `id` due at `due_at` is here. The first time: record it as
    /// fired and move the reminder to its next occurrence after both `due_at` and `now` (missed
    /// occurrences while the household was off are not delivered one by one), or finish a
    /// one-off. Asked again for the occurrence fired last: the same text, nothing moved.
    pub fn fire(&mut self, id: i64, due_at: i64, now: i64) -> Result<Fired, ReminderError> {
        let tx = self.conn.transaction()?;
        let found: Option<Stored> = tx
            .query_row(
                "SELECT text, anchor, timezone, repeat, next_at, last_fired_at, cancelled_at FROM reminders WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?)),
            )
            .optional()?;
        let Some((text, anchor, tz, repeat, next_at, last_fired, cancelled)) = found else {
            return Ok(Fired::Stale);
        };
        if last_fired == Some(due_at) {
            return Ok(Fired::Deliver(text));
        }
        if cancelled.is_some() || next_at != Some(due_at) {
            return Ok(Fired::Stale);
        }
        let next = match (parse_local(&anchor), tz.parse::<Tz>(), Repeat::parse(&repeat)) {
            (Some(anchor), Ok(tz), Some(repeat)) => next_after(anchor, tz, repeat, due_at.max(now)),
            // A row this worker cannot read any more fires once and stops.
            _ => None,
        };
        tx.execute("UPDATE reminders SET next_at = ?2, last_fired_at = ?3 WHERE id = ?1", params![id, next, due_at])?;
        tx.commit()?;
        Ok(Fired::Deliver(text))
    }
}

type Row = (i64, String, String, String, String, Option<i64>);
/// text, anchor, zone, repeat, next_at, last_fired_at, cancelled_at.
type Stored = (String, String, String, String, Option<i64>, Option<i64>, Option<i64>);

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Option<Reminder>> {
    let (id, text, anchor, tz, repeat, next_at): Row =
        (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?);
    Ok(Some(Reminder {
        id,
        text,
        anchor: match parse_local(&anchor) {
            Some(a) => a,
            None => return Ok(None),
        },
        tz: match tz.parse() {
            Ok(tz) => tz,
            Err(_) => return Ok(None),
        },
        repeat: match Repeat::parse(&repeat) {
            Some(r) => r,
            None => return Ok(None),
        },
        next_at,
    }))
}

/// `2026-11-22T08:00` (seconds allowed, a trailing offset or `Z` ignored: the time is local).
pub fn parse_local(s: &str) -> Option<NaiveDateTime> {
    let s = s.trim();
    let first = |len: usize, fmt: &str| s.get(..len).and_then(|b| NaiveDateTime::parse_from_str(b, fmt).ok());
    first(19, "%Y-%m-%dT%H:%M:%S").or_else(|| first(16, LOCAL_FORMAT)).or_else(|| first(16, "%Y-%m-%d %H:%M"))
}

/// Occurrence `n` (0 is the anchor) as local wall time.
fn occurrence(anchor: NaiveDateTime, repeat: Repeat, n: u32) -> Option<NaiveDateTime> {
    match repeat {
        Repeat::None => (n == 0).then_some(anchor),
        Repeat::Daily => anchor.checked_add_days(Days::new(n.into())),
        Repeat::Weekly => anchor.checked_add_days(Days::new(u64::from(n) * 7)),
        // chrono clamps to the month's last day: the 31st is the 30th in April, the 28th or 29th
        // in February, and back to the 31st in May because it is counted from the anchor.
        Repeat::Monthly => anchor.checked_add_months(Months::new(n)),
    }
}

/// The instant local wall time `t` happens in `tz`. In the autumn's repeated hour, the first;
/// in the spring's skipped hour, the same distance past the gap (02:30 → 03:30 in Berlin), so
/// a reminder in the gap still comes, an hour "late" by the clock on the wall.
pub fn to_utc(t: NaiveDateTime, tz: Tz) -> i64 {
    match tz.from_local_datetime(&t).earliest() {
        Some(at) => at.timestamp(),
        None => {
            let before = tz.offset_from_utc_datetime(&(t - chrono::Duration::hours(3)));
            (t - chrono::Duration::seconds(i64::from(chrono::Offset::fix(&before).local_minus_utc())))
                .and_utc()
                .timestamp()
        }
    }
}

/// The first occurrence strictly after `after` (Unix seconds), or `None` when there is none.
pub fn next_after(anchor: NaiveDateTime, tz: Tz, repeat: Repeat, after: i64) -> Option<i64> {
    // Start a little before where `after` falls, in whole periods since the anchor.
    let after_local = DateTime::from_timestamp(after, 0)?.with_timezone(&tz).date_naive();
    let elapsed = |a: NaiveDate| -> i64 {
        match repeat {
            Repeat::None => 0,
            Repeat::Daily => (after_local - a).num_days(),
            Repeat::Weekly => (after_local - a).num_days() / 7,
            Repeat::Monthly => {
                i64::from(after_local.year() - a.year()) * 12 + i64::from(after_local.month()) - i64::from(a.month())
            }
        }
    };
    let first = u32::try_from((elapsed(anchor.date()) - 1).max(0)).ok()?;
    for n in first..first.saturating_add(5) {
        let t = to_utc(occurrence(anchor, repeat, n)?, tz);
        if t > after {
            return Some(t);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(s: &str) -> NaiveDateTime {
        parse_local(s).unwrap()
    }

    fn utc(s: &str) -> i64 {
        DateTime::parse_from_rfc3339(s).unwrap().timestamp()
    }

    fn berlin(t: i64) -> String {
        DateTime::from_timestamp(t, 0).unwrap().with_timezone(&chrono_tz::Europe::Berlin).to_rfc3339()
    }

    #[test]
    fn local_times_parse_with_or_without_seconds_and_offsets() {
        for s in [
            "2026-11-22T08:00",
            "2026-11-22T08:00:00",
            "2026-11-22 08:00",
            "2026-11-22T08:00:00+01:00",
            "2026-11-22T08:00Z",
        ] {
            assert_eq!(parse_local(s), Some(local("2026-11-22T08:00")), "{s}");
        }
        for s in ["", "tomorrow at 8", "2026-13-01T08:00", "2026-11-22"] {
            assert_eq!(parse_local(s), None, "{s}");
        }
    }

    #[test]
    fn daily_at_eight_stays_at_eight_across_both_dst_changes_in_berlin() {
        let tz = chrono_tz::Europe::Berlin;
        let anchor = local("2026-03-28T08:00");
        // Spring forward on Sunday 29 March 2026: 08:00 is 07:00 UTC on Saturday, 06:00 on Sunday.
        let sat = next_after(anchor, tz, Repeat::Daily, utc("2026-03-27T20:00:00Z")).unwrap();
        assert_eq!(berlin(sat), "2026-03-28T08:00:00+01:00");
        let sun = next_after(anchor, tz, Repeat::Daily, sat).unwrap();
        assert_eq!(berlin(sun), "2026-03-29T08:00:00+02:00");
        assert_eq!(sun - sat, 23 * 3600, "the day of the change is 23 hours long");
        // Fall back on Sunday 25 October 2026: a 25-hour day.
        let sat = next_after(anchor, tz, Repeat::Daily, utc("2026-10-24T07:00:00Z")).unwrap();
        assert_eq!(berlin(sat), "2026-10-25T08:00:00+01:00");
        let before = next_after(anchor, tz, Repeat::Daily, utc("2026-10-23T12:00:00Z")).unwrap();
        assert_eq!(berlin(before), "2026-10-24T08:00:00+02:00");
        assert_eq!(sat - before, 25 * 3600);
    }

    #[test]
    fn times_in_the_gap_and_the_repeated_hour() {
        let tz = chrono_tz::Europe::Berlin;
        // 02:30 does not exist on 29 March 2026: it comes at 03:30 CEST.
        assert_eq!(berlin(to_utc(local("2026-03-29T02:30"), tz)), "2026-03-29T03:30:00+02:00");
        // 02:30 happens twice on 25 October 2026: the first one.
        assert_eq!(berlin(to_utc(local("2026-10-25T02:30"), tz)), "2026-10-25T02:30:00+02:00");
        // A daily 02:30 reminder goes on at 02:30 the day after the gap.
        let anchor = local("2026-03-28T02:30");
        let gap = next_after(anchor, tz, Repeat::Daily, utc("2026-03-28T12:00:00Z")).unwrap();
        assert_eq!(berlin(next_after(anchor, tz, Repeat::Daily, gap).unwrap()), "2026-03-30T02:30:00+02:00");
    }

    #[test]
    fn weekly_monthly_and_once() {
        let tz = chrono_tz::Europe::Berlin;
        let anchor = local("2026-01-31T14:00");
        let mut t = utc("2026-01-01T00:00:00Z");
        let mut seen = Vec::new();
        for _ in 0..4 {
            t = next_after(anchor, tz, Repeat::Monthly, t).unwrap();
            seen.push(berlin(t));
        }
        assert_eq!(
            seen,
            [
                "2026-01-31T14:00:00+01:00",
                "2026-02-28T14:00:00+01:00",
                "2026-03-31T14:00:00+02:00",
                "2026-04-30T14:00:00+02:00"
            ]
        );
        let anchor = local("2026-11-03T14:00");
        let weekly = next_after(anchor, tz, Repeat::Weekly, utc("2026-11-03T14:00:00Z")).unwrap();
        assert_eq!(berlin(weekly), "2026-11-10T14:00:00+01:00");
        // Far from the anchor, the search still starts near `after`.
        let later = next_after(local("2020-02-29T09:00"), tz, Repeat::Daily, utc("2031-06-01T12:00:00Z")).unwrap();
        assert_eq!(berlin(later), "2031-06-02T09:00:00+02:00");
        assert_eq!(
            next_after(anchor, tz, Repeat::None, utc("2026-11-03T12:00:00Z")),
            Some(utc("2026-11-03T14:00:00+01:00"))
        );
        assert_eq!(next_after(anchor, tz, Repeat::None, utc("2026-11-03T13:00:00Z")), None);
    }

    #[test]
    fn an_occurrence_fires_once_and_a_repeat_ask_repeats_the_text() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Reminders::open(dir.path()).unwrap();
        let tz = chrono_tz::Europe::Berlin;
        let now = DateTime::parse_from_rfc3339("2026-11-21T20:00:00+01:00").unwrap().to_utc();
        let pills = r.set("take the blue pill", local("2026-11-22T08:00"), tz, Repeat::Daily, now).unwrap().unwrap();
        let once = r.set("dentist", local("2026-12-03T14:00"), tz, Repeat::None, now).unwrap().unwrap();
        let due = pills.next_at.unwrap();
        assert_eq!(berlin(due), "2026-11-22T08:00:00+01:00");
        assert_eq!(
            r.schedule().unwrap(),
            [ReminderDue { id: 1, due_at: due }, ReminderDue { id: 2, due_at: once.next_at.unwrap() }]
        );

        assert_eq!(r.fire(1, due, due).unwrap(), Fired::Deliver("take the blue pill".into()));
        let next = r.schedule().unwrap()[0];
        assert_eq!((next.id, berlin(next.due_at).as_str()), (1, "2026-11-23T08:00:00+01:00"));
        // The gateway restarted before sending: same text, nothing moved on.
        assert_eq!(r.fire(1, due, due + 5).unwrap(), Fired::Deliver("take the blue pill".into()));
        assert_eq!(r.schedule().unwrap()[0], next);
        // An occurrence that is not the next one is stale.
        assert_eq!(r.fire(1, due + 60, due + 60).unwrap(), Fired::Stale);
        assert_eq!(r.fire(99, due, due).unwrap(), Fired::Stale);

        // A one-off finishes; a cancelled reminder never fires.
        let at = once.next_at.unwrap();
        assert_eq!(r.fire(2, at, at).unwrap(), Fired::Deliver("dentist".into()));
        assert_eq!(r.schedule().unwrap().len(), 1);
        assert!(r.cancel(1, next.due_at - 10).unwrap().is_some());
        assert!(r.cancel(1, next.due_at - 5).unwrap().is_none());
        assert_eq!(r.fire(1, next.due_at, next.due_at).unwrap(), Fired::Stale);
        assert!(r.schedule().unwrap().is_empty());

        // Down for three days: one delivery, then the next occurrence after now.
        let daily = r.set("stretch", local("2026-11-22T09:00"), tz, Repeat::Daily, now).unwrap().unwrap();
        let late = daily.next_at.unwrap() + 3 * 86_400 + 600;
        assert_eq!(r.fire(daily.id, daily.next_at.unwrap(), late).unwrap(), Fired::Deliver("stretch".into()));
        assert_eq!(berlin(r.schedule().unwrap()[0].due_at), "2026-11-26T09:00:00+01:00");
    }

    #[test]
    fn a_past_one_off_is_refused_and_a_past_recurring_one_starts_next_time() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Reminders::open(dir.path()).unwrap();
        let tz = chrono_tz::Europe::Berlin;
        let now = DateTime::parse_from_rfc3339("2026-11-21T20:00:00+01:00").unwrap().to_utc();
        let e = r.set("x", local("2026-11-21T08:00"), tz, Repeat::None, now).unwrap().unwrap_err();
        assert_eq!(
            e.to_string(),
            "that time has already passed (it is now 2026-11-21T20:00); give a time in the future"
        );
        let daily = r.set("x", local("2026-11-21T08:00"), tz, Repeat::Daily, now).unwrap().unwrap();
        assert_eq!(berlin(daily.next_at.unwrap()), "2026-11-22T08:00:00+01:00");
        assert_eq!(daily.describe(), "every day at 08:00, next Sunday 22 November 2026 at 08:00");
    }
}
