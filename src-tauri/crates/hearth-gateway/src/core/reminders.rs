//! Delivering reminders that came due. The timer (`household/reminders.rs`) commits each
//! occurrence first; here it is queued in the member's lane as a turn that needs no model, and
//! after the worker looked its text up, sent to the member's paired chat and closed.

use std::time::Duration;

use hearth_proto::worker::{TurnKind, TurnOutcome};
use teloxide::Bot;

use super::{Core, Engine, Event, LaneItem};
use crate::core::lanes::Push;
use crate::store::DueReminder;
use crate::telegram;
use crate::workers::WorkerError;

/// How long a reminder whose worker failed waits before it is tried again.
const REMINDER_RETRY: Duration = Duration::from_secs(60);

impl Core {
    /// Queues a committed reminder occurrence in its member's lane, to go to their paired chat.
    pub(super) fn on_reminder_due(&mut self, due: DueReminder) {
        let chat = self.members.read(|r| r.get(&due.member_id).map(|m| m.chat_id));
        let Some(chat) = chat else { return }; // removed: the firing went with the member
        let Some(chat_id) = chat else {
            self.engine.finish_firing(due, "done", "no_chat");
            return;
        };
        let kind = TurnKind::Reminder { id: due.reminder_id, due_at: due.due_at };
        let item = LaneItem { row: None, chat_id, kind, words: String::new(), attempt: 0 };
        if self.lanes.write(|l| l.push(&due.member_id, item)) == Push::Full {
            // Left pending: delivered after the next start.
            tracing::warn!(member = %due.member_id, "lane full; a reminder waits for the next start");
        }
    }
}

/// Sends a reminder the worker looked up, then closes its firing. Nothing is sent for an
/// occurrence cancelled meanwhile, nor an apology when the worker failed: a reminder is not an
/// answer the member waits for.
pub(super) async fn deliver(
    engine: &Engine,
    member_id: &str,
    bot: &Bot,
    chat_id: i64,
    firing: DueReminder,
    outcome: Result<TurnOutcome, WorkerError>,
) {
    let text = match outcome {
        Ok(TurnOutcome::Reply { text }) if !text.trim().is_empty() => text,
        Ok(TurnOutcome::Reply { .. } | TurnOutcome::Nothing) => {
            return engine.finish_firing(firing, "done", "nothing");
        }
        Ok(TurnOutcome::Failed { detail, .. }) => {
            tracing::error!(member = member_id, %detail, "a reminder could not be looked up");
            return engine.finish_firing(firing, "failed", "turn_failed");
        }
        Err(WorkerError::ShuttingDown) => return, // left pending: delivered after restart
        Err(e) => {
            // Left pending and tried again in a minute: a crashed worker must not end a
            // recurring reminder for good.
            tracing::error!(member = member_id, error = %e, "worker failed on a reminder; again in a minute");
            let (events, cancel) = (engine.events.clone(), engine.cancel.clone());
            engine.tracker.spawn(async move {
                tokio::select! {
                    _ = cancel.cancelled() => {}
                    _ = tokio::time::sleep(REMINDER_RETRY) => {
                        let _ = events.send(Event::Reminders(vec![firing]));
                    }
                }
            });
            return;
        }
    };
    match telegram::send_reply(bot, chat_id, &text).await {
        Ok(()) => engine.finish_firing(firing, "done", "reminded"),
        Err(e) => {
            tracing::error!(member = member_id, error = %e, "could not deliver a reminder");
            engine.finish_firing(firing, "failed", "send_failed");
        }
    }
}
