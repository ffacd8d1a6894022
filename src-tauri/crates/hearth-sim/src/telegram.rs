//! A fake Telegram Bot API on loopback, close enough to the real one that teloxide (and so the
//! gateway) cannot tell the difference: many bot tokens at once, `getUpdates` long polls that
//! wake the moment an update arrives, one poller per token (409 for the older one), the Bot
//! API's error bodies, `parse_mode` validation, and fault injection per token.
//!
//! A test acts as Telegram's users through the handle ([`FakeTelegram::send_text`],
//! [`FakeTelegram::press_button`], and media: [`FakeTelegram::send_voice`],
//! [`FakeTelegram::send_audio`], [`FakeTelegram::send_photo`], [`FakeTelegram::send_album`],
//! [`FakeTelegram::send_document`]) and reads what the bots did ([`FakeTelegram::sent`] — voice
//! notes from `sendVoice` included, with each message's accepted `editMessageText` texts and
//! whether `deleteMessage` took it —, [`FakeTelegram::wait_for_sent`],
//! [`FakeTelegram::callback_answers`], [`FakeTelegram::chat_actions`], [`FakeTelegram::drafts`],
//! [`FakeTelegram::downloads`], [`FakeTelegram::requests`]).
//!
//! Files are real: what a user sends is kept (per bot, as `file_id`s are on Telegram) and served
//! by `getFile` and `GET /file/bot<token>/<file_path>`, which refuse files over 20 MB as the Bot
//! API does. [`crate::media`] makes real PNGs and Ogg Opus voice notes to send.
//!
//! Submodules: `api` is the HTTP handler and the Bot API methods; `files` the media messages,
//! `getFile`, downloads and `sendVoice`; `groups` group chats (the bot added or removed —
//! `my_chat_member` —, members writing with mentions and replies, posts on behalf of a channel,
//! other bots); `world` the state behind one mutex; `params` decodes
//! paths, queries and bodies like the Bot API; `markup` parses HTML, MarkdownV2 and Markdown
//! into text and entities.
//!
//! Where the fake knowingly differs from Telegram: a bare `&` in HTML is rejected (Telegram
//! passes it through; see `markup`); MarkdownV2 is an approximation of tdlib's parser; only
//! private chats and basic groups or supergroups the test adds the bot to exist (no channels of
//! their own, no topics); `allowed_updates` is recorded but not applied (every update is
//! delivered); `setWebhook` is accepted (and makes `getUpdates` answer 409) but nothing
//! is ever delivered to the URL; `timeout` may be fractional; a photo's smaller sizes are generated grey PNGs of the right
//! dimensions rather than the sender's picture scaled down, and its largest size is the sender's
//! bytes as given (Telegram re-encodes to JPEG within 2560 px); `sendVoice` is the only sending
//! method for media; an inline
//! button with more than one action field is refused (Telegram uses the first it knows, which
//! hides a bug in the bot); callback queries never expire, they only become invalid once
//! answered.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

mod api;
mod files;
mod groups;
mod markup;
mod params;
mod world;

use world::{BotState, Reply, Shared, World};

/// A bot registered with the fake, as BotFather would hand it out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeBot {
    /// `<id>:<35 characters>`, like a real token; what `Bot::new` takes.
    pub token: String,
    /// The bot's user id: the number before the colon in `token`.
    pub id: i64,
    pub username: String,
}

/// A Telegram user the test acts as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeUser {
    pub id: i64,
    pub first_name: String,
    /// `first_name` in lower case, as the user's @username.
    pub username: String,
}

