//! Everything the fake Telegram remembers, behind one `std::sync::Mutex` in [`Shared`]: it is
//! never held across an `.await` (long polls wait on a `watch` channel and a `oneshot` after
//! releasing it), so a plain mutex is both enough and cheaper than tokio's.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tokio::sync::{oneshot, watch};
use tokio_util::sync::CancellationToken;

use super::markup;
use super::files::StoredFile;
use super::{CallbackAnswer, Download, FakeBot, FakeUser, Fault, RecordedRequest, SentMessage};

/// The request log keeps this many entries, so a long demo cannot grow without bound.
pub(crate) const REQUEST_LOG_LIMIT: usize = 100_000;

/// State shared by the handle and the HTTP handlers.
pub(crate) struct Shared {
    pub world: Mutex<World>,
    /// Bumped on every accepted sendMessage/editMessageText, so `wait_for_sent` sleeps until
    /// something changed instead of polling.
    pub sent_signal: watch::Sender<u64>,
    /// Bumped whenever a request is recorded or answered, for `wait_for_requests`.
    pub request_signal: watch::Sender<u64>,
    /// Cancelled by `shutdown`: the server stops accepting and pending long polls return.
    pub shutdown: CancellationToken,
    pub addr: SocketAddr,
}

impl Shared {
    /// Locks the world; a panic elsewhere while it was held does not poison the fake for the
    /// rest of the test — the data is plain records, still consistent enough to report.
    pub fn lock(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[derive(Default)]
pub(crate) struct World {
    /// Bots by token. A revoked token stays here (its bot still exists) and is also in `revoked`.
    pub bots: HashMap<String, BotState>,
    pub revoked: HashSet<String>,
    pub requests: VecDeque<(u64, RecordedRequest)>,
    pub next_request_seq: u64,
    pub next_poll_id: u64,
    /// Bot ids handed out, so two bots never share one.
    pub bot_ids: HashSet<i64>,
    /// Every `GET /file/bot<token>/<path>`, in order.
    pub downloads: Vec<Download>,
}

/// The long poll currently waiting for a bot: at most one, as on Telegram's side.
pub(crate) struct PollSlot {
    pub id: u64,
    /// Answers the waiting poll early — with 409 when a newer poll replaces it.
    pub terminate: oneshot::Sender<Reply>,
}

pub(crate) struct BotState {
    pub bot: FakeBot,
    /// Unconfirmed updates, oldest first.
    pub updates: VecDeque<(i64, Value)>,
    pub next_update_id: i64,
    /// Bumped whenever an update arrives; a waiting long poll subscribes under the lock, so it
    /// cannot miss one that arrives between its check and its wait.
    pub arrivals: watch::Sender<u64>,
    pub poll: Option<PollSlot>,
    pub poll_count: usize,
    pub chats: HashMap<i64, ChatState>,
    pub sent: Vec<SentMessage>,
    /// `(chat_id, message_id)` → index in `sent`.
    pub sent_index: HashMap<(i64, i64), usize>,
    pub chat_actions: Vec<(i64, String)>,
    /// Accepted `sendMessageDraft` calls, in order.
    pub drafts: Vec<super::SentDraft>,
    /// Accepted `setMyCommands` menus by scope and language (see `api::command_scope`): Telegram
    /// keeps one menu per pair, and `getMyCommands`/`deleteMyCommands` name the same pair.
    pub commands: HashMap<String, Value>,
    pub faults: Vec<Fault>,
    pub external_poller: bool,
    pub webhook_url: String,
    /// Ids of callback queries sent to the bot and not yet answered: `answerCallbackQuery`
    /// takes each id once.
    pub open_callback_queries: HashSet<String>,
    /// The next callback query id, as a number; random-looking per bot, as on Telegram.
    pub next_callback_query_id: u64,
    pub callback_answers: Vec<CallbackAnswer>,
    /// Files users sent to the bot and the bot sent, by `file_id`.
    pub files: HashMap<String, StoredFile>,
    /// `file_path` → `file_id`, for the download route.
    pub files_by_path: HashMap<String, String>,
}

/// A chat the bot may write to: a private chat with a user who has messaged the bot, or a group
/// it was added to (`group`).
pub(crate) struct ChatState {
    /// A group chat's title and kind; `None` for a private chat.
    pub group: Option<super::groups::GroupChat>,
    pub first_name: String,
    pub username: Option<String>,
    /// Message ids are one sequence per chat, shared by the user's and the bot's messages.
    pub next_message_id: i64,
    pub blocked: bool,
    /// What Telegram puts in a callback query's `chat_instance`: one opaque string per chat.
    pub chat_instance: String,
    /// Every message in the chat by id, as the Bot API renders it: for replies and edits.
    pub messages: HashMap<i64, StoredMessage>,
}

pub(crate) struct StoredMessage {
    pub from_bot: bool,
    pub json: Value,
}

/// What a Bot API call answers.
#[derive(Debug, Clone)]
pub(crate) enum Reply {
    Ok(Value),
    Err {
        status: u16,
        description: String,
        retry_after: Option<u64>,
    },
    /// A non-JSON body, as the nginx in front of Telegram sends for some 5xx.
    Raw {
        status: u16,
        content_type: &'static str,
        body: String,
    },
}

impl Reply {
    pub fn err(status: u16, description: impl Into<String>) -> Reply {
        Reply::Err {
            status,
            description: description.into(),
            retry_after: None,
        }
    }

    pub fn bad_request(description: &str) -> Reply {
        Reply::err(400, format!("Bad Request: {description}"))
    }

    pub fn unauthorized() -> Reply {
        Reply::err(401, "Unauthorized")
    }

    pub fn conflict() -> Reply {
        Reply::err(
            409,
            "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running",
        )
    }

    pub fn status(&self) -> u16 {
        match self {
            Reply::Ok(_) => 200,
            Reply::Err { status, .. } | Reply::Raw { status, .. } => *status,
        }
    }

    pub fn description(&self) -> Option<String> {
        match self {
            Reply::Ok(_) => None,
            Reply::Err { description, .. } => Some(description.clone()),
            Reply::Raw { body, .. } => Some(body.clone()),
        }
    }
}

pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// "Now" that follows tokio's clock when a test pauses it, so recorded times line up with
/// `tokio::time::advance`.
pub(crate) fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

impl BotState {
    pub fn new(bot: FakeBot, first_update_id: i64) -> BotState {
        use rand::Rng;
        BotState {
            bot,
            updates: VecDeque::new(),
            next_update_id: first_update_id,
            arrivals: watch::Sender::new(0),
            poll: None,
            poll_count: 0,
            chats: HashMap::new(),
            sent: Vec::new(),
            sent_index: HashMap::new(),
            chat_actions: Vec::new(),
            drafts: Vec::new(),
            commands: HashMap::new(),
            faults: Vec::new(),
            external_poller: false,
            webhook_url: String::new(),
            open_callback_queries: HashSet::new(),
            next_callback_query_id: rand::rng()
                .random_range(1_000_000_000_000_000_000..5_000_000_000_000_000_000),
            callback_answers: Vec::new(),
            files: HashMap::new(),
            files_by_path: HashMap::new(),
        }
    }

    /// The bot as a Bot API `User`.
    pub fn user_json(&self) -> Value {
        json!({ "id": self.bot.id, "is_bot": true, "first_name": self.bot.username, "username": self.bot.username })
    }

    /// The bot as `getMe` returns it: a `User` plus the bot-only flags teloxide's `Me` requires.
    pub fn me_json(&self) -> Value {
        let mut me = self.user_json();
        for (k, v) in [
            ("can_join_groups", true),
            ("can_read_all_group_messages", false),
            ("supports_inline_queries", false),
            ("can_connect_to_business", false),
            ("has_main_web_app", false),
        ] {
            me[k] = json!(v);
        }
        me
    }

    /// Queues an update, assigning its id, and wakes a waiting long poll.
    pub fn push_update(&mut self, mut update: Value) -> i64 {
        let id = self.next_update_id;
        self.next_update_id += 1;
        match update.as_object_mut() {
            Some(obj) => {
                obj.insert("update_id".to_owned(), json!(id));
            }
            None => update = json!({ "update_id": id, "unknown": update }),
        }
        self.updates.push_back((id, update));
        self.arrivals.send_modify(|n| *n += 1);
        id
    }

    /// Forgets confirmed updates: below `offset`, or all but the last `-offset` when negative.
    pub fn confirm(&mut self, offset: i64) {
        if offset > 0 {
            while self.updates.front().is_some_and(|(id, _)| *id < offset) {
                self.updates.pop_front();
            }
        } else if offset < 0 {
            let keep = usize::try_from(offset.unsigned_abs()).unwrap_or(usize::MAX);
            while self.updates.len() > keep {
                self.updates.pop_front();
            }
        }
    }

    /// Up to `limit` unconfirmed updates with id ≥ `offset`, oldest first.
    pub fn pending_from(&self, offset: i64, limit: usize) -> Vec<Value> {
        self.updates
            .iter()
            .filter(|(id, _)| *id >= offset)
            .take(limit)
            .map(|(_, u)| u.clone())
            .collect()
    }

    /// The chat with `user`, created on first contact.
    pub fn chat_with(
        &mut self,
        id: i64,
        first_name: &str,
        username: Option<&str>,
    ) -> &mut ChatState {
        let chat = self.chats.entry(id).or_insert_with(|| {
            use rand::Rng;
            ChatState {
                group: None,
                first_name: first_name.to_owned(),
                username: username.map(str::to_owned),
                next_message_id: 1,
                blocked: false,
                chat_instance: rand::rng().random::<i64>().to_string(),
                messages: HashMap::new(),
            }
        });
        chat.first_name = first_name.to_owned();
        chat.username = username.map(str::to_owned);
        chat
    }

    /// A private text message from `user` to the bot, queued as an update.
    pub fn user_sends_text(&mut self, user: &FakeUser, text: &str) -> i64 {
        let mut fields = serde_json::Map::new();
        fields.insert("text".into(), json!(text));
        if let Some(cmd) = markup::command_entity(text) {
            fields.insert("entities".into(), json!([cmd.to_json()]));
        }
        self.user_sends(user, fields)
    }

    /// `user` taps the button with `data` under the bot's message `message_id`: queues a
    /// `callback_query` update and opens the query for one answer. `Err` says what is wrong
    /// with the test's request (the caller panics with it, outside the lock).
    pub fn user_presses_button(
        &mut self,
        user: &FakeUser,
        message_id: i64,
        data: &str,
    ) -> Result<i64, String> {
        let bot = &self.bot.username;
        let Some(chat) = self.chats.get(&user.id) else {
            return Err(format!(
                "user {} never wrote to @{bot}, so there is no message of the bot to tap",
                user.id
            ));
        };
        let message = match chat.messages.get(&message_id) {
            Some(m) if m.from_bot => &m.json,
            Some(_) => {
                return Err(format!(
                    "message {message_id} in chat {} is the user's own, not @{bot}'s",
                    user.id
                ));
            }
            None => {
                let mut ids: Vec<i64> = chat
                    .messages
                    .iter()
                    .filter(|(_, m)| m.from_bot)
                    .map(|(id, _)| *id)
                    .collect();
                ids.sort_unstable();
                return Err(format!(
                    "chat {} has no message {message_id} from @{bot}; the bot's messages there: {ids:?}",
                    user.id
                ));
            }
        };
        let buttons = callback_buttons(message);
        if !buttons.contains(&data) {
            return Err(format!(
                "message {message_id} in chat {} has no button with callback_data {data:?}; its buttons carry {buttons:?}",
                user.id
            ));
        }
        let query = json!({
            "id": self.next_callback_query_id.to_string(),
            "from": user_json(user),
            "message": message,
            "chat_instance": chat.chat_instance,
            "data": data,
        });
        self.open_callback_queries
            .insert(self.next_callback_query_id.to_string());
        self.next_callback_query_id = self.next_callback_query_id.wrapping_add(1);
        Ok(self.push_update(json!({ "callback_query": query })))
    }

    /// A raw update from a test: queued as given; a private chat it names becomes writable,
    /// and its message id is remembered so later ids keep increasing.
    pub fn push_raw(&mut self, update: Value) -> i64 {
        let message = update.get("message").filter(|m| m.is_object());
        if let Some(chat_id) = message.and_then(|m| m["chat"]["id"].as_i64()) {
            let m = message.cloned().unwrap_or_default();
            let first_name = m["chat"]["first_name"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let username = m["chat"]["username"].as_str().map(str::to_owned);
            let chat = self.chat_with(chat_id, &first_name, username.as_deref());
            if let Some(id) = m["message_id"].as_i64() {
                chat.next_message_id = chat.next_message_id.max(id.saturating_add(1));
                chat.messages.insert(
                    id,
                    StoredMessage {
                        from_bot: false,
                        json: m,
                    },
                );
            }
        }
        self.push_update(update)
    }

    /// Answers the waiting long poll, if any, with `reply`.
    pub fn terminate_poll(&mut self, reply: Reply) {
        if let Some(slot) = self.poll.take() {
            // The poller may have just gone away; then there is no one to tell.
            let _ = slot.terminate.send(reply);
        }
    }

    /// Takes the first injected fault that matches `method`, counting it down.
    pub fn take_fault(&mut self, method: &str) -> Option<Reply> {
        let index = self.faults.iter().position(|f| match f {
            Fault::RateLimit { times, .. } | Fault::ServerError { times, .. } => *times > 0,
            Fault::MethodFails {
                method: m, times, ..
            } => *times > 0 && m.eq_ignore_ascii_case(method),
            Fault::Latency(_) | Fault::TruncatedDownload { .. } => false,
        })?;
        let fault = &mut self.faults[index];
        let (reply, times) = match fault {
            Fault::RateLimit {
                retry_after_secs,
                times,
            } => (
                Reply::Err {
                    status: 429,
                    description: format!("Too Many Requests: retry after {retry_after_secs}"),
                    retry_after: Some(*retry_after_secs),
                },
                times,
            ),
            Fault::ServerError { status, times } => (server_error(*status), times),
            Fault::MethodFails {
                status,
                description,
                times,
                ..
            } => {
                // Telegram's 429 always says how long to wait: the description's last number
                // ("Too Many Requests: retry after 5"), else a second.
                let retry_after = (*status == 429).then(|| {
                    description
                        .rsplit(' ')
                        .next()
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(1)
                });
                let reply = Reply::Err {
                    status: *status,
                    description: description.clone(),
                    retry_after,
                };
                (reply, times)
            }
            Fault::Latency(_) | Fault::TruncatedDownload { .. } => return None,
        };
        *times -= 1;
        if *times == 0 {
            self.faults.remove(index);
        }
        Some(reply)
    }

    pub fn latency(&self) -> std::time::Duration {
        self.faults
            .iter()
            .map(|f| {
                if let Fault::Latency(d) = f {
                    *d
                } else {
                    Default::default()
                }
            })
            .sum()
    }
}

/// 502 comes from the nginx in front of the Bot API as an HTML page (teloxide then reports
/// invalid JSON); other statuses as the Bot API's own JSON error.
fn server_error(status: u16) -> Reply {
    let reason = axum::http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Internal Server Error");
    if status == 502 {
        let body = format!(
            "<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n<center><h1>{status} {reason}</h1></center>\r\n<hr><center>nginx/1.18.0</center>\r\n</body>\r\n</html>\r\n"
        );
        Reply::Raw {
            status,
            content_type: "text/html",
            body,
        }
    } else {
        Reply::err(status, reason)
    }
}

/// A (human) user as the Bot API renders them in `from`.
pub(crate) fn user_json(user: &FakeUser) -> Value {
    json!({
        "id": user.id,
        "is_bot": false,
        "first_name": user.first_name,
        "username": user.username,
        "language_code": "en",
    })
}

/// The `callback_data` of every button in a message's inline keyboard, row by row.
fn callback_buttons(message: &Value) -> Vec<&str> {
    message["reply_markup"]["inline_keyboard"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_array)
        .flatten()
        .filter_map(|button| button["callback_data"].as_str())
        .collect()
}

/// A chat as the Bot API renders it.
pub(crate) fn chat_json(id: i64, chat: &ChatState) -> Value {
    if let Some(group) = &chat.group {
        return group.json(id);
    }
    let mut v = json!({ "id": id, "first_name": chat.first_name, "type": "private" });
    if let Some(u) = &chat.username {
        v["username"] = json!(u);
    }
    v
}

/// A realistic token for `bot_id`: `<id>:AA` and 33 characters of `[A-Za-z0-9_-]`.
pub(crate) fn make_token(bot_id: i64) -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
    let mut rng = rand::rng();
    let secret: String = (0..33)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    format!("{bot_id}:AA{secret}")
}
