//! The test's side of the worker socket: a scripted gateway.

use std::time::Duration;

use hearth_proto::PROTOCOL_VERSION;
use hearth_proto::frame::{read_frame, write_frame};
use hearth_proto::llm::{BrokerError, Completion, CompletionRequest, ToolCall, Usage};
use hearth_proto::worker::{
    GatewayToWorker, IncomingMessage, ReminderDue, Turn, TurnContext, TurnKind, TurnOutcome, WorkerToGateway,
};
use tempfile::TempDir;
use tokio::net::UnixStream;
use tokio::task::JoinHandle;

/// Long enough for a slow CI box, short enough that a hung worker fails the test.
const WAIT: Duration = Duration::from_secs(10);

pub struct Gateway {
    pub stream: UnixStream,
    pub worker: JoinHandle<anyhow::Result<()>>,
    pub dir: TempDir,
    /// The note (`<hearth>` … `</hearth>`: the time, remembered facts) of each request received,
    /// in order; [`Gateway::expect_complete`] takes it off the request's newest user message, so
    /// tests compare what the member's messages became.
    pub notes: Vec<String>,
}

/// Takes the turn's note off the start of the request's newest user message; "" when none.
fn take_note(request: &mut CompletionRequest) -> String {
    let Some(m) = request.messages.iter_mut().rev().find(|m| m.role == hearth_proto::llm::Role::User) else {
        return String::new();
    };
    let Some((note, rest)) = m.content.strip_prefix("<hearth>\n").and_then(|r| r.split_once("</hearth>\n\n")) else {
        return String::new();
    };
    let (note, rest) = (note.to_owned(), rest.to_owned());
    m.content = rest;
    note
}

pub fn context() -> TurnContext {
    TurnContext {
        member_name: "Alex".into(),
        persona: String::new(),
        now: "2025-11-21T08:15:00+01:00".into(),
        timezone: "Europe/Berlin".into(),
        context_tokens: 8000,
        max_output_tokens: 500,
        role: Default::default(),
    }
}

pub fn chat_turn(turn_id: u64, chat_id: i64, messages: &[(i64, &str)]) -> Turn {
    Turn {
        turn_id,
        chat_id,
        kind: TurnKind::Chat,
        messages: messages
            .iter()
            .map(|&(inbox_id, text)| IncomingMessage { inbox_id, text: text.into(), sent_at: 0, attachment: None })
            .collect(),
        context: context(),
    }
}

pub fn new_turn(turn_id: u64, chat_id: i64) -> Turn {
    Turn { turn_id, chat_id, kind: TurnKind::NewConversation, messages: vec![], context: context() }
}

pub fn completion(text: &str) -> Completion {
    Completion {
        text: text.into(),
        model: "fake-model".into(),
        usage: Usage::default(),
        finish_reason: Some("stop".into()),
        tool_calls: vec![],
    }
}

/// A completion calling `calls` (name, JSON arguments), with ids `call_<turn>_<i>`.
pub fn tool_calls(calls: &[(&str, serde_json::Value)]) -> Completion {
    Completion {
        text: String::new(),
        finish_reason: Some("tool_calls".into()),
        tool_calls: calls
            .iter()
            .enumerate()
            .map(|(i, (name, args))| ToolCall { id: format!("call_{i}"), name: (*name).into(), arguments: args.to_string() })
            .collect(),
        ..completion("")
    }
}

