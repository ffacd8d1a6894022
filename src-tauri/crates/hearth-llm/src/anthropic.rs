//! Anthropic Messages.
//!
//! Prompt caching: the prompt is read in the order tools, system, messages, and a block marked
//! `cache_control: {"type": "ephemeral"}` (a breakpoint, at most four a request) makes the
//! provider keep the prompt up to and including it for five minutes after its last use. Every
//! request marks the end of the system prompt (covering the tools before it; the last tool when
//! there is no system prompt), the end of the conversation before the turn's own user message (the
//! history: the next turn's request starts with the same bytes), and, in a tool round, the newest
//! tool result (the next step starts with it). The turn's user message opens with what changes
//! every turn (`hearth-worker`'s `prompt.rs`), so it is never marked.
//!
//! Usage: `input_tokens` excludes both cache reads (`cache_read_input_tokens`, billed at the
//! cached-input price) and cache writes (`cache_creation_input_tokens`, billed at the cache-write
//! price, 1.25 × input for the five-minute cache). A stream gives the input counts in
//! `message_start` and the final, cumulative `output_tokens` in `message_delta`.

use hearth_proto::llm::{ChatMessage, CompletionRequest, Role, ToolCall, Usage};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::call::{Answer, StreamDecoder, in_band_error};
use crate::error::{LlmError, malformed};
use crate::sse::SseEvent;

/// The API version every request names; responses are parsed as this version defines them.
pub(crate) const API_VERSION: &str = "2023-06-01";

pub(crate) fn request_body(model: &str, req: &CompletionRequest, stream: bool) -> Value {
    let marked = cached_messages(req);
    let mut messages: Vec<Value> = Vec::with_capacity(req.messages.len());
    for (i, m) in req.messages.iter().enumerate() {
        push_message(&mut messages, m);
        if marked.contains(&i) {
            mark_last_block(&mut messages);
        }
    }
    let mut body = json!({ "model": model, "messages": messages, "max_tokens": req.max_tokens, "stream": stream });
    if !req.system.is_empty() {
        body["system"] = json!([{ "type": "text", "text": req.system, "cache_control": ephemeral() }]);
    }
    if !req.tools.is_empty() {
        let mut tools: Vec<Value> = req
            .tools
            .iter()
            .map(|t| json!({ "name": t.name, "description": t.description, "input_schema": t.parameters }))
            .collect();
        if req.system.is_empty()
            && let Some(last) = tools.last_mut()
        {
            last["cache_control"] = ephemeral();
        }
        body["tools"] = json!(tools);
    }
    body
}

/// A cache breakpoint: the five-minute cache, the only one without a beta header.
fn ephemeral() -> Value {
    json!({ "type": "ephemeral" })
}

/// The messages whose end is a breakpoint (see the module doc): the one before the newest user
/// message, and the newest message when it is a tool result. At most two, so with the system
/// prompt's a request never has more than Anthropic's four.
fn cached_messages(req: &CompletionRequest) -> Vec<usize> {
    let mut marked = Vec::with_capacity(2);
    if let Some(newest_user) = req.messages.iter().rposition(|m| m.role == Role::User)
        && newest_user > 0
    {
        marked.push(newest_user - 1);
    }
    if req.messages.last().is_some_and(|m| m.role == Role::Tool) {
        marked.push(req.messages.len() - 1);
    }
    marked
}

/// Puts a breakpoint on the last content block of the last message, turning a string content
/// into the one text block it stands for.
fn mark_last_block(messages: &mut [Value]) {
    let Some(last) = messages.last_mut() else { return };
    if let Some(text) = last.get("content").and_then(Value::as_str) {
        last["content"] = json!([{ "type": "text", "text": text }]);
    }
    if let Some(block) = last.get_mut("content").and_then(Value::as_array_mut).and_then(|b| b.last_mut()) {
        block["cache_control"] = ephemeral();
    }
}

