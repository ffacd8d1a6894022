//! One attempt at a completion: build the request, send it, enforce the time limits, and turn
//! whatever comes back into a [`Completion`] or an [`LlmError`].

use std::time::Duration;

use hearth_proto::control::ProviderKind;
use hearth_proto::llm::{Completion, CompletionRequest, ToolCall, Usage};
use reqwest::header::{self, HeaderMap, HeaderValue};
use serde_json::Value;

use crate::error::{LlmError, clip, malformed};
use crate::estimate::{estimate_prompt_tokens_for, estimate_text_tokens};
use crate::provider::{CallLimits, Provider};
use crate::sse::{SseEvent, SseParser};
use crate::{anthropic, openai};

/// Largest successful body (or whole stream) read; a provider sending more is broken, and
/// memory is not spent finding out how broken.
const MAX_BODY_BYTES: usize = 16 << 20;
/// Of an error body only the start matters: at most 300 characters reach the error.
const MAX_ERROR_BODY_BYTES: usize = 64 << 10;

/// A client suited to [`complete`]: its connect timeout is `limits.connect`, which reqwest
/// cannot set per request. Reuse one client for every call so connections are pooled.
///
/// It follows no redirect: reqwest drops only `Authorization` when a redirect leaves the host,
/// so Anthropic's `x-api-key` (and any key of a provider behind a proxy) would be handed to
/// whatever host a provider — or anyone who can answer in its name — points to. A redirect
/// comes back as [`LlmError::Redirected`]. Use this client for every provider call, and for
/// nothing else that must follow redirects.
pub fn http_client(limits: &CallLimits) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .connect_timeout(limits.connect)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("hearth/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// A provider's answer before usage is settled.
#[derive(Debug, Default)]
pub(crate) struct Answer {
    pub text: String,
    pub model: Option<String>,
    /// `None` when the provider reported none.
    pub usage: Option<Usage>,
    pub finish_reason: Option<String>,
    pub tool_calls: Vec<ToolCall>,
}

/// Decodes one provider's event stream.
pub(crate) trait StreamDecoder {
    /// Takes the next event; `Ok(true)` once the terminal event has arrived.
    fn on_event(&mut self, event: &SseEvent) -> Result<bool, LlmError>;
    /// The answer's text so far, for a caller watching it being written.
    fn text(&self) -> &str;
    fn into_answer(self) -> Answer;
}

/// Hears the answer's text so far each time a stream adds to it (the whole text, not the
/// piece: a retried attempt starts again from nothing, and the listener just shows what it is
/// given). Not called for an answer that came in one body.
pub type OnText<'a> = &'a mut (dyn FnMut(&str) + Send);

/// One attempt, no retries. Phases are limited by `limits` (see [`CallLimits`]); every error
/// is scrubbed of the API key before it is returned.
pub async fn complete(
    http: &reqwest::Client,
    p: &Provider,
    req: &CompletionRequest,
    limits: &CallLimits,
) -> Result<Completion, LlmError> {
    complete_watching(http, p, req, limits, &mut |_: &str| {}).await
}

/// [`complete`], telling `on_text` the answer's text as it streams in.
pub async fn complete_watching(
    http: &reqwest::Client,
    p: &Provider,
    req: &CompletionRequest,
    limits: &CallLimits,
    on_text: OnText<'_>,
) -> Result<Completion, LlmError> {
    let result = match tokio::time::timeout(limits.total, attempt(http, p, req, limits, on_text)).await {
        Ok(result) => result,
        Err(_) => Err(LlmError::Timeout { phase: "total" }),
    };
    result.map_err(|e| e.redact(p.api_key.expose()))
}

async fn attempt(
    http: &reqwest::Client,
    p: &Provider,
    req: &CompletionRequest,
    limits: &CallLimits,
    on_text: OnText<'_>,
) -> Result<Completion, LlmError> {
    crate::images::check(req)?;
    let mut options = openai::BodyOptions::default();
    let response = loop {
        let response = send(http, p, req, limits, options).await?;
        if response.status().is_success() {
            break response;
        }
        if response.status().is_redirection() {
            // Even from a client that would follow it: the answer is an error, never a hop.
            return Err(redirected(&response));
        }
        let error = status_error(response, limits).await;
        if p.kind == ProviderKind::Openai
            && let LlmError::Status { status: 400, message, .. } = &error
            && let Some(next) = options.after_rejection(p.stream, message)
        {
            tracing::info!(model = %p.model, ?next, "the provider rejected a request parameter; trying without it");
            options = next;
            continue;
        }
        return Err(error);
    };

    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("application/json"));
    // A server that ignores `stream: true` and answers with one JSON body is still understood.
    let answer = if p.stream && !is_json {
        match p.kind {
            ProviderKind::Openai => read_stream(response, openai::Stream::default(), limits, on_text).await?,
            ProviderKind::Anthropic => read_stream(response, anthropic::Stream::default(), limits, on_text).await?,
        }
    } else {
        let body = read_body(response, limits.idle, MAX_BODY_BYTES).await?;
        match p.kind {
            ProviderKind::Openai => openai::parse_response(&body)?,
            ProviderKind::Anthropic => anthropic::parse_response(&body)?,
        }
    };
    Ok(into_completion(answer, p, req))
}

