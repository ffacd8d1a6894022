//! OpenAI chat-completions wire format, as api.openai.com sends it.
//!
//! Usage: `prompt_tokens` counts the whole prompt *including* cached tokens, which are repeated
//! in `prompt_tokens_details.cached_tokens`. When streaming, usage comes only if the request
//! asked for it with `stream_options.include_usage`, as a last chunk with empty `choices`, and
//! every earlier chunk then carries `"usage": null`.

use serde_json::{Value, json};

use super::{Answer, Reply, frame, pieces, unix_now};

fn usage(a: &Answer<'_>) -> Value {
    let t = a.tokens;
    json!({
        "prompt_tokens": t.prompt,
        "completion_tokens": t.output,
        "total_tokens": t.prompt + t.output,
        "prompt_tokens_details": { "cached_tokens": t.cache_read, "audio_tokens": 0 },
        "completion_tokens_details": { "reasoning_tokens": 0, "audio_tokens": 0 }
    })
}

fn finish_reason(reply: &Reply) -> &'static str {
    if reply.parts().1.is_empty() { "stop" } else { "tool_calls" }
}

fn tool_call_id(a: &Answer<'_>, i: usize) -> String {
    if i == 0 { format!("call_fake{}", a.id) } else { format!("call_fake{}_{i}", a.id) }
}

pub(super) fn completion(a: &Answer<'_>) -> Value {
    let (text, calls) = a.reply.parts();
    let message = if calls.is_empty() {
        json!({ "role": "assistant", "content": text, "refusal": null })
    } else {
        let calls: Vec<Value> = calls
            .iter()
            .enumerate()
            .map(|(i, (name, arguments))| {
                json!({
                    "id": tool_call_id(a, i),
                    "type": "function",
                    "function": { "name": name, "arguments": arguments.to_string() }
                })
            })
            .collect();
        let content = if text.is_empty() { Value::Null } else { json!(text) };
        json!({ "role": "assistant", "content": content, "refusal": null, "tool_calls": calls })
    };
    json!({
        "id": format!("chatcmpl-fake{}", a.id),
        "object": "chat.completion",
        "created": unix_now(),
        "model": a.model,
        "choices": [{ "index": 0, "message": message, "logprobs": null, "finish_reason": finish_reason(a.reply) }],
        "usage": usage(a),
        "system_fingerprint": "fp_fake"
    })
}

/// Every SSE frame of a streamed answer, `data: [DONE]` last. Text comes first, then each tool
/// call: a first delta with its `index`, `id`, `name` and empty arguments, then the arguments in
/// pieces that carry only the `index`.
pub(super) fn stream_frames(a: &Answer<'_>, include_usage: bool) -> Vec<String> {
    let id = format!("chatcmpl-fake{}", a.id);
    let created = unix_now();
    let chunk = |choices: Value| {
        let mut c = json!({
            "id": id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": a.model,
            "system_fingerprint": "fp_fake",
            "choices": choices,
        });
        if include_usage {
            c["usage"] = Value::Null;
        }
        c
    };
    let choice = |delta: Value, finish: Option<&str>| json!([{ "index": 0, "delta": delta, "logprobs": null, "finish_reason": finish }]);

    let (text, calls) = a.reply.parts();
    let mut frames = Vec::new();
    if calls.is_empty() || !text.is_empty() {
        frames.push(frame(None, &chunk(choice(json!({ "role": "assistant", "content": "", "refusal": null }), None))));
        for piece in pieces(text) {
            frames.push(frame(None, &chunk(choice(json!({ "content": piece }), None))));
        }
    }
    for (i, (name, arguments)) in calls.iter().enumerate() {
        let first = json!({
            "role": "assistant",
            "content": null,
            "tool_calls": [{
                "index": i,
                "id": tool_call_id(a, i),
                "type": "function",
                "function": { "name": name, "arguments": "" }
            }]
        });
        frames.push(frame(None, &chunk(choice(first, None))));
        for piece in pieces(&arguments.to_string()) {
            let delta = json!({ "tool_calls": [{ "index": i, "function": { "arguments": piece } }] });
            frames.push(frame(None, &chunk(choice(delta, None))));
        }
    }
    frames.push(frame(None, &chunk(choice(json!({}), Some(finish_reason(a.reply))))));
    if include_usage {
        let mut last = chunk(json!([]));
        last["usage"] = usage(a);
        frames.push(frame(None, &last));
    }
    frames.push("data: [DONE]\n\n".to_owned());
    frames
}

pub(super) fn error_body(code: u16, message: &str) -> Value {
    let (kind, err_code) = match code {
        400 => ("invalid_request_error", Value::Null),
        401 => ("invalid_request_error", json!("invalid_api_key")),
        403 => ("invalid_request_error", json!("unsupported_country_region_territory")),
        404 => ("invalid_request_error", json!("model_not_found")),
        429 => ("requests", json!("rate_limit_exceeded")),
        500..=599 => ("server_error", Value::Null),
        _ => ("api_error", Value::Null),
    };
    json!({ "error": { "message": message, "type": kind, "param": null, "code": err_code } })
}
