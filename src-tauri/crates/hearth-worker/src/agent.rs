//! One turn: store the member's messages, build the prompt (with what the assistant remembers
//! about the member), ask the broker, run the tools the model calls and ask again, store and
//! return the reply — or a kind failure message. `/memory` and `/forget` turns answer from the
//! member's memory without a model call; `/reminders` and a due reminder answer from the
//! member's reminders without one.
//!
//! Failures store nothing as an assistant message, and the member's messages stay in history.
//! The next turn therefore sends them again, merged with whatever the member writes next into one
//! user message. That is deliberate: the member did ask, never got an answer, and the typical
//! follow-up ("ok, try again" after the admin raised a cap, or the question re-sent) reads
//! naturally after it; the model answers what is still open instead of a bare "try again".
//! The member's failure notice ("I couldn't reach my AI service…") is not stored, so the model
//! never imitates it.
//!
//! Tool rounds live only in the turn's request: history keeps the member's messages and the
//! final reply, and what a tool changed (a remembered fact) is in the memory itself.

use hearth_proto::llm::{BrokerError, BrokerErrorKind, ChatMessage, Completion, CompletionRequest, Refusal};
use hearth_proto::worker::{AttachmentKind, Turn, TurnKind, TurnOutcome};

use crate::history::{self, History, Prepared};
use crate::link::LinkError;
use crate::memory::{self, Memory};
use crate::reminders::{self, Fired, Reminders};
use crate::tools::Now;
use crate::tool_offer::{self, Families};
use crate::{context, knowledge, media, prompt, role_tools, tools};

/// Most completions one turn's step loop asks for. Each tool round is a step; the limit keeps a
/// looping model from spending without end. Every step is one reserved-and-settled broker call.
/// Shared with the gateway, which grants a chat turn this many plus one (the summary in
/// `context.rs`) and refuses the rest.
pub use hearth_proto::worker::MAX_STEPS;

/// Facts brought into each prompt: up to this many matching the new messages' words…
const RELEVANT_FACTS: usize = 8;
/// …plus up to this many of the newest others.
const RECENT_FACTS: usize = 3;

/// What the member reads when the model still wanted tools after [`MAX_STEPS`] completions.
pub const STEP_LIMIT_MESSAGE: &str = "Sorry, that took me more steps than I'm allowed for one message, so I \
    stopped before finishing. Could you ask again, perhaps in smaller pieces?";

/// Where completions come from: the gateway's broker over the worker socket in production
/// ([`crate::link::Link`]), a script in tests.
pub trait Broker {
    /// Asks for one completion on behalf of turn `turn_id`. The outer error means the link to
    /// the gateway is gone or confused and the worker should stop; the inner one is the broker's
    /// answer, which the turn turns into a message for the member.
    fn complete(
        &mut self,
        turn_id: u64,
        request: CompletionRequest,
    ) -> impl Future<Output = Result<Result<Completion, BrokerError>, LinkError>>;

    /// Searches the household's knowledge (indexed by the gateway; no worker reads `kb/`) on
    /// behalf of turn `turn_id`. The inner error is a sentence for the model.
    fn kb_search(
        &mut self,
        turn_id: u64,
        query: String,
    ) -> impl Future<Output = Result<Result<Vec<hearth_proto::worker::KbHit>, String>, LinkError>> {
        let _ = (turn_id, query);
        async { Ok(Err("the household knowledge is not available".to_owned())) }
    }
}

/// The history and memory databases, opened on first use. Kept as slots so a file that cannot
/// be opened fails the turn (and is retried on the next one, after the admin fixed it) instead
/// of killing the worker before it can say what is wrong.
pub struct Store {
    member_dir: std::path::PathBuf,
    history: Option<History>,
    memory: Option<Memory>,
    reminders: Option<Reminders>,
    /// The turn changed the reminders (or may have, unseen by the gateway): tell it the schedule.
    reminders_changed: bool,
    /// The conversation of the last chat turn this process answered and the families that turn
    /// offered and called: its follow-up is offered them again (`tool_offer.rs`).
    used_last_turn: Option<(i64, Families)>,
}

impl Store {
    pub fn new(member_dir: std::path::PathBuf) -> Self {
        Self { member_dir, history: None, memory: None, reminders: None, reminders_changed: false, used_last_turn: None }
    }

