//! Voice replies through the broker: an answer's text becomes Ogg Opus audio for Telegram's
//! `sendVoice`.
//!
//! Speaking is paid for like any call (`metered.rs`): the text's characters at the model's price
//! per million characters are reserved against every cap before the call — the same lock as a
//! completion's, so no number of concurrent replies overshoots a cap — the service is called with
//! retries, and the cost is settled in a ledger row of kind `speech_out` that records the
//! characters. A service on this machine (`is_local_provider`) costs nothing, like speech in.
//!
//! Which service: the one the admin set (`hearth provider voice`), else — when the chat provider
//! is of kind openai — the chat provider's own address and key with `tts-1` and the voice
//! `alloy`, else none. The admin may also turn voice replies off for everyone. The service speaks
//! OpenAI's `POST {base}/audio/speech` (`hearth_llm::speak`). Its key is a secret like the chat
//! key, under [`VOICE_KEY`].
//!
//! Every failure here is the caller's cue to answer in text instead: a member never misses an
//! answer because their voice reply could not be made. [`SpeakError`] says why, for the log.

use hearth_llm::{ApiKey, LlmError};
use hearth_proto::control::{SpeechSource, VoiceSummary};
use hearth_proto::llm::{BrokerError, BrokerErrorKind};

use super::Broker;
use super::metered::{Metered, Pricing, Unreserved, card_price, stored_prices};
use super::spend::{VoicePrice, VoiceRateEntry, voice_price};
use crate::store::{self, LedgerKind, Store, StoreError};

/// Where the voice service's key is kept among the secrets (the chat key is `provider/default`).
pub const VOICE_KEY: &str = "provider/voice";
/// The model used with the chat provider's own service when the admin set none.
pub const DEFAULT_VOICE_MODEL: &str = "tts-1";
/// The voice used when the admin named none.
pub const DEFAULT_VOICE: &str = "alloy";
/// The most text one voice reply speaks: OpenAI's `/audio/speech` takes up to 4096 characters.
/// A longer answer is sent as text.
pub const MAX_SPOKEN_CHARS: usize = 4096;

pub(crate) const SETTING_VOICE_URL: &str = "voice.base_url";
pub(crate) const SETTING_VOICE_MODEL: &str = "voice.model";
pub(crate) const SETTING_VOICE_VOICE: &str = "voice.voice";
/// "1" when the admin turned voice replies off.
pub(crate) const SETTING_VOICE_OFF: &str = "voice.off";
/// `price.per_mchar.<model>` → the admin's price for that text-to-speech model, micro-USD per
/// million characters.
pub(crate) const SETTING_VOICE_PRICE_PREFIX: &str = "price.per_mchar.";

/// What the admin chose for voice replies.
#[derive(Clone, Debug, Default)]
pub enum VoiceSetting {
    /// Nothing chosen: the chat provider's own service if it is of kind openai.
    #[default]
    Default,
    /// Turned off: every answer is text.
    Off,
    /// A service of its own.
    Own(VoiceEndpoint),
}

/// One text-to-speech service: where, which model and voice, and the key (if it needs one).
#[derive(Clone)]
pub struct VoiceEndpoint {
    pub base_url: String,
    pub model: String,
    pub voice: String,
    pub api_key: Option<ApiKey>,
}

impl VoiceEndpoint {
    /// The service as `hearth_llm` calls it.
    pub fn service(&self) -> hearth_llm::SpeechService {
        hearth_llm::SpeechService {
            base_url: self.base_url.clone(),
            api_key: self.api_key.clone(),
            model: self.model.clone(),
        }
    }
}

impl std::fmt::Debug for VoiceEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VoiceEndpoint")
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("voice", &self.voice)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Why an answer could not be spoken. The caller sends it as text instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpeakError {
    /// No voice service: none set, the chat provider offers none, or the admin turned it off.
    #[error("no voice-reply service is set")]
    NoService,
    /// Nothing to say, or more than the service takes in one call.
    #[error("the text is empty or longer than {MAX_SPOKEN_CHARS} characters ({0})")]
    Unfit(usize),
    /// A cap would be exceeded, or the model has no price while caps are in force; nothing was
    /// called.
    #[error("{0}")]
    Capped(BrokerError),
    /// The service will not do it (401/403: the key; 404: no such model or endpoint; 400: it
    /// refused the text or the voice).
    #[error("the voice service refused the request (HTTP {status})")]
    Refused { status: u16 },
    /// The settings cannot work: a redirect, an answer that is not audio, an unusable address.
    #[error("the voice service settings do not work: {0}")]
    Misconfigured(String),
    /// The service kept failing (429, 5xx, network, time limits) after retries.
    #[error("the voice service could not be reached or kept failing")]
    Unavailable,
}

