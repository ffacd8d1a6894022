//! The fake LLM's wire formats and controls, checked with a plain HTTP client.

use std::time::{Duration, Instant};

use hearth_sim::llm::{Api, FakeLlm, Fault, LlmCall, Reply, Rule, token_count};
use serde_json::{Value, json};

fn openai_body(text: &str, stream: bool, include_usage: bool) -> Value {
    let mut b = json!({
        "model": "gpt-test",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": text}],
        "stream": stream,
    });
    if include_usage {
        b["stream_options"] = json!({"include_usage": true});
    }
    b
}

fn anthropic_body(text: &str, stream: bool) -> Value {
    json!({
        "model": "claude-test",
        "system": "Be brief.",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": [{"type": "text", "text": text}]}],
        "stream": stream,
    })
}

async fn post(fake: &FakeLlm, api: Api, body: &Value) -> reqwest::Response {
    let http = reqwest::Client::new();
    let request = match api {
        Api::OpenAi => http.post(format!("{}/chat/completions", fake.base_url())).bearer_auth("k"),
        Api::Anthropic => http
            .post(format!("{}/messages", fake.base_url()))
            .header("x-api-key", "k")
            .header("anthropic-version", "2023-06-01"),
    };
    request.json(body).send().await.expect("send to the fake")
}

/// The `data:` payloads of an SSE body, with their `event:` names.
fn sse(body: &str) -> Vec<(Option<String>, String)> {
    body.split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| {
            let mut name = None;
            let mut data = String::new();
            for line in e.lines() {
                if let Some(n) = line.strip_prefix("event: ") {
                    name = Some(n.to_owned());
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data = d.to_owned();
                }
            }
            (name, data)
        })
        .collect()
}

#[tokio::test]
async fn openai_non_stream_shape_and_usage() {
    let fake = FakeLlm::start().await;
    fake.set_cached_input_tokens(2);
    let r = post(&fake, Api::OpenAi, &openai_body("hello", false, false)).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "gpt-test");
    assert_eq!(v["choices"][0]["message"], json!({"role": "assistant", "content": "You said: hello", "refusal": null}));
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    // "Be brief.\nhello" = 15 chars → 4 tokens, cached ones included in prompt_tokens.
    let u = &v["usage"];
    assert_eq!(
        (u["prompt_tokens"].as_u64(), u["completion_tokens"].as_u64()),
        (Some(4), Some(token_count("You said: hello")))
    );
    assert_eq!(u["total_tokens"].as_u64(), Some(4 + token_count("You said: hello")));
    assert_eq!(u["prompt_tokens_details"]["cached_tokens"], 2);
}

#[tokio::test]
async fn openai_stream_shape_with_and_without_usage() {
    let fake = FakeLlm::start().await;
    for include_usage in [true, false] {
        let r = post(&fake, Api::OpenAi, &openai_body("a fairly long message to split", true, include_usage)).await;
        assert_eq!(r.headers()["content-type"], "text/event-stream");
        let events = sse(&r.text().await.unwrap());
        assert_eq!(events.last().unwrap().1, "[DONE]");
        let chunks: Vec<Value> =
            events[..events.len() - 1].iter().map(|(_, d)| serde_json::from_str(d).unwrap()).collect();
        assert!(chunks.iter().all(|c| c["object"] == "chat.completion.chunk"));
        assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
        let text: String = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
        assert_eq!(text, "You said: a fairly long message to split");
        let finish: Vec<_> = chunks.iter().filter(|c| !c["choices"][0]["finish_reason"].is_null()).collect();
        assert_eq!(finish.len(), 1);
        assert_eq!(finish[0]["choices"][0]["finish_reason"], "stop");
        let with_usage: Vec<_> = chunks.iter().filter(|c| c["usage"].is_object()).collect();
        if include_usage {
            assert_eq!(with_usage.len(), 1);
            assert_eq!(with_usage[0]["choices"], json!([]));
            assert!(std::ptr::eq(with_usage[0], chunks.last().unwrap()));
            assert!(chunks[0].get("usage").is_some_and(Value::is_null));
        } else {
            assert!(with_usage.is_empty());
            assert!(chunks[0].get("usage").is_none());
        }
    }
}