fn into_completion(answer: Answer, p: &Provider, req: &CompletionRequest) -> Completion {
    let usage = answer.usage.unwrap_or_else(|| {
        // Never lose the spend: charge a deliberate over-estimate rather than nothing.
        let usage = Usage {
            input_tokens: estimate_prompt_tokens_for(req, &p.model),
            output_tokens: estimate_text_tokens(&answer.text)
                + answer.tool_calls.iter().map(|c| estimate_text_tokens(&c.name) + estimate_text_tokens(&c.arguments)).sum::<u64>(),
            cached_input_tokens: 0,
            cache_write_tokens: 0,
        };
        tracing::warn!(
            provider = p.kind.as_str(),
            model = %p.model,
            input_tokens = usage.input_tokens,
            output_tokens = usage.output_tokens,
            "the provider reported no token usage; charging an estimate",
        );
        usage
    });
    Completion {
        text: answer.text,
        model: answer.model.filter(|m| !m.is_empty()).unwrap_or_else(|| p.model.clone()),
        usage,
        finish_reason: answer.finish_reason,
        tool_calls: answer.tool_calls,
    }
}

async fn send(
    http: &reqwest::Client,
    p: &Provider,
    req: &CompletionRequest,
    limits: &CallLimits,
    options: openai::BodyOptions,
) -> Result<reqwest::Response, LlmError> {
    let base = p.base_url.trim().trim_end_matches('/');
    let key = p.api_key.expose();
    let mut headers = HeaderMap::new();
    let (url, body) = match p.kind {
        ProviderKind::Openai => {
            if !key.is_empty() {
                headers.insert(header::AUTHORIZATION, secret_header(&format!("Bearer {key}"))?);
            }
            (format!("{base}/chat/completions"), openai::request_body(&p.model, req, p.stream, options))
        }
        ProviderKind::Anthropic => {
            if !key.is_empty() {
                headers.insert("x-api-key", secret_header(key)?);
            }
            headers.insert("anthropic-version", HeaderValue::from_static(anthropic::API_VERSION));
            (format!("{base}/messages"), anthropic::request_body(&p.model, req, p.stream))
        }
    };
    if p.stream {
        headers.insert(header::ACCEPT, HeaderValue::from_static("text/event-stream"));
    }
    let url = reqwest::Url::parse(&url)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .ok_or_else(|| LlmError::Config("the base URL is not a valid http(s) URL".to_owned()))?;
    let request = http.post(url).headers(headers).json(&body).send();
    match tokio::time::timeout(limits.first_byte, request).await {
        Err(_) => Err(LlmError::Timeout { phase: "first_byte" }),
        Ok(Err(e)) => Err(request_error(e, "first_byte")),
        Ok(Ok(response)) => Ok(response),
    }
}

/// A header carrying the key, marked sensitive so reqwest and hyper never print it.
pub(crate) fn secret_header(value: &str) -> Result<HeaderValue, LlmError> {
    let mut v = HeaderValue::from_str(value).map_err(|_| {
        LlmError::Config(
            "the API key contains characters that cannot be sent (a line break pasted with it?)".to_owned(),
        )
    })?;
    v.set_sensitive(true);
    Ok(v)
}

/// Maps a reqwest failure, without the URL (it could carry anything the admin pasted).
pub(crate) fn request_error(e: reqwest::Error, phase: &'static str) -> LlmError {
    if e.is_timeout() {
        return LlmError::Timeout { phase: if e.is_connect() { "connect" } else { phase } };
    }
    if e.is_builder() {
        return LlmError::Config("the request could not be built from the provider settings".to_owned());
    }
    let e = e.without_url();
    let mut message = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    LlmError::Network(clip(&message))
}

