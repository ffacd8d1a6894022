//! Spend control, the pure core: what a call costs, which day and month it belongs to, and
//! whether a member may make it. No I/O, no clock, no async — the broker passes `now` in, keeps a
//! [`budget::Budget`] behind a mutex (every method is short and synchronous, and the lock is
//! never held across `.await`), and writes what happened to the ledger itself.
//!
//! - [`price`]: the rate card — integer micro-USD per million tokens, shipped defaults, lookup by
//!   the names providers use, and local providers that cost nothing.
//! - [`period`]: calendar days and months in the household's time zone, DST-correct, keyed with
//!   the year ("2026-11-21", "2026-11").
//! - [`budget`]: caps per member (daily, monthly) and per household (monthly), enforced by
//!   reserving the worst case before a call and settling the real cost after.
//! - [`voice_price`]: text-to-speech prices, per million characters spoken.
//! - [`text`]: what members and the admin read about spend (`/usage`, `/family`, heads-ups, the
//!   admin's cap question).
//!
//! Money is always integer micro-USD (`u64`; $0.05 = 50_000). Floats appear only at the edges:
//! parsing what an admin typed and displaying prices.

pub mod budget;
pub mod period;
pub mod price;
pub mod text;
pub mod voice_price;

pub use budget::{Budget, CapHit, CapKind, CapStanding, Crossing, Hold, Scope, Standing};
pub use period::{Period, PeriodKind};
pub use price::{AudioPrice, AudioRateEntry, Price, PriceError, PriceSource, RateCardEntry};
pub use voice_price::{VoicePrice, VoiceRateEntry};

/// Micro-USD in one dollar.
pub const MICROS_PER_USD: u64 = 1_000_000;

/// Formats micro-USD for people: whole cents as "$0.05", finer amounts with the digits they
/// need ("$0.0042", "$1.234567"), so a small spend never shows as "$0.00".
pub fn format_usd(micros: u64) -> String {
    let dollars = micros / MICROS_PER_USD;
    let frac = micros % MICROS_PER_USD;
    let mut digits = format!("{frac:06}");
    while digits.len() > 2 && digits.ends_with('0') {
        digits.pop();
    }
    format!("${dollars}.{digits}")
}

/// Parses a dollar amount an admin typed ("5", "0.05", "$1.50") into micro-USD, exactly (no
/// floating point). At most six decimals; negative amounts and garbage get a clear message.
pub fn parse_usd(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let t = t.strip_prefix('$').unwrap_or(t).trim();
    let bad = || format!("{s:?} is not a dollar amount; write it like 5 or 0.05");
    if t.is_empty() {
        return Err(bad());
    }
    if t.starts_with('-') {
        return Err(format!("{s:?} is negative; an amount of money is zero or more"));
    }
    let (whole, frac) = match t.split_once('.') {
        Some((w, f)) => (w, f),
        None => (t, ""),
    };
    if (whole.is_empty() && frac.is_empty())
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    if frac.len() > 6 {
        return Err(format!("{s:?} has more than six decimals; the smallest amount is $0.000001"));
    }
    let too_big = || format!("{s:?} is too large");
    let whole: u64 = if whole.is_empty() { 0 } else { whole.parse().map_err(|_| too_big())? };
    let frac_micros: u64 =
        if frac.is_empty() { 0 } else { frac.parse::<u64>().map_err(|_| bad())? * 10u64.pow(6 - frac.len() as u32) };
    whole.checked_mul(MICROS_PER_USD).and_then(|w| w.checked_add(frac_micros)).ok_or_else(too_big)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_cents_and_finer_amounts() {
        assert_eq!(format_usd(0), "$0.00");
        assert_eq!(format_usd(50_000), "$0.05");
        assert_eq!(format_usd(5_000_000), "$5.00");
        assert_eq!(format_usd(4_200), "$0.0042");
        assert_eq!(format_usd(1), "$0.000001");
        assert_eq!(format_usd(1_234_567), "$1.234567");
        assert_eq!(format_usd(1_500_000), "$1.50");
    }

    #[test]
    fn parses_dollars_exactly() {
        assert_eq!(parse_usd("5"), Ok(5_000_000));
        assert_eq!(parse_usd("0.05"), Ok(50_000));
        assert_eq!(parse_usd("$1.50"), Ok(1_500_000));
        assert_eq!(parse_usd(" .5 "), Ok(500_000));
        assert_eq!(parse_usd("3."), Ok(3_000_000));
        assert_eq!(parse_usd("0.000001"), Ok(1));
        assert_eq!(parse_usd("0"), Ok(0));
        for bad in ["", "$", ".", "abc", "1.2.3", "1e3", "1,50", "0.0000001", "-1", "99999999999999999"] {
            assert!(parse_usd(bad).is_err(), "{bad:?} should be rejected");
        }
        assert!(parse_usd("-1").unwrap_err().contains("negative"));
    }

    #[test]
    fn format_and_parse_round_trip() {
        for m in [0, 1, 9, 10_000, 50_000, 999_999, 1_000_000, 123_456_789] {
            assert_eq!(parse_usd(&format_usd(m)), Ok(m));
        }
    }
}
