//! The rate card: what a model charges per million input, output, cached-input and cache-write
//! tokens, in integer micro-USD, and how a model name a provider reports is matched to a card
//! entry.
//!
//! Costs round *up* to the next micro-USD, so rounding can never let spend slip past a cap, and
//! the worst case for a call is never less than what any real usage within its bounds costs.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use hearth_proto::llm::Usage;
use serde::{Deserialize, Serialize};

use super::{MICROS_PER_USD, format_usd};

/// The most an admin may enter, in USD per million tokens. Real prices are below $200; anything
/// near this is almost certainly a price per token or per thousand tokens typed by mistake.
pub const MAX_USD_PER_MTOK: f64 = 10_000.0;

/// Tokens in the unit prices are quoted for.
const TOKENS_PER_MTOK: u128 = 1_000_000;

/// What one model charges, in micro-USD per million tokens. Integers so that costs add up
/// exactly and the same usage always costs the same.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Price {
    /// Prompt tokens billed at the full price.
    pub input: u64,
    /// Generated tokens (reasoning tokens included — providers bill them as output).
    pub output: u64,
    /// Prompt tokens the provider served from its cache.
    pub cached_input: u64,
    /// Prompt tokens written into the provider's prompt cache (Anthropic's cache writes; other
    /// providers report none). Unless the admin set it: [`default_cache_write`] of the input price.
    pub cache_write: u64,
}

/// What a cache write costs when nobody said: Anthropic's five-minute cache writes, 1.25 × the
/// input price, rounded up.
pub fn default_cache_write(input: u64) -> u64 {
    input.saturating_mul(5).div_ceil(4)
}

/// Why a price an admin entered was not accepted. The message says what to type instead.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PriceError {
    #[error("the {field} price is not a number; enter USD per million tokens, like 2.5")]
    NotANumber { field: &'static str },
    #[error("the {field} price {value} is negative; enter USD per million tokens, zero or more")]
    Negative { field: &'static str, value: f64 },
    #[error(
        "the {field} price {value} USD per million tokens is above the limit of {max}; \
         prices are per million tokens, not per token or per thousand",
        max = MAX_USD_PER_MTOK
    )]
    TooHigh { field: &'static str, value: f64 },
}

impl Price {
    /// A model that costs nothing (local models).
    pub const ZERO: Price = Price { input: 0, output: 0, cached_input: 0, cache_write: 0 };

    /// Builds a price from what an admin typed, in USD per million tokens. The cached-input price
    /// defaults to the input price (without a number for it, assume no discount), the
    /// cache-write price to [`default_cache_write`].
    pub fn from_usd_per_mtok(
        input: f64,
        output: f64,
        cached_input: Option<f64>,
        cache_write: Option<f64>,
    ) -> Result<Price, PriceError> {
        let input = usd_to_micros("input", input)?;
        Ok(Price {
            input,
            output: usd_to_micros("output", output)?,
            cached_input: match cached_input {
                Some(c) => usd_to_micros("cached input", c)?,
                None => input,
            },
            cache_write: match cache_write {
                Some(c) => usd_to_micros("cache write", c)?,
                None => default_cache_write(input),
            },
        })
    }

    /// The price for a provider that never writes to a prompt cache it charges for (every kind
    /// but Anthropic: OpenAI caches by itself at no extra cost): cache writes at the input
    /// price, so they never raise a reservation.
    pub fn without_cache_writes(self) -> Price {
        Price { cache_write: self.input, ..self }
    }

    /// What a call with this usage costs: each kind of token at its price, summed exactly and
    /// rounded up once to the next micro-USD. Saturates at `u64::MAX` instead of overflowing.
    pub fn cost_micros(&self, usage: &Usage) -> u64 {
        let sum = mul(usage.input_tokens, self.input)
            .saturating_add(mul(usage.cached_input_tokens, self.cached_input))
            .saturating_add(mul(usage.cache_write_tokens, self.cache_write))
            .saturating_add(mul(usage.output_tokens, self.output));
        to_micros(sum)
    }

