//! Successful calls: text, usage and the request each provider receives.

use hearth_llm::{Usage, complete};
use hearth_testkit::llm::{Api, FakeLlm, Reply, token_count};
use serde_json::json;

use super::*;

#[tokio::test]
async fn text_and_exact_usage_for_every_provider_and_mode() {
    let fake = FakeLlm::start().await;
    fake.require_api_key(KEY);
    fake.set_cached_input_tokens(3);
    fake.set_cache_creation_input_tokens(2);
    let http = http();
    for (i, p) in all_providers(&fake).into_iter().enumerate() {
        let text = format!("Tell me a story number {i}, please, with dragons");
        let c = complete(&http, &p, &request(&text), &limits()).await.unwrap_or_else(|e| panic!("{p:?}: {e}"));
        let call = &fake.calls()[i];
        let expected_text = format!("You said: {text}");
        assert_eq!(c.text, expected_text, "{p:?}");
        assert_eq!(c.model, "test-model");
        assert_eq!(c.finish_reason.as_deref(), Some("stop"), "{p:?}");
        // Both providers normalise to: full-price input = prompt − cache reads − cache writes,
        // cached = cache reads, cache writes on their own (Anthropic only: OpenAI reports none).
        let prompt = call.prompt_tokens();
        assert!(prompt > 10);
        let writes = if call.api == Api::Anthropic { 2 } else { 0 };
        let expected = Usage {
            input_tokens: prompt - 3 - writes,
            output_tokens: token_count(&expected_text),
            cached_input_tokens: 3,
            cache_write_tokens: writes,
        };
        assert_eq!(c.usage, expected, "{p:?}");
        assert_eq!(call.stream, p.stream);
        assert_eq!(call.api_key.as_deref(), Some(KEY));
    }
}

#[tokio::test]
async fn openai_request_shape() {
    let fake = FakeLlm::start().await;
    let http = http();
    for stream in [false, true] {
        complete(&http, &provider(&fake, ProviderKind::Openai, stream), &request("hi"), &limits()).await.unwrap();
    }
    let calls = fake.calls();
    assert_eq!(calls[0].api, Api::OpenAi);
    let body = &calls[0].body;
    assert_eq!(body["model"], "test-model");
    assert_eq!(body["max_tokens"], 256);
    assert_eq!(body["stream"], false);
    assert_eq!(body["messages"][0], json!({"role": "system", "content": "You are a helpful family assistant."}));
    assert_eq!(body["messages"][3], json!({"role": "user", "content": "hi"}));
    assert!(body.get("stream_options").is_none());
    assert_eq!(calls[1].body["stream_options"], json!({"include_usage": true}));
    assert_eq!(calls[1].system_text(), "You are a helpful family assistant.");
}

#[tokio::test]
async fn anthropic_request_shape() {
    let fake = FakeLlm::start().await;
    complete(&http(), &provider(&fake, ProviderKind::Anthropic, false), &request("hi"), &limits()).await.unwrap();
    let call = &fake.calls()[0];
    assert_eq!(call.api, Api::Anthropic);
    // The system prompt and the history's end are cache breakpoints; the new message is not.
    let cached = json!({"type": "ephemeral"});
    assert_eq!(
        call.body["system"],
        json!([{"type": "text", "text": "You are a helpful family assistant.", "cache_control": cached}])
    );
    assert_eq!(call.system_text(), "You are a helpful family assistant.");
    assert_eq!(call.body["max_tokens"], 256);
    assert_eq!(call.body["messages"].as_array().map(Vec::len), Some(3));
    assert_eq!(
        call.body["messages"][1],
        json!({"role": "assistant", "content": [{"type": "text", "text": "Hi! How can I help?", "cache_control": cached}]})
    );
    assert_eq!(call.body["messages"][2], json!({"role": "user", "content": "hi"}));
}

#[tokio::test]
async fn empty_key_sends_no_auth_header() {
    let fake = FakeLlm::start().await;
    let http = http();
    for mut p in all_providers(&fake) {
        p.api_key = ApiKey::new("");
        complete(&http, &p, &request("hi"), &limits()).await.unwrap();
    }
    assert!(fake.calls().iter().all(|c| c.api_key.is_none()));
}

#[tokio::test]
async fn scripted_replies_long_text_and_tool_calls() {
    let fake = FakeLlm::start().await;
    let http = http();
    let long = "Ünïcödé and emoji 🌍🌍 ".repeat(50);
    for p in all_providers(&fake) {
        fake.push_reply(Reply::text(long.clone()));
        fake.push_reply(Reply::tool_call("set_reminder", json!({"at": "18:00", "text": "call grandma"})));
        let c = complete(&http, &p, &request("x"), &limits()).await.unwrap();
        assert_eq!(c.text, long, "{p:?}");
        assert_eq!(c.usage.output_tokens, token_count(&long));
        let tool = complete(&http, &p, &request("x"), &limits()).await.unwrap();
        assert_eq!((tool.text.as_str(), tool.finish_reason.as_deref()), ("", Some("tool_calls")), "{p:?}");
        assert!(tool.usage.output_tokens > 0);
    }
}

#[tokio::test]
async fn trailing_slash_in_base_url_and_slow_stream_within_idle() {
    let fake = FakeLlm::start().await;
    fake.set_stream_chunk_delay(std::time::Duration::from_millis(5));
    let http = http();
    for mut p in all_providers(&fake) {
        p.base_url.push('/');
        let c = complete(&http, &p, &request("slowly"), &limits()).await.unwrap();
        assert_eq!(c.text, "You said: slowly");
    }
}

/// A streamed answer is told as it arrives: each time the text so far, growing to the whole
/// answer, in both providers' formats; an answer in one body is told nothing.
#[tokio::test]
async fn a_watcher_hears_the_text_so_far_as_the_stream_arrives() {
    let fake = FakeLlm::start().await;
    let http = http();
    let answer = "A fairly long answer, so that it arrives in several pieces of the stream.";
    // Apart, so the pieces arrive in separate reads.
    fake.set_stream_chunk_delay(Duration::from_millis(5));
    for p in all_providers(&fake) {
        fake.push_reply(Reply::text(answer));
        let mut heard: Vec<String> = Vec::new();
        let c = hearth_llm::complete_watching(&http, &p, &request("hi"), &limits(), &mut |t: &str| {
            heard.push(t.to_owned())
        })
        .await
        .unwrap_or_else(|e| panic!("{p:?}: {e}"));
        assert_eq!(c.text, answer);
        if !p.stream {
            assert!(heard.is_empty(), "{p:?}: {heard:?}");
            continue;
        }
        assert!(heard.len() > 1, "{p:?}: {heard:?}");
        assert!(heard.windows(2).all(|w| w[1].starts_with(&w[0]) && w[1].len() > w[0].len()), "{p:?}: {heard:?}");
        assert!(answer.starts_with(heard.last().unwrap().as_str()), "{p:?}");
    }
}