#[tokio::test]
async fn anthropic_shapes_and_usage_exclude_cache() {
    let fake = FakeLlm::start().await;
    fake.set_cached_input_tokens(1);
    fake.set_cache_creation_input_tokens(1);
    let v: Value = post(&fake, Api::Anthropic, &anthropic_body("hello", false)).await.json().await.unwrap();
    assert_eq!(
        (v["type"].as_str(), v["role"].as_str(), v["stop_reason"].as_str()),
        (Some("message"), Some("assistant"), Some("end_turn"))
    );
    assert_eq!(v["content"], json!([{"type": "text", "text": "You said: hello"}]));
    let u = &v["usage"];
    assert_eq!(u["input_tokens"], 4 - 1 - 1);
    assert_eq!((u["cache_read_input_tokens"].as_u64(), u["cache_creation_input_tokens"].as_u64()), (Some(1), Some(1)));

    let body = post(&fake, Api::Anthropic, &anthropic_body("hello", true)).await.text().await.unwrap();
    let events = sse(&body);
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_deref().unwrap()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    let data: Vec<Value> = events.iter().map(|(_, d)| serde_json::from_str(d).unwrap()).collect();
    assert!(data.iter().zip(&names).all(|(d, n)| d["type"] == *n));
    assert_eq!(data[0]["message"]["usage"]["output_tokens"], 1);
    assert_eq!(data[0]["message"]["usage"]["input_tokens"], 2);
    assert_eq!(data[6]["usage"]["output_tokens"].as_u64(), Some(token_count("You said: hello")));
    let text: String = data.iter().filter_map(|d| d["delta"]["text"].as_str()).collect();
    assert_eq!(text, "You said: hello");
}

#[tokio::test]
async fn tool_calls_in_both_formats() {
    let fake = FakeLlm::start().await;
    let args = json!({"city": "Oslo"});
    fake.push_reply(Reply::tool_call("weather", args.clone()));
    fake.push_reply(Reply::tool_call("weather", args.clone()));
    let v: Value = post(&fake, Api::OpenAi, &openai_body("x", false, false)).await.json().await.unwrap();
    let call = &v["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "weather");
    assert_eq!(serde_json::from_str::<Value>(call["function"]["arguments"].as_str().unwrap()).unwrap(), args);
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    let v: Value = post(&fake, Api::Anthropic, &anthropic_body("x", false)).await.json().await.unwrap();
    assert_eq!(v["content"][0]["type"], "tool_use");
    assert_eq!(v["content"][0]["input"], args);
    assert_eq!(v["stop_reason"], "tool_use");
}

#[tokio::test]
async fn bad_requests_and_keys_get_provider_errors_and_are_recorded() {
    let fake = FakeLlm::start().await;
    let mut no_max = anthropic_body("x", false);
    no_max.as_object_mut().unwrap().remove("max_tokens");
    let r = post(&fake, Api::Anthropic, &no_max).await;
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!((v["type"].as_str(), v["error"]["type"].as_str()), (Some("error"), Some("invalid_request_error")));
    let r = reqwest::Client::new()
        .post(format!("{}/messages", fake.base_url()))
        .json(&anthropic_body("x", false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "anthropic-version is required");
    let r = post(&fake, Api::OpenAi, &json!({"model": "m"})).await;
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["type"], "invalid_request_error");

    fake.require_api_key("right");
    let r = post(&fake, Api::OpenAi, &openai_body("x", false, false)).await;
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], "invalid_api_key");
    let r = post(&fake, Api::Anthropic, &anthropic_body("x", false)).await;
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["type"], "authentication_error");
    let calls = fake.calls();
    assert_eq!(calls.len(), 5);
    assert_eq!(calls[4].api_key.as_deref(), Some("k"));
}

