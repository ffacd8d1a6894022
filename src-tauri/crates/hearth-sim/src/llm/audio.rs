//! The OpenAI-compatible speech endpoints — what OpenAI, Groq and local whisper servers speak:
//! `POST /v1/audio/transcriptions` (multipart `file`, `model`, optional `response_format`,
//! `language`) answering `{"text": …}`, and `POST /v1/audio/speech` (JSON `model`, `input`,
//! `voice`, `response_format`) answering audio bytes. Both record what they got before
//! answering, honour the fake's latency and API key, and answer errors in OpenAI's format.

use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use serde_json::{Value, json};

use super::{Api, Shared, error_response, header_str, json_response, status_message};
use crate::multipart::{self, header_param};

/// What the simulated speech service hears in any audio, unless a test sets another transcript.
pub const DEFAULT_TRANSCRIPT: &str = "Hello Hearth, this is a voice note. Can you hear me?";

/// The file extensions OpenAI's transcription endpoint accepts; anything else is a 400, as there.
const AUDIO_EXTENSIONS: &[&str] = &["flac", "m4a", "mp3", "mp4", "mpeg", "mpga", "oga", "ogg", "wav", "webm"];
/// OpenAI's limit on a transcription upload.
const MAX_AUDIO_BYTES: usize = 25 * 1024 * 1024;
/// OpenAI's limit on the text to speak, in characters.
const MAX_SPEECH_INPUT: usize = 4096;

/// One `POST /audio/transcriptions` as received, recorded before anything is answered.
#[derive(Debug, Clone)]
pub struct Transcription {
    /// The `model` field; empty when missing.
    pub model: String,
    /// The `file` part's `filename`.
    pub file_name: Option<String>,
    /// The `file` part's `Content-Type`.
    pub content_type: Option<String>,
    /// The `file` part's bytes, exactly as received.
    pub bytes: Vec<u8>,
    pub response_format: Option<String>,
    pub language: Option<String>,
    /// From `Authorization: Bearer`.
    pub api_key: Option<String>,
    pub at: Instant,
}

/// One `POST /audio/speech` as received.
#[derive(Debug, Clone)]
pub struct Speech {
    pub model: String,
    /// The text to speak.
    pub input: String,
    pub voice: String,
    pub response_format: Option<String>,
    pub api_key: Option<String>,
    pub at: Instant,
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    header_str(headers, header::AUTHORIZATION.as_str()).map(|v| v.strip_prefix("Bearer ").unwrap_or(v).to_owned())
}

/// The refusal every request meets first: a wrong key, then a configured failure.
fn refusal(shared: &Shared, api_key: Option<&str>, failure: Option<u16>) -> Option<(u16, String)> {
    let s = shared.settings();
    if let Some(expected) = &s.api_key
        && api_key != Some(expected.as_str())
    {
        return Some((401, format!("Incorrect API key provided: {}.", api_key.unwrap_or("(none)"))));
    }
    failure.map(|code| (code, status_message(code).to_owned()))
}

