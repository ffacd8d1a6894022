//! Token estimates for spend reservations, made before a call (prompt) and, when a stream
//! reports no usage, after it (output). They must err high: the broker reserves the estimate
//! against the member's caps before calling, so an under-estimate is how a cap gets overshot.

use hearth_proto::llm::{ChatMessage, CompletionRequest};

/// Allowance per message (and once for the system prompt and the reply's priming) for role
/// markers and separators; OpenAI's chat format spends 3–4 tokens per message, Anthropic's
/// fewer.
const PER_MESSAGE_TOKENS: u64 = 8;

/// Prompt tokens a request may cost, erring high.
///
/// `estimate_text_tokens(system) + Σ estimate_text_tokens(message) + 8 × (messages + 1)`, where
/// a message's text includes its tool calls (id, name, arguments) and tool-result id, plus each
/// tool definition's JSON (providers bill the definitions as prompt) and 8 per tool.
///
/// Bounds:
/// - It is never below the fake LLM's count, ⌈(chars of system and messages + separators) / 4⌉,
///   since chars ≤ bytes and the per-message allowance covers separators and rounding (a
///   proptest checks this against `hearth_testkit::llm`).
/// - Against real byte-level BPE tokenizers (GPT, Claude): no token is shorter than one byte,
///   so non-ASCII text, counted at one token per byte, can never be under-estimated; ASCII is
///   counted at one token per 3 bytes, above the ~4 bytes per token these tokenizers reach on
///   prose and code. Adversarial ASCII (random symbols) can exceed it; the ledger settles the
///   real usage, so such an overshoot is limited to one call.
pub fn estimate_prompt_tokens(req: &CompletionRequest) -> u64 {
    let messages: u64 = req.messages.iter().map(|m| PER_MESSAGE_TOKENS + estimate_message_tokens(m)).sum();
    let tools: u64 = req
        .tools
        .iter()
        .map(|t| {
            PER_MESSAGE_TOKENS
                + estimate_text_tokens(&t.name)
                + estimate_text_tokens(&t.description)
                + estimate_text_tokens(&t.parameters.to_string())
        })
        .sum();
    PER_MESSAGE_TOKENS + estimate_text_tokens(&req.system) + messages + tools
}

fn estimate_message_tokens(m: &ChatMessage) -> u64 {
    let calls: u64 = m
        .tool_calls
        .iter()
        .map(|c| {
            PER_MESSAGE_TOKENS
                + estimate_text_tokens(&c.id)
                + estimate_text_tokens(&c.name)
                + estimate_text_tokens(&c.arguments)
        })
        .sum();
    estimate_text_tokens(&m.content) + calls + m.tool_call_id.as_deref().map_or(0, estimate_text_tokens)
}

/// Tokens a piece of text may cost: ⌈ASCII bytes / 3⌉ + non-ASCII bytes (see
/// [`estimate_prompt_tokens`] for why).
pub fn estimate_text_tokens(text: &str) -> u64 {
    let ascii = text.bytes().filter(u8::is_ascii).count() as u64;
    let other = text.len() as u64 - ascii;
    ascii.div_ceil(3) + other
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{anthropic, openai};
    use hearth_proto::llm::{ToolCall, ToolSpec};
    use hearth_testkit::llm::{Api, LlmCall};
    use proptest::prelude::*;

    #[test]
    fn examples() {
        assert_eq!(estimate_text_tokens(""), 0);
        assert_eq!(estimate_text_tokens("abcd"), 2);
        assert_eq!(estimate_text_tokens("日本"), 6);
        let req = CompletionRequest {
            system: "sys".into(),
            messages: vec![ChatMessage::user("hi")],
            max_tokens: 10,
            tools: vec![],
        };
        assert_eq!(estimate_prompt_tokens(&req), 8 + 1 + 8 + 1);
    }

    fn arb_request() -> impl Strategy<Value = CompletionRequest> {
        let text = prop_oneof![".{0,200}", "[a-z ]{0,400}", "\\PC{0,50}"];
        // Plain messages, tool calls and tool results, in any order: the estimate must hold for
        // whatever a turn's steps build.
        let message = (0u8..4, text.clone(), "[a-z_]{1,12}", ".{0,60}").prop_map(|(kind, content, name, args)| {
            match kind {
                0 => ChatMessage::user(content),
                1 => ChatMessage::assistant(content),
                2 => ChatMessage::assistant_tool_calls(
                    content,
                    vec![ToolCall { id: format!("call_{name}"), name, arguments: args }],
                ),
                _ => ChatMessage::tool_result(format!("call_{name}"), content, args.is_empty()),
            }
        });
        let tool = ("[a-z_]{1,12}", ".{0,80}").prop_map(|(name, description)| ToolSpec {
            name,
            description,
            parameters: serde_json::json!({"type": "object", "properties": {"fact": {"type": "string"}}}),
        });
        (text, proptest::collection::vec(message, 0..12), proptest::collection::vec(tool, 0..3)).prop_map(
            |(system, messages, tools)| CompletionRequest { system, messages, max_tokens: 100, tools },
        )
    }

    fn fake_call(api: Api, body: serde_json::Value) -> LlmCall {
        LlmCall { api, model: "m".into(), stream: false, api_key: None, body, at: std::time::Instant::now() }
    }

    proptest! {
        #[test]
        fn estimate_is_never_below_the_fakes_count(req in arb_request()) {
            let estimate = estimate_prompt_tokens(&req);
            let openai = fake_call(Api::OpenAi, openai::request_body("m", &req, false, openai::BodyOptions::default()));
            let anthropic = fake_call(Api::Anthropic, anthropic::request_body("m", &req, false));
            prop_assert!(estimate >= openai.prompt_tokens(), "{} < {}", estimate, openai.prompt_tokens());
            prop_assert!(estimate >= anthropic.prompt_tokens(), "{} < {}", estimate, anthropic.prompt_tokens());
        }
    }
}
