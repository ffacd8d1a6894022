//! The rate card's unit and property tests: prices as set, defaults, and costs never under-counted.

use super::*;
use proptest::prelude::*;

fn usage(input: u64, cached: u64, output: u64) -> Usage {
    Usage { input_tokens: input, output_tokens: output, cached_input_tokens: cached, cache_write_tokens: 0 }
}

fn with_writes(u: Usage, written: u64) -> Usage {
    Usage { cache_write_tokens: written, ..u }
}

fn admin(model: &str, input: u64) -> RateCardEntry {
    RateCardEntry {
        model: model.into(),
        price: Price { input, output: input, cached_input: input, cache_write: input },
        source: PriceSource::Admin,
    }
}

#[test]
fn cost_is_exact_for_round_numbers() {
    let p = Price { input: 2_500_000, output: 10_000_000, cached_input: 1_250_000, cache_write: 2_500_000 };
    // 1M input at $2.50 + 1M output at $10 + 1M cached at $1.25
    assert_eq!(p.cost_micros(&usage(1_000_000, 1_000_000, 1_000_000)), 13_750_000);
    // 1000 input tokens at $2.50/Mtok = $0.0025
    assert_eq!(p.cost_micros(&usage(1_000, 0, 0)), 2_500);
    assert_eq!(p.cost_micros(&usage(0, 0, 0)), 0);
    assert_eq!(Price::ZERO.cost_micros(&usage(u64::MAX, u64::MAX, u64::MAX)), 0);
}

#[test]
fn cost_rounds_up_never_down() {
    let p = Price { input: 150_000, output: 600_000, cached_input: 75_000, cache_write: 150_000 };
    // 1 token at $0.15/Mtok = 0.15 micro → 1
    assert_eq!(p.cost_micros(&usage(1, 0, 0)), 1);
    // 7 input (1.05) + 3 output (1.8) = 2.85 → 3
    assert_eq!(p.cost_micros(&usage(7, 0, 3)), 3);
    // exactly on a micro: no extra
    assert_eq!(p.cost_micros(&usage(20, 0, 0)), 3);
    assert_eq!(p.cost_micros(&usage(0, 40, 0)), 3);
    assert_eq!(p.cost_micros(&usage(0, 41, 0)), 4);
}

#[test]
fn cached_tokens_use_the_cached_price() {
    let p = Price { input: 3_000_000, output: 15_000_000, cached_input: 300_000, cache_write: 3_000_000 };
    assert_eq!(p.cost_micros(&usage(10_000, 0, 0)), 30_000);
    assert_eq!(p.cost_micros(&usage(0, 10_000, 0)), 3_000);
    assert_eq!(p.cost_micros(&usage(2_000, 8_000, 500)), 6_000 + 2_400 + 7_500);
}

#[test]
fn huge_token_counts_do_not_overflow() {
    let max = Price { input: u64::MAX, output: u64::MAX, cached_input: u64::MAX, cache_write: u64::MAX };
    assert_eq!(max.cost_micros(&usage(u64::MAX, u64::MAX, u64::MAX)), u64::MAX);
    assert_eq!(max.worst_case_micros(u64::MAX, u64::MAX), u64::MAX);
    let p = Price { input: 10_000_000_000, output: 10_000_000_000, cached_input: 0, cache_write: 10_000_000_000 };
    // 10^15 tokens at $10,000/Mtok = 10^13 USD = 10^19 micros: fits in u64 exactly.
    assert_eq!(p.cost_micros(&usage(1_000_000_000_000_000, 0, 0)), 10_000_000_000_000_000_000);
    // twice that does not fit: saturates rather than wrapping to something small.
    assert_eq!(p.cost_micros(&usage(1_000_000_000_000_000, 0, 1_000_000_000_000_000)), u64::MAX);
}

