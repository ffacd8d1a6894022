//! Gateway ↔ worker messages. One socket per worker; the gateway speaks first after the worker's
//! `Hello`. A worker handles one turn at a time; while a chat turn runs it may send
//! [`WorkerToGateway::Complete`] requests, one at a time, each answered by a
//! [`GatewayToWorker::CompletionResult`] with the same `request_id`, and finishes the turn with
//! exactly one [`WorkerToGateway::TurnDone`]. It may likewise search the household's knowledge
//! ([`WorkerToGateway::KbSearch`], answered by [`GatewayToWorker::KbResults`]): the gateway
//! indexes `kb/`, and no worker reads it itself.
//!
//! The worker never names a chat to send to: the gateway sends the reply to the chat the turn
//! came from, which is bound to the member. That is what keeps a misbehaving worker from writing
//! to anyone else's chat.
//!
//! The gateway believes nothing else a worker says about its turn either: it decides from the
//! turn's [`TurnKind`] what the turn may ask for ([`TurnKind::uses_model`],
//! [`TurnKind::may_search`], [`TurnKind::may_change_reminders`]) and how much: at most one
//! request in flight, [`MAX_COMPLETIONS_PER_TURN`] completions and [`KB_MAX_SEARCHES_PER_TURN`]
//! searches per turn, at most [`MAX_REMINDERS`] reminders within [`REMINDER_PAST_GRACE_SECS`] and
//! [`REMINDER_MAX_AHEAD_SECS`] of now, and each frame within its kind's
//! [`WorkerToGateway::max_bytes`]. The constants live here so the worker keeps to the same limits.

use serde::{Deserialize, Serialize};

