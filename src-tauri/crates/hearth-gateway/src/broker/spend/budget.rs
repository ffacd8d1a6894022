//! Caps, and the one place they are enforced.
//!
//! Before a call the broker [`Budget::reserve`]s its worst-case cost against every cap that
//! applies to the member — their daily and monthly caps and the household's monthly cap. The
//! reservation succeeds only if, for each cap, what is already settled plus what other calls
//! hold plus this worst case stays within the limit; then it is charged to every bucket at once.
//! After the call, [`Budget::settle`] swaps the hold for the real cost (never more than the worst
//! case when the worst case is honest), or [`Budget::release`] drops it when the call failed.
//! So at every instant `settled + reserved <= limit` for every cap: no number of concurrent calls
//! can overshoot, which "check before, charge after" cannot promise.
//!
//! Spend is tracked per member and for the household for both the day and the month even when
//! no cap is set, so `/usage` has numbers and a cap set mid-month counts what was already spent.
//!
//! The gateway keeps one `Budget` in a `std::sync::Mutex`: every method here is synchronous and
//! does a handful of hash-map operations, and the lock is never held across the provider call.

use std::collections::HashMap;
use std::fmt;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use super::format_usd;
use super::period::{Period, PeriodKind, period_at};

/// Whose spend a bucket counts.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    Member(String),
    Household,
}

/// The three caps an admin can set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CapKind {
    MemberDaily,
    MemberMonthly,
    HouseholdMonthly,
}

impl CapKind {
    pub const ALL: [CapKind; 3] = [CapKind::MemberDaily, CapKind::MemberMonthly, CapKind::HouseholdMonthly];

    pub fn period_kind(self) -> PeriodKind {
        match self {
            CapKind::MemberDaily => PeriodKind::Day,
            CapKind::MemberMonthly | CapKind::HouseholdMonthly => PeriodKind::Month,
        }
    }

    /// Whose bucket this cap limits when `member` makes a call.
    pub fn scope(self, member: &str) -> Scope {
        match self {
            CapKind::MemberDaily | CapKind::MemberMonthly => Scope::Member(member.to_owned()),
            CapKind::HouseholdMonthly => Scope::Household,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CapKind::MemberDaily => "member_daily",
            CapKind::MemberMonthly => "member_monthly",
            CapKind::HouseholdMonthly => "household_monthly",
        }
    }

    /// For sentences: "daily limit", "monthly limit", "household's monthly limit".
    pub fn describe(self) -> &'static str {
        match self {
            CapKind::MemberDaily => "daily limit",
            CapKind::MemberMonthly => "monthly limit",
            CapKind::HouseholdMonthly => "household's monthly limit",
        }
    }
}

/// A member's caps in micro-USD; `None` is "no cap".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct MemberCaps {
    daily: Option<u64>,
    monthly: Option<u64>,
}

/// Identifies one bucket: whose spend, over which day or month.
type BucketKey = (Scope, PeriodKind, String);

/// Spend in one scope over one period.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Bucket {
    /// What finished calls really cost (and what the ledger held at start).
    settled: u64,
    /// Worst cases of calls still in flight.
    reserved: u64,
    /// The admin's raises of this bucket's cap, for this period only.
    granted: u64,
    /// Whether the 80 % and 100 % heads-ups for this period have been reported.
    reported_80: bool,
    reported_100: bool,
}

/// Every cap, and what has been spent and reserved against it. See the module docs.
#[derive(Debug, Clone)]
pub struct Budget {
    /// The household's zone: days and months are calendar days and months there.
    tz: Tz,
    member_caps: HashMap<String, MemberCaps>,
    household_cap: Option<u64>,
    buckets: HashMap<BucketKey, Bucket>,
    /// The day key old buckets were last dropped for, so pruning runs once a day, not per call.
    pruned_for: String,
}