    fn reminders(&mut self) -> Result<&mut Reminders, reminders::ReminderError> {
        let r = match self.reminders.take() {
            Some(r) => r,
            None => Reminders::open(&self.member_dir)?,
        };
        Ok(self.reminders.insert(r))
    }

    /// The member's upcoming reminders for the turn's outcome, if the turn changed them; `None`
    /// otherwise (and when they cannot be read: the gateway keeps what it had).
    pub fn take_schedule(&mut self) -> Option<Vec<hearth_proto::worker::ReminderDue>> {
        if !std::mem::take(&mut self.reminders_changed) {
            return None;
        }
        match self.reminders().and_then(|r| r.schedule()) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::error!(error = %e, "reminders unavailable; the gateway keeps the schedule it had");
                None
            }
        }
    }

    pub(crate) fn get(&mut self) -> Result<&mut History, history::HistoryError> {
        let history = match self.history.take() {
            Some(h) => h,
            None => History::open(&self.member_dir)?,
        };
        Ok(self.history.insert(history))
    }

    fn memory(&mut self) -> Result<&mut Memory, memory::MemoryError> {
        let memory = match self.memory.take() {
            Some(m) => m,
            None => Memory::open(&self.member_dir)?,
        };
        Ok(self.memory.insert(memory))
    }
}

/// What one completion asks the loop to do next.
enum Step {
    /// The answer for the member; the turn is over.
    Reply(String),
    /// The model called tools: run them, add the call and its results, ask again.
    Tools(Completion),
}

/// Runs one turn to its outcome. Only a broken link to the gateway is an error; everything
/// else, including a damaged history file, becomes [`TurnOutcome::Failed`].
/// `received` holds the bytes of the turn's attachments (`attachments.rs`); only a chat turn
/// uses them.
pub async fn run_turn<B: Broker>(
    broker: &mut B,
    store: &mut Store,
    turn: &Turn,
    received: crate::attachments::Received,
) -> Result<TurnOutcome, LinkError> {
    let now = chrono::Utc::now().timestamp();
    let clock = Now::from_context(&turn.context);
    match turn.kind {
        TurnKind::NewConversation => Ok(new_conversation(store, turn.chat_id, now)),
        TurnKind::Chat => chat(broker, store, turn, received, now, clock).await,
        TurnKind::ListMemory => Ok(list_memory(store)),
        TurnKind::Forget => {
            let words = turn.messages.first().map(|m| m.text.trim()).unwrap_or("");
            Ok(forget(store, words))
        }
        TurnKind::Reminders => {
            let words = turn.messages.first().map(|m| m.text.trim()).unwrap_or("");
            Ok(reminders_command(store, words, clock))
        }
        TurnKind::Reminder { id, due_at } => Ok(fire_reminder(store, id, due_at, clock)),
    }
}

/// What the member reads when a reminder is due.
pub fn reminder_text(text: &str) -> String {
    format!("⏰ Reminder: {text}")
}

/// A due occurrence: its text for the member, once; the schedule moves on. No model call.
fn fire_reminder(store: &mut Store, id: i64, due_at: i64, clock: Now) -> TurnOutcome {
    // Whatever happened, the gateway's schedule must match ours afterwards.
    store.reminders_changed = true;
    match store.reminders().and_then(|r| r.fire(id, due_at, clock.unix)) {
        Ok(Fired::Deliver(text)) => TurnOutcome::Reply { text: reminder_text(&text) },
        Ok(Fired::Stale) => {
            tracing::info!(id, due_at, "reminder occurrence cancelled or moved; nothing to send");
            TurnOutcome::Nothing
        }
        Err(e) => reminders_failed(&e),
    }
}

