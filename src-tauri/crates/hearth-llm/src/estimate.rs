//! Token estimates for spend reservations, made before a call (prompt) and, when a stream
//! reports no usage, after it (output). They must err high: the broker reserves the estimate
//! against the member's caps before calling, so an under-estimate is how a cap gets overshot.

use hearth_proto::llm::{ChatMessage, CompletionRequest, ImageSource};

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
/// Images count by [`image_tokens`] of their dimensions, read from the image's header — never
/// by the length of their base64, which would be 100–1000× too much. An image whose dimensions
/// cannot be read (or one not inline yet) counts as [`MAX_IMAGE_TOKENS`].
///
/// Bounds, checked by property tests: never below the fake LLM's count (⌈chars / 4⌉ of system
/// and messages with separators), and never below the real count of o200k_base or cl100k_base
/// for any text (`tiktoken-rs`, whose vocabularies ship inside the crate; a dev-dependency).
pub fn estimate_prompt_tokens(req: &CompletionRequest) -> u64 {
    estimate_prompt_tokens_for(req, "")
}

/// [`estimate_prompt_tokens`] for a call to `model`: the same, except that a model which counts
/// an image's tokens many times over ([`image_token_factor`]) has its images reserved at that
/// count, so its reservation still covers what the provider will report.
pub fn estimate_prompt_tokens_for(req: &CompletionRequest, model: &str) -> u64 {
    let factor = image_token_factor(model);
    let messages: u64 = req.messages.iter().map(|m| PER_MESSAGE_TOKENS + estimate_message_tokens(m, factor)).sum();
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

fn estimate_message_tokens(m: &ChatMessage, image_factor: u64) -> u64 {
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
    let images: u64 = m.images.iter().map(|i| estimate_image_tokens(i) * image_factor).sum();
    estimate_text_tokens(&m.content) + calls + m.tool_call_id.as_deref().map_or(0, estimate_text_tokens) + images
}

/// One image's input tokens as the estimate counts them (before any model's
/// [`image_token_factor`]): by its dimensions when inline, else the most an image can cost.
pub fn estimate_image_tokens(image: &ImageSource) -> u64 {
    match image {
        ImageSource::Inline { data, .. } => {
            crate::images::inline_dimensions(data).map_or(MAX_IMAGE_TOKENS, |(w, h)| image_tokens(w, h))
        }
        ImageSource::Attachment { .. } => MAX_IMAGE_TOKENS,
    }
}

/// The most input tokens one image can cost under [`image_tokens`], whatever its size: what an
/// image of unknown dimensions is reserved at. (OpenAI's patch models at the largest multiplier:
/// 1536 patches × 2.46.)
pub const MAX_IMAGE_TOKENS: u64 = 3_779;

/// Input tokens one image of `width` × `height` pixels may cost, over-estimated: the largest of
/// what the providers Hearth speaks to bill for it (all sent at the default detail, which is
/// "high" for images this size):
///
/// - OpenAI tile models (gpt-4o, gpt-4.1, o1, o3): scaled to fit 2048 × 2048, then down so the
///   shortest side is at most 768; 85 + 170 per 512-px tile covering it. At most 1 445.
/// - OpenAI patch models (gpt-4.1-mini/nano, o4-mini, gpt-5-mini/nano): one token per 32-px
///   patch covering it, at most 1 536, times the model's multiplier — the largest published,
///   2.46 (gpt-4.1-nano), is used for all. At most 3 779.
/// - Anthropic: scaled to a long side of at most 1568 px and about 1.15 megapixels; ≈ w·h / 750,
///   at most about 1 600 — taken here as ⌈w·h / 750⌉ capped at 1 600.
///
/// Not covered here: gpt-4o-mini, which bills an image as 2 833 + 5 667 per tile (≈ 33× gpt-4o's
/// count) at a price 17× lower — [`image_token_factor`] carries that multiplier. A 0 × 0 image
/// (unknown dimensions) costs [`MAX_IMAGE_TOKENS`].
pub fn image_tokens(width: u32, height: u32) -> u64 {
    if width == 0 || height == 0 {
        return MAX_IMAGE_TOKENS;
    }
    let (w, h) = (f64::from(width), f64::from(height));
    openai_tile_tokens(w, h).max(openai_patch_tokens(w, h)).max(anthropic_tokens(w, h))
}

/// How many times [`image_tokens`] a model reports for one image: 34 for gpt-4o-mini (2 833 +
/// 5 667 per tile against gpt-4o's 85 + 170, rounded up), 1 for every other model. Its dollars
/// match gpt-4o's, but the broker reserves tokens at the model's own price, so the count must
/// be the model's.
pub fn image_token_factor(model: &str) -> u64 {
    if model.to_ascii_lowercase().contains("gpt-4o-mini") { 34 } else { 1 }
}

fn openai_tile_tokens(mut w: f64, mut h: f64) -> u64 {
    let fit = (2048.0 / w.max(h)).min(1.0);
    (w, h) = (w * fit, h * fit);
    let shrink = (768.0 / w.min(h)).min(1.0);
    (w, h) = (w * shrink, h * shrink);
    // Rounding the scaled sides up can only add tiles: over, never under.
    let tiles = (w.ceil() / 512.0).ceil() * (h.ceil() / 512.0).ceil();
    85 + 170 * tiles as u64
}

fn openai_patch_tokens(w: f64, h: f64) -> u64 {
    // Uncapped patches bound the scaled image's from above; the provider caps at 1536.
    let patches = ((w / 32.0).ceil() * (h / 32.0).ceil()).min(1536.0);
    (patches * 2.46).ceil() as u64
}

fn anthropic_tokens(w: f64, h: f64) -> u64 {
    ((w * h / 750.0).ceil() as u64).min(1_600)
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

    #[test]
    fn gpt_4o_mini_reserves_its_own_image_count() {
        // 1024 × 1024 on gpt-4o-mini: 2 833 + 5 667 × 4 tiles = 25 501 tokens reported.
        assert!(image_tokens(1024, 1024) * image_token_factor("gpt-4o-mini-2024-07-18") >= 25_501);
        assert!(MAX_IMAGE_TOKENS * image_token_factor("gpt-4o-mini") >= 2_833 + 5_667 * 6);
        assert_eq!(image_token_factor("gpt-4o"), 1);
    }

    #[test]
    fn image_tokens_follow_the_providers_formulas() {
        // OpenAI's own examples (tiles): 1024² → 765; 2048×4096 → 1105. The patch rule at 2.46
        // and Anthropic's w·h/750 are below those there, and above them elsewhere.
        assert_eq!(openai_tile_tokens(1024.0, 1024.0), 765);
        assert_eq!(openai_tile_tokens(2048.0, 4096.0), 1105);
        assert_eq!(openai_tile_tokens(512.0, 512.0), 255);
        assert_eq!(openai_patch_tokens(1024.0, 1024.0), (1024.0f64 * 2.46).ceil() as u64);
        assert_eq!(openai_patch_tokens(1800.0, 2400.0), 3779, "capped at 1536 patches");
        assert_eq!(anthropic_tokens(1000.0, 1000.0), 1334);
        assert_eq!(anthropic_tokens(4000.0, 3000.0), 1600);
        assert_eq!(image_tokens(1024, 1024), 2520);
        assert_eq!(image_tokens(64, 48), 255, "small images cost one tile");
        assert_eq!(image_tokens(0, 10), MAX_IMAGE_TOKENS);
        assert_eq!(image_tokens(u32::MAX, u32::MAX), MAX_IMAGE_TOKENS);
    }

    #[test]
    fn images_count_by_size_not_by_base64_length() {
        use base64::Engine as _;
        let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
        let png = hearth_testkit::media::png(640, 480);
        let text_only = CompletionRequest {
            system: String::new(),
            messages: vec![ChatMessage::user("look")],
            max_tokens: 10,
            tools: vec![],
        };
        let with = |images: Vec<ImageSource>| CompletionRequest {
            messages: vec![ChatMessage::user_with_images("look", images)],
            ..text_only.clone()
        };
        let base = estimate_prompt_tokens(&text_only);
        let inline = |data: String| ImageSource::Inline { media_type: "image/png".into(), data };
        assert_eq!(estimate_prompt_tokens(&with(vec![inline(b64(&png))])), base + image_tokens(640, 480));
        assert!(b64(&png).len() as u64 > 100 * image_tokens(640, 480), "the base64 would have been far more");
        assert_eq!(
            estimate_prompt_tokens(&with(vec![inline(b64(&png)), inline(b64(b"not an image"))])),
            base + image_tokens(640, 480) + MAX_IMAGE_TOKENS,
            "an image whose size cannot be read counts as the largest"
        );
        assert_eq!(
            estimate_prompt_tokens(&with(vec![ImageSource::Attachment { inbox_id: 1 }])),
            base + MAX_IMAGE_TOKENS
        );
        assert_eq!(crate::images::inline_dimensions(&b64(&png)), Some((640, 480)));
        assert_eq!(crate::images::inline_dimensions("!!!"), None);
    }

    fn arb_request() -> impl Strategy<Value = CompletionRequest> {
        let text = prop_oneof![".{0,200}", "[a-z ]{0,400}", "\\PC{0,50}"];
        // Plain messages, tool calls and tool results, in any order: the estimate must hold for
        // whatever a turn's steps build.
        let message = (0u8..5, text.clone(), "[a-z_]{1,12}", ".{0,60}").prop_map(|(kind, content, name, args)| {
            match kind {
                0 => ChatMessage::user(content),
                // A photo with a caption: a real image of some size, inline as the broker sends it.
                4 => {
                    use base64::Engine as _;
                    let png = hearth_testkit::media::png(name.len() as u32 * 40, args.len() as u32 + 1);
                    let data = base64::engine::general_purpose::STANDARD.encode(png);
                    ChatMessage::user_with_images(
                        content,
                        vec![ImageSource::Inline { media_type: "image/png".into(), data }],
                    )
                }
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
        fn image_tokens_never_below_any_formula_nor_above_the_max(w in 1u32..20_000, h in 1u32..20_000) {
            let t = image_tokens(w, h);
            let (fw, fh) = (f64::from(w), f64::from(h));
            prop_assert!(t >= openai_tile_tokens(fw, fh) && t >= openai_patch_tokens(fw, fh) && t >= anthropic_tokens(fw, fh));
            prop_assert!(t <= MAX_IMAGE_TOKENS, "{}x{}: {}", w, h, t);
            // Exact scaled sizes, computed independently (integer pixels, as the providers do):
            // the tile count of the scaled image never exceeds what was reserved.
            let fit = (2048.0 / fw.max(fh)).min(1.0);
            let (sw, sh) = ((fw * fit).floor().max(1.0), (fh * fit).floor().max(1.0));
            let shrink = (768.0 / sw.min(sh)).min(1.0);
            let (sw, sh) = ((sw * shrink).floor().max(1.0), (sh * shrink).floor().max(1.0));
            let tiles = (sw / 512.0).ceil() * (sh / 512.0).ceil();
            prop_assert!(t >= 85 + 170 * tiles as u64);
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
