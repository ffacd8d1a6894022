//! Drafts: the member's reply shown while the model writes it, through the Bot API's
//! `sendMessageDraft` (a private chat only; the draft is a preview of about 30 seconds, and the
//! finished reply is still sent with `sendMessage` — `send.rs`).
//!
//! The request is made here by hand over the bot's own HTTP client (teloxide 0.17 does not know
//! the method): `chat_id`, `draft_id` (non-zero; drafts with the same id animate into each other),
//! `text` (0–4096 characters after entity parsing; empty shows "Thinking…"), `parse_mode` and
//! `can_stop` (a Stop button for the member), as the Bot API page names them. One task per turn
//! ([`show_drafts`]) sends the newest text it was given, at most one request every [`DRAFT_GAP`]
//! per chat, and waits out a 429 (the finished reply never waits for a draft: the turn stops this
//! task before sending it). When the server does not know the method, the task says so
//! ([`DraftsEnded::Unsupported`]): the turn remembers it for the bot (`preview.rs`,
//! `PreviewSupport`) and goes on with one message edited in place instead.
//!
//! A draft is rendered like the reply (`reply/`), so a half-written `**bo` or an open code fence
//! is still HTML Telegram accepts; should Telegram refuse it anyway, the same draft goes once more
//! as plain text.

use std::time::Duration;

use serde_json::{Value, json};
use teloxide::Bot;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::CHUNK_LIMIT;
use super::reply::render_reply;

/// The shortest pause between two drafts to one chat.
pub const DRAFT_GAP: Duration = Duration::from_millis(250);

/// The longest a draft waits out a 429 before trying again (Telegram asks for seconds).
const MAX_DRAFT_PAUSE: Duration = Duration::from_secs(30);

/// Time limit on one draft request: a slow Telegram only makes the preview lag.
const DRAFT_TIMEOUT: Duration = Duration::from_secs(10);

/// What a draft shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DraftText {
    /// Nothing written yet: Telegram shows its "Thinking…" placeholder.
    Thinking,
    /// The answer so far, as the model wrote it (Markdown).
    Writing(String),
    /// What the assistant is doing between steps ("Looking that up…"); never the tool's JSON.
    Progress(&'static str),
}

/// A bot's numeric id: the part of its token before the colon (never the secret after it).
pub(super) fn bot_id(bot: &Bot) -> &str {
    bot.token().split(':').next().unwrap_or_default()
}

/// How [`show_drafts`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DraftsEnded {
    /// The turn's reply is ready (or the text's sender is gone).
    Stopped,
    /// The bot's server does not know `sendMessageDraft` (an older self-hosted Bot API).
    Unsupported,
    /// Telegram refused a draft for another reason: no more previews in this turn.
    Refused,
}

/// Sends `shown`'s newest value to the chat as draft `draft_id` until `stop` (the turn's reply
/// is ready: a request already on its way is finished first, so no draft arrives after the
/// reply), the sender is dropped, or Telegram will not take drafts from this bot.
pub async fn show_drafts(
    bot: &Bot,
    chat_id: i64,
    draft_id: i64,
    shown: &mut watch::Receiver<DraftText>,
    stop: &CancellationToken,
) -> DraftsEnded {
    loop {
        tokio::select! {
            biased;
            () = stop.cancelled() => return DraftsEnded::Stopped,
            changed = shown.changed() => if changed.is_err() { return DraftsEnded::Stopped },
        }
        let what = shown.borrow_and_update().clone();
        let (html, plain) = render_draft(&what);
        let mut sent = send_draft(bot, chat_id, draft_id, &html, true).await;
        if let Err(DraftTrouble::Refused(reason)) = &sent
            && reason.to_ascii_lowercase().contains("parse")
        {
            tracing::warn!(%reason, "Telegram refused a rendered draft; sending it as plain text");
            sent = send_draft(bot, chat_id, draft_id, &plain, false).await;
        }
        let pause = match sent {
            Ok(()) => DRAFT_GAP,
            Err(DraftTrouble::Unsupported) => return DraftsEnded::Unsupported,
            Err(DraftTrouble::RetryAfter(wait)) => wait.clamp(DRAFT_GAP, MAX_DRAFT_PAUSE),
            Err(DraftTrouble::Refused(reason)) => {
                // The preview is lost, not the reply: stop showing drafts in this turn.
                tracing::warn!(%reason, "Telegram refused a draft; the reply comes when it is finished");
                return DraftsEnded::Refused;
            }
            Err(DraftTrouble::Unreachable(what)) => {
                tracing::debug!(%what, "a draft did not reach Telegram");
                DRAFT_GAP
            }
        };
        tokio::select! {
            () = stop.cancelled() => return DraftsEnded::Stopped,
            () = tokio::time::sleep(pause) => {}
        }
    }
}

/// A draft's HTML and its plain fallback: the last chunk of the rendered text (the part being
/// written), or nothing for "Thinking…".
pub fn render_draft(what: &DraftText) -> (String, String) {
    match what {
        DraftText::Thinking => (String::new(), String::new()),
        DraftText::Progress(line) => (line.to_string(), line.to_string()),
        DraftText::Writing(markdown) => match render_reply(markdown, CHUNK_LIMIT).pop() {
            Some(chunk) => (chunk.html, chunk.plain),
            None => (String::new(), String::new()),
        },
    }
}