/// Appends one message in Anthropic's shape. Plain messages keep a string `content`; a user
/// message with images becomes `image` blocks then a `text` block; an
/// assistant message with tool calls becomes `text` + `tool_use` blocks; a tool result becomes
/// a `tool_result` block in a user message, and results (or user text) that follow one another
/// share that message, since roles must alternate.
fn push_message(out: &mut Vec<Value>, m: &ChatMessage) {
    let block = match m.role {
        Role::Assistant if m.tool_calls.is_empty() => {
            out.push(json!({ "role": "assistant", "content": m.content }));
            return;
        }
        Role::Assistant => {
            let mut blocks = Vec::with_capacity(m.tool_calls.len() + 1);
            if !m.content.is_empty() {
                blocks.push(json!({ "type": "text", "text": m.content }));
            }
            for call in &m.tool_calls {
                // `input` must be an object; arguments that are not one were already answered
                // with an error result, so what is replayed here only has to be accepted.
                let input = serde_json::from_str::<Value>(&call.arguments)
                    .ok()
                    .filter(Value::is_object)
                    .unwrap_or_else(|| json!({}));
                blocks.push(json!({ "type": "tool_use", "id": call.id, "name": call.name, "input": input }));
            }
            out.push(json!({ "role": "assistant", "content": blocks }));
            return;
        }
        Role::User if !m.images.is_empty() => {
            // Images first, then the text (Anthropic's advice); an empty text block is refused.
            let mut blocks: Vec<Value> = crate::images::inline(&m.images)
                .map(|(media_type, data)| {
                    json!({ "type": "image", "source": { "type": "base64", "media_type": media_type, "data": data } })
                })
                .collect();
            if !m.content.is_empty() {
                blocks.push(json!({ "type": "text", "text": m.content }));
            }
            if let Some(last) = out.last_mut()
                && last["role"] == "user"
                && let Some(existing) = last.get_mut("content").and_then(Value::as_array_mut)
            {
                existing.extend(blocks);
            } else {
                out.push(json!({ "role": "user", "content": blocks }));
            }
            return;
        }
        Role::User => json!({ "type": "text", "text": m.content }),
        Role::Tool => {
            let mut block = json!({
                "type": "tool_result",
                "tool_use_id": m.tool_call_id.as_deref().unwrap_or(""),
                "content": m.content,
            });
            if m.is_error {
                block["is_error"] = json!(true);
            }
            block
        }
    };
    if let Some(last) = out.last_mut()
        && last["role"] == "user"
        && let Some(blocks) = last.get_mut("content").and_then(Value::as_array_mut)
    {
        blocks.push(block);
        return;
    }
    match m.role {
        Role::User => out.push(json!({ "role": "user", "content": m.content })),
        _ => out.push(json!({ "role": "user", "content": [block] })),
    }
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
        input_tokens: u.input_tokens?,
        output_tokens: u.output_tokens?,
        cached_input_tokens: u.cache_read_input_tokens.unwrap_or(0),
        cache_write_tokens: u.cache_creation_input_tokens.unwrap_or(0),
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
    /// `tool_use` blocks: the call's id, tool name and arguments.
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    input: Option<Value>,
}

/// A `tool_use` block as a [`ToolCall`]; `partial_json` is the streamed input, when streamed.
fn tool_call(id: Option<String>, name: Option<String>, input: Option<Value>, partial_json: &str) -> Result<ToolCall, LlmError> {
    let name = name.filter(|n| !n.is_empty()).ok_or_else(|| malformed("a tool_use block has no name"))?;
    let id = id.filter(|i| !i.is_empty()).ok_or_else(|| malformed("a tool_use block has no id"))?;
    let arguments = if !partial_json.trim().is_empty() {
        partial_json.to_owned()
    } else {
        match input {
            Some(v @ Value::Object(_)) => v.to_string(),
            _ => "{}".to_owned(),
        }
    };
    Ok(ToolCall { id, name, arguments })
}

