//! The HTTP side: one fallback handler that decodes any request the way the Bot API does,
//! records it, applies the bot's faults and dispatches to the method.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::Response;
use serde_json::{Map, Value, json};
use tokio::sync::oneshot;

use super::markup::{self, Formatted, ParseMode};
use super::params::{Params, parse_params, split_path};
use crate::multipart::Part;
use super::world::{
    BotState, ChatState, PollSlot, Reply, Shared, StoredMessage, chat_json, now, unix_now,
};
use super::{CallbackAnswer, RecordedRequest, SentDraft};

/// Bodies above this are refused (Telegram takes uploads up to 50 MB; the fake, 20 MB).
const MAX_BODY: usize = 20 * 1024 * 1024;
/// A long poll never waits longer than this, whatever `timeout` asks for.
const MAX_POLL: Duration = Duration::from_secs(300);
/// Telegram's limit on a message, in UTF-16 code units after entity parsing.
const MAX_TEXT: usize = 4096;
/// Telegram's limit on an inline button's `callback_data`, in bytes.
const MAX_CALLBACK_DATA: usize = 64;
/// Telegram's limit on an `answerCallbackQuery` text, in UTF-16 code units.
const MAX_CALLBACK_ANSWER: usize = 200;

/// The fields that give an inline keyboard button its action; a button needs exactly one.
const BUTTON_ACTIONS: &[&str] = &[
    "url",
    "callback_data",
    "web_app",
    "login_url",
    "switch_inline_query",
    "switch_inline_query_current_chat",
    "switch_inline_query_chosen_chat",
    "copy_text",
    "callback_game",
    "pay",
];

/// Every method the fake answers, spelled as the Bot API documents them; requests match
/// case-insensitively.
const METHODS: &[&str] = &[
    "getMe",
    "getUpdates",
    "getWebhookInfo",
    "setWebhook",
    "deleteWebhook",
    "sendMessage",
    "sendMessageDraft",
    "editMessageText",
    "editMessageReplyMarkup",
    "deleteMessage",
    "answerCallbackQuery",
    "sendChatAction",
    "setMyCommands",
    "getMyCommands",
    "deleteMyCommands",
    "getChat",
    "getFile",
    "sendVoice",
    "close",
    "logOut",
];

const CHAT_ACTIONS: &[&str] = &[
    "typing",
    "upload_photo",
    "record_video",
    "upload_video",
    "record_voice",
    "upload_voice",
    "upload_document",
    "choose_sticker",
    "find_location",
    "record_video_note",
    "upload_video_note",
];

pub(crate) async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    if let Some(rest) = parts.uri.path().strip_prefix("/file/bot") {
        return super::files::download(&shared, rest).await;
    }
    let Ok(body) = to_bytes(body, MAX_BODY).await else {
        return render(&Reply::err(413, "Request Entity Too Large"));
    };
    let (token, method) = split_path(parts.uri.path())
        .unwrap_or_else(|| (String::new(), parts.uri.path().to_owned()));
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let params = parse_params(parts.uri.query(), content_type, &body);
    let canonical = METHODS
        .iter()
        .find(|m| m.eq_ignore_ascii_case(&method))
        .copied();
    let recorded_params = params
        .as_ref()
        .map(|(p, _)| Value::Object(p.clone()))
        .unwrap_or_else(|_| json!({}));
    let mut record = Record::begin(
        &shared,
        &token,
        canonical.unwrap_or(&method),
        recorded_params,
    );

    let reply = if token.is_empty() {
        Reply::err(404, "Not Found")
    } else {
        call(&shared, &token, canonical, params).await
    };
    record.finish(&reply);
    render(&reply)
}

fn render(reply: &Reply) -> Response {
    let (status, content_type, body) = match reply {
        Reply::Ok(result) => (
            200,
            "application/json",
            json!({ "ok": true, "result": result }).to_string(),
        ),
        Reply::Err {
            status,
            description,
            retry_after,
        } => {
            let mut v = json!({ "ok": false, "error_code": status, "description": description });
            if let Some(secs) = retry_after {
                v["parameters"] = json!({ "retry_after": secs });
            }
            (*status, "application/json", v.to_string())
        }
        Reply::Raw {
            status,
            content_type,
            body,
        } => (*status, *content_type, body.clone()),
    };
    let mut response = Response::new(Body::from(body));
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    response
}

