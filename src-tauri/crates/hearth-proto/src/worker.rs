//! Gateway ↔ worker messages. One socket per worker; the gateway speaks first after the worker's
//! `Hello`. A worker handles one turn at a time; while a turn runs it may send any number of
//! [`WorkerToGateway::Complete`] requests, each answered by a
//! [`GatewayToWorker::CompletionResult`] with the same `request_id`, and finishes the turn with
//! exactly one [`WorkerToGateway::TurnDone`]. It may likewise search the household's knowledge
//! ([`WorkerToGateway::KbSearch`], answered by [`GatewayToWorker::KbResults`]): the gateway
//! indexes `kb/`, and no worker reads it itself.
//!
//! The worker never names a chat to send to: the gateway sends the reply to the chat the turn
//! came from, which is bound to the member. That is what keeps a misbehaving worker from writing
//! to anyone else's chat.

use serde::{Deserialize, Serialize};

use crate::llm::{BrokerError, Completion, CompletionRequest};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum GatewayToWorker {
    /// First frame from the gateway, after the worker's `Hello`.
    Welcome { version: u32, member_id: String },
    Turn(Turn),
    CompletionResult { request_id: u64, result: Result<Completion, BrokerError> },
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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncomingMessage {
    /// Gateway inbox row id. Stable across gateway restarts, so a worker can recognise a turn it
    /// already answered (the gateway crashed before sending the reply) and return the stored
    /// reply instead of asking the model again.
    pub inbox_id: i64,
    pub text: String,
    /// When Telegram says the message was sent (Unix seconds).
    pub sent_at: i64,
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