pub(crate) fn parse_response(body: &[u8]) -> Result<Answer, LlmError> {
    let r: MessageResponse = serde_json::from_slice(body).map_err(|e| malformed(format!("not a message: {e}")))?;
    if r.kind.as_deref() == Some("error") {
        return Err(in_band_error(r.error.as_ref().unwrap_or(&Value::Null)));
    }
    let content = r.content.ok_or_else(|| malformed("the message has no content"))?;
    let mut text = String::new();
    let mut tool_calls = Vec::new();
    for block in content {
        match block.kind.as_deref() {
            Some("text") => text.push_str(block.text.as_deref().unwrap_or("")),
            Some("tool_use") => tool_calls.push(tool_call(block.id, block.name, block.input, "")?),
            _ => {}
        }
    }
    Ok(Answer {
        text,
        model: r.model,
        usage: r.usage.as_ref().and_then(normalise_usage),
        finish_reason: r.stop_reason.map(normalise_stop_reason),
        tool_calls,
    })
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Event {
    MessageStart {
        message: StartMessage,
    },
    ContentBlockStart {
        #[serde(default)]
        index: Option<usize>,
        content_block: Block,
    },
    ContentBlockDelta {
        #[serde(default)]
        index: Option<usize>,
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
    /// `input_json_delta`: the next piece of a `tool_use` block's input JSON.
    #[serde(default)]
    partial_json: Option<String>,
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
    /// `tool_use` blocks being assembled: the start block and its input JSON so far, by index.
    calls: Vec<(Option<usize>, Block, String)>,
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
            Event::ContentBlockStart { index, content_block } => match content_block.kind.as_deref() {
                Some("text") => self.answer.text.push_str(content_block.text.as_deref().unwrap_or("")),
                Some("tool_use") => self.calls.push((index, content_block, String::new())),
                _ => {}
            },
            Event::ContentBlockDelta { index, delta } => match delta.kind.as_deref() {
                Some("text_delta") => self.answer.text.push_str(delta.text.as_deref().unwrap_or("")),
                Some("input_json_delta") => {
                    // The block the delta names, else the latest tool_use block.
                    let call = match index {
                        Some(i) => self.calls.iter_mut().rfind(|c| c.0 == Some(i)),
                        None => self.calls.last_mut(),
                    };
                    let call = call.ok_or_else(|| malformed("input_json_delta for no tool_use block"))?;
                    call.2.push_str(delta.partial_json.as_deref().unwrap_or(""));
                }
                _ => {}
            },
            Event::MessageDelta { delta, usage } => {
                if let Some(reason) = delta.and_then(|d| d.stop_reason) {
                    self.answer.finish_reason = Some(normalise_stop_reason(reason));
                }
                if let Some(usage) = usage {
                    self.usage.update(usage);
                }
            }
            Event::MessageStop => {
                for (_, block, json) in std::mem::take(&mut self.calls) {
                    self.answer.tool_calls.push(tool_call(block.id, block.name, block.input, &json)?);
                }
                return Ok(true);
            }
            Event::Error { error } => return Err(in_band_error(&error)),
            Event::Other => {}
        }
        Ok(false)
    }

    fn text(&self) -> &str {
        &self.answer.text
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
    fn usage_counts_cache_writes_and_reads_apart() {
        let u = usage(json!({"input_tokens": 10, "output_tokens": 5, "cache_creation_input_tokens": 20,
            "cache_read_input_tokens": 70}));
        assert_eq!(u, Some(Usage { input_tokens: 10, output_tokens: 5, cached_input_tokens: 70, cache_write_tokens: 20 }));
        let plain = usage(json!({"input_tokens": 10, "output_tokens": 5}));
        assert_eq!(plain, Some(Usage { input_tokens: 10, output_tokens: 5, ..Usage::default() }));
        assert_eq!(usage(json!({"output_tokens": 5})), None);
    }

    fn req(messages: Vec<ChatMessage>, tools: bool) -> CompletionRequest {
        let tools = if tools {
            vec![hearth_proto::llm::ToolSpec {
                name: "remember".into(),
                description: "d".into(),
                parameters: json!({"type": "object"}),
            }]
        } else {
            Vec::new()
        };
        CompletionRequest { system: "sys".into(), messages, max_tokens: 9, tools }
    }

    /// Where the `cache_control` marks are: (message index, block index), and the system's.
    fn marks(body: &Value) -> (bool, Vec<(usize, usize)>, bool) {
        let system = body["system"][0]["cache_control"] == ephemeral();
        let tool = body["tools"].as_array().is_some_and(|t| t.iter().any(|t| t.get("cache_control").is_some()));
        let mut at = Vec::new();
        for (i, m) in body["messages"].as_array().unwrap().iter().enumerate() {
            for (j, b) in m["content"].as_array().map(Vec::as_slice).unwrap_or(&[]).iter().enumerate() {
                if b.get("cache_control").is_some() {
                    at.push((i, j));
                }
            }
        }
        (system, at, tool)
    }

    #[test]
    fn breakpoints_mark_the_system_prompt_and_the_history_not_the_new_message() {
        // First turn: only the system prompt.
        let first = request_body("m", &req(vec![ChatMessage::user("hi")], true), false);
        assert_eq!(marks(&first), (true, vec![], false));
        assert_eq!(first["messages"][0]["content"], "hi", "an unmarked message keeps its plain string");
        // Later turn: the history's end too; the new message stays plain.
        let history = vec![
            ChatMessage::user("hi"),
            ChatMessage::assistant("hello!"),
            ChatMessage::user("<hearth>…</hearth>\n\nhow are you"),
        ];
        let later = request_body("m", &req(history.clone(), true), false);
        assert_eq!(marks(&later), (true, vec![(1, 0)], false));
        assert_eq!(later["messages"][1]["content"][0]["text"], "hello!");
        // A tool round: the newest tool result as well.
        let mut round = history;
        let call = ToolCall { id: "t1".into(), name: "remember".into(), arguments: "{}".into() };
        round.push(ChatMessage::assistant_tool_calls("", vec![call]));
        round.push(ChatMessage::tool_result("t1", "saved", false));
        let body = request_body("m", &req(round, true), false);
        assert_eq!(marks(&body), (true, vec![(1, 0), (4, 0)], false));
        // No system prompt: the tools' end is the breakpoint.
        let mut bare = req(vec![ChatMessage::user("hi")], true);
        bare.system.clear();
        assert_eq!(marks(&request_body("m", &bare, false)), (false, vec![], true));
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
        assert_eq!(a.usage, Some(Usage { input_tokens: 9, output_tokens: 4, cached_input_tokens: 3, ..Usage::default() }));
        assert_eq!((a.text.as_str(), a.finish_reason.as_deref()), ("hi", Some("length")));
    }

    #[test]
    fn stream_tool_use_blocks_assemble_by_index() {
        let mut s = Stream::default();
        let ev = |data: &str| SseEvent { event: None, data: data.to_owned() };
        for data in [
            r#"{"type":"message_start","message":{"model":"c","usage":{"input_tokens":9,"output_tokens":1}}}"#,
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Saving."}}"#,
            r#"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"t1","name":"remember","input":{}}}"#,
            r#"{"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"t2","name":"recall","input":{}}}"#,
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"fact\":"}}"#,
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"\"x\"}"}}"#,
            r#"{"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":7}}"#,
        ] {
            assert!(!s.on_event(&ev(data)).unwrap(), "{data}");
        }
        assert!(s.on_event(&ev(r#"{"type":"message_stop"}"#)).unwrap());
        let a = s.into_answer();
        assert_eq!(a.text, "Saving.");
        assert_eq!(a.finish_reason.as_deref(), Some("tool_calls"));
        let got: Vec<(&str, &str, &str)> =
            a.tool_calls.iter().map(|c| (c.id.as_str(), c.name.as_str(), c.arguments.as_str())).collect();
        // A block with no input deltas keeps its (empty) start input.
        assert_eq!(got, [("t1", "remember", "{\"fact\":\"x\"}"), ("t2", "recall", "{}")]);
        let mut s = Stream::default();
        let orphan = r#"{"type":"content_block_delta","index":3,"delta":{"type":"input_json_delta","partial_json":"{}"}}"#;
        assert!(s.on_event(&ev(orphan)).is_err());
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
