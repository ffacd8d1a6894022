//! The budget's unit and property tests: caps are never overshot, whatever the order of calls.

use super::*;
use chrono::Duration;
use chrono_tz::{America::New_York, Europe::Berlin, UTC};
use proptest::prelude::*;
use std::collections::HashSet;

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

const NOW: &str = "2026-11-21T12:00:00Z";

/// settled + reserved <= limit for every capped bucket, read from the inside.
fn assert_never_over(b: &Budget) {
    for ((scope, kind, key), bucket) in &b.buckets {
        let cap = match (scope, kind) {
            (Scope::Member(m), PeriodKind::Day) => b.member_caps.get(m).and_then(|c| c.daily),
            (Scope::Member(m), PeriodKind::Month) => b.member_caps.get(m).and_then(|c| c.monthly),
            (Scope::Household, PeriodKind::Month) => b.household_cap,
            (Scope::Household, PeriodKind::Day) => None,
        };
        if let Some(cap) = cap {
            let limit = cap + bucket.granted;
            assert!(
                bucket.settled + bucket.reserved <= limit,
                "{scope:?} {kind:?} {key}: {} settled + {} reserved > {limit}",
                bucket.settled,
                bucket.reserved
            );
        }
    }
}

#[test]
fn no_caps_never_refuses_and_still_counts() {
    let mut b = Budget::new(UTC);
    let now = utc(NOW);
    let h = b.reserve("alice", u64::MAX / 2, now).unwrap();
    assert_eq!(b.settle(h, 1_234), vec![]);
    let h = b.reserve("alice", u64::MAX, now).unwrap();
    b.release(h);
    assert_eq!(b.spent(&Scope::Member("alice".into()), PeriodKind::Day, now), 1_234);
    assert_eq!(b.spent(&Scope::Member("alice".into()), PeriodKind::Month, now), 1_234);
    assert_eq!(b.spent(&Scope::Household, PeriodKind::Day, now), 1_234);
    assert_eq!(b.spent(&Scope::Household, PeriodKind::Month, now), 1_234);
    let s = b.standing("alice", now);
    assert_eq!(s.caps().count(), 0);
    assert_eq!(s.remaining_micros(), None);
    assert_eq!((s.daily.spent_micros, s.daily.reserved_micros, s.daily.percent), (1_234, 0, None));
}

#[test]
fn zero_cap_refuses_everything() {
    let mut b = Budget::new(UTC);
    b.set_member_caps("kid", Some(0), None);
    let hit = b.reserve("kid", 0, utc(NOW)).unwrap_err();
    assert_eq!(hit.kind, CapKind::MemberDaily);
    assert_eq!(hit.limit_micros, 0);
    assert!(hit.to_string().contains("daily limit is $0.00"), "{hit}");
    b.set_member_caps("kid", None, None);
    b.set_household_cap(Some(0));
    assert_eq!(b.reserve("kid", 0, utc(NOW)).unwrap_err().kind, CapKind::HouseholdMonthly);
    // others in the house too: the household cap applies to everyone
    assert!(b.reserve("mum", 1, utc(NOW)).is_err());
}

#[test]
fn the_last_micro_fits_and_the_next_does_not() {
    let mut b = Budget::new(UTC);
    let now = utc(NOW);
    b.set_member_caps("alice", Some(50_000), None);
    let h1 = b.reserve("alice", 30_000, now).unwrap();
    let h2 = b.reserve("alice", 20_000, now).unwrap();
    let hit = b.reserve("alice", 1, now).unwrap_err();
    assert_eq!(
        hit,
        CapHit {
            kind: CapKind::MemberDaily,
            period_key: "2026-11-21".into(),
            limit_micros: 50_000,
            spent_micros: 0,
            reserved_micros: 50_000,
            requested_micros: 1,
            resets_at: utc("2026-11-22T00:00:00Z"),
        }
    );
    assert_eq!(
        hit.to_string(),
        "The daily limit of $0.05 would be exceeded: $0.00 spent, $0.05 held for calls in progress, \
         and this call may cost up to $0.000001. It resets at 2026-11-22 00:00 UTC"
    );
    // settling for less frees the difference
    let _ = b.settle(h1, 10_000);
    let h3 = b.reserve("alice", 20_000, now).unwrap();
    assert!(b.reserve("alice", 1, now).is_err());
    // releasing frees all of it
    b.release(h2);
    let h4 = b.reserve("alice", 20_000, now).unwrap();
    assert!(b.reserve("alice", 1, now).is_err());
    let s = b.standing("alice", now);
    assert_eq!(
        (s.daily.spent_micros, s.daily.reserved_micros, s.daily.remaining_micros),
        (10_000, 40_000, Some(0))
    );
    b.release(h3);
    b.release(h4);
    assert_never_over(&b);
}

