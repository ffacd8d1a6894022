//! The retry loop: what is retried, how long it waits, what it reports.

use std::time::{Duration, Instant};

use hearth_llm::{Attempt, complete_with_retry};
use hearth_testkit::llm::{FakeLlm, Fault, Rule};

use super::*;

async fn run(
    fake: &FakeLlm,
    p: &Provider,
    policy: &RetryPolicy,
) -> (Result<hearth_llm::Completion, LlmError>, Vec<Attempt>) {
    let mut attempts = Vec::new();
    let limits = CallLimits { first_byte: Duration::from_millis(300), ..limits() };
    let result = complete_with_retry(&http(), p, &request("hi"), &limits, policy, &mut |a| attempts.push(a)).await;
    let _ = fake;
    (result.map_err(no_key), attempts)
}

fn kinds(attempts: &[Attempt]) -> Vec<String> {
    attempts.iter().map(|a| a.outcome.as_ref().map(|_| "ok".to_owned()).unwrap_or_else(Clone::clone)).collect()
}

#[tokio::test]
async fn rate_limit_waits_for_retry_after() {
    let fake = FakeLlm::start().await;
    fake.add_rule(Rule::matching("").fault(Fault::Status { code: 429, retry_after_secs: Some(1) }).times(1));
    let started = Instant::now();
    let (result, attempts) = run(&fake, &provider(&fake, ProviderKind::Anthropic, true), &fast_retries()).await;
    let completion = result.unwrap();
    assert!(started.elapsed() >= Duration::from_secs(1), "{:?}", started.elapsed());
    assert_eq!(completion.text, "You said: hi");
    assert_eq!(kinds(&attempts), ["http_429", "ok"]);
    assert_eq!(attempts[1].outcome, Ok(completion.usage));
    let calls = fake.calls();
    assert_eq!(calls.len(), 2);
    assert!(calls[1].at.duration_since(calls[0].at) >= Duration::from_secs(1));
}

#[tokio::test]
async fn retry_after_beyond_the_cap_gives_up_at_once() {
    let fake = FakeLlm::start().await;
    fake.add_rule(Rule::matching("").fault(Fault::Status { code: 429, retry_after_secs: Some(3600) }));
    let started = Instant::now();
    let (result, attempts) = run(&fake, &provider(&fake, ProviderKind::Openai, false), &fast_retries()).await;
    assert!(matches!(result, Err(LlmError::Status { status: 429, .. })));
    assert_eq!(attempts.len(), 1);
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[tokio::test]
async fn server_errors_and_hangs_are_retried_until_success() {
    let fake = FakeLlm::start().await;
    fake.add_rule(Rule::matching("").fault(Fault::Status { code: 500, retry_after_secs: None }).times(1));
    fake.add_rule(Rule::matching("").fault(Fault::Hang).times(1));
    let (result, attempts) = run(&fake, &provider(&fake, ProviderKind::Openai, false), &fast_retries()).await;
    result.unwrap();
    assert_eq!(kinds(&attempts), ["http_500", "timeout", "ok"]);

    fake.add_rule(Rule::matching("").fault(Fault::Status { code: 529, retry_after_secs: None }).times(1));
    let (result, attempts) = run(&fake, &provider(&fake, ProviderKind::Anthropic, true), &fast_retries()).await;
    result.unwrap();
    assert_eq!(kinds(&attempts), ["http_529", "ok"]);
    assert_eq!(fake.calls().len(), 5);
}

#[tokio::test]
async fn client_errors_are_not_retried() {
    let fake = FakeLlm::start().await;
    fake.require_api_key("sk-other");
    let (result, attempts) = run(&fake, &provider(&fake, ProviderKind::Openai, true), &fast_retries()).await;
    assert!(matches!(result, Err(LlmError::Status { status: 401, .. })));
    assert_eq!(kinds(&attempts), ["http_401"]);
    assert_eq!(fake.calls().len(), 1);
}

#[tokio::test]
async fn malformed_is_not_retried() {
    let fake = FakeLlm::start().await;
    fake.add_rule(Rule::matching("").fault(Fault::Truncated).times(1));
    let (result, attempts) = run(&fake, &provider(&fake, ProviderKind::Anthropic, true), &fast_retries()).await;
    assert_eq!(result.unwrap_err(), LlmError::Malformed("stream ended early".into()));
    assert_eq!(kinds(&attempts), ["malformed"]);
}

#[tokio::test]
async fn gives_up_after_max_attempts_with_the_last_error() {
    let fake = FakeLlm::start().await;
    fake.add_rule(Rule::matching("").fault(Fault::Status { code: 502, retry_after_secs: None }));
    let (result, attempts) = run(&fake, &provider(&fake, ProviderKind::Openai, true), &fast_retries()).await;
    assert!(matches!(result, Err(LlmError::Status { status: 502, .. })));
    assert_eq!(kinds(&attempts), ["http_502", "http_502", "http_502"]);
    assert_eq!(fake.wait_for_calls(3, Duration::from_secs(1)).await.unwrap().len(), 3);
    let single = RetryPolicy { max_attempts: 0, ..fast_retries() };
    let (_, attempts) = run(&fake, &provider(&fake, ProviderKind::Openai, true), &single).await;
    assert_eq!(attempts.len(), 1);
}
