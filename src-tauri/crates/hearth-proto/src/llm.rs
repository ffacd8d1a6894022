//! Provider-neutral chat completion types. A worker builds a [`CompletionRequest`]; the broker
//! picks the model and adds the key, translates it to the provider's format, and answers with a
//! [`Completion`] or a [`BrokerError`].

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    User,
    Assistant,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: Role,
    pub content: String,
}

impl ChatMessage {
    pub fn user(content: impl Into<String>) -> Self {
        Self { role: Role::User, content: content.into() }
    }
    pub fn assistant(content: impl Into<String>) -> Self {
        Self { role: Role::Assistant, content: content.into() }
    }
}

/// What a worker asks for. The model is not named here: the broker decides it from the member's
/// settings, so a worker cannot pick an expensive model on its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompletionRequest {
    /// System prompt (persona, date, rules). Sent as `system` to Anthropic and as the first
    /// `system` message to OpenAI-compatible providers.
    pub system: String,
    /// Conversation so far, oldest first, ending with the user's turn.
    pub messages: Vec<ChatMessage>,
    /// Upper bound on output tokens; also what the broker reserves spend for.
    pub max_tokens: u32,
}

/// Token counts exactly as the provider reported them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Prompt tokens billed at the full input price (cached tokens excluded).
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Prompt tokens served from the provider's cache, billed at the cached-input price.
    pub cached_input_tokens: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Completion {
    pub text: String,
    /// The model that actually answered (providers may resolve aliases).
    pub model: String,
    pub usage: Usage,
    /// Provider's stop reason, normalised loosely ("stop", "length", ...), when given.
    pub finish_reason: Option<String>,
}

/// Why the broker could not produce a completion. The worker branches on `kind` to choose what
/// the member is told; `message` is for logs and the admin, never contains a secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{kind:?}: {message}")]
pub struct BrokerError {
    pub kind: BrokerErrorKind,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum BrokerErrorKind {
    /// No provider is configured yet.
    NotConfigured,
    /// A spend cap would be exceeded; `resets_at` is RFC 3339 in the household's zone when
    /// known; `admin_asked` says whether an admin was asked over Telegram to raise it.
    CapExceeded { resets_at: Option<String>, admin_asked: bool },
    /// The model has no price and the member has a cap: the admin must set one first.
    NoPrice { model: String },
    /// The provider kept failing (429/5xx/network) after retries.
    ProviderUnavailable,
    /// The provider answered something we could not use (malformed, refused).
    ProviderError,
    /// The call took longer than the broker allows.
    Timeout,
    /// The request itself was invalid (e.g. empty, too large).
    BadRequest,
}