/// A message a bot sent and Telegram accepted.
#[derive(Debug, Clone, PartialEq)]
pub struct SentMessage {
    pub message_id: i64,
    pub chat_id: i64,
    /// What the user sees: the text after entity parsing and trimming, as in the returned
    /// Message — not what the bot sent (that is [`SentMessage::source`]).
    pub text: String,
    pub parse_mode: Option<String>,
    /// The texts of later successful `editMessageText` calls, oldest first (plain, as `text`).
    pub edits: Vec<String>,
    /// When it was accepted, on tokio's clock (so it follows `tokio::time::pause`/`advance`).
    pub at: Instant,
    /// The `text` parameter exactly as the bot sent it, markup included, so a test can check
    /// escaping.
    pub source: String,
    /// The message's entities in Bot API JSON (from `parse_mode` or the `entities` parameter).
    pub entities: Vec<Value>,
    /// The message's markup now: the `reply_markup` sendMessage got (any kind, so a reply
    /// keyboard or `force_reply` shows here too), until an `editMessageText` or
    /// `editMessageReplyMarkup` changes the inline keyboard — then that keyboard, or `None` once
    /// it was removed. What a button press sees.
    pub reply_markup: Option<Value>,
    /// Every value `reply_markup` has had, oldest first: what sendMessage got, then one entry per
    /// accepted edit that changed the keyboard (`None` = removed). The last equals
    /// `reply_markup`.
    pub reply_markup_history: Vec<Option<Value>>,
    /// The message this one replies to, when the reply target existed.
    pub reply_to_message_id: Option<i64>,
    /// `sendVoice`: the voice note sent (then `text` is its caption, maybe empty, and `source`
    /// the caption as sent).
    pub voice: Option<SentVoice>,
    /// The bot deleted it (`deleteMessage`); the chat no longer shows it.
    pub deleted: bool,
}

/// A draft a bot showed with `sendMessageDraft` (a preview Telegram animates; not a message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentDraft {
    pub chat_id: i64,
    pub draft_id: i64,
    /// What the user sees: the text after entity parsing; empty for "Thinking…".
    pub text: String,
    /// The `text` parameter exactly as sent.
    pub source: String,
    pub parse_mode: Option<String>,
    /// `can_stop`: the user sees a Stop button ([`FakeTelegram::press_stop`]).
    pub can_stop: bool,
    /// When it was accepted, on tokio's clock.
    pub at: Instant,
}

/// A voice note a bot sent with `sendVoice`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentVoice {
    /// The id Telegram gave the file: `getFile` and the download route serve it.
    pub file_id: String,
    /// Exactly the bytes uploaded (or those of the file a `file_id` named).
    pub bytes: Vec<u8>,
    /// The upload's `filename` and `Content-Type`, as the bot sent them.
    pub file_name: Option<String>,
    pub mime_type: Option<String>,
    /// The `duration` parameter, else read from the Ogg Opus stream, else 0.
    pub duration_secs: u32,
}

/// A picture a user sends: its bytes and the dimensions Telegram reports for them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakePhoto {
    pub bytes: Vec<u8>,
    pub width: u32,
    pub height: u32,
}

impl FakePhoto {
    /// A real (grey) PNG of `width` × `height`, so the dimensions in its header match.
    pub fn new(width: u32, height: u32) -> FakePhoto {
        FakePhoto { bytes: crate::media::png(width, height), width, height }
    }
}

/// Something a user sends that is not text, as [`FakeTelegram::send_media`] takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Media {
    /// `Message.voice`: an Ogg Opus voice note (`audio/ogg`), recorded in the app.
    Voice { bytes: Vec<u8>, duration_secs: u32 },
    /// `Message.audio`: a music or audio file sent as such.
    Audio { bytes: Vec<u8>, duration_secs: u32, file_name: String, mime_type: String },
    /// `Message.photo`, as several sizes (see [`FakeTelegram::send_photo`]).
    Photo(FakePhoto),
    /// `Message.document`: any file sent as a file.
    Document { bytes: Vec<u8>, file_name: String, mime_type: String },
}

/// One `GET /file/bot<token>/<file_path>` the fake answered.
#[derive(Debug, Clone, PartialEq)]
pub struct Download {
    pub token: String,
    pub file_path: String,
    /// The file served; `None` when the token or path was wrong (then `status` is 404).
    pub file_id: Option<String>,
    pub status: u16,
    /// Body bytes sent: the whole file, or half of it when `truncated`.
    pub bytes_sent: usize,
    /// Cut short by [`Fault::TruncatedDownload`].
    pub truncated: bool,
    /// When it was answered, on tokio's clock.
    pub at: Instant,
}

impl SentMessage {
    /// What the chat shows now: the last edit, or the original text.
    pub fn current_text(&self) -> &str {
        self.edits.last().unwrap_or(&self.text)
    }
}

/// A bot's accepted `answerCallbackQuery`: what the user saw after tapping a button.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackAnswer {
    /// The `id` of the `callback_query` update it answers.
    pub callback_query_id: String,
    /// The notification (or, with `show_alert`, the alert) shown to the user; `None` shows
    /// nothing but stops the button's progress spinner.
    pub text: Option<String>,
    pub show_alert: bool,
}