#[test]
fn refusal_is_atomic() {
    let mut b = Budget::new(UTC);
    let now = utc(NOW);
    b.set_member_caps("alice", Some(100_000), Some(1_000_000));
    b.set_household_cap(Some(60_000));
    let h = b.reserve("bob", 50_000, now).unwrap();
    let hit = b.reserve("alice", 20_000, now).unwrap_err();
    assert_eq!(hit.kind, CapKind::HouseholdMonthly);
    assert_eq!(hit.reserved_micros, 50_000);
    // alice's own buckets were not charged by the refused call
    let s = b.standing("alice", now);
    assert_eq!((s.daily.reserved_micros, s.monthly.reserved_micros), (0, 0));
    assert_eq!(s.household.reserved_micros, 50_000);
    assert_eq!(s.remaining_micros(), Some(10_000));
    b.release(h);
}

#[test]
fn refusal_names_the_cap_that_lasts_longest() {
    let now = utc(NOW);
    let setup = |daily, monthly, house| {
        let mut b = Budget::new(UTC);
        b.set_member_caps("a", daily, monthly);
        b.set_household_cap(house);
        b
    };
    // only the daily cap is exceeded
    assert_eq!(setup(Some(10), Some(100), Some(100)).reserve("a", 11, now).unwrap_err().kind, CapKind::MemberDaily);
    // daily and monthly: monthly, since tomorrow the daily reset will not help
    let hit = setup(Some(10), Some(10), None).reserve("a", 11, now).unwrap_err();
    assert_eq!((hit.kind, hit.resets_at), (CapKind::MemberMonthly, utc("2026-12-01T00:00:00Z")));
    // daily and household: household
    assert_eq!(setup(Some(10), None, Some(10)).reserve("a", 11, now).unwrap_err().kind, CapKind::HouseholdMonthly);
    // all three: the member's own monthly
    assert_eq!(setup(Some(10), Some(10), Some(10)).reserve("a", 11, now).unwrap_err().kind, CapKind::MemberMonthly);
    // household only
    assert_eq!(setup(None, Some(100), Some(10)).reserve("a", 11, now).unwrap_err().kind, CapKind::HouseholdMonthly);
}

#[test]
fn grants_raise_only_the_named_period() {
    let mut b = Budget::new(UTC);
    let now = utc(NOW);
    b.set_member_caps("kid", Some(50_000), Some(1_000_000));
    let h = b.reserve("kid", 50_000, now).unwrap();
    let _ = b.settle(h, 50_000);
    let hit = b.reserve("kid", 10_000, now).unwrap_err();
    assert_eq!(hit.kind, CapKind::MemberDaily);
    // a grant for another day, or for the month, or for another member does not help today
    b.grant("kid", CapKind::MemberDaily, "2026-11-22", 1_000_000);
    b.grant("kid", CapKind::MemberMonthly, &hit.period_key, 1_000_000);
    b.grant("other", CapKind::MemberDaily, &hit.period_key, 1_000_000);
    assert_eq!(b.reserve("kid", 10_000, now).unwrap_err().kind, CapKind::MemberDaily);
    // the admin's +$1 for today does
    b.grant("kid", CapKind::MemberDaily, &hit.period_key, 1_000_000);
    let h = b.reserve("kid", 10_000, now).unwrap();
    b.release(h);
    let s = b.standing("kid", now);
    assert_eq!((s.daily.limit_micros, s.daily.granted_micros), (Some(1_050_000), 1_000_000));
    assert_eq!(s.daily.percent, Some(4));
    // tomorrow's grant is there tomorrow; the day after, only the base cap
    let tomorrow = now + Duration::days(1);
    assert_eq!(b.standing("kid", tomorrow).daily.limit_micros, Some(1_050_000));
    assert_eq!(b.standing("kid", tomorrow + Duration::days(1)).daily.limit_micros, Some(50_000));
    // grants add up; a household grant raises the household cap
    b.set_household_cap(Some(100_000));
    b.grant("anyone", CapKind::HouseholdMonthly, "2026-11", 5_000);
    b.grant("kid", CapKind::HouseholdMonthly, "2026-11", 5_000);
    assert_eq!(b.household_standing(now).limit_micros, Some(110_000));
    assert_eq!(b.household_standing(utc("2026-12-01T00:00:00Z")).limit_micros, Some(100_000));
}