/// Reads a successful body, with `idle` as the longest wait for each piece.
pub(crate) async fn read_body(
    mut response: reqwest::Response,
    idle: Duration,
    max: usize,
) -> Result<Vec<u8>, LlmError> {
    let mut body = Vec::new();
    while let Some(chunk) = next_chunk(&mut response, idle).await? {
        if body.len() + chunk.len() > max {
            return Err(malformed(format!("the response is larger than {max} bytes")));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

async fn next_chunk(response: &mut reqwest::Response, idle: Duration) -> Result<Option<bytes::Bytes>, LlmError> {
    match tokio::time::timeout(idle, response.chunk()).await {
        Err(_) => Err(LlmError::Timeout { phase: "idle" }),
        Ok(result) => result.map_err(|e| request_error(e, "idle")),
    }
}

async fn read_stream<D: StreamDecoder>(
    mut response: reqwest::Response,
    mut decoder: D,
    limits: &CallLimits,
    on_text: OnText<'_>,
) -> Result<Answer, LlmError> {
    let mut parser = SseParser::new();
    let mut events = Vec::new();
    let mut received = 0usize;
    let mut told = 0usize;
    loop {
        let chunk = next_chunk(&mut response, limits.idle).await?;
        match &chunk {
            Some(bytes) => {
                received += bytes.len();
                if received > MAX_BODY_BYTES {
                    return Err(malformed(format!("the stream is larger than {MAX_BODY_BYTES} bytes")));
                }
                parser.push(bytes, &mut events);
            }
            None => parser.finish(&mut events),
        }
        for event in events.drain(..) {
            if decoder.on_event(&event)? {
                return Ok(decoder.into_answer());
            }
        }
        // Once per chunk, not per event: a listener hears each arrival once.
        if decoder.text().len() != told {
            told = decoder.text().len();
            on_text(decoder.text());
        }
        if chunk.is_none() {
            return Err(LlmError::Malformed("stream ended early".to_owned()));
        }
    }
}

/// The error for a redirect: where it was asked (no query, no user info) and where it points.
pub(crate) fn redirected(response: &reqwest::Response) -> LlmError {
    let u = response.url();
    let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
    let url = format!("{}://{}{port}{}", u.scheme(), u.host_str().unwrap_or(""), u.path());
    let location = response
        .headers()
        .get(header::LOCATION)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).chars().filter(|c| !c.is_control()).collect::<String>())
        .filter(|l| !l.is_empty())
        .map_or_else(|| "nowhere in particular".to_owned(), |l| clip(&l));
    LlmError::Redirected { status: response.status().as_u16(), url, location }
}

/// The error for a non-success status, with the provider's message and its retry hint.
pub(crate) async fn status_error(response: reqwest::Response, limits: &CallLimits) -> LlmError {
    let status = response.status();
    let retry_after = retry_after(response.headers());
    let body = read_error_body(response, limits.idle).await;
    let mut message = error_message(&body);
    if message.is_empty() {
        message = status.canonical_reason().unwrap_or("no message").to_owned();
    }
    LlmError::Status { status: status.as_u16(), retry_after, message }
}

/// As much of an error body as arrives promptly, up to [`MAX_ERROR_BODY_BYTES`]; the status
/// alone is already an answer, so read failures just end the body.
async fn read_error_body(mut response: reqwest::Response, idle: Duration) -> Vec<u8> {
    let mut body = Vec::new();
    while body.len() < MAX_ERROR_BODY_BYTES {
        match next_chunk(&mut response, idle).await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    body
}

/// `retry-after-ms` (OpenAI) or `Retry-After` in seconds, fractions allowed. HTTP dates are
/// not understood; providers send seconds.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let number = |name: &str| headers.get(name)?.to_str().ok()?.trim().parse::<f64>().ok();
    if let Some(ms) = number("retry-after-ms") {
        return Duration::try_from_secs_f64(ms / 1000.0).ok();
    }
    Duration::try_from_secs_f64(number("retry-after")?).ok()
}

/// The human part of an error body: `error.message` in both providers' formats, or the
/// `message`/`detail` some compatible servers use, or the raw text; at most 300 characters.
fn error_message(body: &[u8]) -> String {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return clip(&String::from_utf8_lossy(body));
    };
    let text = [v.pointer("/error/message"), v.get("error"), v.get("message"), v.get("detail")]
        .into_iter()
        .flatten()
        .find_map(Value::as_str);
    match text {
        Some(t) => clip(t),
        None => clip(&v.to_string()),
    }
}

