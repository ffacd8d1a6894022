//! Edit in place: where drafts cannot go — a group chat (Telegram has drafts in private chats
//! only) or a bot whose server does not know `sendMessageDraft` — the answer is shown while it is
//! written as one ordinary message: sent once there is some text, then edited with the newer text
//! at most once every [`EDIT_GAP`] (Telegram allows a bot about one message a second in a chat).
//! When the answer is finished that message *becomes* the reply ([`finish_preview`]): it is edited
//! to the reply's first part and any further parts follow as new messages, so the member reads one
//! answer, never a preview and then the same words again.
//!
//! What can go wrong, and what the member then sees:
//! - A 429 is waited out: the preview lags, and the final edit waits and tries again (the retry
//!   rules every send keeps, `send.rs`).
//! - "message is not modified" is no failure: the message already says it.
//! - Any other refusal of a preview request ends the preview for the turn (the message stays as it
//!   was); the final edit is still tried. Should the final edit fail for good (the member deleted
//!   the preview, Telegram refuses it), the reply is sent whole as new messages and the preview is
//!   deleted — or, if even that fails, left standing above the whole reply. The reply is never
//!   lost and never sent twice.
//! - A server that does not know `editMessageText` (404, "method not found") is remembered for the
//!   bot ([`PreviewSupport`]): its chats get "typing…" and the finished reply only.
//!
//! A preview message has no Stop button: Stop is a draft's (`can_stop`), and a message has none.
//!
//! Each request goes through teloxide over the bot's client; the text is rendered like a draft
//! (`render_draft`: the part being written, as safe Telegram HTML), with the same plain fallback
//! should Telegram refuse the HTML anyway.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use teloxide::payloads::{EditMessageTextSetters, SendMessageSetters};
use teloxide::requests::Requester;
use teloxide::types::{ChatId, MessageId, ParseMode};
use teloxide::{ApiError, Bot, RequestError};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::CHUNK_LIMIT;
use super::draft::{DraftText, bot_id, render_draft};
use super::reply::{ReplyChunk, render_reply};
use super::send::{SendError, is_transient, send_chunks, with_send_retries};

/// The shortest pause between two requests about one preview message.
pub const EDIT_GAP: Duration = Duration::from_secs(1);

/// The longest a preview waits out a 429 before trying again.
const MAX_EDIT_PAUSE: Duration = Duration::from_secs(30);

/// Time limit on one preview request: a slow Telegram only makes the preview lag.
pub const PREVIEW_TIMEOUT: Duration = Duration::from_secs(10);

/// How a bot's chats may see an answer while it is written, as far as its server allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreviewWay {
    /// Drafts (`sendMessageDraft`) in a private chat; one message edited in place elsewhere.
    Drafts,
    /// One message edited in place, in every chat.
    Edits,
    /// Neither: "typing…", then the finished reply.
    TypingOnly,
}

/// What each bot's server turned out to allow, remembered for as long as the gateway runs: a bot
/// is tried with drafts until its server says it does not know them, then with edits, then with
/// nothing. Keyed by the bot's numeric id (never its token).
#[derive(Debug, Clone, Default)]
pub struct PreviewSupport(Arc<Mutex<HashMap<String, PreviewWay>>>);

impl PreviewSupport {
    /// What `bot` may try in chat `chat_id`: drafts only in a private chat (a positive id; a group
    /// or channel has a negative one).
    pub fn way_in(&self, bot: &Bot, chat_id: i64) -> PreviewWay {
        match self.0.lock().get(bot_id(bot)).copied().unwrap_or(PreviewWay::Drafts) {
            PreviewWay::Drafts if chat_id <= 0 => PreviewWay::Edits,
            way => way,
        }
    }