    /// The most a call can cost with a prompt of `prompt_tokens` and at most `max_output_tokens`
    /// generated: as if nothing were read from a cache and every prompt token were written to
    /// one — each at the highest of the input, cached-input and cache-write prices — and every
    /// output token at the output price. Never less than [`Price::cost_micros`] for any usage
    /// with `input + cached_input + cache_write <= prompt_tokens` and `output <= max_output_tokens`.
    pub fn worst_case_micros(&self, prompt_tokens: u64, max_output_tokens: u64) -> u64 {
        let prompt_price = self.input.max(self.cached_input).max(self.cache_write);
        to_micros(mul(prompt_tokens, prompt_price).saturating_add(mul(max_output_tokens, self.output)))
    }

    /// (input, output, cached input, cache write) in USD per million tokens, for display.
    pub fn usd(&self) -> (f64, f64, f64, f64) {
        let usd = |m: u64| m as f64 / MICROS_PER_USD as f64;
        (usd(self.input), usd(self.output), usd(self.cached_input), usd(self.cache_write))
    }
}

impl fmt::Display for Price {
    /// "input $2.50, output $10.00, cached input $1.25 per million tokens"; the cache-write
    /// price too when it is not the default.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "input {}, output {}, cached input {}", format_usd(self.input), format_usd(self.output), format_usd(self.cached_input))?;
        if self.cache_write != default_cache_write(self.input) {
            write!(f, ", cache write {}", format_usd(self.cache_write))?;
        }
        f.write_str(" per million tokens")
    }
}

fn usd_to_micros(field: &'static str, usd: f64) -> Result<u64, PriceError> {
    if usd.is_nan() {
        return Err(PriceError::NotANumber { field });
    }
    if usd < 0.0 {
        return Err(PriceError::Negative { field, value: usd });
    }
    if usd > MAX_USD_PER_MTOK {
        return Err(PriceError::TooHigh { field, value: usd });
    }
    // Rounded to the nearest micro-USD per Mtok: 0.075 * 1e6 is 75000.00000000001 in binary.
    Ok((usd * MICROS_PER_USD as f64).round() as u64)
}

/// tokens × micro-USD per Mtok; cannot overflow (`(2^64-1)^2 < 2^128`).
fn mul(tokens: u64, price_per_mtok: u64) -> u128 {
    tokens as u128 * price_per_mtok as u128
}

fn to_micros(micro_usd_times_mtok: u128) -> u64 {
    u64::try_from(micro_usd_times_mtok.div_ceil(TOKENS_PER_MTOK)).unwrap_or(u64::MAX)
}

/// One line of the rate card.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RateCardEntry {
    /// The model name as the admin typed it or as shipped ("gpt-4o-mini"); matched by [`lookup`].
    pub model: String,
    pub price: Price,
    pub source: PriceSource,
}

/// Where a price came from, so `hearth price list` can say which prices are shipped guesses
/// that may be stale and which the admin set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PriceSource {
    /// Shipped with Hearth; `as_of` is the month ("2025-10") the list price was taken.
    Default { as_of: &'static str },
    /// Set by the admin with `hearth price set`; wins over a default for the same model.
    Admin,
}

