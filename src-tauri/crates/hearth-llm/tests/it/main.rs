//! Integration tests of hearth-llm against the fake LLM from hearth-testkit, on loopback.

mod calls;
mod faults;
mod media;
mod retry;
mod tools;

use std::time::Duration;

use hearth_llm::{ApiKey, CallLimits, ChatMessage, CompletionRequest, LlmError, Provider, ProviderKind, RetryPolicy};
use hearth_testkit::llm::FakeLlm;

/// Distinctive enough that finding it anywhere in an error means it leaked.
const KEY: &str = "sk-test-S3CRET-0123456789abcdef";

const BOTH: [ProviderKind; 2] = [ProviderKind::Openai, ProviderKind::Anthropic];

fn provider(fake: &FakeLlm, kind: ProviderKind, stream: bool) -> Provider {
    Provider { kind, base_url: fake.base_url(), model: "test-model".to_owned(), api_key: ApiKey::new(KEY), stream }
}

/// Every combination of provider and streaming, for tests that must hold for all four.
fn all_providers(fake: &FakeLlm) -> Vec<Provider> {
    BOTH.into_iter().flat_map(|k| [provider(fake, k, false), provider(fake, k, true)]).collect()
}

fn request(text: &str) -> CompletionRequest {
    CompletionRequest {
        system: "You are a helpful family assistant.".to_owned(),
        messages: vec![
            ChatMessage::user("Hello there"),
            ChatMessage::assistant("Hi! How can I help?"),
            ChatMessage::user(text),
        ],
        max_tokens: 256,
        tools: vec![],
    }
}

/// Short limits so fault tests finish fast; far above what loopback needs.
fn limits() -> CallLimits {
    CallLimits {
        connect: Duration::from_secs(2),
        first_byte: Duration::from_secs(2),
        idle: Duration::from_secs(2),
        total: Duration::from_secs(5),
    }
}

fn fast_retries() -> RetryPolicy {
    RetryPolicy { max_attempts: 3, base_delay: Duration::from_millis(10), max_delay: Duration::from_millis(40) }
}

fn http() -> reqwest::Client {
    hearth_llm::http_client(&limits()).expect("build http client")
}

/// Asserts the key appears in neither the Display nor the Debug of an error, and returns it.
#[track_caller]
fn no_key(e: LlmError) -> LlmError {
    let shown = format!("{e} | {e:?}");
    assert!(!shown.contains(KEY), "the API key leaked: {shown}");
    e
}