/// A reservation for one call. It remembers the periods it was charged to, so a call reserved at
/// 23:59 settles into that day even when it finishes after midnight.
///
/// Not `Clone`: pass it to exactly one of [`Budget::settle`] or [`Budget::release`]. A hold that
/// is dropped instead keeps its amount reserved until its period ends — the budget errs towards
/// refusing, never towards overspending.
#[derive(Debug, PartialEq, Eq)]
#[must_use = "settle or release the hold, or its amount stays reserved until the period ends"]
pub struct Hold {
    member: String,
    amount: u64,
    day_key: String,
    month_key: String,
}

impl Hold {
    pub fn member(&self) -> &str {
        &self.member
    }
    /// The worst case reserved, in micro-USD.
    pub fn amount(&self) -> u64 {
        self.amount
    }
    pub fn day_key(&self) -> &str {
        &self.day_key
    }
    pub fn month_key(&self) -> &str {
        &self.month_key
    }
}

/// Why a reservation was refused: the cap that would have been exceeded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct CapHit {
    pub kind: CapKind,
    /// The period the cap is for ("2026-11-21" or "2026-11"): what [`Budget::grant`] takes to
    /// raise this cap for this period only.
    pub period_key: String,
    /// The limit including this period's grants.
    pub limit_micros: u64,
    /// Settled spend in the period.
    pub spent_micros: u64,
    /// Held by other calls still in flight.
    pub reserved_micros: u64,
    /// The worst case of the refused call.
    pub requested_micros: u64,
    /// When the period ends and the cap no longer applies.
    pub resets_at: DateTime<Utc>,
}

impl fmt::Display for CapHit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let resets = self.resets_at.format("%Y-%m-%d %H:%M UTC");
        if self.limit_micros == 0 {
            return write!(
                f,
                "The {} is $0.00, so nothing can be spent until it resets at {resets}",
                self.kind.describe()
            );
        }
        write!(
            f,
            "The {} of {} would be exceeded: {} spent",
            self.kind.describe(),
            format_usd(self.limit_micros),
            format_usd(self.spent_micros)
        )?;
        if self.reserved_micros > 0 {
            write!(f, ", {} held for calls in progress", format_usd(self.reserved_micros))?;
        }
        write!(f, ", and this call may cost up to {}. It resets at {resets}", format_usd(self.requested_micros))
    }
}

/// A settlement took spend across 80 % or 100 % of a cap, for the first time in that period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crossing {
    pub kind: CapKind,
    pub period_key: String,
    /// 80 or 100.
    pub percent: u8,
    /// Settled spend after this settlement.
    pub spent_micros: u64,
    /// The limit including grants.
    pub limit_micros: u64,
}

/// Where one cap stands (or, with `limit_micros: None`, what was spent where there is no cap).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapStanding {
    pub kind: CapKind,
    pub period_key: String,
    pub spent_micros: u64,
    pub reserved_micros: u64,
    /// The cap plus this period's grants; `None` when no cap is set.
    pub limit_micros: Option<u64>,
    /// The part of `limit_micros` that is this period's grants.
    pub granted_micros: u64,
    /// What a new call may still reserve: `limit - spent - reserved`, never below zero.
    pub remaining_micros: Option<u64>,
    pub resets_at: DateTime<Utc>,
    /// Settled spend as a percentage of the limit, rounded down (over 100 after an overrun;
    /// 100 for a zero cap).
    pub percent: Option<u8>,
}

impl CapStanding {
    pub fn is_capped(&self) -> bool {
        self.limit_micros.is_some()
    }
}

/// Where a member stands: today, this month, and the household's month.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Standing {
    pub member: String,
    pub daily: CapStanding,
    pub monthly: CapStanding,
    /// The whole household's spend this month, against the household cap.
    pub household: CapStanding,
}

impl Standing {
    /// The caps that are set.
    pub fn caps(&self) -> impl Iterator<Item = &CapStanding> {
        [&self.daily, &self.monthly, &self.household].into_iter().filter(|c| c.is_capped())
    }

