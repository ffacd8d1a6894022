//! Provider-neutral chat completion types. A worker builds a [`CompletionRequest`]; the broker
//! picks the model and adds the key, translates it to the provider's format, and answers with a
//! [`Completion`] or a [`BrokerError`].

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    User,
    Assistant,
    /// The result of one tool call, answering an earlier assistant message's
    /// [`ChatMessage::tool_calls`]. OpenAI: a `role: tool` message; Anthropic: a `tool_result`
    /// block in a user message (consecutive results share one).
    Tool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: Role,
    /// The text. For [`Role::Tool`], the tool's result, or what went wrong when `is_error`.
    pub content: String,
    /// Assistant only: the tools the model asked for, in order. Sent back verbatim in later
    /// steps so the provider can match each result to its call.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// Tool only: the [`ToolCall::id`] this result answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// Tool only: the tool failed and `content` says how (Anthropic's `is_error`; OpenAI has no
    /// such flag and sees only the text).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub is_error: bool,
    /// User only: images the model should see with `content` (a photo the member sent). A
    /// worker names them ([`ImageSource::Attachment`]); the broker puts the bytes in before the
    /// provider sees the request, so image bytes never travel from a worker.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<ImageSource>,
}

/// Where an image in a user message comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "source")]
pub enum ImageSource {
    /// The photo attached to inbox row `inbox_id` of the running turn. The only kind a worker
    /// may send; the gateway refuses a request naming a row that is not the turn's or has no
    /// photo.
    Attachment { inbox_id: i64 },
    /// The image itself: `media_type` (`image/jpeg`, `image/png`, `image/webp`, `image/gif`) and
    /// its bytes in standard base64. Only the broker makes these, from `Attachment`s, right
    /// before the provider call; a worker's request carrying one is refused.
    Inline { media_type: String, data: String },
}

impl ChatMessage {
    fn plain(role: Role, content: String) -> Self {
        Self { role, content, tool_calls: Vec::new(), tool_call_id: None, is_error: false, images: Vec::new() }
    }
    pub fn user(content: impl Into<String>) -> Self {
        Self::plain(Role::User, content.into())
    }
    /// A user message with images (photos the member sent with it).
    pub fn user_with_images(content: impl Into<String>, images: Vec<ImageSource>) -> Self {
        Self { images, ..Self::plain(Role::User, content.into()) }
    }
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::plain(Role::Assistant, content.into())
    }
    /// The model's message asking for tools (with whatever text came along, often none).
    pub fn assistant_tool_calls(content: impl Into<String>, tool_calls: Vec<ToolCall>) -> Self {
        Self { tool_calls, ..Self::plain(Role::Assistant, content.into()) }
    }
    /// A tool's answer to call `tool_call_id`; `is_error` when `content` describes a failure.
    pub fn tool_result(tool_call_id: impl Into<String>, content: impl Into<String>, is_error: bool) -> Self {
        Self { tool_call_id: Some(tool_call_id.into()), is_error, ..Self::plain(Role::Tool, content.into()) }
    }
}

/// A tool the model may call. The worker offers the tools it runs itself; the gateway passes
/// them through and never runs one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolSpec {
    /// `^[a-zA-Z0-9_-]{1,64}$`, as both providers require.
    pub name: String,
    /// What the tool does and when to use it: the model decides from this.
    pub description: String,
    /// JSON Schema of the arguments (an `object` schema).
    pub parameters: serde_json::Value,
}

/// One tool call the model asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The provider's id for the call (OpenAI `call_…`, Anthropic `toolu_…`); the result names it.
    pub id: String,
    pub name: String,
    /// The arguments as JSON text, exactly as the model produced them. May be invalid JSON: the
    /// worker answers that with an error result rather than failing the turn.
    pub arguments: String,
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
    /// Tools the model may call; empty for none. Counted in the prompt estimate.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<ToolSpec>,
}

/// Token counts exactly as the provider reported them. The prompt is `input_tokens +
/// cached_input_tokens + cache_write_tokens`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Prompt tokens billed at the full input price (cached tokens excluded).
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Prompt tokens served from the provider's cache, billed at the cached-input price.
    pub cached_input_tokens: u64,
    /// Prompt tokens written into the provider's prompt cache (Anthropic's
    /// `cache_creation_input_tokens`), billed at the cache-write price. Not in `input_tokens`.
    /// Added in protocol 8.
    #[serde(default)]
    pub cache_write_tokens: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Completion {
    pub text: String,
    /// The model that actually answered (providers may resolve aliases).
    pub model: String,
    pub usage: Usage,
    /// Provider's stop reason, normalised loosely ("stop", "length", "tool_calls", ...), when given.
    pub finish_reason: Option<String>,
    /// Tools the model asked to call, in order; `text` may be empty then.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
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
    /// The request shows the model images and the model cannot see: the rate card says so, or
    /// the provider refused the images (a 400 naming image input). The worker tells the member
    /// plainly; the admin may choose a model that sees.
    ImagesUnsupported { model: String },
    /// The gateway does not let this turn ask for this: the member is paused or resting, the
    /// turn's kind needs no model, or the turn used up what one turn may ask for. No provider
    /// was called and nothing was charged.
    Refused { reason: Refusal },
}

/// Why the gateway refused a worker's request without calling a provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Refusal {
    /// The admin paused the member (before or during the turn).
    Paused,
    /// The member's quiet hours had begun when the turn started.
    Resting,
    /// This kind of turn (a command, a reminder) never asks the model or searches.
    NotThisTurn,
    /// Another request of this turn is still being answered: one at a time.
    Busy,
    /// The turn has had as many completions or searches as one turn may.
    Limit,
}
