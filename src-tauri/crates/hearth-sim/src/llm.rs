//! A fake LLM provider on loopback speaking both wire formats Hearth uses: OpenAI chat
//! completions (`POST /v1/chat/completions`) and Anthropic Messages (`POST /v1/messages`),
//! streaming and not — images included (OpenAI `image_url` parts with data URLs, Anthropic
//! `image` blocks; read them with [`LlmCall::images`]) — and the OpenAI-compatible speech
//! endpoints (`POST /v1/audio/transcriptions`, `POST /v1/audio/speech`; see
//! [`FakeLlm::transcriptions`], [`FakeLlm::speeches`]). Tests, benchmarks and `hearth demo`
//! share it.
//!
//! What it answers, in order of precedence:
//! 1. a request with the wrong API key (when [`FakeLlm::require_api_key`] was called) gets 401,
//!    and a request missing what the real provider requires gets 400 — both in the provider's
//!    error format, before any rule or reply is consumed;
//! 2. the first [`Rule`] whose `contains` is a substring of [`LlmCall::all_text`] and which has
//!    `times` left: its fault, or its reply;
//! 3. the oldest reply queued with [`FakeLlm::push_reply`];
//! 4. the responder ([`FakeLlm::set_responder`]), by default `You said: <last user text>`.
//!
//! A request showing images to a fake that cannot see ([`FakeLlm::set_vision`]`(false)`) is
//! refused with 400 between steps 1 and 2, in the provider's words: OpenAI's "Invalid content
//! type. image_url is only supported by certain models.", Anthropic's "'<model>' does not
//! support image input." (both name "image"; that is what a caller can match on).
//!
//! Token usage is deterministic so tests can assert exact numbers: a text costs
//! [`token_count`] = ⌈chars / 4⌉ tokens; the prompt is [`LlmCall::all_text`] plus
//! [`IMAGE_TOKENS`] per image ([`LlmCall::prompt_tokens`]), the output is the reply's text (or,
//! for a tool call, its name and JSON arguments). Each provider reports it in its own shape —
//! see the `openai` and `anthropic` submodules.
//!
//! Submodules: `openai` and `anthropic` render bodies, SSE frames and errors in each provider's
//! exact format; `audio` serves the speech endpoints; this file holds the handle, the request
//! recording and the decision logic.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::post;
use serde_json::Value;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

mod anthropic;
mod audio;
mod cache;
mod openai;

pub use audio::{DEFAULT_TRANSCRIPT, Speech, Transcription};
pub use cache::{CACHE_TTL, MIN_CACHED_TOKENS};

/// How the note a Hearth worker puts before the member's words in a turn's message starts and
/// ends (`hearth-worker`'s `prompt::turn_note`): what changes every turn, kept after the
/// cacheable prefix. [`LlmCall::last_user_text`] leaves it out.
pub const HEARTH_NOTE_START: &str = "<hearth>\n";
pub const HEARTH_NOTE_END: &str = "</hearth>\n\n";

/// What the fake bills for one image in a prompt, whatever its size: OpenAI's price of a
/// low-detail image. Real providers bill by size; the point here is only that images cost
/// something and that the number is predictable.
pub const IMAGE_TOKENS: u64 = 85;

/// Request bodies up to this are read (axum's default is 2 MB): a 20 MB photo in base64, or a
/// 25 MB audio upload, must reach the fake to be refused or recorded.
const MAX_REQUEST_BODY: usize = 64 * 1024 * 1024;

/// How long [`Fault::Hang`] holds a request before giving up, so that a forgotten fake can never
/// keep a test process alive for ever.
const HANG_LIMIT: Duration = Duration::from_secs(600);

/// Which wire format a request arrived in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Api {
    /// `POST /v1/chat/completions`.
    OpenAi,
    /// `POST /v1/messages`.
    Anthropic,
}

/// One request as the fake received it, recorded before anything is answered — so faulted,
/// unauthorised and malformed requests are all in [`FakeLlm::calls`].
#[derive(Debug, Clone)]
pub struct LlmCall {
    pub api: Api,
    /// `model` from the body; empty when missing.
    pub model: String,
    /// `stream` from the body; false when missing.
    pub stream: bool,
    /// The key the client sent (`Authorization: Bearer` for OpenAI, `x-api-key` for
    /// Anthropic), so tests can check which key reached the provider.
    pub api_key: Option<String>,
    /// The JSON body; `Null` when it was not JSON.
    pub body: Value,
    pub at: Instant,
}

impl LlmCall {
    /// The system prompt and every message's text, joined with `\n`: what rules match against
    /// and what prompt tokens are counted from.
    pub fn all_text(&self) -> String {
        let mut parts = Vec::new();
        if self.api == Api::Anthropic
            && let Some(system) = self.body.get("system")
        {
            parts.extend(content_texts(system));
        }
        for message in self.messages() {
            if let Some(content) = message.get("content") {
                parts.extend(content_texts(content));
            }
        }
        parts.join("\n")
    }