/// A request's entry in the log: written on arrival, completed with the status when answered,
/// or with 499 when the client went away first (a cancelled long poll, say).
struct Record<'a> {
    shared: &'a Shared,
    seq: u64,
    done: bool,
}

impl<'a> Record<'a> {
    fn begin(shared: &'a Shared, token: &str, method: &str, params: Value) -> Record<'a> {
        let record = Self::log(shared, token, method, params);
        shared.request_signal.send_modify(|n| *n += 1);
        record
    }

    fn log(shared: &'a Shared, token: &str, method: &str, params: Value) -> Record<'a> {
        let mut world = shared.lock();
        let seq = world.next_request_seq;
        world.next_request_seq += 1;
        world.requests.push_back((
            seq,
            RecordedRequest {
                token: token.to_owned(),
                method: method.to_owned(),
                params,
                at: now(),
                status: 0,
                error: None,
            },
        ));
        if world.requests.len() > super::world::REQUEST_LOG_LIMIT {
            world.requests.pop_front();
        }
        Record {
            shared,
            seq,
            done: false,
        }
    }

    fn set(&mut self, status: u16, error: Option<String>) {
        self.done = true;
        self.update(status, error);
        self.shared.request_signal.send_modify(|n| *n += 1);
    }

    fn update(&mut self, status: u16, error: Option<String>) {
        let mut world = self.shared.lock();
        // Sequence numbers are increasing, so the entry is found by binary search.
        if let Ok(i) = world
            .requests
            .binary_search_by_key(&self.seq, |(seq, _)| *seq)
        {
            let entry = &mut world.requests[i].1;
            entry.status = status;
            entry.error = error;
        }
    }

    fn finish(&mut self, reply: &Reply) {
        self.set(reply.status(), reply.description());
    }
}

impl Drop for Record<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.set(499, Some("client closed the request".to_owned()));
        }
    }
}

/// Authenticates, applies latency and faults, then runs the method.
async fn call(
    shared: &Shared,
    token: &str,
    method: Option<&'static str>,
    params: Result<(Map<String, Value>, Vec<Part>), String>,
) -> Reply {
    let latency = {
        let mut world = shared.lock();
        if world.revoked.contains(token) {
            return Reply::unauthorized();
        }
        let Some(bot) = world.bots.get_mut(token) else {
            return Reply::unauthorized();
        };
        if method == Some("getUpdates") {
            bot.poll_count += 1;
        }
        bot.latency()
    };
    if !latency.is_zero() {
        tokio::select! {
            () = tokio::time::sleep(latency) => {}
            () = shared.shutdown.cancelled() => return Reply::err(502, "Bad Gateway"),
        }
    }
    {
        let mut world = shared.lock();
        if world.revoked.contains(token) {
            return Reply::unauthorized();
        }
        let Some(bot) = world.bots.get_mut(token) else {
            return Reply::unauthorized();
        };
        if let Some(reply) = bot.take_fault(method.unwrap_or_default()) {
            return reply;
        }
    }
    let Some(method) = method else {
        return Reply::err(404, "Not Found");
    };
    let (params, files) = match params {
        Ok(p) => p,
        Err(description) => return Reply::err(400, description),
    };
    let p = Params(&params);
    let reply = match method {
        "getUpdates" => get_updates(shared, token, &p).await,
        _ => with_bot(shared, token, |bot| match method {
            "getMe" => Reply::Ok(bot.me_json()),
            "getWebhookInfo" => Reply::Ok(json!({
                "url": bot.webhook_url,
                "has_custom_certificate": false,
                "pending_update_count": bot.updates.len(),
            })),
            "setWebhook" => set_webhook(bot, &p),
            "deleteWebhook" => {
                bot.webhook_url.clear();
                if p.bool("drop_pending_updates") {
                    bot.updates.clear();
                }
                Reply::Ok(json!(true))
            }
            "sendMessage" => send_message(bot, &p),
            "sendMessageDraft" => send_message_draft(bot, &p),
            "editMessageText" => edit_message_text(bot, &p),
            "editMessageReplyMarkup" => edit_message_reply_markup(bot, &p),
            "deleteMessage" => delete_message(bot, &p),
            "answerCallbackQuery" => answer_callback_query(bot, &p),
            "sendChatAction" => send_chat_action(bot, &p),
            "setMyCommands" => set_my_commands(bot, &p),
            "getMyCommands" => match command_scope(&p) {
                Ok(key) => Reply::Ok(bot.commands.get(&key).cloned().unwrap_or_else(|| json!([]))),
                Err(reply) => reply,
            },
            "deleteMyCommands" => match command_scope(&p) {
                Ok(key) => {
                    bot.commands.remove(&key);
                    Reply::Ok(json!(true))
                }
                Err(reply) => reply,
            },
            "getChat" => match chat_id(&p).and_then(|id| known_chat(bot, id).map(|c| (id, c))) {
                Ok((id, chat)) => Reply::Ok(chat_json(id, chat)),
                Err(reply) => reply,
            },
            "getFile" => super::files::get_file(bot, &p),
            "sendVoice" => super::files::send_voice(bot, &p, &files),
            "close" | "logOut" => Reply::Ok(json!(true)),
            _ => Reply::err(404, "Not Found"),
        }),
    };
    // Wakes `wait_for_sent` (and `wait_for_chat_action`) after an accepted send, edit or chat
    // action, outside the world lock.
    if matches!(reply, Reply::Ok(_))
        && matches!(
            method,
            "sendMessage"
                | "sendMessageDraft"
                | "sendVoice"
                | "editMessageText"
                | "editMessageReplyMarkup"
                | "deleteMessage"
                | "sendChatAction"
        )
    {
        shared.sent_signal.send_modify(|n| *n += 1);
    }
    reply
}

