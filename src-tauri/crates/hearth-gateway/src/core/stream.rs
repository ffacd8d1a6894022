//! A chat turn's answer shown while the model writes it (issue 16): whether the turn gets a
//! draft at all, the [`DraftSink`] its completions report to (`workers/rules.rs`), and stopping
//! the drafts before the finished reply is sent.
//!
//! Drafts go only where Telegram has them: a private chat (a positive chat id) of a bot whose
//! server knows `sendMessageDraft` (`telegram::DraftSupport`), for a member who did not turn them
//! off. Everywhere else the turn is as before: "typing…", then the reply. The drafts are a
//! preview; the reply is always sent whole with `sendMessage`, so a draft that never arrives
//! (a 429, a refused method) costs the member nothing but the preview.
//!
//! **Stop.** Every draft carries a Stop button (`can_stop`). A press comes back as an inbox row
//! (`MessageKind::Stop`, naming the draft) that the core loop hands to [`Stops`] at once; the
//! turn's token is cancelled, the completion in flight drops its provider stream (the broker
//! settles an estimate when the provider reported no usage), and the turn sends what was written
//! so far, marked as stopped, instead of what the worker answers ([`Drafts::stopped_text`]).

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
use crate::telegram::{self, DraftText};
use crate::workers::rules::DraftSink;

/// One turn's drafts: the newest text for the chat, and the task sending it.
pub(super) struct Drafts {
    sink: Arc<ChatDraft>,
    task: JoinHandle<()>,
    stop: CancellationToken,
    /// Where the turn's Stop button is registered, until the turn ends.
    stops: Stops,
    key: StopKey,
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

/// Starts showing drafts for a turn, or `None` where the turn gets "typing…" only: a turn that
/// is not a chat, a group or channel (a negative chat id), a bot whose server has no drafts, a
/// member who turned them off (`wanted`).
pub(super) fn start(
    engine: &Engine,
    member_id: &str,
    bot: &Bot,
    chat_id: i64,
    kind: TurnKind,
    turn_id: u64,
    wanted: bool,
) -> Option<Drafts> {
    if !drafts_fit(kind, chat_id, wanted) || !engine.drafts.may_try(bot) {
        return None;
    }
    let (shown, mut rx) = watch::channel(DraftText::Thinking);
    // The first value counts as news: the chat shows "Thinking…" at once.
    rx.mark_changed();
    // Non-zero, as the Bot API asks; the turn's own number, so each turn's draft is its own.
    let draft_id = i64::try_from(turn_id).unwrap_or(i64::MAX).max(1);
    let stop = engine.cancel.child_token();
    let drafts = telegram::show_drafts(bot.clone(), chat_id, draft_id, rx, engine.drafts.clone(), stop.clone());
    let task = engine.tracker.spawn(drafts);
    let pressed = CancellationToken::new();
    let key = (member_id.to_owned(), chat_id, draft_id);
    engine.stops.0.lock().insert(key.clone(), pressed.clone());
    let sink = Arc::new(ChatDraft {
        shown,
        writing: AtomicBool::new(false),
        events: engine.events.clone(),
        member_id: member_id.to_owned(),
        pressed,
    });
    Some(Drafts { sink, task, stop, stops: engine.stops.clone(), key })
}

/// Whether a turn's answer may be shown as drafts at all: a chat turn (not a command, a
/// reminder, a silent reset), in a private chat (Telegram's drafts go nowhere else; a group or
/// channel has a negative id), for a member who wants them.
fn drafts_fit(kind: TurnKind, chat_id: i64, wanted: bool) -> bool {
    kind == TurnKind::Chat && chat_id > 0 && wanted
}

impl Drafts {
    /// What the turn's completions report to.
    pub(super) fn sink(&self) -> Arc<dyn DraftSink> {
        self.sink.clone()
    }

    /// Stops the drafts before the reply: a request already on its way is let finish (for at
    /// most [`LAST_DRAFT_WAIT`]), so no draft arrives after the reply. Returns what the member
    /// reads instead of the worker's answer if they pressed Stop ([`Drafts::stopped_text`]).
    pub(super) async fn stop(mut self) -> Option<String> {
        self.stop.cancel();
        self.stops.0.lock().remove(&self.key);
        let _ = tokio::time::timeout(LAST_DRAFT_WAIT, &mut self.task).await;
        self.stopped_text()
    }

    /// If the member pressed Stop: the text written so far (the step being written when they
    /// pressed), marked as stopped.
    fn stopped_text(&self) -> Option<String> {
        if !self.sink.pressed.is_cancelled() {
            return None;
        }
        Some(match &*self.sink.shown.borrow() {
            DraftText::Writing(text) if !text.trim().is_empty() => format!("{}\n\n{STOPPED_MARK}", text.trim_end()),
            _ => format!("({STOPPED_MARK})"),
        })
    }
}

/// A turn that ends any other way (a panic, a stopping gateway) stops its drafts too.
impl Drop for Drafts {
    fn drop(&mut self) {
        self.task.abort();
        self.stops.0.lock().remove(&self.key);
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drafts_go_only_to_a_private_chat_turn_of_a_member_who_wants_them() {
        assert!(drafts_fit(TurnKind::Chat, 1001, true));
        assert!(!drafts_fit(TurnKind::Chat, 1001, false), "turned off");
        assert!(!drafts_fit(TurnKind::Chat, -1001234, true), "a group or channel");
        for kind in [
            TurnKind::NewConversation,
            TurnKind::ListMemory,
            TurnKind::Reminders,
            TurnKind::Reminder { id: 1, due_at: 0 },
        ] {
            assert!(!drafts_fit(kind, 1001, true), "{kind:?}");
        }
    }
}