#[test]
fn crossings_are_reported_once_per_cap_and_period() {
    let mut b = Budget::new(UTC);
    let now = utc(NOW);
    b.set_member_caps("a", Some(100), Some(10_000));
    b.set_household_cap(Some(100_000));
    let settle = |b: &mut Budget, worst: u64, actual: u64, at| {
        let h = b.reserve("a", worst, at).unwrap();
        b.settle(h, actual).into_iter().map(|c| (c.kind, c.percent, c.period_key)).collect::<Vec<_>>()
    };
    assert_eq!(settle(&mut b, 79, 79, now), vec![]);
    assert_eq!(settle(&mut b, 10, 1, now), vec![(CapKind::MemberDaily, 80, "2026-11-21".into())]);
    assert_eq!(settle(&mut b, 10, 10, now), vec![]);
    assert_eq!(settle(&mut b, 10, 10, now), vec![(CapKind::MemberDaily, 100, "2026-11-21".into())]);
    // a grant lowers the share, but the heads-ups of this day were given already
    b.grant("a", CapKind::MemberDaily, "2026-11-21", 1_000);
    assert_eq!(settle(&mut b, 900, 900, now), vec![]);
    // a new day: the daily heads-ups come again; one settle may cross both at once
    let tomorrow = now + Duration::days(1);
    let got = settle(&mut b, 100, 100, tomorrow);
    assert_eq!(
        got,
        vec![(CapKind::MemberDaily, 80, "2026-11-22".into()), (CapKind::MemberDaily, 100, "2026-11-22".into()),]
    );
    let s = b.standing("a", tomorrow);
    assert_eq!((s.monthly.spent_micros, s.monthly.percent), (1_100, Some(11)));
}

#[test]
fn monthly_and_household_crossings() {
    let mut b = Budget::new(UTC);
    let now = utc(NOW);
    b.set_member_caps("a", None, Some(1_000));
    b.set_household_cap(Some(2_000));
    let h = b.reserve("b", 1_500, now).unwrap();
    assert_eq!(b.settle(h, 1_500), vec![], "1500 of 2000 is 75 %");
    let h = b.reserve("a", 500, now).unwrap();
    let c = b.settle(h, 500);
    let household = |percent| Crossing {
        kind: CapKind::HouseholdMonthly,
        period_key: "2026-11".into(),
        percent,
        spent_micros: 2_000,
        limit_micros: 2_000,
    };
    assert_eq!(c, vec![household(80), household(100)]);
    // 500 of alice's 1000 monthly is 50 %: nothing for her cap yet
    assert!(b.reserve("a", 1, now).is_err(), "household is full");
}

#[test]
fn a_hold_from_yesterday_settles_into_yesterday() {
    let mut b = Budget::new(Berlin);
    b.set_member_caps("a", Some(100_000), Some(1_000_000));
    b.set_household_cap(Some(10_000_000));
    // 23:59 in Berlin on New Year's Eve 2026 (CET, +1)
    let before = utc("2026-12-31T22:59:00Z");
    let after = utc("2026-12-31T23:00:30Z");
    let late = b.reserve("a", 100_000, before).unwrap();
    assert_eq!((late.day_key(), late.month_key()), ("2026-12-31", "2026-12"));
    // a second call just after midnight has the whole new day's cap, not what is left of the old
    let early = b.reserve("a", 100_000, after).unwrap();
    assert_eq!((early.day_key(), early.month_key()), ("2027-01-01", "2027-01"));
    let c = b.settle(late, 90_000);
    assert_eq!(
        c.iter().map(|c| (c.kind, c.period_key.as_str(), c.percent)).collect::<Vec<_>>(),
        vec![(CapKind::MemberDaily, "2026-12-31", 80)]
    );
    let _ = b.settle(early, 5_000);
    let a = Scope::Member("a".into());
    assert_eq!(b.spent(&a, PeriodKind::Day, before), 90_000);
    assert_eq!(b.spent(&a, PeriodKind::Month, before), 90_000);
    assert_eq!(b.spent(&a, PeriodKind::Day, after), 5_000);
    assert_eq!(b.spent(&a, PeriodKind::Month, after), 5_000);
    assert_eq!(b.spent(&Scope::Household, PeriodKind::Month, after), 5_000);
    let s = b.standing("a", after);
    assert_eq!(s.daily.resets_at, utc("2027-01-01T23:00:00Z"));
    assert_eq!(s.monthly.resets_at, utc("2027-01-31T23:00:00Z"));
    assert_never_over(&b);
}