fn with_bot(shared: &Shared, token: &str, f: impl FnOnce(&mut BotState) -> Reply) -> Reply {
    let mut world = shared.lock();
    match world.bots.get_mut(token) {
        Some(bot) => f(bot),
        None => Reply::unauthorized(),
    }
}

/// Removes the bot's poll slot when the poll that owns it ends, however it ends (answered,
/// terminated, or dropped because the client hung up).
struct SlotGuard<'a> {
    shared: &'a Shared,
    token: &'a str,
    id: u64,
}

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        let mut world = self.shared.lock();
        if let Some(bot) = world.bots.get_mut(self.token)
            && bot.poll.as_ref().is_some_and(|slot| slot.id == self.id)
        {
            bot.poll = None;
        }
    }
}

async fn get_updates(shared: &Shared, token: &str, p: &Params<'_>) -> Reply {
    let offset = p.int_or("offset", 0);
    let limit = usize::try_from(p.int_or("limit", 100).clamp(1, 100)).unwrap_or(100);
    let timeout = p
        .float("timeout")
        .filter(|t| t.is_finite())
        .unwrap_or(0.0)
        .max(0.0);
    let timeout = Duration::from_secs_f64(timeout.min(MAX_POLL.as_secs_f64()));

    let (mut arrivals, mut terminated, id) = {
        let mut world = shared.lock();
        let id = world.next_poll_id;
        world.next_poll_id += 1;
        let Some(bot) = world.bots.get_mut(token) else {
            return Reply::unauthorized();
        };
        if bot.external_poller {
            return Reply::conflict();
        }
        if !bot.webhook_url.is_empty() {
            return Reply::err(
                409,
                "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first",
            );
        }
        // Telegram serves one poller per token: a newer request ends the older one with 409.
        bot.terminate_poll(Reply::conflict());
        bot.confirm(offset);
        let updates = bot.pending_from(offset, limit);
        if !updates.is_empty() || timeout.is_zero() {
            return Reply::Ok(Value::Array(updates));
        }
        let (tx, rx) = oneshot::channel();
        bot.poll = Some(PollSlot { id, terminate: tx });
        (bot.arrivals.subscribe(), rx, id)
    };
    let _slot = SlotGuard { shared, token, id };
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        tokio::select! {
            reply = &mut terminated => return reply.unwrap_or_else(|_| Reply::conflict()),
            () = shared.shutdown.cancelled() => return Reply::Ok(json!([])),
            () = tokio::time::sleep_until(deadline) => return Reply::Ok(json!([])),
            changed = arrivals.changed() => {
                if changed.is_err() {
                    return Reply::Ok(json!([]));
                }
                let updates = {
                    let world = shared.lock();
                    world.bots.get(token).map(|bot| bot.pending_from(offset, limit)).unwrap_or_default()
                };
                if !updates.is_empty() {
                    return Reply::Ok(Value::Array(updates));
                }
            }
        }
    }
}

