//! Anthropic Messages wire format, as api.anthropic.com sends it.
//!
//! Usage: `input_tokens` counts only the prompt tokens that were neither read from nor written
//! to the cache; `cache_read_input_tokens` and `cache_creation_input_tokens` count the rest.
//! When streaming, `message_start` carries the input counts with `output_tokens: 1`, and
//! `message_delta` carries the final, cumulative `output_tokens`.

use serde_json::{Value, json};

use super::{Answer, Reply, frame, pieces};

fn usage(a: &Answer<'_>, output_tokens: u64) -> Value {
    let t = a.tokens;
    json!({
        "input_tokens": t.prompt - t.cache_read - t.cache_creation,
        "cache_creation_input_tokens": t.cache_creation,
        "cache_read_input_tokens": t.cache_read,
        "output_tokens": output_tokens,
        "service_tier": "standard"
    })
}

fn stop_reason(reply: &Reply) -> &'static str {
    if reply.parts().1.is_empty() { "end_turn" } else { "tool_use" }
}

fn message_id(a: &Answer<'_>) -> String {
    format!("msg_fake{}", a.id)
}

fn tool_use_id(a: &Answer<'_>, i: usize) -> String {
    if i == 0 { format!("toolu_fake{}", a.id) } else { format!("toolu_fake{}_{i}", a.id) }
}

/// The answer's content blocks, whole: a text block (when there is text or nothing else), then
/// one `tool_use` block per call.
fn blocks(a: &Answer<'_>) -> Vec<Value> {
    let (text, calls) = a.reply.parts();
    let mut blocks = Vec::new();
    if calls.is_empty() || !text.is_empty() {
        blocks.push(json!({ "type": "text", "text": text }));
    }
    for (i, (name, arguments)) in calls.iter().enumerate() {
        blocks.push(json!({ "type": "tool_use", "id": tool_use_id(a, i), "name": name, "input": arguments }));
    }
    blocks
}

pub(super) fn completion(a: &Answer<'_>) -> Value {
    json!({
        "id": message_id(a),
        "type": "message",
        "role": "assistant",
        "model": a.model,
        "content": blocks(a),
        "stop_reason": stop_reason(a.reply),
        "stop_sequence": null,
        "usage": usage(a, a.tokens.output)
    })
}

/// Every SSE frame of a streamed answer, `message_stop` last. Each block starts empty (a
/// `tool_use` block with `input: {}`) and is filled by `text_delta` or `input_json_delta`
/// pieces naming its index.
pub(super) fn stream_frames(a: &Answer<'_>) -> Vec<String> {
    let mut frames = vec![frame(
        Some("message_start"),
        &json!({
            "type": "message_start",
            "message": {
                "id": message_id(a),
                "type": "message",
                "role": "assistant",
                "model": a.model,
                "content": [],
                "stop_reason": null,
                "stop_sequence": null,
                "usage": usage(a, 1)
            }
        }),
    )];
    for (index, whole) in blocks(a).into_iter().enumerate() {
        let (start, deltas): (Value, Vec<Value>) = if whole["type"] == "text" {
            (
                json!({ "type": "text", "text": "" }),
                pieces(whole["text"].as_str().unwrap_or(""))
                    .into_iter()
                    .map(|p| json!({ "type": "text_delta", "text": p }))
                    .collect(),
            )
        } else {
            (
                json!({ "type": "tool_use", "id": whole["id"], "name": whole["name"], "input": {} }),
                pieces(&whole["input"].to_string())
                    .into_iter()
                    .map(|p| json!({ "type": "input_json_delta", "partial_json": p }))
                    .collect(),
            )
        };
        frames.push(frame(
            Some("content_block_start"),
            &json!({ "type": "content_block_start", "index": index, "content_block": start }),
        ));
        if index == 0 {
            frames.push(frame(Some("ping"), &json!({ "type": "ping" })));
        }
        for delta in deltas {
            frames.push(frame(
                Some("content_block_delta"),
                &json!({ "type": "content_block_delta", "index": index, "delta": delta }),
            ));
        }
        frames.push(frame(Some("content_block_stop"), &json!({ "type": "content_block_stop", "index": index })));
    }
    frames.push(frame(
        Some("message_delta"),
        &json!({
            "type": "message_delta",
            "delta": { "stop_reason": stop_reason(a.reply), "stop_sequence": null },
            "usage": { "output_tokens": a.tokens.output }
        }),
    ));
    frames.push(frame(Some("message_stop"), &json!({ "type": "message_stop" })));
    frames
}

pub(super) fn error_body(code: u16, message: &str) -> Value {
    let kind = match code {
        400 => "invalid_request_error",
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        504 => "timeout_error",
        529 | 503 => "overloaded_error",
        _ => "api_error",
    };
    json!({ "type": "error", "error": { "type": kind, "message": message } })
}
