//! Role presets: what adding a member as an adult, a teen or a child (or making them one) sets
//! up by default, and the quiet hours that follow from it.
//!
//! One table ([`preset`]) holds every default. The admin's own choices always win: a preset
//! only fills in what is still at the previous role's default (or unset), so caps or quiet hours
//! the admin chose survive any role change. Persona guidance per role lives in the worker's
//! prompt (`hearth-worker/src/prompt.rs`), which the role reaches through `TurnContext::role`.
//!
//! Quiet hours are checked by the core loop (`core/inbox.rs`), which answers a resting member's
//! messages itself: no worker, no model, at most one note per quiet period. Reminders still come.
//! The admin's side — applying a preset, setting quiet hours — is `control/assistant.rs`.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Timelike, Utc};
use chrono_tz::Tz;
use hearth_proto::control::{QuietHours, Role};

use crate::store::MemberRow;

/// What a role starts with. Caps in micro-USD.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RolePreset {
    pub daily_cap_micros: Option<u64>,
    pub monthly_cap_micros: Option<u64>,
    pub quiet_hours: Option<QuietHours>,
}

/// The defaults per role, in one place:
///
/// | role  | daily cap | monthly cap | quiet hours  |
/// |-------|-----------|-------------|--------------|
/// | adult | none      | none        | none         |
/// | teen  | $0.50     | $8.00       | none         |
/// | child | $0.25     | $3.00       | 20:00–07:00  |
pub fn preset(role: Role) -> RolePreset {
    match role {
        Role::Adult => RolePreset { daily_cap_micros: None, monthly_cap_micros: None, quiet_hours: None },
        Role::Teen => {
            RolePreset { daily_cap_micros: Some(500_000), monthly_cap_micros: Some(8_000_000), quiet_hours: None }
        }
        Role::Child => RolePreset {
            daily_cap_micros: Some(250_000),
            monthly_cap_micros: Some(3_000_000),
            quiet_hours: QuietHours::new(20 * 60, 7 * 60),
        },
    }
}

/// A quiet time in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quiet {
    /// The local date the quiet time began on (yesterday's when it wrapped midnight): one note
    /// per period is keyed by it.
    pub began_on: NaiveDate,
    /// "07:00": when it ends, local time.
    pub until: String,
}

/// Whether `now` falls in `quiet`, read on the wall clock of `tz`. DST needs no special case: a
/// quiet time is a stretch of wall-clock time, and chrono-tz gives the wall clock at any instant.
pub fn quiet_at(quiet: QuietHours, tz: Tz, now: DateTime<Utc>) -> Option<Quiet> {
    let local = now.with_timezone(&tz);
    let minute = (local.hour() * 60 + local.minute()) as u16;
    if !quiet.contains(minute) {
        return None;
    }
    let today = local.date_naive();
    let wrapped = quiet.start > quiet.end && minute < quiet.end;
    let began_on = if wrapped { today.pred_opt().unwrap_or(today) } else { today };
    Some(Quiet { began_on, until: quiet.end_text() })
}

/// What a resting member reads, once per quiet period.
pub fn resting_note(until: &str) -> String {
    format!("It's resting time now — I'll be here again at {until}. Sleep well! 🌙")
}

/// The household setting for the idle reset (`context.reset_after_idle_hours`): after this many
/// hours of silence a member's next message starts a fresh conversation; 0 or unset: never.
pub(crate) const SETTING_IDLE_RESET: &str = "context.reset_after_idle_hours";

/// Longest idle reset accepted: a year.
pub(crate) const MAX_IDLE_RESET_HOURS: u32 = 24 * 366;

/// The quiet period each member was last told about (the date it began): one note each. Owned
/// by the core loop, its one writer.
#[derive(Debug, Default)]
pub(crate) struct QuietNotes(HashMap<String, NaiveDate>);

impl QuietNotes {
    /// True the first time a member is told about the quiet period that began on `began_on`.
    pub(crate) fn first_note(&mut self, member_id: &str, began_on: NaiveDate) -> bool {
        self.0.insert(member_id.to_owned(), began_on) != Some(began_on)
    }
}

/// Seconds of silence after which a member's next message starts a fresh conversation.
pub(crate) fn idle_reset_secs(hours: u32) -> Option<i64> {
    match hours {
        0 => None,
        h => Some(i64::from(h) * 3600),
    }
}