pub(super) async fn transcription_route(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let parts = header_str(&headers, header::CONTENT_TYPE.as_str())
        .filter(|ct| ct.to_ascii_lowercase().starts_with("multipart/form-data"))
        .and_then(|ct| header_param(ct, "boundary"))
        .and_then(|boundary| multipart::parse(&body, &boundary).ok());
    let field = |name: &str| {
        parts.as_ref().and_then(|p| p.iter().find(|p| p.name == name && p.file_name.is_none())).map(|p| p.text())
    };
    let file = parts.as_ref().and_then(|p| p.iter().find(|p| p.name == "file")).cloned();
    let call = Transcription {
        model: field("model").unwrap_or_default(),
        file_name: file.as_ref().and_then(|f| f.file_name.clone()),
        content_type: file.as_ref().and_then(|f| f.content_type.clone()),
        bytes: file.as_ref().map(|f| f.bytes.clone()).unwrap_or_default(),
        response_format: field("response_format"),
        language: field("language"),
        api_key: bearer(&headers),
        at: Instant::now(),
    };
    let (latency, failure, transcript) = {
        let mut s = shared.settings();
        s.transcriptions.push(call.clone());
        (s.latency, s.transcription_failure, (s.transcriber)(&call))
    };
    shared.call_recorded.notify_waiters();
    if !shared.pause(latency).await {
        return error_response(Api::OpenAi, 503, "the fake LLM is shutting down", None);
    }
    if let Some((status, message)) = refusal(&shared, call.api_key.as_deref(), failure) {
        return error_response(Api::OpenAi, status, &message, None);
    }
    let problem = if parts.is_none() {
        Some("The request must be multipart/form-data.".to_owned())
    } else if file.is_none() {
        Some("you must provide a file".to_owned())
    } else if call.model.is_empty() {
        Some("you must provide a model parameter".to_owned())
    } else if !call
        .file_name
        .as_deref()
        .and_then(|n| n.rsplit_once('.'))
        .is_some_and(|(_, ext)| AUDIO_EXTENSIONS.contains(&ext.to_ascii_lowercase().as_str()))
    {
        Some(format!("Invalid file format. Supported formats: {AUDIO_EXTENSIONS:?}"))
    } else if call.bytes.is_empty() {
        Some("Audio file is too short. Minimum audio length is 0.1 seconds.".to_owned())
    } else if call.bytes.len() > MAX_AUDIO_BYTES {
        Some(format!("Maximum content size limit ({MAX_AUDIO_BYTES}) exceeded."))
    } else {
        None
    };
    if let Some(problem) = problem {
        return error_response(Api::OpenAi, 400, &problem, None);
    }
    let seconds = crate::media::ogg_opus_duration_secs(&call.bytes).unwrap_or(0);
    match call.response_format.as_deref().unwrap_or("json") {
        "json" => json_response(200, json!({ "text": transcript }).to_string(), None),
        "verbose_json" => {
            let body = json!({
                "task": "transcribe",
                "language": call.language.as_deref().unwrap_or("english"),
                "duration": f64::from(seconds),
                "text": transcript,
                "segments": [],
            });
            json_response(200, body.to_string(), None)
        }
        "text" | "srt" | "vtt" => {
            let mut response = Response::new(Body::from(format!("{transcript}\n")));
            response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
            response
        }
        other => error_response(
            Api::OpenAi,
            400,
            &format!("response_format '{other}' is not one of json, text, srt, verbose_json, vtt"),
            None,
        ),
    }
}

pub(super) async fn speech_route(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let text = |k: &str| json.get(k).and_then(Value::as_str).map(str::to_owned);
    let call = Speech {
        model: text("model").unwrap_or_default(),
        input: text("input").unwrap_or_default(),
        voice: text("voice").unwrap_or_default(),
        response_format: text("response_format"),
        api_key: bearer(&headers),
        at: Instant::now(),
    };
    let (latency, failure) = {
        let mut s = shared.settings();
        s.speeches.push(call.clone());
        (s.latency, s.speech_failure)
    };
    shared.call_recorded.notify_waiters();
    if !shared.pause(latency).await {
        return error_response(Api::OpenAi, 503, "the fake LLM is shutting down", None);
    }
    if let Some((status, message)) = refusal(&shared, call.api_key.as_deref(), failure) {
        return error_response(Api::OpenAi, status, &message, None);
    }
    let problem = if !json.is_object() {
        Some("We could not parse the JSON body of your request.".to_owned())
    } else if call.model.is_empty() {
        Some("you must provide a model parameter".to_owned())
    } else if call.input.is_empty() {
        Some("input: a non-empty string is required".to_owned())
    } else if call.input.chars().count() > MAX_SPEECH_INPUT {
        Some(format!("input: string too long, at most {MAX_SPEECH_INPUT} characters"))
    } else if call.voice.is_empty() {
        Some("voice: a string is required".to_owned())
    } else {
        None
    };
    if let Some(problem) = problem {
        return error_response(Api::OpenAi, 400, &problem, None);
    }
    // About 15 characters a second of speech, at least one second.
    let seconds = (call.input.chars().count() as u32 / 15).max(1);
    let content_type = match call.response_format.as_deref().unwrap_or("mp3") {
        "opus" => "audio/ogg",
        "mp3" => "audio/mpeg",
        "aac" => "audio/aac",
        "flac" => "audio/flac",
        "wav" => "audio/wav",
        "pcm" => "audio/pcm",
        other => {
            return error_response(
                Api::OpenAi,
                400,
                &format!("response_format '{other}' is not one of mp3, opus, aac, flac, wav, pcm"),
                None,
            );
        }
    };
    // The bytes are always Ogg Opus (the fake has no other encoder); only `opus` is honest.
    let mut response = Response::new(Body::from(crate::media::ogg_opus(seconds)));
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}