/// Shipped list prices: (model, input, output, cached input) in micro-USD per Mtok, as of.
#[rustfmt::skip]
const DEFAULTS: &[(&str, u64, u64, u64, &str)] = &[
    // OpenAI — https://openai.com/api/pricing (standard tier).
    ("gpt-4o",               2_500_000, 10_000_000, 1_250_000, "2025-10"),
    // The first gpt-4o snapshot kept its launch price; an exact entry so it is not priced as gpt-4o.
    ("gpt-4o-2024-05-13",    5_000_000, 15_000_000, 5_000_000, "2025-10"),
    ("gpt-4o-mini",            150_000,    600_000,    75_000, "2025-10"),
    ("gpt-4.1",              2_000_000,  8_000_000,   500_000, "2025-10"),
    ("gpt-4.1-mini",           400_000,  1_600_000,   100_000, "2025-10"),
    ("gpt-4.1-nano",           100_000,    400_000,    25_000, "2025-10"),
    ("o3",                   2_000_000,  8_000_000,   500_000, "2025-10"),
    ("o4-mini",              1_100_000,  4_400_000,   275_000, "2025-10"),
    ("gpt-5",                1_250_000, 10_000_000,   125_000, "2025-10"),
    ("gpt-5-mini",             250_000,  2_000_000,    25_000, "2025-10"),
    ("gpt-5-nano",              50_000,    400_000,     5_000, "2025-10"),
    // Anthropic — https://www.anthropic.com/pricing (cached input = cache read; prompts up to
    // 200k tokens: Sonnet's long-context rate is higher and not modelled here).
    ("claude-opus-4-1",     15_000_000, 75_000_000, 1_500_000, "2025-10"),
    ("claude-opus-4",       15_000_000, 75_000_000, 1_500_000, "2025-10"),
    ("claude-sonnet-4-5",    3_000_000, 15_000_000,   300_000, "2025-10"),
    ("claude-sonnet-4",      3_000_000, 15_000_000,   300_000, "2025-10"),
    ("claude-3-7-sonnet",    3_000_000, 15_000_000,   300_000, "2025-10"),
    ("claude-haiku-4-5",     1_000_000,  5_000_000,   100_000, "2025-10"),
    ("claude-3-5-haiku",       800_000,  4_000_000,    80_000, "2025-10"),
    // DeepSeek — https://api-docs.deepseek.com/quick_start/pricing (V3.2; cached = cache hit).
    ("deepseek-chat",          280_000,    420_000,    28_000, "2025-10"),
    ("deepseek-reasoner",      280_000,    420_000,    28_000, "2025-10"),
    // Google — https://ai.google.dev/gemini-api/docs/pricing (paid tier, text; Pro up to 200k
    // prompt tokens).
    ("gemini-2.5-pro",       1_250_000, 10_000_000,   310_000, "2025-10"),
    ("gemini-2.5-flash",       300_000,  2_500_000,    75_000, "2025-10"),
    ("gemini-2.5-flash-lite",  100_000,    400_000,    25_000, "2025-10"),
];

/// The prices Hearth ships with: widely used models at their public list prices, each marked
/// with the month the price was taken. Providers change prices and these may be stale or wrong
/// the day you read them: the admin can and should correct them with `hearth price set MODEL
/// ...`, which adds an [`PriceSource::Admin`] entry that wins over the default.
///
/// Cache writes cost [`default_cache_write`] (Anthropic's five-minute cache). Not modelled:
/// long-context surcharges (Claude Sonnet and Gemini Pro above 200k prompt tokens), the one-hour
/// cache, batch discounts, audio/image tokens. An admin who wants the cap math to
/// cover long prompts should set the higher tier's prices.
pub fn default_rate_card() -> Vec<RateCardEntry> {
    DEFAULTS
        .iter()
        .map(|&(model, input, output, cached_input, as_of)| RateCardEntry {
            model: model.to_owned(),
            price: Price { input, output, cached_input, cache_write: default_cache_write(input) },
            source: PriceSource::Default { as_of },
        })
        .collect()
}

/// The least audio a transcription is billed for, in seconds. Groq bills every request as at
/// least 10 seconds; OpenAI bills by the second. Charging everyone the larger keeps the ledger at
/// or above any bill (a 3-second note costs a few millionths of a dollar more than it might).
pub const MIN_BILLED_AUDIO_SECS: u64 = 10;

/// The most an admin may enter per minute of audio, in micro-USD ($10): real prices are below a
/// cent; anything near this is a typo.
pub const MAX_MICROS_PER_MINUTE: u64 = 10 * MICROS_PER_USD;

/// What a speech-recognition model charges per minute of audio, in integer micro-USD.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AudioPrice {
    pub micros_per_minute: u64,
}