fn set_webhook(bot: &mut BotState, p: &Params<'_>) -> Reply {
    let url = p.str("url").unwrap_or_default();
    if !url.is_empty() && !url.starts_with("https://") {
        return Reply::bad_request("bad webhook: An HTTPS URL must be provided for webhook");
    }
    bot.webhook_url = url;
    if p.bool("drop_pending_updates") {
        bot.updates.clear();
    }
    Reply::Ok(json!(true))
}

pub(crate) fn chat_id(p: &Params<'_>) -> Result<i64, Reply> {
    match p.int("chat_id") {
        Ok(Some(id)) => Ok(id),
        Ok(None) => Err(Reply::bad_request("chat_id is empty")),
        // "@channelusername": the fake has no public chats.
        Err(()) => Err(Reply::bad_request("chat not found")),
    }
}

fn known_chat(bot: &BotState, id: i64) -> Result<&ChatState, Reply> {
    bot.chats
        .get(&id)
        .ok_or_else(|| Reply::bad_request("chat not found"))
}

pub(crate) fn writable_chat(bot: &mut BotState, id: i64) -> Result<&mut ChatState, Reply> {
    let chat = bot
        .chats
        .get_mut(&id)
        .ok_or_else(|| Reply::bad_request("chat not found"))?;
    if chat.blocked && chat.group.is_some() {
        return Err(Reply::err(403, "Forbidden: bot was kicked from the group chat"));
    }
    if chat.blocked {
        return Err(Reply::err(403, "Forbidden: bot was blocked by the user"));
    }
    Ok(chat)
}

/// The message text after `parse_mode` (or explicit `entities`), validated like Telegram.
fn formatted_text(
    p: &Params<'_>,
) -> Result<(Formatted, Vec<Value>, String, Option<String>), Reply> {
    let source = p.str("text").unwrap_or_default();
    let parse_mode = p.str("parse_mode").filter(|m| !m.is_empty());
    let explicit = p
        .json("entities")
        .map_err(|()| Reply::bad_request("can't parse entities JSON object"))?;
    let (formatted, entities) = match explicit {
        Some(Value::Array(entities)) => (
            Formatted {
                text: source.clone(),
                entities: Vec::new(),
            },
            entities,
        ),
        Some(_) => return Err(Reply::bad_request("can't parse entities JSON object")),
        None => {
            let mode = match &parse_mode {
                None => None,
                Some(m) => Some(
                    ParseMode::from_param(m)
                        .ok_or_else(|| Reply::bad_request("unsupported parse_mode"))?,
                ),
            };
            let formatted = markup::parse(&source, mode)
                .map_err(|reason| Reply::bad_request(&format!("can't parse entities: {reason}")))?;
            let entities = formatted
                .entities
                .iter()
                .map(markup::Entity::to_json)
                .collect();
            (formatted, entities)
        }
    };
    if formatted.text.trim().is_empty() {
        return Err(Reply::bad_request("message text is empty"));
    }
    if markup::utf16_len(&formatted.text) > MAX_TEXT {
        return Err(Reply::bad_request("message is too long"));
    }
    Ok((formatted, entities, source, parse_mode))
}

/// `reply_markup` as given, or `Err` when it is not a JSON object or its inline keyboard is
/// one Telegram refuses.
pub(crate) fn reply_markup(p: &Params<'_>) -> Result<Option<Value>, Reply> {
    match p.json("reply_markup") {
        Ok(None) => Ok(None),
        Ok(Some(v)) if v.is_object() => {
            check_inline_keyboard(&v)?;
            Ok(Some(v))
        }
        _ => Err(Reply::bad_request(
            "can't parse reply keyboard markup JSON object",
        )),
    }
}