/// One HTTP request the fake received, in arrival order.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    /// The token from the path (empty when the path was not `/bot<token>/<method>`).
    pub token: String,
    /// The Bot API spelling (`sendMessage`) for known methods, else as requested (the whole
    /// path when it had no method).
    pub method: String,
    /// Query and body parameters merged; form and query values are strings as received.
    pub params: Value,
    /// When the request arrived, on tokio's clock (follows `tokio::time::pause`).
    pub at: Instant,
    /// The HTTP status answered; 0 while still in flight, 499 when the client gave up first.
    pub status: u16,
    /// The error `description` (or body) when the request failed.
    pub error: Option<String>,
}

/// A failure to inject for one token. `times` counts down per matching request and the fault
/// disappears at zero; several faults are tried in the order injected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// 429 with `parameters.retry_after` (teloxide: `RequestError::RetryAfter`), on any method.
    RateLimit { retry_after_secs: u64, times: u32 },
    /// A 5xx on any method: 502 as the nginx HTML page Telegram's front end sends, any other
    /// status as the Bot API's JSON error. Note teloxide sleeps 10 s after any 5xx.
    ServerError { status: u16, times: u32 },
    /// Delays every response for this token until cleared (latencies add up).
    Latency(Duration),
    /// `method` (any case) fails with this status and description; a 429 carries
    /// `parameters.retry_after` from the description's last number (else 1), as Telegram's do.
    MethodFails {
        method: String,
        status: u16,
        description: String,
        times: u32,
    },
    /// The next `times` file downloads announce the whole `Content-Length`, send half the bytes
    /// and drop the connection: a download cut short.
    TruncatedDownload { times: u32 },
}

/// The fake server. Cheap to clone; the server stops when the last clone is dropped or on
/// [`FakeTelegram::shutdown`].
#[derive(Clone)]
pub struct FakeTelegram {
    shared: Arc<Shared>,
    server: Arc<ServerGuard>,
}

/// Owns the server task. A separate `Arc` from [`Shared`] because the connection tasks hold
/// `Shared` for as long as a client keeps a connection open; the server must stop when the
/// test's handles are gone, not when every client has hung up.
struct ServerGuard {
    shutdown: CancellationToken,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl ServerGuard {
    fn stop(&self) {
        self.shutdown.cancel();
        if let Some(task) = self
            .task
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
        {
            task.abort();
        }
    }
}

impl Drop for ServerGuard {
    fn drop(&mut self) {
        self.stop();
    }
}

impl FakeTelegram {
    /// Starts the server on 127.0.0.1, on a free port.
    ///
    /// # Panics
    /// When no loopback port can be bound — a broken test machine, not a test failure.
    pub async fn start() -> FakeTelegram {
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("bind 127.0.0.1:0 for the fake Telegram");
        let addr = listener
            .local_addr()
            .expect("local address of the fake Telegram");
        let shutdown = CancellationToken::new();
        let shared = Arc::new(Shared {
            world: Mutex::new(World::default()),
            sent_signal: watch::Sender::new(0),
            request_signal: watch::Sender::new(0),
            shutdown: shutdown.clone(),
            addr,
        });
        let app = Router::new()
            .fallback(api::handle)
            .with_state(shared.clone());
        let signal = shutdown.clone().cancelled_owned();
        let task = tokio::spawn(async move {
            // Errors here mean the listener failed; tests then see connection errors.
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(signal)
                .await;
        });
        FakeTelegram {
            shared,
            server: Arc::new(ServerGuard {
                shutdown,
                task: Mutex::new(Some(task)),
            }),
        }
    }

    /// `http://127.0.0.1:PORT`: what `Bot::set_api_url` takes (teloxide appends
    /// `/bot<token>/<method>`).
    pub fn api_url(&self) -> String {
        format!("http://{}", self.shared.addr)
    }

    /// Registers a new bot with a fresh id and a realistic token.
    pub fn add_bot(&self, username: &str) -> FakeBot {
        use rand::Rng;
        let mut world = self.shared.lock();
        let mut rng = rand::rng();
        let id = loop {
            let id = rng.random_range(7_000_000_000_i64..8_000_000_000);
            if world.bot_ids.insert(id) {
                break id;
            }
        };
        let bot = FakeBot {
            token: world::make_token(id),
            id,
            username: username.to_owned(),
        };
        // Update ids start at a random-looking base per bot, as on Telegram.
        let first_update_id = 100_000_000 + rng.random_range(0..900_000_000_i64);
        world.bots.insert(
            bot.token.clone(),
            BotState::new(bot.clone(), first_update_id),
        );
        bot
    }