impl AudioPrice {
    pub const ZERO: AudioPrice = AudioPrice { micros_per_minute: 0 };

    /// The seconds a transcription of `duration_secs` is billed for.
    pub fn billed_secs(duration_secs: u64) -> u64 {
        duration_secs.max(MIN_BILLED_AUDIO_SECS)
    }

    /// What the reservation sets aside: every started minute at the full price, so a member with
    /// $0.01 left cannot start a 10-minute transcription at $0.006 a minute.
    pub fn worst_case_micros(&self, duration_secs: u64) -> u64 {
        Self::billed_secs(duration_secs).div_ceil(60).saturating_mul(self.micros_per_minute)
    }

    /// What the transcription cost: the billed seconds at the per-minute price, rounded up once
    /// to the next micro-USD. Never more than [`AudioPrice::worst_case_micros`].
    pub fn cost_micros(&self, duration_secs: u64) -> u64 {
        let exact = Self::billed_secs(duration_secs) as u128 * self.micros_per_minute as u128;
        u64::try_from(exact.div_ceil(60)).unwrap_or(u64::MAX)
    }
}

impl fmt::Display for AudioPrice {
    /// "$0.006 per minute of audio"
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} per minute of audio", format_usd(self.micros_per_minute))
    }
}

/// One line of the speech rate card.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AudioRateEntry {
    pub model: String,
    pub price: AudioPrice,
    pub source: PriceSource,
}

/// Shipped per-minute prices of the common speech-recognition models, in micro-USD per minute.
/// Groq quotes per hour: $0.111/h and $0.04/h, rounded up to the micro-USD per minute.
#[rustfmt::skip]
const AUDIO_DEFAULTS: &[(&str, u64, &str)] = &[
    // OpenAI — https://openai.com/api/pricing (transcription).
    ("whisper-1",                 6_000, "2025-10"),
    ("gpt-4o-transcribe",         6_000, "2025-10"),
    ("gpt-4o-mini-transcribe",    3_000, "2025-10"),
    // Groq — https://groq.com/pricing ($0.111 and $0.04 per hour of audio).
    ("whisper-large-v3",          1_850, "2025-10"),
    ("whisper-large-v3-turbo",      667, "2025-10"),
];

/// The speech models Hearth ships a price for; `hearth price set MODEL --usd-per-minute X`
/// corrects or adds one.
pub fn default_audio_rate_card() -> Vec<AudioRateEntry> {
    AUDIO_DEFAULTS
        .iter()
        .map(|&(model, micros_per_minute, as_of)| AudioRateEntry {
            model: model.to_owned(),
            price: AudioPrice { micros_per_minute },
            source: PriceSource::Default { as_of },
        })
        .collect()
}

/// A line of either rate card, for [`lookup`]'s rules.
pub trait CardLine {
    fn model(&self) -> &str;
    fn source(&self) -> PriceSource;
}

impl CardLine for RateCardEntry {
    fn model(&self) -> &str {
        &self.model
    }
    fn source(&self) -> PriceSource {
        self.source
    }
}

impl CardLine for AudioRateEntry {
    fn model(&self) -> &str {
        &self.model
    }
    fn source(&self) -> PriceSource {
        self.source
    }
}

/// Whether two model names are the same model as [`lookup`] compares them (case, '.' for '-').
pub fn same_model(a: &str, b: &str) -> bool {
    same_name(a, b)
}