/// Validates an `inline_keyboard` (other markups pass): rows of buttons, each with a string
/// `text` and exactly one action field, `callback_data` at most 64 bytes. As on Telegram, an
/// empty `url` or `callback_data` (or `pay: false`) counts as absent, so a button left with
/// nothing else is a "text button"; unlike Telegram, a second action field is refused rather
/// than ignored.
fn check_inline_keyboard(markup: &Value) -> Result<(), Reply> {
    let Some(keyboard) = markup.get("inline_keyboard") else {
        return Ok(());
    };
    let button_error =
        |why: &str| Reply::bad_request(&format!("can't parse inline keyboard button: {why}"));
    let rows = keyboard
        .as_array()
        .filter(|rows| rows.iter().all(Value::is_array))
        .ok_or_else(|| {
            Reply::bad_request(
                "field \"inline_keyboard\" of the InlineKeyboardMarkup must be an Array of Arrays",
            )
        })?;
    for button in rows.iter().filter_map(Value::as_array).flatten() {
        let Some(button) = button.as_object() else {
            return Err(button_error("InlineKeyboardButton must be an Object"));
        };
        match button.get("text") {
            None => return Err(button_error("Can't find field \"text\"")),
            Some(Value::String(_)) => {}
            Some(_) => return Err(button_error("Field \"text\" must be of type String")),
        }
        let actions: Vec<&str> = BUTTON_ACTIONS
            .iter()
            .copied()
            .filter(|field| match button.get(*field) {
                None | Some(Value::Null) | Some(Value::Bool(false)) => false,
                Some(Value::String(s)) => {
                    !(s.is_empty() && matches!(*field, "url" | "callback_data"))
                }
                Some(_) => true,
            })
            .collect();
        match actions.as_slice() {
            [] => {
                return Err(button_error(
                    "Text buttons are unallowed in the inline keyboard",
                ));
            }
            [_] => {}
            several => {
                return Err(button_error(&format!(
                    "a button must have exactly one action field, found {}",
                    several.join(", ")
                )));
            }
        }
        match button.get("callback_data") {
            None | Some(Value::Null) => {}
            Some(Value::String(data)) if data.len() <= MAX_CALLBACK_DATA => {}
            Some(Value::String(_)) => return Err(Reply::bad_request("BUTTON_DATA_INVALID")),
            Some(_) => {
                return Err(button_error(
                    "Field \"callback_data\" must be of type String",
                ));
            }
        }
    }
    Ok(())
}

/// `sendMessageDraft` (Bot API 9.3): a private chat, a non-zero `draft_id`, and a `text` of 0 to
/// 4096 characters after entity parsing (empty shows "Thinking…"), parsed like `sendMessage`'s.
fn send_message_draft(bot: &mut BotState, p: &Params<'_>) -> Reply {
    match try_send_message_draft(bot, p) {
        Ok(v) | Err(v) => v,
    }
}

fn try_send_message_draft(bot: &mut BotState, p: &Params<'_>) -> Result<Reply, Reply> {
    let chat_id = chat_id(p)?;
    let draft_id = match p.int("draft_id") {
        Ok(Some(id)) if id != 0 => id,
        Ok(_) => return Err(Reply::bad_request("draft_id must be non-zero")),
        Err(()) => return Err(Reply::bad_request("wrong draft_id specified")),
    };
    let source = p.str("text").unwrap_or_default();
    let (text, parse_mode) = if source.is_empty() {
        (String::new(), None)
    } else {
        let (formatted, _, _, parse_mode) = formatted_text(p)?;
        (formatted.text, parse_mode)
    };
    writable_chat(bot, chat_id)?;
    bot.drafts.push(SentDraft {
        chat_id,
        draft_id,
        text,
        source,
        parse_mode,
        can_stop: p.bool("can_stop"),
        at: now(),
    });
    Ok(Reply::Ok(json!(true)))
}

fn send_message(bot: &mut BotState, p: &Params<'_>) -> Reply {
    match try_send_message(bot, p) {
        Ok(v) | Err(v) => v,
    }
}

