//! Sending: a rendered reply, a plain note, a question with buttons, and chat actions. Each send
//! is retried on the network's and Telegram's own trouble, never on a refusal.

use std::time::Duration;

use hearth_proto::backoff::{self, Jitter};
use teloxide::payloads::SendMessageSetters;
use teloxide::requests::Requester;
use teloxide::types::{ChatAction, ChatId, ParseMode};
use teloxide::{ApiError, Bot, RequestError};
use tokio_util::sync::CancellationToken;

use super::CHUNK_LIMIT;
use super::reply::{ReplyChunk, render_reply};

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("Telegram refused the message: {0}")]
    Refused(String),
    #[error("could not reach Telegram: {0}")]
    Unreachable(String),
}

/// Sends an assistant's reply: rendered to Telegram HTML that cannot fail to parse, split under
/// the length limit. Should Telegram refuse the HTML anyway, that chunk goes again as plain text.
pub async fn send_reply(bot: &Bot, chat_id: i64, text: &str) -> Result<(), SendError> {
    send_chunks(bot, chat_id, &render_reply(text, CHUNK_LIMIT)).await
}

/// Sends rendered chunks of a reply, each as its own message, in order; a chunk whose HTML
/// Telegram refuses goes again as plain text.
pub(super) async fn send_chunks(bot: &Bot, chat_id: i64, chunks: &[ReplyChunk]) -> Result<(), SendError> {
    for chunk in chunks {
        match send_with_retry(bot, chat_id, &chunk.html, Some(ParseMode::Html)).await {
            Err(SendError::Refused(reason)) if reason.to_lowercase().contains("parse") => {
                tracing::warn!(%reason, "Telegram refused rendered HTML; sending plain text");
                send_with_retry(bot, chat_id, &chunk.plain, None).await?;
            }
            other => other?,
        }
    }
    Ok(())
}

/// Sends a short text we wrote ourselves, without formatting.
pub async fn send_plain(bot: &Bot, chat_id: i64, text: &str) -> Result<(), SendError> {
    send_with_retry(bot, chat_id, text, None).await
}

async fn send_with_retry(bot: &Bot, chat_id: i64, text: &str, mode: Option<ParseMode>) -> Result<(), SendError> {
    let mut retries = SEND_BACKOFF.retries(Some(SEND_ATTEMPTS));
    loop {
        let mut req = bot.send_message(ChatId(chat_id), text);
        if let Some(mode) = mode {
            req = req.parse_mode(mode);
        }
        let last = match req.await {
            Ok(_) => return Ok(()),
            Err(e) => send_trouble(e)?,
        };
        match retries.failed(last.asked) {
            Some(wait) => tokio::time::sleep(wait).await,
            None => return Err(SendError::Unreachable(last.what)),
        }
    }
}

/// Attempts per message, the first included.
const SEND_ATTEMPTS: u32 = 5;

/// Sending backs off from half a second to ten, without jitter: one lane sends at a time.
const SEND_BACKOFF: backoff::Backoff =
    backoff::Backoff::new(Duration::from_millis(500), Duration::from_secs(10), Jitter::None);

/// A send that failed in a way worth trying again.
struct Trouble {
    what: String,
    /// Telegram's own pause (a 429's `retry_after`), kept within 1–60 s.
    asked: Option<Duration>,
}

/// Sorts a failed send: retried (with what Telegram asked for), or refused for good.
fn send_trouble(e: RequestError) -> Result<Trouble, SendError> {
    match e {
        RequestError::RetryAfter(secs) => Ok(Trouble {
            what: format!("rate limited for {}s", secs.seconds()),
            asked: Some(Duration::from_secs((secs.seconds() as u64).clamp(1, 60))),
        }),
        e if is_transient(&e) => Ok(Trouble { what: e.to_string(), asked: None }),
        e => Err(SendError::Refused(e.to_string())),
    }
}

/// Errors worth sending again: the network, and Telegram's own server trouble. teloxide reports
/// a 5xx as an API error carrying only the description (or, for the HTML error page of
/// Telegram's front end, as unparseable JSON), so those are recognised by what they say.
pub(super) fn is_transient(e: &RequestError) -> bool {
    match e {
        RequestError::Network(_) | RequestError::InvalidJson { .. } | RequestError::Io(_) => true,
        RequestError::Api(ApiError::Unknown(description)) => {
            let d = description.to_ascii_lowercase();
            ["internal server error", "bad gateway", "service unavailable", "gateway timeout", "too many requests"]
                .iter()
                .any(|s| d.contains(s))
        }
        _ => false,
    }
}