/// Finds the price for a model name as a provider or the admin spells it. Tried in order, the
/// first step that matches wins:
/// 1. the name itself;
/// 2. without a provider prefix ("openai/gpt-4o-mini", "anthropic/claude-sonnet-4.5" as
///    OpenRouter names them — everything up to the last '/');
/// 3. then without a dated snapshot suffix ("-2024-07-18", "-20250929") or "-latest".
///
/// Names compare case-insensitively with '.' and '-' treated alike (OpenRouter's
/// "claude-sonnet-4.5" is Anthropic's "claude-sonnet-4-5"). Within a step an
/// [`PriceSource::Admin`] entry wins over a default (the last admin entry, if there are several).
/// A name never matches a different model by prefix: "gpt-4o" does not price "gpt-4o-mini".
pub fn lookup<'a, E: CardLine>(entries: &'a [E], model: &str) -> Option<&'a E> {
    let name = model.trim();
    if name.is_empty() {
        return None;
    }
    let bare = strip_provider(name);
    let candidates = [name, bare, strip_snapshot(bare)];
    candidates.iter().find_map(|c| best_match(entries, c))
}

fn best_match<'a, E: CardLine>(entries: &'a [E], name: &str) -> Option<&'a E> {
    let mut found = None;
    for e in entries.iter().filter(|e| same_name(e.model(), name)) {
        match (found.map(|f: &E| f.source()), e.source()) {
            (None, _) | (Some(_), PriceSource::Admin) => found = Some(e),
            (Some(_), PriceSource::Default { .. }) => {}
        }
    }
    found
}

fn same_name(a: &str, b: &str) -> bool {
    let norm = |c: u8| if c == b'.' { b'-' } else { c.to_ascii_lowercase() };
    let (a, b) = (a.trim().as_bytes(), b.trim().as_bytes());
    a.len() == b.len() && a.iter().zip(b).all(|(&x, &y)| norm(x) == norm(y))
}

fn strip_provider(name: &str) -> &str {
    match name.rsplit_once('/') {
        Some((_, rest)) if !rest.is_empty() => rest,
        _ => name,
    }
}

/// "gpt-4o-mini-2024-07-18" → "gpt-4o-mini", "claude-sonnet-4-5-20250929" → "claude-sonnet-4-5",
/// "claude-3-5-haiku-latest" → "claude-3-5-haiku"; anything else unchanged.
fn strip_snapshot(name: &str) -> &str {
    let b = name.as_bytes();
    let digits = |s: &[u8]| !s.is_empty() && s.iter().all(u8::is_ascii_digit);
    let n = b.len();
    if n > 7 && name[n - 7..].eq_ignore_ascii_case("-latest") {
        return &name[..n - 7];
    }
    // -YYYY-MM-DD
    if n > 11
        && b[n - 11] == b'-'
        && digits(&b[n - 10..n - 6])
        && b[n - 6] == b'-'
        && digits(&b[n - 5..n - 3])
        && b[n - 3] == b'-'
        && digits(&b[n - 2..])
    {
        return &name[..n - 11];
    }
    // -YYYYMMDD
    if n > 9 && b[n - 9] == b'-' && digits(&b[n - 8..]) {
        return &name[..n - 9];
    }
    name
}

/// Whether a provider's base URL points at this machine or the local network by name: models
/// there (Ollama, LM Studio) cost nothing. True for `localhost` (and `*.localhost`), `*.local`
/// (mDNS names on the home network), 127.0.0.0/8, `::1`, IPv4-mapped loopback, and the
/// unspecified addresses 0.0.0.0 / `::` (which dial this machine — Ollama prints them). Anything
/// else, including other private addresses, is priced: a LAN box may be a paid proxy.
pub fn is_local_provider(base_url: &str) -> bool {
    let s = base_url.trim();
    let rest = match s.find("://") {
        Some(i) => &s[i + 3..],
        None => s,
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        match v6.split_once(']') {
            Some((h, _)) => h,
            None => return false,
        }
    } else {
        host_port.split(':').next().unwrap_or("")
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    if host.is_empty() {
        return false;
    }
    if host == "localhost" || host.ends_with(".localhost") || host.ends_with(".local") {
        return true;
    }
    if let Ok(v4) = host.parse::<Ipv4Addr>() {
        return v4.is_loopback() || v4.is_unspecified();
    }
    if let Ok(v6) = host.parse::<Ipv6Addr>() {
        return v6.is_loopback() || v6.is_unspecified() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback());
    }
    false
}

#[cfg(test)]
mod tests;
