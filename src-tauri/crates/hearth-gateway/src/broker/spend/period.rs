//! Budget periods: the calendar day and month in the household's time zone.
//!
//! A period starts at local midnight and ends where the next one starts, so periods tile time
//! with no gap and no overlap: a spring-forward day is 23 hours, a fall-back day 25, Lord Howe's
//! 23½ and 24½. Where midnight itself does not exist on a DST day (America/Santiago, Asia/Beirut,
//! ...) the day starts at the first instant that does exist. Keys always carry the year
//! ("2026-11-21", "2026-11") so December never collides with last December.

use chrono::{DateTime, Datelike, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PeriodKind {
    Day,
    Month,
}

impl PeriodKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PeriodKind::Day => "day",
            PeriodKind::Month => "month",
        }
    }
}

/// One day or month in the household's zone, as the instants it covers: `[starts_at, ends_at)`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Period {
    pub kind: PeriodKind,
    /// "2026-11-21" for a day, "2026-11" for a month. Sorts in time order (years 0–9999).
    pub key: String,
    pub starts_at: DateTime<Utc>,
    /// The instant the next period starts (exclusive end).
    pub ends_at: DateTime<Utc>,
}

/// The day or month containing `at`, in zone `tz`.
///
/// Guarantees `starts_at <= at < ends_at` and that the next period starts exactly at `ends_at`
/// wherever the zone's local date never runs backwards: checked for every day of every zone in
/// chrono-tz from 1900 to 2100. (A few 19th-century zone changes moved the date back a day;
/// there the result is the nearest period.)
pub fn period_at(kind: PeriodKind, tz: Tz, at: DateTime<Utc>) -> Period {
    let local = at.with_timezone(&tz).date_naive();
    let mut first = first_day(kind, local);
    let mut p = period_from(kind, tz, first);
    // The local date names the period except where local time is not monotonic, or on a day
    // that was skipped entirely (Pacific/Apia, 2011-12-30): step to the period that holds `at`.
    for _ in 0..4 {
        let next = if at < p.starts_at {
            prev_first(kind, first)
        } else if at >= p.ends_at {
            next_first(kind, first)
        } else {
            break;
        };
        match next {
            Some(n) => first = n,
            None => break,
        }
        p = period_from(kind, tz, first);
    }
    p
}

fn first_day(kind: PeriodKind, date: NaiveDate) -> NaiveDate {
    match kind {
        PeriodKind::Day => date,
        PeriodKind::Month => date.with_day(1).unwrap_or(date),
    }
}

fn next_first(kind: PeriodKind, first: NaiveDate) -> Option<NaiveDate> {
    match kind {
        PeriodKind::Day => first.succ_opt(),
        PeriodKind::Month => {
            let (y, m) = if first.month() == 12 { (first.year() + 1, 1) } else { (first.year(), first.month() + 1) };
            NaiveDate::from_ymd_opt(y, m, 1)
        }
    }
}

fn prev_first(kind: PeriodKind, first: NaiveDate) -> Option<NaiveDate> {
    match kind {
        PeriodKind::Day => first.pred_opt(),
        PeriodKind::Month => {
            let (y, m) = if first.month() == 1 { (first.year() - 1, 12) } else { (first.year(), first.month() - 1) };
            NaiveDate::from_ymd_opt(y, m, 1)
        }
    }
}

fn period_from(kind: PeriodKind, tz: Tz, first: NaiveDate) -> Period {
    let key = match kind {
        PeriodKind::Day => day_key(first),
        PeriodKind::Month => month_key(first.year(), first.month()),
    };
    let ends_at = match next_first(kind, first) {
        Some(next) => local_midnight(tz, next),
        None => DateTime::<Utc>::MAX_UTC,
    };
    Period { kind, key, starts_at: local_midnight(tz, first), ends_at }
}

/// The instant `date` begins in `tz`: local midnight; the earlier one if midnight happens twice;
/// the first instant that exists if midnight falls in a DST gap.
fn local_midnight(tz: Tz, date: NaiveDate) -> DateTime<Utc> {
    let midnight = date.and_time(NaiveTime::MIN);
    match tz.from_local_datetime(&midnight) {
        LocalResult::Single(t) => t.with_timezone(&Utc),
        LocalResult::Ambiguous(a, b) => a.min(b).with_timezone(&Utc),
        LocalResult::None => first_instant_at_or_after(tz, midnight),
    }
}