use crate::llm::{BrokerError, Completion, CompletionRequest};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum GatewayToWorker {
    /// First frame from the gateway, after the worker's `Hello`.
    Welcome { version: u32, member_id: String },
    /// Part of an attachment of the turn `turn_id` that follows: the bytes of inbox row
    /// `inbox_id`'s file from `offset` on, at most [`ATTACHMENT_CHUNK_BYTES`] of them, in standard
    /// base64. All of a turn's chunks come, in order, right before its `Turn` frame, whose
    /// [`Attachment::size`] says how many bytes to expect; the worker keeps them in memory until
    /// then and drops them if the `Turn` does not match. Chunked so that a 20 MB file never
    /// needs a frame larger than the socket's cap.
    AttachmentChunk { turn_id: u64, inbox_id: i64, offset: u64, data: String },
    Turn(Turn),
    CompletionResult {
        request_id: u64,
        result: Result<Completion, BrokerError>,
        /// The member pressed Stop while this completion was written (`result` is then an
        /// error): the words they were shown, marked as stopped, which the gateway sends them as
        /// the turn's reply. The worker keeps them in its history as the answer to the turn's
        /// messages — so the next turn's model sees what was said, and the question is not asked
        /// again as if unanswered — and ends the turn with them. Added in protocol 8.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stopped: Option<String>,
    },
    /// The answer to a [`WorkerToGateway::KbSearch`] with the same `request_id`: at most
    /// [`KB_MAX_HITS`] hits, best first, their snippets [`KB_MAX_CHARS`] long together; or a
    /// plain sentence saying why there are none (for the model to read).
    KbResults { request_id: u64, result: Result<Vec<KbHit>, String> },
    /// Finish what you are doing and exit. Sent when the worker has been idle long enough or the
    /// gateway is shutting down.
    Shutdown,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum WorkerToGateway {
    /// First frame from the worker. `claimed_member` is what the worker believes it is; the
    /// gateway never trusts it — a worker is bound by the socket it was spawned with or the uid
    /// the kernel reports — and only logs a mismatch.
    Hello {
        version: u32,
        #[serde(default)]
        claimed_member: Option<String>,
    },
    Complete { request_id: u64, turn_id: u64, request: CompletionRequest },
    /// Search the household's knowledge (the files the admin put in `kb/`) during turn
    /// `turn_id`. Read-only; answered by [`GatewayToWorker::KbResults`].
    KbSearch { request_id: u64, turn_id: u64, query: String },
    TurnDone {
        turn_id: u64,
        outcome: TurnOutcome,
        /// The member's upcoming reminders, when this turn changed them (set, cancelled, fired):
        /// ids and instants only, never their text. The gateway replaces what it schedules for
        /// the member with exactly this list. Absent: nothing changed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reminders: Option<Vec<ReminderDue>>,
    },
}

/// Most completions one chat turn's step loop asks for. Each tool round is a step; the limit
/// keeps a looping model from spending without end.
pub const MAX_STEPS: usize = 6;

/// Most completions the gateway grants one turn: the step loop plus the one that folds older
/// messages into the conversation's running summary (`hearth-worker/src/context.rs`). Uncapped
/// members have no spend bound, so this (with one completion in flight at a time) is what
/// bounds what one turn can cost.
pub const MAX_COMPLETIONS_PER_TURN: usize = MAX_STEPS + 1;

/// Most knowledge searches the gateway answers in one turn: two per step is more than a model
/// needs to find a note, and each search is a query on the household's index.
pub const KB_MAX_SEARCHES_PER_TURN: usize = 2 * MAX_STEPS;

/// Longest search query the gateway takes, in bytes (the worker sends at most 300 characters).
pub const KB_MAX_QUERY_BYTES: usize = 1200;

/// Most upcoming reminders a member may have: the worker refuses a new one past it, and the
/// gateway refuses a schedule longer than it.
pub const MAX_REMINDERS: usize = 200;

/// How far in the past a reported reminder may be due. A worker moves a reminder past the
/// turn's `now` when it fires it, so only a turn's own duration (at most the turn timeout)
/// separates a fresh instant from the gateway's clock; older instants are dropped — the occurrence
/// was either fired already or is committed as a firing that reports the next one.
pub const REMINDER_PAST_GRACE_SECS: i64 = 15 * 60;

/// How far ahead a reported reminder may be due: ten years.
pub const REMINDER_MAX_AHEAD_SECS: i64 = 10 * 366 * 24 * 3600;

/// Largest frame a worker may send at all; a bigger one ends the worker's connection. Below
/// [`crate::frame::MAX_FRAME`], which bounds every Hearth socket; each kind has a smaller bound
/// still ([`WorkerToGateway::max_bytes`]).
pub const WORKER_FRAME_MAX: usize = 4 * 1024 * 1024;

/// Longest reply text the gateway sends for one turn, in bytes; longer is cut with a note. A
/// model's answer is bounded by its output tokens (a few KiB); only `/memory` with thousands of
/// facts comes near, and 64 KiB is already sixteen Telegram messages.
pub const MAX_REPLY_BYTES: usize = 64 * 1024;

impl WorkerToGateway {
    /// The largest encoded size (JSON body, without the length prefix) a frame of this kind may
    /// have. A `Complete` carries a prompt the worker fits to the member's context budget
    /// (tens of KiB) plus up to [`MAX_STEPS`] rounds of tool calls and results; `TurnDone`
    /// carries a reply (a `/memory` listing of every fact is the longest legitimate one) and
    /// at most [`MAX_REMINDERS`] instants; `Hello` and `KbSearch` are a few words.
    pub fn max_bytes(&self) -> usize {
        match self {
            WorkerToGateway::Hello { .. } => 4 * 1024,
            WorkerToGateway::KbSearch { .. } => 4 * 1024,
            WorkerToGateway::Complete { .. } => 2 * 1024 * 1024,
            WorkerToGateway::TurnDone { .. } => WORKER_FRAME_MAX,
        }
    }

    /// The frame's kind, for logs and refusals; never its content.
    pub fn kind_name(&self) -> &'static str {
        match self {
            WorkerToGateway::Hello { .. } => "hello",
            WorkerToGateway::Complete { .. } => "complete",
            WorkerToGateway::KbSearch { .. } => "kb_search",
            WorkerToGateway::TurnDone { .. } => "turn_done",
        }
    }
}

/// Most bytes of file in one [`GatewayToWorker::AttachmentChunk`] (before base64): 1 MiB, so a
/// chunk frame stays near 1.4 MiB, far below [`crate::frame::MAX_FRAME`].
pub const ATTACHMENT_CHUNK_BYTES: usize = 1024 * 1024;

/// Largest file Hearth takes from Telegram: the Bot API serves downloads up to 20 MB.
pub const MAX_ATTACHMENT_BYTES: u64 = 20 * 1024 * 1024;

/// Most attachments one turn carries (an album is up to 10 photos).
pub const MAX_ATTACHMENTS_PER_TURN: usize = 10;

/// Most characters of a document's text a turn puts before the model; the rest stays in the
/// saved file for the files tool.
pub const DOCUMENT_TEXT_BUDGET_CHARS: usize = 12_000;

/// Most hits one [`WorkerToGateway::KbSearch`] returns.
pub const KB_MAX_HITS: usize = 5;
/// Most characters of snippet text one search returns, all hits together.
pub const KB_MAX_CHARS: usize = 2000;

/// One passage of the household's knowledge that matched a search.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KbHit {
    /// The file's path inside `kb/`, e.g. `wifi.md` or `school/calendar.txt`.
    pub file: String,
    /// The heading the passage sits under (`A > B` for nested headings); empty before the first.
    pub heading: String,
    /// The passage, or the part of it around the matching words.
    pub snippet: String,
}

