//! What to call and how long to wait for it.

use std::time::Duration;

use hearth_proto::control::ProviderKind;

/// One configured provider: where to send requests, for which model, with which key.
#[derive(Debug, Clone)]
pub struct Provider {
    pub kind: ProviderKind,
    /// API root including the version segment, e.g. `https://api.openai.com/v1`,
    /// `http://localhost:11434/v1`, `https://api.anthropic.com/v1`; a trailing `/` is ignored.
    pub base_url: String,
    pub model: String,
    pub api_key: ApiKey,
    /// Stream the answer: the idle limit then applies between chunks, so a long answer that
    /// keeps flowing is not cut off by the first-byte limit.
    pub stream: bool,
}

/// A provider API key. It is only ever read through [`expose`](Self::expose), right where the
/// request header is built; `Debug` prints `<redacted>` and there is no `Display`, so it cannot
/// reach a log line or an error by accident.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// Surrounding whitespace is dropped: a key pasted with a trailing newline would otherwise
    /// fail every call with a confusing 401. An empty key is allowed — local servers (Ollama,
    /// LM Studio) need none, and then no auth header is sent.
    pub fn new(key: impl Into<String>) -> Self {
        let key = key.into();
        let trimmed = key.trim();
        if trimmed.len() == key.len() { Self(key) } else { Self(trimmed.to_owned()) }
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Time limits for one attempt. Each phase has its own so a stalled provider is noticed early
/// (a lane waits on it) while a long answer that keeps streaming may still finish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallLimits {
    /// TCP + TLS connect. Enforced by the `reqwest::Client`, so build it with
    /// [`http_client`](crate::http_client) (reqwest has no per-request connect timeout).
    pub connect: Duration,
    /// From sending the request until the response headers arrive (connect included).
    pub first_byte: Duration,
    /// Longest silence while reading the body: between stream chunks, or within a plain body.
    pub idle: Duration,
    /// The whole attempt, whatever happens.
    pub total: Duration,
}

impl Default for CallLimits {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(10),
            first_byte: Duration::from_secs(60),
            idle: Duration::from_secs(60),
            total: Duration::from_secs(180),
        }
    }
}