    /// What the member wrote: the text of the last `user` message without the note Hearth's
    /// worker opens a turn's message with ([`HEARTH_NOTE_END`]: the time, remembered facts);
    /// empty when there is none.
    pub fn last_user_text(&self) -> String {
        let text = self
            .messages()
            .iter()
            .rev()
            .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
            .and_then(|m| m.get("content"))
            .map(|c| content_texts(c).join("\n"))
            .unwrap_or_default();
        match text.strip_prefix(HEARTH_NOTE_START).and_then(|rest| rest.split_once(HEARTH_NOTE_END)) {
            Some((_, member)) => member.to_owned(),
            None => text,
        }
    }

    /// The note Hearth opened the last `user` message with (the time, remembered facts), if any.
    pub fn last_user_note(&self) -> Option<String> {
        let call = self.messages().iter().rev().find(|m| m.get("role").and_then(Value::as_str) == Some("user"))?;
        let text = content_texts(call.get("content")?).join("\n");
        let (note, _) = text.strip_prefix(HEARTH_NOTE_START)?.split_once(HEARTH_NOTE_END)?;
        Some(note.to_owned())
    }

    /// Prompt tokens the fake bills for this call (cached ones included): the
    /// [`token_count`] of [`all_text`](Self::all_text), plus [`IMAGE_TOKENS`] per image.
    pub fn prompt_tokens(&self) -> u64 {
        token_count(&self.all_text()) + IMAGE_TOKENS * self.images().len() as u64
    }

    /// Every image in the request, oldest message first: OpenAI `image_url` parts and
    /// Anthropic `image` blocks.
    pub fn images(&self) -> Vec<ImagePart> {
        self.messages()
            .iter()
            .enumerate()
            .flat_map(|(i, m)| {
                let blocks = m.get("content").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]);
                blocks.iter().filter_map(move |b| image_part(self.api, i, b))
            })
            .collect()
    }

    /// The images of the last `user` message (what the member just sent).
    pub fn last_user_images(&self) -> Vec<ImagePart> {
        let Some(last) = self.messages().iter().rposition(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        else {
            return Vec::new();
        };
        self.images().into_iter().filter(|p| p.message_index == last).collect()
    }

    /// The system prompt as sent: Anthropic's `system` field, or the first OpenAI message with
    /// role `system`.
    pub fn system_text(&self) -> String {
        match self.api {
            Api::Anthropic => self.body.get("system").map(|s| content_texts(s).join("\n")),
            Api::OpenAi => self
                .messages()
                .iter()
                .find(|m| m.get("role").and_then(Value::as_str) == Some("system"))
                .and_then(|m| m.get("content"))
                .map(|c| content_texts(c).join("\n")),
        }
        .unwrap_or_default()
    }

    /// Names of the tools the request offered, in either format.
    pub fn tool_names(&self) -> Vec<String> {
        let tools = self.body.get("tools").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]);
        tools
            .iter()
            .filter_map(|t| t.pointer("/function/name").or_else(|| t.get("name")).and_then(Value::as_str))
            .map(str::to_owned)
            .collect()
    }

    /// Every tool result the request carries, oldest first: (call id, text, is_error). OpenAI
    /// has no error flag, so it is always false there.
    pub fn tool_results(&self) -> Vec<(String, String, bool)> {
        let mut out = Vec::new();
        for m in self.messages() {
            let content = m.get("content").unwrap_or(&Value::Null);
            if m.get("role").and_then(Value::as_str) == Some("tool") {
                let id = m.get("tool_call_id").and_then(Value::as_str).unwrap_or_default();
                out.push((id.to_owned(), content_texts(content).join("\n"), false));
            }
            for b in content.as_array().map(Vec::as_slice).unwrap_or(&[]) {
                if b.get("type").and_then(Value::as_str) == Some("tool_result") {
                    let id = b.get("tool_use_id").and_then(Value::as_str).unwrap_or_default();
                    let text = content_texts(b.get("content").unwrap_or(&Value::Null)).join("\n");
                    out.push((id.to_owned(), text, b.get("is_error").and_then(Value::as_bool).unwrap_or(false)));
                }
            }
        }
        out
    }

    fn messages(&self) -> &[Value] {
        self.body.get("messages").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Each message's role and text, in order (OpenAI's `system` message included): what the
    /// model was told, turn by turn.
    pub fn conversation(&self) -> Vec<(String, String)> {
        self.messages()
            .iter()
            .map(|m| {
                let role = m.get("role").and_then(Value::as_str).unwrap_or_default().to_owned();
                (role, m.get("content").map(|c| content_texts(c).join("\n")).unwrap_or_default())
            })
            .collect()
    }
}

/// One image in a chat request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImagePart {
    /// Index of the message holding it in the request's `messages`.
    pub message_index: usize,
    /// From the data URL (`data:<media_type>;base64,…`) or Anthropic's `source.media_type`;
    /// empty for a plain URL.
    pub media_type: String,
    /// The decoded bytes; empty for a plain URL, and `None` when the base64 is invalid.
    pub data: Option<Vec<u8>>,
    /// A non-`data:` URL (OpenAI `image_url.url`, Anthropic `source.url`), when that is what
    /// was sent.
    pub url: Option<String>,
    /// OpenAI's `image_url.detail`, when given.
    pub detail: Option<String>,
}