/// One upcoming reminder as the gateway schedules it. The text stays in the member's
/// directory; the gateway only knows when to ask the worker to deliver reminder `id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReminderDue {
    /// The worker's id for the reminder, unique per member.
    pub id: i64,
    /// When it is due next, Unix seconds (UTC).
    pub due_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Turn {
    /// Gateway-assigned, unique for the gateway's lifetime.
    pub turn_id: u64,
    /// The Telegram chat this turn belongs to. History is kept per chat.
    pub chat_id: i64,
    pub kind: TurnKind,
    /// The user's messages collected into this turn, oldest first (several when the member wrote
    /// again while the previous turn ran). Empty for [`TurnKind::NewConversation`],
    /// [`TurnKind::ListMemory`] and [`TurnKind::Reminder`]; for [`TurnKind::Forget`] and
    /// [`TurnKind::Reminders`] the command's words.
    pub messages: Vec<IncomingMessage>,
    pub context: TurnContext,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TurnKind {
    /// Answer the messages.
    Chat,
    /// The member sent `/new`: start a fresh conversation in this chat; reply with a short
    /// confirmation.
    NewConversation,
    /// The member sent `/memory`: list what the assistant remembers about them. No model call.
    ListMemory,
    /// The member sent `/forget [words]`. `messages` holds one message whose text is the words
    /// (possibly empty): none asks to confirm forgetting everything, `everything` (or `all`)
    /// confirms it, anything else forgets the memories matching the words. No model call.
    Forget,
    /// The member sent `/reminders [cancel <id>]`. `messages` holds one message whose text is the
    /// words: none lists the upcoming reminders, `cancel <id>` cancels one. No model call.
    Reminders,
    /// Reminder `id` is due at `due_at` (Unix seconds, UTC): send its text to the member. The
    /// gateway scheduled it and committed this occurrence before asking; a second ask for the same
    /// occurrence (a restart) repeats the text without moving the reminder on. `messages` is
    /// empty. No model call.
    Reminder { id: i64, due_at: i64 },
}

impl TurnKind {
    /// Whether a turn of this kind asks the model anything. Only a chat turn does (its step loop
    /// and, in a long conversation, one summary); commands and reminders are answered by the
    /// worker from the member's own files, so the gateway refuses them any completion.
    pub fn uses_model(self) -> bool {
        matches!(self, TurnKind::Chat)
    }

    /// Whether a turn of this kind may search the household's knowledge: only a chat turn's
    /// model calls the search tool.
    pub fn may_search(self) -> bool {
        matches!(self, TurnKind::Chat)
    }

    /// Whether a turn of this kind may report a new reminder schedule: a chat turn (the reminder
    /// tools), `/reminders cancel`, and a firing (which moves the reminder on).
    pub fn may_change_reminders(self) -> bool {
        matches!(self, TurnKind::Chat | TurnKind::Reminders | TurnKind::Reminder { .. })
    }

    /// A short name for logs and the audit log.
    pub fn name(self) -> &'static str {
        match self {
            TurnKind::Chat => "chat",
            TurnKind::NewConversation => "new_conversation",
            TurnKind::ListMemory => "list_memory",
            TurnKind::Forget => "forget",
            TurnKind::Reminders => "reminders",
            TurnKind::Reminder { .. } => "reminder",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncomingMessage {
    /// Gateway inbox row id. Stable across gateway restarts, so a worker can recognise a turn it
    /// already answered (the gateway crashed before sending the reply) and return the stored
    /// reply instead of asking the model again.
    pub inbox_id: i64,
    pub text: String,
    /// When Telegram says the message was sent (Unix seconds).
    pub sent_at: i64,
    /// The file the member sent with this message (a voice note, a photo, a document), whose
    /// bytes came in [`GatewayToWorker::AttachmentChunk`] frames before the turn. For a voice
    /// note `text` is what was heard; for a photo or document, its caption (maybe empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attachment: Option<Attachment>,
}

/// A file that came with a member's message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    pub kind: AttachmentKind,
    /// The name to keep it under in the member's `files/`, chosen by the gateway: plain (no
    /// folder, no leading dot, at most 100 characters), e.g. `voice 2026-12-07 19-04.ogg` or the
    /// document's own name cleaned. The worker still checks it, and picks another name rather
    /// than replace a file.
    pub file_name: String,
    /// What Telegram says the file is (`audio/ogg`, `image/jpeg`, `application/pdf`, …).
    pub media_type: String,
    /// Its exact size in bytes; the chunks before the turn add up to it.
    pub size: u64,
    /// A voice note's or audio file's length as Telegram reports it, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_secs: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttachmentKind {
    /// A voice note (OGG/Opus); the message's text is its transcript.
    Voice,
    /// A music or audio file; the message's text is its transcript.
    Audio,
    /// A photo: the model sees it through [`crate::llm::ImageSource::Attachment`].
    Photo,
    /// A file sent as a document: its text (PDF, plain text, Markdown, CSV) goes to the model.
    Document,
}

/// Facts the worker needs to build the prompt that it cannot know itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TurnContext {
    pub member_name: String,
    /// Extra persona guidance the admin set for this member; may be empty.
    pub persona: String,
    /// Current time in the household's zone, RFC 3339 (with offset). The worker's "now" for
    /// reminders too, so the gateway's clock (which tests may move) is the only one that counts.
    pub now: String,
    /// Household IANA time zone name, e.g. "Europe/Berlin".
    pub timezone: String,
    /// Token budget for the prompt (system + history + new messages).
    pub context_tokens: u32,
    /// Output token cap for each completion.
    pub max_output_tokens: u32,
    /// Adult, teen or child: children and teens get age-appropriate guidance in the prompt.
    /// Absent from an older gateway's frames: an adult.
    #[serde(default)]
    pub role: crate::control::Role,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum TurnOutcome {
    /// Send this text to the member.
    Reply { text: String },
    /// Send nothing: a reminder occurrence that was cancelled or moved after the gateway
    /// committed it.
    Nothing,
    /// The turn failed; `user_message` is a kind, plain sentence for the member, `detail` is for
    /// the admin's logs.
    Failed { user_message: String, detail: String },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::ChatMessage;

    fn size(msg: &WorkerToGateway) -> usize {
        crate::frame::encode(msg).unwrap().len() - 4
    }

    /// The largest frame a real worker sends of each kind fits that kind's bound, and every
    /// bound is below the worker frame limit.
    #[test]
    fn real_frames_fit_their_bounds() {
        let hello = WorkerToGateway::Hello { version: crate::PROTOCOL_VERSION, claimed_member: Some("m".repeat(64)) };
        // The worker cuts a query to 300 characters; four bytes each at worst.
        let search = WorkerToGateway::KbSearch { request_id: u64::MAX, turn_id: u64::MAX, query: "😀".repeat(300) };
        // Every fact of a full memory (2,000 of 500 characters) listed by `/memory`, and a full
        // reminder schedule.
        let memory = format!("- {}\n", "x".repeat(500)).repeat(2000);
        let done = WorkerToGateway::TurnDone {
            turn_id: u64::MAX,
            outcome: TurnOutcome::Reply { text: memory },
            reminders: Some((0..MAX_REMINDERS as i64).map(|id| ReminderDue { id: i64::MAX - id, due_at: i64::MAX }).collect()),
        };
        // A 12,000-token prompt at one byte per token, and five rounds of tool results.
        let mut messages = vec![ChatMessage::user("p".repeat(12_000))];
        for i in 0..5 {
            messages.push(ChatMessage::tool_result(format!("call_{i}"), "r".repeat(100 * 1024), false));
        }
        let complete = WorkerToGateway::Complete {
            request_id: 1,
            turn_id: 1,
            request: CompletionRequest { system: "s".repeat(8000), messages, max_tokens: 4096, tools: Vec::new() },
        };
        for msg in [hello, search, done, complete] {
            assert!(size(&msg) <= msg.max_bytes(), "{}: {} > {}", msg.kind_name(), size(&msg), msg.max_bytes());
            assert!(msg.max_bytes() <= WORKER_FRAME_MAX && WORKER_FRAME_MAX < crate::frame::MAX_FRAME);
        }
    }

    #[test]
    fn only_a_chat_turn_uses_the_model() {
        let all = [
            TurnKind::Chat,
            TurnKind::NewConversation,
            TurnKind::ListMemory,
            TurnKind::Forget,
            TurnKind::Reminders,
            TurnKind::Reminder { id: 1, due_at: 2 },
        ];
        let model: Vec<_> = all.iter().filter(|k| k.uses_model()).collect();
        assert_eq!(model, [&TurnKind::Chat]);
        assert_eq!(all.iter().filter(|k| k.may_search()).count(), 1);
        let reminders: Vec<_> = all.iter().filter(|k| k.may_change_reminders()).map(|k| k.name()).collect();
        assert_eq!(reminders, ["chat", "reminders", "reminder"]);
        assert_eq!(MAX_COMPLETIONS_PER_TURN, MAX_STEPS + 1);
    }
}
