//! Speech recognition through the broker: a voice note's audio becomes the turn's text.
//!
//! A transcription is paid for like a completion and goes through the same three steps: reserve
//! the worst case against every cap that applies (the audio's length as Telegram reported it,
//! every started minute at the model's per-minute price), call the service with retries, then
//! settle what it cost (the billed seconds, never more than was reserved) in a ledger row of kind
//! `speech_in` that records the audio's seconds. The reservation happens under the same lock as
//! a completion's, so no number of concurrent voice notes and chats can overshoot a cap.
//!
//! Which service: the one the admin set (`hearth provider speech`), else — when the chat
//! provider is of kind openai — the chat provider's own address and key with `whisper-1`, else
//! none. The admin may also turn it off. The service speaks OpenAI's
//! `POST {base}/audio/transcriptions` (OpenAI, Groq, whisper.cpp's server, faster-whisper-server).
//! Its key is a secret like the chat key (`secrets.rs`, under [`SPEECH_KEY`]).
//!
//! A member is never told what went wrong in technical terms: [`TranscribeError::member_sentence`]
//! is what they read, and [`TranscribeError::admin_hint`] what the admin is told (once) to fix.

use hearth_llm::{ApiKey, LlmError};
use hearth_proto::control::{SpeechSource, SpeechSummary};
use hearth_proto::llm::{BrokerError, BrokerErrorKind};

use super::Broker;
use super::metered::{Metered, Pricing, Unreserved, card_price, stored_prices};
use super::spend::PriceSource;
use super::spend::price::{self, AudioPrice, AudioRateEntry};
use crate::store::{self, LedgerKind, Store, StoreError};

/// Where the speech service's key is kept among the secrets (the chat key is `provider/default`).
pub const SPEECH_KEY: &str = "provider/speech";
/// The model used with the chat provider's own service when the admin set none.
pub const DEFAULT_SPEECH_MODEL: &str = "whisper-1";

pub(crate) const SETTING_SPEECH_URL: &str = "speech.base_url";
pub(crate) const SETTING_SPEECH_MODEL: &str = "speech.model";
/// "1" when the admin turned speech recognition off.
pub(crate) const SETTING_SPEECH_OFF: &str = "speech.off";
/// `price.per_minute.<model>` → the admin's price for that speech model, micro-USD per minute.
pub(crate) const SETTING_AUDIO_PRICE_PREFIX: &str = "price.per_minute.";
/// `model.no_vision.<model>` → "1": the admin marked the model as unable to see images.
pub(crate) const SETTING_NO_VISION_PREFIX: &str = "model.no_vision.";

/// What the admin chose for speech recognition.
#[derive(Clone, Debug, Default)]
pub enum SpeechSetting {
    /// Nothing chosen: the chat provider's own service if it is of kind openai.
    #[default]
    Default,
    /// Turned off.
    Off,
    /// A service of its own.
    Own(SpeechEndpoint),
}

/// One speech-recognition service: where, which model, and the key (if it needs one).
#[derive(Clone)]
pub struct SpeechEndpoint {
    pub base_url: String,
    pub model: String,
    pub api_key: Option<ApiKey>,
}

impl std::fmt::Debug for SpeechEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpeechEndpoint")
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Why a voice note could not be turned into text. The caller tells the member
/// [`member_sentence`](Self::member_sentence) and, when there is one, the admin
/// [`admin_hint`](Self::admin_hint).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TranscribeError {
    /// No speech service: none set, the chat provider offers none, or the admin turned it off.
    #[error("no speech recognition service is set")]
    NoService,
    /// The service will not do it (401/403: the key; 404/405: no such model or endpoint): the
    /// admin must fix the settings.
    #[error("the speech service refused the request (HTTP {status})")]
    Refused { status: u16 },
    /// The settings cannot work: the service answered with a redirect or not in the API's
    /// format, or the address or key is unusable.
    #[error("the speech service settings do not work: {0}")]
    Misconfigured(String),
    /// A cap would be exceeded (`CapExceeded`), or the speech model has no price while caps are
    /// in force (`NoPrice`) — refused exactly as a completion would be; nothing was called.
    #[error("{0}")]
    Capped(BrokerError),
    /// The service kept failing (429, 5xx, network, time limits) after retries.
    #[error("the speech service could not be reached or kept failing")]
    Unavailable,
    /// The service could not read the audio (400, 413, 415, 422): a corrupt or unusual file.
    #[error("the speech service could not read the audio (HTTP {status})")]
    Unreadable { status: u16 },
    /// There was nothing to hear: no bytes, or the service heard no words.
    #[error("the audio is empty or nothing could be heard in it")]
    Empty,
}

