//! OpenAI chat completions, and every server compatible with it (OpenRouter, DeepSeek, Gemini's
//! compatible endpoint, Ollama, LM Studio).
//!
//! Usage: `prompt_tokens` includes cached tokens, reported in
//! `prompt_tokens_details.cached_tokens` (DeepSeek: `prompt_cache_hit_tokens`); the full-price
//! input is the difference. A stream reports usage only when asked with
//! `stream_options.include_usage`, in a last chunk whose `choices` is empty.

use hearth_proto::llm::{ChatMessage, CompletionRequest, Role, ToolCall, Usage};
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
    messages.extend(req.messages.iter().map(message_body));
    let mut body = json!({ "model": model, "messages": messages, "stream": stream });
    if !req.tools.is_empty() {
        let tools: Vec<Value> = req
            .tools
            .iter()
            .map(|t| {
                json!({
                    "type": "function",
                    "function": { "name": t.name, "description": t.description, "parameters": t.parameters }
                })
            })
            .collect();
        body["tools"] = json!(tools);
    }
    let limit_field = if options.max_completion_tokens { "max_completion_tokens" } else { "max_tokens" };
    body[limit_field] = json!(req.max_tokens);
    if stream && options.stream_options {
        body["stream_options"] = json!({ "include_usage": true });
    }
    body
}

/// One message in OpenAI's shape: tool calls on the assistant message that asked for them, and
/// each result as its own `role: tool` message.
fn message_body(m: &ChatMessage) -> Value {
    match m.role {
        Role::User if m.images.is_empty() => json!({ "role": "user", "content": m.content }),
        Role::User => {
            // Content parts: the text (when there is any), then each image as a data URL.
            let mut parts = Vec::with_capacity(m.images.len() + 1);
            if !m.content.is_empty() {
                parts.push(json!({ "type": "text", "text": m.content }));
            }
            parts.extend(crate::images::inline(&m.images).map(|(media_type, data)| {
                json!({ "type": "image_url", "image_url": { "url": format!("data:{media_type};base64,{data}") } })
            }));
            json!({ "role": "user", "content": parts })
        }
        Role::Assistant if m.tool_calls.is_empty() => json!({ "role": "assistant", "content": m.content }),
        Role::Assistant => {
            let calls: Vec<Value> = m
                .tool_calls
                .iter()
                .map(|c| json!({ "id": c.id, "type": "function", "function": { "name": c.name, "arguments": c.arguments } }))
                .collect();
            let content = if m.content.is_empty() { Value::Null } else { json!(m.content) };
            json!({ "role": "assistant", "content": content, "tool_calls": calls })
        }
        Role::Tool => json!({ "role": "tool", "tool_call_id": m.tool_call_id.as_deref().unwrap_or(""), "content": m.content }),
    }
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
    #[serde(default)]
    tool_calls: Option<Vec<WireToolCall>>,
}

/// A tool call, whole (a response) or a piece of one (a stream delta: `index` says which call,
/// the first piece carries `id` and `name`, later ones more of `arguments`).
#[derive(Debug, Deserialize)]
struct WireToolCall {
    #[serde(default)]
    index: Option<usize>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    function: Option<WireFunction>,
}

#[derive(Debug, Deserialize)]
struct WireFunction {
    #[serde(default)]
    name: Option<String>,
    /// JSON text; some servers send an object instead, which is kept as its JSON text.
    #[serde(default)]
    arguments: Option<Value>,
}

fn arguments_text(arguments: Option<Value>) -> String {
    match arguments {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s,
        Some(other) => other.to_string(),
    }
}

/// An id for a call the server sent without one (some local servers): the result must name
/// something, and such a server does not check what.
fn fallback_id(position: usize) -> String {
    format!("call_{position}")
}

/// Whole tool calls from a response. A call without a name is malformed: nothing could run.
fn tool_calls(wire: Option<Vec<WireToolCall>>) -> Result<Vec<ToolCall>, LlmError> {
    let mut out = Vec::new();
    for (i, w) in wire.unwrap_or_default().into_iter().enumerate() {
        let function = w.function.ok_or_else(|| malformed("a tool call has no function"))?;
        let name = function.name.filter(|n| !n.is_empty()).ok_or_else(|| malformed("a tool call has no name"))?;
        let id = w.id.filter(|id| !id.is_empty()).unwrap_or_else(|| fallback_id(i));
        out.push(ToolCall { id, name, arguments: arguments_text(function.arguments) });
    }
    Ok(out)
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
    Some(Usage { input_tokens: prompt - cached, output_tokens: output, cached_input_tokens: cached, cache_write_tokens: 0 })
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
    let tool_calls = tool_calls(message.tool_calls)?;
    Ok(Answer {
        text,
        model: r.model,
        usage: r.usage.and_then(normalise_usage),
        finish_reason: choice.finish_reason,
        tool_calls,
    })
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
    #[serde(default)]
    tool_calls: Option<Vec<WireToolCall>>,
}

/// Accumulates a streamed completion; complete at `data: [DONE]`.
#[derive(Debug, Default)]
pub(crate) struct Stream {
    answer: Answer,
    /// Tool calls being assembled from deltas, by their `index`.
    calls: Vec<PartialCall>,
}

#[derive(Debug, Default)]
struct PartialCall {
    index: usize,
    id: String,
    name: String,
    arguments: String,
}

