//! Prompt caching as each provider does it, for [`FakeLlm::simulate_prompt_cache`]
//! (super::FakeLlm::simulate_prompt_cache): deterministic, so a test can assert exact counts.
//!
//! The prompt is read as a sequence of blocks in the provider's order — tools, the system
//! prompt, then each message's content blocks (a string content is one block) — and a prefix is
//! known by a hash of its blocks without their `cache_control` marks. Token counts follow the
//! fake's tokenizer: the prefix's text joined as [`LlmCall::all_text`](super::LlmCall::all_text)
//! joins it, plus [`IMAGE_TOKENS`](super::IMAGE_TOKENS) per image.
//!
//! - **Anthropic**: only prefixes ending at a block marked `cache_control` are written, and only
//!   when they hold at least the minimum (1,024 tokens: Claude Sonnet's and Opus 4's). A request
//!   reads the longest prefix, ending at a block boundary at most 20 blocks before one of its
//!   breakpoints, that an earlier request wrote within the last five minutes (a read renews
//!   them); what lies between that and its last cacheable breakpoint is written.
//!   `cache_read_input_tokens` and `cache_creation_input_tokens` report the two.
//! - **OpenAI**: automatic. Every request's prefixes are kept for five minutes; a request reads
//!   the longest one seen before, if it is at least 1,024 tokens, counted in steps of 128 tokens
//!   (`prompt_tokens_details.cached_tokens`). Nothing is reported as written.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{Api, IMAGE_TOKENS, LlmCall, content_texts, token_count};

/// How long a cached prefix lives after its last use.
pub const CACHE_TTL: Duration = Duration::from_secs(5 * 60);
/// The fewest tokens a prefix must hold to be cached (both providers' usual minimum).
pub const MIN_CACHED_TOKENS: u64 = 1024;
/// How far before a breakpoint Anthropic looks for an earlier cache entry, in blocks.
const LOOKBACK_BLOCKS: usize = 20;
/// OpenAI counts cache hits in steps of this many tokens.
const OPENAI_STEP: u64 = 128;

/// One block of the prompt, in reading order.
struct Block {
    /// Hash of every block up to and including this one.
    prefix: u64,
    /// Tokens of the prompt up to and including this block.
    tokens: u64,
    /// Marked `cache_control`.
    breakpoint: bool,
}

/// The cache of one fake: prefixes by hash, each with the instant it expires.
#[derive(Debug, Default)]
pub(super) struct PromptCache {
    entries: HashMap<(Api, u64), Instant>,
}

/// (tokens read from the cache, tokens written to it) for one request.
pub(super) type CacheUse = (u64, u64);

impl PromptCache {
    /// What `call` reads and writes, and the cache after it.
    pub(super) fn serve(&mut self, call: &LlmCall, now: Instant) -> CacheUse {
        self.entries.retain(|_, expires| *expires > now);
        let blocks = blocks(call);
        match call.api {
            Api::Anthropic => self.anthropic(call.api, &blocks, now),
            Api::OpenAi => self.openai(call.api, &blocks, now),
        }
    }

    fn anthropic(&mut self, api: Api, blocks: &[Block], now: Instant) -> CacheUse {
        let breakpoints: Vec<usize> = (0..blocks.len()).filter(|&i| blocks[i].breakpoint).collect();
        let Some(&last) = breakpoints.last() else { return (0, 0) };
        // The longest earlier entry within the lookback of some breakpoint.
        let read_at = (0..=last)
            .rev()
            .filter(|&i| breakpoints.iter().any(|&b| b >= i && b - i <= LOOKBACK_BLOCKS))
            .find(|&i| self.entries.contains_key(&(api, blocks[i].prefix)));
        let read = read_at.map_or(0, |i| blocks[i].tokens);
        if let Some(i) = read_at {
            self.entries.insert((api, blocks[i].prefix), now + CACHE_TTL);
        }
        let mut written_to = read;
        for &b in &breakpoints {
            if blocks[b].tokens >= MIN_CACHED_TOKENS {
                self.entries.insert((api, blocks[b].prefix), now + CACHE_TTL);
                written_to = written_to.max(blocks[b].tokens);
            }
        }
        (read, written_to - read)
    }