    /// What the member may still spend right now: the least remaining over the caps that apply;
    /// `None` when no cap applies.
    pub fn remaining_micros(&self) -> Option<u64> {
        self.caps().filter_map(|c| c.remaining_micros).min()
    }
}

impl Budget {
    pub fn new(tz: Tz) -> Self {
        Budget {
            tz,
            member_caps: HashMap::new(),
            household_cap: None,
            buckets: HashMap::new(),
            pruned_for: String::new(),
        }
    }

    pub fn timezone(&self) -> Tz {
        self.tz
    }

    /// Changes the zone days and months are counted in. Holds keep the periods they were charged
    /// to; new calls go to the periods of the new zone.
    pub fn set_timezone(&mut self, tz: Tz) {
        self.tz = tz;
    }

    /// Sets a member's caps in micro-USD (`None`: no cap; `Some(0)`: nothing may be spent).
    /// Takes effect at the next reservation; calls already reserved are not revisited.
    pub fn set_member_caps(&mut self, member: &str, daily: Option<u64>, monthly: Option<u64>) {
        let caps = MemberCaps { daily, monthly };
        if caps == MemberCaps::default() {
            self.member_caps.remove(member);
        } else {
            self.member_caps.insert(member.to_owned(), caps);
        }
    }

    /// (daily, monthly) caps of a member, without grants.
    pub fn member_caps(&self, member: &str) -> (Option<u64>, Option<u64>) {
        let c = self.member_caps.get(member).copied().unwrap_or_default();
        (c.daily, c.monthly)
    }

    pub fn set_household_cap(&mut self, monthly: Option<u64>) {
        self.household_cap = monthly;
    }

    pub fn household_cap(&self) -> Option<u64> {
        self.household_cap
    }

    /// Raises a cap by `extra_micros` for one period only ("+$1 for today"): `period_key` is the
    /// day or month key of that period, as in [`CapHit::period_key`]. For
    /// [`CapKind::HouseholdMonthly`] the household's cap is raised and `member` is not used.
    /// Grants add up. A grant where no cap is set changes nothing until one is.
    pub fn grant(&mut self, member: &str, kind: CapKind, period_key: &str, extra_micros: u64) {
        let b = self.bucket_mut(kind.scope(member), kind.period_kind(), period_key);
        b.granted = b.granted.saturating_add(extra_micros);
    }

    /// Sets what the ledger says was already spent in a period (at start, before any call).
    /// Replaces the settled amount, so loading twice does not double it. Spend already past 80 %
    /// or 100 % at load is not reported again: a heads-up fires only when a settlement crosses.
    pub fn load_spent(&mut self, scope: Scope, kind: PeriodKind, period_key: &str, micros: u64) {
        self.bucket_mut(scope, kind, period_key).settled = micros;
    }

    /// Reserves `worst_case` micro-USD for one call by `member` at `now` against every cap that
    /// applies, or refuses. Atomic: either every bucket is charged or none is.
    ///
    /// A cap refuses when settled + reserved + `worst_case` would pass its limit (grants
    /// included); a cap of 0 refuses everything, even a call that costs nothing. A member with no
    /// caps, in a household without a cap, is never refused. When several caps would be exceeded
    /// the refusal names the one that lasts longest — monthly before daily, the member's own
    /// before the household's — so its `resets_at` is not a promise the other caps would break.
    pub fn reserve(&mut self, member: &str, worst_case: u64, now: DateTime<Utc>) -> Result<Hold, CapHit> {
        let day = period_at(PeriodKind::Day, self.tz, now);
        let month = period_at(PeriodKind::Month, self.tz, now);
        self.prune(&day, &month);

        let caps = self.member_caps.get(member).copied().unwrap_or_default();
        let checks = [
            (CapKind::MemberMonthly, caps.monthly, &month),
            (CapKind::HouseholdMonthly, self.household_cap, &month),
            (CapKind::MemberDaily, caps.daily, &day),
        ];
        for (kind, cap, period) in checks {
            let Some(cap) = cap else { continue };
            let b = self.bucket(&kind.scope(member), kind.period_kind(), &period.key);
            let limit = cap.saturating_add(b.granted);
            let after = b.settled as u128 + b.reserved as u128 + worst_case as u128;
            if limit == 0 || after > limit as u128 {
                return Err(CapHit {
                    kind,
                    period_key: period.key.clone(),
                    limit_micros: limit,
                    spent_micros: b.settled,
                    reserved_micros: b.reserved,
                    requested_micros: worst_case,
                    resets_at: period.ends_at,
                });
            }
        }

        let hold = Hold { member: member.to_owned(), amount: worst_case, day_key: day.key, month_key: month.key };
        for (scope, kind, key) in hold_buckets(&hold) {
            let b = self.bucket_mut(scope, kind, key);
            b.reserved = b.reserved.saturating_add(worst_case);
        }
        Ok(hold)
    }