/// The image in one content block, if it is one.
fn image_part(api: Api, message_index: usize, block: &Value) -> Option<ImagePart> {
    use base64::Engine as _;
    let decode = |b64: &str| base64::engine::general_purpose::STANDARD.decode(b64).ok();
    let kind = block.get("type").and_then(Value::as_str)?;
    let mut part = ImagePart { message_index, media_type: String::new(), data: None, url: None, detail: None };
    match (api, kind) {
        (Api::OpenAi, "image_url") => {
            let image = block.get("image_url")?;
            let url = image.get("url").and_then(Value::as_str).unwrap_or_default();
            part.detail = image.get("detail").and_then(Value::as_str).map(str::to_owned);
            match url.strip_prefix("data:").and_then(|rest| rest.split_once(";base64,")) {
                Some((media_type, b64)) => {
                    part.media_type = media_type.to_owned();
                    part.data = decode(b64);
                }
                None => {
                    part.url = Some(url.to_owned());
                    part.data = Some(Vec::new());
                }
            }
        }
        (Api::Anthropic, "image") => {
            let source = block.get("source")?;
            match source.get("type").and_then(Value::as_str) {
                Some("url") => {
                    part.url = source.get("url").and_then(Value::as_str).map(str::to_owned);
                    part.data = Some(Vec::new());
                }
                _ => {
                    part.media_type = source.get("media_type").and_then(Value::as_str).unwrap_or_default().to_owned();
                    part.data = source.get("data").and_then(Value::as_str).and_then(decode);
                }
            }
        }
        _ => return None,
    }
    Some(part)
}

/// The fake's deterministic tokenizer: ⌈chars / 4⌉.
pub fn token_count(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4)
}

/// Texts inside a `content` (or Anthropic `system`) value: a plain string, or the `text` of each
/// block in an array of content blocks, and the content of each `tool_result` block.
fn content_texts(content: &Value) -> Vec<String> {
    match content {
        Value::String(s) => vec![s.clone()],
        Value::Array(blocks) => blocks
            .iter()
            .flat_map(|b| match (b.get("text").and_then(Value::as_str), b.get("content")) {
                (Some(text), _) => vec![text.to_owned()],
                (None, Some(inner)) if b.get("type").and_then(Value::as_str) == Some("tool_result") => {
                    content_texts(inner)
                }
                _ => Vec::new(),
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// What the model "says".
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Text(String),
    /// Rendered as an OpenAI `tool_calls` entry or an Anthropic `tool_use` block, with the
    /// provider's tool-call stop reason.
    ToolCall {
        name: String,
        arguments: Value,
    },
    /// Several tool calls in one answer, with some text before them (may be empty), as models
    /// do when they call tools in parallel.
    ToolCalls {
        text: String,
        calls: Vec<(String, Value)>,
    },
}

impl Reply {
    pub fn text(text: impl Into<String>) -> Self {
        Self::Text(text.into())
    }

    pub fn tool_call(name: impl Into<String>, arguments: Value) -> Self {
        Self::ToolCall { name: name.into(), arguments }
    }

    /// `text` and tool `calls` (name, arguments) in one answer.
    pub fn tool_calls(text: impl Into<String>, calls: Vec<(&str, Value)>) -> Self {
        Self::ToolCalls { text: text.into(), calls: calls.into_iter().map(|(n, a)| (n.to_owned(), a)).collect() }
    }

    /// The answer's text and tool calls, whatever the variant.
    fn parts(&self) -> (&str, Vec<(&str, &Value)>) {
        match self {
            Self::Text(t) => (t, Vec::new()),
            Self::ToolCall { name, arguments } => ("", vec![(name.as_str(), arguments)]),
            Self::ToolCalls { text, calls } => (text, calls.iter().map(|(n, a)| (n.as_str(), a)).collect()),
        }
    }

    /// What output tokens are counted from.
    fn billed_text(&self) -> String {
        let (text, calls) = self.parts();
        let mut out = text.to_owned();
        for (name, arguments) in calls {
            out.push_str(name);
            out.push_str(&arguments.to_string());
        }
        out
    }
}

/// Something going wrong on purpose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this status and a provider-shaped error body; `retry_after_secs` becomes a
    /// `Retry-After` header.
    Status { code: u16, retry_after_secs: Option<u64> },
    /// Never answer: hold the request until shutdown, or ten minutes at most.
    Hang,
    /// Non-stream: a 200 whose JSON body stops halfway. Stream: a 200 whose event stream stops
    /// halfway, before the terminal event (`[DONE]` / `message_stop`), and closes cleanly.
    Truncated,
    /// A 200 that is not the provider's format: wrong-typed JSON (non-stream), or an event
    /// whose data is not JSON (stream).
    Malformed,
    /// Answer with a redirect: this status (301, 302, 307, 308) and `Location: location`.
    Redirect { code: u16, location: String },
}

/// A scripted behaviour for requests whose text contains `contains`. Build one with
/// [`Rule::matching`] and the chaining methods, or with a struct literal.
#[derive(Debug, Clone, Default)]
pub struct Rule {
    /// Substring of [`LlmCall::all_text`]; `""` matches every request.
    pub contains: String,
    /// Extra wait before the first byte, on top of [`FakeLlm::set_latency`].
    pub delay: Option<Duration>,
    /// Takes precedence over `reply`.
    pub fault: Option<Fault>,
    /// Without a fault or a reply, the rule only adds its delay and the queue or responder
    /// answers.
    pub reply: Option<Reply>,
    /// How many more requests the rule applies to; `None` means for ever.
    pub times: Option<u32>,
}

impl Rule {
    pub fn matching(contains: impl Into<String>) -> Self {
        Self { contains: contains.into(), ..Self::default() }
    }
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }
    pub fn fault(mut self, fault: Fault) -> Self {
        self.fault = Some(fault);
        self
    }
    pub fn reply(mut self, reply: Reply) -> Self {
        self.reply = Some(reply);
        self
    }
    pub fn times(mut self, times: u32) -> Self {
        self.times = Some(times);
        self
    }
}

type Responder = Arc<dyn Fn(&LlmCall) -> Reply + Send + Sync>;
type Transcriber = Arc<dyn Fn(&Transcription) -> String + Send + Sync>;

/// Handle to a running fake. Clones share one server, which stops when the last clone is
/// dropped or [`shutdown`](Self::shutdown) is called.
#[derive(Clone)]
pub struct FakeLlm {
    shared: Arc<Shared>,
    addr: SocketAddr,
    /// Held only by handles, never by the server task, so its drop means "nobody can use the
    /// fake any more".
    _stop_on_drop: Arc<StopOnDrop>,
}

struct StopOnDrop(CancellationToken);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

impl std::fmt::Debug for FakeLlm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeLlm").field("base_url", &self.base_url()).finish_non_exhaustive()
    }
}