    /// `bot`'s server does not know `sendMessageDraft`: edits from now on (unless edits failed too).
    pub fn no_drafts(&self, bot: &Bot) {
        let mut ways = self.0.lock();
        let way = ways.entry(bot_id(bot).to_owned()).or_insert(PreviewWay::Drafts);
        if *way == PreviewWay::Drafts {
            tracing::info!(bot = bot_id(bot), "this bot's server has no drafts; its chats get an edited message");
            *way = PreviewWay::Edits;
        }
    }

    /// `bot`'s server does not know `editMessageText`: typing only from now on.
    fn no_edits(&self, bot: &Bot) {
        tracing::info!(bot = bot_id(bot), "this bot's server cannot edit messages; its chats get typing and the reply");
        self.0.lock().insert(bot_id(bot).to_owned(), PreviewWay::TypingOnly);
    }
}

/// One turn's preview message, shared by the task that edits it ([`show_edits`]) and the turn
/// that makes it the reply ([`finish_preview`]).
#[derive(Debug, Clone, Default)]
pub struct Preview(Arc<Mutex<PreviewState>>);

#[derive(Debug, Default)]
struct PreviewState {
    /// The message, once Telegram accepted it.
    message_id: Option<MessageId>,
    /// No request about it before this: [`EDIT_GAP`] after the last one was answered, or what a
    /// 429 asked.
    not_before: Option<Instant>,
    /// The first `sendMessage` is on its way: until it is answered nobody knows the message's id,
    /// so the turn waits for it rather than send the reply beside a preview it cannot edit.
    sending: bool,
}

impl Preview {
    /// Whether a preview message is in the chat.
    pub fn exists(&self) -> bool {
        self.0.lock().message_id.is_some()
    }

    /// Whether the first `sendMessage` is still on its way.
    pub fn sending(&self) -> bool {
        self.0.lock().sending
    }

    fn message_id(&self) -> Option<MessageId> {
        self.0.lock().message_id
    }

    fn not_before(&self) -> Option<Instant> {
        self.0.lock().not_before
    }

    /// The next request waits `pause` from now.
    fn pause(&self, pause: Duration) -> Instant {
        let until = Instant::now() + pause;
        self.0.lock().not_before = Some(until);
        until
    }
}

/// Why a preview request did not show.
#[derive(Debug)]
enum Trouble {
    /// The server does not know the method.
    Unsupported,
    /// 429: wait this long.
    RetryAfter(Duration),
    /// Telegram said no (the message was deleted, the chat is gone…).
    Refused(String),
    Unreachable(String),
}

/// Shows `shown`'s newest text as the turn's preview message until `stop` (the reply is ready:
/// a request on its way is finished first, so its message id is known), the sender is dropped,
/// or Telegram will not take the preview. Only written text is shown: "Thinking…" and a tool's
/// progress line never become a message of their own.
pub async fn show_edits(
    bot: &Bot,
    chat_id: i64,
    shown: &mut watch::Receiver<DraftText>,
    preview: &Preview,
    support: &PreviewSupport,
    stop: &CancellationToken,
) {
    loop {
        tokio::select! {
            biased;
            () = stop.cancelled() => return,
            changed = shown.changed() => if changed.is_err() { return },
        }
        let what = shown.borrow_and_update().clone();
        if !matches!(what, DraftText::Writing(_)) {
            continue;
        }
        let (html, plain) = render_draft(&what);
        // How long until the next request, and whether there is one.
        let (pause, again) = match show_text(bot, chat_id, preview, &html, &plain).await {
            Ok(()) => (EDIT_GAP, true),
            Err(Trouble::RetryAfter(wait)) => (wait.clamp(EDIT_GAP, MAX_EDIT_PAUSE), true),
            Err(Trouble::Unsupported) => {
                support.no_edits(bot);
                (EDIT_GAP, false)
            }
            Err(Trouble::Refused(reason)) => {
                tracing::warn!(%reason, "Telegram refused the preview; the reply comes when it is finished");
                (EDIT_GAP, false)
            }
            Err(Trouble::Unreachable(what)) if !preview.exists() => {
                // A send that timed out may still arrive; a second one could not be edited away.
                tracing::debug!(%what, "the preview did not reach Telegram; no preview in this turn");
                (EDIT_GAP, false)
            }
            Err(Trouble::Unreachable(what)) => {
                tracing::debug!(%what, "a preview edit did not reach Telegram");
                (EDIT_GAP, true)
            }
        };
        // The final edit keeps the same pace (`finish_preview`).
        let until = preview.pause(pause);
        if !again {
            return;
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep_until(until) => {}
        }
    }
}