/// `/reminders` lists what is coming; `/reminders cancel <id>` cancels one.
fn reminders_command(store: &mut Store, words: &str, clock: Now) -> TurnOutcome {
    let r = match store.reminders() {
        Ok(r) => r,
        Err(e) => return reminders_failed(&e),
    };
    let mut parts = words.split_whitespace();
    let result = match (parts.next().map(str::to_ascii_lowercase).as_deref(), parts.next(), parts.next()) {
        (None, ..) => r.upcoming().map(|all| {
            if all.is_empty() {
                return "You have no reminders. Ask me, e.g. \"remind me every day at 8 to take my pills\".".to_owned();
            }
            let mut text = format!("Your reminders ({}):\n", all.len());
            for x in &all {
                text.push_str(&format!("\n{}. {} — {}", x.id, x.text, x.describe()));
            }
            text.push_str("\n\nTo cancel one, send /reminders cancel and its number.");
            text
        }),
        (Some("cancel"), Some(id), None) => match id.trim_start_matches('#').parse::<i64>() {
            Ok(id) => r.cancel(id, clock.unix).map(|gone| match gone {
                Some(gone) => {
                    store.reminders_changed = true;
                    format!("Cancelled: {} ({}).", gone.text, gone.describe())
                }
                None => format!("There's no upcoming reminder number {id}. Send /reminders to see them."),
            }),
            Err(_) => Ok("Send /reminders cancel and the reminder's number, e.g. /reminders cancel 3.".to_owned()),
        },
        _ => Ok("Send /reminders to see your reminders, or /reminders cancel and a number to cancel one.".to_owned()),
    };
    match result {
        Ok(text) => TurnOutcome::Reply { text },
        Err(e) => reminders_failed(&e),
    }
}

fn reminders_failed(e: &reminders::ReminderError) -> TurnOutcome {
    tracing::error!(error = %e, "reminders unavailable");
    TurnOutcome::Failed {
        user_message: "I can't open your reminders right now. Please let whoever runs Hearth at home know.".into(),
        detail: e.to_string(),
    }
}

fn new_conversation(store: &mut Store, chat_id: i64, now: i64) -> TurnOutcome {
    match store.get().and_then(|h| h.new_conversation(chat_id, now)) {
        Ok(_) => TurnOutcome::Reply {
            text: "Fresh start! I've put our earlier conversation aside — what would you like \
                   to talk about?"
                .into(),
        },
        Err(e) => history_failed(&e),
    }
}

/// `/memory`: every remembered fact, oldest first.
fn list_memory(store: &mut Store) -> TurnOutcome {
    let facts = match store.memory().and_then(|m| m.all()) {
        Ok(f) => f,
        Err(e) => return memory_failed(&e),
    };
    if facts.is_empty() {
        return TurnOutcome::Reply {
            text: "I don't remember anything about you yet. Tell me things worth keeping — birthdays, \
                   favourite foods, your pets' names — and I'll remember them."
                .into(),
        };
    }
    let mut text = format!("Here's what I remember about you ({}):\n", facts.len());
    for f in &facts {
        text.push_str("\n- ");
        text.push_str(&f.text);
    }
    text.push_str("\n\nTo forget something, send /forget and a few words from it. /forget alone forgets everything.");
    TurnOutcome::Reply { text }
}

/// `/forget [words]`: no words asks to confirm, `everything` confirms, other words forget the
/// facts containing all of them.
fn forget(store: &mut Store, words: &str) -> TurnOutcome {
    let memory = match store.memory() {
        Ok(m) => m,
        Err(e) => return memory_failed(&e),
    };
    let everything = ["everything", "all"].iter().any(|w| words.eq_ignore_ascii_case(w));
    let result = if words.is_empty() {
        memory.all().map(|facts| match facts.len() {
            0 => "There's nothing to forget: I don't remember anything about you.".to_owned(),
            n => format!(
                "That would make me forget all {n} thing{} I remember about you. If you're sure, send \
                 /forget everything. To forget only some, send /forget and a few words from them \
                 (/memory shows the list).",
                if n == 1 { "" } else { "s" }
            ),
        })
    } else if everything {
        memory.forget_all().map(|n| match n {
            0 => "There's nothing to forget: I don't remember anything about you.".to_owned(),
            n => format!("Done — I've forgotten everything I remembered about you ({n}). It's a clean slate."),
        })
    } else {
        memory.forget_matching(words).map(|gone| {
            if gone.is_empty() {
                format!("I don't remember anything with “{words}” in it. Send /memory to see what I remember.")
            } else {
                let list: Vec<String> = gone.iter().map(|f| format!("- {}", f.text)).collect();
                format!("Done — I've forgotten:\n{}", list.join("\n"))
            }
        })
    };
    match result {
        Ok(text) => {
            tracing::info!(confirm = words.is_empty(), everything, "forget command handled");
            TurnOutcome::Reply { text }
        }
        Err(e) => memory_failed(&e),
    }
}