#[test]
fn rollover_resets_daily_at_midnight_and_monthly_at_month_end() {
    let mut b = Budget::new(New_York);
    b.set_member_caps("a", Some(100), Some(250));
    b.set_household_cap(Some(1_000));
    let spend = |b: &mut Budget, at| {
        let h = b.reserve("a", 100, at)?;
        let _ = b.settle(h, 100);
        Ok::<_, CapHit>(())
    };
    // Nov 29 evening (New York, EST -5)
    let d1 = utc("2026-11-29T23:00:00Z");
    spend(&mut b, d1).unwrap();
    assert_eq!(spend(&mut b, d1).unwrap_err().kind, CapKind::MemberDaily);
    // 04:59 UTC Nov 30 is still Nov 29 in New York
    assert_eq!(spend(&mut b, utc("2026-11-30T04:59:59Z")).unwrap_err().kind, CapKind::MemberDaily);
    let d2 = utc("2026-11-30T05:00:00Z");
    spend(&mut b, d2).unwrap();
    // 200 of 250 this month: another 100 passes both the day's and the month's cap
    let hit = spend(&mut b, utc("2026-12-01T04:59:00Z")).unwrap_err();
    assert_eq!((hit.kind, hit.resets_at), (CapKind::MemberMonthly, utc("2026-12-01T05:00:00Z")));
    let hit = b.reserve("a", 50, utc("2026-12-01T04:59:00Z")).unwrap_err();
    assert_eq!((hit.kind, hit.period_key.as_str()), (CapKind::MemberDaily, "2026-11-30"));
    // December: both reset, the household month too
    let dec = utc("2026-12-01T05:00:00Z");
    let s = b.standing("a", dec);
    assert_eq!((s.daily.spent_micros, s.monthly.spent_micros, s.household.spent_micros), (0, 0, 0));
    assert_eq!((s.monthly.period_key.as_str(), s.daily.period_key.as_str()), ("2026-12", "2026-12-01"));
    spend(&mut b, dec).unwrap();
    let s = b.standing("a", dec - Duration::seconds(1));
    assert_eq!((s.monthly.spent_micros, s.household.spent_micros), (200, 200));
}

#[test]
fn monthly_cap_blocks_across_days() {
    let mut b = Budget::new(UTC);
    b.set_member_caps("a", Some(100), Some(250));
    let mut at = utc("2026-11-01T12:00:00Z");
    let mut ok = 0;
    for _ in 0..5 {
        if let Ok(h) = b.reserve("a", 100, at) {
            let _ = b.settle(h, 100);
            ok += 1;
        }
        at += Duration::days(1);
    }
    assert_eq!(ok, 2);
    assert_eq!(
        b.reserve("a", 50, at).map(|h| b.settle(h, 50)).unwrap(),
        vec![Crossing {
            kind: CapKind::MemberMonthly,
            period_key: "2026-11".into(),
            percent: 100,
            spent_micros: 250,
            limit_micros: 250
        }]
    );
}

#[test]
fn overrun_is_recorded_and_then_refuses() {
    let mut b = Budget::new(UTC);
    let now = utc(NOW);
    b.set_member_caps("a", Some(100), None);
    let h = b.reserve("a", 50, now).unwrap();
    let c = b.settle(h, 150);
    assert_eq!(c.iter().map(|c| c.percent).collect::<Vec<_>>(), vec![80, 100]);
    let s = b.standing("a", now);
    assert_eq!((s.daily.spent_micros, s.daily.remaining_micros, s.daily.percent), (150, Some(0), Some(150)));
    assert!(b.reserve("a", 0, now).is_err());
}

