//! The admin API for choosing a provider: checking settings, storing them, trying them with one
//! small real call before they are stored, and finding model servers (Ollama, LM Studio) on this
//! machine; the speech-recognition service voice notes go to (set, off, shown); and how many
//! provider calls may be open at once (`broker/connections.rs`).
//!
//! A test call goes straight through `hearth_llm`, not the broker: it is the admin's own check,
//! so it is charged to no member and leaves nothing in the ledger.

use std::time::{Duration, Instant};

use hearth_llm::{ApiKey, CallLimits, LlmError, Provider};
use hearth_proto::control::{ControlError, ErrorCode, LocalProvider, ProviderKind, ProviderTestResult};
use hearth_proto::llm::{ChatMessage, CompletionRequest};
use serde_json::Value;

use hearth_proto::control::{ControlReply, GatewayEvent, ProviderSummary};

use super::internal;
use super::spend::{any_caps, missing_price_error};
use crate::broker::connections::{MAX_MAX_CONNECTIONS, SETTING_MAX_CONNECTIONS};
use crate::broker::speech::{
    SETTING_SPEECH_MODEL, SETTING_SPEECH_OFF, SETTING_SPEECH_URL, SPEECH_KEY, SpeechEndpoint, SpeechSetting,
};
use crate::broker::{self, SETTING_PROVIDER_KIND, SETTING_PROVIDER_MODEL, SETTING_PROVIDER_URL};
use crate::core::Engine;
use crate::secrets;
use crate::store;

/// The whole test call, connect to last byte.
const TEST_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a model server on this machine may take to say what it has.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// Characters of the model's answer, or of a provider's error, shown to the admin.
const SHOWN_CHARS: usize = 200;

/// Trims and checks provider settings as `ProviderSet` and `ProviderTest` both take them:
/// returns (base URL without a trailing `/`, model, key).
pub(crate) fn checked_settings(
    base_url: &str,
    model: &str,
    api_key: &str,
) -> Result<(String, String, String), ControlError> {
    let base_url = base_url.trim().trim_end_matches('/').to_owned();
    let model = model.trim().to_owned();
    let api_key = api_key.trim().to_owned();
    match reqwest::Url::parse(&base_url) {
        Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {}
        _ => {
            return Err(ControlError::new(
                ErrorCode::InvalidInput,
                format!(
                    "{base_url:?} is not a web address; use e.g. https://api.openai.com/v1 or http://localhost:11434/v1"
                ),
            ));
        }
    }
    if model.is_empty() {
        return Err(ControlError::new(ErrorCode::InvalidInput, "name a model, e.g. gpt-4o-mini or claude-sonnet-4-5"));
    }
    if api_key.chars().any(char::is_control) {
        return Err(ControlError::new(
            ErrorCode::InvalidInput,
            "the API key contains control characters; paste it again",
        ));
    }
    Ok((base_url, model, api_key))
}

/// Stores the household's provider and its key, and hands it to the broker. With caps in force
/// the model must have a price, or the caps could not be kept.
pub(super) async fn set(
    e: &Engine,
    kind: ProviderKind,
    base_url: String,
    model: String,
    api_key: String,
) -> Result<ControlReply, ControlError> {
    let (base_url, model, api_key) = checked_settings(&base_url, &model, &api_key)?;
    if any_caps(e) {
        let priced = e.broker.spend(|s| broker::price_for(&s.rate_card, &base_url, &model).is_some());
        if !priced {
            return Err(missing_price_error(&model));
        }
    }
    e.secrets.set(secrets::PROVIDER_KEY, &api_key).map_err(internal)?;
    let (u, m) = (base_url.clone(), model.clone());
    e.store
        .call(move |c| {
            store::set_setting(c, SETTING_PROVIDER_KIND, kind.as_str())?;
            store::set_setting(c, SETTING_PROVIDER_URL, &u)?;
            store::set_setting(c, SETTING_PROVIDER_MODEL, &m)?;
            store::audit(c, "admin", "provider_set", None, &format!("{} {u} {m}", kind.as_str()))
        })
        .await
        .map_err(internal)?;
    e.broker.set_provider(Some(broker::provider_from(kind, base_url.clone(), model.clone(), api_key)));
    Ok(ControlReply::ProviderSet(ProviderSummary { kind, base_url, model }))
}

