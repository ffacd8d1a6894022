//! The one error type of this crate.

use std::time::Duration;

/// Why an attempt produced no completion. Messages are for logs and the admin: they hold at most
/// ~300 characters of what a provider said, never a URL, and never the API key (every message is
/// scrubbed of it before it leaves [`complete`](crate::complete)).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LlmError {
    /// The provider answered with an error status (or an in-band error object, mapped to the
    /// status it stands for).
    #[error("the provider answered HTTP {status}: {message}")]
    Status {
        status: u16,
        /// From `retry-after-ms` or `Retry-After` (seconds); HTTP dates are not understood.
        retry_after: Option<Duration>,
        message: String,
    },
    /// A time limit of [`CallLimits`](crate::CallLimits) ran out; `phase` is `"connect"`,
    /// `"first_byte"`, `"idle"` or `"total"`.
    #[error("the provider did not answer within the {phase} time limit")]
    Timeout { phase: &'static str },
    /// Could not connect, or the connection broke.
    #[error("network error talking to the provider: {0}")]
    Network(String),
    /// The provider answered something that is not its API's format, or a stream that ended
    /// before its terminal event. Not retried: a provider that breaks its format once is
    /// likely to again, and a cut stream has usually been billed already.
    #[error("the provider's answer could not be understood: {0}")]
    Malformed(String),
    /// The provider settings cannot work (an invalid base URL, a key that cannot be sent in a
    /// header). Not retried; the admin has to fix the settings.
    #[error("the provider settings are invalid: {0}")]
    Config(String),
    /// The provider answered with a redirect. It is not followed: the key header would go along
    /// to wherever it points (reqwest strips only `Authorization` on a cross-host redirect, not
    /// Anthropic's `x-api-key`). Not retried; the admin sets the address it points to, if that
    /// is right. `url` is the address asked (scheme, host, port and path only), `location` what
    /// the provider pointed to (at most 300 characters).
    #[error(
        "the provider at {url} answered HTTP {status} with a redirect to {location}; Hearth does not follow a \
         provider's redirects (the API key would go along), so set the provider's address to where it should go"
    )]
    Redirected { status: u16, url: String, location: String },
}

impl LlmError {
    /// Worth another attempt: 408, 409, 429, 5xx, network trouble and timeouts. Not: other 4xx
    /// (the same request would fail the same way), malformed answers, bad settings.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Status { status, .. } => matches!(status, 408 | 409 | 429 | 500..=599),
            Self::Timeout { .. } | Self::Network(_) => true,
            Self::Malformed(_) | Self::Config(_) | Self::Redirected { .. } => false,
        }
    }

    /// A short, stable name for metrics and [`Attempt`](crate::Attempt): `http_429`, `timeout`,
    /// `network`, `malformed`, `config`.
    pub fn kind(&self) -> String {
        match self {
            Self::Status { status, .. } => format!("http_{status}"),
            Self::Timeout { .. } => "timeout".to_owned(),
            Self::Network(_) => "network".to_owned(),
            Self::Malformed(_) => "malformed".to_owned(),
            Self::Config(_) => "config".to_owned(),
            Self::Redirected { status, .. } => format!("redirect_{status}"),
        }
    }

    /// A 400 that says the model cannot take images: what the broker turns into "this model
    /// cannot see" for the member, rather than a generic bad request. Matched on the provider's
    /// words — OpenAI's "image_url is only supported by certain models", Anthropic's "does not
    /// support image input", and the phrasings of compatible servers ("does not support images",
    /// "not a multimodal model", "vision") — because no provider gives it a code of its own. A
    /// 400 about a broken image (bad base64, wrong media type) is not this.
    pub fn refuses_images(&self) -> bool {
        let Self::Status { status: 400, message, .. } = self else {
            return false;
        };
        let m = message.to_ascii_lowercase();
        [
            "only supported by certain models",
            "does not support image",
            "doesn't support image",
            "not support images",
            "not a multimodal model",
            "does not support vision",
            "vision is not supported",
            "image input is not supported",
        ]
        .iter()
        .any(|p| m.contains(p))
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Replaces every occurrence of `secret` in the message — a provider may echo the key back.
    pub(crate) fn redact(self, secret: &str) -> Self {
        if secret.is_empty() {
            return self;
        }
        let scrub = |s: String| if s.contains(secret) { s.replace(secret, "<redacted>") } else { s };
        match self {
            Self::Status { status, retry_after, message } => {
                Self::Status { status, retry_after, message: scrub(message) }
            }
            Self::Network(m) => Self::Network(scrub(m)),
            Self::Malformed(m) => Self::Malformed(scrub(m)),
            Self::Config(m) => Self::Config(scrub(m)),
            Self::Redirected { status, url, location } => {
                Self::Redirected { status, url: scrub(url), location: scrub(location) }
            }
            t @ Self::Timeout { .. } => t,
        }
    }
}