    /// Revokes a token, as BotFather's /revoke does: every later call with it gets 401, and a
    /// long poll waiting on it is answered with 401 at once.
    pub fn revoke(&self, token: &str) {
        let mut world = self.shared.lock();
        world.revoked.insert(token.to_owned());
        if let Some(bot) = world.bots.get_mut(token) {
            bot.terminate_poll(Reply::unauthorized());
        }
    }

    /// A Telegram user (nothing is registered until the user writes to a bot).
    pub fn user(&self, id: i64, first_name: &str) -> FakeUser {
        FakeUser {
            id,
            first_name: first_name.to_owned(),
            username: first_name.to_lowercase(),
        }
    }

    /// Acts as `user`: sends a private text message to the bot and returns its `update_id`.
    /// The chat (id = the user's id) becomes one the bot may write to. A text starting with a
    /// `/command` carries a `bot_command` entity, as on Telegram.
    ///
    /// # Panics
    /// When `token` belongs to no bot — a mistake in the test itself.
    pub fn send_text(&self, token: &str, user: &FakeUser, text: &str) -> i64 {
        self.with_bot_mut("send_text", token, |bot| bot.user_sends_text(user, text))
    }

    /// `by` adds the bot to the group `chat_id` (negative; ≤ -1 000 000 000 000 is a supergroup,
    /// as Telegram numbers them) titled `title`: the group becomes a chat the bot may write to,
    /// and a `my_chat_member` update (a `ChatMemberUpdated`: `chat`, `from`, `date`,
    /// `old_chat_member` "left", `new_chat_member` "member") is queued. Returns its `update_id`.
    ///
    /// # Panics
    /// When `token` belongs to no bot, or `chat_id` is not negative.
    pub fn add_to_group(&self, token: &str, by: &FakeUser, chat_id: i64, title: &str) -> i64 {
        assert!(chat_id < 0, "FakeTelegram::add_to_group: a group's id is negative, not {chat_id}");
        self.with_bot_mut("add_to_group", token, |bot| bot.membership(by, chat_id, Some(title), true))
    }

    /// `by` removes the bot from group `chat_id`: `my_chat_member` with "left"; sending there
    /// then fails with 403 as on Telegram.
    pub fn remove_from_group(&self, token: &str, by: &FakeUser, chat_id: i64) -> i64 {
        self.with_bot_mut("remove_from_group", token, |bot| bot.membership(by, chat_id, None, false))
    }

    /// Acts as `user` writing `text` in group `chat_id` (which the bot must be in): `mention`
    /// entities for every `@username` in it (offsets in UTF-16 code units) and a `bot_command`
    /// entity for a leading `/command`, as Telegram attaches them. Returns the `update_id`.
    ///
    /// # Panics
    /// When `token` belongs to no bot, or the bot is in no such group.
    pub fn send_group_text(&self, token: &str, chat_id: i64, user: &FakeUser, text: &str) -> i64 {
        let from = world::user_json(user);
        self.group_message("send_group_text", token, chat_id, groups::Sender::User(from), text, None)
    }

    /// Like [`FakeTelegram::send_group_text`], answering message `reply_to` of the group (the
    /// update carries it as `reply_to_message`, with its author).
    pub fn reply_in_group(&self, token: &str, chat_id: i64, user: &FakeUser, text: &str, reply_to: i64) -> i64 {
        let from = world::user_json(user);
        self.group_message("reply_in_group", token, chat_id, groups::Sender::User(from), text, Some(reply_to))
    }

    /// A message in group `chat_id` sent on behalf of a channel (`sender_chat`, a channel; `from`
    /// is Telegram's placeholder bot `@Channel_Bot`), as when a linked channel posts or a
    /// member writes as their channel.
    pub fn send_group_as_channel(&self, token: &str, chat_id: i64, channel_id: i64, channel_title: &str, text: &str) -> i64 {
        let sender = groups::Sender::Channel { id: channel_id, title: channel_title.to_owned() };
        self.group_message("send_group_as_channel", token, chat_id, sender, text, None)
    }

