//! Retrying a completion: which failures are worth another attempt, and how long to wait.

use std::time::{Duration, Instant};

use hearth_proto::backoff::{Backoff, Jitter};
use hearth_proto::llm::{Completion, CompletionRequest, Usage};

use crate::call::{OnText, complete_watching};
use crate::error::LlmError;
use crate::provider::{CallLimits, Provider};

/// The longest `Retry-After` worth waiting for. A member's lane is blocked while we wait, so
/// a provider asking for more gets an immediate failure the member can be told about instead.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

/// How many attempts and how far apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included; 0 counts as 1.
    pub max_attempts: u32,
    /// Wait before the second attempt; doubled for each later one.
    pub base_delay: Duration,
    /// Cap on the doubled wait (not on a provider's `Retry-After`, which is capped at
    /// [`MAX_RETRY_AFTER`]).
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { max_attempts: 3, base_delay: Duration::from_millis(500), max_delay: Duration::from_secs(8) }
    }
}

impl RetryPolicy {
    /// The wait after failed attempt number `attempt` (1-based), or `None` to give up.
    ///
    /// Exponential backoff with "equal jitter" (a random point in the upper half of the
    /// window), so lanes that failed together do not retry together yet each still waits at
    /// least half the nominal delay. A provider's `Retry-After` is a floor, unless it exceeds
    /// [`MAX_RETRY_AFTER`], which gives up.
    pub fn delay_after(&self, attempt: u32, error: &LlmError) -> Option<Duration> {
        let asked = error.retry_after();
        if asked.is_some_and(|asked| asked > MAX_RETRY_AFTER) {
            return None;
        }
        Some(self.backoff().delay_honouring(attempt, asked))
    }

    /// The shared backoff primitive this policy describes.
    pub fn backoff(&self) -> Backoff {
        Backoff::new(self.base_delay, self.max_delay, Jitter::Equal)
    }
}

/// What one attempt did, for metrics and the admin's view of provider health.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub latency: Duration,
    /// The usage on success; otherwise [`LlmError::kind`] (`http_429`, `timeout`, ...).
    pub outcome: Result<Usage, String>,
}

/// [`complete`] until it succeeds, fails in a way not worth retrying, or runs out of
/// attempts; returns the last error. `on_attempt` hears about every attempt, failed or not —
/// a failed attempt may still have been billed.
pub async fn complete_with_retry(
    http: &reqwest::Client,
    p: &Provider,
    req: &CompletionRequest,
    limits: &CallLimits,
    policy: &RetryPolicy,
    on_attempt: &mut (dyn FnMut(Attempt) + Send),
) -> Result<Completion, LlmError> {
    complete_with_retry_watching(http, p, req, limits, policy, on_attempt, &mut |_: &str| {}).await
}

/// [`complete_with_retry`], telling `on_text` each attempt's text as it streams in (a retry
/// starts again from nothing).
pub async fn complete_with_retry_watching(
    http: &reqwest::Client,
    p: &Provider,
    req: &CompletionRequest,
    limits: &CallLimits,
    policy: &RetryPolicy,
    on_attempt: &mut (dyn FnMut(Attempt) + Send),
    on_text: OnText<'_>,
) -> Result<Completion, LlmError> {
    let attempts = policy.max_attempts.max(1);
    let mut attempt = 1;
    loop {
        let started = Instant::now();
        let result = complete_watching(http, p, req, limits, &mut *on_text).await;
        on_attempt(Attempt {
            latency: started.elapsed(),
            outcome: result.as_ref().map(|c| c.usage).map_err(LlmError::kind),
        });
        let error = match result {
            Ok(completion) => return Ok(completion),
            Err(error) => error,
        };
        if !error.is_retryable() || attempt >= attempts {
            return Err(error);
        }
        let Some(delay) = policy.delay_after(attempt, &error) else {
            tracing::info!(model = %p.model, %error, "the provider asked for a longer pause than we wait; giving up");
            return Err(error);
        };
        tracing::info!(model = %p.model, attempt, ?delay, %error, "LLM call failed; retrying");
        tokio::time::sleep(delay).await;
        attempt += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(retry_after: Option<Duration>) -> LlmError {
        LlmError::Status { status: 429, retry_after, message: String::new() }
    }

    #[test]
    fn backoff_doubles_within_jitter_and_caps() {
        let p = RetryPolicy::default();
        for _ in 0..100 {
            let d1 = p.delay_after(1, &status(None)).unwrap();
            assert!(d1 >= Duration::from_millis(250) && d1 <= Duration::from_millis(500), "{d1:?}");
            let d3 = p.delay_after(3, &status(None)).unwrap();
            assert!(d3 >= Duration::from_millis(1000) && d3 <= Duration::from_millis(2000), "{d3:?}");
            let d40 = p.delay_after(40, &status(None)).unwrap();
            assert!(d40 >= Duration::from_secs(4) && d40 <= Duration::from_secs(8), "{d40:?}");
        }
    }

    #[test]
    fn retry_after_is_a_floor_and_too_long_gives_up() {
        let p = RetryPolicy::default();
        assert!(p.delay_after(1, &status(Some(Duration::from_secs(5)))).unwrap() >= Duration::from_secs(5));
        assert_eq!(p.delay_after(1, &status(Some(MAX_RETRY_AFTER + Duration::from_millis(1)))), None);
        assert_eq!(p.delay_after(1, &status(Some(MAX_RETRY_AFTER))), Some(MAX_RETRY_AFTER));
    }
}