#[test]
fn load_spent_counts_and_does_not_re_announce() {
    let mut b = Budget::new(UTC);
    let now = utc(NOW);
    b.set_member_caps("a", None, Some(1_000));
    b.load_spent(Scope::Member("a".into()), PeriodKind::Month, "2026-11", 850);
    b.load_spent(Scope::Member("a".into()), PeriodKind::Month, "2026-11", 850);
    b.load_spent(Scope::Household, PeriodKind::Month, "2026-11", 3_000);
    assert_eq!(b.spent(&Scope::Member("a".into()), PeriodKind::Month, now), 850);
    assert_eq!(b.standing("a", now).household.spent_micros, 3_000);
    let hit = b.reserve("a", 151, now).unwrap_err();
    assert_eq!((hit.kind, hit.spent_micros), (CapKind::MemberMonthly, 850));
    let h = b.reserve("a", 100, now).unwrap();
    assert_eq!(b.settle(h, 100), vec![], "80 % was passed before the restart");
    let h = b.reserve("a", 50, now).unwrap();
    assert_eq!(b.settle(h, 50).len(), 1);
}

#[test]
fn old_buckets_are_dropped_but_not_while_held() {
    let mut b = Budget::new(UTC);
    b.set_member_caps("a", Some(1_000), Some(1_000));
    let keys = |b: &Budget| {
        let mut k: Vec<_> =
            b.buckets.keys().filter(|(s, _, _)| *s == Scope::Household).map(|(_, _, p)| p.clone()).collect();
        k.sort();
        k
    };
    let d1 = utc("2026-10-30T23:59:00Z");
    let done = b.reserve("a", 10, d1).unwrap();
    let _ = b.settle(done, 10);
    let held = b.reserve("a", 10, d1).unwrap();
    assert_eq!(b.buckets.len(), 4);
    // two days later the 30th would be dropped, but a call still holds it
    let h = b.reserve("a", 10, utc("2026-11-01T00:00:01Z")).unwrap();
    assert_eq!(keys(&b), ["2026-10", "2026-10-30", "2026-11", "2026-11-01"]);
    let _ = b.settle(held, 10);
    b.release(h);
    // the next day: the 30th goes; yesterday and last month stay for callers a moment behind
    let h = b.reserve("a", 10, utc("2026-11-02T00:00:01Z")).unwrap();
    b.release(h);
    assert_eq!(keys(&b), ["2026-10", "2026-11", "2026-11-01", "2026-11-02"]);
    assert_eq!(b.spent(&Scope::Member("a".into()), PeriodKind::Month, d1), 20);
    // a month later, October and the old days are gone too
    let h = b.reserve("a", 10, utc("2026-12-05T00:00:00Z")).unwrap();
    b.release(h);
    assert_eq!(keys(&b), ["2026-11", "2026-12", "2026-12-05"]);
    assert_eq!(b.buckets.len(), 6);
}

#[test]
fn a_stale_clock_after_rollover_cannot_reset_the_old_period() {
    let mut b = Budget::new(UTC);
    b.set_member_caps("a", Some(100), Some(100));
    let late = utc("2026-11-30T23:59:59Z");
    let h = b.reserve("a", 100, late).unwrap();
    let _ = b.settle(h, 100);
    // another call takes the lock first with a December clock and prunes ...
    let h = b.reserve("a", 10, utc("2026-12-01T00:00:00Z")).unwrap();
    b.release(h);
    // ... then a call that read the clock a moment earlier still meets November's full cap
    assert_eq!(b.reserve("a", 1, late).unwrap_err().kind, CapKind::MemberMonthly);
}

#[test]
fn two_hundred_calls_in_flight_against_five_cents() {
    let mut b = Budget::new(UTC);
    let now = utc(NOW);
    b.set_member_caps("kid", None, Some(50_000));
    // 200 calls reserve $0.0006 each before any finishes: 83 fit, the rest are refused
    let mut holds = Vec::new();
    let mut refused = 0;
    for _ in 0..200 {
        match b.reserve("kid", 600, now) {
            Ok(h) => holds.push(h),
            Err(hit) => {
                assert_eq!(hit.kind, CapKind::MemberMonthly);
                refused += 1;
            }
        }
    }
    assert_eq!((holds.len(), refused), (83, 117));
    assert_never_over(&b);
    let mut crossings = Vec::new();
    for h in holds {
        crossings.extend(b.settle(h, 600));
    }
    assert_eq!(b.spent(&Scope::Member("kid".into()), PeriodKind::Month, now), 49_800);
    assert_eq!(crossings.iter().map(|c| c.percent).collect::<Vec<_>>(), vec![80]);
}

