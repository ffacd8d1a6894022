//! Tool calling in both formats, streaming and not: calls parsed (several per answer, arguments
//! assembled from stream pieces), and definitions, calls and results sent back in the shape each
//! provider checks (the fake refuses what the real one would).

use hearth_llm::{ChatMessage, Completion, LlmError, complete};
use hearth_proto::llm::{ToolCall, ToolSpec};
use hearth_testkit::llm::{Api, FakeLlm, Reply, token_count};
use serde_json::{Value, json};

use super::*;

fn tools() -> Vec<ToolSpec> {
    vec![
        ToolSpec {
            name: "remember".into(),
            description: "Save a lasting fact about the member.".into(),
            parameters: json!({"type": "object", "properties": {"fact": {"type": "string"}}, "required": ["fact"]}),
        },
        ToolSpec {
            name: "recall".into(),
            description: "Search saved facts.".into(),
            parameters: json!({"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}),
        },
    ]
}

fn with_tools(text: &str) -> CompletionRequest {
    CompletionRequest { tools: tools(), ..request(text) }
}

fn args(call: &ToolCall) -> Value {
    serde_json::from_str(&call.arguments).unwrap_or_else(|e| panic!("arguments {:?}: {e}", call.arguments))
}

#[tokio::test]
async fn several_tool_calls_are_parsed_in_every_format_and_mode() {
    let fake = FakeLlm::start().await;
    let http = http();
    // Long enough arguments that a stream splits them into many pieces.
    let fact = json!({"fact": "Sam's cat is called Miso and is afraid of the hoover — ünïcödé 🐈"});
    let query = json!({"query": "cat"});
    for p in all_providers(&fake) {
        fake.push_reply(Reply::tool_calls("Let me note that.", vec![("remember", fact.clone()), ("recall", query.clone())]));
        let c = complete(&http, &p, &with_tools("My cat is Miso"), &limits()).await.unwrap_or_else(|e| panic!("{p:?}: {e}"));
        assert_eq!(c.text, "Let me note that.", "{p:?}");
        assert_eq!(c.finish_reason.as_deref(), Some("tool_calls"), "{p:?}");
        let names: Vec<&str> = c.tool_calls.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["remember", "recall"], "{p:?}");
        assert_eq!(args(&c.tool_calls[0]), fact, "{p:?}");
        assert_eq!(args(&c.tool_calls[1]), query, "{p:?}");
        assert!(!c.tool_calls[0].id.is_empty() && c.tool_calls[0].id != c.tool_calls[1].id, "{p:?}");
        // Output is billed exactly as reported: the text plus each call's name and arguments.
        let billed = format!("Let me note that.remember{fact}recall{query}");
        assert_eq!(c.usage.output_tokens, token_count(&billed), "{p:?}");
        // The request offered both tools in the provider's shape.
        let call = fake.calls().pop().unwrap();
        assert_eq!(call.tool_names(), ["remember", "recall"], "{p:?}");
    }
}

#[tokio::test]
async fn a_single_tool_call_without_text() {
    let fake = FakeLlm::start().await;
    let http = http();
    for p in all_providers(&fake) {
        fake.push_reply(Reply::tool_call("recall", json!({})));
        let c = complete(&http, &p, &with_tools("what do you know?"), &limits()).await.unwrap();
        assert_eq!(c.text, "", "{p:?}");
        assert_eq!(c.tool_calls.len(), 1, "{p:?}");
        assert_eq!((c.tool_calls[0].name.as_str(), args(&c.tool_calls[0])), ("recall", json!({})), "{p:?}");
    }
}

/// The request of the next step: the model's calls, then one result each (the second an error).
fn follow_up(first: &Completion) -> CompletionRequest {
    let mut req = with_tools("My cat is Miso");
    req.messages.push(ChatMessage::assistant_tool_calls(first.text.clone(), first.tool_calls.clone()));
    req.messages.push(ChatMessage::tool_result(first.tool_calls[0].id.clone(), "Remembered.", false));
    req.messages.push(ChatMessage::tool_result(first.tool_calls[1].id.clone(), "error: the memory is busy", true));
    req
}

#[tokio::test]
async fn calls_and_results_round_trip_in_every_format_and_mode() {
    let fake = FakeLlm::start().await;
    let http = http();
    for p in all_providers(&fake) {
        fake.push_reply(Reply::tool_calls("", vec![("remember", json!({"fact": "cat: Miso"})), ("recall", json!({"query": "cat"}))]));
        fake.push_reply(Reply::text("Noted: Miso."));
        let first = complete(&http, &p, &with_tools("My cat is Miso"), &limits()).await.unwrap();
        // The fake checks each result answers a call of the message before it, as the real
        // providers do; a 400 here means the shape is wrong.
        let second = complete(&http, &p, &follow_up(&first), &limits()).await.unwrap_or_else(|e| panic!("{p:?}: {e}"));
        assert_eq!(second.text, "Noted: Miso.", "{p:?}");
        assert!(second.tool_calls.is_empty());
        let call = fake.calls().pop().unwrap();
        let ids: Vec<String> = first.tool_calls.iter().map(|c| c.id.clone()).collect();
        let results = call.tool_results();
        assert_eq!(results.len(), 2, "{p:?}");
        assert_eq!((&results[0].0, results[0].1.as_str()), (&ids[0], "Remembered."), "{p:?}");
        assert_eq!((&results[1].0, results[1].1.as_str()), (&ids[1], "error: the memory is busy"), "{p:?}");
        // Only Anthropic carries the error flag; OpenAI sees the text.
        assert_eq!(results[1].2, p.kind == ProviderKind::Anthropic, "{p:?}");
        // Tool results count as prompt: the fake bills them, so the estimate must cover them.
        assert!(call.all_text().contains("Remembered."));
        assert!(hearth_llm::estimate_prompt_tokens(&follow_up(&first)) >= call.prompt_tokens(), "{p:?}");
    }
}

#[tokio::test]
async fn openai_tool_shape() {
    let fake = FakeLlm::start().await;
    fake.push_reply(Reply::tool_calls("", vec![("remember", json!({"fact": "x"})), ("recall", json!({"query": "y"}))]));
    let p = provider(&fake, ProviderKind::Openai, false);
    let first = complete(&http(), &p, &with_tools("hi"), &limits()).await.unwrap();
    complete(&http(), &p, &follow_up(&first), &limits()).await.unwrap();
    let body = &fake.calls()[1].body;
    assert_eq!(
        body["tools"][0],
        json!({"type": "function", "function": {"name": "remember", "description": "Save a lasting fact about the member.",
            "parameters": tools()[0].parameters}})
    );
    let messages = body["messages"].as_array().unwrap();
    // system, 3 plain, the assistant's calls, two tool messages.
    assert_eq!(messages.len(), 7);
    assert_eq!(messages[4]["role"], "assistant");
    assert_eq!(messages[4]["content"], Value::Null);
    assert_eq!(messages[4]["tool_calls"][1]["function"], json!({"name": "recall", "arguments": "{\"query\":\"y\"}"}));
    assert_eq!(messages[4]["tool_calls"][0]["type"], "function");
    assert_eq!(messages[5], json!({"role": "tool", "tool_call_id": first.tool_calls[0].id, "content": "Remembered."}));
    assert_eq!(messages[6]["role"], "tool");
}

#[tokio::test]
async fn anthropic_tool_shape() {
    let fake = FakeLlm::start().await;
    fake.push_reply(Reply::tool_calls("Checking.", vec![("remember", json!({"fact": "x"})), ("recall", json!({"query": "y"}))]));
    let p = provider(&fake, ProviderKind::Anthropic, true);
    let first = complete(&http(), &p, &with_tools("hi"), &limits()).await.unwrap();
    let mut next = follow_up(&first);
    // A user message after the results shares their message: roles must alternate.
    next.messages.push(ChatMessage::user("and one more thing"));
    complete(&http(), &p, &next, &limits()).await.unwrap();
    let call = &fake.calls()[1];
    assert_eq!(call.api, Api::Anthropic);
    assert_eq!(
        call.body["tools"][1],
        json!({"name": "recall", "description": "Search saved facts.", "input_schema": tools()[1].parameters})
    );
    let messages = call.body["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 5);
    assert_eq!(
        messages[3],
        json!({"role": "assistant", "content": [
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": first.tool_calls[0].id, "name": "remember", "input": {"fact": "x"}},
            {"type": "tool_use", "id": first.tool_calls[1].id, "name": "recall", "input": {"query": "y"}},
        ]})
    );
    assert_eq!(
        messages[4],
        json!({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": first.tool_calls[0].id, "content": "Remembered."},
            // The end of what came before the newest user text: a cache breakpoint.
            {"type": "tool_result", "tool_use_id": first.tool_calls[1].id, "content": "error: the memory is busy",
                "is_error": true, "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": "and one more thing"},
        ]})
    );
}

#[tokio::test]
async fn a_call_left_unanswered_is_refused_like_the_real_providers_do() {
    let fake = FakeLlm::start().await;
    let http = http();
    for kind in BOTH {
        let p = provider(&fake, kind, false);
        let mut req = with_tools("hi");
        let call = ToolCall { id: "call_1".into(), name: "recall".into(), arguments: "{}".into() };
        req.messages.push(ChatMessage::assistant_tool_calls("", vec![call]));
        req.messages.push(ChatMessage::user("no result in between"));
        let e = no_key(complete(&http, &p, &req, &limits()).await.unwrap_err());
        assert!(matches!(e, LlmError::Status { status: 400, .. }), "{kind:?}: {e:?}");
        // A result naming a call nobody made is refused too.
        let mut req = with_tools("hi");
        req.messages.push(ChatMessage::tool_result("call_nobody", "?", false));
        let e = complete(&http, &p, &req, &limits()).await.unwrap_err();
        assert!(matches!(e, LlmError::Status { status: 400, .. }), "{kind:?}: {e:?}");
    }
}