    /// A message in group `chat_id` from another bot (`from.is_bot`), e.g. `@other_bot`.
    pub fn send_group_from_bot(&self, token: &str, chat_id: i64, bot_id: i64, username: &str, text: &str) -> i64 {
        let sender = groups::Sender::Bot { id: bot_id, username: username.to_owned() };
        self.group_message("send_group_from_bot", token, chat_id, sender, text, None)
    }

    fn group_message(
        &self,
        what: &str,
        token: &str,
        chat_id: i64,
        sender: groups::Sender,
        text: &str,
        reply_to: Option<i64>,
    ) -> i64 {
        self.with_bot_mut(what, token, |bot| bot.group_message(chat_id, sender, text, reply_to))
            // Panics after the world lock is released, so the fake stays usable for the report.
            .unwrap_or_else(|why| panic!("FakeTelegram::{what}: {why}"))
    }

    /// Acts as `user`: sends `media` (with a caption; `None` or empty for none) to the bot and
    /// returns its `update_id`. The file is stored for `getFile` and the download route, and
    /// the message carries it in the Bot API's shape (`voice`, `audio`, `photo`, `document`).
    ///
    /// # Panics
    /// When `token` belongs to no bot.
    pub fn send_media(&self, token: &str, user: &FakeUser, media: Media, caption: Option<&str>) -> i64 {
        self.with_bot_mut("send_media", token, |bot| bot.user_sends_media(user, media, caption, None))
    }

    /// Acts as `user`: sends a voice note (`Message.voice`, `audio/ogg`) of `duration_secs` as
    /// Telegram reports it (make the bytes with [`crate::media::ogg_opus`] for a real one).
    pub fn send_voice(&self, token: &str, user: &FakeUser, bytes: Vec<u8>, duration_secs: u32) -> i64 {
        self.send_media(token, user, Media::Voice { bytes, duration_secs }, None)
    }

    /// Acts as `user`: sends an audio file (`Message.audio`).
    pub fn send_audio(
        &self,
        token: &str,
        user: &FakeUser,
        bytes: Vec<u8>,
        duration_secs: u32,
        file_name: &str,
        mime_type: &str,
    ) -> i64 {
        let media =
            Media::Audio { bytes, duration_secs, file_name: file_name.to_owned(), mime_type: mime_type.to_owned() };
        self.send_media(token, user, media, None)
    }

    /// Acts as `user`: sends a photo. `Message.photo` holds its sizes smallest first, each with
    /// `file_id`, `file_unique_id`, `width`, `height` and `file_size`: a 90 px thumbnail (and
    /// the 320, 800 and 1280 px sizes smaller than the photo), then the photo itself, last.
    pub fn send_photo(&self, token: &str, user: &FakeUser, photo: FakePhoto, caption: Option<&str>) -> i64 {
        self.send_media(token, user, Media::Photo(photo), caption)
    }

    /// Acts as `user`: sends an album — 2 to 10 photos sharing one `media_group_id`, the caption
    /// on the first — as Telegram delivers it: one message and one update per photo, in order.
    /// Returns the update ids.
    ///
    /// # Panics
    /// When `token` belongs to no bot, or the album has fewer than 2 or more than 10 photos
    /// (Telegram allows neither).
    pub fn send_album(&self, token: &str, user: &FakeUser, photos: Vec<FakePhoto>, caption: Option<&str>) -> Vec<i64> {
        assert!((2..=10).contains(&photos.len()), "FakeTelegram::send_album: an album has 2 to 10 photos, not {}", photos.len());
        self.with_bot_mut("send_album", token, |bot| {
            use rand::Rng;
            let group = rand::rng().random_range(10_000_000_000_000_000_i64..20_000_000_000_000_000).to_string();
            photos
                .into_iter()
                .enumerate()
                .map(|(i, photo)| {
                    let caption = if i == 0 { caption } else { None };
                    bot.user_sends_media(user, Media::Photo(photo), caption, Some(&group))
                })
                .collect()
        })
    }

    /// Acts as `user`: sends a file as a document (`Message.document`).
    pub fn send_document(
        &self,
        token: &str,
        user: &FakeUser,
        bytes: Vec<u8>,
        file_name: &str,
        mime_type: &str,
        caption: Option<&str>,
    ) -> i64 {
        let media = Media::Document { bytes, file_name: file_name.to_owned(), mime_type: mime_type.to_owned() };
        self.send_media(token, user, media, caption)
    }

