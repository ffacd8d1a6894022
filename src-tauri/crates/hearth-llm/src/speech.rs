//! The OpenAI-compatible speech endpoints, which OpenAI, Groq and the local whisper servers
//! (whisper.cpp's server, faster-whisper-server) all speak: speech to text with
//! `POST {base}/audio/transcriptions` (multipart `file` and `model`; JSON answer `text`) and text
//! to speech with `POST {base}/audio/speech` (JSON; the answer is the audio).
//!
//! Same rules as chat calls: the no-redirect client from [`http_client`](crate::http_client),
//! each phase under [`CallLimits`], errors mapped the same way — a 401/403/404 is an
//! [`LlmError::Status`] so a caller can tell a service that refuses (wrong key, no such endpoint
//! or model) from one that is down (network, timeout, 5xx) — and the key never in an error. Audio
//! and transcripts are message content: nothing here logs them.

use reqwest::header::{self, HeaderMap};
use serde_json::{Value, json};

use crate::call::{read_body, redirected, request_error, secret_header, status_error};
use crate::error::{LlmError, malformed};
use crate::provider::{ApiKey, CallLimits};

/// Largest transcript answer read; a transcript of the longest voice note is far smaller.
const MAX_TRANSCRIPT_BYTES: usize = 1 << 20;
/// Largest audio answer read: minutes of Opus speech are well under this.
const MAX_SPEECH_BYTES: usize = 32 << 20;

/// A speech service: where, which model, and the key (none for a local server).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpeechService {
    /// API root including the version segment, as for chat (`https://api.openai.com/v1`,
    /// `http://localhost:8000/v1`); a trailing `/` is ignored.
    pub base_url: String,
    /// `None` or empty: no `Authorization` header is sent.
    pub api_key: Option<ApiKey>,
    /// `whisper-1`, `whisper-large-v3`, `tts-1`, …
    pub model: String,
}

impl SpeechService {
    fn url(&self, path: &str) -> Result<reqwest::Url, LlmError> {
        let base = self.base_url.trim().trim_end_matches('/');
        reqwest::Url::parse(&format!("{base}/{path}"))
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| LlmError::Config("the speech service's base URL is not a valid http(s) URL".to_owned()))
    }

    fn headers(&self) -> Result<HeaderMap, LlmError> {
        let mut headers = HeaderMap::new();
        if let Some(key) = self.api_key.as_ref().filter(|k| !k.is_empty()) {
            headers.insert(header::AUTHORIZATION, secret_header(&format!("Bearer {}", key.expose()))?);
        }
        Ok(headers)
    }

    fn secret(&self) -> &str {
        self.api_key.as_ref().map_or("", ApiKey::expose)
    }
}

/// The text spoken in `audio` (a voice note's bytes, sent whole as the multipart `file` named
/// `file_name` with `media_type`). An empty transcript (silence) is `Ok("")`; the caller
/// decides what to tell the member. `file_name` should end in an extension the service knows
/// (`.oga`/`.ogg` for a Telegram voice note): OpenAI picks the decoder by it.
pub async fn transcribe(
    http: &reqwest::Client,
    service: &SpeechService,
    audio: Vec<u8>,
    file_name: &str,
    media_type: &str,
    limits: &CallLimits,
) -> Result<String, LlmError> {
    let attempt = async {
        let file = reqwest::multipart::Part::bytes(audio)
            .file_name(file_name.to_owned())
            .mime_str(media_type)
            .map_err(|_| LlmError::Config(format!("{media_type:?} is not a media type")))?;
        let form = reqwest::multipart::Form::new()
            .text("model", service.model.clone())
            .text("response_format", "json")
            .part("file", file);
        let request = http.post(service.url("audio/transcriptions")?).headers(service.headers()?).multipart(form);
        let response = send(request, limits).await?;
        let body = read_body(response, limits.idle, MAX_TRANSCRIPT_BYTES).await?;
        let v: Value =
            serde_json::from_slice(&body).map_err(|e| malformed(format!("the transcription is not JSON: {e}")))?;
        match v.get("text") {
            Some(Value::String(text)) => Ok(text.trim().to_owned()),
            _ => Err(malformed("the transcription has no text")),
        }
    };
    within_total(attempt, limits).await.map_err(|e| e.redact(service.secret()))
}

/// `text` spoken by `voice` (`alloy`, `nova`, … — the service's names), as Ogg Opus audio
/// (`response_format: "opus"`): what Telegram's `sendVoice` takes.
pub async fn speak(
    http: &reqwest::Client,
    service: &SpeechService,
    text: &str,
    voice: &str,
    limits: &CallLimits,
) -> Result<Vec<u8>, LlmError> {
    let attempt = async {
        let body = json!({ "model": service.model, "input": text, "voice": voice, "response_format": "opus" });
        let request = http.post(service.url("audio/speech")?).headers(service.headers()?).json(&body);
        let response = send(request, limits).await?;
        let is_json = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim_start().starts_with("application/json"));
        if is_json {
            return Err(malformed("the speech service answered JSON instead of audio"));
        }
        let audio = read_body(response, limits.idle, MAX_SPEECH_BYTES).await?;
        if audio.is_empty() {
            return Err(malformed("the speech service answered no audio"));
        }
        Ok(audio)
    };
    within_total(attempt, limits).await.map_err(|e| e.redact(service.secret()))
}

/// Sends under the first-byte limit; a redirect or an error status becomes the error.
async fn send(request: reqwest::RequestBuilder, limits: &CallLimits) -> Result<reqwest::Response, LlmError> {
    let response = match tokio::time::timeout(limits.first_byte, request.send()).await {
        Err(_) => return Err(LlmError::Timeout { phase: "first_byte" }),
        Ok(Err(e)) => return Err(request_error(e, "first_byte")),
        Ok(Ok(response)) => response,
    };
    if response.status().is_redirection() {
        return Err(redirected(&response));
    }
    if !response.status().is_success() {
        return Err(status_error(response, limits).await);
    }
    Ok(response)
}

async fn within_total<T>(
    attempt: impl Future<Output = Result<T, LlmError>>,
    limits: &CallLimits,
) -> Result<T, LlmError> {
    tokio::time::timeout(limits.total, attempt).await.unwrap_or(Err(LlmError::Timeout { phase: "total" }))
}
