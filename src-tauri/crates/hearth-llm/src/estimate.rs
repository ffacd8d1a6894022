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
/// Text is counted at one token per byte ([`estimate_text_tokens`]). That is the one bound that
/// holds for every byte-level tokenizer, whatever its vocabulary: no token covers less than one
/// byte of the text, so no string can cost more. The earlier rule (⌈ASCII bytes / 3⌉ + other
/// bytes) was under the real count by up to 3× for ASCII that is not prose — digits or letters
/// one at a time between spaces, symbols, mixed case, base64, hex (measured with o200k_base and
/// cl100k_base: "1 2 3 …" is one token per byte, "aQzXjV…" 1.2 bytes per token) — and a worker
/// can fill its prompt with such text, so the cap could be overshot by most of a prompt's cost.
/// A tighter rule that is still sound needs the tokenizer's vocabulary: one built from
/// OpenAI's would be unproven for Anthropic's, whose vocabulary is not published.
///
/// The price is a larger reservation, never a larger charge (the ledger settles the reported
/// usage). English prose and our own prompts cost 3.8–4.3× less than this estimate (the old one
/// was 1.3–1.45× over), but the reservation also holds `max_tokens` of output at the output
/// price, which is 4–5× the input price: for a typical chat call (3,000 real prompt tokens,
/// 1,024 output) at $3/$15 per million, $0.051 is held instead of $0.027, released as soon as
/// the call settles. Only a call that starts within that much of a cap is refused earlier.
///
/// Bounds, checked by property tests: never below the fake LLM's count (⌈chars / 4⌉ of system
/// and messages with separators), and never below the real count of o200k_base or cl100k_base
/// for any text (`tiktoken-rs`, whose vocabularies ship inside the crate; a dev-dependency).
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

/// Tokens a piece of text may cost: one per byte (see [`estimate_prompt_tokens`] for why).
pub fn estimate_text_tokens(text: &str) -> u64 {
    text.len() as u64
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
        assert_eq!(estimate_text_tokens("abcd"), 4);
        assert_eq!(estimate_text_tokens("日本"), 6);
        let req = CompletionRequest {
            system: "sys".into(),
            messages: vec![ChatMessage::user("hi")],
            max_tokens: 10,
            tools: vec![],
        };
        assert_eq!(estimate_prompt_tokens(&req), 8 + 3 + 8 + 2);
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

    /// The real tokenizers: OpenAI's current and previous vocabularies, loaded once.
    fn tokenizers() -> &'static [tiktoken_rs::CoreBPE; 2] {
        static BPE: std::sync::OnceLock<[tiktoken_rs::CoreBPE; 2]> = std::sync::OnceLock::new();
        BPE.get_or_init(|| [tiktoken_rs::o200k_base().unwrap(), tiktoken_rs::cl100k_base().unwrap()])
    }

    /// The most tokens any of the real tokenizers makes of `text`.
    fn real_tokens(text: &str) -> u64 {
        tokenizers().iter().map(|bpe| bpe.encode_ordinary(text).len() as u64).max().unwrap_or(0)
    }

    /// What the review found under-reserved, and what a worker could pad a prompt with: none is
    /// under one token per byte, and the old rule was under for all but prose.
    #[test]
    fn adversarial_text_is_never_under_reserved() {
        let old = |t: &str| {
            let ascii = t.bytes().filter(u8::is_ascii).count() as u64;
            ascii.div_ceil(3) + (t.len() as u64 - ascii)
        };
        let samples = [
            ("digits between spaces", "1 2 3 4 5 6 7 8 9 0 ".repeat(8)),
            ("letters between spaces", "a b c d e f g h i j k l m ".repeat(8)),
            ("mixed case", "aQzXjVkWbYcUdTeSfRgPhOiNjMkLlK".repeat(4)),
            ("symbols", "}{)(*&^%$#@!~`|\\][;:'\",.<>/?+=-_".repeat(4)),
            ("hex", "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".into()),
            ("base64", "U29tZSByYW5kb20gYmFzZTY0IHRleHQgaGVyZSB0aGF0IGdvZXMgb24gYW5kIG9u".repeat(3)),
            ("emoji", "😀🎉👍🏽❤️".repeat(5)),
        ];
        for (what, text) in &samples {
            let real = real_tokens(text);
            assert!(estimate_text_tokens(text) >= real, "{what}: {} < {real}", estimate_text_tokens(text));
            if *what != "emoji" {
                assert!(old(text) < real, "{what}: the old rule was not under ({} vs {real})", old(text));
            }
        }
        let prose = "You are a helpful, warm family assistant. Keep replies short: a few sentences, or a short list.";
        let ratio = estimate_text_tokens(prose) as f64 / real_tokens(prose) as f64;
        assert!((3.0..6.0).contains(&ratio), "prose is reserved at {ratio:.2}x its real count");
    }

    fn arb_text() -> impl Strategy<Value = String> {
        prop_oneof![
            ".{0,300}",
            "[ -~]{0,300}",
            "[a-zA-Z ]{0,300}",
            "[0-9 ,.\\n]{0,300}",
            "[\\p{P}\\p{S} \\t\\r\\n]{0,200}",
            "\\PC{0,100}",
            proptest::collection::vec(prop_oneof!["[a-z]{1,12}", " ", "'s", "\\n\\n", "[0-9]{1,6}", "[A-Z][a-z]{0,8}", "\\p{M}", "[éü]"], 0..40)
                .prop_map(|parts| parts.concat()),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn no_text_is_under_reserved_against_real_tokenizers(text in arb_text()) {
            let real = real_tokens(&text);
            prop_assert!(estimate_text_tokens(&text) >= real, "{:?}: {} < {}", text, estimate_text_tokens(&text), real);
        }

        #[test]
        fn no_request_is_under_reserved_against_real_tokenizers(req in arb_request()) {
            // Every text a provider bills, tokenized on its own, plus OpenAI's documented framing
            // (3 per message, 3 to prime the reply) — the estimate's own allowance is larger.
            let mut texts = vec![req.system.clone()];
            for m in &req.messages {
                texts.push(m.content.clone());
                texts.extend(m.tool_calls.iter().flat_map(|c| [c.id.clone(), c.name.clone(), c.arguments.clone()]));
                texts.extend(m.tool_call_id.clone());
            }
            for t in &req.tools {
                texts.extend([t.name.clone(), t.description.clone(), t.parameters.to_string()]);
            }
            let real: u64 = texts.iter().map(|t| real_tokens(t)).sum::<u64>() + 3 * (req.messages.len() as u64 + 1) + 3;
            prop_assert!(estimate_prompt_tokens(&req) >= real, "{} < {}", estimate_prompt_tokens(&req), real);
        }

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