fn try_send_message(bot: &mut BotState, p: &Params<'_>) -> Result<Reply, Reply> {
    let chat_id = chat_id(p)?;
    let (formatted, entities, source, parse_mode) = formatted_text(p)?;
    let markup = reply_markup(p)?;
    let reply_params = p
        .json("reply_parameters")
        .ok()
        .flatten()
        .unwrap_or_default();
    let reply_to = reply_params["message_id"]
        .as_i64()
        .or_else(|| {
            reply_params["message_id"]
                .as_str()
                .and_then(|s| s.parse().ok())
        })
        .or(p.int("reply_to_message_id").ok().flatten());
    let allow_without_reply = reply_params["allow_sending_without_reply"]
        .as_bool()
        .unwrap_or(false)
        || p.bool("allow_sending_without_reply");
    let from = bot.user_json();
    let chat = writable_chat(bot, chat_id)?;
    let reply_to_message = match reply_to {
        None => None,
        Some(id) => match chat.messages.get(&id) {
            Some(m) => Some(m.json.clone()),
            None if allow_without_reply => None,
            None => return Err(Reply::bad_request("message to be replied not found")),
        },
    };
    let message_id = chat.next_message_id;
    chat.next_message_id += 1;
    let mut message = json!({
        "message_id": message_id,
        "from": from,
        "chat": chat_json(chat_id, chat),
        "date": unix_now(),
        "text": formatted.text,
    });
    if !entities.is_empty() {
        message["entities"] = json!(entities);
    }
    if let Some(replied) = reply_to_message {
        message["reply_to_message"] = replied;
    }
    set_inline_keyboard(&mut message, markup.as_ref());
    chat.messages.insert(
        message_id,
        StoredMessage {
            from_bot: true,
            json: message.clone(),
        },
    );
    bot.sent_index.insert((chat_id, message_id), bot.sent.len());
    bot.sent.push(super::SentMessage {
        message_id,
        chat_id,
        text: formatted.text,
        parse_mode,
        edits: Vec::new(),
        at: now(),
        source,
        entities,
        reply_markup_history: vec![markup.clone()],
        reply_markup: markup,
        reply_to_message_id: reply_to.filter(|_| message.get("reply_to_message").is_some()),
        voice: None,
        deleted: false,
    });
    Ok(Reply::Ok(message))
}

/// Telegram echoes only an inline keyboard back in the Message object, and one without buttons
/// is no keyboard at all.
pub(crate) fn set_inline_keyboard(message: &mut Value, markup: Option<&Value>) {
    let has_buttons = |m: &&Value| {
        m["inline_keyboard"].as_array().is_some_and(|rows| {
            rows.iter()
                .any(|row| row.as_array().is_some_and(|r| !r.is_empty()))
        })
    };
    match markup.filter(has_buttons) {
        Some(m) => message["reply_markup"] = m.clone(),
        None => {
            if let Some(obj) = message.as_object_mut() {
                obj.remove("reply_markup");
            }
        }
    }
}

fn edit_message_text(bot: &mut BotState, p: &Params<'_>) -> Reply {
    match try_edit_message_text(bot, p) {
        Ok(v) | Err(v) => v,
    }
}

/// The `(chat_id, message_id)` an edit names.
fn message_to_edit(p: &Params<'_>) -> Result<(i64, i64), Reply> {
    if p.str("inline_message_id").is_some() {
        // The fake has no inline messages.
        return Err(Reply::bad_request("MESSAGE_ID_INVALID"));
    }
    let chat_id = chat_id(p)?;
    match p.int("message_id") {
        Ok(Some(id)) => Ok((chat_id, id)),
        Ok(None) => Err(Reply::bad_request("message identifier is not specified")),
        Err(()) => Err(Reply::bad_request("message to edit not found")),
    }
}

/// The bot's own message `message_id` in a chat it may write to.
fn editable_message(
    bot: &mut BotState,
    chat_id: i64,
    message_id: i64,
) -> Result<&mut StoredMessage, Reply> {
    match writable_chat(bot, chat_id)?.messages.get_mut(&message_id) {
        Some(m) if m.from_bot => Ok(m),
        Some(_) => Err(Reply::bad_request("message can't be edited")),
        None => Err(Reply::bad_request("message to edit not found")),
    }
}

