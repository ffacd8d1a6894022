//! A chat turn's answer shown while the model writes it (issue 16): whether the turn shows it at
//! all and how, the [`DraftSink`] its completions report to (`workers/rules.rs`), and ending the
//! preview before the finished reply is sent.
//!
//! How, per chat and bot (`telegram::PreviewSupport`):
//! - **Drafts** (`sendMessageDraft`) in a private chat (a positive chat id) of a bot whose server
//!   knows them. The drafts are a preview; the reply is always sent whole with `sendMessage`, so a
//!   draft that never arrives (a 429) costs the member nothing but the preview.
//! - **One message edited in place** (`telegram/preview.rs`) in a group or channel (a negative
//!   id), or for a bot whose server answered that it has no drafts — found out in the middle of a
//!   turn, which then goes on with edits. That message becomes the reply.
//! - **Typing only** for a bot whose server can do neither, for a member who turned "show replies
//!   as they are written" off, and for a turn that is not a chat or is answered in voice.
//!
//! **Stop.** Every draft carries a Stop button (`can_stop`); an edited message has none, so a
//! turn shown that way cannot be stopped. A press comes back as an inbox row
//! (`MessageKind::Stop`, naming the draft) that the core loop hands to [`Stops`] at once; the
//! turn's token is cancelled, the completion in flight drops its provider stream (the broker
//! settles an estimate when the provider reported no usage), the worker is told what the member
//! was shown so it keeps that as the answer in its history ([`DraftSink::stopped_text`]), and
//! the turn sends what was written so far, marked as stopped ([`Shown::stop`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hearth_proto::control::TurnActivity;
use hearth_proto::worker::TurnKind;
use parking_lot::Mutex;
use teloxide::Bot;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{Engine, Event};
use crate::telegram::{self, DraftText, DraftsEnded, PreviewWay};
use crate::workers::rules::DraftSink;

/// One turn's answer shown while it is written: the newest text for the chat, and the task
/// showing it as drafts or as a message edited in place.
pub(super) struct Shown {
    sink: Arc<ChatDraft>,
    task: JoinHandle<()>,
    stop: CancellationToken,
    /// The message edited in place, when the turn shows one.
    preview: telegram::Preview,
    /// Where the turn's Stop button is registered, until the turn ends (drafts only).
    stops: Stops,
    key: Option<StopKey>,
}

/// What marks a reply the member stopped.
pub(crate) const STOPPED_MARK: &str = "— stopped";

/// A running turn's Stop button: the member, the chat, the draft's id.
type StopKey = (String, i64, i64);

/// The running turns' Stop buttons, by member, chat and draft id: a press from another chat or
/// for a draft that has ended stops nothing.
#[derive(Clone, Default)]
pub(crate) struct Stops(Arc<Mutex<HashMap<StopKey, CancellationToken>>>);

impl Stops {
    /// Stops the turn of `member_id` showing draft `draft_id` (as the update wrote it) in
    /// `chat_id`; false when no such turn is running (it finished first, or the id is bad).
    pub(crate) fn stop(&self, member_id: &str, chat_id: i64, draft_id: &str) -> bool {
        let Ok(draft_id) = draft_id.trim().parse::<i64>() else { return false };
        match self.0.lock().get(&(member_id.to_owned(), chat_id, draft_id)) {
            Some(token) => {
                token.cancel();
                true
            }
            None => false,
        }
    }
}

/// How long the reply waits for a draft request already on its way (so the draft does not land
/// after the reply); a slower one is dropped.
const LAST_DRAFT_WAIT: Duration = Duration::from_secs(2);

/// Starts showing a turn's answer while it is written, or `None` where the turn gets "typing…"
/// only: a turn that is not a chat, a member who turned it off (`wanted`), a bot whose server can
/// show nothing.
pub(super) fn start(
    engine: &Engine,
    member_id: &str,
    bot: &Bot,
    chat_id: i64,
    kind: TurnKind,
    turn_id: u64,
    wanted: bool,
) -> Option<Shown> {
    let way = engine.previews.way_in(bot, chat_id);
    if !preview_fits(kind, wanted) || way == PreviewWay::TypingOnly {
        return None;
    }
    let (shown, mut rx) = watch::channel(DraftText::Thinking);
    // The first value counts as news: a draft shows "Thinking…" at once.
    rx.mark_changed();
    // Non-zero, as the Bot API asks; the turn's own number, so each turn's draft is its own.
    let draft_id = i64::try_from(turn_id).unwrap_or(i64::MAX).max(1);
    let stop = engine.cancel.child_token();
    let preview = telegram::Preview::default();
    let task = engine.tracker.spawn(show(
        bot.clone(),
        chat_id,
        draft_id,
        way,
        rx,
        preview.clone(),
        engine.previews.clone(),
        stop.clone(),
    ));
    let pressed = CancellationToken::new();
    // Only a draft has a Stop button.
    let key = (way == PreviewWay::Drafts).then(|| (member_id.to_owned(), chat_id, draft_id));
    if let Some(key) = &key {
        engine.stops.0.lock().insert(key.clone(), pressed.clone());
    }
    let sink = Arc::new(ChatDraft {
        shown,
        writing: AtomicBool::new(false),
        events: engine.events.clone(),
        member_id: member_id.to_owned(),
        pressed,
    });
    Some(Shown { sink, task, stop, preview, stops: engine.stops.clone(), key })
}