/// Binary search over whole seconds (zone transitions fall on whole seconds) for the first
/// instant whose local time is at or after `local`. Offsets are within ±1 day, so the answer
/// lies within two days of `local` read as UTC.
fn first_instant_at_or_after(tz: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    let guess = local.and_utc().timestamp();
    let (mut lo, mut hi) = (guess - 2 * 86_400, guess + 2 * 86_400);
    let local_at = |t: i64| DateTime::<Utc>::from_timestamp(t, 0).map(|u| u.with_timezone(&tz).naive_local());
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        match local_at(mid) {
            Some(l) if l >= local => hi = mid,
            Some(_) => lo = mid + 1,
            None => return DateTime::<Utc>::MAX_UTC,
        }
    }
    DateTime::<Utc>::from_timestamp(hi, 0).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// "2026-11-21".
pub fn day_key(date: NaiveDate) -> String {
    format!("{:04}-{:02}-{:02}", date.year(), date.month(), date.day())
}

/// "2026-11". Always with the year: "12" alone would collide with every other December.
pub fn month_key(year: i32, month: u32) -> String {
    format!("{year:04}-{month:02}")
}

/// Parses "2026-11" (as `hearth usage --month` takes it) into (2026, 11).
pub fn parse_month(s: &str) -> Result<(i32, u32), String> {
    let bad = || format!("{s:?} is not a month; write it as YYYY-MM, like 2026-11");
    let t = s.trim();
    let (y, m) = t.split_once('-').ok_or_else(bad)?;
    if y.len() != 4 || m.len() != 2 || !(y.bytes().chain(m.bytes())).all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let (year, month): (i32, u32) = (y.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if !(1..=12).contains(&month) {
        return Err(format!("{s:?} has month {month}; months run from 01 to 12"));
    }
    Ok((year, month))
}

/// Parses "2026-11-21" into a date.
pub fn parse_day(s: &str) -> Result<NaiveDate, String> {
    let t = s.trim();
    let shape_ok = t.len() == 10
        && t.bytes().enumerate().all(|(i, b)| if i == 4 || i == 7 { b == b'-' } else { b.is_ascii_digit() });
    shape_ok
        .then(|| NaiveDate::parse_from_str(t, "%Y-%m-%d").ok())
        .flatten()
        .ok_or_else(|| format!("{s:?} is not a date; write it as YYYY-MM-DD, like 2026-11-21"))
}

/// Parses an IANA time zone name ("Europe/Berlin"). Case does not matter.
pub fn parse_timezone(name: &str) -> Result<Tz, String> {
    let t = name.trim();
    if t.is_empty() {
        return Err("no time zone given; use an IANA name such as \"Europe/Berlin\" or \
                    \"America/New_York\""
            .to_owned());
    }
    if let Ok(tz) = t.parse::<Tz>() {
        return Ok(tz);
    }
    chrono_tz::TZ_VARIANTS.iter().copied().find(|tz| tz.name().eq_ignore_ascii_case(t)).ok_or_else(|| {
        format!(
            "unknown time zone {name:?}; use an IANA name such as \"Europe/Berlin\" or \
             \"America/New_York\" (run `timedatectl list-timezones` to see them all)"
        )
    })
}

/// The zone this machine is set to, for a household that has not chosen one: `TZ` when it names
/// an IANA zone (POSIX's override, for a user or a service), else the system's own setting as
/// `iana-time-zone` reads it (the `/etc/localtime` link or `/etc/timezone` on Linux, the system
/// preference on macOS), else UTC.
pub fn system_timezone() -> Tz {
    let system = iana_time_zone::get_timezone();
    if let Err(e) = &system {
        tracing::debug!(error = %e, "the system's time zone could not be read");
    }
    zone_from(std::env::var("TZ").ok().as_deref(), system.ok().as_deref())
}

/// [`system_timezone`]'s choice, given what `TZ` and the system say.
fn zone_from(tz_var: Option<&str>, system: Option<&str>) -> Tz {
    let named = |name: &str| parse_timezone(name.trim_start_matches(':')).ok();
    tz_var.and_then(named).or_else(|| system.and_then(named)).unwrap_or(chrono_tz::UTC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_zone_prefers_tz_then_the_system_then_utc() {
        use chrono_tz::{Asia::Tokyo, Europe::Berlin};
        assert_eq!(zone_from(Some(":Europe/Berlin"), Some("Asia/Tokyo")), Berlin);
        assert_eq!(zone_from(Some("europe/berlin"), None), Berlin);
        // A TZ that is no IANA name (a POSIX rule, a typo) does not hide the system's zone.
        assert_eq!(zone_from(Some("CET-1CEST"), Some("Asia/Tokyo")), Tokyo);
        assert_eq!(zone_from(Some(""), Some("Asia/Tokyo")), Tokyo);
        assert_eq!(zone_from(None, Some("not a zone")), chrono_tz::UTC);
        assert_eq!(zone_from(None, None), chrono_tz::UTC);
        // The real reading goes through the same choice.
        let expected = zone_from(std::env::var("TZ").ok().as_deref(), iana_time_zone::get_timezone().ok().as_deref());
        assert_eq!(system_timezone(), expected);
    }
    use chrono::{Days, Duration};
    use chrono_tz::{
        America::{Havana, New_York, Santiago},
        Asia::{Beirut, Kolkata},
        Atlantic::Azores,
        Australia::Lord_Howe,
        Europe::Berlin,
        Pacific::Apia,
        UTC,
    };
    use proptest::prelude::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn day(tz: Tz, at: &str) -> Period {
        period_at(PeriodKind::Day, tz, utc(at))
    }

    fn month(tz: Tz, at: &str) -> Period {
        period_at(PeriodKind::Month, tz, utc(at))
    }

    fn hours(p: &Period) -> f64 {
        (p.ends_at - p.starts_at).num_seconds() as f64 / 3600.0
    }

    #[test]
    fn utc_day_and_month() {
        let p = day(UTC, "2026-11-21T13:45:00Z");
        assert_eq!(p.key, "2026-11-21");
        assert_eq!(p.starts_at, utc("2026-11-21T00:00:00Z"));
        assert_eq!(p.ends_at, utc("2026-11-22T00:00:00Z"));
        let p = month(UTC, "2026-11-21T13:45:00Z");
        assert_eq!(p.key, "2026-11");
        assert_eq!(p.starts_at, utc("2026-11-01T00:00:00Z"));
        assert_eq!(p.ends_at, utc("2026-12-01T00:00:00Z"));
        // boundaries: the first instant belongs to the new period, the last second to the old
        assert_eq!(day(UTC, "2026-11-22T00:00:00Z").key, "2026-11-22");
        assert_eq!(day(UTC, "2026-11-21T23:59:59Z").key, "2026-11-21");
        // leap February
        let p = month(UTC, "2028-02-29T12:00:00Z");
        assert_eq!((p.key.as_str(), hours(&p)), ("2028-02", 29.0 * 24.0));
    }

    #[test]
    fn december_rolls_into_january_of_the_next_year() {
        for tz in [UTC, Berlin, New_York, Kolkata, Apia, Lord_Howe] {
            let dec = period_at(PeriodKind::Month, tz, utc("2026-12-15T12:00:00Z"));
            assert_eq!(dec.key, "2026-12");
            let jan = period_at(PeriodKind::Month, tz, dec.ends_at);
            assert_eq!(jan.key, "2027-01", "{tz}");
            assert_eq!(jan.starts_at, dec.ends_at);
            assert_eq!(jan.ends_at.with_timezone(&tz).date_naive(), NaiveDate::from_ymd_opt(2027, 2, 1).unwrap());
            let d31 = period_at(PeriodKind::Day, tz, dec.ends_at - Duration::seconds(1));
            let d1 = period_at(PeriodKind::Day, tz, dec.ends_at);
            assert_eq!((d31.key.as_str(), d1.key.as_str()), ("2026-12-31", "2027-01-01"), "{tz}");
        }
        // the same month of different years are different periods
        assert_ne!(month(UTC, "2026-12-01T00:00:00Z").key, month(UTC, "2027-12-01T00:00:00Z").key);
    }

    #[test]
    fn berlin_boundaries_and_dst() {
        // CET (+1): the day starts at 23:00 UTC the day before.
        let p = day(Berlin, "2026-11-21T23:30:00Z");
        assert_eq!(p.key, "2026-11-22");
        assert_eq!(p.starts_at, utc("2026-11-21T23:00:00Z"));
        // month in summer (+2) starts at 22:00 UTC
        let p = month(Berlin, "2026-06-30T22:00:00Z");
        assert_eq!(p.key, "2026-07");
        assert_eq!(p.starts_at, utc("2026-06-30T22:00:00Z"));
        // spring forward 2026-03-29: 23 h; fall back 2026-10-25: 25 h
        let p = day(Berlin, "2026-03-29T12:00:00Z");
        assert_eq!((p.key.as_str(), hours(&p)), ("2026-03-29", 23.0));
        assert_eq!(p.starts_at, utc("2026-03-28T23:00:00Z"));
        assert_eq!(p.ends_at, utc("2026-03-29T22:00:00Z"));
        let p = day(Berlin, "2026-10-25T12:00:00Z");
        assert_eq!((p.key.as_str(), hours(&p)), ("2026-10-25", 25.0));
        // March 2026 loses an hour, October gains one
        assert_eq!(hours(&month(Berlin, "2026-03-10T00:00:00Z")), 31.0 * 24.0 - 1.0);
        assert_eq!(hours(&month(Berlin, "2026-10-10T00:00:00Z")), 31.0 * 24.0 + 1.0);
    }

    #[test]
    fn new_york_dst() {
        let p = day(New_York, "2026-03-08T12:00:00Z");
        assert_eq!((p.key.as_str(), hours(&p)), ("2026-03-08", 23.0));
        assert_eq!(p.starts_at, utc("2026-03-08T05:00:00Z"));
        let p = day(New_York, "2026-11-01T12:00:00Z");
        assert_eq!((p.key.as_str(), hours(&p)), ("2026-11-01", 25.0));
        assert_eq!(p.starts_at, utc("2026-11-01T04:00:00Z"));
        assert_eq!(p.ends_at, utc("2026-11-02T05:00:00Z"));
        // 03:30 UTC on Nov 22 is still Nov 21 in New York
        assert_eq!(day(New_York, "2026-11-22T03:30:00Z").key, "2026-11-21");
    }

    #[test]
    fn lord_howe_half_hour_dst() {
        // DST ends 2026-04-05 02:00 (+11) → 01:30 (+10:30): 24.5 h
        let p = day(Lord_Howe, "2026-04-05T06:00:00Z");
        assert_eq!((p.key.as_str(), hours(&p)), ("2026-04-05", 24.5));
        assert_eq!(p.starts_at, utc("2026-04-04T13:00:00Z"));
        // DST starts 2026-10-04 02:00 (+10:30) → 02:30 (+11): 23.5 h
        let p = day(Lord_Howe, "2026-10-04T06:00:00Z");
        assert_eq!((p.key.as_str(), hours(&p)), ("2026-10-04", 23.5));
        assert_eq!(p.starts_at, utc("2026-10-03T13:30:00Z"));
    }

    #[test]
    fn kolkata_half_hour_offset() {
        let p = day(Kolkata, "2026-11-21T18:29:59Z");
        assert_eq!(p.key, "2026-11-21");
        assert_eq!(p.ends_at, utc("2026-11-21T18:30:00Z"));
        assert_eq!(day(Kolkata, "2026-11-21T18:30:00Z").key, "2026-11-22");
        let p = month(Kolkata, "2026-11-30T18:30:00Z");
        assert_eq!((p.key.as_str(), p.starts_at), ("2026-12", utc("2026-11-30T18:30:00Z")));
    }

    #[test]
    fn apia_today_and_the_day_samoa_skipped() {
        // +13 today, no DST: the day starts at 11:00 UTC the day before
        let p = day(Apia, "2026-11-21T12:00:00Z");
        assert_eq!((p.key.as_str(), p.starts_at), ("2026-11-22", utc("2026-11-21T11:00:00Z")));
        // 2011-12-29 (-10) was followed by 2011-12-31 (+14): Dec 30 never happened.
        let d29 = day(Apia, "2011-12-30T09:59:59Z");
        assert_eq!((d29.key.as_str(), hours(&d29)), ("2011-12-29", 24.0));
        let next = period_at(PeriodKind::Day, Apia, d29.ends_at);
        assert_eq!(next.key, "2011-12-31");
        assert_eq!(next.starts_at, d29.ends_at);
        assert_eq!(next.starts_at, utc("2011-12-30T10:00:00Z"));
        let dec = month(Apia, "2011-12-15T00:00:00Z");
        assert_eq!(hours(&dec), 30.0 * 24.0, "December 2011 had 30 days in Samoa");
    }

    #[test]
    fn midnight_in_a_dst_gap_starts_at_the_first_instant_that_exists() {
        // Santiago springs forward at 24:00 → 01:00 on 2026-09-06: no midnight that day.
        let p = day(Santiago, "2026-09-06T12:00:00Z");
        assert_eq!(p.key, "2026-09-06");
        assert_eq!(p.starts_at, utc("2026-09-06T04:00:00Z"));
        assert_eq!(p.starts_at.with_timezone(&Santiago).to_rfc3339(), "2026-09-06T01:00:00-03:00");
        assert_eq!(hours(&p), 23.0);
        let prev = period_at(PeriodKind::Day, Santiago, p.starts_at - Duration::seconds(1));
        assert_eq!((prev.key.as_str(), prev.ends_at, hours(&prev)), ("2026-09-05", p.starts_at, 24.0));
        // Falls back at 24:00 → 23:00 on 2026-04-05: the 4th is 25 h, midnight happens once.
        let p = day(Santiago, "2026-04-04T12:00:00Z");
        assert_eq!((p.key.as_str(), hours(&p)), ("2026-04-04", 25.0));
        // Beirut sprang forward at 00:00 → 01:00 on 2024-03-31.
        let p = day(Beirut, "2024-03-31T12:00:00Z");
        assert_eq!(p.starts_at.with_timezone(&Beirut).to_rfc3339(), "2024-03-31T01:00:00+03:00");
        assert_eq!(hours(&p), 23.0);
        // and the month of March 2024 in Beirut still starts on the 1st
        assert_eq!(month(Beirut, "2024-03-31T12:00:00Z").starts_at, utc("2024-02-29T22:00:00Z"));
    }

    #[test]
    fn midnight_that_happens_twice_starts_the_day_at_the_first() {
        // Havana falls back at 01:00 CDT → 00:00 CST on 2026-11-01: midnight twice.
        let p = day(Havana, "2026-11-01T04:30:00Z");
        assert_eq!((p.key.as_str(), p.starts_at), ("2026-11-01", utc("2026-11-01T04:00:00Z")));
        assert_eq!(hours(&p), 25.0);
        let prev = day(Havana, "2026-11-01T03:59:59Z");
        assert_eq!((prev.key.as_str(), prev.ends_at, hours(&prev)), ("2026-10-31", p.starts_at, 24.0));
        // The Azores: 01:00 +00 → 00:00 -01 on 2026-10-25.
        let p = day(Azores, "2026-10-25T00:30:00Z");
        assert_eq!((p.key.as_str(), p.starts_at, hours(&p)), ("2026-10-25", utc("2026-10-25T00:00:00Z"), 25.0));
    }

    #[test]
    fn a_date_that_ran_backwards_still_gets_a_period_that_holds_it() {
        // Sitka left Russian time for American in 1867: the local date went back a day, so the
        // local date alone names a period that has already ended.
        let tz = chrono_tz::America::Sitka;
        let mut at = utc("1867-10-17T00:00:00Z");
        while at < utc("1867-10-22T00:00:00Z") {
            let p = period_at(PeriodKind::Day, tz, at);
            assert!(p.starts_at <= at && at < p.ends_at, "{at}: {p:?}");
            assert_eq!(period_at(PeriodKind::Day, tz, p.ends_at).starts_at, p.ends_at);
            at += Duration::minutes(10);
        }
    }

    #[test]
    fn keys_and_parsers() {
        assert_eq!(month_key(2026, 11), "2026-11");
        assert_eq!(month_key(2027, 1), "2027-01");
        assert_eq!(day_key(NaiveDate::from_ymd_opt(2026, 1, 5).unwrap()), "2026-01-05");
        assert_eq!(parse_month("2026-11"), Ok((2026, 11)));
        assert_eq!(parse_month(" 2027-01 "), Ok((2027, 1)));
        for bad in
            ["", "11", "2026", "2026-13", "2026-00", "2026-1", "26-11", "2026/11", "2026-11-01", "abcd-ef", "+026-11"]
        {
            assert!(parse_month(bad).is_err(), "{bad:?}");
        }
        assert!(parse_month("2026-13").unwrap_err().contains("01 to 12"));
        assert!(parse_month("nov").unwrap_err().contains("2026-11"));
        assert_eq!(parse_day("2026-11-21"), Ok(NaiveDate::from_ymd_opt(2026, 11, 21).unwrap()));
        for bad in ["2026-02-30", "2026-11", "2026-1-21", "21.11.2026", "+2026-11-2"] {
            assert!(parse_day(bad).is_err(), "{bad:?}");
        }
        // keys sort in time order
        let mut keys = vec![month_key(2027, 1), month_key(2026, 12), month_key(2026, 2)];
        keys.sort();
        assert_eq!(keys, ["2026-02", "2026-12", "2027-01"]);
    }

    #[test]
    fn timezones_parse_with_a_helpful_error() {
        assert_eq!(parse_timezone("Europe/Berlin"), Ok(Berlin));
        assert_eq!(parse_timezone("europe/berlin"), Ok(Berlin));
        assert_eq!(parse_timezone(" UTC "), Ok(UTC));
        let e = parse_timezone("Mars/Olympus").unwrap_err();
        assert!(e.contains("Mars/Olympus") && e.contains("Europe/Berlin"), "{e}");
        assert!(parse_timezone("").unwrap_err().contains("Europe/Berlin"));
        assert!(parse_timezone("+02:00").is_err());
    }

    fn any_zone() -> impl Strategy<Value = Tz> {
        (0..chrono_tz::TZ_VARIANTS.len()).prop_map(|i| chrono_tz::TZ_VARIANTS[i])
    }

    const NAMED: [Tz; 8] = [UTC, Berlin, New_York, Lord_Howe, Apia, Kolkata, Santiago, Beirut];

    fn named_zone() -> impl Strategy<Value = Tz> {
        prop::sample::select(NAMED.to_vec())
    }

    fn check_tiling(kind: PeriodKind, tz: Tz, secs: i64) -> Result<(), TestCaseError> {
        let at = DateTime::<Utc>::from_timestamp(secs, 0).unwrap();
        let p = period_at(kind, tz, at);
        prop_assert!(p.starts_at <= at && at < p.ends_at, "{tz} {at}: {p:?}");
        let next = period_at(kind, tz, p.ends_at);
        prop_assert_eq!(next.starts_at, p.ends_at, "{} {}", tz, at);
        prop_assert!(next.key > p.key, "{tz}: {} then {}", p.key, next.key);
        let prev = period_at(kind, tz, p.starts_at - Duration::seconds(1));
        prop_assert_eq!(prev.ends_at, p.starts_at, "{} {}", tz, at);
        // the key is the local date (or month) where the period starts
        let local = p.starts_at.with_timezone(&tz).date_naive();
        let expect = match kind {
            PeriodKind::Day => day_key(local),
            PeriodKind::Month => month_key(local.year(), local.month()),
        };
        prop_assert_eq!(&p.key, &expect);
        // In these zones every day since 1900 is 22–26 h and every month 27–32 days. (Not in every
        // zone: Kwajalein's 1969 date-line move made a 47-hour day, Casey's base switches 16-hour
        // ones.)
        if NAMED.contains(&tz) {
            let len = p.ends_at - p.starts_at;
            match kind {
                PeriodKind::Day => {
                    prop_assert!(len >= Duration::hours(22) && len <= Duration::hours(26), "{tz} {}: {len:?}", p.key)
                }
                PeriodKind::Month => {
                    prop_assert!(len >= Duration::days(27) && len <= Duration::days(32), "{tz} {}: {len:?}", p.key)
                }
            }
        }
        Ok(())
    }

    // 1900-01-02 .. 2200-01-01
    const FROM: i64 = -2_208_902_400;
    const TO: i64 = 7_258_118_400;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        #[test]
        fn days_tile_time(tz in named_zone(), secs in FROM..TO) {
            check_tiling(PeriodKind::Day, tz, secs)?;
        }

        #[test]
        fn months_tile_time(tz in named_zone(), secs in FROM..TO) {
            check_tiling(PeriodKind::Month, tz, secs)?;
        }

        #[test]
        fn every_zone_tiles(tz in any_zone(), secs in FROM..TO, month in any::<bool>()) {
            check_tiling(if month { PeriodKind::Month } else { PeriodKind::Day }, tz, secs)?;
        }

        #[test]
        fn around_transitions(tz in named_zone(), year in 2020i32..2040, doy in 0u64..366, secs in -7200i64..7200) {
            // instants within two hours of some local midnight: where DST bugs live
            let d = NaiveDate::from_ymd_opt(year, 1, 1).unwrap() + Days::new(doy);
            let m = local_midnight(tz, d) + Duration::seconds(secs);
            check_tiling(PeriodKind::Day, tz, m.timestamp())?;
            check_tiling(PeriodKind::Month, tz, m.timestamp())?;
        }
    }
}