async fn chat<B: Broker>(
    broker: &mut B,
    store: &mut Store,
    turn: &Turn,
    received: crate::attachments::Received,
    now: i64,
    clock: Now,
) -> Result<TurnOutcome, LinkError> {
    if turn.messages.is_empty() {
        return Ok(TurnOutcome::Failed {
            user_message: "Sorry, something went wrong on my side. Please send that again.".into(),
            detail: format!("chat turn {} arrived with no messages", turn.turn_id),
        });
    }
    // Anything older than this many bytes could not fit in the prompt anyway.
    let earlier_bytes = (turn.context.context_tokens as usize).saturating_mul(3);
    // The turn's files: checked, kept in `files/`, and turned into lines for history and text
    // and images for the prompt (`media.rs`); one that cannot be used ends the turn here.
    let member_dir = store.member_dir.clone();
    let media = match store.get() {
        Ok(history) => match media::prepare(history, &member_dir, turn, received).await {
            Ok(m) => m,
            Err(refused) => return Ok(refused),
        },
        Err(e) => return Ok(history_failed(&e)),
    };
    let prepared = match store.get().and_then(|h| h.begin_turn(turn.chat_id, &media.stored, now, earlier_bytes)) {
        Ok(p) => p,
        Err(e) => return Ok(history_failed(&e)),
    };
    let (conversation_id, reply_to, earlier) = match prepared {
        Prepared::Answered { reply } => {
            tracing::info!(turn_id = turn.turn_id, "turn already answered; sending the stored reply");
            // Its tools may have changed reminders before the gateway heard of them.
            store.reminders_changed = true;
            return Ok(TurnOutcome::Reply { text: reply });
        }
        Prepared::Ask { conversation_id, reply_to, earlier, earlier_ids, summary } => {
            (conversation_id, reply_to, context::Earlier { messages: earlier, ids: earlier_ids, summary })
        }
    };

    let new: Vec<&str> = media.prompt.iter().map(String::as_str).collect();
    // A memory that cannot be read degrades the answer, not the turn.
    let facts = match store.memory().and_then(|m| m.relevant(&new.join("\n"), RELEVANT_FACTS, RECENT_FACTS)) {
        Ok(facts) => facts.into_iter().map(|f| f.text).collect(),
        Err(e) => {
            tracing::warn!(turn_id = turn.turn_id, error = %e, "memory unavailable; answering without it");
            Vec::new()
        }
    };
    // The tools this turn may need, never more than the role has (`tool_offer.rs`).
    let used_last_turn = match store.used_last_turn.take() {
        Some((conversation, families)) if conversation == conversation_id => families,
        _ => Families::NONE,
    };
    let files_attached = turn.messages.iter().any(|m| {
        m.attachment.as_ref().is_some_and(|a| matches!(a.kind, AttachmentKind::Photo | AttachmentKind::Document))
    });
    let signals = tool_offer::Signals { new: &new, earlier: &earlier.messages, files_attached, used_last_turn };
    let mut used = tool_offer::families(&signals);
    let offered = tool_offer::offer(turn.context.role, used);
    // Kept for the conversation's next turn: a tool set that only grows keeps the cacheable
    // prefix (tools come first in it) the same from turn to turn.
    store.used_last_turn = Some((conversation_id, used));
    // What no longer fits is folded into the conversation's running summary (`context.rs`).
    let (earlier, summary) = context::fit(broker, store, turn, conversation_id, &facts, &new, &offered, earlier).await?;
    let mut request = prompt::build_request(&turn.context, &facts, &earlier, &new, offered);
    request.system.push_str(&summary);
    // This turn's photos ride on its user message (the last one); history keeps only their lines.
    if !media.images.is_empty()
        && let Some(last) = request.messages.last_mut()
    {
        last.images = media.images;
    }
    tracing::debug!(
        turn_id = turn.turn_id,
        history = request.messages.len() - 1,
        memories = facts.len(),
        system_bytes = request.system.len(),
        "prompt built"
    );

    for step in 1..=MAX_STEPS {
        let completion = match broker.complete(turn.turn_id, request.clone()).await? {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(turn_id = turn.turn_id, step, error = %e, "broker refused");
                return Ok(broker_failed(&e));
            }
        };
        let text = match next_step(completion) {
            Ok(Step::Reply(text)) => text,
            Ok(Step::Tools(completion)) => {
                if step == MAX_STEPS {
                    break;
                }
                used = used.union(Families::of_tools(completion.tool_calls.iter().map(|c| c.name.as_str())));
                store.used_last_turn = Some((conversation_id, used));
                run_tools(broker, store, turn, &mut request, completion, clock).await?;
                continue;
            }
            Err(failed) => return Ok(failed),
        };
        // The completion is paid for: even if it cannot be stored, the member should get it.
        // The cost of a failed write is only that a replay of this turn would ask again.
        let stored = store.get().and_then(|h| h.record_reply(conversation_id, reply_to, &text, now));
        if let Err(e) = stored {
            tracing::error!(turn_id = turn.turn_id, error = %e, "could not store the reply");
        }
        return Ok(TurnOutcome::Reply { text });
    }
    Ok(TurnOutcome::Failed {
        user_message: STEP_LIMIT_MESSAGE.into(),
        detail: format!("turn {} hit the limit of {MAX_STEPS} completions, still calling tools", turn.turn_id),
    })
}