impl SpeakError {
    /// A short word for the log and the inbox row's outcome.
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::NoService => "voice_none",
            Self::Unfit(_) => "voice_unfit",
            Self::Capped(_) => "voice_capped",
            Self::Refused { .. } => "voice_refused",
            Self::Misconfigured(_) => "voice_misconfigured",
            Self::Unavailable => "voice_unavailable",
        }
    }
}

/// What a failed call means.
fn classify(e: &LlmError) -> SpeakError {
    match e {
        LlmError::Status { .. } if e.is_retryable() => SpeakError::Unavailable,
        LlmError::Status { status, .. } => SpeakError::Refused { status: *status },
        LlmError::Timeout { .. } | LlmError::Network(_) => SpeakError::Unavailable,
        LlmError::Malformed(_) | LlmError::Config(_) | LlmError::Redirected { .. } => {
            SpeakError::Misconfigured(e.to_string().chars().take(200).collect())
        }
    }
}

/// The per-character price of `model` at `base_url`: the admin's wins; a service on this
/// machine costs nothing; otherwise the shipped default, if any.
pub fn voice_price_for(card: &[VoiceRateEntry], base_url: &str, model: &str) -> Option<VoicePrice> {
    card_price(card, base_url, model, VoicePrice::ZERO, |e| e.price)
}

/// The admin's per-character prices from the settings: (model, micro-USD per million chars).
pub fn stored_voice_prices(conn: &rusqlite::Connection) -> Result<Vec<(String, u64)>, StoreError> {
    stored_prices(conn, SETTING_VOICE_PRICE_PREFIX)
}

/// The voice setting as stored, with its key (the secret [`VOICE_KEY`], which the caller reads:
/// the broker is below the secrets).
pub async fn load_setting(store: &Store, key: Option<String>) -> Result<VoiceSetting, StoreError> {
    let (off, url, model, voice) = store
        .call(|c| {
            Ok((
                store::get_setting(c, SETTING_VOICE_OFF)?,
                store::get_setting(c, SETTING_VOICE_URL)?,
                store::get_setting(c, SETTING_VOICE_MODEL)?,
                store::get_setting(c, SETTING_VOICE_VOICE)?,
            ))
        })
        .await?;
    Ok(match (off.as_deref(), url, model) {
        (Some("1"), _, _) => VoiceSetting::Off,
        (_, Some(base_url), Some(model)) => VoiceSetting::Own(VoiceEndpoint {
            base_url,
            model,
            voice: voice.unwrap_or_else(|| DEFAULT_VOICE.to_owned()),
            api_key: key.filter(|k| !k.is_empty()).map(ApiKey::new),
        }),
        _ => VoiceSetting::Default,
    })
}

impl Broker {
    /// The admin's voice-reply choice (stored by the caller).
    pub fn set_voice(&self, setting: VoiceSetting) {
        *self.inner.voice.write() = setting;
    }

    /// The service voice replies go to now, and why that one.
    pub fn voice_service(&self) -> (Option<VoiceEndpoint>, SpeechSource) {
        match &*self.inner.voice.read() {
            VoiceSetting::Off => (None, SpeechSource::Off),
            VoiceSetting::Own(e) => (Some(e.clone()), SpeechSource::Own),
            VoiceSetting::Default => match self.openai_chat_service() {
                Some((base_url, api_key)) => (
                    Some(VoiceEndpoint {
                        base_url,
                        model: DEFAULT_VOICE_MODEL.to_owned(),
                        voice: DEFAULT_VOICE.to_owned(),
                        api_key,
                    }),
                    SpeechSource::ChatProvider,
                ),
                None => (None, SpeechSource::None),
            },
        }
    }

    /// The voice service as the admin sees it (never the key).
    pub fn voice_summary(&self) -> VoiceSummary {
        let (endpoint, source) = self.voice_service();
        VoiceSummary {
            source,
            base_url: endpoint.as_ref().map(|e| e.base_url.clone()),
            model: endpoint.as_ref().map(|e| e.model.clone()),
            voice: endpoint.map(|e| e.voice),
        }
    }

    /// The per-character price the broker would charge for `model` at `base_url`, if known.
    pub fn voice_price_of(&self, base_url: &str, model: &str) -> Option<VoicePrice> {
        self.spend(|s| voice_price_for(&s.voice_rate_card, base_url, model))
    }