/// Whether a turn's answer may be shown while it is written at all: a chat turn (not a command,
/// a reminder, a silent reset) for a member who wants it.
fn preview_fits(kind: TurnKind, wanted: bool) -> bool {
    kind == TurnKind::Chat && wanted
}

/// The turn's preview task: drafts where `way` allows them, falling back to a message edited in
/// place — for this turn and, remembered, for the bot's later ones — when the server turns out
/// not to know drafts.
#[allow(clippy::too_many_arguments)] // one task's whole context, handed over once
async fn show(
    bot: Bot,
    chat_id: i64,
    draft_id: i64,
    way: PreviewWay,
    mut shown: watch::Receiver<DraftText>,
    preview: telegram::Preview,
    support: telegram::PreviewSupport,
    stop: CancellationToken,
) {
    if way == PreviewWay::Drafts {
        match telegram::show_drafts(&bot, chat_id, draft_id, &mut shown, &stop).await {
            DraftsEnded::Unsupported => {
                support.no_drafts(&bot);
                // The text so far goes out at once as the preview message.
                shown.mark_changed();
            }
            DraftsEnded::Stopped | DraftsEnded::Refused => return,
        }
    }
    telegram::show_edits(&bot, chat_id, &mut shown, &preview, &support, &stop).await;
}

impl Shown {
    /// What the turn's completions report to.
    pub(super) fn sink(&self) -> Arc<dyn DraftSink> {
        self.sink.clone()
    }

    /// Ends the preview before the reply: a request already on its way is let finish (a draft for
    /// at most [`LAST_DRAFT_WAIT`], so it does not land after the reply; the preview message's
    /// first send for its own time limit, so the reply can take its place). Returns what the
    /// member reads instead of the worker's answer if they pressed Stop, and the preview message
    /// the reply is to become, if one is in the chat.
    pub(super) async fn stop(mut self) -> (Option<String>, Option<telegram::Preview>) {
        self.stop.cancel();
        if let Some(key) = &self.key {
            self.stops.0.lock().remove(key);
        }
        if tokio::time::timeout(LAST_DRAFT_WAIT, &mut self.task).await.is_err() && self.preview.sending() {
            let _ = tokio::time::timeout(telegram::PREVIEW_TIMEOUT, &mut self.task).await;
        }
        let preview = self.preview.exists().then(|| self.preview.clone());
        (self.sink.stopped_text(), preview)
    }
}

/// A turn that ends any other way (a panic, a stopping gateway) stops its preview too.
impl Drop for Shown {
    fn drop(&mut self) {
        self.task.abort();
        if let Some(key) = &self.key {
            self.stops.0.lock().remove(key);
        }
    }
}

/// The sink: the newest text, and whether the dashboard was told the answer is being written.
struct ChatDraft {
    shown: watch::Sender<DraftText>,
    writing: AtomicBool,
    events: mpsc::UnboundedSender<Event>,
    member_id: String,
    /// Cancelled when the member presses Stop.
    pressed: CancellationToken,
}

impl ChatDraft {
    fn doing(&self, doing: TurnActivity) {
        let _ = self.events.send(Event::Doing { member_id: self.member_id.clone(), doing });
    }
}

impl DraftSink for ChatDraft {
    fn writing(&self, text_so_far: &str) {
        if text_so_far.trim().is_empty() {
            return;
        }
        self.shown.send_replace(DraftText::Writing(text_so_far.to_owned()));
        if !self.writing.swap(true, Ordering::Relaxed) {
            self.doing(TurnActivity::Writing);
        }
    }

    fn using_tools(&self, names: &[String]) {
        self.shown.send_replace(DraftText::Progress(telegram::progress_line(names)));
        if self.writing.swap(false, Ordering::Relaxed) {
            self.doing(TurnActivity::Thinking);
        }
    }

    fn stop_signal(&self) -> Option<CancellationToken> {
        Some(self.pressed.clone())
    }

    /// If the member pressed Stop: the text written so far (the step being written when they
    /// pressed), marked as stopped.
    fn stopped_text(&self) -> Option<String> {
        if !self.pressed.is_cancelled() {
            return None;
        }
        Some(match &*self.shown.borrow() {
            DraftText::Writing(text) if !text.trim().is_empty() => format!("{}\n\n{STOPPED_MARK}", text.trim_end()),
            _ => format!("({STOPPED_MARK})"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_chat_turn_of_a_member_who_wants_it_is_shown_while_written() {
        assert!(preview_fits(TurnKind::Chat, true));
        assert!(!preview_fits(TurnKind::Chat, false), "turned off");
        for kind in [
            TurnKind::NewConversation,
            TurnKind::ListMemory,
            TurnKind::Reminders,
            TurnKind::Reminder { id: 1, due_at: 0 },
        ] {
            assert!(!preview_fits(kind, true), "{kind:?}");
        }
    }
}