    fn openai(&mut self, api: Api, blocks: &[Block], now: Instant) -> CacheUse {
        let hit = blocks.iter().rev().find(|b| self.entries.contains_key(&(api, b.prefix))).map_or(0, |b| b.tokens);
        for b in blocks {
            self.entries.insert((api, b.prefix), now + CACHE_TTL);
        }
        let read = if hit >= MIN_CACHED_TOKENS { hit / OPENAI_STEP * OPENAI_STEP } else { 0 };
        (read, 0)
    }
}

/// The request's blocks in the provider's reading order, with running hashes and token counts.
fn blocks(call: &LlmCall) -> Vec<Block> {
    let body = &call.body;
    let mut raw: Vec<(Value, bool, Vec<String>, u64)> = Vec::new();
    let mut push = |block: &Value, texts: Vec<String>, images: u64| {
        let mut plain = block.clone();
        let breakpoint = plain.as_object_mut().and_then(|o| o.remove("cache_control")).is_some();
        raw.push((plain, breakpoint, texts, images));
    };
    for tool in body.get("tools").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]) {
        push(tool, Vec::new(), 0);
    }
    if call.api == Api::Anthropic {
        match body.get("system") {
            Some(Value::Array(system)) => {
                system.iter().for_each(|b| push(b, content_texts(&Value::Array(vec![b.clone()])), 0))
            }
            Some(system @ Value::String(_)) => push(system, content_texts(system), 0),
            _ => {}
        }
    }
    for message in body.get("messages").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]) {
        let role = message.get("role").cloned().unwrap_or(Value::Null);
        match message.get("content") {
            Some(Value::Array(content)) => {
                for b in content {
                    let image = u64::from(matches!(b.get("type").and_then(Value::as_str), Some("image" | "image_url")));
                    let texts = content_texts(&Value::Array(vec![b.clone()]));
                    // A block is known with its message's role, and as a text block when it is one.
                    push(&serde_json::json!({ "role": role, "block": b }), texts, image * IMAGE_TOKENS);
                }
            }
            Some(text @ Value::String(s)) => {
                let block = serde_json::json!({ "role": role, "block": { "type": "text", "text": s } });
                push(&block, content_texts(text), 0);
            }
            _ => {
                // OpenAI: an assistant message with only tool calls, a message without content.
                let mut rest = message.clone();
                if let Some(o) = rest.as_object_mut() {
                    o.remove("content");
                }
                push(&rest, Vec::new(), 0);
            }
        }
        // OpenAI: the tool calls of an assistant message that also has content.
        if message.get("content").is_some_and(|c| !c.is_null())
            && let Some(calls) = message.get("tool_calls")
        {
            push(calls, Vec::new(), 0);
        }
    }
    let mut hasher = DefaultHasher::new();
    let mut texts: Vec<String> = Vec::new();
    let mut images = 0;
    raw.into_iter()
        .map(|(plain, breakpoint, block_texts, block_images)| {
            // A block marked `cache_control` inside a JSON wrapper: look one level in.
            let breakpoint = breakpoint || plain.pointer("/block/cache_control").is_some();
            let plain = strip_inner_mark(plain);
            plain.to_string().hash(&mut hasher);
            texts.extend(block_texts);
            images += block_images;
            Block { prefix: hasher.clone().finish(), tokens: token_count(&texts.join("\n")) + images, breakpoint }
        })
        .collect()
}

/// The wrapped block without its `cache_control`.
fn strip_inner_mark(mut v: Value) -> Value {
    if let Some(block) = v.get_mut("block").and_then(Value::as_object_mut) {
        block.remove("cache_control");
    }
    v
}