/// An error reported inside a 200 body or a stream, mapped to the HTTP status it stands for
/// so retry decisions work the same way.
pub(crate) fn in_band_error(error: &Value) -> LlmError {
    let message = error
        .get("message")
        .and_then(Value::as_str)
        .or_else(|| error.as_str())
        .map(clip)
        .unwrap_or_else(|| clip(&error.to_string()));
    let numeric = error.get("code").and_then(Value::as_u64).filter(|c| (400..=599).contains(c));
    let named =
        [error.get("type"), error.get("code")].into_iter().flatten().filter_map(Value::as_str).find_map(|name| {
            match name {
                n if n.contains("rate_limit") => Some(429),
                "invalid_request_error" | "invalid_request" => Some(400),
                "authentication_error" | "invalid_api_key" => Some(401),
                "permission_error" => Some(403),
                "not_found_error" | "model_not_found" => Some(404),
                "request_too_large" => Some(413),
                "timeout_error" => Some(504),
                "overloaded_error" => Some(529),
                "api_error" | "server_error" => Some(500),
                _ => None,
            }
        });
    // Unknown in-band errors count as a bad gateway: retryable, as most such errors are
    // upstream trouble.
    let status = numeric.map(|c| c as u16).or(named).unwrap_or(502);
    LlmError::Status { status, retry_after: None, message }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::ApiKey;
    use hearth_proto::llm::ChatMessage;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn missing_usage_is_charged_as_an_estimate() {
        let p = Provider {
            kind: ProviderKind::Openai,
            base_url: String::new(),
            model: "asked-for".into(),
            api_key: ApiKey::new("k"),
            stream: true,
        };
        let req = CompletionRequest { system: "s".into(), messages: vec![ChatMessage::user("hello")], max_tokens: 5, tools: vec![] };
        let c = into_completion(
            Answer { text: "abcdef".into(), model: Some(String::new()), ..Answer::default() },
            &p,
            &req,
        );
        assert_eq!(
            c.usage,
            Usage { input_tokens: crate::estimate_prompt_tokens(&req), output_tokens: 6, ..Usage::default() }
        );
        assert_eq!(c.model, "asked-for");
    }

    /// JSON built from the field names and type tags the decoders look at, so random values
    /// land where a parser would trip over them.
    fn arb_json() -> impl Strategy<Value = Value> {
        const WORDS: &[&str] = &[
            "type",
            "choices",
            "message",
            "content",
            "delta",
            "text",
            "usage",
            "prompt_tokens",
            "completion_tokens",
            "input_tokens",
            "output_tokens",
            "cache_read_input_tokens",
            "cache_creation_input_tokens",
            "prompt_tokens_details",
            "cached_tokens",
            "error",
            "model",
            "finish_reason",
            "stop_reason",
            "content_block",
            "refusal",
            "code",
            "message_start",
            "content_block_start",
            "content_block_delta",
            "message_delta",
            "message_stop",
            "text_delta",
        ];
        let word = proptest::sample::select(WORDS);
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            word.clone().prop_map(Value::from),
            ".{0,8}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 48, 5, move |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::vec((word.clone(), inner), 0..5)
                    .prop_map(|fields| Value::Object(fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn decoders_never_panic(values in proptest::collection::vec(arb_json(), 1..6)) {
            let mut oa = openai::Stream::default();
            let mut an = anthropic::Stream::default();
            for v in &values {
                let text = v.to_string();
                let _ = openai::parse_response(text.as_bytes());
                let _ = anthropic::parse_response(text.as_bytes());
                let _ = in_band_error(v);
                let event = SseEvent { event: None, data: text };
                let _ = oa.on_event(&event);
                let _ = an.on_event(&event);
            }
            let _ = oa.into_answer();
            let _ = an.into_answer();
        }
    }

    #[test]
    fn retry_after_headers() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert("retry-after", HeaderValue::from_static("2"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        h.insert("retry-after-ms", HeaderValue::from_static("1500"));
        assert_eq!(retry_after(&h), Some(Duration::from_millis(1500)));
        for bad in ["-1", "NaN", "inf", "Wed, 21 Oct 2015 07:28:00 GMT", "1e400"] {
            let mut h = HeaderMap::new();
            h.insert("retry-after", HeaderValue::from_static(bad));
            assert_eq!(retry_after(&h), None, "{bad}");
        }
    }

    #[test]
    fn error_messages_from_both_formats_and_raw_text() {
        assert_eq!(error_message(br#"{"error":{"message":"Rate limited","type":"requests"}}"#), "Rate limited");
        assert_eq!(error_message(br#"{"type":"error","error":{"type":"x","message":"Overloaded"}}"#), "Overloaded");
        assert_eq!(error_message(br#"{"error":"model not found"}"#), "model not found");
        assert_eq!(error_message(br#"{"detail":"Not Found"}"#), "Not Found");
        assert_eq!(error_message(b"<html>bad gateway</html>"), "<html>bad gateway</html>");
        assert_eq!(error_message(&vec![b'x'; 5000]).chars().count(), 301);
    }

    #[test]
    fn in_band_errors_map_to_statuses() {
        let status = |v: Value| match in_band_error(&v) {
            LlmError::Status { status, .. } => status,
            other => panic!("{other:?}"),
        };
        assert_eq!(status(json!({"type": "overloaded_error", "message": "x"})), 529);
        assert_eq!(status(json!({"code": 429, "message": "x"})), 429);
        assert_eq!(status(json!({"code": "rate_limit_exceeded"})), 429);
        assert_eq!(status(json!({"code": 200})), 502);
        assert_eq!(status(json!("something")), 502);
        assert_eq!(status(json!(null)), 502);
    }
}