#[test]
fn worst_case_prices_every_prompt_token_at_full_input() {
    let p = Price { input: 2_500_000, output: 10_000_000, cached_input: 1_250_000, cache_write: 2_500_000 };
    assert_eq!(p.worst_case_micros(1_000, 500), 2_500 + 5_000);
    assert_eq!(p.worst_case_micros(0, 0), 0);
    // A cached price above the input price (an admin's odd entry) still bounds the cost.
    let odd = Price { input: 1_000_000, output: 0, cached_input: 2_000_000, cache_write: 1_000_000 };
    assert_eq!(odd.worst_case_micros(1_000, 0), 2_000);
    assert!(odd.worst_case_micros(1_000, 0) >= odd.cost_micros(&usage(0, 1_000, 0)));
}

#[test]
fn cache_writes_use_their_own_price_and_the_worst_case_covers_them() {
    // claude-sonnet-4-5: $3 input, $0.30 cache read, $3.75 cache write (the default), $15 output.
    let p = default_rate_card().into_iter().find(|e| e.model == "claude-sonnet-4-5").unwrap().price;
    assert_eq!(p.cache_write, 3_750_000);
    // 1,000 fresh input, 8,000 read, 2,000 written, 500 out.
    let u = with_writes(usage(1_000, 8_000, 500), 2_000);
    assert_eq!(p.cost_micros(&u), 3_000 + 2_400 + 7_500 + 7_500);
    // Reserved as if all 11,000 prompt tokens were written, nothing read.
    assert_eq!(p.worst_case_micros(11_000, 500), 41_250 + 7_500);
    assert!(p.worst_case_micros(11_000, 500) >= p.cost_micros(&with_writes(usage(0, 0, 500), 11_000)));
    // A provider that writes no cache it charges for reserves as before.
    let openai = p.without_cache_writes();
    assert_eq!(openai.worst_case_micros(11_000, 500), 33_000 + 7_500);
}

proptest! {
    #[test]
    fn worst_case_bounds_every_real_split(
        input in 0u64..=10_000_000_000,
        output in 0u64..=10_000_000_000,
        cached in 0u64..=10_000_000_000,
        prompt in 0u64..2_000_000,
        max_out in 0u64..200_000,
        write in 0u64..=10_000_000_000,
        cached_share in 0.0f64..=1.0,
        written_share in 0.0f64..=1.0,
        used_share in 0.0f64..=1.0,
        out_share in 0.0f64..=1.0,
    ) {
        let p = Price { input, output, cached_input: cached, cache_write: write.min(input) };
        let used = (prompt as f64 * used_share) as u64;
        let c = (used as f64 * cached_share) as u64;
        let o = (max_out as f64 * out_share) as u64;
        let u = usage(used - c, c, o);
        prop_assert!(u.input_tokens + u.cached_input_tokens <= prompt);
        // With cache writes at any price, part of the uncached prompt written.
        let w = ((used - c) as f64 * written_share) as u64;
        let dear = Price { cache_write: write, ..p };
        let wu = with_writes(usage(used - c - w, c, o), w);
        prop_assert!(dear.worst_case_micros(prompt, max_out) >= dear.cost_micros(&wu));
        prop_assert!(p.worst_case_micros(prompt, max_out) >= p.cost_micros(&u));
        // and the full prompt uncached at max output costs exactly the worst case when
        // input is the dearer prompt price
        if input >= cached {
            prop_assert_eq!(p.worst_case_micros(prompt, max_out),
                p.cost_micros(&usage(prompt, 0, max_out)));
        }
    }

    #[test]
    fn cost_is_at_least_the_exact_value(
        price in 0u64..=10_000_000_000, tokens in 0u64..=u32::MAX as u64 * 1000,
    ) {
        let p = Price { input: price, output: 0, cached_input: 0, cache_write: price };
        let exact = tokens as f64 * price as f64 / 1e6;
        let cost = p.cost_micros(&usage(tokens, 0, 0));
        prop_assert!(cost as f64 >= exact * (1.0 - 1e-12));
        prop_assert!((cost as f64) < exact * (1.0 + 1e-12) + 1.0);
    }
}