    /// The bytes of the bot's file `file_id` (one a user sent, or one the bot sent), whatever
    /// its size.
    pub fn file_bytes(&self, token: &str, file_id: &str) -> Option<Vec<u8>> {
        self.with_bot(token, |bot| bot.files.get(file_id).map(|f| f.bytes.to_vec())).flatten()
    }

    /// Every file download (`GET /file/bot<token>/<path>`) so far, in order, for any token —
    /// wrong ones included, with status 404.
    pub fn downloads(&self) -> Vec<Download> {
        self.shared.lock().downloads.clone()
    }

    /// Acts as `user`: taps the inline button carrying `callback_data` under the bot's message
    /// `message_id` in the user's chat, and returns the `update_id` of the `callback_query`
    /// update it queues. The update is shaped as Telegram sends it: a fresh `id` (answer it
    /// with `answerCallbackQuery`), `from` the user, `message` the bot's message as it shows
    /// now (edits and current keyboard included), the chat's `chat_instance`, and `data`.
    ///
    /// # Panics
    /// When `token` belongs to no bot, the chat has no message `message_id` from the bot, or no
    /// button on it carries `callback_data` — mistakes in the test itself. The message says
    /// which buttons there are.
    pub fn press_button(
        &self,
        token: &str,
        user: &FakeUser,
        message_id: i64,
        callback_data: &str,
    ) -> i64 {
        self.with_bot_mut("press_button", token, |bot| {
            bot.user_presses_button(user, message_id, callback_data)
        })
        // Panics after the world lock is released, so the fake stays usable for the report.
        .unwrap_or_else(|why| panic!("FakeTelegram::press_button: {why}"))
    }

    /// Every accepted `answerCallbackQuery` of the bot, in order.
    pub fn callback_answers(&self, token: &str) -> Vec<CallbackAnswer> {
        self.with_bot(token, |bot| bot.callback_answers.clone())
            .unwrap_or_default()
    }

    /// Queues any JSON as an update (for malformed-input tests); the fake sets `update_id`
    /// (wrapping a non-object as `{"update_id", "unknown": …}`). A `message.chat.id` in it
    /// becomes a chat the bot may write to.
    ///
    /// # Panics
    /// When `token` belongs to no bot.
    pub fn push_raw_update(&self, token: &str, update: Value) -> i64 {
        self.with_bot_mut("push_raw_update", token, |bot| bot.push_raw(update))
    }

    /// The user of private chat `chat_id` presses Stop on draft `draft_id`: the Bot API's
    /// `stopped_message_generation` update (a `MessageGenerationStopped`: `chat`, `draft_id`).
    ///
    /// # Panics
    /// When `token` belongs to no bot, or the bot showed no such draft with `can_stop` (there
    /// would be no button to press).
    pub fn press_stop(&self, token: &str, chat_id: i64, draft_id: i64) -> i64 {
        let shown = self
            .drafts(token)
            .iter()
            .any(|d| d.chat_id == chat_id && d.draft_id == draft_id && d.can_stop);
        assert!(
            shown,
            "FakeTelegram::press_stop: no draft {draft_id} with a Stop button in chat {chat_id}"
        );
        let chat = serde_json::json!({ "id": chat_id, "type": "private", "first_name": "User" });
        let stopped = serde_json::json!({ "chat": chat, "draft_id": draft_id });
        self.push_raw_update(token, serde_json::json!({ "stopped_message_generation": stopped }))
    }

    /// Makes `user_id` block (or unblock) the bot: sends to them then fail with 403
    /// "Forbidden: bot was blocked by the user". No effect before the user has written.
    pub fn set_blocked(&self, token: &str, user_id: i64, blocked: bool) {
        self.with_bot(token, |bot| {
            if let Some(chat) = bot.chats.get_mut(&user_id) {
                chat.blocked = blocked;
            }
        });
    }

    /// Every message the bot sent, in order, with edits applied.
    pub fn sent(&self, token: &str) -> Vec<SentMessage> {
        self.with_bot(token, |bot| bot.sent.clone())
            .unwrap_or_default()
    }

    /// Every message the bot sent to `chat_id`, in order.
    pub fn sent_to(&self, token: &str, chat_id: i64) -> Vec<SentMessage> {
        self.with_bot(token, |bot| {
            bot.sent
                .iter()
                .filter(|m| m.chat_id == chat_id)
                .cloned()
                .collect()
        })
        .unwrap_or_default()
    }