#[test]
fn standing_numbers_add_up() {
    let mut b = Budget::new(UTC);
    let now = utc(NOW);
    b.set_member_caps("a", Some(1_000), Some(5_000));
    b.set_member_caps("b", None, Some(5_000));
    b.set_household_cap(Some(8_000));
    let h = b.reserve("a", 400, now).unwrap();
    let _ = b.settle(h, 300);
    let ha = b.reserve("a", 200, now).unwrap();
    let h = b.reserve("b", 2_000, now).unwrap();
    let _ = b.settle(h, 1_700);
    let s = b.standing("a", now);
    assert_eq!(s.member, "a");
    assert_eq!((s.daily.spent_micros, s.daily.reserved_micros, s.daily.remaining_micros), (300, 200, Some(500)));
    assert_eq!(s.daily.percent, Some(30));
    assert_eq!((s.monthly.spent_micros, s.monthly.remaining_micros), (300, Some(4_500)));
    assert_eq!((s.household.spent_micros, s.household.reserved_micros), (2_000, 200));
    assert_eq!(s.household.remaining_micros, Some(5_800));
    assert_eq!(s.household, b.household_standing(now));
    assert_eq!(s.remaining_micros(), Some(500));
    let sb = b.standing("b", now);
    assert_eq!(
        sb.caps().map(|c| c.kind).collect::<Vec<_>>(),
        vec![CapKind::MemberMonthly, CapKind::HouseholdMonthly]
    );
    assert_eq!(sb.daily.limit_micros, None);
    assert_eq!(sb.daily.spent_micros, 1_700, "spend is counted even without a daily cap");
    b.release(ha);
    assert_eq!(b.standing("a", now).daily.reserved_micros, 0);
}

#[test]
fn caps_can_be_read_back_and_cleared() {
    let mut b = Budget::new(UTC);
    b.set_member_caps("a", Some(1), Some(2));
    b.set_household_cap(Some(3));
    assert_eq!((b.member_caps("a"), b.household_cap()), ((Some(1), Some(2)), Some(3)));
    b.set_member_caps("a", None, None);
    assert_eq!(b.member_caps("a"), (None, None));
    assert!(b.member_caps.is_empty());
    b.set_timezone(Berlin);
    assert_eq!(b.timezone(), Berlin);
    assert_eq!(CapKind::HouseholdMonthly.as_str(), "household_monthly");
    assert_eq!(serde_json::to_value(CapKind::MemberDaily).unwrap(), "member_daily");
    assert_eq!(serde_json::to_value(Scope::Member("a".into())).unwrap(), serde_json::json!({"member": "a"}));
}

// ---- the headline property ----

#[derive(Debug, Clone)]
enum Op {
    Reserve { member: usize, worst: u64 },
    Settle { slot: usize, percent: u64 },
    Release { slot: usize },
    Advance { minutes: i64 },
    Grant { member: usize, kind: usize, extra: u64 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..3usize, 0u64..40_000).prop_map(|(member, worst)| Op::Reserve { member, worst }),
        4 => (any::<usize>(), 0u64..=100).prop_map(|(slot, percent)| Op::Settle { slot, percent }),
        1 => any::<usize>().prop_map(|slot| Op::Release { slot }),
        2 => (0i64..60).prop_map(|minutes| Op::Advance { minutes }),
        1 => (0..3usize, 0..3usize, 0u64..20_000).prop_map(|(member, kind, extra)| Op::Grant { member, kind, extra }),
    ]
}

fn cap() -> impl Strategy<Value = Option<u64>> {
    prop_oneof![1 => Just(None), 1 => Just(Some(0)), 6 => (1u64..200_000).prop_map(Some)]
}

const MEMBERS: [&str; 3] = ["alice", "bob", "kid"];

/// An independent account of what should have happened, kept by the test.
#[derive(Default)]
struct Model {
    settled: HashMap<(Scope, PeriodKind, String), u64>,
    reserved: HashMap<(Scope, PeriodKind, String), u64>,
    granted: HashMap<(CapKind, Scope, String), u64>,
    reported: HashSet<(CapKind, Scope, String, u8)>,
}

