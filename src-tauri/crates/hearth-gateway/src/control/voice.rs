//! The admin API for voice replies: the text-to-speech service (set, off, shown), what its
//! models cost per million characters, and when each member is answered in voice. Trying a
//! speech service in either direction is `speech_test.rs`.
//!
//! Like the speech-recognition service (`provider.rs`), the service's key is a secret and the
//! rest are settings; a change is stored and audited, then handed to the broker. A member's
//! setting is stored, then applied to the core loop's roster, which the turn reads.

use hearth_llm::ApiKey;
use hearth_proto::control::{ControlError, ControlReply, ErrorCode, GatewayEvent, MemberSummary, VoiceReplies};

use super::provider::checked_settings;
use super::spend::{SettingPrice, any_caps, model_name, rows_for};
use super::{find, internal, stopping, summary};
use crate::broker::spend::voice_price::MAX_MICROS_PER_MCHAR;
use crate::broker::voice::{
    self, DEFAULT_VOICE, SETTING_VOICE_MODEL, SETTING_VOICE_OFF, SETTING_VOICE_PRICE_PREFIX, SETTING_VOICE_URL,
    SETTING_VOICE_VOICE, VOICE_KEY, VoiceEndpoint, VoiceSetting,
};
use crate::core::{Change, Engine, MemberUpdate};
use crate::store;

/// Longest voice name accepted; real ones are a word.
const MAX_VOICE_CHARS: usize = 64;

/// A voice name as the admin typed it: empty means the default ([`DEFAULT_VOICE`]).
fn checked_voice(voice: &str) -> Result<String, ControlError> {
    let voice = voice.trim();
    if voice.is_empty() {
        return Ok(DEFAULT_VOICE.to_owned());
    }
    if voice.chars().count() > MAX_VOICE_CHARS || voice.chars().any(char::is_control) {
        return Err(ControlError::new(
            ErrorCode::InvalidInput,
            "name the voice as the service spells it, e.g. alloy, nova or shimmer",
        ));
    }
    Ok(voice.to_owned())
}

/// Stores a text-to-speech service of the household's own, and its key (a secret, like the
/// chat key; empty: none). With caps in force the model must have a per-character price.
pub(super) async fn set(
    e: &Engine,
    base_url: String,
    model: String,
    voice_name: String,
    api_key: String,
) -> Result<ControlReply, ControlError> {
    let (base_url, model, api_key) = checked_settings(&base_url, &model, &api_key)?;
    let voice_name = checked_voice(&voice_name)?;
    if any_caps(e) && e.broker.voice_price_of(&base_url, &model).is_none() {
        return Err(ControlError::new(
            ErrorCode::InvalidInput,
            format!(
                "the voice model {model} has no price, so a spending limit could not be kept. Set its price first: \
                 hearth price set {model} --usd-per-million-chars X"
            ),
        ));
    }
    if api_key.is_empty() {
        e.secrets.remove(VOICE_KEY).map_err(internal)?;
    } else {
        e.secrets.set(VOICE_KEY, &api_key).map_err(internal)?;
    }
    let (u, m, v) = (base_url.clone(), model.clone(), voice_name.clone());
    e.store
        .call(move |c| {
            store::set_setting(c, SETTING_VOICE_URL, &u)?;
            store::set_setting(c, SETTING_VOICE_MODEL, &m)?;
            store::set_setting(c, SETTING_VOICE_VOICE, &v)?;
            store::delete_setting(c, SETTING_VOICE_OFF)?;
            store::audit(c, "admin", "voice_set", None, &format!("{u} {m} {v}"))
        })
        .await
        .map_err(internal)?;
    let api_key = (!api_key.is_empty()).then(|| ApiKey::new(api_key));
    e.broker.set_voice(VoiceSetting::Own(VoiceEndpoint { base_url, model, voice: voice_name, api_key }));
    e.emit(GatewayEvent::Changed);
    Ok(ControlReply::Voice(e.broker.voice_summary()))
}

/// Turns voice replies off for everyone (the chat provider's too) and forgets the voice key.
pub(super) async fn off(e: &Engine) -> Result<ControlReply, ControlError> {
    e.secrets.remove(VOICE_KEY).map_err(internal)?;
    e.store
        .call(|c| {
            store::set_setting(c, SETTING_VOICE_OFF, "1")?;
            store::audit(c, "admin", "voice_off", None, "")
        })
        .await
        .map_err(internal)?;
    e.broker.set_voice(VoiceSetting::Off);
    e.emit(GatewayEvent::Changed);
    Ok(ControlReply::Voice(e.broker.voice_summary()))
}

/// Sets a text-to-speech model's price per million characters (stored among the settings).
pub(super) async fn price_set(e: &Engine, model: String, micros_per_mchar: u64) -> Result<ControlReply, ControlError> {
    let model = model_name(&model, "tts-1")?;
    if micros_per_mchar > MAX_MICROS_PER_MCHAR {
        return Err(ControlError::new(
            ErrorCode::InvalidInput,
            "that price is over $1,000 per million characters; text to speech costs about $15 per million",
        ));
    }
    let stored = SettingPrice {
        prefix: SETTING_VOICE_PRICE_PREFIX,
        read: voice::stored_voice_prices,
        action: "voice_price_set",
        unit: "micro-USD/Mchar",
    };
    let admin = stored.set(e, &model, micros_per_mchar).await?;
    e.broker.set_admin_voice_prices(&admin);
    Ok(ControlReply::Prices { prices: rows_for(e, &model) })
}

/// Sets when a member is answered in voice; the core loop's roster has it before this returns.
pub(super) async fn member(e: &Engine, key: &str, voice_replies: VoiceReplies) -> Result<MemberSummary, ControlError> {
    let m = find(e, key).await?;
    let (id, name) = (m.id.clone(), m.name.clone());
    let row = e
        .store
        .call(move |c| {
            store::set_member_voice_replies(c, &id, voice_replies)?;
            store::audit(c, "admin", "member_voice", Some(&id), &format!("{name}: {}", voice_replies.as_str()))?;
            store::find_member(c, &id)
        })
        .await
        .map_err(internal)?
        .ok_or_else(|| ControlError::new(ErrorCode::NotFound, format!("{} was removed meanwhile", m.name)))?;
    e.change(Change::Member { member_id: row.id.clone(), update: MemberUpdate::VoiceReplies(voice_replies) })
        .await
        .map_err(stopping)?;
    e.emit(GatewayEvent::Changed);
    Ok(summary(row))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn voice_names_are_checked() {
        assert_eq!(checked_voice("  ").unwrap(), "alloy");
        assert_eq!(checked_voice(" nova ").unwrap(), "nova");
        assert!(checked_voice("a\u{7}").unwrap_err().message.contains("alloy, nova or shimmer"));
        assert!(checked_voice(&"x".repeat(65)).is_err());
    }
}