    /// Waits until the bot has sent at least `n` messages to `chat_id` and returns them all.
    /// On timeout the error says what the bot did send, where, and which sends were rejected.
    pub async fn wait_for_sent(
        &self,
        token: &str,
        chat_id: i64,
        n: usize,
        timeout: Duration,
    ) -> Result<Vec<SentMessage>, String> {
        // Subscribe before looking, so a send between the look and the wait still wakes us.
        let mut changes = self.shared.sent_signal.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let got = self.sent_to(token, chat_id);
            if got.len() >= n {
                return Ok(got);
            }
            tokio::select! {
                changed = changes.changed() => {
                    if changed.is_err() {
                        return Err(self.describe_sent(token, chat_id, n, timeout));
                    }
                }
                () = tokio::time::sleep_until(deadline) => return Err(self.describe_sent(token, chat_id, n, timeout)),
            }
        }
    }

    fn describe_sent(&self, token: &str, chat_id: i64, n: usize, timeout: Duration) -> String {
        let world = self.shared.lock();
        let Some(bot) = world.bots.get(token) else {
            return format!("no bot has token {token:?}");
        };
        let here: Vec<String> = bot
            .sent
            .iter()
            .filter(|m| m.chat_id == chat_id)
            .map(|m| format!("#{} {:?}", m.message_id, m.current_text()))
            .collect();
        let mut s = format!(
            "@{} sent {} of the {n} messages awaited in chat {chat_id} within {timeout:?}: [{}]",
            bot.bot.username,
            here.len(),
            here.join(", ")
        );
        let elsewhere: Vec<String> = bot
            .sent
            .iter()
            .filter(|m| m.chat_id != chat_id)
            .map(|m| format!("chat {}: {:?}", m.chat_id, m.current_text()))
            .collect();
        if !elsewhere.is_empty() {
            s += &format!("; to other chats: [{}]", elsewhere.join(", "));
        }
        let rejected: Vec<String> = world
            .requests
            .iter()
            .filter(|(_, r)| r.token == token && r.method != "getUpdates" && r.status >= 300)
            .map(|(_, r)| {
                format!(
                    "{} → {} {}",
                    r.method,
                    r.status,
                    r.error.as_deref().unwrap_or_default()
                )
            })
            .collect();
        if !rejected.is_empty() {
            s += &format!("; rejected requests: [{}]", rejected.join("; "));
        }
        if !bot.chats.contains_key(&chat_id) {
            s += &format!(
                "; note: user {chat_id} never wrote to this bot, so it cannot write to them"
            );
        }
        s
    }

    /// Every accepted `sendMessageDraft`, in order.
    pub fn drafts(&self, token: &str) -> Vec<SentDraft> {
        self.with_bot(token, |bot| bot.drafts.clone())
            .unwrap_or_default()
    }

    /// Every accepted `sendChatAction` as `(chat_id, action)`, in order.
    pub fn chat_actions(&self, token: &str) -> Vec<(i64, String)> {
        self.with_bot(token, |bot| bot.chat_actions.clone())
            .unwrap_or_default()
    }

    /// Every voice note the bot sent to `chat_id` with `sendVoice`, in order (they are in
    /// [`FakeTelegram::sent`] too, with their caption as `text`).
    pub fn sent_voices(&self, token: &str, chat_id: i64) -> Vec<SentMessage> {
        self.sent_to(token, chat_id).into_iter().filter(|m| m.voice.is_some()).collect()
    }

