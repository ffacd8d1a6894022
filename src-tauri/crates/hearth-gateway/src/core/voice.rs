//! Voice replies, after a chat turn's answer: the member's setting (`never`, `when_spoken`,
//! `always`) and a voice service in force decide whether the answer is spoken; the broker speaks
//! its plain text (never the quote of what was heard), and Telegram gets a voice note with the
//! whole rendered answer as its caption when that fits, else the voice note and then the answer
//! as text.
//!
//! Whatever goes wrong on the way — no price while capped, a cap reached, a service that refuses
//! or is down, an answer too long to speak, a member who does not take voice messages — the
//! answer goes as text instead: the member always gets it exactly once. Reminders and the
//! gateway's own notes stay text.

use hearth_proto::control::{TurnActivity, VoiceReplies};
use teloxide::Bot;
use teloxide::types::ChatAction;

use super::{Engine, media};
use crate::broker::voice::MAX_SPOKEN_CHARS;
use crate::store::{InboxRow, MemberRow, MessageKind};
use crate::telegram::reply::{render_reply, visible_text};
use crate::telegram::{self, CAPTION_LIMIT, SendError};

/// Whether `member` is to be answered in voice: their setting says so for this turn (`spoken`:
/// the turn heard a voice note or audio file) and a voice service is in force.
pub(super) fn wanted(engine: &Engine, member: &MemberRow, spoken: bool) -> bool {
    let asked = match member.voice_replies {
        VoiceReplies::Never => false,
        VoiceReplies::WhenSpoken => spoken,
        VoiceReplies::Always => true,
    };
    asked && engine.broker.voice_service().0.is_some()
}

/// Whether a chat turn of `rows` is expected to be answered in voice, before anything is heard:
/// the chat shows "recording voice…" instead of "typing…" then.
pub(super) fn expected(engine: &Engine, member: &MemberRow, rows: &[&InboxRow]) -> bool {
    let spoken = rows.iter().any(|r| matches!(r.msg.kind, MessageKind::Voice | MessageKind::Audio));
    wanted(engine, member, spoken)
}

/// Sends `answer` (the model's reply) in voice, with `text` (the reply as the member reads it:
/// what was heard quoted first) as its caption or as a message after it; any failure of the
/// voice sends `text` as an ordinary reply instead.
pub(super) async fn send_answer(
    engine: &Engine,
    member_id: &str,
    bot: &Bot,
    chat_id: i64,
    text: &str,
    answer: &str,
) -> Result<(), SendError> {
    let spoken = visible_text(answer);
    let spoken = spoken.trim();
    if spoken.is_empty() || spoken.chars().count() > MAX_SPOKEN_CHARS {
        tracing::debug!(member = member_id, "the answer is too long to speak; answering in text");
        return telegram::send_reply(bot, chat_id, text).await;
    }
    let recording = engine.cancel.child_token();
    engine.tracker.spawn(telegram::show_action(bot.clone(), chat_id, ChatAction::RecordVoice, recording.clone()));
    media::doing(engine, member_id, TurnActivity::Speaking);
    let audio = engine.broker.speak(member_id, chat_id, spoken).await;
    recording.cancel();
    let audio = match audio {
        Ok(audio) => audio,
        Err(e) => {
            tracing::info!(member = member_id, reason = e.outcome(), error = %e, "answering in text instead of voice");
            return telegram::send_reply(bot, chat_id, text).await;
        }
    };
    let chunks = render_reply(text, CAPTION_LIMIT);
    let caption = match chunks.as_slice() {
        [one] => Some(one),
        _ => None,
    };
    telegram::send_action(bot, chat_id, ChatAction::UploadVoice).await;
    match telegram::send_voice(bot, chat_id, audio, caption).await {
        Ok(()) if caption.is_some() => Ok(()),
        // The answer is longer than a caption: it follows as text.
        Ok(()) => telegram::send_reply(bot, chat_id, text).await,
        Err(e) => {
            tracing::info!(member = member_id, error = %e, "Telegram did not take the voice reply; answering in text");
            telegram::send_reply(bot, chat_id, text).await
        }
    }
}
