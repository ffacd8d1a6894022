//! Connectors: one long poll per member's bot (teloxide's Bot API client), and sending replies.
//!
//! - `poll.rs`: the poll loop. It commits every batch of updates to the inbox — in one
//!   transaction with the bot's next offset — *before* asking Telegram for more with that
//!   offset, which is what confirms them. A crash anywhere therefore loses nothing: unconfirmed
//!   updates are delivered again and the inbox dedupes them on (bot, update_id). Each bot's loop
//!   handles its own trouble — a revoked token, a 409 from another poller, 429s, an unreachable
//!   API — by backing off and reporting it as that bot's [`BotState`]. No bot ever waits on
//!   another.
//! - `extract.rs`: an update → the inbox's [`NewMessage`], or nothing.
//! - `download.rs`: a member's file (voice note, photo, document) into memory, capped.
//! - `send.rs`: replies, plain notes, inline buttons, chat actions ("typing…", "recording
//!   voice…").
//! - `voice.rs`: a voice reply (`sendVoice`) with its caption.
//! - `draft.rs`: a reply shown while it is written (`sendMessageDraft`), throttled per chat.
//! - `preview.rs`: the same where drafts cannot go — one message edited in place, which becomes
//!   the reply — and what each bot's server turned out to allow.
//! - `commands.rs`: the command menu (`setMyCommands`): the member's for everyone, the admin's
//!   in an admin's own chat only.
//! - `reply/`: a model's Markdown → Telegram HTML, split under the length limit.
//! - This file: the shared HTTP client, a bot's client, checking a token.
//!
//! [`BotState`]: hearth_proto::control::BotState
//! [`NewMessage`]: crate::store::NewMessage

use std::time::Duration;

use teloxide::requests::Requester;
use teloxide::types::Me;
use teloxide::{ApiError, Bot, RequestError};

mod commands;
mod download;
mod draft;
mod extract;
mod poll;
mod preview;
pub mod reply;
mod send;
mod voice;

pub use commands::{ADMIN_COMMANDS, MEMBER_COMMANDS, clear_admin_commands, set_admin_commands, set_member_commands};
pub use download::{DownloadError, Limit, download, megabytes};
pub use draft::{DRAFT_GAP, DraftText, DraftsEnded, progress_line, render_draft, show_drafts};
pub use extract::extract_message;
pub use poll::{Backoff, PollLoop, StateHook};
pub use preview::{EDIT_GAP, PREVIEW_TIMEOUT, Preview, PreviewSupport, PreviewWay, finish_preview, show_edits};
pub use send::{
    Button, SendError, answer_callback, close_question, send_action, send_plain, send_reply, send_with_buttons,
    show_action, show_typing,
};
pub use voice::{CAPTION_LIMIT, send_voice};

/// Telegram's own API root; `HEARTH_TELEGRAM_API_URL` replaces it (fakes, self-hosted Bot API).
pub const DEFAULT_API_URL: &str = "https://api.telegram.org";

/// Visible characters per message we allow ourselves (Telegram's limit is 4096).
pub const CHUNK_LIMIT: usize = 4000;

/// Builds the one HTTP client all bots share: one connection pool, and a request timeout longer
/// than the long-poll timeout (teloxide's default 17 s would cut every idle poll short).
pub fn http_client(poll_timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(poll_timeout + Duration::from_secs(20))
        .tcp_nodelay(true)
        .pool_idle_timeout(Duration::from_secs(90))
        // The Bot API never redirects; a file URL (which holds the token) must not be followed
        // anywhere else.
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a reqwest client with plain settings always builds")
}

pub fn bot(http: &reqwest::Client, api_url: &reqwest::Url, token: &str) -> Bot {
    Bot::with_client(token, http.clone()).set_api_url(api_url.clone())
}

/// Checks a token before it is stored: its shape first (so a half-pasted token gets a helpful
/// message without a network call), then `getMe`.
pub async fn validate_token(http: &reqwest::Client, api_url: &reqwest::Url, token: &str) -> Result<Me, TokenError> {
    let token = token.trim();
    if !token_shape_ok(token) {
        return Err(TokenError::Malformed);
    }
    let me = tokio::time::timeout(Duration::from_secs(20), bot(http, api_url, token).get_me())
        .await
        .map_err(|_| TokenError::Unreachable("Telegram did not answer within 20 seconds".into()))?;
    match me {
        Ok(me) => Ok(me),
        Err(RequestError::Api(ApiError::InvalidToken)) => Err(TokenError::Rejected),
        Err(RequestError::Api(e)) => Err(TokenError::Unreachable(e.to_string())),
        Err(e) => Err(TokenError::Unreachable(e.to_string())),
    }
}

/// `<digits>:<30+ of [A-Za-z0-9_-]>`, as BotFather issues them.
pub fn token_shape_ok(token: &str) -> bool {
    match token.split_once(':') {
        Some((id, secret)) => {
            !id.is_empty()
                && id.len() <= 20
                && id.bytes().all(|b| b.is_ascii_digit())
                && secret.len() >= 30
                && secret.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        }
        None => false,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error(
        "that does not look like a bot token. A token looks like 123456789:AAE…; copy the whole line from BotFather's message"
    )]
    Malformed,
    #[error(
        "Telegram says this token is not valid. It may have been revoked: open BotFather, send /token, pick the bot and paste the new token"
    )]
    Rejected,
    #[error("could not reach Telegram to check the token ({0}); check the internet connection and try again")]
    Unreachable(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_shapes() {
        assert!(token_shape_ok("123456789:AAEhBP0av28oRrUIs_0kB1F4tD9aZxh-pXw"));
        for bad in [
            "",
            "123456789",
            ":AAEhBP0av28oRrUIs_0kB1F4tD9aZxh-pXw",
            "12a:AAEhBP0av28oRrUIs_0kB1F4tD9aZxh-pXw",
            "1:short",
            "1:AAEhBP0av28oRrUIs_0kB1F4tD9aZxh pXw",
        ] {
            assert!(!token_shape_ok(bad), "{bad:?}");
        }
    }
}
