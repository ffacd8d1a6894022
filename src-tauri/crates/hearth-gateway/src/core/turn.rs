//! One turn, in a task of its own: what the member's worker is asked (`Turn`, after the files of
//! a chat turn are fetched and heard — `media.rs`), what it may ask for meanwhile
//! (`workers::rules`), and what happens with its answer — sent to the turn's chat (with what was
//! heard quoted first, or in voice — `voice.rs`), the inbox rows closed, a reported reminder
//! schedule stored.

use std::sync::Arc;

use hearth_proto::control::TurnActivity;
use hearth_proto::llm::Refusal;
use hearth_proto::worker::{IncomingMessage, Turn, TurnContext, TurnKind, TurnOutcome};
use teloxide::types::ChatAction;

use super::{Engine, LaneItem, inbox_ids, media, reminders, stream, voice};
use crate::config::FaultSite;
use crate::store::{self, DueReminder, InboxRow, MemberRow};
use crate::telegram;
use crate::workers::WorkerError;
use crate::workers::rules::{ProviderWait, TurnRules};

/// Runs one turn of `member_id`'s for `items` (one message or several collected, or a command,
/// or a reminder), and closes what it answered.
pub(super) async fn run(engine: &Engine, member_id: &str, items: Vec<LaneItem>) {
    // Tried again after a panic: a row the first try already closed (a file's own sentence, in
    // `media.rs`) is not answered twice.
    let items = if items.iter().any(|i| i.attempt > 0) { still_open(engine, items).await } else { items };
    if items.is_empty() {
        return;
    }
    let member = engine.member(member_id);
    let ids = inbox_ids(&items);
    let (Some(member), Some(bot)) = (member, engine.bot_for(member_id)) else {
        engine.finish_rows(ids, "done", "member_removed");
        return;
    };
    let chat_id = items[0].chat_id;
    let kind = items[0].kind;
    let rows: Vec<&InboxRow> = items.iter().filter_map(|i| i.row.as_ref()).collect();
    // The household's zone, as the caps count days in it (`hearth household timezone`).
    let tz = engine.broker.timezone();
    let config = &engine.config;
    let firing = match kind {
        TurnKind::Reminder { id, due_at } => {
            Some(DueReminder { member_id: member_id.to_owned(), reminder_id: id, due_at })
        }
        _ => None,
    };
    // A fresh start the gateway asked for itself (idle reset) has no row and says nothing.
    let silent = kind == TurnKind::NewConversation && items[0].row.is_none();
    let typing = engine.cancel.child_token();
    // A voice answer expected (`voice.rs`): "recording voice…", and no text drafts meanwhile —
    // the answer comes as a voice note, not as words appearing.
    let voice_expected = kind == TurnKind::Chat && voice::expected(engine, &member, &rows);
    if firing.is_none() && !silent {
        let action = if voice_expected { ChatAction::RecordVoice } else { ChatAction::Typing };
        engine.tracker.spawn(telegram::show_action(bot.clone(), chat_id, action, typing.clone()));
    }
    // A chat turn's files: fetched, heard and held before the worker is asked (`media.rs`).
    let mut prepared = media::Prepared::default();
    if kind == TurnKind::Chat && rows.iter().any(|r| r.msg.kind.has_media()) {
        let Some(ready) = media::prepare(engine, member_id, &bot, chat_id, &rows).await else {
            typing.cancel();
            return; // left pending: fetched again after the restart
        };
        prepared = ready;
        let doing = if prepared.files.has_images() { TurnActivity::Looking } else { TurnActivity::Thinking };
        media::doing(engine, member_id, doing);
        if prepared.messages.is_empty() {
            // Every row got its own sentence: nothing is left to ask.
            typing.cancel();
            return;
        }
    }
    let ids: Vec<i64> = ids.into_iter().filter(|id| !prepared.closed.contains(id)).collect();
    let turn = Turn {
        turn_id: engine.workers.next_turn_id(),
        chat_id,
        kind,
        messages: match kind {
            TurnKind::NewConversation | TurnKind::ListMemory | TurnKind::Reminder { .. } => Vec::new(),
            TurnKind::Forget | TurnKind::Reminders => rows
                .iter()
                .take(1)
                .map(|r| IncomingMessage {
                    inbox_id: r.id,
                    text: items[0].words.clone(),
                    sent_at: r.msg.sent_at,
                    attachment: None,
                })
                .collect(),
            TurnKind::Chat if !prepared.messages.is_empty() => std::mem::take(&mut prepared.messages),
            TurnKind::Chat => rows
                .iter()
                .map(|r| IncomingMessage {
                    inbox_id: r.id,
                    text: r.msg.text.clone().unwrap_or_default(),
                    sent_at: r.msg.sent_at,
                    attachment: None,
                })
                .collect(),
        },
        context: TurnContext {
            member_name: member.name.clone(),
            persona: member.persona.clone(),
            now: config.clock.now().with_timezone(&tz).to_rfc3339(),
            timezone: tz.name().to_owned(),
            context_tokens: config.context_tokens,
            max_output_tokens: config.max_output_tokens,
            role: member.role,
        },
    };
    let mut rules = turn_rules(engine, &member);
    rules.files = std::mem::take(&mut prepared.files);
    // The answer shown while it is written: drafts, or a message edited in place (`stream.rs`).
    let wanted = member.streaming && !voice_expected;
    let shown = stream::start(engine, member_id, &bot, chat_id, kind, turn.turn_id, wanted);
    rules.draft = shown.as_ref().map(stream::Shown::sink);
    let outcome = engine.workers.run_turn(member_id, turn, rules).await;
    typing.cancel();
    let (stopped, preview) = match shown {
        Some(shown) => shown.stop().await,
        None => (None, None),
    };
    let outcome = match outcome {
        Ok((outcome, Some(due))) => {
            // Before the turn counts as finished, so the member's next turn sees it applied.
            let (store, member) = (engine.store.clone(), member_id.to_owned());
            match store.call(move |c| store::replace_reminder_schedule(c, &member, &due)).await {
                Ok(()) => engine.reminders_wake.changed(),
                Err(e) => tracing::error!(member = member_id, error = %e, "could not store the reminder schedule"),
            }
            Ok(outcome)
        }
        Ok((outcome, None)) => Ok(outcome),
        Err(e) => Err(e),
    };
    if let Some(firing) = firing {
        reminders::deliver(engine, member_id, &bot, chat_id, firing, outcome).await;
        return;
    }
    if silent {
        if let Ok(TurnOutcome::Failed { detail, .. }) = &outcome {
            tracing::warn!(member = member_id, %detail, "the idle reset failed; the conversation goes on");
        }
        return;
    }
    // The model's own answer, which a voice reply speaks (without the quote of what was heard).
    let mut answer = None;
    let (text, outcome_kind) = match outcome {
        Ok(TurnOutcome::Nothing) => {
            engine.finish_rows(ids, "done", "nothing");
            return;
        }
        Ok(TurnOutcome::Reply { text }) if !text.trim().is_empty() => {
            let quoted = media::with_quotes(&prepared.heard, &text);
            answer = Some(text);
            (quoted, "replied")
        }
        Ok(TurnOutcome::Reply { .. }) => {
            ("I'm not sure what to say to that — could you put it another way?".to_owned(), "empty_reply")
        }
        Ok(TurnOutcome::Failed { user_message, detail }) => {
            tracing::warn!(member = member_id, %detail, "turn failed");
            (user_message, "turn_failed")
        }
        Err(WorkerError::ShuttingDown) => return, // left pending: answered after restart
        Err(e) => {
            tracing::error!(member = member_id, error = %e, "worker failed");
            (
                "Sorry — something went wrong on my side while I was answering. Please send that again.".to_owned(),
                "worker_failed",
            )
        }
    };
    // Stopped by the member: what was written so far — which the worker, told, answers with
    // too — not its failure sentence (an answer finished before the press is sent whole).
    let (text, outcome_kind) = match stopped {
        Some(partial) if outcome_kind != "replied" || answer.as_deref() == Some(partial.as_str()) => {
            (partial, "stopped")
        }
        _ => (text, outcome_kind),
    };
    config.faults.check(FaultSite::TurnReply { member_id, text: &text });
    let sent = match (answer, &preview) {
        // The preview message becomes the reply (`telegram/preview.rs`).
        (_, Some(preview)) => telegram::finish_preview(&bot, chat_id, preview, &text).await,
        // Only a chat turn's answer: a command's (`/memory`, `/reminders`) stays text.
        (Some(answer), None)
            if kind == TurnKind::Chat && voice::wanted(engine, &member, !prepared.heard.is_empty()) =>
        {
            voice::send_answer(engine, member_id, &bot, chat_id, &text, &answer).await
        }
        _ => telegram::send_reply(&bot, chat_id, &text).await,
    };
    match sent {
        Ok(()) => engine.finish_rows(ids, "done", outcome_kind),
        Err(e) => {
            tracing::error!(member = member_id, error = %e, "could not deliver a reply");
            engine.finish_rows(ids, "failed", "send_failed");
        }
    }
}