/// One inline button: its label and the callback data it sends back (at most 64 bytes).
pub struct Button {
    pub label: String,
    pub data: String,
}

/// Sends a short text with one row of inline buttons.
pub async fn send_with_buttons(bot: &Bot, chat_id: i64, text: &str, buttons: Vec<Button>) -> Result<(), SendError> {
    use teloxide::types::{InlineKeyboardButton, InlineKeyboardMarkup};
    let row: Vec<InlineKeyboardButton> =
        buttons.into_iter().map(|b| InlineKeyboardButton::callback(b.label, b.data)).collect();
    let markup = InlineKeyboardMarkup::new(vec![row]);
    let mut retries = SEND_BACKOFF.retries(Some(SEND_ATTEMPTS));
    loop {
        let last = match bot.send_message(ChatId(chat_id), text).reply_markup(markup.clone()).await {
            Ok(_) => return Ok(()),
            Err(e) => send_trouble(e)?,
        };
        match retries.failed(last.asked) {
            Some(wait) => tokio::time::sleep(wait).await,
            None => {
                return Err(SendError::Unreachable(format!("gave up after {SEND_ATTEMPTS} attempts: {}", last.what)));
            }
        }
    }
}

/// Stops the button's spinner, optionally with a short toast. Failure only costs the spinner.
pub async fn answer_callback(bot: &Bot, callback_id: &str, text: Option<&str>) {
    use teloxide::payloads::AnswerCallbackQuerySetters;
    let mut req = bot.answer_callback_query(teloxide::types::CallbackQueryId(callback_id.to_owned()));
    if let Some(t) = text {
        req = req.text(t);
    }
    if let Err(e) = req.await {
        tracing::debug!(error = %e, "answerCallbackQuery failed");
    }
}

/// Replaces a message's text and removes its buttons (an answered question).
pub async fn close_question(bot: &Bot, chat_id: i64, message_id: i32, text: &str) {
    if let Err(e) = bot.edit_message_text(ChatId(chat_id), teloxide::types::MessageId(message_id), text).await {
        tracing::debug!(error = %e, "could not edit the answered question");
    }
}

/// Shows "typing…" in the chat until cancelled. Telegram clears the indicator after about five
/// seconds, so it is renewed every four.
pub async fn show_typing(bot: Bot, chat_id: i64, cancel: CancellationToken) {
    show_action(bot, chat_id, ChatAction::Typing, cancel).await;
}

/// Shows `action` ("typing…", "recording voice…") in the chat until cancelled, renewed every
/// four seconds as [`show_typing`] is.
pub async fn show_action(bot: Bot, chat_id: i64, action: ChatAction, cancel: CancellationToken) {
    loop {
        // A slow Telegram does not hold a finished turn (or a stopping gateway) up.
        let shown = send_action(&bot, chat_id, action);
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = shown => {}
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(4)) => {}
        }
    }
}

/// Shows `action` once (Telegram shows it for about five seconds, or until the bot sends
/// something); failure only costs the indicator, and a slow Telegram is not waited for.
pub async fn send_action(bot: &Bot, chat_id: i64, action: ChatAction) {
    let sent = tokio::time::timeout(Duration::from_secs(5), bot.send_chat_action(ChatId(chat_id), action)).await;
    if let Ok(Err(e)) = sent {
        tracing::debug!(error = %e, "sendChatAction failed");
    }
}

/// Runs one send (`attempt`) under the rules every send here keeps: again on the network's and
/// Telegram's own trouble, after Telegram's asked pause or the backoff, up to [`SEND_ATTEMPTS`];
/// never again on a refusal.
pub(super) async fn with_send_retries<T, F, Fut>(mut attempt: F) -> Result<T, SendError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, RequestError>>,
{
    let mut retries = SEND_BACKOFF.retries(Some(SEND_ATTEMPTS));
    loop {
        let last = match attempt().await {
            Ok(v) => return Ok(v),
            Err(e) => send_trouble(e)?,
        };
        match retries.failed(last.asked) {
            Some(wait) => tokio::time::sleep(wait).await,
            None => {
                return Err(SendError::Unreachable(format!("gave up after {SEND_ATTEMPTS} attempts: {}", last.what)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_trouble_is_retried_and_refusals_are_not() {
        assert!(is_transient(&RequestError::Api(ApiError::Unknown("Internal Server Error".into()))));
        assert!(is_transient(&RequestError::Api(ApiError::Unknown("Bad Gateway".into()))));
        assert!(!is_transient(&RequestError::Api(ApiError::BotBlocked)));
        assert!(!is_transient(&RequestError::Api(ApiError::Unknown("Bad Request: chat not found".into()))));
    }
}
