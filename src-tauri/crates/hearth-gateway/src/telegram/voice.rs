//! Sending a voice reply: the spoken answer as a Telegram voice note (`sendVoice`, Ogg Opus,
//! named `reply.ogg`), with the rendered answer as its caption when it fits a caption. The same
//! retry rules as every other send (`send.rs`); a caption Telegram will not parse goes again as
//! plain text, as a reply's chunk does.

use teloxide::Bot;
use teloxide::payloads::SendVoiceSetters;
use teloxide::requests::Requester;
use teloxide::types::{ChatId, InputFile, ParseMode};

use super::reply::ReplyChunk;
use super::send::{SendError, with_send_retries};

/// Telegram's limit on a caption, in UTF-16 units of its visible text.
pub const CAPTION_LIMIT: usize = 1024;

/// Sends `audio` (Ogg Opus) as a voice note, with `caption` (one chunk rendered within
/// [`CAPTION_LIMIT`]) when there is one. A refusal — the member does not take voice messages
/// (`VOICE_MESSAGES_FORBIDDEN`), the file is not audio Telegram takes — is returned, not retried.
pub async fn send_voice(
    bot: &Bot,
    chat_id: i64,
    audio: Vec<u8>,
    caption: Option<&ReplyChunk>,
) -> Result<(), SendError> {
    let first = send_once(bot, chat_id, &audio, caption.map(|c| (c.html.as_str(), Some(ParseMode::Html)))).await;
    match (first, caption) {
        (Err(SendError::Refused(reason)), Some(c)) if reason.to_lowercase().contains("parse") => {
            tracing::warn!(%reason, "Telegram refused a rendered caption; sending it as plain text");
            send_once(bot, chat_id, &audio, Some((c.plain.as_str(), None))).await
        }
        (other, _) => other,
    }
}

async fn send_once(
    bot: &Bot,
    chat_id: i64,
    audio: &[u8],
    caption: Option<(&str, Option<ParseMode>)>,
) -> Result<(), SendError> {
    with_send_retries(|| {
        let mut req = bot.send_voice(ChatId(chat_id), InputFile::memory(audio.to_vec()).file_name("reply.ogg"));
        if let Some((text, mode)) = caption {
            req = req.caption(text);
            if let Some(mode) = mode {
                req = req.parse_mode(mode);
            }
        }
        async move { req.await.map(|_| ()) }
    })
    .await
}