    /// The admin's per-character prices (as stored), ahead of the shipped defaults.
    pub fn set_admin_voice_prices(&self, admin: &[(String, u64)]) {
        self.inner.spend.lock().voice_rate_card = voice_price::voice_rate_card(admin);
    }

    /// `text` spoken by the voice service in force, as Ogg Opus, for `member_id` answering in
    /// `chat_id`: reserved, called with retries, settled as a `speech_out` ledger row.
    pub async fn speak(&self, member_id: &str, chat_id: i64, text: &str) -> Result<Vec<u8>, SpeakError> {
        let characters = text.chars().count();
        if text.trim().is_empty() || characters > MAX_SPOKEN_CHARS {
            return Err(SpeakError::Unfit(characters));
        }
        let (Some(endpoint), _) = self.voice_service() else {
            return Err(SpeakError::NoService);
        };
        let chars = characters as u64;
        let call = Metered {
            member_id,
            chat_id: Some(chat_id),
            model: &endpoint.model,
            kind: LedgerKind::SpeechOut,
            audio_seconds: 0,
            characters: chars,
            report_cap_hits: false,
        };
        let pricing = Pricing {
            price_of: &|s| voice_price_for(&s.voice_rate_card, &endpoint.base_url, &endpoint.model),
            free: VoicePrice::ZERO,
            reserve: &|p| p.cost_micros(chars),
            cost: &|p| p.cost_micros(chars),
            no_price: &|| no_voice_price(&endpoint.model),
        };
        let service = endpoint.service();
        let result = self
            .metered(&call, pricing, "speaking", || {
                hearth_llm::speak(&self.inner.http, &service, text, &endpoint.voice, &self.inner.limits)
            })
            .await
            .map_err(|e| match e {
                Unreserved::Capped(e) => SpeakError::Capped(e),
                Unreserved::Ledger => SpeakError::Unavailable,
            })?;
        result.map_err(|e| {
            tracing::warn!(member = member_id, model = %endpoint.model, error = %e, "speaking a reply failed");
            classify(&e)
        })
    }
}

/// The refusal for a text-to-speech model without a price while caps are in force.
fn no_voice_price(model: &str) -> BrokerError {
    BrokerError {
        message: format!(
            "voice model {model} has no price, so spend caps cannot be kept; set one with \
             `hearth price set {model} --usd-per-million-chars X`"
        ),
        kind: BrokerErrorKind::NoPrice { model: model.to_owned() },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(status: u16) -> LlmError {
        LlmError::Status { status, retry_after: None, message: "no".into() }
    }

    #[test]
    fn failures_are_told_apart() {
        assert_eq!(classify(&status(401)), SpeakError::Refused { status: 401 });
        assert_eq!(classify(&status(404)), SpeakError::Refused { status: 404 });
        assert_eq!(classify(&status(400)), SpeakError::Refused { status: 400 });
        assert_eq!(classify(&status(503)), SpeakError::Unavailable);
        assert_eq!(classify(&status(429)), SpeakError::Unavailable);
        assert_eq!(classify(&LlmError::Network("refused".into())), SpeakError::Unavailable);
        assert!(matches!(classify(&LlmError::Malformed("json".into())), SpeakError::Misconfigured(_)));
        assert_eq!(SpeakError::Unfit(5000).outcome(), "voice_unfit");
    }

    #[test]
    fn local_voices_are_free_and_admin_prices_win() {
        let card = voice_price::voice_rate_card(&[("tts-1".into(), 9_000_000)]);
        assert_eq!(voice_price_for(&card, "https://api.openai.com/v1", "tts-1").unwrap().micros_per_mchar, 9_000_000);
        assert_eq!(voice_price_for(&card, "http://localhost:8880/v1", "kokoro"), Some(VoicePrice::ZERO));
        assert_eq!(
            voice_price_for(&card, "https://api.openai.com/v1", "tts-1-hd").unwrap().micros_per_mchar,
            30_000_000
        );
        assert_eq!(voice_price_for(&card, "https://x.example/v1", "unknown-tts"), None);
    }

    #[test]
    fn the_key_never_shows_in_debug() {
        let e = VoiceEndpoint {
            base_url: "u".into(),
            model: "m".into(),
            voice: "nova".into(),
            api_key: Some(ApiKey::new("sk-SECRET")),
        };
        let s = format!("{e:?} {:?}", VoiceSetting::Own(e.clone()));
        assert!(!s.contains("SECRET") && s.contains("redacted"), "{s}");
    }
}