impl TranscribeError {
    /// What the member reads: kind, plain, no technical detail.
    pub fn member_sentence(&self) -> String {
        match self {
            Self::NoService | Self::Refused { .. } | Self::Misconfigured(_) => {
                "I can't listen to voice messages yet — whoever runs Hearth at home needs to set up speech \
                 recognition. Could you type it?"
                    .to_owned()
            }
            Self::Capped(e) => match &e.kind {
                BrokerErrorKind::NoPrice { .. } => "I can't listen to voice messages yet: whoever runs Hearth at \
                                                    home needs to set a price for speech recognition first, so I \
                                                    can keep within your allowance. Could you type it?"
                    .to_owned(),
                BrokerErrorKind::CapExceeded { admin_asked: true, .. } => {
                    "I've used up my spending allowance for now, so I can't listen to that. I've asked whoever \
                     runs Hearth at home whether to raise the limit — if they do, I'll let you know."
                        .to_owned()
                }
                _ => "I've used up my spending allowance for now, so I can't listen to that. Whoever runs Hearth \
                      at home can raise the limit if it can't wait."
                    .to_owned(),
            },
            Self::Unavailable => {
                "I couldn't reach my speech recognition just now. Please try again in a minute, or type it.".to_owned()
            }
            Self::Unreadable { .. } => {
                "I couldn't make out that recording — the file may be damaged or in a format I can't read. Could \
                 you record it again, or type it?"
                    .to_owned()
            }
            Self::Empty => {
                "I couldn't hear anything in that voice message. Could you try again, or type it?".to_owned()
            }
        }
    }

    /// What the admin should change, naming the command; `None` when there is nothing to fix
    /// (a cap is told through spend notices; an outage or a bad file fixes itself).
    pub fn admin_hint(&self) -> Option<String> {
        let set = "hearth provider speech --base-url URL --model NAME";
        match self {
            Self::NoService => Some(format!(
                "A member sent a voice message, but no speech recognition is set up. Set a service with `{set}` \
                 (OpenAI: --base-url https://api.openai.com/v1 --model whisper-1; Groq: --base-url \
                 https://api.groq.com/openai/v1 --model whisper-large-v3-turbo; or a local whisper server)."
            )),
            Self::Refused { status: status @ (401 | 403) } => Some(format!(
                "The speech recognition service refused its API key (HTTP {status}). Set the key again with `{set}` \
                 (the key is read from stdin), or `hearth provider speech --off`."
            )),
            Self::Refused { status } => Some(format!(
                "The speech recognition service said it cannot transcribe (HTTP {status}): the address or the model \
                 is wrong, or the server has no /audio/transcriptions. Check `hearth provider show`, then set it with \
                 `{set}`."
            )),
            Self::Misconfigured(detail) => Some(format!(
                "The speech recognition settings do not work ({detail}). Check `hearth provider show`, then set them \
                 with `{set}`."
            )),
            Self::Capped(e) => match &e.kind {
                BrokerErrorKind::NoPrice { model } => Some(format!(
                    "The speech model {model} has no price, so spending caps could not be kept. Set one with \
                     `hearth price set {model} --usd-per-minute X`."
                )),
                _ => None,
            },
            Self::Unavailable | Self::Unreadable { .. } | Self::Empty => None,
        }
    }
}

