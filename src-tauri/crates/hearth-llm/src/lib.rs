//! Calls to LLM providers for the gateway's broker: one attempt ([`complete`]) and a retry loop
//! ([`complete_with_retry`]) over OpenAI-compatible chat completions and Anthropic Messages,
//! streaming or not, each phase under its own time limit. Provider answers are untrusted input:
//! anything malformed becomes an [`LlmError`], never a panic, and no error, log line or `Debug`
//! output ever carries the API key.
//!
//! - `provider`: what to call ([`Provider`], [`ApiKey`]) and how long to wait ([`CallLimits`]).
//! - `call`: one HTTP attempt — sending, time limits, status handling, reading the body, and
//!   telling a watcher the text as it streams in ([`complete_watching`]).
//! - `openai`, `anthropic`: each provider's request body, response and stream decoding, and
//!   usage normalised into [`hearth_proto::llm::Usage`].
//! - `sse`: a server-sent-events parser that accepts any chunking of the byte stream.
//! - `retry`: which failures are worth another attempt and how long to wait first.
//! - `estimate`: a safe over-estimate of prompt tokens (images included) for spend reservations.
//! - `images`: which images may be sent (only inline ones) and their dimensions.
//! - `speech`: the OpenAI-compatible speech endpoints — [`transcribe`] and [`speak`].
//! - `error`: [`LlmError`], what a caller branches on.

mod anthropic;
mod call;
mod error;
mod estimate;
mod images;
mod openai;
mod provider;
mod retry;
mod speech;
mod sse;

pub use call::{OnText, complete, complete_watching, http_client};
pub use error::LlmError;
pub use estimate::{
    MAX_IMAGE_TOKENS, estimate_image_tokens, estimate_prompt_tokens, estimate_prompt_tokens_for, estimate_text_tokens,
    image_token_factor, image_tokens,
};
pub use images::inline_dimensions;
pub use provider::{ApiKey, CallLimits, Provider};
pub use retry::{Attempt, MAX_RETRY_AFTER, RetryPolicy, complete_with_retry, complete_with_retry_watching};
pub use speech::{SpeechService, speak, transcribe};
pub use sse::{SseEvent, SseParser};

pub use hearth_proto::control::ProviderKind;
pub use hearth_proto::llm::{ChatMessage, Completion, CompletionRequest, ImageSource, Role, Usage};