/// What the member reads while tools run, from the tools a step asked for.
pub fn progress_line(tools: &[String]) -> &'static str {
    let asks = |words: &[&str]| tools.iter().any(|t| words.iter().any(|w| t.contains(w)));
    if asks(&["set_reminder"]) {
        "Setting your reminder…"
    } else if asks(&["reminder"]) {
        "Checking your reminders…"
    } else if asks(&["remember"]) {
        "Making a note of that…"
    } else if asks(&["forget", "delete"]) {
        "Tidying that away…"
    } else if asks(&["file", "write"]) {
        "Checking your notes…"
    } else if asks(&["recall", "search", "knowledge"]) {
        "Looking that up…"
    } else {
        "Working on it…"
    }
}

/// Why a draft did not show.
#[derive(Debug)]
enum DraftTrouble {
    /// The server does not know the method (404, or 400 "method not found").
    Unsupported,
    /// 429: wait this long.
    RetryAfter(Duration),
    /// Telegram said no (bad request, blocked, not a private chat…).
    Refused(String),
    Unreachable(String),
}

async fn send_draft(bot: &Bot, chat_id: i64, draft_id: i64, text: &str, html: bool) -> Result<(), DraftTrouble> {
    let mut url = bot.api_url();
    match url.path_segments_mut() {
        Ok(mut segments) => {
            segments.pop_if_empty().push(&format!("bot{}", bot.token())).push("sendMessageDraft");
        }
        Err(()) => return Err(DraftTrouble::Refused("the Bot API URL cannot take a method".into())),
    }
    // `can_stop`: the member gets a Stop button; pressing it sends the bot a
    // `stopped_message_generation` update (`extract.rs`), and the turn stops (`core/stream.rs`).
    let mut body = json!({ "chat_id": chat_id, "draft_id": draft_id, "text": text, "can_stop": true });
    if html && !text.is_empty() {
        body["parse_mode"] = json!("HTML");
    }
    let request = bot.client().post(url).json(&body).timeout(DRAFT_TIMEOUT).send();
    // The URL holds the token: no error that carries it is kept.
    let response = request.await.map_err(|e| DraftTrouble::Unreachable(e.without_url().to_string()))?;
    let status = response.status().as_u16();
    let answer: Value = response.json().await.unwrap_or(Value::Null);
    if status == 200 && answer.get("ok").and_then(Value::as_bool) == Some(true) {
        return Ok(());
    }
    Err(trouble(status, &answer))
}

/// Sorts a Bot API error answer.
fn trouble(status: u16, answer: &Value) -> DraftTrouble {
    let description = answer.get("description").and_then(Value::as_str).unwrap_or_default().to_owned();
    let lower = description.to_ascii_lowercase();
    if status == 404 || (status == 400 && (lower.contains("method not found") || lower.contains("unknown method"))) {
        return DraftTrouble::Unsupported;
    }
    if status == 429 {
        let secs = answer.pointer("/parameters/retry_after").and_then(Value::as_u64).unwrap_or(1);
        return DraftTrouble::RetryAfter(Duration::from_secs(secs));
    }
    if status >= 500 {
        return DraftTrouble::Unreachable(format!("{status} {description}"));
    }
    DraftTrouble::Refused(if description.is_empty() { format!("status {status}") } else { description })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_sorted_into_what_to_do_next() {
        let answer = |v: Value| v;
        assert!(matches!(trouble(404, &answer(json!({"description": "Not Found"}))), DraftTrouble::Unsupported));
        assert!(matches!(
            trouble(400, &answer(json!({"description": "Bad Request: method not found"}))),
            DraftTrouble::Unsupported
        ));
        assert!(matches!(
            trouble(429, &answer(json!({"parameters": {"retry_after": 3}}))),
            DraftTrouble::RetryAfter(d) if d == Duration::from_secs(3)
        ));
        assert!(matches!(
            trouble(400, &answer(json!({"description": "Bad Request: can't parse entities"}))),
            DraftTrouble::Refused(r) if r.contains("parse")
        ));
        assert!(matches!(trouble(502, &Value::Null), DraftTrouble::Unreachable(_)));
    }

    #[test]
    fn tools_show_what_they_are_for_never_their_names() {
        let line = |names: &[&str]| progress_line(&names.iter().map(|n| n.to_string()).collect::<Vec<_>>());
        assert_eq!(line(&["set_reminder"]), "Setting your reminder…");
        assert_eq!(line(&["list_reminders"]), "Checking your reminders…");
        assert_eq!(line(&["recall"]), "Looking that up…");
        assert_eq!(line(&["search_household_knowledge"]), "Looking that up…");
        assert_eq!(line(&["something_new"]), "Working on it…");
    }

    #[test]
    fn a_draft_shows_the_part_being_written() {
        assert_eq!(render_draft(&DraftText::Thinking), (String::new(), String::new()));
        let (html, plain) = render_draft(&DraftText::Writing("**bo".into()));
        assert_eq!((html.as_str(), plain.as_str()), ("**bo", "**bo"));
        let long = "word ".repeat(2000);
        let (html, _) = render_draft(&DraftText::Writing(long));
        assert!(html.chars().count() <= CHUNK_LIMIT);
    }
}
