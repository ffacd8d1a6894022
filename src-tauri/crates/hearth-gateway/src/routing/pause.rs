//! When a pause ends, from the words an admin typed: after `/pause NAME` in Telegram, or
//! `hearth member pause NAME --for 1h | --until 15:30 | --tonight` (the CLI turns its flags into
//! the same words). One pure function, so the bot and the CLI cannot disagree.
//!
//! - nothing: until resumed;
//! - a duration: `1h`, `30m`, `2h30m` (at most [`MAX_PAUSE_HOURS`]);
//! - `tonight`: until 07:00 the next morning (the next 07:00 still to come);
//! - `until HH:MM` (or just `HH:MM`): the next time the household's clock shows it.
//!
//! Wall-clock times are read in the household's zone with chrono-tz, so a daylight-saving change
//! needs no special case: a time that a spring-forward night skips is read an hour later (the
//! instant it would have been), and one an autumn night shows twice as its first showing.

use chrono::{DateTime, Duration, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

/// Longest timed pause: a week. Longer ones are "until resumed".
pub const MAX_PAUSE_HOURS: i64 = 7 * 24;

/// When "tonight" ends: 07:00 local time.
const MORNING: (u32, u32) = (7, 0);

/// What an admin reads after words this does not understand.
pub const PAUSE_HELP: &str =
    "say how long: 1h, 30m or 2h30m, tonight (until 7:00), or until HH:MM — or nothing, until resumed";

/// The instant a pause given by `words` ends, read at `now` in `tz`; `Ok(None)`: until resumed.
/// `Err` is one sentence for the admin.
pub fn pause_end(words: &str, now: DateTime<Utc>, tz: Tz) -> Result<Option<DateTime<Utc>>, String> {
    let words = words.trim().to_ascii_lowercase();
    if words.is_empty() {
        return Ok(None);
    }
    if words == "tonight" {
        return Ok(Some(next_local(MORNING.0, MORNING.1, now, tz)));
    }
    let clock = words.strip_prefix("until").map(str::trim).unwrap_or(&words);
    if let Some((h, m)) = clock_time(clock) {
        return Ok(Some(next_local(h, m, now, tz)));
    }
    if words.starts_with("until") {
        return Err(format!("\"{}\" is not a time of day; write it like until 15:30", clock));
    }
    match duration(&words) {
        Some(d) if d > Duration::zero() && d <= Duration::hours(MAX_PAUSE_HOURS) => Ok(Some(now + d)),
        Some(d) if d > Duration::zero() => {
            Err(format!("{words} is longer than a week; pause without a time instead, and resume when you want"))
        }
        Some(_) => Err(format!("{words} is no time at all; {PAUSE_HELP}")),
        None => Err(format!("I don't understand \"{words}\"; {PAUSE_HELP}")),
    }
}

/// "1h", "30m", "2h30m", "2h 30m", "90m": hours then minutes, at least one of them.
fn duration(words: &str) -> Option<Duration> {
    let compact: String = words.chars().filter(|c| !c.is_whitespace()).collect();
    let (hours, rest) = match compact.split_once('h') {
        Some((h, rest)) => (Some(h), rest),
        None => (None, compact.as_str()),
    };
    let minutes = match rest {
        "" => None,
        m => Some(m.strip_suffix('m')?),
    };
    if hours.is_none() && minutes.is_none() {
        return None;
    }
    let number = |s: Option<&str>| -> Option<i64> {
        match s {
            None => Some(0),
            Some(s) if !s.is_empty() && s.len() <= 5 && s.bytes().all(|b| b.is_ascii_digit()) => s.parse().ok(),
            Some(_) => None,
        }
    };
    Some(Duration::hours(number(hours)?) + Duration::minutes(number(minutes)?))
}

/// "15:30", "7:05" → (15, 30), (7, 5): one or two digits of hours, two of minutes.
fn clock_time(s: &str) -> Option<(u32, u32)> {
    let (h, m) = s.split_once(':')?;
    let digits = |p: &str, len: std::ops::RangeInclusive<usize>| {
        (len.contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit())).then(|| p.parse::<u32>().ok()).flatten()
    };
    let (h, m) = (digits(h, 1..=2)?, digits(m, 2..=2)?);
    (h <= 23 && m <= 59).then_some((h, m))
}

/// The next instant after `now` at which the wall clock of `tz` shows `h:m`.
fn next_local(h: u32, m: u32, now: DateTime<Utc>, tz: Tz) -> DateTime<Utc> {
    let time = NaiveTime::from_hms_opt(h, m, 0).unwrap_or(NaiveTime::MIN);
    let mut day = now.with_timezone(&tz).date_naive();
    // Today's showing may have passed; tomorrow's cannot have. A third day only guards a zone
    // that skipped a whole day.
    for _ in 0..3 {
        let local = day.and_time(time);
        let at = tz
            .from_local_datetime(&local)
            .earliest()
            // Skipped by a spring-forward gap: an hour later, the instant it would have been.
            .or_else(|| tz.from_local_datetime(&(local + Duration::hours(1))).earliest())
            .map(|t| t.with_timezone(&Utc));
        if let Some(at) = at.filter(|at| *at > now) {
            return at;
        }
        day = day.succ_opt().unwrap_or(day);
    }
    now + Duration::days(1)
}