#[test]
fn from_usd_converts_and_defaults_cached_to_input() {
    let p = Price::from_usd_per_mtok(2.5, 10.0, Some(1.25), None).unwrap();
    assert_eq!(p, Price { input: 2_500_000, output: 10_000_000, cached_input: 1_250_000, cache_write: 3_125_000 });
    let p = Price::from_usd_per_mtok(0.15, 0.6, None, Some(0.2)).unwrap();
    assert_eq!(p, Price { input: 150_000, output: 600_000, cached_input: 150_000, cache_write: 200_000 });
    let p = Price::from_usd_per_mtok(0.075, 0.0, Some(0.0), None).unwrap();
    assert_eq!(p, Price { input: 75_000, output: 0, cached_input: 0, cache_write: 93_750 });
    assert_eq!(Price::from_usd_per_mtok(10_000.0, 0.0, None, None).unwrap().input, 10_000_000_000);
    assert_eq!(p.usd(), (0.075, 0.0, 0.0, 0.09375));
    assert_eq!(
        Price { input: 2_500_000, output: 10_000_000, cached_input: 1_250_000, cache_write: 3_125_000 }.to_string(),
        "input $2.50, output $10.00, cached input $1.25 per million tokens"
    );
    assert_eq!(
        Price { input: 3_000_000, output: 15_000_000, cached_input: 300_000, cache_write: 6_000_000 }.to_string(),
        "input $3.00, output $15.00, cached input $0.30, cache write $6.00 per million tokens"
    );
}

#[test]
fn from_usd_rejects_bad_input_with_clear_messages() {
    let e = Price::from_usd_per_mtok(f64::NAN, 1.0, None, None).unwrap_err();
    assert_eq!(e, PriceError::NotANumber { field: "input" });
    assert!(e.to_string().contains("not a number"), "{e}");

    let e = Price::from_usd_per_mtok(1.0, -0.5, None, None).unwrap_err();
    assert_eq!(e, PriceError::Negative { field: "output", value: -0.5 });
    assert!(e.to_string().contains("output price -0.5 is negative"), "{e}");

    let e = Price::from_usd_per_mtok(1.0, 1.0, Some(20_000.0), None).unwrap_err();
    assert_eq!(e, PriceError::TooHigh { field: "cached input", value: 20_000.0 });
    assert!(e.to_string().contains("per million tokens, not per token"), "{e}");

    assert!(matches!(
        Price::from_usd_per_mtok(f64::INFINITY, 1.0, None, None),
        Err(PriceError::TooHigh { field: "input", .. })
    ));
    assert!(matches!(Price::from_usd_per_mtok(1.0, f64::NEG_INFINITY, None, None), Err(PriceError::Negative { .. })));
    assert!(matches!(
        Price::from_usd_per_mtok(1.0, 1.0, Some(f64::NAN), None),
        Err(PriceError::NotANumber { field: "cached input" })
    ));
}

#[test]
fn default_card_has_the_models_people_use() {
    let card = default_rate_card();
    for m in [
        "gpt-4o",
        "gpt-4o-mini",
        "gpt-4.1",
        "gpt-4.1-mini",
        "gpt-4.1-nano",
        "o4-mini",
        "gpt-5",
        "gpt-5-mini",
        "gpt-5-nano",
        "claude-opus-4-1",
        "claude-sonnet-4-5",
        "claude-haiku-4-5",
        "claude-3-5-haiku",
        "deepseek-chat",
        "deepseek-reasoner",
        "gemini-2.5-pro",
        "gemini-2.5-flash",
        "gemini-2.5-flash-lite",
    ] {
        let e = card.iter().find(|e| e.model == m).unwrap_or_else(|| panic!("{m} missing"));
        assert!(e.price.input > 0 && e.price.output > 0, "{m} has no price");
        assert!(e.price.cached_input <= e.price.input, "{m}: cached above input");
        let PriceSource::Default { as_of } = e.source else { panic!("{m} not a default") };
        assert!(super::super::period::parse_month(as_of).is_ok(), "{m}: as_of {as_of}");
    }
    let mut names: Vec<_> = card.iter().map(|e| e.model.to_ascii_lowercase()).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), card.len(), "duplicate default");
    assert_eq!(lookup(&card, "gpt-4o-mini").unwrap().price.input, 150_000);
}

