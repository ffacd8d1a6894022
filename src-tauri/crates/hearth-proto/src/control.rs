//! The admin API: the CLI (over the owner-only control socket) and the GUI (in-process) both
//! speak these types to the gateway, which is the only writer of `gateway.sqlite`.
//!
//! Every request is answered by `Result<ControlReply, ControlError>`. `ControlError` is the one
//! `{ code, message }` shape used across every admin boundary: `message` is read by a person and
//! says what happened and what to do; `code` exists only where a caller branches on it.

use serde::{Deserialize, Serialize};

/// One request frame on the control socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlEnvelope {
    pub version: u32,
    pub request: ControlRequest,
}

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum ControlRequest {
    /// Configure the (single, household-wide) LLM provider. Replaces any earlier one.
    ProviderSet { kind: ProviderKind, base_url: String, model: String, api_key: String },
    /// Add a member with their bot. The token is validated live with `getMe`; on failure nothing
    /// is stored.
    MemberAdd { name: String, bot_token: String },
    MemberList,
    /// Remove a member by name (case-insensitive) or id: stops their bot and worker, forgets the
    /// token and the pairing. Their data directory is left in place for the admin.
    MemberRemove { member: String },
    /// Issue a fresh pairing code for a member (earlier unused codes stay valid until expiry,
    /// at most three pending).
    MemberPair { member: String },
    Status,
}

impl std::fmt::Debug for ControlRequest {
    // Hand-written so a secret never reaches a log line through `{:?}`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::ProviderSet { kind, base_url, model, .. } => f
                .debug_struct("ProviderSet")
                .field("kind", kind)
                .field("base_url", base_url)
                .field("model", model)
                .field("api_key", &"<redacted>")
                .finish(),
            Self::MemberAdd { name, .. } => {
                f.debug_struct("MemberAdd").field("name", name).field("bot_token", &"<redacted>").finish()
            }
            Self::MemberList => f.write_str("MemberList"),
            Self::MemberRemove { member } => f.debug_struct("MemberRemove").field("member", member).finish(),
            Self::MemberPair { member } => f.debug_struct("MemberPair").field("member", member).finish(),
            Self::Status => f.write_str("Status"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    /// OpenAI chat completions and everything compatible with it: OpenAI, OpenRouter, DeepSeek,
    /// Gemini's compatible endpoint, Ollama, LM Studio.
    Openai,
    /// Anthropic Messages API.
    Anthropic,
}

impl ProviderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Openai => "openai",
            Self::Anthropic => "anthropic",
        }
    }
}

impl std::str::FromStr for ProviderKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "openai" => Ok(Self::Openai),
            "anthropic" => Ok(Self::Anthropic),
            other => Err(format!("unknown provider kind {other:?}: use openai or anthropic")),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum ControlReply {
    Done,
    ProviderSet(ProviderSummary),
    MemberAdded(MemberAdded),
    Members { members: Vec<MemberSummary> },
    PairCode(PairCode),
    Status(StatusReport),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct ControlError {
    pub code: ErrorCode,
    pub message: String,
}

impl ControlError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }
}

/// Codes a caller branches on. The CLI maps them to exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The input was wrong (bad name, malformed token, unknown provider kind).
    InvalidInput,
    /// The named member does not exist.
    NotFound,
    /// Something with that name exists already.
    Conflict,
    /// Telegram or the provider refused (e.g. `getMe` said the token is invalid).
    Rejected,
    /// Telegram or the provider could not be reached.
    Unreachable,
    /// The protocol versions differ.
    VersionMismatch,
    /// Anything else; the message says what.
    Internal,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderSummary {
    pub kind: ProviderKind,
    pub base_url: String,
    pub model: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberAdded {
    pub id: String,
    pub name: String,
    pub bot_username: String,
    pub pair_code: String,
    pub pair_link: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairCode {
    pub member_id: String,
    pub name: String,
    pub bot_username: String,
    pub pair_code: String,
    pub pair_link: String,
    /// RFC 3339.
    pub expires_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberSummary {
    pub id: String,
    pub name: String,
    pub bot_username: String,
    pub paired: bool,
    /// RFC 3339.
    pub created_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusReport {
    pub version: String,
    pub data_dir: String,
    pub uptime_secs: u64,
    pub provider: Option<ProviderSummary>,
    pub members: Vec<MemberStatus>,
    pub turns_in_flight: u32,
    pub turn_cap: u32,
    pub worker_processes: u32,
    pub isolation: IsolationLevel,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberStatus {
    pub id: String,
    pub name: String,
    pub bot_username: String,
    pub bot: BotState,
    pub paired: bool,
    pub lane: LaneState,
    /// The member's worker process, while one runs.
    pub worker_pid: Option<u32>,
    pub today: DayUsage,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayUsage {
    pub calls: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
}

/// The health of one member's bot connection, as the admin should read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum BotState {
    /// Not polling yet (just added, or the gateway is starting).
    Starting,
    /// Long-polling normally.
    Polling,
    /// Telegram said the token is invalid (revoked in BotFather or mistyped). Needs a new token.
    TokenRevoked,
    /// Another program is polling with the same token (Telegram 409). Hearth keeps retrying.
    UsedElsewhere,
    /// Telegram asked us to slow down; polling resumes by itself.
    RateLimited { retry_after_secs: u64 },
    /// Telegram could not be reached or answered with an error; retrying with backoff.
    Unreachable { error: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum LaneState {
    Idle,
    /// Messages are waiting for a turn slot.
    Queued { messages: u32 },
    /// A turn is running; `queued` more messages arrived meanwhile.
    Running { secs: u64, queued: u32 },
}

/// How strongly a member's worker is separated from everyone else's. See DESIGN.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IsolationLevel {
    /// Own process and 0700 directory, same OS user as the gateway. Development only.
    Process,
    /// Own OS account.
    Account,
    /// Own OS account plus a kernel sandbox.
    AccountSandbox,
}

impl IsolationLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Process => "process",
            Self::Account => "account",
            Self::AccountSandbox => "account + sandbox",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_prints_secrets() {
        let add = ControlRequest::MemberAdd { name: "Ana".into(), bot_token: "123:SECRET".into() };
        let set = ControlRequest::ProviderSet {
            kind: ProviderKind::Openai,
            base_url: "http://x".into(),
            model: "m".into(),
            api_key: "sk-SECRET".into(),
        };
        for r in [add, set] {
            let s = format!("{r:?}");
            assert!(!s.contains("SECRET"), "{s}");
            assert!(s.contains("redacted"), "{s}");
        }
    }
}
