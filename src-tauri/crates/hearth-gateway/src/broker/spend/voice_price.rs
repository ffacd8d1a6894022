//! What a voice reply costs: text-to-speech models are priced per million characters of the
//! text they speak, not per token. The characters are known before the call, so the
//! reservation is the exact cost — nothing is refunded at settle time.
//!
//! Lives beside `price.rs` (which holds the token and per-minute cards) and shares its lookup
//! rules through [`CardLine`]: the admin's price wins, names match across case, a provider
//! prefix and a dated snapshot.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::price::{CardLine, PriceSource};
use super::{MICROS_PER_USD, format_usd};

/// Characters in a million: prices are per million characters of text.
const CHARS_PER_PRICE_UNIT: u128 = 1_000_000;

/// The most an admin may enter per million characters, in micro-USD ($1,000): real prices are
/// $4–$30; anything near this is a typo.
pub const MAX_MICROS_PER_MCHAR: u64 = 1_000 * MICROS_PER_USD;

/// What a text-to-speech model charges per million characters of text, in integer micro-USD.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct VoicePrice {
    pub micros_per_mchar: u64,
}

impl VoicePrice {
    pub const ZERO: VoicePrice = VoicePrice { micros_per_mchar: 0 };

    /// What speaking `characters` costs, rounded up to the next micro-USD: also what the
    /// reservation sets aside, since the text is known before the call.
    pub fn cost_micros(&self, characters: u64) -> u64 {
        let exact = u128::from(characters) * u128::from(self.micros_per_mchar);
        u64::try_from(exact.div_ceil(CHARS_PER_PRICE_UNIT)).unwrap_or(u64::MAX)
    }
}

impl fmt::Display for VoicePrice {
    /// "$15.00 per million characters"
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} per million characters", format_usd(self.micros_per_mchar))
    }
}

/// One line of the text-to-speech rate card.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VoiceRateEntry {
    pub model: String,
    pub price: VoicePrice,
    pub source: PriceSource,
}

impl CardLine for VoiceRateEntry {
    fn model(&self) -> &str {
        &self.model
    }
    fn source(&self) -> PriceSource {
        self.source
    }
}

/// Shipped prices of OpenAI's text-to-speech models, micro-USD per million characters.
/// gpt-4o-mini-tts is priced per token of text and audio, not per character: it has no line
/// here, and an admin who uses it sets a per-character price that covers its audio.
#[rustfmt::skip]
const VOICE_DEFAULTS: &[(&str, u64, &str)] = &[
    // OpenAI — https://platform.openai.com/docs/pricing (speech generation, per 1M characters).
    ("tts-1",     15_000_000, "2025-11"),
    ("tts-1-hd",  30_000_000, "2025-11"),
];

/// The text-to-speech models Hearth ships a price for; `hearth price set MODEL
/// --usd-per-million-chars X` corrects or adds one.
pub fn default_voice_rate_card() -> Vec<VoiceRateEntry> {
    VOICE_DEFAULTS
        .iter()
        .map(|&(model, micros_per_mchar, as_of)| VoiceRateEntry {
            model: model.to_owned(),
            price: VoicePrice { micros_per_mchar },
            source: PriceSource::Default { as_of },
        })
        .collect()
}

/// The admin's per-character prices (as stored) ahead of the shipped defaults.
pub fn voice_rate_card(admin: &[(String, u64)]) -> Vec<VoiceRateEntry> {
    let mut card: Vec<VoiceRateEntry> = admin
        .iter()
        .map(|(model, micros)| VoiceRateEntry {
            model: model.clone(),
            price: VoicePrice { micros_per_mchar: *micros },
            source: PriceSource::Admin,
        })
        .collect();
    card.extend(default_voice_rate_card());
    card
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::spend::price::lookup;
    use proptest::prelude::*;

    #[test]
    fn tts_models_are_priced_per_character() {
        let tts = lookup(&default_voice_rate_card(), "tts-1").unwrap().price;
        assert_eq!(tts, VoicePrice { micros_per_mchar: 15_000_000 });
        // 1,000 characters at $15 per million: 1.5 cents.
        assert_eq!(tts.cost_micros(1_000), 15_000);
        assert_eq!(tts.cost_micros(1), 15);
        assert_eq!(lookup(&default_voice_rate_card(), "openai/TTS-1-HD").unwrap().price.micros_per_mchar, 30_000_000);
        assert!(lookup(&default_voice_rate_card(), "gpt-4o-mini-tts").is_none());
        assert!(lookup(&default_voice_rate_card(), "tts-1-mini").is_none(), "no match by prefix");
        assert_eq!(tts.to_string(), "$15.00 per million characters");
        // A price below a micro-USD per character still costs something, rounded up.
        assert_eq!(VoicePrice { micros_per_mchar: 1 }.cost_micros(1), 1);
        assert_eq!(VoicePrice::ZERO.cost_micros(4096), 0);
        assert_eq!(VoicePrice { micros_per_mchar: u64::MAX }.cost_micros(u64::MAX), u64::MAX);
    }

    #[test]
    fn the_admin_price_comes_first() {
        let card = voice_rate_card(&[("tts-1".into(), 12_000_000)]);
        assert_eq!(lookup(&card, "tts-1").unwrap().source, PriceSource::Admin);
        assert_eq!(lookup(&card, "tts-1").unwrap().price.micros_per_mchar, 12_000_000);
    }

    proptest! {
        #[test]
        fn cost_grows_with_the_text(price in 0u64..=MAX_MICROS_PER_MCHAR, chars in 0u64..=10_000) {
            let p = VoicePrice { micros_per_mchar: price };
            prop_assert!(p.cost_micros(chars) <= p.cost_micros(chars + 1));
            // Never below the exact cost.
            prop_assert!(u128::from(p.cost_micros(chars)) * 1_000_000 >= u128::from(chars) * u128::from(price));
        }
    }
}