/// What a failed call means for the member and the admin.
fn classify(e: &LlmError) -> TranscribeError {
    match e {
        LlmError::Status { status: status @ (400 | 413 | 415 | 422), .. } => {
            TranscribeError::Unreadable { status: *status }
        }
        LlmError::Status { .. } if e.is_retryable() => TranscribeError::Unavailable,
        LlmError::Status { status, .. } => TranscribeError::Refused { status: *status },
        LlmError::Timeout { .. } | LlmError::Network(_) => TranscribeError::Unavailable,
        LlmError::Malformed(_) | LlmError::Config(_) | LlmError::Redirected { .. } => {
            TranscribeError::Misconfigured(clip(&e.to_string(), 200))
        }
    }
}

fn clip(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_owned(),
    }
}

/// The per-minute price of `model` at `base_url`: the admin's wins; a service on this machine
/// costs nothing; otherwise the shipped default, if any.
pub fn audio_price_for(card: &[AudioRateEntry], base_url: &str, model: &str) -> Option<AudioPrice> {
    card_price(card, base_url, model, AudioPrice::ZERO, |e| e.price)
}

/// The admin's per-minute prices (as stored) ahead of the shipped defaults.
pub fn audio_rate_card(admin: &[(String, u64)]) -> Vec<AudioRateEntry> {
    let mut card: Vec<AudioRateEntry> = admin
        .iter()
        .map(|(model, micros)| AudioRateEntry {
            model: model.clone(),
            price: AudioPrice { micros_per_minute: *micros },
            source: PriceSource::Admin,
        })
        .collect();
    card.extend(price::default_audio_rate_card());
    card
}

/// The admin's per-minute prices from the settings: (model, micro-USD per minute).
pub fn stored_audio_prices(conn: &rusqlite::Connection) -> Result<Vec<(String, u64)>, StoreError> {
    stored_prices(conn, SETTING_AUDIO_PRICE_PREFIX)
}

/// The models the admin marked as unable to see images.
pub fn stored_no_vision(conn: &rusqlite::Connection) -> Result<Vec<String>, StoreError> {
    Ok(store::settings_with_prefix(conn, SETTING_NO_VISION_PREFIX)?
        .into_iter()
        .filter(|(_, v)| v == "1")
        .map(|(model, _)| model)
        .collect())
}

/// The speech setting as stored, with its key (the secret [`SPEECH_KEY`], which the caller
/// reads: the broker is below the secrets).
pub async fn load_setting(store: &Store, key: Option<String>) -> Result<SpeechSetting, StoreError> {
    let (off, url, model) = store
        .call(|c| {
            Ok((
                store::get_setting(c, SETTING_SPEECH_OFF)?,
                store::get_setting(c, SETTING_SPEECH_URL)?,
                store::get_setting(c, SETTING_SPEECH_MODEL)?,
            ))
        })
        .await?;
    Ok(match (off.as_deref(), url, model) {
        (Some("1"), _, _) => SpeechSetting::Off,
        (_, Some(base_url), Some(model)) => {
            let api_key = key.filter(|k| !k.is_empty()).map(ApiKey::new);
            SpeechSetting::Own(SpeechEndpoint { base_url, model, api_key })
        }
        _ => SpeechSetting::Default,
    })
}

impl Broker {
    /// The admin's speech choice (stored by the caller).
    pub fn set_speech(&self, setting: SpeechSetting) {
        *self.inner.speech.write() = setting;
    }

    /// The service voice notes go to now, and why that one.
    pub fn speech_service(&self) -> (Option<SpeechEndpoint>, SpeechSource) {
        match &*self.inner.speech.read() {
            SpeechSetting::Off => (None, SpeechSource::Off),
            SpeechSetting::Own(e) => (Some(e.clone()), SpeechSource::Own),
            SpeechSetting::Default => match self.openai_chat_service() {
                Some((base_url, api_key)) => (
                    Some(SpeechEndpoint { base_url, model: DEFAULT_SPEECH_MODEL.to_owned(), api_key }),
                    SpeechSource::ChatProvider,
                ),
                None => (None, SpeechSource::None),
            },
        }
    }

