//! Files: what users send (voice notes, audio, photos and albums, documents) as Telegram renders
//! them in a Message, `getFile`, the download route `GET /file/bot<token>/<file_path>`, and
//! `sendVoice`. Files belong to one bot, as on Telegram (a `file_id` is only good with the token
//! of the bot that received it), and are kept whole in memory for the fake's lifetime.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};

use super::markup::{self, ParseMode};
use super::params::Params;
use super::world::{BotState, Reply, Shared, StoredMessage, chat_json, now, unix_now};
use super::{Download, FakePhoto, FakeUser, Fault, Media, SentVoice};
use crate::media;
use crate::multipart::Part;

/// The Bot API serves downloads up to 20 MB; `getFile` refuses bigger files.
pub(crate) const MAX_DOWNLOAD_BYTES: usize = 20 * 1024 * 1024;
/// Telegram's limit on a caption, in UTF-16 code units after entity parsing.
const MAX_CAPTION: usize = 1024;
/// The boxes Telegram scales a photo's smaller sizes into (its `s`, `m`, `x`, `y` sizes).
const PHOTO_BOXES: [u32; 4] = [90, 320, 800, 1280];

/// A file Telegram holds for a bot.
pub(crate) struct StoredFile {
    pub file_unique_id: String,
    pub file_path: String,
    pub bytes: Bytes,
}

impl BotState {
    /// Stores `bytes` as a new file of this bot; returns its `file_id`. `kind` picks the
    /// `file_id` prefix and the `file_path` folder as Telegram does (`voice/file_3.oga`).
    pub(crate) fn store_file(&mut self, kind: FileKind, bytes: Bytes, extension: &str) -> (String, String) {
        use rand::Rng;
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
        let mut rng = rand::rng();
        let mut random =
            |n: usize| -> String { (0..n).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect() };
        let (prefix, folder) = match kind {
            FileKind::Voice => ("AwACAgIAAxkBAA", "voice"),
            FileKind::Audio => ("CQACAgIAAxkBAA", "music"),
            FileKind::Photo => ("AgACAgIAAxkBAA", "photos"),
            FileKind::Document => ("BQACAgIAAxkBAA", "documents"),
        };
        let n = self.files.len();
        let file_id = format!("{prefix}{}", random(58));
        let file_unique_id = format!("AgAD{}", random(12));
        let extension = extension.trim_start_matches('.');
        let file_path =
            if extension.is_empty() { format!("{folder}/file_{n}") } else { format!("{folder}/file_{n}.{extension}") };
        self.files_by_path.insert(file_path.clone(), file_id.clone());
        self.files.insert(file_id.clone(), StoredFile { file_unique_id: file_unique_id.clone(), file_path, bytes });
        (file_id, file_unique_id)
    }

    /// A file as a Message renders it: `file_id`, `file_unique_id`, `file_size`.
    fn file_json(&mut self, kind: FileKind, bytes: Vec<u8>, extension: &str) -> Value {
        let size = bytes.len();
        let (file_id, file_unique_id) = self.store_file(kind, Bytes::from(bytes), extension);
        json!({ "file_id": file_id, "file_unique_id": file_unique_id, "file_size": size })
    }

    /// A user's message carrying `media` (and a caption), queued as an update; `media_group_id`
    /// ties the photos of an album together.
    pub(crate) fn user_sends_media(
        &mut self,
        user: &FakeUser,
        media: Media,
        caption: Option<&str>,
        media_group_id: Option<&str>,
    ) -> i64 {
        let mut fields = serde_json::Map::new();
        match media {
            Media::Voice { bytes, duration_secs } => {
                let mut voice = self.file_json(FileKind::Voice, bytes, "oga");
                voice["duration"] = json!(duration_secs);
                voice["mime_type"] = json!("audio/ogg");
                fields.insert("voice".into(), voice);
            }
            Media::Audio { bytes, duration_secs, file_name, mime_type } => {
                let mut audio = self.file_json(FileKind::Audio, bytes, extension_of(&file_name));
                audio["duration"] = json!(duration_secs);
                audio["file_name"] = json!(file_name);
                audio["mime_type"] = json!(mime_type);
                fields.insert("audio".into(), audio);
            }
            Media::Photo(photo) => {
                let sizes = self.photo_sizes(photo);
                fields.insert("photo".into(), Value::Array(sizes));
            }
            Media::Document { bytes, file_name, mime_type } => {
                let mut document = self.file_json(FileKind::Document, bytes, extension_of(&file_name));
                document["file_name"] = json!(file_name);
                document["mime_type"] = json!(mime_type);
                fields.insert("document".into(), document);
            }
        }
        if let Some(caption) = caption.filter(|c| !c.is_empty()) {
            fields.insert("caption".into(), json!(caption));
        }
        if let Some(group) = media_group_id {
            fields.insert("media_group_id".into(), json!(group));
        }
        self.user_sends(user, fields)
    }