struct Shared {
    /// std Mutex: every critical section is a few field reads and writes, never an `.await`.
    state: Mutex<Settings>,
    /// Woken whenever a call is recorded, for [`FakeLlm::wait_for_calls`].
    call_recorded: Notify,
    /// Cancelled at shutdown: stops the server and wakes hanging and streaming responses.
    stop: CancellationToken,
    /// Source of unique response ids.
    next_id: AtomicU64,
    /// Streamed responses the client went away from before their last frame.
    streams_dropped: AtomicU64,
    /// Chat requests being answered now ([`InFlight`]), and the most there were at once.
    in_flight: AtomicU64,
    peak_in_flight: AtomicU64,
}

struct Settings {
    latency: Duration,
    chunk_delay: Duration,
    responder: Responder,
    replies: VecDeque<Reply>,
    rules: Vec<Rule>,
    api_key: Option<String>,
    cached_input_tokens: u64,
    cache_creation_input_tokens: u64,
    /// Set: cache use is worked out per request as the provider would (`cache.rs`), instead of
    /// the two fixed counts above.
    prompt_cache: Option<cache::PromptCache>,
    calls: Vec<LlmCall>,
    /// False: a chat request with an image is refused (a model that cannot see).
    vision: bool,
    transcriber: Transcriber,
    transcription_failure: Option<u16>,
    transcriptions: Vec<Transcription>,
    speech_failure: Option<u16>,
    speeches: Vec<Speech>,
}

impl FakeLlm {
    /// Starts the fake on 127.0.0.1 with an OS-chosen port.
    ///
    /// # Panics
    /// When loopback cannot be bound — a test environment problem, not a test outcome.
    pub async fn start() -> FakeLlm {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0 for the fake LLM");
        let addr = listener.local_addr().expect("local address of the fake LLM");
        let stop = CancellationToken::new();
        let shared = Arc::new(Shared {
            state: Mutex::new(Settings {
                latency: Duration::ZERO,
                chunk_delay: Duration::ZERO,
                responder: Arc::new(|call: &LlmCall| Reply::text(format!("You said: {}", call.last_user_text()))),
                replies: VecDeque::new(),
                rules: Vec::new(),
                api_key: None,
                cached_input_tokens: 0,
                cache_creation_input_tokens: 0,
                prompt_cache: None,
                calls: Vec::new(),
                vision: true,
                transcriber: Arc::new(|_: &Transcription| DEFAULT_TRANSCRIPT.to_owned()),
                transcription_failure: None,
                transcriptions: Vec::new(),
                speech_failure: None,
                speeches: Vec::new(),
            }),
            call_recorded: Notify::new(),
            stop: stop.clone(),
            next_id: AtomicU64::new(1),
            streams_dropped: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            peak_in_flight: AtomicU64::new(0),
        });
        let app = Router::new()
            .route("/v1/chat/completions", post(openai_route))
            .route("/v1/messages", post(anthropic_route))
            .route("/v1/audio/transcriptions", post(audio::transcription_route))
            .route("/v1/audio/speech", post(audio::speech_route))
            .layer(DefaultBodyLimit::max(MAX_REQUEST_BODY))
            .with_state(shared.clone());
        let server_stop = stop.clone();
        tokio::spawn(async move {
            let served = axum::serve(listener, app).with_graceful_shutdown(server_stop.cancelled_owned()).await;
            if let Err(e) = served {
                tracing::warn!(error = %e, "fake LLM server stopped with an error");
            }
        });
        FakeLlm { shared, addr, _stop_on_drop: Arc::new(StopOnDrop(stop)) }
    }

    /// `http://127.0.0.1:PORT/v1` — what a provider's `base_url` is set to.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Wait before the first byte of every response (errors included).
    pub fn set_latency(&self, d: Duration) {
        self.settings().latency = d;
    }

    /// Wait between streamed chunks (default none).
    pub fn set_stream_chunk_delay(&self, d: Duration) {
        self.settings().chunk_delay = d;
    }