/// Sends the preview (the first time) or edits it to `html`, again as `plain` if Telegram
/// refuses the HTML.
async fn show_text(bot: &Bot, chat_id: i64, preview: &Preview, html: &str, plain: &str) -> Result<(), Trouble> {
    let id = {
        let mut state = preview.0.lock();
        state.sending = state.message_id.is_none();
        state.message_id
    };
    let mut shown = request(bot, chat_id, id, html, Some(ParseMode::Html)).await;
    if let Err(Trouble::Refused(reason)) = &shown
        && reason.to_ascii_lowercase().contains("parse")
    {
        tracing::warn!(%reason, "Telegram refused a rendered preview; sending it as plain text");
        shown = request(bot, chat_id, id, plain, None).await;
    }
    let mut state = preview.0.lock();
    state.sending = false;
    if let Ok(Some(sent)) = shown {
        state.message_id = Some(sent);
    }
    shown.map(drop)
}

/// One request: a new message when `id` is `None` (its id returned), else an edit of `id`.
async fn request(
    bot: &Bot,
    chat_id: i64,
    id: Option<MessageId>,
    text: &str,
    mode: Option<ParseMode>,
) -> Result<Option<MessageId>, Trouble> {
    let answered = match id {
        None => {
            let mut send = bot.send_message(ChatId(chat_id), text);
            if let Some(mode) = mode {
                send = send.parse_mode(mode);
            }
            tokio::time::timeout(PREVIEW_TIMEOUT, send).await.map(|r| r.map(|m| Some(m.id)))
        }
        Some(id) => {
            let mut edit = bot.edit_message_text(ChatId(chat_id), id, text);
            if let Some(mode) = mode {
                edit = edit.parse_mode(mode);
            }
            tokio::time::timeout(PREVIEW_TIMEOUT, edit).await.map(|r| r.map(|_| None))
        }
    };
    match answered {
        Err(_) => Err(Trouble::Unreachable(format!("no answer within {PREVIEW_TIMEOUT:?}"))),
        Ok(Ok(sent)) => Ok(sent),
        Ok(Err(RequestError::Api(ApiError::MessageNotModified))) => Ok(None),
        Ok(Err(e)) => Err(trouble(e)),
    }
}

/// Sorts a failed preview request.
fn trouble(e: RequestError) -> Trouble {
    match e {
        RequestError::RetryAfter(secs) => Trouble::RetryAfter(Duration::from_secs(secs.seconds() as u64)),
        RequestError::Api(ApiError::Unknown(description)) if method_unknown(&description) => Trouble::Unsupported,
        e if is_transient(&e) => Trouble::Unreachable(e.to_string()),
        e => Trouble::Refused(e.to_string()),
    }
}

/// Whether Telegram's description says the method does not exist (a 404 reads "Not Found").
fn method_unknown(description: &str) -> bool {
    let d = description.trim().to_ascii_lowercase();
    d == "not found" || d.contains("method not found") || d.contains("unknown method")
}