/// Stores a speech-recognition service of the household's own, and its key (a secret, like
/// the chat key; empty: none). With caps in force the model must have a per-minute price.
pub(super) async fn speech_set(
    e: &Engine,
    base_url: String,
    model: String,
    api_key: String,
) -> Result<ControlReply, ControlError> {
    let (base_url, model, api_key) = checked_settings(&base_url, &model, &api_key)?;
    if any_caps(e) && e.broker.audio_price_of(&base_url, &model).is_none() {
        return Err(ControlError::new(
            ErrorCode::InvalidInput,
            format!(
                "the speech model {model} has no price, so a spending limit could not be kept. Set its price first: \
                 hearth price set {model} --usd-per-minute X"
            ),
        ));
    }
    if api_key.is_empty() {
        e.secrets.remove(SPEECH_KEY).map_err(internal)?;
    } else {
        e.secrets.set(SPEECH_KEY, &api_key).map_err(internal)?;
    }
    let (u, m) = (base_url.clone(), model.clone());
    e.store
        .call(move |c| {
            store::set_setting(c, SETTING_SPEECH_URL, &u)?;
            store::set_setting(c, SETTING_SPEECH_MODEL, &m)?;
            store::delete_setting(c, SETTING_SPEECH_OFF)?;
            store::audit(c, "admin", "speech_set", None, &format!("{u} {m}"))
        })
        .await
        .map_err(internal)?;
    let api_key = (!api_key.is_empty()).then(|| ApiKey::new(api_key));
    e.broker.set_speech(SpeechSetting::Own(SpeechEndpoint { base_url, model, api_key }));
    Ok(ControlReply::Speech(e.broker.speech_summary()))
}

/// Turns speech recognition off (the chat provider's too) and forgets the speech key.
pub(super) async fn speech_off(e: &Engine) -> Result<ControlReply, ControlError> {
    e.secrets.remove(SPEECH_KEY).map_err(internal)?;
    e.store
        .call(|c| {
            store::set_setting(c, SETTING_SPEECH_OFF, "1")?;
            store::audit(c, "admin", "speech_off", None, "")
        })
        .await
        .map_err(internal)?;
    e.broker.set_speech(SpeechSetting::Off);
    Ok(ControlReply::Speech(e.broker.speech_summary()))
}

/// One small real completion with the given settings; nothing is stored or charged.
/// `hearth provider connections N`: stores the bound on provider calls open at once and applies
/// it from now on (calls already open are not cut off).
pub(super) async fn connections(e: &Engine, max: u32) -> Result<ControlReply, ControlError> {
    if !(1..=MAX_MAX_CONNECTIONS).contains(&max) {
        return Err(ControlError::new(
            ErrorCode::InvalidInput,
            format!("{max} provider connections is out of range; choose from 1 to {MAX_MAX_CONNECTIONS}"),
        ));
    }
    e.store
        .call(move |c| {
            store::set_setting(c, SETTING_MAX_CONNECTIONS, &max.to_string())?;
            store::audit(c, "admin", "provider_connections", None, &max.to_string())
        })
        .await
        .map_err(internal)?;
    e.broker.set_max_connections(max);
    e.emit(GatewayEvent::Changed);
    Ok(ControlReply::Done)
}

pub(super) async fn test(
    kind: ProviderKind,
    base_url: String,
    model: String,
    api_key: String,
) -> Result<ProviderTestResult, ControlError> {
    let (base_url, model, api_key) = checked_settings(&base_url, &model, &api_key)?;
    let limits = CallLimits {
        connect: Duration::from_secs(10),
        first_byte: TEST_TIMEOUT,
        idle: TEST_TIMEOUT,
        total: TEST_TIMEOUT,
    };
    let http = hearth_llm::http_client(&limits).map_err(internal)?;
    let provider = Provider {
        kind,
        base_url: base_url.clone(),
        model: model.clone(),
        api_key: ApiKey::new(api_key),
        stream: false,
    };
    let request = CompletionRequest {
        system: "You are checking that a connection works. Follow the instruction exactly.".into(),
        messages: vec![ChatMessage::user("Reply with the single word: ready")],
        max_tokens: 16,
        tools: vec![],
    };
    let started = Instant::now();
    let result = hearth_llm::complete(&http, &provider, &request, &limits).await;
    let latency_ms = started.elapsed().as_millis() as u64;
    match result {
        Ok(c) => {
            tracing::info!(provider = kind.as_str(), %model, latency_ms, "provider test worked");
            let answered = if c.model.trim().is_empty() { model } else { c.model };
            Ok(ProviderTestResult { model: answered, reply: clip(c.text.trim(), SHOWN_CHARS), latency_ms })
        }
        Err(e) => {
            tracing::info!(provider = kind.as_str(), %model, error = %e, "provider test failed");
            Err(test_error(&e, kind, &base_url, &model))
        }
    }
}