    /// How many streamed responses were dropped before their last frame: the client closed the
    /// connection (a stopped answer), seen when the next frame could not be written.
    pub fn streams_dropped(&self) -> u64 {
        self.shared.streams_dropped.load(Ordering::Relaxed)
    }

    /// Chat requests being answered right now: from their arrival (latency included) to the last
    /// byte of their answer, or until the client went away.
    pub fn in_flight(&self) -> u64 {
        self.shared.in_flight.load(Ordering::Relaxed)
    }

    /// The most chat requests that were being answered at once since the start (or the last
    /// [`reset_peak_in_flight`](Self::reset_peak_in_flight)).
    pub fn peak_in_flight(&self) -> u64 {
        self.shared.peak_in_flight.load(Ordering::Relaxed)
    }

    /// Starts counting the peak afresh from the requests in flight now.
    pub fn reset_peak_in_flight(&self) {
        self.shared.peak_in_flight.store(self.in_flight(), Ordering::Relaxed);
    }

    /// What answers when no rule and no queued reply does. Called without any lock held, so it
    /// may use the fake's handle.
    pub fn set_responder(&self, f: impl Fn(&LlmCall) -> Reply + Send + Sync + 'static) {
        self.settings().responder = Arc::new(f);
    }

    /// Queue a reply; queued replies are used oldest first, before the responder.
    pub fn push_reply(&self, r: Reply) {
        self.settings().replies.push_back(r);
    }

    /// Add a rule after the existing ones; the first matching rule with `times` left applies.
    pub fn add_rule(&self, rule: Rule) {
        self.settings().rules.push(rule);
    }

    /// From now on a request without exactly this key gets 401 in the provider's format.
    pub fn require_api_key(&self, key: &str) {
        self.settings().api_key = Some(key.to_owned());
    }

    /// Prompt tokens reported as served from cache (capped at the prompt's size): OpenAI's
    /// `prompt_tokens_details.cached_tokens`, Anthropic's `cache_read_input_tokens`.
    pub fn set_cached_input_tokens(&self, n: u64) {
        self.settings().cached_input_tokens = n;
    }

    /// Prompt tokens reported as written to the cache (Anthropic's
    /// `cache_creation_input_tokens`, capped at what is left of the prompt after cache reads).
    /// OpenAI has no such field and ignores it.
    pub fn set_cache_creation_input_tokens(&self, n: u64) {
        self.settings().cache_creation_input_tokens = n;
    }

    /// From now on each answer reports the prompt cache as its provider would (see `cache.rs`):
    /// Anthropic reads and writes the prefixes a request marks with `cache_control`, OpenAI
    /// reads any prefix seen before; five minutes each, at least 1,024 tokens. Replaces the
    /// fixed counts of [`set_cached_input_tokens`](Self::set_cached_input_tokens) and
    /// [`set_cache_creation_input_tokens`](Self::set_cache_creation_input_tokens).
    pub fn simulate_prompt_cache(&self) {
        self.settings().prompt_cache.get_or_insert_with(cache::PromptCache::default);
    }

    /// `false` makes the model one that cannot see: any chat request with an image gets 400 in
    /// the provider's words (see the module doc). Default `true`.
    pub fn set_vision(&self, sees: bool) {
        self.settings().vision = sees;
    }

    /// What `/audio/transcriptions` hears in any audio from now on (default
    /// [`DEFAULT_TRANSCRIPT`]).
    pub fn set_transcript(&self, text: impl Into<String>) {
        let text = text.into();
        self.set_transcriber(move |_| text.clone());
    }

    /// What `/audio/transcriptions` hears, decided per request (by the audio's length, say —
    /// [`crate::media::ogg_opus_duration_secs`]). Called under the fake's lock: it must not use
    /// the fake's handle.
    pub fn set_transcriber(&self, f: impl Fn(&Transcription) -> String + Send + Sync + 'static) {
        self.settings().transcriber = Arc::new(f);
    }

    /// `Some(status)`: every transcription from now on fails with it (404 for a server without
    /// the endpoint, 401, 500…), in OpenAI's error format, after being recorded. `None`: they
    /// work again.
    pub fn fail_transcriptions(&self, status: Option<u16>) {
        self.settings().transcription_failure = status;
    }

    /// Like [`fail_transcriptions`](Self::fail_transcriptions), for `/audio/speech`.
    pub fn fail_speech(&self, status: Option<u16>) {
        self.settings().speech_failure = status;
    }

    /// Every `/audio/transcriptions` request so far, in arrival order, refused ones included.
    pub fn transcriptions(&self) -> Vec<Transcription> {
        self.settings().transcriptions.clone()
    }

    /// Every `/audio/speech` request so far, in arrival order, refused ones included.
    pub fn speeches(&self) -> Vec<Speech> {
        self.settings().speeches.clone()
    }