impl Model {
    fn get(m: &HashMap<(Scope, PeriodKind, String), u64>, s: &Scope, k: PeriodKind, key: &str) -> u64 {
        m.get(&(s.clone(), k, key.to_owned())).copied().unwrap_or(0)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn nothing_can_ever_overshoot(
        caps in prop::collection::vec((cap(), cap()), 3),
        household in cap(),
        zone in prop::sample::select(vec![UTC, Berlin, New_York, chrono_tz::Australia::Lord_Howe]),
        start in prop::sample::select(vec![
            "2026-12-31T21:00:00Z", "2026-11-30T22:30:00Z", "2026-03-28T21:00:00Z", "2026-11-21T12:00:00Z",
        ]),
        ops in prop::collection::vec(op(), 1..250),
    ) {
        let mut b = Budget::new(zone);
        for (m, (d, mo)) in MEMBERS.iter().zip(&caps) {
            b.set_member_caps(m, *d, *mo);
        }
        b.set_household_cap(household);
        let cap_of = |kind: CapKind, member: &str| match kind {
            CapKind::MemberDaily => caps[MEMBERS.iter().position(|m| *m == member).unwrap()].0,
            CapKind::MemberMonthly => caps[MEMBERS.iter().position(|m| *m == member).unwrap()].1,
            CapKind::HouseholdMonthly => household,
        };
        let mut now = utc(start);
        let mut model = Model::default();
        let mut holds: Vec<Hold> = Vec::new();
        // what members were really charged, per cap bucket, counted from the outside
        let mut charged: HashMap<(CapKind, Scope, String), u64> = HashMap::new();

        for op in ops {
            match op {
                Op::Reserve { member, worst } => {
                    let m = MEMBERS[member];
                    let day = period_at(PeriodKind::Day, zone, now);
                    let month = period_at(PeriodKind::Month, zone, now);
                    // which caps the model says would be exceeded, in naming order
                    let mut expected = None;
                    for kind in [CapKind::MemberMonthly, CapKind::HouseholdMonthly, CapKind::MemberDaily] {
                        let Some(c) = cap_of(kind, m) else { continue };
                        let key = if kind == CapKind::MemberDaily { &day.key } else { &month.key };
                        let scope = kind.scope(m);
                        let limit = c + model.granted.get(&(kind, scope.clone(), key.clone())).copied().unwrap_or(0);
                        let used = Model::get(&model.settled, &scope, kind.period_kind(), key)
                            + Model::get(&model.reserved, &scope, kind.period_kind(), key);
                        if limit == 0 || used + worst > limit {
                            expected = Some((kind, limit, key.clone()));
                            break;
                        }
                    }
                    match (b.reserve(m, worst, now), expected) {
                        (Ok(h), None) => {
                            prop_assert_eq!((h.day_key(), h.month_key()), (day.key.as_str(), month.key.as_str()));
                            for (s, k, key) in hold_buckets(&h) {
                                *model.reserved.entry((s, k, key.to_owned())).or_default() += worst;
                            }
                            holds.push(h);
                        }
                        (Err(hit), Some((kind, limit, key))) => {
                            prop_assert_eq!((hit.kind, hit.limit_micros, &hit.period_key), (kind, limit, &key));
                            prop_assert_eq!(hit.requested_micros, worst);
                        }
                        (got, want) => prop_assert!(false, "reserve {m} {worst}: got {got:?}, model wants {want:?}"),
                    }
                }
                Op::Settle { slot, percent } => {
                    if holds.is_empty() { continue; }
                    let h = holds.swap_remove(slot % holds.len());
                    let actual = h.amount() * percent / 100;
                    let (m, amount) = (h.member().to_owned(), h.amount());
                    let keys = hold_buckets(&h).map(|(s, k, key)| (s, k, key.to_owned()));
                    // expected crossings, from the model's numbers before this settlement
                    let mut expected = HashSet::new();
                    for (s, k, key) in &keys {
                        let kind = match (s, k) {
                            (Scope::Member(_), PeriodKind::Day) => CapKind::MemberDaily,
                            (Scope::Member(_), PeriodKind::Month) => CapKind::MemberMonthly,
                            (Scope::Household, PeriodKind::Month) => CapKind::HouseholdMonthly,
                            (Scope::Household, PeriodKind::Day) => continue,
                        };
                        let Some(c) = cap_of(kind, &m) else { continue };
                        let limit = c + model.granted.get(&(kind, s.clone(), key.clone())).copied().unwrap_or(0);
                        let before = Model::get(&model.settled, s, *k, key);
                        for pct in [80u8, 100] {
                            let t = limit as u128 * pct as u128;
                            if (before as u128 * 100) < t && ((before + actual) as u128 * 100) >= t
                                && !model.reported.contains(&(kind, s.clone(), key.clone(), pct)) {
                                expected.insert((kind, key.clone(), pct));
                            }
                        }
                        *charged.entry((kind, s.clone(), key.clone())).or_default() += actual;
                    }
                    let got: Vec<_> = b.settle(h, actual).into_iter().map(|c| (c.kind, c.period_key, c.percent)).collect();
                    let got_set: HashSet<_> = got.iter().cloned().collect();
                    prop_assert_eq!(got.len(), got_set.len(), "duplicate crossing in one settle");
                    prop_assert_eq!(&got_set, &expected);
                    for (kind, key, pct) in got {
                        let scope = kind.scope(&m);
                        prop_assert!(model.reported.insert((kind, scope, key, pct)), "crossing reported twice");
                    }
                    for (s, k, key) in keys {
                        *model.reserved.get_mut(&(s.clone(), k, key.clone())).unwrap() -= amount;
                        *model.settled.entry((s, k, key)).or_default() += actual;
                    }
                }
                Op::Release { slot } => {
                    if holds.is_empty() { continue; }
                    let h = holds.swap_remove(slot % holds.len());
                    for (s, k, key) in hold_buckets(&h) {
                        *model.reserved.get_mut(&(s, k, key.to_owned())).unwrap() -= h.amount();
                    }
                    b.release(h);
                }
                Op::Advance { minutes } => now += Duration::minutes(minutes),
                Op::Grant { member, kind, extra } => {
                    let m = MEMBERS[member];
                    let kind = CapKind::ALL[kind];
                    let key = period_at(kind.period_kind(), zone, now).key;
                    b.grant(m, kind, &key, extra);
                    *model.granted.entry((kind, kind.scope(m), key)).or_default() += extra;
                }
            }

            // at every step: nothing over any cap, inside the budget ...
            assert_never_over(&b);
            // ... and from the outside: money really charged never passed a cap
            for ((kind, scope, key), spent) in &charged {
                let member = match scope { Scope::Member(m) => m.as_str(), Scope::Household => "alice" };
                let limit = cap_of(*kind, member).unwrap()
                    + model.granted.get(&(*kind, scope.clone(), key.clone())).copied().unwrap_or(0);
                prop_assert!(*spent <= limit, "{kind:?} {scope:?} {key}: charged {spent} > {limit}");
            }
            // standing agrees with the model and adds up
            for m in MEMBERS {
                let s = b.standing(m, now);
                for c in [&s.daily, &s.monthly, &s.household] {
                    let scope = c.kind.scope(m);
                    let k = c.kind.period_kind();
                    prop_assert_eq!(c.spent_micros, Model::get(&model.settled, &scope, k, &c.period_key));
                    prop_assert_eq!(c.reserved_micros, Model::get(&model.reserved, &scope, k, &c.period_key));
                    if let Some(limit) = c.limit_micros {
                        prop_assert_eq!(c.spent_micros + c.reserved_micros + c.remaining_micros.unwrap(), limit);
                        prop_assert!(c.resets_at > now);
                    }
                }
            }
            let hh: u64 = MEMBERS.iter().map(|m| b.spent(&Scope::Member((*m).into()), PeriodKind::Month, now)).sum();
            prop_assert_eq!(hh, b.spent(&Scope::Household, PeriodKind::Month, now));
            let hd: u64 = MEMBERS.iter().map(|m| b.spent(&Scope::Member((*m).into()), PeriodKind::Day, now)).sum();
            prop_assert_eq!(hd, b.spent(&Scope::Household, PeriodKind::Day, now));
        }

        // every threshold reached was announced, exactly once
        for ((kind, scope, key), spent) in &charged {
            let member = match scope { Scope::Member(m) => m.as_str(), Scope::Household => "alice" };
            let limit = cap_of(*kind, member).unwrap()
                + model.granted.get(&(*kind, scope.clone(), key.clone())).copied().unwrap_or(0);
            for pct in [80u8, 100] {
                if limit > 0 && *spent as u128 * 100 >= limit as u128 * pct as u128 {
                    prop_assert!(model.reported.contains(&(*kind, scope.clone(), key.clone(), pct)),
                        "{kind:?} {scope:?} {key} reached {pct} % unannounced");
                }
            }
        }
        for h in holds { b.release(h); }
        prop_assert!(b.buckets.values().all(|x| x.reserved == 0), "releasing every hold frees everything");
    }
}
