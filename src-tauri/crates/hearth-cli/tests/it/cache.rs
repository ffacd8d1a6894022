//! Prompt caching end to end: one member's ten-turn conversation through the real gateway and
//! worker, against the fake model reporting its prompt cache as each provider does
//! (`FakeLlm::simulate_prompt_cache`: Anthropic reads and writes what `cache_control` marks,
//! OpenAI reads any prefix it saw; five minutes, at least 1,024 tokens). What the ledger recorded
//! gives the cached share of input tokens that BENCHMARKS.md reports ("Prompt caching"); run
//! `cargo nextest run -p hearth-cli -E 'test(prompt_cache)' --no-capture` to see it.

use std::time::Duration;

use hearth_proto::control::ProviderKind;
use hearth_testkit::llm::{LlmCall, Reply};
use serde_json::Value;

use crate::support::{Household, set_provider};

const T: Duration = Duration::from_secs(20);

/// Ten messages of an ordinary evening's chat that needs no tool.
const TURNS: [&str; 10] = [
    "hi! long day at work today",
    "what could I cook tonight with leeks, potatoes and a bit of cheese?",
    "sounds good. how long does it take?",
    "can I make it the day before?",
    "the kids don't like leeks much, any trick to hide them?",
    "ok. and something quick for dessert?",
    "we have apples and some oats",
    "perfect. how many does that serve?",
    "thanks, that's dinner sorted",
    "good night!",
];

/// What the model answers every time: the few sentences a real assistant writes.
const ANSWER: &str = "A leek and potato gratin works well: slice the potatoes and leeks thinly, layer them in a \
    buttered dish with a little garlic, pour over warm milk or cream seasoned with salt, pepper and nutmeg, \
    and scatter the cheese on top. Bake it covered at 180 °C for about 45 minutes, then uncovered for 15 more \
    until golden. Serve it with a green salad, or with sausages if anyone wants something heartier.";

