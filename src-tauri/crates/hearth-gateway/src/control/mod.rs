//! The admin API. [`handle`] answers one [`ControlRequest`]: the Tauri shell reaches it
//! in-process through `Gateway::control`, the CLI over `run/control.sock` (`socket.rs`).
//!
//! The gateway is the only writer of `gateway.sqlite`; every admin change goes through here and
//! leaves an audit row. A handler checks the request, stores it, and then has it applied where
//! that state lives: the core loop's roster, lanes and bots through
//! [`Engine::change`](crate::core::Engine::change) (which waits until the loop applied it), the
//! broker's spend state through its setters. No handler changes in-memory state itself.
//!
//! One file per area: `member.rs` (adding, removing, pairing, tokens, exports), `assistant.rs`
//! (role, persona, model, pause, quiet hours, role presets, idle reset, turn cap), `spend.rs`
//! (prices, caps, admins, fallbacks, the zone, reports), `provider.rs` (setting, testing and
//! finding providers, and the speech-recognition service), `voice.rs` (voice replies: the
//! service, its prices, each member's setting), `speech_test.rs` (trying speech in either
//! direction), `backup.rs` (backups while a gateway serves), `alerts.rs` (each admin's alert
//! setting and the heartbeat), `household_bot.rs` (the household bot and the admin's decision on
//! its groups), `doctor.rs` (`hearth doctor`), `status.rs`, `socket.rs`.

use hearth_proto::control::{ControlError, ControlReply, ControlRequest, ErrorCode, MemberSummary};

use crate::broker::spend::MICROS_PER_USD;
use crate::core::{Engine, Stopping};
use crate::store::{self, MemberRow};
use crate::telegram::TokenError;

mod alerts;
mod assistant;
pub(crate) mod backup;
mod doctor;
mod household_bot;
mod member;
mod provider;
pub(crate) mod socket;
mod speech_test;
mod spend;
mod status;
mod voice;

pub use socket::{ClientError, request};
pub(crate) use household_bot::summary as household_bot_summary;
pub(crate) use status::status;

/// Handles one admin request.
pub(crate) async fn handle(e: &Engine, request: ControlRequest) -> Result<ControlReply, ControlError> {
    tracing::debug!(?request, "admin request");
    match request {
        ControlRequest::ProviderSet { kind, base_url, model, api_key } => {
            provider::set(e, kind, base_url, model, api_key).await
        }
        ControlRequest::ProviderTest { kind, base_url, model, api_key } => {
            provider::test(kind, base_url, model, api_key).await.map(ControlReply::ProviderTested)
        }
        ControlRequest::ProviderDetect => Ok(ControlReply::LocalProviders { found: provider::detect(e).await }),
        ControlRequest::ProviderConnections { max } => provider::connections(e, max).await,
        ControlRequest::SpeechSet { base_url, model, api_key } => {
            provider::speech_set(e, base_url, model, api_key).await
        }
        ControlRequest::SpeechOff => provider::speech_off(e).await,
        ControlRequest::SpeechGet => Ok(ControlReply::Speech(e.broker.speech_summary())),
        ControlRequest::SpeechPriceSet { model, micros_per_minute } => {
            spend::speech_price_set(e, model, micros_per_minute).await
        }
        ControlRequest::ModelVision { model, vision } => spend::model_vision(e, model, vision).await,
        ControlRequest::BotCheck { bot_token } => member::bot_check(e, &bot_token).await.map(ControlReply::BotChecked),
        ControlRequest::MemberAdd { name, bot_token, role } => {
            member::add(e, name, bot_token, role).await.map(ControlReply::MemberAdded)
        }
        ControlRequest::MemberUpdate { member, role, persona, model } => {
            assistant::update(e, &member, role, persona, model).await.map(ControlReply::Member)
        }
        ControlRequest::MemberPause { member, paused, until } => {
            assistant::pause(e, member.as_deref(), paused, until.as_deref()).await
        }
        ControlRequest::MemberToken { member, bot_token } => {
            member::replace_token(e, &member, &bot_token).await.map(ControlReply::Member)
        }
        ControlRequest::MemberExport { member, dest_dir } => member::export(e, &member, &dest_dir).await,
        ControlRequest::TurnCap { cap } => assistant::turn_cap(e, cap).await,
        ControlRequest::MemberList => member::list(e).await,
        ControlRequest::MemberRemove { member } => member::remove(e, &member).await,
        ControlRequest::MemberPair { member } => member::pair(e, &member).await.map(ControlReply::PairCode),
        ControlRequest::Status => status(e).await.map(ControlReply::Status).map_err(internal),
        ControlRequest::PriceSet {
            model,
            input_micros_per_mtok,
            output_micros_per_mtok,
            cached_input_micros_per_mtok,
            cache_write_micros_per_mtok,
        } => {
            let price = store::StoredPrice {
                model,
                input: input_micros_per_mtok,
                output: output_micros_per_mtok,
                cached_input: cached_input_micros_per_mtok.unwrap_or(input_micros_per_mtok),
                cache_write: cache_write_micros_per_mtok,
            };
            spend::price_set(e, price).await
        }
        ControlRequest::PriceList => Ok(spend::price_list(e)),
        ControlRequest::MemberCap { member, daily, monthly } => spend::member_cap(e, &member, daily, monthly).await,
        ControlRequest::MemberAdmin { member, admin } => spend::member_admin(e, &member, admin).await,
        ControlRequest::MemberFallback { member, model } => spend::member_fallback(e, &member, model).await,
        ControlRequest::MemberQuietHours { member, quiet_hours } => {
            assistant::quiet_hours(e, &member, quiet_hours).await.map(ControlReply::Member)
        }
        ControlRequest::MemberStreaming { member, streaming } => {
            assistant::streaming(e, &member, streaming).await.map(ControlReply::Member)
        }
        ControlRequest::HouseholdIdleReset { hours } => assistant::idle_reset(e, hours).await,
        ControlRequest::HouseholdDiskQuota { mb } => assistant::disk_quota(e, mb).await,
        ControlRequest::HouseholdCap { monthly } => spend::household_cap(e, monthly).await,
        ControlRequest::HouseholdTimezone { timezone } => spend::household_timezone(e, &timezone).await,
        ControlRequest::Usage { month } => spend::usage(e, month).await,
        ControlRequest::UsageExport { month } => spend::usage_export(e, &month).await,
        ControlRequest::Doctor => {
            let e = e.clone();
            tokio::task::spawn_blocking(move || doctor::doctor(&e)).await.map(ControlReply::Doctor).map_err(internal)
        }
        ControlRequest::BackupCreate { dest_dir, include_secrets } => {
            backup::create(e, &dest_dir, include_secrets).await
        }
        ControlRequest::BackupSchedule { dest_dir, every_hours } => backup::schedule(e, dest_dir, every_hours).await,
        ControlRequest::VoiceSet { base_url, model, voice, api_key } => {
            voice::set(e, base_url, model, voice, api_key).await
        }
        ControlRequest::VoiceOff => voice::off(e).await,
        ControlRequest::VoiceGet => Ok(ControlReply::Voice(e.broker.voice_summary())),
        ControlRequest::SpeechTest { direction } => {
            speech_test::test(e, direction).await.map(ControlReply::SpeechTested)
        }
        ControlRequest::VoicePriceSet { model, micros_per_mchar } => voice::price_set(e, model, micros_per_mchar).await,
        ControlRequest::MemberVoice { member, voice_replies } => {
            voice::member(e, &member, voice_replies).await.map(ControlReply::Member)
        }
        ControlRequest::MemberAlerts { member, alerts } => {
            alerts::member_alerts(e, &member, alerts).await.map(ControlReply::Member)
        }
        ControlRequest::HouseholdHeartbeat { url, every_minutes } => alerts::heartbeat(e, url, every_minutes).await,
        ControlRequest::HouseholdBotSet { bot_token } => household_bot::set(e, &bot_token).await,
        ControlRequest::HouseholdBotRemove => household_bot::remove(e).await,
        ControlRequest::HouseholdBotGet => Ok(ControlReply::HouseholdBot { bot: household_bot::summary(e).await? }),
        ControlRequest::HouseholdGroups => household_bot::groups(e).await,
        ControlRequest::HouseholdGroupDecide { chat_id, allow } => household_bot::decide(e, chat_id, allow).await,
    }
}

