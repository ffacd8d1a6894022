//! Wire types shared by the gateway, workers and the CLI.
//!
//! - [`frame`]: the length-prefixed JSON framing used on every Hearth Unix socket (worker
//!   sockets and the admin control socket), with a hard size limit.
//! - [`llm`]: the provider-neutral chat-completion request/response a worker asks the broker for.
//! - [`worker`]: messages between the gateway and one member's worker process.
//! - [`control`]: the admin API spoken by the CLI (and later the GUI) to a running gateway.
//! - [`supervisor`]: an unprivileged gateway's requests to the root `hearth supervisor` daemon
//!   (create member accounts, start and stop workers as them, remove members).
//! - [`backoff`]: the one retry pause (exponential, capped, jittered, honouring a server's
//!   `Retry-After`) that every process's retry loops share; here because every crate uses this one.
//!
//! Nothing here holds a secret: API keys and bot tokens never cross the worker socket, and the
//! control requests that carry one (`MemberAdd`, `MemberToken`, `BotCheck`, `ProviderSet`,
//! `ProviderTest`) travel over the owner-only control socket (or in-process) and redact it in
//! `Debug`.

pub mod backoff;
pub mod control;
pub mod frame;
pub mod llm;
pub mod supervisor;
pub mod worker;

/// Version of the worker and control protocols. Both sides send it in their first frame and
/// refuse to talk to a peer with a different version, so an upgraded gateway never feeds an old
/// worker frames it would misread.
pub const PROTOCOL_VERSION: u32 = 8;
