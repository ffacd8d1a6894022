//! What members and the admin read about spend: `/usage`, `/family`, the 80 % heads-up, the
//! question put to the admin and its answer. Pure functions of the budget's numbers, so every
//! sentence is tested.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::{CapKind, CapStanding, Standing, format_usd};

/// "at midnight" for a day that resets tonight, "on Monday 1 December" for a month.
pub fn when_it_resets(kind: CapKind, resets_at: DateTime<Utc>, tz: Tz) -> String {
    let local = resets_at.with_timezone(&tz);
    match kind {
        CapKind::MemberDaily => format!("at {}", local.format("%H:%M").to_string().replace("00:00", "midnight")),
        CapKind::MemberMonthly | CapKind::HouseholdMonthly => format!("on {}", local.format("%A %-d %B")),
    }
}

fn line(label: &str, s: &CapStanding, tz: Tz) -> String {
    match s.limit_micros {
        Some(limit) => format!(
            "{label}: {} of {} ({} left, resets {})",
            format_usd(s.spent_micros),
            format_usd(limit),
            format_usd(s.remaining_micros.unwrap_or(0)),
            when_it_resets(s.kind, s.resets_at, tz)
        ),
        None => format!("{label}: {}", format_usd(s.spent_micros)),
    }
}

/// The member's `/usage` answer.
pub fn usage(standing: &Standing, tz: Tz) -> String {
    let mut out = vec![line("Today", &standing.daily, tz), line("This month", &standing.monthly, tz)];
    if standing.daily.limit_micros.is_none() && standing.monthly.limit_micros.is_none() {
        out.push("You have no spending limits.".to_owned());
    }
    if let Some(limit) = standing.household.limit_micros {
        out.push(format!(
            "The household has used {} of {} this month.",
            format_usd(standing.household.spent_micros),
            format_usd(limit)
        ));
    }
    out.join("\n")
}

/// The admin's `/family` answer: one line per member, then the household.
pub fn family(members: &[(String, Standing)], household: &CapStanding) -> String {
    let mut out = Vec::new();
    for (name, s) in members {
        let cap = |c: &CapStanding| c.limit_micros.map(|l| format!(" of {}", format_usd(l))).unwrap_or_default();
        out.push(format!(
            "{name}: today {}{}, month {}{}",
            format_usd(s.daily.spent_micros),
            cap(&s.daily),
            format_usd(s.monthly.spent_micros),
            cap(&s.monthly)
        ));
    }
    let cap = household.limit_micros.map(|l| format!(" of {}", format_usd(l))).unwrap_or_default();
    out.push(format!("Household this month: {}{}", format_usd(household.spent_micros), cap));
    out.join("\n")
}

/// The one-time heads-up at 80 %.
pub fn heads_up(kind: CapKind, spent: u64, limit: u64, resets_at: DateTime<Utc>, tz: Tz) -> String {
    let what = match kind {
        CapKind::MemberDaily => "today's allowance",
        CapKind::MemberMonthly => "this month's allowance",
        CapKind::HouseholdMonthly => "the household's allowance for this month",
    };
    format!(
        "Heads-up: you've used {} of {what} ({} of {}). It resets {}.",
        "80%",
        format_usd(spent),
        format_usd(limit),
        when_it_resets(kind, resets_at, tz)
    )
}

/// The question to the admin when `name` hit a cap.
pub fn admin_question(name: &str, kind: CapKind, limit: u64) -> String {
    match kind {
        CapKind::MemberDaily => format!("{name} has reached their daily limit of {}. Raise it for today?", format_usd(limit)),
        CapKind::MemberMonthly => {
            format!("{name} has reached their monthly limit of {}. Raise it for this month?", format_usd(limit))
        }
        CapKind::HouseholdMonthly => format!(
            "The household has reached its monthly limit of {} ({name} was refused). Raise it for this month?",
            format_usd(limit)
        ),
    }
}

/// What the admin's question turns into once answered (its buttons are removed).
pub fn admin_answered(name: &str, kind: CapKind, extra: Option<u64>) -> String {
    let whose = match kind {
        CapKind::MemberDaily => format!("{name}'s daily limit"),
        CapKind::MemberMonthly => format!("{name}'s monthly limit"),
        CapKind::HouseholdMonthly => "The household's monthly limit".to_owned(),
    };
    match extra {
        Some(extra) => format!("{whose}: ✓ raised by {} for this period.", format_usd(extra)),
        None => format!("{whose}: ✓ left as it is."),
    }
}

