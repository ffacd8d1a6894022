//! Anthropic Messages.
//!
//! Usage: `input_tokens` excludes both cache reads (`cache_read_input_tokens`, cheap) and cache
//! writes (`cache_creation_input_tokens`, billed at or above the full input price). So
//! full-price input is `input_tokens + cache_creation_input_tokens`, and cached input is
//! `cache_read_input_tokens`. A stream gives the input counts in `message_start` and the final,
//! cumulative `output_tokens` in `message_delta`.

use hearth_proto::llm::{CompletionRequest, Role, Usage};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::call::{Answer, StreamDecoder, in_band_error};
use crate::error::{LlmError, malformed};
use crate::sse::SseEvent;

/// The API version every request names; responses are parsed as this version defines them.
pub(crate) const API_VERSION: &str = "2023-06-01";

pub(crate) fn request_body(model: &str, req: &CompletionRequest, stream: bool) -> Value {
    let messages: Vec<Value> = req
        .messages
        .iter()
        .map(|m| {
            let role = match m.role {
                Role::User => "user",
                Role::Assistant => "assistant",
            };
            json!({ "role": role, "content": m.content })
        })
        .collect();
    let mut body = json!({ "model": model, "messages": messages, "max_tokens": req.max_tokens, "stream": stream });
    if !req.system.is_empty() {
        body["system"] = json!(req.system);
    }
    body
}