/// Sends the finished reply `text` through the turn's preview: the preview message is edited to
/// the reply's first part (no sooner than [`EDIT_GAP`] after its last request was answered, or
/// than a 429 asked) and the other parts follow as new messages. Without a preview message the
/// reply is sent as usual. If the edit fails for good, the reply is sent whole as new messages
/// and the preview deleted.
pub async fn finish_preview(bot: &Bot, chat_id: i64, preview: &Preview, text: &str) -> Result<(), SendError> {
    let chunks = render_reply(text, CHUNK_LIMIT);
    let (Some(id), Some(first)) = (preview.message_id(), chunks.first()) else {
        return send_chunks(bot, chat_id, &chunks).await;
    };
    if let Some(until) = preview.not_before() {
        tokio::time::sleep_until(until).await;
    }
    match edit_to(bot, chat_id, id, first).await {
        Ok(()) => send_chunks(bot, chat_id, &chunks[1..]).await,
        Err(e) => {
            tracing::warn!(error = %e, "the preview could not become the reply; sending the reply anew");
            send_chunks(bot, chat_id, &chunks).await?;
            if let Err(e) = bot.delete_message(ChatId(chat_id), id).await {
                tracing::info!(error = %e, "could not delete the preview; it stays above the reply");
            }
            Ok(())
        }
    }
}

/// Edits message `id` to `chunk` under the retry rules every send keeps (a 429 waited out); again
/// as plain text if Telegram refuses the HTML. "Not modified" is success.
async fn edit_to(bot: &Bot, chat_id: i64, id: MessageId, chunk: &ReplyChunk) -> Result<(), SendError> {
    let edit = |text: String, mode: Option<ParseMode>| {
        with_send_retries(move || {
            let mut edit = bot.edit_message_text(ChatId(chat_id), id, text.clone());
            if let Some(mode) = mode {
                edit = edit.parse_mode(mode);
            }
            async move {
                match edit.await {
                    Ok(_) | Err(RequestError::Api(ApiError::MessageNotModified)) => Ok(()),
                    Err(e) => Err(e),
                }
            }
        })
    };
    match edit(chunk.html.clone(), Some(ParseMode::Html)).await {
        Err(SendError::Refused(reason)) if reason.to_ascii_lowercase().contains("parse") => {
            tracing::warn!(%reason, "Telegram refused the rendered reply as an edit; sending it as plain text");
            edit(chunk.plain.clone(), None).await
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bot(id: &str) -> Bot {
        Bot::new(format!("{id}:AAsecret"))
    }

    #[test]
    fn each_bot_falls_back_on_its_own_and_groups_never_get_drafts() {
        let support = PreviewSupport::default();
        let (a, b) = (bot("11"), bot("22"));
        assert_eq!(support.way_in(&a, 7), PreviewWay::Drafts);
        assert_eq!(support.way_in(&a, -100123), PreviewWay::Edits, "a group gets edits");
        support.no_drafts(&a);
        assert_eq!(support.way_in(&a, 7), PreviewWay::Edits);
        assert_eq!(support.way_in(&b, 7), PreviewWay::Drafts, "another bot is not affected");
        support.no_edits(&a);
        assert_eq!(support.way_in(&a, 7), PreviewWay::TypingOnly);
        support.no_drafts(&a);
        assert_eq!(support.way_in(&a, -5), PreviewWay::TypingOnly, "no way back up");
    }

    #[test]
    fn failures_are_sorted_into_what_to_do_next() {
        let api = |d: &str| RequestError::Api(ApiError::Unknown(d.into()));
        assert!(matches!(trouble(api("Not Found")), Trouble::Unsupported));
        assert!(matches!(trouble(api("Bad Request: method not found")), Trouble::Unsupported));
        assert!(matches!(trouble(api("Internal Server Error")), Trouble::Unreachable(_)));
        assert!(matches!(trouble(RequestError::Api(ApiError::MessageToEditNotFound)), Trouble::Refused(_)));
        let wait = trouble(RequestError::RetryAfter(teloxide::types::Seconds::from_seconds(3)));
        assert!(matches!(wait, Trouble::RetryAfter(d) if d == Duration::from_secs(3)));
    }
}