    /// Replaces the hold with what the call really cost, in the periods the hold was charged to,
    /// and returns the 80 % / 100 % thresholds this settlement crossed for the first time in
    /// those periods (both, if it jumped past both).
    ///
    /// `actual_micros` is normally at most the hold. If it is more — the provider reported more
    /// tokens than the worst case allowed for — the real cost is still recorded, because the
    /// ledger must tell the truth: the cap can then be passed by that difference, and it refuses
    /// every further call in the period. The no-overshoot guarantee is exactly as good as the
    /// worst-case estimate.
    pub fn settle(&mut self, hold: Hold, actual_micros: u64) -> Vec<Crossing> {
        let caps = self.member_caps.get(&hold.member).copied().unwrap_or_default();
        let mut crossings = Vec::new();
        for (scope, kind, key) in hold_buckets(&hold) {
            let cap = match (&scope, kind) {
                (Scope::Member(_), PeriodKind::Day) => caps.daily.map(|c| (CapKind::MemberDaily, c)),
                (Scope::Member(_), PeriodKind::Month) => caps.monthly.map(|c| (CapKind::MemberMonthly, c)),
                (Scope::Household, PeriodKind::Month) => self.household_cap.map(|c| (CapKind::HouseholdMonthly, c)),
                (Scope::Household, PeriodKind::Day) => None,
            };
            let b = self.bucket_mut(scope, kind, key);
            b.reserved = b.reserved.saturating_sub(hold.amount);
            let before = b.settled;
            b.settled = before.saturating_add(actual_micros);
            let Some((cap_kind, cap)) = cap else { continue };
            let limit = cap.saturating_add(b.granted);
            for (percent, reported) in [(80, &mut b.reported_80), (100, &mut b.reported_100)] {
                if !*reported && crosses(before, b.settled, limit, percent) {
                    *reported = true;
                    crossings.push(Crossing {
                        kind: cap_kind,
                        period_key: key.to_owned(),
                        percent,
                        spent_micros: b.settled,
                        limit_micros: limit,
                    });
                }
            }
        }
        crossings
    }

    /// The call failed or was never made: nothing is charged.
    pub fn release(&mut self, hold: Hold) {
        for (scope, kind, key) in hold_buckets(&hold) {
            if let Some(b) = self.buckets.get_mut(&(scope, kind, key.to_owned())) {
                b.reserved = b.reserved.saturating_sub(hold.amount);
            }
        }
    }

    /// Where `member` stands at `now`: today, this month, and the household's month.
    pub fn standing(&self, member: &str, now: DateTime<Utc>) -> Standing {
        let day = period_at(PeriodKind::Day, self.tz, now);
        let month = period_at(PeriodKind::Month, self.tz, now);
        let caps = self.member_caps.get(member).copied().unwrap_or_default();
        let scope = Scope::Member(member.to_owned());
        Standing {
            member: member.to_owned(),
            daily: self.cap_standing(CapKind::MemberDaily, &scope, caps.daily, &day),
            monthly: self.cap_standing(CapKind::MemberMonthly, &scope, caps.monthly, &month),
            household: self.household_standing(now),
        }
    }