/// How an admin reads the end of a pause: "15:30" today, "07:00 tomorrow", "Tue 12 May 15:30".
pub fn until_text(until: DateTime<Utc>, now: DateTime<Utc>, tz: Tz) -> String {
    let (at, today) = (until.with_timezone(&tz), now.with_timezone(&tz).date_naive());
    if at.date_naive() == today {
        at.format("%H:%M").to_string()
    } else if Some(at.date_naive()) == today.succ_opt() {
        format!("{} tomorrow", at.format("%H:%M"))
    } else {
        at.format("%a %-d %b %H:%M").to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    const BERLIN: Tz = chrono_tz::Europe::Berlin;

    #[test]
    fn durations() {
        let now = at("2026-05-12T10:00:00Z");
        let end = |w: &str| pause_end(w, now, BERLIN);
        assert_eq!(end(""), Ok(None));
        assert_eq!(end("  "), Ok(None));
        assert_eq!(end("1h"), Ok(Some(at("2026-05-12T11:00:00Z"))));
        assert_eq!(end("30m"), Ok(Some(at("2026-05-12T10:30:00Z"))));
        assert_eq!(end("2h30m"), Ok(Some(at("2026-05-12T12:30:00Z"))));
        assert_eq!(end("2H 30M"), Ok(Some(at("2026-05-12T12:30:00Z"))));
        assert_eq!(end("90m"), Ok(Some(at("2026-05-12T11:30:00Z"))));
        assert_eq!(end("168h"), Ok(Some(at("2026-05-19T10:00:00Z"))));
        assert!(end("169h").unwrap_err().contains("longer than a week"));
        assert!(end("0h").unwrap_err().contains("no time at all"));
        assert!(end("0m").is_err());
        for bad in ["h", "m", "hm", "1", "1x", "-1h", "1h30", "1.5h", "h30m", "1m30h", "99999999h", "soon", "1h1h"] {
            let err = end(bad).unwrap_err();
            assert!(err.contains("1h, 30m or 2h30m"), "{bad}: {err}");
        }
    }

    #[test]
    fn times_of_day_are_the_next_showing_in_the_household_zone() {
        // 10:00 UTC is 12:00 in Berlin (summer time).
        let now = at("2026-05-12T10:00:00Z");
        let end = |w: &str| pause_end(w, now, BERLIN).unwrap().unwrap();
        assert_eq!(end("until 15:30"), at("2026-05-12T13:30:00Z"));
        assert_eq!(end("15:30"), at("2026-05-12T13:30:00Z"));
        assert_eq!(end("Until 9:05"), at("2026-05-13T07:05:00Z"), "9:05 has passed today");
        assert_eq!(end("until 12:00"), at("2026-05-13T10:00:00Z"), "now is not 'next'");
        assert_eq!(end("tonight"), at("2026-05-13T05:00:00Z"));
        // Just after midnight, tonight is this morning's 07:00.
        assert_eq!(pause_end("tonight", at("2026-05-12T23:30:00Z"), BERLIN), Ok(Some(at("2026-05-13T05:00:00Z"))));
        for bad in ["until 25:00", "until 12:60", "until noon", "until 1:5", "until", "until 12:"] {
            assert!(pause_end(bad, now, BERLIN).unwrap_err().contains("until 15:30"), "{bad}");
        }
    }

    #[test]
    fn daylight_saving_changes() {
        // Berlin springs forward on 29 March 2026 at 02:00 → 03:00: 02:30 does not exist that
        // night, so the pause ends at 03:30 local (01:30 UTC), the instant 02:30 would have been.
        let before = at("2026-03-28T23:00:00Z"); // 00:00 local
        assert_eq!(pause_end("until 2:30", before, BERLIN), Ok(Some(at("2026-03-29T01:30:00Z"))));
        // Tonight across the change: 07:00 summer time is 05:00 UTC.
        assert_eq!(pause_end("tonight", at("2026-03-28T21:00:00Z"), BERLIN), Ok(Some(at("2026-03-29T05:00:00Z"))));
        // Falls back on 25 October 2026 at 03:00 → 02:00: 02:30 comes twice; the first one.
        assert_eq!(pause_end("until 2:30", at("2026-10-24T22:00:00Z"), BERLIN), Ok(Some(at("2026-10-25T00:30:00Z"))));
        // A duration is real time, whatever the wall clock does.
        assert_eq!(pause_end("3h", at("2026-03-29T00:00:00Z"), BERLIN), Ok(Some(at("2026-03-29T03:00:00Z"))));
    }

    #[test]
    fn the_end_reads_plainly() {
        let now = at("2026-05-12T10:00:00Z");
        assert_eq!(until_text(at("2026-05-12T13:30:00Z"), now, BERLIN), "15:30");
        assert_eq!(until_text(at("2026-05-13T05:00:00Z"), now, BERLIN), "07:00 tomorrow");
        assert_eq!(until_text(at("2026-05-15T05:00:00Z"), now, BERLIN), "Fri 15 May 07:00");
    }
}