/// Per chat completion, as the ledger recorded it: (full-price input, cache reads, cache writes).
fn ledger(h: &Household) -> Vec<(u64, u64, u64)> {
    let db = h.db();
    let mut stmt = db
        .prepare(
            "SELECT input_tokens, cached_input_tokens, cache_write_tokens FROM ledger
             WHERE kind = 'chat' AND state = 'settled' ORDER BY id",
        )
        .unwrap();
    stmt.query_map([], |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64, r.get::<_, i64>(2)? as u64)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

async fn ten_turns(kind: ProviderKind) -> (Vec<LlmCall>, Vec<(u64, u64, u64)>) {
    let h = Household::new(1).await;
    set_provider(&h.gateway, &h.llm, kind).await;
    h.llm.simulate_prompt_cache();
    h.llm.set_responder(|_| Reply::text(ANSWER));
    for (i, text) in TURNS.iter().enumerate() {
        h.say(0, text);
        // The pairing's welcome, then one answer a turn.
        h.replies(0, i + 2, T).await;
    }
    h.settled().await;
    let calls = h.llm.calls();
    let rows = ledger(&h);
    h.stop().await;
    assert_eq!(rows.len(), TURNS.len(), "one completion a turn");
    (calls, rows)
}

/// Cache reads over all prompt tokens.
fn cached_share(rows: &[(u64, u64, u64)]) -> f64 {
    let read: u64 = rows.iter().map(|r| r.1).sum();
    let prompt: u64 = rows.iter().map(|r| r.0 + r.1 + r.2).sum();
    read as f64 / prompt as f64
}

/// What the input cost at Anthropic's rates (cache reads 0.1 ×, writes 1.25 × the input price),
/// as a share of the same prompts with no cache.
fn input_cost_share(rows: &[(u64, u64, u64)]) -> f64 {
    let with: f64 = rows.iter().map(|r| r.0 as f64 + 0.1 * r.1 as f64 + 1.25 * r.2 as f64).sum();
    let without: u64 = rows.iter().map(|r| r.0 + r.1 + r.2).sum();
    with / without as f64
}

fn print(kind: &str, rows: &[(u64, u64, u64)]) {
    println!("{kind}: turn, prompt tokens, read from cache, written to cache");
    for (i, r) in rows.iter().enumerate() {
        println!("  {:2}  {:5}  {:5}  {:5}", i + 1, r.0 + r.1 + r.2, r.1, r.2);
    }
    println!(
        "  cached share of input tokens {:.1} %, input cost {:.1} % of uncached",
        100.0 * cached_share(rows),
        100.0 * input_cost_share(rows)
    );
}

/// The prompt before the turn's own user message, as the provider reads it: the tools, then
/// every message but the last, serialised.
fn stable_prefix(call: &LlmCall) -> String {
    let messages = call.body["messages"].as_array().cloned().unwrap_or_default();
    let before = &messages[..messages.len().saturating_sub(1)];
    format!("{}{}", call.body.get("tools").unwrap_or(&Value::Null), Value::Array(before.to_vec()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prompt_cache_anthropic_reads_each_turns_history_from_the_cache() {
    let (calls, rows) = ten_turns(ProviderKind::Anthropic).await;
    print("Anthropic", &rows);
    // Every request marks the end of the system prompt; from the second turn on, the history's.
    for (i, c) in calls.iter().enumerate() {
        assert!(c.body["system"][0]["cache_control"].is_object(), "turn {i}");
        let marked = c.body["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["content"].as_array().is_some_and(|b| b.iter().any(|b| b.get("cache_control").is_some())))
            .count();
        assert_eq!(marked, usize::from(i > 0), "turn {i}");
    }
    // Once a prefix was written, every later turn reads at least it: the conversation so far
    // comes from the cache and only the newest exchange is written.
    let first_write = rows.iter().position(|r| r.2 > 0).expect("the prompt grew past the cache's minimum");
    for w in rows[first_write..].windows(2) {
        assert!(w[1].1 >= w[0].1 + w[0].2, "a turn reads what the one before read and wrote: {w:?}");
    }
    assert!(cached_share(&rows) > 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prompt_cache_openai_sees_the_same_prefix_at_every_turn() {
    let (calls, rows) = ten_turns(ProviderKind::Openai).await;
    print("OpenAI", &rows);
    // Each request starts with the whole of the one before, but for its last message: the
    // system prompt never changes, the history only grows, and the tools only grow — when the
    // conversation first needs a family (`tool_offer.rs`), the one turn that misses the cache.
    let mut same_prefix = 0;
    for (i, w) in calls.windows(2).enumerate() {
        let before = stable_prefix(&w[0]);
        let after = serde_json::to_string(&w[1].body["messages"]).unwrap();
        let earlier = serde_json::to_string(&w[0].body["messages"][0]).unwrap();
        assert!(after.starts_with(&format!("[{earlier}")), "turn {}: the system prompt changed", i + 2);
        let (was, now) = (w[0].tool_names(), w[1].tool_names());
        assert!(was.iter().all(|t| now.contains(t)), "turn {}: tools {was:?} -> {now:?}", i + 2);
        if was != now {
            continue;
        }
        same_prefix += 1;
        let n = w[0].body["messages"].as_array().unwrap().len() - 1;
        let next: Vec<Value> = w[1].body["messages"].as_array().unwrap()[..n].to_vec();
        assert_eq!(
            format!("{}{}", w[1].body.get("tools").unwrap_or(&Value::Null), Value::Array(next)),
            before,
            "turn {}: the first {} bytes differ",
            i + 2,
            before.len()
        );
    }
    println!("  turns whose request starts with the previous one's prefix: {same_prefix} of {}", calls.len() - 1);
    assert!(same_prefix >= calls.len() - 3, "the tools changed at most twice: {same_prefix}");
    let first_hit = rows.iter().position(|r| r.1 > 0).expect("the prompt grew past the cache's minimum");
    assert!(rows[first_hit..].iter().all(|r| r.1 > 0), "{rows:?}");
    assert!(rows.iter().all(|r| r.2 == 0), "OpenAI reports no cache writes");
}