impl Stream {
    /// Adds one tool-call delta. Pieces are matched by `index`; a server that omits it (some
    /// compatible ones) is followed by `id`: a new id starts a new call, none continues the last.
    fn on_tool_delta(&mut self, delta: WireToolCall) {
        let position = match delta.index {
            Some(index) => self.calls.iter().position(|c| c.index == index),
            None => match delta.id.as_deref() {
                Some(id) => self.calls.iter().position(|c| c.id == id),
                None if self.calls.is_empty() => None,
                None => Some(self.calls.len() - 1),
            },
        };
        let call = match position {
            Some(p) => &mut self.calls[p],
            None => {
                let index = delta.index.unwrap_or(self.calls.len());
                self.calls.push(PartialCall { index, ..PartialCall::default() });
                self.calls.last_mut().expect("just pushed")
            }
        };
        if let Some(id) = delta.id.filter(|i| !i.is_empty()) {
            call.id = id;
        }
        if let Some(function) = delta.function {
            if let Some(name) = function.name {
                // Names arrive whole in practice; appending also covers a server that splits them.
                call.name.push_str(&name);
            }
            call.arguments.push_str(&arguments_text(function.arguments));
        }
    }
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
                for call in delta.tool_calls.unwrap_or_default() {
                    self.on_tool_delta(call);
                }
            }
            if choice.finish_reason.is_some() {
                self.answer.finish_reason = choice.finish_reason;
            }
        }
        Ok(false)
    }

    fn text(&self) -> &str {
        &self.answer.text
    }

    fn into_answer(mut self) -> Answer {
        self.calls.sort_by_key(|c| c.index);
        self.answer.tool_calls = self
            .calls
            .into_iter()
            .filter(|c| !c.name.is_empty())
            .enumerate()
            .map(|(i, c)| ToolCall {
                id: if c.id.is_empty() { fallback_id(i) } else { c.id },
                name: c.name,
                arguments: c.arguments,
            })
            .collect();
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
        assert_eq!(u, Some(Usage { input_tokens: 40, output_tokens: 7, cached_input_tokens: 60, ..Usage::default() }));
        let deepseek = usage(json!({"prompt_tokens": 100, "completion_tokens": 7, "prompt_cache_hit_tokens": 30,
            "prompt_cache_miss_tokens": 70}));
        assert_eq!(deepseek, Some(Usage { input_tokens: 70, output_tokens: 7, cached_input_tokens: 30, ..Usage::default() }));
        let ollama = usage(json!({"prompt_tokens": 12, "completion_tokens": 3, "prompt_tokens_details": null}));
        assert_eq!(ollama, Some(Usage { input_tokens: 12, output_tokens: 3, cached_input_tokens: 0, ..Usage::default() }));
        let nonsense =
            usage(json!({"prompt_tokens": 5, "completion_tokens": 1, "prompt_tokens_details": {"cached_tokens": 9}}));
        assert_eq!(nonsense, Some(Usage { input_tokens: 0, output_tokens: 1, cached_input_tokens: 5, ..Usage::default() }));
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

    fn stream_of(chunks: &[&str]) -> Answer {
        let mut s = Stream::default();
        for c in chunks {
            s.on_event(&SseEvent { event: None, data: (*c).to_owned() }).unwrap();
        }
        assert!(s.on_event(&SseEvent { event: None, data: "[DONE]".into() }).unwrap());
        s.into_answer()
    }

    #[test]
    fn stream_tool_calls_assemble_by_index_even_interleaved() {
        let a = stream_of(&[
            r#"{"choices":[{"delta":{"tool_calls":[{"index":1,"id":"b","function":{"name":"recall","arguments":"{\"q"}}]}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"id":"a","function":{"name":"remember","arguments":""}}]}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{}"}}]}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"index":1,"function":{"arguments":"\":1}"}}]}}]}"#,
            r#"{"choices":[{"delta":{},"finish_reason":"tool_calls"}]}"#,
        ]);
        let got: Vec<(&str, &str, &str)> =
            a.tool_calls.iter().map(|c| (c.id.as_str(), c.name.as_str(), c.arguments.as_str())).collect();
        assert_eq!(got, [("a", "remember", "{}"), ("b", "recall", "{\"q\":1}")]);
        assert_eq!(a.finish_reason.as_deref(), Some("tool_calls"));
    }

    #[test]
    fn stream_tool_calls_without_index_or_id_follow_the_last_one() {
        let a = stream_of(&[
            r#"{"choices":[{"delta":{"tool_calls":[{"function":{"name":"recall","arguments":"{\"query\""}}]}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"function":{"arguments":": \"cat\"}"}}]}}]}"#,
        ]);
        assert_eq!(a.tool_calls, [ToolCall { id: "call_0".into(), name: "recall".into(), arguments: "{\"query\": \"cat\"}".into() }]);
        // Arguments sent as an object (some servers) are kept as JSON text.
        let r = parse_response(
            br#"{"choices":[{"message":{"content":null,"tool_calls":[{"function":{"name":"recall","arguments":{"query":"x"}}}]}}]}"#,
        )
        .unwrap();
        assert_eq!(r.tool_calls, [ToolCall { id: "call_0".into(), name: "recall".into(), arguments: "{\"query\":\"x\"}".into() }]);
        assert!(parse_response(br#"{"choices":[{"message":{"tool_calls":[{"id":"x","function":{}}]}}]}"#).is_err());
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
        let req = CompletionRequest { system: String::new(), messages: vec![], max_tokens: 5, tools: vec![] };
        let body = request_body("m", &req, false, o3);
        assert_eq!(body["max_completion_tokens"], 5);
        assert!(body.get("max_tokens").is_none());
    }
}