    /// Telegram's array of PhotoSize, smallest first: the sizes scaled into 90, 320, 800 and
    /// 1280 px boxes that are smaller than the photo (always at least the 90 px thumbnail), then
    /// the photo itself. The smaller sizes are generated grey PNGs of exactly their stated
    /// dimensions (the fake does not re-encode the sender's picture); the largest is the sender's
    /// bytes as given (Telegram would also cap it at 2560 px).
    fn photo_sizes(&mut self, photo: FakePhoto) -> Vec<Value> {
        let FakePhoto { bytes, width, height } = photo;
        let long = width.max(height).max(1);
        let mut dims: Vec<(u32, u32)> = PHOTO_BOXES
            .iter()
            .filter(|&&b| b < long)
            .map(|&b| {
                let scale =
                    |x: u32| ((u64::from(x) * u64::from(b) + u64::from(long) / 2) / u64::from(long)).max(1) as u32;
                (scale(width), scale(height))
            })
            .collect();
        if dims.is_empty() {
            dims.push((width.max(1), height.max(1)));
        }
        let mut sizes: Vec<Value> = dims
            .into_iter()
            .map(|(w, h)| {
                let mut size = self.file_json(FileKind::Photo, media::png(w, h), "png");
                size["width"] = json!(w);
                size["height"] = json!(h);
                size
            })
            .collect();
        let extension = if media::png_dimensions(&bytes).is_some() { "png" } else { "jpg" };
        let mut full = self.file_json(FileKind::Photo, bytes, extension);
        full["width"] = json!(width);
        full["height"] = json!(height);
        sizes.push(full);
        sizes
    }

    /// A private message from `user` with `fields` (text, voice, photo, caption…) added to the
    /// common ones, queued as an update.
    pub(crate) fn user_sends(&mut self, user: &FakeUser, fields: serde_json::Map<String, Value>) -> i64 {
        let chat = self.chat_with(user.id, &user.first_name, Some(&user.username));
        let message_id = chat.next_message_id;
        chat.next_message_id += 1;
        let mut message = json!({
            "message_id": message_id,
            "from": super::world::user_json(user),
            "chat": chat_json(user.id, chat),
            "date": unix_now(),
        });
        if let Some(obj) = message.as_object_mut() {
            obj.extend(fields);
        }
        chat.messages.insert(message_id, StoredMessage { from_bot: false, json: message.clone() });
        self.push_update(json!({ "message": message }))
    }