    /// The speech service as the admin sees it (never the key).
    pub fn speech_summary(&self) -> SpeechSummary {
        let (endpoint, source) = self.speech_service();
        SpeechSummary {
            source,
            base_url: endpoint.as_ref().map(|e| e.base_url.clone()),
            model: endpoint.map(|e| e.model),
        }
    }

    /// The per-minute price the broker would charge for `model` at `base_url`, if known.
    pub fn audio_price_of(&self, base_url: &str, model: &str) -> Option<AudioPrice> {
        self.spend(|s| audio_price_for(&s.audio_rate_card, base_url, model))
    }

    /// The admin's per-minute prices (as stored), ahead of the shipped defaults.
    pub fn set_admin_audio_prices(&self, admin: &[(String, u64)]) {
        self.inner.spend.lock().audio_rate_card = audio_rate_card(admin);
    }

    /// The models the admin marked as unable to see images.
    pub fn set_no_vision(&self, models: Vec<String>) {
        self.inner.spend.lock().no_vision = models;
    }

    /// Turns `audio` (a voice note or audio file of `duration_secs`, as Telegram reported it)
    /// into text for `member_id`, answering in `chat_id`: reserved, called, settled as a
    /// `speech_in` ledger row. The text is trimmed and never empty.
    pub async fn transcribe(
        &self,
        member_id: &str,
        chat_id: i64,
        audio: Vec<u8>,
        file_name: &str,
        media_type: &str,
        duration_secs: u32,
    ) -> Result<String, TranscribeError> {
        if audio.is_empty() {
            return Err(TranscribeError::Empty);
        }
        let (Some(endpoint), _) = self.speech_service() else {
            return Err(TranscribeError::NoService);
        };
        let seconds = u64::from(duration_secs);
        let call = Metered {
            member_id,
            chat_id: Some(chat_id),
            model: &endpoint.model,
            kind: LedgerKind::SpeechIn,
            audio_seconds: seconds,
            characters: 0,
            report_cap_hits: true,
        };
        let pricing = Pricing {
            price_of: &|s| audio_price_for(&s.audio_rate_card, &endpoint.base_url, &endpoint.model),
            free: AudioPrice::ZERO,
            reserve: &|p| p.worst_case_micros(seconds),
            cost: &|p| p.cost_micros(seconds),
            no_price: &|| no_audio_price(&endpoint.model),
        };
        let result = self
            .metered(&call, pricing, "transcription", || {
                call_service(&self.inner.http, &endpoint, audio.clone(), file_name, media_type, &self.inner.limits)
            })
            .await
            .map_err(|e| match e {
                Unreserved::Capped(e) => TranscribeError::Capped(e),
                Unreserved::Ledger => TranscribeError::Unavailable,
            })?;
        match result {
            Ok(text) => {
                let text = text.trim();
                if text.is_empty() { Err(TranscribeError::Empty) } else { Ok(text.to_owned()) }
            }
            Err(e) => {
                tracing::warn!(member = member_id, model = %endpoint.model, error = %e, "transcription failed");
                Err(classify(&e))
            }
        }
    }
}

/// The refusal for a speech model without a per-minute price while caps are in force.
fn no_audio_price(model: &str) -> BrokerError {
    BrokerError {
        message: format!(
            "speech model {model} has no price, so spend caps cannot be kept; set one with \
             `hearth price set {model} --usd-per-minute X`"
        ),
        kind: BrokerErrorKind::NoPrice { model: model.to_owned() },
    }
}