    /// Waits until at least `n` transcription requests have arrived and returns them all.
    pub async fn wait_for_transcriptions(&self, n: usize, timeout: Duration) -> Result<Vec<Transcription>, String> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.shared.call_recorded.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let settings = self.settings();
                if settings.transcriptions.len() >= n {
                    return Ok(settings.transcriptions.clone());
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                let got = self.settings().transcriptions.len();
                return Err(format!("fake LLM: waited {timeout:?} for {n} transcriptions, got {got}"));
            }
        }
    }

    /// Every request received so far, in arrival order.
    pub fn calls(&self) -> Vec<LlmCall> {
        self.settings().calls.clone()
    }

    /// Waits until at least `n` requests have arrived and returns them all, or fails after
    /// `timeout` with how many did arrive.
    pub async fn wait_for_calls(&self, n: usize, timeout: Duration) -> Result<Vec<LlmCall>, String> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Register interest before looking, so a call recorded in between still wakes us.
            let notified = self.shared.call_recorded.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let settings = self.settings();
                if settings.calls.len() >= n {
                    return Ok(settings.calls.clone());
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                let got = self.settings().calls.len();
                return Err(format!("fake LLM: waited {timeout:?} for {n} calls, got {got}"));
            }
        }
    }

    /// Stops the server for every clone; hanging and streaming responses end at once.
    pub fn shutdown(&self) {
        self.shared.stop.cancel();
    }

    fn settings(&self) -> std::sync::MutexGuard<'_, Settings> {
        self.shared.settings()
    }
}

impl Shared {
    fn settings(&self) -> std::sync::MutexGuard<'_, Settings> {
        // A panicking responder must not take every later test assertion down with it.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Sleeps unless the fake is shutting down; false when it is.
    async fn pause(&self, d: Duration) -> bool {
        if d.is_zero() {
            return !self.stop.is_cancelled();
        }
        tokio::select! {
            () = tokio::time::sleep(d) => true,
            () = self.stop.cancelled() => false,
        }
    }

    fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }
}

async fn openai_route(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    respond(shared, Api::OpenAi, headers, body).await
}

async fn anthropic_route(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    respond(shared, Api::Anthropic, headers, body).await
}

/// What was decided under the lock, acted on after it is released.
enum Plan {
    Reject { status: u16, message: String },
    Fault(Fault),
    Reply(Option<Reply>),
}

/// Token counts for one answer, before each provider shapes them.
#[derive(Debug, Clone, Copy)]
struct Tokens {
    /// Whole prompt, cached parts included.
    prompt: u64,
    cache_read: u64,
    /// Anthropic only.
    cache_creation: u64,
    output: u64,
}

/// Everything a provider module needs to render one answer.
struct Answer<'a> {
    id: u64,
    model: &'a str,
    reply: &'a Reply,
    tokens: Tokens,
}