/// The items whose rows are still pending (and those without a row); on a store error, all.
async fn still_open(engine: &Engine, items: Vec<LaneItem>) -> Vec<LaneItem> {
    let ids = inbox_ids(&items);
    let pending = engine.store.call(move |c| store::pending_among(c, &ids)).await;
    match pending {
        Ok(pending) => items.into_iter().filter(|i| i.row.as_ref().is_none_or(|r| pending.contains(&r.id))).collect(),
        Err(e) => {
            tracing::error!(error = %e, "could not check which rows are still open; trying them all");
            items
        }
    }
}

/// What a turn of `member`'s may ask for, as far as their state goes (`workers/rules.rs`):
/// nothing from the model while paused or resting as it starts, and nothing after a pause in
/// the middle of it.
fn turn_rules(engine: &Engine, member: &MemberRow) -> TurnRules {
    let refused = if member.paused {
        Some(Refusal::Paused)
    } else if engine.quiet_now(member).is_some() {
        Some(Refusal::Resting)
    } else {
        None
    };
    // The roster as the core loop keeps it: a pause applied there is seen by the next request.
    let (roster, id) = (engine.members.clone(), member.id.clone());
    let paused_now = Arc::new(move || roster.read(|r| r.get(&id).is_none_or(|m| m.paused)));
    // The turn's slot is free while a completion waits on the provider (`lanes.rs`).
    let (events, id) = (engine.events.clone(), member.id.clone());
    let provider_wait: ProviderWait =
        Arc::new(move |back| drop(events.send(super::Event::ProviderWait { member_id: id.clone(), back })));
    TurnRules {
        refused,
        paused_now,
        clock: engine.config.clock.clone(),
        files: Default::default(),
        draft: None,
        provider_wait: Some(provider_wait),
    }
}