const NOT_MODIFIED: &str = "message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message";

/// Keeps [`super::SentMessage::reply_markup`] current after an edit changed the keyboard.
fn record_keyboard(
    bot: &mut BotState,
    chat_id: i64,
    message_id: i64,
    before: &Value,
    after: &Value,
) {
    let (before, after) = (before.get("reply_markup"), after.get("reply_markup"));
    if before == after {
        return;
    }
    if let Some(&i) = bot.sent_index.get(&(chat_id, message_id)) {
        let sent = &mut bot.sent[i];
        sent.reply_markup = after.cloned();
        sent.reply_markup_history.push(after.cloned());
    }
}

fn try_edit_message_text(bot: &mut BotState, p: &Params<'_>) -> Result<Reply, Reply> {
    let (chat_id, message_id) = message_to_edit(p)?;
    let (formatted, entities, _source, _parse_mode) = formatted_text(p)?;
    let markup = reply_markup(p)?;
    let stored = editable_message(bot, chat_id, message_id)?;
    if stored.json.get("text").is_none() {
        return Err(Reply::bad_request("there is no text in the message to edit"));
    }
    let mut edited = stored.json.clone();
    edited["text"] = json!(formatted.text);
    match entities.is_empty() {
        true => {
            if let Some(obj) = edited.as_object_mut() {
                obj.remove("entities");
            }
        }
        false => edited["entities"] = json!(entities),
    }
    set_inline_keyboard(&mut edited, markup.as_ref());
    let unchanged = ["text", "entities", "reply_markup"]
        .iter()
        .all(|k| edited.get(k) == stored.json.get(k));
    if unchanged {
        return Err(Reply::bad_request(NOT_MODIFIED));
    }
    edited["edit_date"] = json!(unix_now());
    let before = std::mem::replace(&mut stored.json, edited.clone());
    record_keyboard(bot, chat_id, message_id, &before, &edited);
    if let Some(&i) = bot.sent_index.get(&(chat_id, message_id)) {
        bot.sent[i].edits.push(formatted.text);
    }
    Ok(Reply::Ok(edited))
}

fn edit_message_reply_markup(bot: &mut BotState, p: &Params<'_>) -> Reply {
    match try_edit_message_reply_markup(bot, p) {
        Ok(v) | Err(v) => v,
    }
}

/// Replaces the inline keyboard; no `reply_markup` (or one without buttons) removes it. The
/// text is untouched, so Telegram does not mark the message edited: no `edit_date` is set.
fn try_edit_message_reply_markup(bot: &mut BotState, p: &Params<'_>) -> Result<Reply, Reply> {
    let (chat_id, message_id) = message_to_edit(p)?;
    let markup = reply_markup(p)?;
    let stored = editable_message(bot, chat_id, message_id)?;
    let mut edited = stored.json.clone();
    set_inline_keyboard(&mut edited, markup.as_ref());
    if edited.get("reply_markup") == stored.json.get("reply_markup") {
        return Err(Reply::bad_request(NOT_MODIFIED));
    }
    let before = std::mem::replace(&mut stored.json, edited.clone());
    record_keyboard(bot, chat_id, message_id, &before, &edited);
    Ok(Reply::Ok(edited))
}

fn delete_message(bot: &mut BotState, p: &Params<'_>) -> Reply {
    match try_delete_message(bot, p) {
        Ok(v) | Err(v) => v,
    }
}

/// Deletes a message of the chat (in a private chat a bot may delete the user's messages and its
/// own); a bot's own message is marked [`super::SentMessage::deleted`], not forgotten, so tests
/// can see it went.
fn try_delete_message(bot: &mut BotState, p: &Params<'_>) -> Result<Reply, Reply> {
    let chat_id = chat_id(p)?;
    let message_id = match p.int("message_id") {
        Ok(Some(id)) => id,
        Ok(None) => return Err(Reply::bad_request("message identifier is not specified")),
        Err(()) => return Err(Reply::bad_request("message to delete not found")),
    };
    if writable_chat(bot, chat_id)?.messages.remove(&message_id).is_none() {
        return Err(Reply::bad_request("message to delete not found"));
    }
    if let Some(&i) = bot.sent_index.get(&(chat_id, message_id)) {
        bot.sent[i].deleted = true;
    }
    Ok(Reply::Ok(json!(true)))
}