/// One attempt at the service.
async fn call_service(
    http: &reqwest::Client,
    endpoint: &SpeechEndpoint,
    audio: Vec<u8>,
    file_name: &str,
    media_type: &str,
    limits: &hearth_llm::CallLimits,
) -> Result<String, LlmError> {
    let service = hearth_llm::SpeechService {
        base_url: endpoint.base_url.clone(),
        api_key: endpoint.api_key.clone(),
        model: endpoint.model.clone(),
    };
    hearth_llm::transcribe(http, &service, audio, file_name, media_type, limits).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(status: u16) -> LlmError {
        LlmError::Status { status, retry_after: None, message: "no".into() }
    }

    #[test]
    fn failures_are_told_apart() {
        assert_eq!(classify(&status(401)), TranscribeError::Refused { status: 401 });
        assert_eq!(classify(&status(404)), TranscribeError::Refused { status: 404 });
        assert_eq!(classify(&status(400)), TranscribeError::Unreadable { status: 400 });
        assert_eq!(classify(&status(503)), TranscribeError::Unavailable);
        assert_eq!(classify(&status(429)), TranscribeError::Unavailable);
        assert_eq!(classify(&LlmError::Timeout { phase: "total" }), TranscribeError::Unavailable);
        assert!(matches!(classify(&LlmError::Malformed("html".into())), TranscribeError::Misconfigured(_)));
    }

    #[test]
    fn sentences_are_kind_and_hints_name_the_command() {
        let no = TranscribeError::NoService;
        assert_eq!(
            no.member_sentence(),
            "I can't listen to voice messages yet — whoever runs Hearth at home needs to set up speech recognition. \
             Could you type it?"
        );
        assert!(no.admin_hint().unwrap().contains("hearth provider speech --base-url URL --model NAME"));
        let key = TranscribeError::Refused { status: 401 };
        assert!(key.admin_hint().unwrap().contains("refused its API key"));
        assert_eq!(key.member_sentence(), no.member_sentence());
        assert!(TranscribeError::Refused { status: 404 }.admin_hint().unwrap().contains("hearth provider show"));
        let price = TranscribeError::Capped(BrokerError {
            kind: BrokerErrorKind::NoPrice { model: "w".into() },
            message: String::new(),
        });
        assert!(price.admin_hint().unwrap().contains("hearth price set w --usd-per-minute"));
        let cap = TranscribeError::Capped(BrokerError {
            kind: BrokerErrorKind::CapExceeded { resets_at: None, admin_asked: false },
            message: String::new(),
        });
        assert!(cap.member_sentence().contains("spending allowance") && cap.admin_hint().is_none());
        for e in [TranscribeError::Empty, TranscribeError::Unavailable, TranscribeError::Unreadable { status: 400 }] {
            assert!(e.admin_hint().is_none());
            let s = e.member_sentence();
            assert!(!s.contains("HTTP") && s.contains("type it"), "{s}");
        }
    }

    #[test]
    fn local_speech_is_free_and_admin_prices_win() {
        let card = audio_rate_card(&[("whisper-1".into(), 9_000)]);
        assert_eq!(audio_price_for(&card, "https://api.openai.com/v1", "whisper-1").unwrap().micros_per_minute, 9_000);
        assert_eq!(audio_price_for(&card, "http://localhost:8080/v1", "whisper-1").unwrap().micros_per_minute, 9_000);
        assert_eq!(audio_price_for(&card, "http://127.0.0.1:8080/v1", "ggml-base.en"), Some(AudioPrice::ZERO));
        assert_eq!(
            audio_price_for(&card, "https://api.groq.com/openai/v1", "whisper-large-v3").unwrap().micros_per_minute,
            1_850
        );
        assert_eq!(audio_price_for(&card, "https://x.example/v1", "unknown-asr"), None);
    }

    #[test]
    fn the_key_never_shows_in_debug() {
        let e = SpeechEndpoint { base_url: "u".into(), model: "m".into(), api_key: Some(ApiKey::new("sk-SECRET")) };
        let s = format!("{e:?} {:?}", SpeechSetting::Own(e.clone()));
        assert!(!s.contains("SECRET") && s.contains("redacted"), "{s}");
    }
}