async fn respond(shared: Arc<Shared>, api: Api, headers: HeaderMap, body: Bytes) -> Response {
    let in_flight = InFlight::start(&shared);
    let parsed: Option<Value> = serde_json::from_slice(&body).ok();
    let json = parsed.clone().unwrap_or(Value::Null);
    let api_key = match api {
        Api::OpenAi => header_str(&headers, header::AUTHORIZATION.as_str())
            .map(|v| v.strip_prefix("Bearer ").unwrap_or(v).to_owned()),
        Api::Anthropic => header_str(&headers, "x-api-key").map(str::to_owned),
    };
    let call = LlmCall {
        api,
        model: json.get("model").and_then(Value::as_str).unwrap_or_default().to_owned(),
        stream: json.get("stream").and_then(Value::as_bool).unwrap_or(false),
        api_key,
        body: json,
        at: Instant::now(),
    };
    let all_text = call.all_text();

    let (plan, delay, chunk_delay, responder, cached, creation) = {
        let mut s = shared.settings();
        s.calls.push(call.clone());
        shared.call_recorded.notify_waiters();
        let mut delay = s.latency;
        let plan = if let Some(expected) = &s.api_key
            && call.api_key.as_deref() != Some(expected.as_str())
        {
            let message = match api {
                Api::OpenAi => format!("Incorrect API key provided: {}.", call.api_key.as_deref().unwrap_or("(none)")),
                Api::Anthropic => "invalid x-api-key".to_owned(),
            };
            Plan::Reject { status: 401, message }
        } else if let Some(problem) = shape_problem(api, parsed.as_ref(), &headers) {
            Plan::Reject { status: 400, message: problem }
        } else if let Some(problem) = image_problem(&call, s.vision) {
            Plan::Reject { status: 400, message: problem }
        } else {
            let rule = s.rules.iter_mut().find(|r| r.times != Some(0) && all_text.contains(&r.contains));
            let (fault, reply) = match rule {
                Some(rule) => {
                    if let Some(t) = rule.times.as_mut() {
                        *t -= 1;
                    }
                    delay += rule.delay.unwrap_or_default();
                    (rule.fault.clone(), rule.reply.clone())
                }
                None => (None, None),
            };
            match fault {
                Some(f) => Plan::Fault(f),
                None => Plan::Reply(reply.or_else(|| s.replies.pop_front())),
            }
        };
        (plan, delay, s.chunk_delay, s.responder.clone(), s.cached_input_tokens, s.cache_creation_input_tokens)
    };

    if !shared.pause(delay).await {
        return error_response(api, 503, "the fake LLM is shutting down", None);
    }

    let reply = match plan {
        Plan::Reject { status, message } => return error_response(api, status, &message, None),
        Plan::Fault(Fault::Status { code, retry_after_secs }) => {
            return error_response(api, code, status_message(code), retry_after_secs);
        }
        Plan::Fault(Fault::Hang) => {
            // Either way nothing useful is sent: the client is meant to have timed out first.
            let _ = shared.pause(HANG_LIMIT).await;
            return error_response(api, 503, "the fake LLM gave up hanging", None);
        }
        Plan::Fault(Fault::Malformed) => return malformed_response(api, call.stream),
        Plan::Fault(Fault::Redirect { code, location }) => {
            let mut response = json_response(code, "{}".to_owned(), None);
            if let Ok(v) = HeaderValue::from_str(&location) {
                response.headers_mut().insert(header::LOCATION, v);
            }
            return response;
        }
        Plan::Fault(Fault::Truncated) => None,
        Plan::Reply(reply) => Some(reply.unwrap_or_else(|| responder(&call))),
    };
    let truncated = reply.is_none();
    let reply = reply.unwrap_or_else(|| Reply::text("This answer will be cut off halfway through, sorry."));

    let prompt = call.prompt_tokens();
    let simulated = shared.settings().prompt_cache.as_mut().map(|c| c.serve(&call, Instant::now()));
    let (cached, creation) = simulated.unwrap_or((cached, creation));
    let cache_read = cached.min(prompt);
    let tokens = Tokens {
        prompt,
        cache_read,
        cache_creation: creation.min(prompt - cache_read),
        output: token_count(&reply.billed_text()),
    };
    let answer = Answer { id: shared.next_id(), model: &call.model, reply: &reply, tokens };

    if call.stream {
        let include_usage =
            call.body.pointer("/stream_options/include_usage").and_then(Value::as_bool).unwrap_or(false);
        let mut frames = match api {
            Api::OpenAi => openai::stream_frames(&answer, include_usage),
            Api::Anthropic => anthropic::stream_frames(&answer),
        };
        if truncated {
            // Half the frames: always at least one, never the terminal one.
            frames.truncate(frames.len() / 2);
        }
        stream_response(shared, frames, chunk_delay, in_flight)
    } else {
        let mut body = match api {
            Api::OpenAi => openai::completion(&answer),
            Api::Anthropic => anthropic::completion(&answer),
        }
        .to_string();
        if truncated {
            let mut cut = body.len() / 2;
            while !body.is_char_boundary(cut) {
                cut -= 1;
            }
            body.truncate(cut);
        }
        json_response(200, body, None)
    }
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Why the real provider would answer 400, if it would.
fn shape_problem(api: Api, body: Option<&Value>, headers: &HeaderMap) -> Option<String> {
    let Some(body) = body.filter(|b| b.is_object()) else {
        return Some("the request body is not a JSON object".to_owned());
    };
    if !body.get("model").is_some_and(Value::is_string) {
        return Some("model: a string is required".to_owned());
    }
    if !body.get("messages").is_some_and(Value::is_array) {
        return Some("messages: an array is required".to_owned());
    }
    if let Some(stream) = body.get("stream")
        && !stream.is_boolean()
    {
        return Some("stream: must be a boolean".to_owned());
    }
    if let Some(problem) = tool_shape_problem(api, body) {
        return Some(problem);
    }
    if api == Api::Anthropic {
        if !body.get("max_tokens").is_some_and(Value::is_u64) {
            return Some("max_tokens: an integer is required".to_owned());
        }
        if header_str(headers, "anthropic-version").is_none() {
            return Some("anthropic-version: header is required".to_owned());
        }
    }
    None
}

/// The tool-call rules both providers enforce: every result answers a call made in the
/// assistant message just before it, and every call gets a result before the conversation goes
/// on. Anthropic also refuses tool blocks when the request defines no tools.
fn tool_shape_problem(api: Api, body: &Value) -> Option<String> {
    let messages = body.get("messages").and_then(Value::as_array)?;
    let role = |m: &Value| m.get("role").and_then(Value::as_str).unwrap_or_default().to_owned();
    let blocks = |m: &Value, kind: &str, id_field: &str| -> Vec<String> {
        m.get("content")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or(&[])
            .iter()
            .filter(|b| b.get("type").and_then(Value::as_str) == Some(kind))
            .map(|b| b.get(id_field).and_then(Value::as_str).unwrap_or_default().to_owned())
            .collect()
    };
    // Calls still waiting for a result, from the latest assistant message.
    let mut open: Vec<String> = Vec::new();
    let mut any_tool_blocks = false;
    for m in messages {
        let (calls, results): (Vec<String>, Vec<String>) = match api {
            Api::OpenAi => {
                let calls = m
                    .get("tool_calls")
                    .and_then(Value::as_array)
                    .map(Vec::as_slice)
                    .unwrap_or(&[])
                    .iter()
                    .map(|c| c.get("id").and_then(Value::as_str).unwrap_or_default().to_owned())
                    .collect();
                let results = if role(m) == "tool" {
                    vec![m.get("tool_call_id").and_then(Value::as_str).unwrap_or_default().to_owned()]
                } else {
                    Vec::new()
                };
                (calls, results)
            }
            Api::Anthropic => (blocks(m, "tool_use", "id"), blocks(m, "tool_result", "tool_use_id")),
        };
        any_tool_blocks |= !calls.is_empty() || !results.is_empty();
        if api == Api::OpenAi && role(m) != "tool" && !open.is_empty() {
            return Some(format!("an assistant message with tool_calls must be followed by tool messages for {open:?}"));
        }
        for id in &results {
            let Some(i) = open.iter().position(|o| o == id) else {
                return Some(format!("tool result for {id:?}, which the preceding assistant message did not call"));
            };
            open.remove(i);
        }
        if api == Api::Anthropic && !open.is_empty() {
            return Some(format!("tool_use ids {open:?} were found without tool_result blocks immediately after"));
        }
        if !calls.is_empty() {
            open = calls;
        }
    }
    if api == Api::Anthropic && any_tool_blocks && !body.get("tools").is_some_and(Value::is_array) {
        return Some("requests which include tool_use or tool_result blocks must define tools".to_owned());
    }
    None
}

/// Why the provider would refuse the request's images: a model that cannot see, a media type
/// neither provider takes, or base64 that does not decode. Unlike Anthropic, the fake does not
/// check that the bytes are of the stated type (the simulated Telegram's photo sizes are PNGs
/// while Telegram's are JPEGs, so a client that assumes `image/jpeg` still passes here).
fn image_problem(call: &LlmCall, vision: bool) -> Option<String> {
    let images = call.images();
    if images.is_empty() {
        return None;
    }
    if !vision {
        return Some(match call.api {
            Api::OpenAi => "Invalid content type. image_url is only supported by certain models.".to_owned(),
            Api::Anthropic => format!("'{}' does not support image input.", call.model),
        });
    }
    for image in &images {
        if image.url.is_some() {
            continue;
        }
        if !["image/jpeg", "image/png", "image/gif", "image/webp"].contains(&image.media_type.as_str()) {
            return Some(format!(
                "messages.{}: image media type {:?} is not one of image/jpeg, image/png, image/gif, image/webp",
                image.message_index, image.media_type
            ));
        }
        if image.data.as_ref().is_none_or(Vec::is_empty) {
            return Some(format!("messages.{}: the image's base64 data is invalid", image.message_index));
        }
    }
    None
}

fn status_message(code: u16) -> &'static str {
    match code {
        400 => "Invalid request.",
        401 => "Invalid authentication.",
        403 => "Permission denied.",
        404 => "Not found.",
        408 => "Request timed out.",
        409 => "Conflict.",
        429 => "Rate limit reached. Please try again later.",
        500 => "The server had an error while processing your request.",
        503 | 529 => "The server is overloaded. Please try again later.",
        _ => "An error occurred.",
    }
}