/// What the member hears when the admin raised their cap.
pub fn member_raised(kind: CapKind, extra: u64) -> String {
    let period = match kind {
        CapKind::MemberDaily => "today",
        CapKind::MemberMonthly | CapKind::HouseholdMonthly => "this month",
    };
    format!("Good news: your limit was raised by {} for {period}. Go ahead!", format_usd(extra))
}

/// Button data: `cap:<approval id>:<extra micros>` (0 = leave as it is). Well under 64 bytes.
pub fn button_data(approval_id: i64, extra: u64) -> String {
    format!("cap:{approval_id}:{extra}")
}

pub fn parse_button(data: &str) -> Option<(i64, u64)> {
    let mut parts = data.strip_prefix("cap:")?.split(':');
    let id = parts.next()?.parse().ok()?;
    let extra = parts.next()?.parse().ok()?;
    parts.next().is_none().then_some((id, extra))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn standing(kind: CapKind, spent: u64, limit: Option<u64>, resets_at: DateTime<Utc>) -> CapStanding {
        CapStanding {
            kind,
            period_key: String::new(),
            spent_micros: spent,
            reserved_micros: 0,
            limit_micros: limit,
            granted_micros: 0,
            remaining_micros: limit.map(|l| l.saturating_sub(spent)),
            resets_at,
            percent: limit.map(|l| (spent * 100).checked_div(l).map_or(100, |p| p.min(100) as u8)),
        }
    }

    #[test]
    fn usage_reads_well_with_and_without_caps() {
        let tz: Tz = "Europe/Berlin".parse().unwrap();
        let midnight = Utc.with_ymd_and_hms(2026, 11, 21, 23, 0, 0).unwrap();
        let month_end = Utc.with_ymd_and_hms(2026, 11, 30, 23, 0, 0).unwrap();
        let s = Standing {
            member: "ana".into(),
            daily: standing(CapKind::MemberDaily, 30_000, Some(50_000), midnight),
            monthly: standing(CapKind::MemberMonthly, 1_200_000, Some(5_000_000), month_end),
            household: standing(CapKind::HouseholdMonthly, 9_000_000, Some(30_000_000), month_end),
        };
        let text = usage(&s, tz);
        assert!(text.contains("Today: $0.03 of $0.05 ($0.02 left, resets at midnight)"), "{text}");
        assert!(text.contains("This month: $1.20 of $5.00 ($3.80 left, resets on Tuesday 1 December)"), "{text}");
        assert!(text.contains("household has used $9.00 of $30.00"), "{text}");

        let free = Standing {
            member: "bo".into(),
            daily: standing(CapKind::MemberDaily, 10, None, midnight),
            monthly: standing(CapKind::MemberMonthly, 10, None, month_end),
            household: standing(CapKind::HouseholdMonthly, 10, None, month_end),
        };
        assert!(usage(&free, tz).contains("no spending limits"));
    }

    #[test]
    fn button_data_round_trips_and_fits_telegram() {
        let d = button_data(123_456_789, 5_000_000);
        assert!(d.len() <= 64);
        assert_eq!(parse_button(&d), Some((123_456_789, 5_000_000)));
        for bad in ["", "cap:", "cap:1", "cap:x:1", "cap:1:1:1", "other:1:1"] {
            assert_eq!(parse_button(bad), None, "{bad}");
        }
    }

    #[test]
    fn admin_sentences() {
        assert_eq!(admin_question("Ana", CapKind::MemberDaily, 50_000), "Ana has reached their daily limit of $0.05. Raise it for today?");
        assert_eq!(admin_answered("Ana", CapKind::MemberDaily, Some(1_000_000)), "Ana's daily limit: ✓ raised by $1.00 for this period.");
        assert_eq!(admin_answered("Ana", CapKind::HouseholdMonthly, None), "The household's monthly limit: ✓ left as it is.");
        assert_eq!(member_raised(CapKind::MemberDaily, 1_000_000), "Good news: your limit was raised by $1.00 for today. Go ahead!");
        let tz: Tz = "UTC".parse().unwrap();
        let t = heads_up(CapKind::MemberDaily, 40_000, 50_000, Utc.with_ymd_and_hms(2026, 11, 22, 0, 0, 0).unwrap(), tz);
        assert_eq!(t, "Heads-up: you've used 80% of today's allowance ($0.04 of $0.05). It resets at midnight.");
    }
}