/// Longest provider text kept in an error message.
pub(crate) const MAX_MESSAGE_CHARS: usize = 300;

/// Cuts `s` to [`MAX_MESSAGE_CHARS`] characters, marking the cut.
pub(crate) fn clip(s: &str) -> String {
    let s = s.trim();
    match s.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_owned(),
    }
}

pub(crate) fn malformed(what: impl std::fmt::Display) -> LlmError {
    LlmError::Malformed(clip(&what.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_statuses() {
        let status = |s| LlmError::Status { status: s, retry_after: None, message: String::new() };
        for s in [408, 409, 429, 500, 502, 503, 529] {
            assert!(status(s).is_retryable(), "{s}");
        }
        for s in [400, 401, 403, 404, 413, 422] {
            assert!(!status(s).is_retryable(), "{s}");
        }
        assert!(LlmError::Timeout { phase: "idle" }.is_retryable());
        assert!(LlmError::Network("reset".into()).is_retryable());
        assert!(!LlmError::Malformed("x".into()).is_retryable());
        assert!(!LlmError::Config("x".into()).is_retryable());
        let redirect = LlmError::Redirected { status: 307, url: "u".into(), location: "l".into() };
        assert!(!redirect.is_retryable());
        assert_eq!(redirect.kind(), "redirect_307");
    }

    #[test]
    fn refusing_images_is_told_apart_from_a_broken_image() {
        let status = |s, m: &str| LlmError::Status { status: s, retry_after: None, message: m.to_owned() };
        assert!(status(400, "Invalid content type. image_url is only supported by certain models.").refuses_images());
        assert!(status(400, "'claude-2.1' does not support image input.").refuses_images());
        assert!(status(400, "llama3 is not a multimodal model").refuses_images());
        assert!(!status(400, "messages.0: the image's base64 data is invalid").refuses_images());
        assert!(!status(404, "does not support image input").refuses_images(), "only a 400");
        assert!(!LlmError::Network("does not support image".into()).refuses_images());
    }

    #[test]
    fn clip_keeps_short_and_cuts_long_on_char_boundaries() {
        assert_eq!(clip("  short "), "short");
        let long = "é".repeat(400);
        let clipped = clip(&long);
        assert_eq!(clipped.chars().count(), MAX_MESSAGE_CHARS + 1);
        assert!(clipped.ends_with('…'));
    }

    #[test]
    fn redact_scrubs_every_message_kind() {
        let key = "sk-secret-123";
        for e in [
            LlmError::Status { status: 401, retry_after: None, message: format!("bad key {key}") },
            LlmError::Network(format!("x {key} y {key}")),
            LlmError::Malformed(key.to_owned()),
            LlmError::Config(key.to_owned()),
            LlmError::Redirected {
                status: 302,
                url: format!("https://h/{key}"),
                location: format!("https://x/?k={key}"),
            },
        ] {
            let e = e.redact(key);
            assert!(!format!("{e} {e:?}").contains(key));
        }
    }
}
