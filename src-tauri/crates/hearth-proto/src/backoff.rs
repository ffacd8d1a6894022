//! The one retry pause: exponential, capped, jittered, and never shorter than what a server
//! asked for. Every retry loop in Hearth (a provider call, a bot's long poll, sending a reply or
//! a question, an account tool finding the account database locked) takes its waits from here,
//! so "how long do we wait after the n-th failure" has one answer and one set of tests.
//!
//! It lives in the crate every process already shares and only computes durations: each loop
//! keeps its own control flow (cancellation, state reports, what counts as retryable), which a
//! retry combinator would have to be bent around, and sleeps with its own clock (tokio's, or
//! the thread's in a synchronous tool run).

use std::time::Duration;

/// How the nominal pause is randomised, so callers that failed together do not retry together.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Jitter {
    /// Exactly the nominal pause.
    None,
    /// A random point in the upper half, `[d/2, d]` ("equal jitter"): never more than nominal,
    /// never less than half.
    Equal,
    /// Up to this fraction added, `[d, d·(1+f)]`: never less than nominal.
    Add(f64),
}

/// Exponential backoff: `first` after the first failure, doubled after each further one up to
/// `max`, then jittered.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
    pub jitter: Jitter,
}

impl Backoff {
    pub const fn new(first: Duration, max: Duration, jitter: Jitter) -> Self {
        Self { first, max, jitter }
    }

    /// The pause after failure number `failures` (1-based; 0 counts as 1) before jitter:
    /// `first · 2^(failures-1)`, capped at `max`. Saturates instead of overflowing.
    pub fn nominal(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1);
        let factor = 2u32.checked_pow(doublings).unwrap_or(u32::MAX);
        self.first.saturating_mul(factor).min(self.max)
    }

    /// The pause after failure number `failures`, jittered.
    pub fn delay(&self, failures: u32) -> Duration {
        let d = self.nominal(failures);
        match self.jitter {
            Jitter::None => d,
            Jitter::Equal => {
                let half = d / 2;
                half + random_up_to(d - half)
            }
            Jitter::Add(fraction) => {
                let fraction = if fraction.is_finite() { fraction.clamp(0.0, 1.0) } else { 0.0 };
                d.saturating_add(random_up_to(d.mul_f64(fraction)))
            }
        }
    }

    /// [`delay`](Self::delay), but never shorter than what the server asked for (a 429's
    /// `Retry-After`): retrying sooner would only be refused again.
    pub fn delay_honouring(&self, failures: u32, asked: Option<Duration>) -> Duration {
        let own = self.delay(failures);
        asked.map_or(own, |asked| asked.max(own))
    }

    /// A counter of consecutive failures over this backoff, for loops.
    pub fn retries(self, max_attempts: Option<u32>) -> Retries {
        Retries { backoff: self, max_attempts, failures: 0 }
    }
}

/// Consecutive failures of one loop: the pause before each next attempt, and when to stop.
#[derive(Debug, Clone)]
pub struct Retries {
    backoff: Backoff,
    /// Attempts in all, the first included (0 counts as 1); `None` retries for ever.
    max_attempts: Option<u32>,
    failures: u32,
}

impl Retries {
    /// Records a failed attempt and returns the pause before the next one, honouring what the
    /// server `asked` for; `None` once the attempts are used up.
    pub fn failed(&mut self, asked: Option<Duration>) -> Option<Duration> {
        self.failures = self.failures.saturating_add(1);
        if self.max_attempts.is_some_and(|max| self.failures >= max.max(1)) {
            return None;
        }
        Some(self.backoff.delay_honouring(self.failures, asked))
    }

    /// Failed attempts so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// A success: the next failure waits `first` again.
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

/// A uniformly random duration in `[0, max]`.
fn random_up_to(max: Duration) -> Duration {
    let nanos = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(rand::random_range(0..=nanos))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn doubles_from_first_and_caps() {
        let b = Backoff::new(500 * MS, 8000 * MS, Jitter::None);
        let got: Vec<u128> = (1..=7).map(|n| b.delay(n).as_millis()).collect();
        assert_eq!(got, [500, 1000, 2000, 4000, 8000, 8000, 8000]);
        assert_eq!(b.delay(0), 500 * MS, "0 counts as the first failure");
        assert_eq!(b.delay(u32::MAX), 8000 * MS, "no overflow far out");
    }

    #[test]
    fn server_ask_is_a_floor_never_a_ceiling() {
        let b = Backoff::new(500 * MS, 8000 * MS, Jitter::None);
        assert_eq!(b.delay_honouring(1, Some(Duration::from_secs(5))), Duration::from_secs(5));
        assert_eq!(b.delay_honouring(4, Some(Duration::from_secs(1))), 4000 * MS);
        assert_eq!(b.delay_honouring(1, None), 500 * MS);
    }

    #[test]
    fn retries_stop_after_max_attempts_and_reset_on_success() {
        let mut r = Backoff::new(10 * MS, 40 * MS, Jitter::None).retries(Some(3));
        assert_eq!(r.failed(None), Some(10 * MS));
        assert_eq!(r.failed(None), Some(20 * MS));
        assert_eq!(r.failed(None), None, "three attempts in all");
        r.reset();
        assert_eq!(r.failed(Some(30 * MS)), Some(30 * MS));

        let mut once = Backoff::new(10 * MS, 40 * MS, Jitter::None).retries(Some(0));
        assert_eq!(once.failed(None), None, "0 attempts counts as 1");

        let mut forever = Backoff::new(10 * MS, 40 * MS, Jitter::None).retries(None);
        let waits: Vec<_> = (0..50).map(|_| forever.failed(None)).collect();
        assert!(waits.iter().all(|w| *w <= Some(40 * MS) && w.is_some()));
        assert_eq!(forever.failures(), 50);
    }

    proptest! {
        #[test]
        fn jitter_stays_in_its_window(first_ms in 1u64..10_000, max_ms in 1u64..100_000, n in 0u32..64, f in 0.0f64..1.0) {
            let (first, max) = (Duration::from_millis(first_ms), Duration::from_millis(max_ms));
            let nominal = Backoff::new(first, max, Jitter::None).delay(n);
            prop_assert!(nominal <= max);
            let equal = Backoff::new(first, max, Jitter::Equal).delay(n);
            prop_assert!(equal >= nominal / 2 && equal <= nominal, "{equal:?} vs {nominal:?}");
            let add = Backoff::new(first, max, Jitter::Add(f)).delay(n);
            prop_assert!(add >= nominal && add <= nominal + nominal.mul_f64(f) + Duration::from_nanos(1), "{add:?} vs {nominal:?}");
        }
    }

    #[test]
    fn odd_fractions_are_clamped_not_panics() {
        for f in [f64::NAN, f64::INFINITY, -1.0, 7.0] {
            let d = Backoff::new(100 * MS, 100 * MS, Jitter::Add(f)).delay(1);
            assert!(d >= 100 * MS && d <= 200 * MS, "{f}: {d:?}");
        }
    }
}
