//! The worker's end of its socket to the gateway: framed messages, the handshake, and
//! completions asked for and awaited in the middle of a turn.

use hearth_proto::PROTOCOL_VERSION;
use hearth_proto::frame::{self, FrameError};
use hearth_proto::llm::{BrokerError, Completion, CompletionRequest};
use hearth_proto::worker::{GatewayToWorker, KbHit, WorkerToGateway};
use tokio::net::UnixStream;

use crate::agent::Broker;

/// Why the link to the gateway cannot go on. `serve` branches on it: a closed socket is a
/// normal end (exit 0), anything else exits non-zero so the gateway restarts a fresh worker.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("gateway closed the connection")]
    Closed,
    #[error(
        "gateway speaks protocol version {gateway}, this worker speaks {PROTOCOL_VERSION}; restart Hearth so both are the same build"
    )]
    VersionMismatch { gateway: u32 },
    #[error("unexpected frame from the gateway: {0}")]
    Protocol(String),
    #[error(transparent)]
    Frame(FrameError),
}

impl From<FrameError> for LinkError {
    fn from(e: FrameError) -> Self {
        match e {
            FrameError::Closed => LinkError::Closed,
            other => LinkError::Frame(other),
        }
    }
}

/// The connected socket plus what the worker must remember about it between frames.
pub struct Link {
    stream: UnixStream,
    /// Next `request_id` for a `Complete`; unique for this worker's life.
    next_request_id: u64,
    /// The gateway asked us to stop while a turn was running; finish the turn, then exit.
    pub shutdown_requested: bool,
}

impl Link {
    /// Sends `Hello`, expects `Welcome` with our version; returns the member id.
    pub async fn handshake(stream: UnixStream) -> Result<(Self, String), LinkError> {
        let mut link = Self { stream, next_request_id: 1, shutdown_requested: false };
        let claimed_member = std::env::var(crate::ENV_MEMBER_ID).ok();
        link.send(&WorkerToGateway::Hello { version: PROTOCOL_VERSION, claimed_member }).await?;
        match link.recv().await? {
            GatewayToWorker::Welcome { version, member_id } if version == PROTOCOL_VERSION => Ok((link, member_id)),
            GatewayToWorker::Welcome { version, .. } => Err(LinkError::VersionMismatch { gateway: version }),
            other => Err(LinkError::Protocol(format!("expected welcome, got {}", name(&other)))),
        }
    }

    pub async fn send(&mut self, msg: &WorkerToGateway) -> Result<(), LinkError> {
        Ok(frame::write_frame(&mut self.stream, msg).await?)
    }

    pub async fn recv(&mut self) -> Result<GatewayToWorker, LinkError> {
        Ok(frame::read_frame(&mut self.stream).await?)
    }
}

/// A completion the member stopped, as the step loop sees it: the answer is what they were shown
/// (marked as stopped), with no tool to call, so the loop keeps it in history as the reply to the
/// turn's messages and ends the turn with it — the question is answered, as far as it went.
fn stopped_answer(shown: String) -> Completion {
    Completion {
        text: shown,
        model: String::new(),
        usage: Default::default(),
        finish_reason: Some(STOPPED_BY_MEMBER.to_owned()),
        tool_calls: Vec::new(),
    }
}

/// The finish reason of a completion the member stopped.
pub const STOPPED_BY_MEMBER: &str = "stopped_by_member";

impl Broker for Link {
    async fn complete(
        &mut self,
        turn_id: u64,
        request: CompletionRequest,
    ) -> Result<Result<Completion, BrokerError>, LinkError> {
        let request_id = self.next_request_id;
        self.next_request_id += 1;
        self.send(&WorkerToGateway::Complete { request_id, turn_id, request }).await?;
        loop {
            match self.recv().await? {
                GatewayToWorker::CompletionResult { request_id: id, result, stopped } if id == request_id => {
                    return Ok(match stopped {
                        Some(shown) => Ok(stopped_answer(shown)),
                        None => result,
                    });
                }
                GatewayToWorker::Shutdown => {
                    // "Finish what you are doing": the answer is paid for, so wait for it.
                    tracing::info!(turn_id, "shutdown requested; finishing the turn first");
                    self.shutdown_requested = true;
                }
                other => {
                    return Err(LinkError::Protocol(format!(
                        "{} while waiting for completion {request_id}",
                        name(&other)
                    )));
                }
            }
        }
    }

    async fn kb_search(&mut self, turn_id: u64, query: String) -> Result<Result<Vec<KbHit>, String>, LinkError> {
        let request_id = self.next_request_id;
        self.next_request_id += 1;
        self.send(&WorkerToGateway::KbSearch { request_id, turn_id, query }).await?;
        loop {
            match self.recv().await? {
                GatewayToWorker::KbResults { request_id: id, result } if id == request_id => return Ok(result),
                GatewayToWorker::Shutdown => {
                    tracing::info!(turn_id, "shutdown requested; finishing the turn first");
                    self.shutdown_requested = true;
                }
                other => {
                    return Err(LinkError::Protocol(format!("{} while waiting for search {request_id}", name(&other))));
                }
            }
        }
    }
}

/// A frame's kind for logs and errors; never its content (which may hold message text).
pub fn name(msg: &GatewayToWorker) -> String {
    match msg {
        GatewayToWorker::Welcome { .. } => "welcome".into(),
        GatewayToWorker::AttachmentChunk { turn_id, offset, .. } => format!("attachment chunk of turn {turn_id} at {offset}"),
        GatewayToWorker::Turn(t) => format!("turn {}", t.turn_id),
        GatewayToWorker::CompletionResult { request_id, .. } => {
            format!("completion result {request_id}")
        }
        GatewayToWorker::KbResults { request_id, .. } => format!("knowledge results {request_id}"),
        GatewayToWorker::Shutdown => "shutdown".into(),
    }
}