/// Answers a callback query once; Telegram gives the same error for an id it never issued, one
/// already answered and one too old.
fn answer_callback_query(bot: &mut BotState, p: &Params<'_>) -> Reply {
    let id = p.str("callback_query_id").unwrap_or_default();
    if !bot.open_callback_queries.contains(&id) {
        return Reply::bad_request(
            "query is too old and response timeout expired or query ID is invalid",
        );
    }
    let text = p.str("text").filter(|t| !t.is_empty());
    if text
        .as_deref()
        .is_some_and(|t| markup::utf16_len(t) > MAX_CALLBACK_ANSWER)
    {
        return Reply::bad_request("MESSAGE_TOO_LONG");
    }
    bot.open_callback_queries.remove(&id);
    bot.callback_answers.push(CallbackAnswer {
        callback_query_id: id,
        text,
        show_alert: p.bool("show_alert"),
    });
    Reply::Ok(json!(true))
}

fn send_chat_action(bot: &mut BotState, p: &Params<'_>) -> Reply {
    let chat_id = match chat_id(p) {
        Ok(id) => id,
        Err(reply) => return reply,
    };
    let action = p.str("action").unwrap_or_default();
    if !CHAT_ACTIONS.contains(&action.as_str()) {
        return Reply::bad_request("wrong parameter action in request");
    }
    if let Err(reply) = writable_chat(bot, chat_id) {
        return reply;
    }
    bot.chat_actions.push((chat_id, action));
    Reply::Ok(json!(true))
}

/// The key a command menu is kept under: its scope (`default` when none is given) and its
/// `language_code` — "default", "all_private_chats", "chat:42", "chat_member:42:7", "chat:42/de".
pub(crate) fn command_scope(p: &Params<'_>) -> Result<String, Reply> {
    let scope = match p.json("scope") {
        Ok(Some(scope)) => scope,
        Ok(None) => json!({"type": "default"}),
        Err(()) => return Err(Reply::bad_request("can't parse BotCommandScope JSON object")),
    };
    let chat = || match &scope["chat_id"] {
        Value::Number(n) => Ok(n.to_string()),
        Value::String(s) if !s.is_empty() => Ok(s.clone()),
        _ => Err(Reply::bad_request("chat_id is empty")),
    };
    let kind = scope["type"].as_str().unwrap_or_default();
    let key = match kind {
        "default" | "all_private_chats" | "all_group_chats" | "all_chat_administrators" => {
            kind.to_owned()
        }
        "chat" | "chat_administrators" => format!("{kind}:{}", chat()?),
        "chat_member" => match scope["user_id"].as_i64() {
            Some(user) => format!("{kind}:{}:{user}", chat()?),
            None => return Err(Reply::bad_request("user_id is empty")),
        },
        _ => return Err(Reply::bad_request("unsupported bot command scope type")),
    };
    Ok(match p.str("language_code").filter(|l| !l.is_empty()) {
        Some(language) => format!("{key}/{language}"),
        None => key,
    })
}

fn set_my_commands(bot: &mut BotState, p: &Params<'_>) -> Reply {
    let key = match command_scope(p) {
        Ok(key) => key,
        Err(reply) => return reply,
    };
    let commands = match p.json("commands") {
        Ok(Some(Value::Array(c))) => c,
        Ok(None) => return Reply::bad_request("parameter \"commands\" is required"),
        _ => return Reply::bad_request("can't parse commands JSON object"),
    };
    if commands.len() > 100 {
        return Reply::bad_request("too many commands specified");
    }
    for c in &commands {
        let name = c["command"].as_str().unwrap_or_default();
        let valid_name = (1..=32).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !valid_name {
            return Reply::bad_request("BOT_COMMAND_INVALID");
        }
        let description = c["description"].as_str().unwrap_or_default();
        if !(1..=256).contains(&description.chars().count()) {
            return Reply::bad_request("BOT_COMMAND_DESCRIPTION_INVALID");
        }
    }
    bot.commands.insert(key, Value::Array(commands));
    Reply::Ok(json!(true))
}