/// Stop reasons in the vocabulary [`Completion::finish_reason`](hearth_proto::llm::Completion)
/// uses (OpenAI's), so callers need not know the provider.
fn normalise_stop_reason(reason: String) -> String {
    match reason.as_str() {
        "end_turn" | "stop_sequence" => "stop".to_owned(),
        "max_tokens" => "length".to_owned(),
        "tool_use" => "tool_calls".to_owned(),
        "refusal" => "content_filter".to_owned(),
        _ => reason,
    }
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct WireUsage {
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
    #[serde(default)]
    cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
}

impl WireUsage {
    /// Later reports replace earlier ones field by field (`message_delta` counts are cumulative).
    fn update(&mut self, newer: WireUsage) {
        self.input_tokens = newer.input_tokens.or(self.input_tokens);
        self.output_tokens = newer.output_tokens.or(self.output_tokens);
        self.cache_creation_input_tokens = newer.cache_creation_input_tokens.or(self.cache_creation_input_tokens);
        self.cache_read_input_tokens = newer.cache_read_input_tokens.or(self.cache_read_input_tokens);
    }
}

/// Usage as billed; `None` when the counts are missing, so the caller charges an estimate.
pub(crate) fn normalise_usage(u: &WireUsage) -> Option<Usage> {
    Some(Usage {
        input_tokens: u.input_tokens?.saturating_add(u.cache_creation_input_tokens.unwrap_or(0)),
        output_tokens: u.output_tokens?,
        cached_input_tokens: u.cache_read_input_tokens.unwrap_or(0),
    })
}

#[derive(Debug, Deserialize)]
struct MessageResponse {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    content: Option<Vec<Block>>,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct Block {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    text: Option<String>,
}

pub(crate) fn parse_response(body: &[u8]) -> Result<Answer, LlmError> {
    let r: MessageResponse = serde_json::from_slice(body).map_err(|e| malformed(format!("not a message: {e}")))?;
    if r.kind.as_deref() == Some("error") {
        return Err(in_band_error(r.error.as_ref().unwrap_or(&Value::Null)));
    }
    let content = r.content.ok_or_else(|| malformed("the message has no content"))?;
    let text = content.into_iter().filter(|b| b.kind.as_deref() == Some("text")).filter_map(|b| b.text).collect();
    Ok(Answer {
        text,
        model: r.model,
        usage: r.usage.as_ref().and_then(normalise_usage),
        finish_reason: r.stop_reason.map(normalise_stop_reason),
    })
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Event {
    MessageStart {
        message: StartMessage,
    },
    ContentBlockStart {
        content_block: Block,
    },
    ContentBlockDelta {
        delta: BlockDelta,
    },
    MessageDelta {
        #[serde(default)]
        delta: Option<MessageDeltaBody>,
        #[serde(default)]
        usage: Option<WireUsage>,
    },
    MessageStop,
    Error {
        #[serde(default)]
        error: Value,
    },
    /// `ping`, `content_block_stop`, and whatever later API versions add.
    #[serde(other)]
    Other,
}

#[derive(Debug, Deserialize)]
struct StartMessage {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Debug, Deserialize)]
struct BlockDelta {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    text: Option<String>,
}

#[derive(Debug, Deserialize)]
struct MessageDeltaBody {
    #[serde(default)]
    stop_reason: Option<String>,
}

/// Accumulates a streamed message; complete at `message_stop`.
#[derive(Debug, Default)]
pub(crate) struct Stream {
    answer: Answer,
    usage: WireUsage,
}

impl StreamDecoder for Stream {
    fn on_event(&mut self, event: &SseEvent) -> Result<bool, LlmError> {
        let parsed: Event = serde_json::from_str(&event.data).map_err(|e| {
            let name = event.event.as_deref().unwrap_or("unnamed");
            malformed(format!("stream event {name:?} is not a Messages event: {e}"))
        })?;
        match parsed {
            Event::MessageStart { message } => {
                self.answer.model = message.model;
                if let Some(usage) = message.usage {
                    self.usage.update(usage);
                }
            }
            Event::ContentBlockStart { content_block } => {
                if content_block.kind.as_deref() == Some("text")
                    && let Some(text) = content_block.text
                {
                    self.answer.text.push_str(&text);
                }
            }
            Event::ContentBlockDelta { delta } => {
                if delta.kind.as_deref() == Some("text_delta")
                    && let Some(text) = delta.text
                {
                    self.answer.text.push_str(&text);
                }
            }
            Event::MessageDelta { delta, usage } => {
                if let Some(reason) = delta.and_then(|d| d.stop_reason) {
                    self.answer.finish_reason = Some(normalise_stop_reason(reason));
                }
                if let Some(usage) = usage {
                    self.usage.update(usage);
                }
            }
            Event::MessageStop => return Ok(true),
            Event::Error { error } => return Err(in_band_error(&error)),
            Event::Other => {}
        }
        Ok(false)
    }

    fn into_answer(mut self) -> Answer {
        self.answer.usage = normalise_usage(&self.usage);
        self.answer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(v: Value) -> Option<Usage> {
        normalise_usage(&serde_json::from_value(v).unwrap())
    }

    #[test]
    fn usage_counts_cache_writes_at_full_price_and_reads_as_cached() {
        let u = usage(json!({"input_tokens": 10, "output_tokens": 5, "cache_creation_input_tokens": 20,
            "cache_read_input_tokens": 70}));
        assert_eq!(u, Some(Usage { input_tokens: 30, output_tokens: 5, cached_input_tokens: 70 }));
        let plain = usage(json!({"input_tokens": 10, "output_tokens": 5}));
        assert_eq!(plain, Some(Usage { input_tokens: 10, output_tokens: 5, cached_input_tokens: 0 }));
        assert_eq!(usage(json!({"output_tokens": 5})), None);
    }

    #[test]
    fn stream_usage_output_is_cumulative_not_summed() {
        let mut s = Stream::default();
        let ev = |data: &str| SseEvent { event: None, data: data.to_owned() };
        s.on_event(&ev(r#"{"type":"message_start","message":{"model":"c","usage":{"input_tokens":9,"cache_read_input_tokens":3,"output_tokens":1}}}"#)).unwrap();
        s.on_event(&ev(r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"hi"}}"#))
            .unwrap();
        s.on_event(&ev(r#"{"type":"message_delta","delta":{"stop_reason":"max_tokens"},"usage":{"output_tokens":4}}"#))
            .unwrap();
        assert!(s.on_event(&ev(r#"{"type":"message_stop"}"#)).unwrap());
        let a = s.into_answer();
        assert_eq!(a.usage, Some(Usage { input_tokens: 9, output_tokens: 4, cached_input_tokens: 3 }));
        assert_eq!((a.text.as_str(), a.finish_reason.as_deref()), ("hi", Some("length")));
    }

    #[test]
    fn stream_error_event_becomes_status() {
        let mut s = Stream::default();
        let e = s
            .on_event(&SseEvent {
                event: Some("error".into()),
                data: r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#.into(),
            })
            .unwrap_err();
        assert!(matches!(e, LlmError::Status { status: 529, .. }), "{e:?}");
        assert!(e.is_retryable());
    }

    #[test]
    fn bad_responses_are_errors_not_panics() {
        for body in [
            &b""[..],
            b"null",
            b"{}",
            b"{\"content\": \"x\"}",
            b"{\"content\": [{\"type\": \"text\", \"text\": 1}]}",
            b"{\"content\": [], \"usage\": {\"input_tokens\": \"9\"}}",
            br#"{"type":"error","error":{"type":"invalid_request_error","message":"bad"}}"#,
        ] {
            assert!(parse_response(body).is_err(), "{}", String::from_utf8_lossy(body));
        }
        let mut s = Stream::default();
        for data in [
            "",
            "[DONE]",
            "{\"type\": 5}",
            "{\"type\":\"content_block_delta\"}",
            "{\"type\":\"message_start\",\"message\":7}",
        ] {
            assert!(s.on_event(&SseEvent { event: None, data: data.into() }).is_err(), "{data}");
        }
    }
}
