//! OpenAI chat completions, and every server compatible with it (OpenRouter, DeepSeek, Gemini's
//! compatible endpoint, Ollama, LM Studio).
//!
//! Usage: `prompt_tokens` includes cached tokens, reported in
//! `prompt_tokens_details.cached_tokens` (DeepSeek: `prompt_cache_hit_tokens`); the full-price
//! input is the difference. A stream reports usage only when asked with
//! `stream_options.include_usage`, in a last chunk whose `choices` is empty.

use hearth_proto::llm::{CompletionRequest, Role, Usage};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::call::{Answer, StreamDecoder, in_band_error};
use crate::error::{LlmError, malformed};
use crate::sse::SseEvent;

/// Request-body variations for servers that reject parts of the default body. Each starts at
/// the common form and is flipped at most once, after a 400 naming the parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BodyOptions {
    /// Ask for usage in streams. Some compatible servers reject `stream_options`.
    pub stream_options: bool,
    /// Send the limit as `max_completion_tokens`: OpenAI's reasoning models reject
    /// `max_tokens`, while many compatible servers know only `max_tokens`.
    pub max_completion_tokens: bool,
}

impl Default for BodyOptions {
    fn default() -> Self {
        Self { stream_options: true, max_completion_tokens: false }
    }
}

impl BodyOptions {
    /// The options to try after a 400 with this message, if it names a parameter we can change.
    pub(crate) fn after_rejection(self, stream: bool, message: &str) -> Option<Self> {
        if stream && self.stream_options && message.contains("stream_options") {
            return Some(Self { stream_options: false, ..self });
        }
        if !self.max_completion_tokens && message.contains("max_completion_tokens") {
            return Some(Self { max_completion_tokens: true, ..self });
        }
        None
    }
}

pub(crate) fn request_body(model: &str, req: &CompletionRequest, stream: bool, options: BodyOptions) -> Value {
    let mut messages = Vec::with_capacity(req.messages.len() + 1);
    if !req.system.is_empty() {
        messages.push(json!({ "role": "system", "content": req.system }));
    }
    for m in &req.messages {
        let role = match m.role {
            Role::User => "user",
            Role::Assistant => "assistant",
        };
        messages.push(json!({ "role": role, "content": m.content }));
    }
    let mut body = json!({ "model": model, "messages": messages, "stream": stream });
    let limit_field = if options.max_completion_tokens { "max_completion_tokens" } else { "max_tokens" };
    body[limit_field] = json!(req.max_tokens);
    if stream && options.stream_options {
        body["stream_options"] = json!({ "include_usage": true });
    }
    body
}