    /// Waits until the bot has sent the chat action `action` to `chat_id` (at any time so far).
    pub async fn wait_for_chat_action(
        &self,
        token: &str,
        chat_id: i64,
        action: &str,
        timeout: Duration,
    ) -> Result<(), String> {
        let mut changes = self.shared.sent_signal.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let actions = self.chat_actions(token);
            if actions.iter().any(|(c, a)| *c == chat_id && a == action) {
                return Ok(());
            }
            tokio::select! {
                changed = changes.changed() => {
                    if changed.is_err() {
                        return Err(format!("the fake stopped; chat actions so far: {actions:?}"));
                    }
                }
                () = tokio::time::sleep_until(deadline) => {
                    return Err(format!("no {action:?} to chat {chat_id} within {timeout:?}; chat actions: {actions:?}"));
                }
            }
        }
    }

    /// The `commands` array of the last accepted `setMyCommands` for the default scope (`None`
    /// if never set or deleted).
    pub fn commands(&self, token: &str) -> Option<Value> {
        self.commands_in(token, "default")
    }

    /// The menu last set for one scope and language, by its key: "default", "all_private_chats",
    /// "chat:<chat id>", "chat_administrators:<chat id>", "chat_member:<chat id>:<user id>", with
    /// "/<language code>" after it when one was given. `None` if never set or deleted.
    pub fn commands_in(&self, token: &str, scope: &str) -> Option<Value> {
        self.with_bot(token, |bot| bot.commands.get(scope).cloned())
            .flatten()
    }

    /// Every request received (the last 100 000), in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared
            .lock()
            .requests
            .iter()
            .map(|(_, r)| r.clone())
            .collect()
    }

    /// Waits until at least `n` recorded requests satisfy `matching` — it sees each request as it
    /// arrives (`status` 0) and again once answered — and returns how many do. Woken by every
    /// request the fake records or answers, so a test waits for what the bot did (three 401s,
    /// two more long polls) rather than for a while. On timeout the error says how many matched.
    pub async fn wait_for_requests(
        &self,
        n: usize,
        timeout: Duration,
        matching: impl Fn(&RecordedRequest) -> bool,
    ) -> Result<usize, String> {
        // Subscribe before looking, so a request between the look and the wait still wakes us.
        let mut changes = self.shared.request_signal.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let count = self
                .shared
                .lock()
                .requests
                .iter()
                .filter(|(_, r)| matching(r))
                .count();
            if count >= n {
                return Ok(count);
            }
            tokio::select! {
                changed = changes.changed() => {
                    if changed.is_err() {
                        return Err(format!("the fake stopped with {count} of {n} matching requests"));
                    }
                }
                () = tokio::time::sleep_until(deadline) => {
                    return Err(format!("{count} of the {n} matching requests awaited within {timeout:?}"));
                }
            }
        }
    }

    /// `getUpdates` long polls currently waiting for this token (0 or 1).
    pub fn pending_polls(&self, token: &str) -> usize {
        self.with_bot(token, |bot| usize::from(bot.poll.is_some()))
            .unwrap_or_default()
    }

    /// `getUpdates` calls received with this (valid) token, faulted ones included.
    pub fn poll_count(&self, token: &str) -> usize {
        self.with_bot(token, |bot| bot.poll_count)
            .unwrap_or_default()
    }

    /// Updates queued and not yet confirmed by an offset.
    pub fn pending_updates(&self, token: &str) -> usize {
        self.with_bot(token, |bot| bot.updates.len())
            .unwrap_or_default()
    }

    /// The usernames of bots with updates not yet confirmed by an offset, and how many each —
    /// empty once every bot's poller has taken (and, for Hearth, committed) all it was sent.
    /// Revoked tokens are left out: nobody can confirm what waits for them.
    pub fn unconfirmed_updates(&self) -> Vec<(String, usize)> {
        let world = self.shared.lock();
        let mut open: Vec<(String, usize)> = world
            .bots
            .iter()
            .filter(|(token, bot)| !bot.updates.is_empty() && !world.revoked.contains(*token))
            .map(|(_, bot)| (bot.bot.username.clone(), bot.updates.len()))
            .collect();
        open.sort();
        open
    }

    pub fn inject(&self, token: &str, fault: Fault) {
        self.with_bot(token, |bot| bot.faults.push(fault));
    }

    pub fn clear_faults(&self, token: &str) {
        self.with_bot(token, |bot| bot.faults.clear());
    }

    /// Simulates another program polling this token: while on, every `getUpdates` gets 409 at
    /// once, and a poll waiting now is answered with 409.
    pub fn set_external_poller(&self, token: &str, on: bool) {
        self.with_bot(token, |bot| {
            bot.external_poller = on;
            if on {
                bot.terminate_poll(Reply::conflict());
            }
        });
    }

    /// Stops the server: no new connections; waiting long polls answer with no updates.
    pub fn shutdown(&self) {
        self.server.stop();
    }

    fn with_bot<R>(&self, token: &str, f: impl FnOnce(&mut BotState) -> R) -> Option<R> {
        self.shared.lock().bots.get_mut(token).map(f)
    }

    fn with_bot_mut<R>(&self, what: &str, token: &str, f: impl FnOnce(&mut BotState) -> R) -> R {
        self.with_bot(token, f).unwrap_or_else(|| {
            panic!("FakeTelegram::{what}: no bot has token {token:?}; create it with add_bot")
        })
    }
}