#[test]
fn audio_prices_reserve_whole_minutes_and_charge_seconds() {
    let whisper = lookup(&default_audio_rate_card(), "whisper-1").unwrap().price;
    assert_eq!(whisper, AudioPrice { micros_per_minute: 6_000 });
    // Ten minutes: $0.06 set aside and charged.
    assert_eq!((whisper.worst_case_micros(600), whisper.cost_micros(600)), (60_000, 60_000));
    // 61 seconds: two started minutes set aside, 61 seconds charged (6100 micros).
    assert_eq!((whisper.worst_case_micros(61), whisper.cost_micros(61)), (12_000, 6_100));
    // A 2-second note is billed as the 10-second minimum; 0 seconds too.
    assert_eq!(whisper.cost_micros(2), 1_000);
    assert_eq!(whisper.cost_micros(0), 1_000);
    assert_eq!(whisper.worst_case_micros(0), 6_000);
    // Groq's turbo at $0.04/h: rounded up, never down.
    let turbo = lookup(&default_audio_rate_card(), "groq/whisper-large-v3-turbo").unwrap().price;
    assert_eq!(turbo.micros_per_minute, 667);
    assert_eq!(turbo.cost_micros(60), 667);
    assert_eq!(
        lookup(&default_audio_rate_card(), "gpt-4o-mini-transcribe").unwrap().price.micros_per_minute,
        3_000
    );
    assert!(lookup(&default_audio_rate_card(), "gpt-4o-mini").is_none(), "a chat model is not a speech model");
    assert_eq!(whisper.to_string(), "$0.006 per minute of audio");
    assert_eq!(AudioPrice { micros_per_minute: u64::MAX }.cost_micros(u64::MAX), u64::MAX);
}

proptest! {
    #[test]
    fn audio_cost_never_exceeds_its_reservation(price in 0u64..=10_000_000, secs in 0u64..=200_000) {
        let p = AudioPrice { micros_per_minute: price };
        prop_assert!(p.cost_micros(secs) <= p.worst_case_micros(secs));
        prop_assert!(p.cost_micros(secs) as u128 * 60 >= secs as u128 * price as u128);
    }
}

#[test]
fn lookup_rules() {
    let card = default_rate_card();
    let model = |name: &str| lookup(&card, name).map(|e| e.model.as_str());
    assert_eq!(model("gpt-4o"), Some("gpt-4o"));
    assert_eq!(model("gpt-4o-mini"), Some("gpt-4o-mini"));
    assert_eq!(model("GPT-4o-Mini"), Some("gpt-4o-mini"));
    assert_eq!(model("  gpt-4o  "), Some("gpt-4o"));
    assert_eq!(model("openai/gpt-4o-mini"), Some("gpt-4o-mini"));
    assert_eq!(model("openai/gpt-4o"), Some("gpt-4o"));
    assert_eq!(model("anthropic/claude-sonnet-4-5"), Some("claude-sonnet-4-5"));
    assert_eq!(model("anthropic/claude-sonnet-4.5"), Some("claude-sonnet-4-5"));
    assert_eq!(model("anthropic/claude-3.5-haiku"), Some("claude-3-5-haiku"));
    assert_eq!(model("google/gemini-2.5-flash"), Some("gemini-2.5-flash"));
    assert_eq!(model("google/gemini-2.5-flash-lite"), Some("gemini-2.5-flash-lite"));
    assert_eq!(model("gpt-4o-mini-2024-07-18"), Some("gpt-4o-mini"));
    assert_eq!(model("gpt-4o-2024-08-06"), Some("gpt-4o"));
    assert_eq!(model("gpt-4o-2024-05-13"), Some("gpt-4o-2024-05-13"), "exact snapshot wins");
    assert_eq!(model("gpt-4.1-2025-04-14"), Some("gpt-4.1"));
    assert_eq!(model("claude-sonnet-4-5-20250929"), Some("claude-sonnet-4-5"));
    assert_eq!(model("claude-sonnet-4-20250514"), Some("claude-sonnet-4"));
    assert_eq!(model("claude-3-5-haiku-latest"), Some("claude-3-5-haiku"));
    assert_eq!(model("openrouter/anthropic/claude-haiku-4-5-20251001"), Some("claude-haiku-4-5"));
    // never a different model by prefix, in either direction
    assert_eq!(model("gpt-4o-mini-search"), None);
    assert_eq!(model("gpt-4"), None);
    assert_eq!(model("gpt-5-pro"), None);
    assert_eq!(model("gpt-4.1-nano-x"), None);
    assert_eq!(model("claude-sonnet"), None);
    assert_eq!(model("deepseek"), None);
    assert_eq!(model(""), None);
    assert_eq!(model("/"), None);
    assert_eq!(model("-latest"), None);
    assert_eq!(model("llama3.2:3b"), None);
    // a date that is not a snapshot suffix is not stripped into something else
    assert_eq!(model("gpt-4o-mini2024-07-18"), None);
}