    /// The whole household's spend this month, against the household cap.
    pub fn household_standing(&self, now: DateTime<Utc>) -> CapStanding {
        let month = period_at(PeriodKind::Month, self.tz, now);
        self.cap_standing(CapKind::HouseholdMonthly, &Scope::Household, self.household_cap, &month)
    }

    /// Settled spend of `scope` in the day or month containing `now` (calls in flight excluded).
    pub fn spent(&self, scope: &Scope, kind: PeriodKind, now: DateTime<Utc>) -> u64 {
        let period = period_at(kind, self.tz, now);
        self.bucket(scope, kind, &period.key).settled
    }

    fn cap_standing(&self, kind: CapKind, scope: &Scope, cap: Option<u64>, period: &Period) -> CapStanding {
        let b = self.bucket(scope, kind.period_kind(), &period.key);
        let limit = cap.map(|c| c.saturating_add(b.granted));
        CapStanding {
            kind,
            period_key: period.key.clone(),
            spent_micros: b.settled,
            reserved_micros: b.reserved,
            limit_micros: limit,
            granted_micros: if cap.is_some() { b.granted } else { 0 },
            remaining_micros: limit.map(|l| l.saturating_sub(b.settled.saturating_add(b.reserved))),
            resets_at: period.ends_at,
            percent: limit.map(|l| percent_of(b.settled, l)),
        }
    }

    fn bucket(&self, scope: &Scope, kind: PeriodKind, key: &str) -> Bucket {
        // A borrowed lookup would need an owned key anyway: BucketKey is a tuple of owned values.
        self.buckets.get(&(scope.clone(), kind, key.to_owned())).copied().unwrap_or_default()
    }

    fn bucket_mut(&mut self, scope: Scope, kind: PeriodKind, key: &str) -> &mut Bucket {
        self.buckets.entry((scope, kind, key.to_owned())).or_default()
    }

    /// Drops buckets older than the previous day and month that no call still holds. The previous
    /// period is kept so that a caller whose `now` is a moment stale (read just before midnight,
    /// locked just after another call's) still finds that period's spend. Keys sort in time
    /// order, so "older" is a string comparison. Runs once per day.
    fn prune(&mut self, day: &Period, month: &Period) {
        if self.pruned_for == day.key {
            return;
        }
        let before = |p: &Period| period_at(p.kind, self.tz, p.starts_at - chrono::Duration::seconds(1)).key;
        let (keep_day, keep_month) = (before(day), before(month));
        self.buckets.retain(|(_, kind, key), b| {
            let oldest = match kind {
                PeriodKind::Day => &keep_day,
                PeriodKind::Month => &keep_month,
            };
            b.reserved > 0 || key.as_str() >= oldest.as_str()
        });
        self.pruned_for = day.key.clone();
    }
}

/// The four buckets a hold is charged to.
fn hold_buckets(hold: &Hold) -> [(Scope, PeriodKind, &str); 4] {
    let member = Scope::Member(hold.member.clone());
    [
        (member.clone(), PeriodKind::Day, &hold.day_key),
        (member, PeriodKind::Month, &hold.month_key),
        (Scope::Household, PeriodKind::Day, &hold.day_key),
        (Scope::Household, PeriodKind::Month, &hold.month_key),
    ]
}

/// Whether going from `before` to `after` passes `percent` % of `limit` (never for a zero limit).
fn crosses(before: u64, after: u64, limit: u64, percent: u8) -> bool {
    let threshold = limit as u128 * percent as u128;
    (before as u128 * 100) < threshold && (after as u128 * 100) >= threshold
}

fn percent_of(spent: u64, limit: u64) -> u8 {
    if limit == 0 {
        return 100;
    }
    u8::try_from(spent as u128 * 100 / limit as u128).unwrap_or(u8::MAX)
}

#[cfg(test)]
mod tests;