/// The model servers on this machine that answer, in the configured order.
pub(super) async fn detect(e: &Engine) -> Vec<LocalProvider> {
    let http = match reqwest::Client::builder().timeout(PROBE_TIMEOUT).connect_timeout(PROBE_TIMEOUT).no_proxy().build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "could not build an HTTP client to look for local model servers");
            return Vec::new();
        }
    };
    let probes = e.config.local_providers.iter().map(|(name, root)| probe(&http, name, root));
    futures_util::future::join_all(probes).await.into_iter().flatten().collect()
}

/// Asks one possible server what models it has. `None` when nothing answers there, or something
/// that is not that server.
async fn probe(http: &reqwest::Client, name: &str, root: &str) -> Option<LocalProvider> {
    let root = root.trim().trim_end_matches('/');
    let ollama = name.to_ascii_lowercase().contains("ollama");
    let url = if ollama { format!("{root}/api/tags") } else { format!("{root}/v1/models") };
    let response = http.get(&url).send().await.ok()?;
    if !response.status().is_success() {
        return None;
    }
    let body: Value = response.json().await.ok()?;
    let (list, key) = if ollama { (body.get("models")?, "name") } else { (body.get("data")?, "id") };
    let models = list
        .as_array()?
        .iter()
        .filter_map(|m| m.get(key)?.as_str())
        .filter(|m| !m.trim().is_empty() && !m.chars().any(char::is_control))
        .take(500)
        .map(|m| clip(m, SHOWN_CHARS))
        .collect();
    Some(LocalProvider { name: name.to_owned(), base_url: format!("{root}/v1"), models })
}

/// What went wrong with a test call, in words the admin can act on.
fn test_error(e: &LlmError, kind: ProviderKind, base_url: &str, model: &str) -> ControlError {
    let example = match kind {
        ProviderKind::Openai => "for Ollama: http://localhost:11434/v1",
        ProviderKind::Anthropic => "for Anthropic: https://api.anthropic.com/v1",
    };
    let (code, message) = match e {
        LlmError::Status { status: status @ (401 | 403), message, .. } => (
            ErrorCode::Rejected,
            format!(
                "The provider refused the API key (HTTP {status}: {}). Check that you pasted the whole key.",
                clip(message, SHOWN_CHARS)
            ),
        ),
        LlmError::Status { status: 404, message, .. } => (
            ErrorCode::Rejected,
            format!(
                "The provider has no model called {model:?} (HTTP 404: {}). Check the model's exact name in the \
                 provider's list (for Ollama, run `ollama pull {model}` first), or the address if it lacks a part \
                 such as /v1.",
                clip(message, SHOWN_CHARS)
            ),
        ),
        LlmError::Status { status: 429, message, .. } => (
            ErrorCode::Rejected,
            format!(
                "The provider is turning requests away (HTTP 429: {}). The account may be out of credit or over its \
                 rate limit; check it on the provider's website, then try again.",
                clip(message, SHOWN_CHARS)
            ),
        ),
        LlmError::Status { status, message, .. } if *status >= 500 => (
            ErrorCode::Unreachable,
            format!(
                "The provider had trouble answering (HTTP {status}: {}). Try again in a minute.",
                clip(message, SHOWN_CHARS)
            ),
        ),
        LlmError::Status { status, message, .. } => (
            ErrorCode::Rejected,
            format!(
                "The provider refused the test request (HTTP {status}: {}). Check the model's name and that the kind \
                 ({}) matches the provider.",
                clip(message, SHOWN_CHARS),
                kind.as_str()
            ),
        ),
        LlmError::Network(detail) => (
            ErrorCode::Unreachable,
            format!("Couldn't reach {base_url}: {}. Check the address ({example}).", clip(detail, SHOWN_CHARS)),
        ),
        LlmError::Timeout { .. } => (
            ErrorCode::Unreachable,
            format!(
                "Couldn't reach {base_url}: no answer within {} seconds. Check the address ({example}); a local model \
                 may also still be loading, so try again in a minute.",
                TEST_TIMEOUT.as_secs()
            ),
        ),
        LlmError::Malformed(detail) => (
            ErrorCode::Rejected,
            format!(
                "{base_url} answered, but not as the {} API does ({}). Check the address and the kind.",
                kind.as_str(),
                clip(detail, SHOWN_CHARS)
            ),
        ),
        LlmError::Config(detail) => (ErrorCode::InvalidInput, format!("These settings cannot work: {detail}.")),
        LlmError::Redirected { status, location, .. } => (
            ErrorCode::Rejected,
            format!(
                "{base_url} answered with a redirect (HTTP {status}) to {}. Hearth does not follow a provider's \
                 redirects, because the API key would go along; if that address is right, set it as the provider's \
                 address instead.",
                clip(location, SHOWN_CHARS)
            ),
        ),
    };
    ControlError::new(code, message)
}