#[test]
fn admin_overrides_default_but_not_a_more_specific_name() {
    let mut card = default_rate_card();
    card.push(admin("GPT-4o", 1));
    card.push(admin("gpt-4o", 7));
    let e = lookup(&card, "gpt-4o").unwrap();
    assert_eq!((e.source, e.price.input), (PriceSource::Admin, 7), "last admin entry wins");
    assert_eq!(lookup(&card, "openai/gpt-4o-2024-08-06").unwrap().price.input, 7);
    assert_eq!(lookup(&card, "gpt-4o-mini").unwrap().source, PriceSource::Default { as_of: "2025-10" });
    // The exact snapshot default is more specific than the admin's family entry.
    assert_eq!(lookup(&card, "gpt-4o-2024-05-13").unwrap().price.input, 5_000_000);
    // An admin entry for a model the card does not know.
    card.push(admin("llama3.2:3b", 0));
    assert_eq!(lookup(&card, "llama3.2:3b").unwrap().source, PriceSource::Admin);
    // Admin entry placed before the default still wins.
    let mut card = vec![admin("deepseek-chat", 9)];
    card.extend(default_rate_card());
    assert_eq!(lookup(&card, "deepseek/deepseek-chat").unwrap().price.input, 9);
}

#[test]
fn price_source_serializes_with_a_tag() {
    let e = &default_rate_card()[0];
    let json = serde_json::to_value(e).unwrap();
    assert_eq!(json["source"], serde_json::json!({"kind": "default", "as_of": "2025-10"}));
    assert_eq!(json["price"]["input"], 2_500_000);
    assert_eq!(serde_json::to_value(PriceSource::Admin).unwrap(), serde_json::json!({"kind": "admin"}));
}

#[test]
fn local_providers() {
    for url in [
        "http://localhost:11434",
        "http://localhost:11434/v1",
        "http://LOCALHOST:1234/v1/",
        "localhost:11434",
        "http://127.0.0.1:1234/v1",
        "http://127.1.2.3",
        "https://[::1]:8080/v1",
        "http://[::ffff:127.0.0.1]:11434",
        "http://0.0.0.0:11434",
        "http://mac-mini.local:11434/v1",
        "http://mac-mini.local.:11434",
        "http://ollama.localhost/v1",
        "http://user:pw@localhost:11434",
    ] {
        assert!(is_local_provider(url), "{url} should be local");
    }
    for url in [
        "https://api.openai.com/v1",
        "https://openrouter.ai/api/v1",
        "http://localhost.evil.example/v1",
        "http://evil.example/localhost",
        "http://evil.example/?h=127.0.0.1",
        "http://127.0.0.1.evil.example",
        "http://localhost@evil.example",
        "http://local",
        "http://notlocal",
        "http://192.168.1.20:11434",
        "http://128.0.0.1",
        "http://[::2]",
        "http://[::1",
        "",
        "http://",
    ] {
        assert!(!is_local_provider(url), "{url} should not be local");
    }
}