pub(crate) fn internal(e: impl std::fmt::Display) -> ControlError {
    ControlError::new(ErrorCode::Internal, e.to_string())
}

/// The core loop did not apply a change: the gateway is stopping.
fn stopping(e: Stopping) -> ControlError {
    internal(e)
}

/// The member `key` names (an id, or a name in any case).
pub(crate) async fn find(e: &Engine, key: &str) -> Result<MemberRow, ControlError> {
    let k = key.trim().to_owned();
    e.store.call(move |c| store::find_member(c, &k)).await.map_err(internal)?.ok_or_else(|| {
        ControlError::new(
            ErrorCode::NotFound,
            format!("no member called {key:?}; `hearth member list` shows who there is"),
        )
    })
}

/// What the admin sees of a member.
pub(crate) fn summary(m: MemberRow) -> MemberSummary {
    let usd = |micros: u64| micros as f64 / MICROS_PER_USD as f64;
    MemberSummary {
        paired: m.telegram_user_id.is_some(),
        created_at: rfc3339(m.created_at),
        role: m.role,
        paused: m.paused,
        paused_until: m.paused_until.filter(|_| m.paused).map(rfc3339),
        persona: m.persona,
        model: m.model,
        fallback_model: m.fallback_model,
        is_admin: m.is_admin,
        daily_cap_usd: m.cap_daily_micros.map(usd),
        monthly_cap_usd: m.cap_monthly_micros.map(usd),
        quiet_hours: m.quiet_hours,
        voice_replies: m.voice_replies,
        streaming: m.streaming,
        alerts: m.alerts,
        id: m.id,
        name: m.name,
        bot_username: m.bot_username,
    }
}

/// A token `getMe` refused or could not check, as the admin reads it.
pub(crate) fn token_error(e: TokenError) -> ControlError {
    let code = match e {
        TokenError::Malformed => ErrorCode::InvalidInput,
        TokenError::Rejected => ErrorCode::Rejected,
        TokenError::Unreachable(_) => ErrorCode::Unreachable,
    };
    ControlError::new(code, e.to_string())
}

pub(crate) fn rfc3339(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0).map(|t| t.with_timezone(&chrono::Local).to_rfc3339()).unwrap_or_default()
}

/// A member's display name: 1–40 characters, no control characters, trimmed.
pub fn validate_name(name: &str) -> Result<String, ControlError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(ControlError::new(ErrorCode::InvalidInput, "give the member a name, e.g. `hearth member add Ana`"));
    }
    if name.chars().count() > 40 {
        return Err(ControlError::new(
            ErrorCode::InvalidInput,
            "that name is over 40 characters; use something shorter",
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(ControlError::new(ErrorCode::InvalidInput, "the name contains control characters"));
    }
    Ok(name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert_eq!(validate_name("  Ana ").unwrap(), "Ana");
        assert!(validate_name("").is_err());
        assert!(validate_name("a\u{7}b").is_err());
        assert!(validate_name(&"x".repeat(41)).is_err());
        assert!(validate_name("Grandma Rosa 👵").is_ok());
    }
}