/// At most `max` characters of `s`, marking a cut with `…`.
fn clip(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_trimmed_and_checked() {
        let (url, model, key) = checked_settings(" http://localhost:11434/v1/ ", " llama3.2 ", " sk-1 \n").unwrap();
        assert_eq!((url.as_str(), model.as_str(), key.as_str()), ("http://localhost:11434/v1", "llama3.2", "sk-1"));
        assert_eq!(checked_settings("localhost:11434", "m", "").unwrap_err().code, ErrorCode::InvalidInput);
        assert_eq!(checked_settings("ftp://x", "m", "").unwrap_err().code, ErrorCode::InvalidInput);
        assert!(checked_settings("http://x", " ", "").unwrap_err().message.contains("name a model"));
        assert!(checked_settings("http://x", "m", "a\u{7}b").unwrap_err().message.contains("control characters"));
    }

    #[test]
    fn errors_say_what_to_do() {
        let status = |status, message: &str| LlmError::Status { status, retry_after: None, message: message.into() };
        let long = "x".repeat(500);
        let e = test_error(&status(401, &long), ProviderKind::Openai, "https://api.openai.com/v1", "m");
        assert_eq!(e.code, ErrorCode::Rejected);
        assert!(e.message.starts_with("The provider refused the API key (HTTP 401: xxx"), "{}", e.message);
        assert!(e.message.ends_with("Check that you pasted the whole key."), "{}", e.message);
        assert!(e.message.len() < 320, "the provider's text is cut to 200 characters: {}", e.message.len());
        let e = test_error(&status(404, "model not found"), ProviderKind::Openai, "http://x/v1", "llama9");
        assert!(e.message.contains("\"llama9\"") && e.message.contains("ollama pull llama9"), "{}", e.message);
        let e = test_error(
            &LlmError::Network("connection refused".into()),
            ProviderKind::Openai,
            "http://127.0.0.1:9/v1",
            "m",
        );
        assert_eq!(e.code, ErrorCode::Unreachable);
        assert_eq!(
            e.message,
            "Couldn't reach http://127.0.0.1:9/v1: connection refused. \
             Check the address (for Ollama: http://localhost:11434/v1)."
        );
        let e = test_error(&LlmError::Timeout { phase: "total" }, ProviderKind::Anthropic, "https://x", "m");
        assert!(e.message.contains("20 seconds") && e.message.contains("api.anthropic.com"), "{}", e.message);
        assert_eq!(
            test_error(&LlmError::Malformed("not json".into()), ProviderKind::Openai, "http://x", "m").code,
            ErrorCode::Rejected
        );
        assert_eq!(
            test_error(&status(503, "busy"), ProviderKind::Openai, "http://x", "m").code,
            ErrorCode::Unreachable
        );
    }
}