fn error_response(api: Api, code: u16, message: &str, retry_after_secs: Option<u64>) -> Response {
    let body = match api {
        Api::OpenAi => openai::error_body(code, message),
        Api::Anthropic => anthropic::error_body(code, message),
    };
    json_response(code, body.to_string(), retry_after_secs)
}

fn malformed_response(api: Api, stream: bool) -> Response {
    if stream {
        let frames = match api {
            Api::OpenAi => vec!["data: this is not json\n\n".to_owned(), "data: [DONE]\n\n".to_owned()],
            Api::Anthropic => vec![
                "event: message_start\ndata: this is not json\n\n".to_owned(),
                "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n".to_owned(),
            ],
        };
        return sse_response(Body::from(frames.concat()));
    }
    // Valid JSON with every field a parser relies on of the wrong type.
    let body = r#"{"id":7,"choices":"none","content":{"text":1},"usage":"n/a","model":[]}"#;
    json_response(200, body.to_owned(), None)
}

fn json_response(code: u16, body: String, retry_after_secs: Option<u64>) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Some(secs) = retry_after_secs {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

fn sse_response(body: Body) -> Response {
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

fn stream_response(shared: Arc<Shared>, frames: Vec<String>, chunk_delay: Duration, in_flight: InFlight) -> Response {
    let body = async_stream::stream! {
        // In flight until the last frame is written or the client goes away.
        let _in_flight = in_flight;
        let mut unfinished = Unfinished(Some(shared.clone()));
        for (i, frame) in frames.into_iter().enumerate() {
            if i > 0 && !shared.pause(chunk_delay).await {
                break;
            }
            yield Ok::<_, Infallible>(Bytes::from(frame));
        }
        unfinished.0 = None;
    };
    sse_response(Body::from_stream(body))
}

/// One chat request being answered, counted in [`FakeLlm::in_flight`] until dropped.
struct InFlight(Arc<Shared>);

impl InFlight {
    fn start(shared: &Arc<Shared>) -> InFlight {
        let now = shared.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        shared.peak_in_flight.fetch_max(now, Ordering::Relaxed);
        InFlight(shared.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Counts a streamed response dropped before its end (its `Shared` is taken when it ends).
struct Unfinished(Option<Arc<Shared>>);

impl Drop for Unfinished {
    fn drop(&mut self) {
        if let Some(shared) = &self.0 {
            shared.streams_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Splits text into the small pieces a streaming model emits (at most 12 characters each);
/// empty text gives no pieces.
fn pieces(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    chars.chunks(12).map(|c| c.iter().collect()).collect()
}

/// One SSE frame: optional `event:` line, one `data:` line, blank line.
fn frame(event: Option<&str>, data: &Value) -> String {
    match event {
        Some(e) => format!("event: {e}\ndata: {data}\n\n"),
        None => format!("data: {data}\n\n"),
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}