    /// Takes a [`Fault::TruncatedDownload`], counting it down.
    fn take_download_fault(&mut self) -> bool {
        let Some(i) = self.faults.iter().position(|f| matches!(f, Fault::TruncatedDownload { times } if *times > 0))
        else {
            return false;
        };
        if let Fault::TruncatedDownload { times } = &mut self.faults[i] {
            *times -= 1;
            if *times == 0 {
                self.faults.remove(i);
            }
        }
        true
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum FileKind {
    Voice,
    Audio,
    Photo,
    Document,
}

/// `"pdf"` of `"letter.pdf"`; empty when the name has no extension.
fn extension_of(file_name: &str) -> &str {
    match file_name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() && !ext.is_empty() && ext.len() <= 8 => ext,
        _ => "",
    }
}

/// `getFile`: a File object for a file of this bot; Telegram's errors for an unknown id and for
/// a file over 20 MB.
pub(crate) fn get_file(bot: &mut BotState, p: &Params<'_>) -> Reply {
    let file_id = p.str("file_id").unwrap_or_default();
    if file_id.is_empty() {
        return Reply::bad_request("file_id is empty");
    }
    let Some(file) = bot.files.get(&file_id) else {
        return Reply::bad_request("invalid file_id");
    };
    if file.bytes.len() > MAX_DOWNLOAD_BYTES {
        return Reply::bad_request("file is too big");
    }
    Reply::Ok(json!({
        "file_id": file_id,
        "file_unique_id": file.file_unique_id,
        "file_size": file.bytes.len(),
        "file_path": file.file_path,
    }))
}

/// `sendVoice`: `voice` is an uploaded file (multipart) or the `file_id` of a file the bot
/// holds; `caption` with `parse_mode` or `caption_entities`, at most 1024 characters. The voice
/// becomes a file of the bot and the message is recorded in `sent`.
pub(crate) fn send_voice(bot: &mut BotState, p: &Params<'_>, files: &[Part]) -> Reply {
    match try_send_voice(bot, p, files) {
        Ok(v) | Err(v) => v,
    }
}

fn try_send_voice(bot: &mut BotState, p: &Params<'_>, files: &[Part]) -> Result<Reply, Reply> {
    let chat_id = super::api::chat_id(p)?;
    // The upload is the part named `voice`, or the part a `voice=attach://<name>` points to
    // (how teloxide sends files).
    let attached = p.str("voice").and_then(|v| v.strip_prefix("attach://").map(str::to_owned));
    let upload = files.iter().find(|f| f.name == "voice" || Some(&f.name) == attached.as_ref());
    let (bytes, file_name, mime_type) = match upload {
        Some(upload) => (Bytes::from(upload.bytes.clone()), upload.file_name.clone(), upload.content_type.clone()),
        None => match p.str("voice").filter(|v| !v.is_empty()) {
            None => return Err(Reply::bad_request("there is no voice in the request")),
            Some(id) => match bot.files.get(&id) {
                Some(f) => (f.bytes.clone(), None, Some("audio/ogg".to_owned())),
                None => return Err(Reply::bad_request("wrong file identifier/HTTP URL specified")),
            },
        },
    };
    if bytes.is_empty() {
        return Err(Reply::bad_request("file must be non-empty"));
    }
    let (caption, entities, source, parse_mode) = caption(p)?;
    let duration = p
        .int("duration")
        .ok()
        .flatten()
        .and_then(|d| u32::try_from(d).ok())
        .or_else(|| media::ogg_opus_duration_secs(&bytes))
        .unwrap_or(0);
    let markup = super::api::reply_markup(p)?;
    let from = bot.user_json();
    let chat = super::api::writable_chat(bot, chat_id)?;
    let message_id = chat.next_message_id;
    chat.next_message_id += 1;
    let chat_json = chat_json(chat_id, chat);
    let (file_id, file_unique_id) = bot.store_file(FileKind::Voice, bytes.clone(), "oga");
    let mut message = json!({
        "message_id": message_id,
        "from": from,
        "chat": chat_json,
        "date": unix_now(),
        "voice": {
            "file_id": file_id,
            "file_unique_id": file_unique_id,
            "duration": duration,
            "mime_type": "audio/ogg",
            "file_size": bytes.len(),
        },
    });
    if !caption.is_empty() {
        message["caption"] = json!(caption);
    }
    if !entities.is_empty() {
        message["caption_entities"] = json!(entities);
    }
    super::api::set_inline_keyboard(&mut message, markup.as_ref());
    if let Some(chat) = bot.chats.get_mut(&chat_id) {
        chat.messages.insert(message_id, StoredMessage { from_bot: true, json: message.clone() });
    }
    bot.sent_index.insert((chat_id, message_id), bot.sent.len());
    bot.sent.push(super::SentMessage {
        message_id,
        chat_id,
        text: caption,
        parse_mode,
        edits: Vec::new(),
        at: now(),
        source,
        entities,
        reply_markup_history: vec![markup.clone()],
        reply_markup: markup,
        reply_to_message_id: None,
        voice: Some(SentVoice { file_id, bytes: bytes.to_vec(), file_name, mime_type, duration_secs: duration }),
        deleted: false,
    });
    Ok(Reply::Ok(message))
}

/// A media message's caption after `parse_mode` (or `caption_entities`): (plain text, entities,
/// as sent, parse mode). Unlike a message's text, it may be empty.
fn caption(p: &Params<'_>) -> Result<(String, Vec<Value>, String, Option<String>), Reply> {
    let source = p.str("caption").unwrap_or_default();
    let parse_mode = p.str("parse_mode").filter(|m| !m.is_empty());
    let (text, entities) = match p.json("caption_entities") {
        Ok(Some(Value::Array(entities))) => (source.clone(), entities),
        Ok(Some(_)) | Err(()) => return Err(Reply::bad_request("can't parse entities JSON object")),
        Ok(None) => {
            let mode = match &parse_mode {
                None => None,
                Some(m) => Some(ParseMode::from_param(m).ok_or_else(|| Reply::bad_request("unsupported parse_mode"))?),
            };
            let formatted = markup::parse(&source, mode)
                .map_err(|reason| Reply::bad_request(&format!("can't parse entities: {reason}")))?;
            let entities = formatted.entities.iter().map(markup::Entity::to_json).collect();
            (formatted.text, entities)
        }
    };
    if markup::utf16_len(&text) > MAX_CAPTION {
        return Err(Reply::bad_request("message caption is too long"));
    }
    Ok((text, entities, source, parse_mode))
}

/// `GET /file/bot<token>/<file_path>`: the file's bytes, or 404 (as Telegram answers) for a
/// wrong token or path. Every download is recorded; [`Fault::TruncatedDownload`] cuts the body
/// off halfway (the connection drops before `Content-Length` bytes arrived), and
/// [`Fault::Latency`] delays it like any method.
pub(crate) async fn download(shared: &Arc<Shared>, rest: &str) -> Response {
    let (token, file_path) = rest.split_once('/').unwrap_or((rest, ""));
    let token = super::params::percent_decode(token, false);
    let file_path = super::params::percent_decode(file_path, false);
    let found = {
        let mut world = shared.lock();
        let revoked = world.revoked.contains(&token);
        match world.bots.get_mut(&token).filter(|_| !revoked) {
            None => None,
            Some(bot) => {
                let latency = bot.latency();
                let file = bot
                    .files_by_path
                    .get(&file_path)
                    .and_then(|id| bot.files.get(id).map(|f| (id.clone(), f.bytes.clone())));
                let truncate = file.is_some() && bot.take_download_fault();
                Some((latency, file, truncate))
            }
        }
    };
    let (latency, file, truncate) = found.unwrap_or_default();
    if !latency.is_zero() {
        tokio::select! {
            () = tokio::time::sleep(latency) => {}
            () = shared.shutdown.cancelled() => {}
        }
    }
    let record = |status: u16, file_id: Option<String>, bytes_sent: usize| {
        let mut world = shared.lock();
        world.downloads.push(Download {
            token: token.clone(),
            file_path: file_path.clone(),
            file_id,
            status,
            bytes_sent,
            truncated: truncate,
            at: now(),
        });
        drop(world);
        shared.request_signal.send_modify(|n| *n += 1);
    };
    let Some((file_id, bytes)) = file.filter(|(_, b)| b.len() <= MAX_DOWNLOAD_BYTES) else {
        record(404, None, 0);
        let body = json!({ "ok": false, "error_code": 404, "description": "Not Found" }).to_string();
        let mut response = Response::new(Body::from(body));
        *response.status_mut() = StatusCode::NOT_FOUND;
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        return response;
    };
    let full = bytes.len();
    let mut response = if truncate {
        let half = bytes.slice(..full / 2);
        record(200, Some(file_id), half.len());
        // The server drops the connection when the body fails before `Content-Length` bytes.
        Response::new(Body::from_stream(async_stream::stream! {
            yield Ok::<_, std::io::Error>(half);
            // Pending once, so the server flushes the headers and the half before failing.
            tokio::task::yield_now().await;
            yield Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "the fake cut this download short"));
        }))
    } else {
        record(200, Some(file_id), full);
        Response::new(Body::from(bytes))
    };
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(full));
    response
}
