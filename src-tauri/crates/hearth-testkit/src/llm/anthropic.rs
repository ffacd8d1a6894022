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
    match reply {
        Reply::Text(_) => "end_turn",
        Reply::ToolCall { .. } => "tool_use",
    }
}

fn message_id(a: &Answer<'_>) -> String {
    format!("msg_fake{}", a.id)
}

fn tool_use_id(a: &Answer<'_>) -> String {
    format!("toolu_fake{}", a.id)
}

pub(super) fn completion(a: &Answer<'_>) -> Value {
    let block = match a.reply {
        Reply::Text(text) => json!({ "type": "text", "text": text }),
        Reply::ToolCall { name, arguments } => {
            json!({ "type": "tool_use", "id": tool_use_id(a), "name": name, "input": arguments })
        }
    };
    json!({
        "id": message_id(a),
        "type": "message",
        "role": "assistant",
        "model": a.model,
        "content": [block],
        "stop_reason": stop_reason(a.reply),
        "stop_sequence": null,
        "usage": usage(a, a.tokens.output)
    })
}

/// Every SSE frame of a streamed answer, `message_stop` last.
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
    let (block, deltas): (Value, Vec<Value>) = match a.reply {
        Reply::Text(text) => (
            json!({ "type": "text", "text": "" }),
            pieces(text).into_iter().map(|p| json!({ "type": "text_delta", "text": p })).collect(),
        ),
        Reply::ToolCall { name, arguments } => (
            json!({ "type": "tool_use", "id": tool_use_id(a), "name": name, "input": {} }),
            pieces(&arguments.to_string())
                .into_iter()
                .map(|p| json!({ "type": "input_json_delta", "partial_json": p }))
                .collect(),
        ),
    };
    frames.push(frame(
        Some("content_block_start"),
        &json!({ "type": "content_block_start", "index": 0, "content_block": block }),
    ));
    frames.push(frame(Some("ping"), &json!({ "type": "ping" })));
    for delta in deltas {
        frames.push(frame(
            Some("content_block_delta"),
            &json!({ "type": "content_block_delta", "index": 0, "delta": delta }),
        ));
    }
    frames.push(frame(Some("content_block_stop"), &json!({ "type": "content_block_stop", "index": 0 })));
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