/// Runs each tool the completion called, one after another, and extends the request with the
/// model's call and one result per call (an error's text when it failed or timed out). A tool
/// the member's role does not offer is never run: its result is an error ([`role_tools`]).
async fn run_tools<B: Broker>(
    broker: &mut B,
    store: &mut Store,
    turn: &Turn,
    request: &mut CompletionRequest,
    completion: Completion,
    now: Now,
) -> Result<(), LinkError> {
    let turn_id = turn.turn_id;
    let calls = completion.tool_calls;
    request.messages.push(ChatMessage::assistant_tool_calls(completion.text, calls.clone()));
    for call in &calls {
        let started = std::time::Instant::now();
        let result = if !role_tools::allows(turn.context.role, &call.name) {
            Err(role_tools::refused(&call.name))
        } else if call.name == knowledge::TOOL {
            knowledge::search(broker, turn_id, call).await?
        } else {
            tools::run(store.member_dir.clone(), call, now).await
        };
        // Names and timings only: arguments and results hold what the member said.
        tracing::info!(
            turn_id,
            tool = %call.name,
            ok = result.is_ok(),
            ms = started.elapsed().as_millis() as u64,
            "tool ran"
        );
        if result.is_ok() && tools::changes_reminders(&call.name) {
            store.reminders_changed = true;
        }
        let message = match result {
            Ok(text) => ChatMessage::tool_result(call.id.clone(), text, false),
            Err(e) => ChatMessage::tool_result(call.id.clone(), format!("error: {e}"), true),
        };
        request.messages.push(message);
    }
    Ok(())
}

/// Decides what a completion means for the loop.
fn next_step(completion: Completion) -> Result<Step, TurnOutcome> {
    if !completion.tool_calls.is_empty() {
        return Ok(Step::Tools(completion));
    }
    if completion.text.trim().is_empty() {
        return Err(TurnOutcome::Failed {
            user_message: "I came up empty on that one, sorry. Could you ask again, maybe in \
                           other words?"
                .into(),
            detail: format!(
                "model {} returned an empty reply (finish reason: {})",
                completion.model,
                completion.finish_reason.as_deref().unwrap_or("none given")
            ),
        });
    }
    Ok(Step::Reply(completion.text))
}

fn memory_failed(e: &memory::MemoryError) -> TurnOutcome {
    tracing::error!(error = %e, "memory unavailable");
    TurnOutcome::Failed {
        user_message: "I can't open what I remember about you right now. Please let whoever runs Hearth \
                       at home know."
            .into(),
        detail: e.to_string(),
    }
}

fn history_failed(e: &history::HistoryError) -> TurnOutcome {
    tracing::error!(error = %e, "history unavailable");
    TurnOutcome::Failed {
        user_message: "I can't open my memory of our conversations right now, so I can't answer. \
                       Please let whoever runs Hearth at home know."
            .into(),
        detail: e.to_string(),
    }
}