#[tokio::test]
async fn rules_queue_and_responder_precedence() {
    let fake = FakeLlm::start().await;
    fake.set_responder(|call: &LlmCall| Reply::text(format!("R:{}", call.last_user_text())));
    fake.add_rule(Rule::matching("weather").reply(Reply::text("sunny")).times(2));
    fake.add_rule(Rule::matching("boom").fault(Fault::Status { code: 503, retry_after_secs: Some(4) }));
    fake.push_reply(Reply::text("queued"));
    let text = |v: Value| v["choices"][0]["message"]["content"].as_str().unwrap().to_owned();
    let ask = async |t: &str| post(&fake, Api::OpenAi, &openai_body(t, false, false)).await;
    assert_eq!(text(ask("weather?").await.json().await.unwrap()), "sunny");
    assert_eq!(text(ask("hi").await.json().await.unwrap()), "queued");
    assert_eq!(text(ask("weather?").await.json().await.unwrap()), "sunny");
    assert_eq!(text(ask("weather?").await.json().await.unwrap()), "R:weather?");
    let r = ask("boom").await;
    assert_eq!((r.status().as_u16(), r.headers()["retry-after"].to_str().unwrap()), (503, "4"));
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["type"], "server_error");
    let r = post(&fake, Api::Anthropic, &anthropic_body("boom", false)).await;
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["type"], "overloaded_error");
}

#[tokio::test]
async fn truncated_and_malformed_bodies() {
    let fake = FakeLlm::start().await;
    fake.add_rule(Rule::matching("cut").fault(Fault::Truncated));
    fake.add_rule(Rule::matching("junk").fault(Fault::Malformed));
    let body = post(&fake, Api::OpenAi, &openai_body("cut", false, false)).await.text().await.unwrap();
    assert!(serde_json::from_str::<Value>(&body).is_err() && body.starts_with('{'));
    let body = post(&fake, Api::OpenAi, &openai_body("cut", true, true)).await.text().await.unwrap();
    assert!(!body.is_empty() && !body.contains("[DONE]"));
    let body = post(&fake, Api::Anthropic, &anthropic_body("cut", true)).await.text().await.unwrap();
    assert!(body.contains("message_start") && !body.contains("message_stop"));
    let v: Value = post(&fake, Api::OpenAi, &openai_body("junk", false, false)).await.json().await.unwrap();
    assert!(!v["choices"].is_array());
}

#[tokio::test]
async fn latency_and_rule_delay_come_before_the_first_byte() {
    let fake = FakeLlm::start().await;
    fake.set_latency(Duration::from_millis(100));
    fake.add_rule(Rule::matching("slow").delay(Duration::from_millis(400)).times(1));
    let started = Instant::now();
    post(&fake, Api::OpenAi, &openai_body("slow", false, false)).await;
    assert!(started.elapsed() >= Duration::from_millis(500));
    let started = Instant::now();
    post(&fake, Api::OpenAi, &openai_body("slow", false, false)).await;
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(100) && took < Duration::from_millis(500), "{took:?}");
}

#[tokio::test]
async fn wait_for_calls_wakes_on_arrival_and_times_out() {
    let fake = FakeLlm::start().await;
    let err = fake.wait_for_calls(1, Duration::from_millis(50)).await.unwrap_err();
    assert!(err.contains("got 0"), "{err}");
    let sender = fake.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        post(&sender, Api::Anthropic, &anthropic_body("late", false)).await;
    });
    let calls = fake.wait_for_calls(1, Duration::from_secs(5)).await.unwrap();
    assert_eq!(calls[0].last_user_text(), "late");
    assert_eq!(calls[0].all_text(), "Be brief.\nlate");
}

#[tokio::test]
async fn shutdown_ends_hanging_requests_and_drop_stops_the_server() {
    let fake = FakeLlm::start().await;
    fake.add_rule(Rule::matching("").fault(Fault::Hang));
    let hanging = tokio::spawn({
        let fake = fake.clone();
        async move { post(&fake, Api::OpenAi, &openai_body("x", false, false)).await.status() }
    });
    fake.wait_for_calls(1, Duration::from_secs(5)).await.unwrap();
    let started = Instant::now();
    fake.shutdown();
    let status = tokio::time::timeout(Duration::from_secs(5), hanging).await.expect("hang ended").unwrap();
    assert_eq!(status, 503);
    assert!(started.elapsed() < Duration::from_secs(2));

    let other = FakeLlm::start().await;
    let url = format!("{}/chat/completions", other.base_url());
    drop(other);
    let mut refused = false;
    for _ in 0..40 {
        let sent = reqwest::Client::new().post(&url).json(&openai_body("x", false, false)).send().await;
        if sent.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(refused, "the server kept answering after its last handle was dropped");
}