/// What a role's preset changes for a member who had `previous` role (`None`: just added): the
/// caps and quiet hours that are still at the old role's default (or unset) move to the new
/// role's; what the admin chose stays. `(caps, quiet hours)`, each `None` when unchanged.
#[allow(clippy::type_complexity)]
pub(crate) fn preset_changes(
    m: &MemberRow,
    previous: Option<Role>,
) -> (Option<(Option<u64>, Option<u64>)>, Option<Option<QuietHours>>) {
    let new = preset(m.role);
    let old = previous.map(preset).unwrap_or(RolePreset {
        daily_cap_micros: None,
        monthly_cap_micros: None,
        quiet_hours: None,
    });
    let caps = (m.cap_daily_micros, m.cap_monthly_micros);
    let old_caps = (old.daily_cap_micros, old.monthly_cap_micros);
    let new_caps = (new.daily_cap_micros, new.monthly_cap_micros);
    let untouched = caps == (None, None) || caps == old_caps;
    let set_caps = (untouched && caps != new_caps).then_some(new_caps);
    let set_quiet = (m.quiet_hours.is_none() || m.quiet_hours == old.quiet_hours)
        .then_some(new.quiet_hours)
        .filter(|q| *q != m.quiet_hours);
    (set_caps, set_quiet)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
    }

    #[test]
    fn presets_are_the_documented_table() {
        assert_eq!(
            preset(Role::Adult),
            RolePreset { daily_cap_micros: None, monthly_cap_micros: None, quiet_hours: None }
        );
        assert_eq!(preset(Role::Teen).daily_cap_micros, Some(500_000));
        assert_eq!(preset(Role::Teen).quiet_hours, None);
        let child = preset(Role::Child);
        assert_eq!((child.daily_cap_micros, child.monthly_cap_micros), (Some(250_000), Some(3_000_000)));
        assert_eq!(child.quiet_hours.unwrap().to_string(), "20:00-07:00");
    }

    #[test]
    fn quiet_time_wraps_midnight_and_keys_the_night_by_its_start() {
        let q: QuietHours = "20:30-07:00".parse().unwrap();
        let tz: Tz = "Europe/Berlin".parse().unwrap();
        // 21:00 and 02:00 Berlin (winter, UTC+1) are the same night.
        let evening = quiet_at(q, tz, at(2025, 1, 10, 20, 0)).unwrap();
        let night = quiet_at(q, tz, at(2025, 1, 11, 1, 0)).unwrap();
        assert_eq!(evening.began_on, NaiveDate::from_ymd_opt(2025, 1, 10).unwrap());
        assert_eq!(evening, night);
        assert_eq!(night.until, "07:00");
        assert!(quiet_at(q, tz, at(2025, 1, 11, 6, 0)).is_none(), "07:00 local is awake again");
        assert!(quiet_at(q, tz, at(2025, 1, 10, 19, 29)).is_none(), "20:29 local");
        // The next evening is another period.
        assert_ne!(quiet_at(q, tz, at(2025, 1, 11, 20, 0)).unwrap().began_on, evening.began_on);
    }

    #[test]
    fn quiet_time_follows_the_wall_clock_across_dst() {
        let q: QuietHours = "20:00-07:00".parse().unwrap();
        let tz: Tz = "Europe/Berlin".parse().unwrap();
        // 05:30 UTC is 06:30 in winter (quiet) but 07:30 after the spring change (awake).
        assert!(quiet_at(q, tz, at(2025, 3, 29, 5, 30)).is_some());
        assert!(quiet_at(q, tz, at(2025, 3, 30, 5, 30)).is_none());
        // The night of the change: 01:30 UTC is 03:30 CEST, quiet, and belongs to the 29th.
        assert_eq!(
            quiet_at(q, tz, at(2025, 3, 30, 1, 30)).unwrap().began_on,
            NaiveDate::from_ymd_opt(2025, 3, 29).unwrap()
        );
        // Autumn, after the change on 26 October: 18:30 UTC is 19:30 CET (awake), 19:00 UTC is
        // 20:00 CET (quiet); the evening before, 19:30 UTC was 21:30 CEST (quiet).
        assert!(quiet_at(q, tz, at(2025, 10, 25, 19, 30)).is_some());
        assert!(quiet_at(q, tz, at(2025, 10, 26, 18, 30)).is_none());
        assert!(quiet_at(q, tz, at(2025, 10, 26, 19, 0)).is_some());
        // A quiet time starting inside the skipped hour (02:30 does not exist on 30 March): at
        // 03:00 CEST the wall clock is past it, so it is quiet.
        let q: QuietHours = "02:30-06:00".parse().unwrap();
        assert!(quiet_at(q, tz, at(2025, 3, 30, 1, 0)).is_some());
        assert!(quiet_at(q, tz, at(2025, 3, 30, 0, 59)).is_none(), "01:59 CET");
    }

    #[test]
    fn one_note_per_period() {
        let mut state = QuietNotes::default();
        let d = NaiveDate::from_ymd_opt(2025, 1, 10).unwrap();
        assert!(state.first_note("m", d));
        assert!(!state.first_note("m", d));
        assert!(state.first_note("other", d));
        assert!(state.first_note("m", d.succ_opt().unwrap()));
        assert_eq!(idle_reset_secs(0), None);
        assert_eq!(idle_reset_secs(3), Some(3 * 3600));
    }
}