/// The member's message for a broker refusal; the broker's own message goes to `detail` only.
pub fn broker_failed(e: &BrokerError) -> TurnOutcome {
    let user_message = match &e.kind {
        BrokerErrorKind::NotConfigured => "I'm not set up yet — please ask whoever runs Hearth at \
                                           home to choose an AI provider."
            .to_owned(),
        BrokerErrorKind::CapExceeded { resets_at, admin_asked } => {
            let until = match resets_at.as_deref().and_then(describe_reset) {
                Some(when) => format!("until it resets on {when}"),
                None => "until it resets".to_owned(),
            };
            let who = if *admin_asked {
                "I've asked whoever runs Hearth at home whether to raise the limit — if they do, \
                 I'll let you know."
            } else {
                "Whoever runs Hearth at home can raise the limit if it can't wait."
            };
            format!("I've used up my spending allowance for now, so I can't answer {until}. {who}")
        }
        BrokerErrorKind::NoPrice { .. } => "I can't answer yet: whoever runs Hearth at home needs to \
                                            set a price for my AI model first, so I can keep within \
                                            your allowance."
            .to_owned(),
        BrokerErrorKind::ProviderUnavailable | BrokerErrorKind::Timeout => {
            "I couldn't reach my AI service just now. Please try again in a minute.".to_owned()
        }
        BrokerErrorKind::ProviderError => "My AI service sent back something I couldn't use. \
                                           Please try again, perhaps in other words."
            .to_owned(),
        BrokerErrorKind::ImagesUnsupported { .. } => "I can't look at pictures with the AI model I'm set up \
                                                      with. You could describe it in words, or ask \
                                                      whoever runs Hearth at home to choose a model \
                                                      that can see images."
            .to_owned(),
        BrokerErrorKind::BadRequest => "My AI service couldn't take that request — it may be too \
                                        long. Try a shorter message, or send /new to start a \
                                        fresh conversation."
            .to_owned(),
        BrokerErrorKind::Refused { reason: Refusal::Paused } => "Whoever runs Hearth at home has paused \
                                                                me, so I stopped there. I'll be back once \
                                                                they resume me."
            .to_owned(),
        BrokerErrorKind::Refused { reason: Refusal::Resting } => "It's rest time now, so I can't answer \
                                                                 that. Let's talk again after."
            .to_owned(),
        BrokerErrorKind::Refused { .. } => "Sorry, that took me more than I'm allowed for one message, so \
                                            I stopped. Could you ask again, perhaps in smaller pieces?"
            .to_owned(),
    };
    TurnOutcome::Failed { user_message, detail: format!("broker: {e}") }
}

/// "Monday 1 December at 00:00", from RFC 3339, in the offset the broker gave (the household's
/// zone). None when it does not parse, so the member is never shown a raw timestamp.
fn describe_reset(resets_at: &str) -> Option<String> {
    let t = chrono::DateTime::parse_from_rfc3339(resets_at.trim()).ok()?;
    Some(t.format("%A %-d %B at %H:%M").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(kind: BrokerErrorKind) -> BrokerError {
        BrokerError { kind, message: "boom".into() }
    }

    fn user_message(o: TurnOutcome) -> String {
        match o {
            TurnOutcome::Failed { user_message, detail } => {
                assert!(detail.contains("boom"), "{detail}");
                user_message
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn cap_message_names_the_reset_when_known() {
        let kind =
            BrokerErrorKind::CapExceeded { resets_at: Some("2025-12-01T00:00:00+01:00".into()), admin_asked: false };
        let m = user_message(broker_failed(&err(kind)));
        assert!(m.contains("Monday 1 December at 00:00"), "{m}");
        assert!(m.contains("raise the limit"), "{m}");

        let kind = BrokerErrorKind::CapExceeded { resets_at: Some("soon".into()), admin_asked: true };
        let m = user_message(broker_failed(&err(kind)));
        assert!(!m.contains("soon"), "{m}");
        assert!(m.contains("until it resets."), "{m}");
        assert!(m.contains("I've asked"), "{m}");
    }

    #[test]
    fn every_kind_has_a_plain_message() {
        for kind in [
            BrokerErrorKind::NotConfigured,
            BrokerErrorKind::CapExceeded { resets_at: None, admin_asked: false },
            BrokerErrorKind::NoPrice { model: "m".into() },
            BrokerErrorKind::ProviderUnavailable,
            BrokerErrorKind::ProviderError,
            BrokerErrorKind::Timeout,
            BrokerErrorKind::BadRequest,
            BrokerErrorKind::Refused { reason: Refusal::Paused },
            BrokerErrorKind::Refused { reason: Refusal::Resting },
            BrokerErrorKind::Refused { reason: Refusal::Limit },
        ] {
            let m = user_message(broker_failed(&err(kind.clone())));
            assert!(!m.contains("boom") && !m.contains("Error"), "{kind:?}: {m}");
        }
    }
}