#[derive(Debug, Deserialize)]
struct ChatResponse {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    choices: Option<Vec<Choice>>,
    #[serde(default)]
    usage: Option<WireUsage>,
    /// Some gateways (OpenRouter) answer 200 with an error object.
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct Choice {
    #[serde(default)]
    message: Option<Message>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Message {
    /// A string, null (tool calls only), or on some servers an array of content parts.
    #[serde(default)]
    content: Option<Value>,
    #[serde(default)]
    refusal: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct WireUsage {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
    #[serde(default)]
    prompt_tokens_details: Option<PromptDetails>,
    /// DeepSeek's name for cached prompt tokens.
    #[serde(default)]
    prompt_cache_hit_tokens: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct PromptDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
}

/// Usage as billed: full-price input is the prompt minus its cached part. `None` when the
/// counts are missing, so the caller charges an estimate instead of zero.
pub(crate) fn normalise_usage(u: WireUsage) -> Option<Usage> {
    let prompt = u.prompt_tokens?;
    let output = u.completion_tokens?;
    let cached = u.prompt_tokens_details.and_then(|d| d.cached_tokens).or(u.prompt_cache_hit_tokens).unwrap_or(0);
    let cached = cached.min(prompt);
    Some(Usage { input_tokens: prompt - cached, output_tokens: output, cached_input_tokens: cached })
}

/// Text of a `content` value: a string, null, or an array of `{type: "text", text}` parts.
fn content_text(content: Option<&Value>) -> Result<String, LlmError> {
    match content {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Array(parts)) => Ok(parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect()),
        Some(other) => Err(malformed(format!("message content is neither text nor parts: {other}"))),
    }
}

pub(crate) fn parse_response(body: &[u8]) -> Result<Answer, LlmError> {
    let r: ChatResponse = serde_json::from_slice(body).map_err(|e| malformed(format!("not a chat completion: {e}")))?;
    let Some(choice) = r.choices.and_then(|c| c.into_iter().next()) else {
        return Err(match r.error {
            Some(error) => in_band_error(&error),
            None => malformed("the completion has no choices"),
        });
    };
    let message = choice.message.ok_or_else(|| malformed("the first choice has no message"))?;
    let mut text = content_text(message.content.as_ref())?;
    if text.is_empty()
        && let Some(refusal) = message.refusal
    {
        text = refusal;
    }
    Ok(Answer { text, model: r.model, usage: r.usage.and_then(normalise_usage), finish_reason: choice.finish_reason })
}

#[derive(Debug, Deserialize)]
struct Chunk {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    choices: Option<Vec<ChunkChoice>>,
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct ChunkChoice {
    #[serde(default)]
    delta: Option<Delta>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Delta {
    #[serde(default)]
    content: Option<Value>,
    #[serde(default)]
    refusal: Option<String>,
}

/// Accumulates a streamed completion; complete at `data: [DONE]`.
#[derive(Debug, Default)]
pub(crate) struct Stream {
    answer: Answer,
}

impl StreamDecoder for Stream {
    fn on_event(&mut self, event: &SseEvent) -> Result<bool, LlmError> {
        let data = event.data.trim();
        if data == "[DONE]" {
            return Ok(true);
        }
        if data.is_empty() {
            return Ok(false);
        }
        let chunk: Chunk = serde_json::from_str(data)
            .map_err(|e| malformed(format!("stream chunk is not a completion chunk: {e}")))?;
        if let Some(error) = chunk.error {
            return Err(in_band_error(&error));
        }
        if chunk.model.is_some() {
            self.answer.model = chunk.model;
        }
        if let Some(usage) = chunk.usage.and_then(normalise_usage) {
            self.answer.usage = Some(usage);
        }
        if let Some(choice) = chunk.choices.and_then(|c| c.into_iter().next()) {
            if let Some(delta) = choice.delta {
                self.answer.text.push_str(&content_text(delta.content.as_ref())?);
                if let Some(refusal) = delta.refusal {
                    self.answer.text.push_str(&refusal);
                }
            }
            if choice.finish_reason.is_some() {
                self.answer.finish_reason = choice.finish_reason;
            }
        }
        Ok(false)
    }

    fn into_answer(self) -> Answer {
        self.answer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(v: Value) -> Option<Usage> {
        normalise_usage(serde_json::from_value(v).unwrap())
    }

    #[test]
    fn usage_excludes_cached_from_full_price_input() {
        let u = usage(json!({"prompt_tokens": 100, "completion_tokens": 7, "total_tokens": 107,
            "prompt_tokens_details": {"cached_tokens": 60}}));
        assert_eq!(u, Some(Usage { input_tokens: 40, output_tokens: 7, cached_input_tokens: 60 }));
        let deepseek = usage(json!({"prompt_tokens": 100, "completion_tokens": 7, "prompt_cache_hit_tokens": 30,
            "prompt_cache_miss_tokens": 70}));
        assert_eq!(deepseek, Some(Usage { input_tokens: 70, output_tokens: 7, cached_input_tokens: 30 }));
        let ollama = usage(json!({"prompt_tokens": 12, "completion_tokens": 3, "prompt_tokens_details": null}));
        assert_eq!(ollama, Some(Usage { input_tokens: 12, output_tokens: 3, cached_input_tokens: 0 }));
        let nonsense =
            usage(json!({"prompt_tokens": 5, "completion_tokens": 1, "prompt_tokens_details": {"cached_tokens": 9}}));
        assert_eq!(nonsense, Some(Usage { input_tokens: 0, output_tokens: 1, cached_input_tokens: 5 }));
        assert_eq!(usage(json!({"completion_tokens": 1})), None);
    }

    #[test]
    fn bad_responses_are_errors_not_panics() {
        for body in [
            &b""[..],
            b"null",
            b"[]",
            b"{}",
            b"{\"choices\": []}",
            b"{\"choices\": null}",
            b"{\"choices\": [{}]}",
            b"{\"choices\": [{\"message\": {\"content\": 5}}]}",
            b"{\"choices\": \"x\"}",
            b"{\"choices\": [{\"message\": {\"content\": \"hi\"}}], \"usage\": {\"prompt_tokens\": -1}}",
            b"{\"choices\": [{\"message\": {\"content\": \"hi\"",
        ] {
            assert!(parse_response(body).is_err(), "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn in_band_error_becomes_status() {
        let e = parse_response(br#"{"error": {"message": "Upstream overloaded", "code": 503}}"#).unwrap_err();
        assert!(matches!(e, LlmError::Status { status: 503, .. }), "{e:?}");
        let e = parse_response(br#"{"error": {"message": "slow down", "type": "rate_limit_exceeded"}}"#).unwrap_err();
        assert!(matches!(e, LlmError::Status { status: 429, .. }), "{e:?}");
    }

    #[test]
    fn content_parts_and_tool_calls() {
        let a = parse_response(
            br#"{"choices":[{"message":{"content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}}]}"#,
        )
        .unwrap();
        assert_eq!(a.text, "ab");
        assert_eq!(a.usage, None);
        let a = parse_response(
            br#"{"choices":[{"message":{"content":null,"tool_calls":[]},"finish_reason":"tool_calls"}]}"#,
        )
        .unwrap();
        assert_eq!((a.text.as_str(), a.finish_reason.as_deref()), ("", Some("tool_calls")));
    }

    #[test]
    fn fallback_options_flip_once() {
        let o = BodyOptions::default();
        let o2 = o.after_rejection(true, "Unrecognized request argument supplied: stream_options").unwrap();
        assert!(!o2.stream_options);
        assert_eq!(o2.after_rejection(true, "stream_options"), None);
        let o3 = o
            .after_rejection(false, "Unsupported parameter: 'max_tokens'. Use 'max_completion_tokens' instead.")
            .unwrap();
        assert!(o3.max_completion_tokens);
        assert_eq!(o3.after_rejection(false, "max_completion_tokens"), None);
        let body =
            request_body("m", &CompletionRequest { system: String::new(), messages: vec![], max_tokens: 5 }, false, o3);
        assert_eq!(body["max_completion_tokens"], 5);
        assert!(body.get("max_tokens").is_none());
    }
}