impl Gateway {
    /// Starts `serve` on a fresh member directory without doing the handshake.
    pub fn spawn() -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self::spawn_in(dir)
    }

    pub fn spawn_in(dir: TempDir) -> Self {
        let (ours, theirs) = UnixStream::pair().unwrap();
        let worker = tokio::spawn(hearth_worker::serve(theirs, dir.path().to_owned()));
        Self { stream: ours, worker, dir, notes: Vec::new() }
    }

    /// Starts a worker and completes the handshake.
    pub async fn start() -> Self {
        Self::start_in(tempfile::tempdir().unwrap()).await
    }

    pub async fn start_in(dir: TempDir) -> Self {
        let mut gw = Self::spawn_in(dir);
        assert!(matches!(gw.recv().await, WorkerToGateway::Hello { version: PROTOCOL_VERSION, .. }));
        gw.send(GatewayToWorker::Welcome { version: PROTOCOL_VERSION, member_id: "alex".into() }).await;
        gw
    }

    pub async fn send(&mut self, msg: GatewayToWorker) {
        write_frame(&mut self.stream, &msg).await.unwrap();
    }

    pub async fn recv(&mut self) -> WorkerToGateway {
        tokio::time::timeout(WAIT, read_frame(&mut self.stream))
            .await
            .expect("worker did not answer in time")
            .expect("read a frame from the worker")
    }

    /// Expects a `Complete` for `turn_id`; returns its request id and request.
    pub async fn expect_complete(&mut self, turn_id: u64) -> (u64, CompletionRequest) {
        match self.recv().await {
            WorkerToGateway::Complete { request_id, turn_id: t, mut request } => {
                assert_eq!(t, turn_id);
                let note = take_note(&mut request);
                self.notes.push(note);
                (request_id, request)
            }
            other => panic!("expected Complete, got {other:?}"),
        }
    }

    pub async fn answer(&mut self, request_id: u64, result: Result<Completion, BrokerError>) {
        self.send(GatewayToWorker::CompletionResult { request_id, result, stopped: None }).await;
    }

    /// Answers a completion the member stopped: an error, with what they were shown.
    pub async fn answer_stopped(&mut self, request_id: u64, shown: &str) {
        let result = Err(BrokerError {
            kind: hearth_proto::llm::BrokerErrorKind::ProviderError,
            message: "the member stopped this answer".into(),
        });
        self.send(GatewayToWorker::CompletionResult { request_id, result, stopped: Some(shown.to_owned()) }).await;
    }

    pub async fn expect_done(&mut self, turn_id: u64) -> TurnOutcome {
        match self.recv().await {
            WorkerToGateway::TurnDone { turn_id: t, outcome, .. } => {
                assert_eq!(t, turn_id);
                outcome
            }
            other => panic!("expected TurnDone, got {other:?}"),
        }
    }

    /// Expects `TurnDone` for `turn_id`; returns the outcome and the reminder schedule it carried.
    pub async fn expect_done_with_schedule(&mut self, turn_id: u64) -> (TurnOutcome, Option<Vec<ReminderDue>>) {
        match self.recv().await {
            WorkerToGateway::TurnDone { turn_id: t, outcome, reminders } => {
                assert_eq!(t, turn_id);
                (outcome, reminders)
            }
            other => panic!("expected TurnDone, got {other:?}"),
        }
    }

    /// One full chat turn answered with `reply`; returns the request the worker sent.
    pub async fn chat(
        &mut self,
        turn_id: u64,
        chat_id: i64,
        messages: &[(i64, &str)],
        reply: &str,
    ) -> CompletionRequest {
        self.send(GatewayToWorker::Turn(chat_turn(turn_id, chat_id, messages))).await;
        let (request_id, request) = self.expect_complete(turn_id).await;
        self.answer(request_id, Ok(completion(reply))).await;
        assert_eq!(self.expect_done(turn_id).await, TurnOutcome::Reply { text: reply.into() });
        request
    }

    /// The note of the latest request: the time and the remembered facts.
    pub fn last_note(&self) -> &str {
        self.notes.last().map_or("", String::as_str)
    }

    /// Waits for `serve` to return.
    pub async fn exit(self) -> (anyhow::Result<()>, TempDir) {
        let result = tokio::time::timeout(WAIT, self.worker)
            .await
            .expect("worker did not exit in time")
            .expect("worker task panicked");
        (result, self.dir)
    }

    /// Sends `Shutdown` and expects a clean exit.
    pub async fn shutdown(mut self) -> TempDir {
        self.send(GatewayToWorker::Shutdown).await;
        let (result, dir) = self.exit().await;
        result.expect("worker exits cleanly on shutdown");
        dir
    }
}

/// A message with a file: `kind`, the gateway's name and type, `size` as announced.
pub fn with_file(
    inbox_id: i64,
    text: &str,
    kind: hearth_proto::worker::AttachmentKind,
    file_name: &str,
    media_type: &str,
    size: u64,
) -> IncomingMessage {
    IncomingMessage {
        inbox_id,
        text: text.into(),
        sent_at: 0,
        attachment: Some(hearth_proto::worker::Attachment {
            kind,
            file_name: file_name.into(),
            media_type: media_type.into(),
            size,
            duration_secs: None,
        }),
    }
}

impl Gateway {
    /// Sends `bytes` as inbox row `inbox_id`'s file of turn `turn_id`, in chunks as the gateway does.
    pub async fn send_file(&mut self, turn_id: u64, inbox_id: i64, bytes: &[u8]) {
        use base64::Engine as _;
        for (i, chunk) in bytes.chunks(hearth_proto::worker::ATTACHMENT_CHUNK_BYTES).enumerate() {
            let data = base64::engine::general_purpose::STANDARD.encode(chunk);
            let offset = (i * hearth_proto::worker::ATTACHMENT_CHUNK_BYTES) as u64;
            self.send(GatewayToWorker::AttachmentChunk { turn_id, inbox_id, offset, data }).await;
        }
    }

    /// Sends a chat turn of `messages` after the files in `files` (inbox row, bytes).
    pub async fn send_media_turn(&mut self, turn_id: u64, messages: Vec<IncomingMessage>, files: &[(i64, &[u8])]) {
        for (inbox_id, bytes) in files {
            self.send_file(turn_id, *inbox_id, bytes).await;
        }
        self.send(GatewayToWorker::Turn(Turn {
            turn_id,
            chat_id: 100,
            kind: TurnKind::Chat,
            messages,
            context: context(),
        }))
        .await;
    }
}

/// A plain text turn answered normally: what must still work after a refused file.
pub async fn send_text_turn_answered(gw: &mut Gateway, turn_id: u64, inbox_id: i64) {
    let request = gw.chat(turn_id, 100, &[(inbox_id, "Just text now.")], "Answered.").await;
    assert!(request.messages.last().unwrap().content.ends_with("Just text now."), "{request:?}");
}
