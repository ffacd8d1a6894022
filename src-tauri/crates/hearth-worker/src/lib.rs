//! One household member's worker: the process that holds that member's conversations and
//! answers their turns, asking the gateway's broker for completions. It never holds an API key
//! or a bot token, and it owns only `members/<id>/`.
//!
//! - [`run_from_env`] / [`serve`]: process entry (`hearth worker`) and the worker's life on its
//!   socket: handshake, then turns one at a time until shutdown or end of stream.
//! - `link`: the framed socket to the gateway; completions asked for mid-turn.
//! - `attachments`: a turn's files as their chunks arrive before it, in memory, bounded.
//! - `media`: what a turn's files become: saved into `files/`, a document's text quoted into
//!   the prompt, a photo offered to the model by name, a voice note marked as spoken.
//! - `agent`: one turn — history, memory, prompt, the completion and tool loop, `/memory` and
//!   `/forget`, kind failure messages.
//! - `db`: how the member's SQLite files are opened (0600, WAL) and migrated.
//! - `history`: `history.sqlite`, conversations per chat, idempotent turn storage.
//! - `memory`: `memory.sqlite`, the facts the assistant keeps about its member (FTS5 search).
//! - `reminders`: `reminders.sqlite`, the member's reminders and their recurrence in the
//!   household's zone; the gateway is told only ids and due instants, and schedules them.
//! - `tools`: the tools the model may call (remember, recall, forget, set / list / cancel
//!   reminders), each under a timeout.
//! - `context`: folding older messages into a running summary when they no longer fit.
//! - `files`: the member's notes and lists in `files/` (plain names, no links followed, capped).
//! - `knowledge`: the `search_household_knowledge` tool, answered by the gateway's index of `kb/`.
//! - `role_tools`: the one table of which tools adults, teens and children have.
//! - `tool_offer`: which of those a chat turn offers the model — a small always-on set, the
//!   rest when the turn's words, its files or the conversation's last exchange call for them.
//! - `prompt`: the system prompt, remembered facts and the token-budgeted message list.

mod agent;
mod attachments;
mod context;
mod db;
mod files;
mod history;
mod knowledge;
mod link;
mod media;
mod memory;
mod prompt;
mod reminders;
mod role_tools;
mod tool_offer;
mod tools;

pub use agent::{MAX_STEPS, STEP_LIMIT_MESSAGE};
pub use knowledge::{QUOTE_CLOSE as KB_QUOTE_CLOSE, QUOTE_OPEN as KB_QUOTE_OPEN};
pub use tools::TOOL_TIMEOUT;

use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use hearth_proto::worker::{GatewayToWorker, WorkerToGateway};
use tokio::net::UnixStream;

use crate::link::{Link, LinkError};

/// Environment variable naming the inherited, connected socket fd — always 3. At level
/// "process" it is one end of a socket pair; at the account levels the process that became this
/// worker connected it to the gateway's listening socket before the sandbox closed in, so the
/// worker itself never opens a socket (the sandbox refuses it).
pub const ENV_FD: &str = "HEARTH_WORKER_FD";
/// The member id the worker was started for; sent as a claim the gateway does not trust.
pub const ENV_MEMBER_ID: &str = "HEARTH_MEMBER_ID";
/// Environment variable naming the member directory the worker owns.
pub const ENV_MEMBER_DIR: &str = "HEARTH_MEMBER_DIR";

/// Entry point for `hearth worker`: reads `HEARTH_WORKER_FD` (an inherited, already-connected
/// Unix stream socket fd) and `HEARTH_MEMBER_DIR`, logs to stderr (`RUST_LOG`, default
/// `info`; message text is never logged at info), builds a current-thread runtime and runs
/// [`serve`]. Its stderr is a pipe the spawner reads into its own log.
pub fn run_from_env() -> anyhow::Result<()> {
    init_logging();
    let (fd, member_dir) = config_from(std::env::var_os(ENV_FD), std::env::var_os(ENV_MEMBER_DIR))?;
    let socket = socket_from_fd(fd)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("start the worker's async runtime")?;
    // An error is returned, not logged: `hearth worker` prints it to stderr and exits non-zero.
    runtime.block_on(async move {
        let stream = UnixStream::from_std(socket).context("register the gateway socket")?;
        serve(stream, member_dir).await
    })
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Ignore the error: a test harness or embedding CLI may have installed a subscriber already.
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(false).try_init();
}

/// Validates the two environment values. Split out from [`run_from_env`] so it can be tested
/// without touching the process environment.
fn config_from(
    fd: Option<std::ffi::OsString>,
    member_dir: Option<std::ffi::OsString>,
) -> anyhow::Result<(RawFd, PathBuf)> {
    let hint = "`hearth worker` is started by the Hearth gateway, not by hand";
    let fd = fd.with_context(|| format!("{ENV_FD} is not set; {hint}"))?;
    let fd = fd.to_str().unwrap_or("").trim().to_owned();
    let fd: RawFd = fd
        .parse()
        .ok()
        .filter(|&n: &RawFd| n > 2)
        .with_context(|| format!("{ENV_FD}={fd:?} is not an inherited socket fd number (3 or more)"))?;
    let dir = member_dir.with_context(|| format!("{ENV_MEMBER_DIR} is not set; {hint}"))?;
    let dir = PathBuf::from(dir);
    if !dir.is_absolute() {
        bail!("{ENV_MEMBER_DIR}={} is not an absolute path", dir.display());
    }
    check_member_dir(&dir)?;
    Ok((fd, dir))
}

fn check_member_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let meta =
        std::fs::metadata(dir).with_context(|| format!("member directory {} is not accessible", dir.display()))?;
    if !meta.is_dir() {
        bail!("member directory {} is not a directory", dir.display());
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        // The supervisor owns the directory's mode; say so rather than silently changing it.
        tracing::warn!(dir = %dir.display(), mode = format!("{mode:o}"), "member directory is readable by others");
    }
    Ok(())
}

/// Takes ownership of the inherited socket after checking it really is an open socket, and
/// marks it close-on-exec so nothing the worker may later start (tools) inherits the link.
fn socket_from_fd(fd: RawFd) -> anyhow::Result<std::os::unix::net::UnixStream> {
    // SAFETY: fstat only writes into the zeroed struct we pass; an invalid fd yields an error.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(fd, &mut st) } != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("{ENV_FD}={fd} is not an open file descriptor"));
    }
    if st.st_mode & libc::S_IFMT != libc::S_IFSOCK {
        bail!("{ENV_FD}={fd} is not a socket");
    }
    // SAFETY: the fd is open (fstat succeeded), was inherited for this purpose, and nothing
    // else in this process refers to it, so taking sole ownership is sound.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: plain fcntl calls on an fd we own.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) } < 0 {
        return Err(std::io::Error::last_os_error()).context("mark the gateway socket close-on-exec");
    }
    let socket = std::os::unix::net::UnixStream::from(owned);
    socket.set_nonblocking(true).context("make the gateway socket non-blocking")?;
    Ok(socket)
}

/// The worker's life: send `Hello`, expect `Welcome` with the same protocol version, then
/// handle `Turn` frames one at a time until `Shutdown` or end of stream (both `Ok`). Any other
/// frame out of place, an undecodable frame or a version mismatch is an error: the process
/// exits non-zero and the gateway starts a fresh worker.
pub async fn serve(stream: UnixStream, member_dir: PathBuf) -> anyhow::Result<()> {
    let (link, member_id) = match Link::handshake(stream).await {
        Ok(ok) => ok,
        Err(LinkError::Closed) => {
            bail!("gateway closed the connection before welcoming the worker")
        }
        Err(e) => return Err(e).context("handshake with the gateway"),
    };
    use tracing::Instrument;
    turns(link, member_dir).instrument(tracing::info_span!("worker", member = %member_id)).await
}

/// Handles turns until shutdown or end of stream; see [`serve`].
async fn turns(mut link: Link, member_dir: PathBuf) -> anyhow::Result<()> {
    tracing::info!(dir = %member_dir.display(), "worker ready");
    let mut store = agent::Store::new(member_dir);
    // Chunks of the next turn's attachments, which come right before its `Turn` frame.
    let mut inbound = attachments::Collector::default();
    loop {
        let frame = match link.recv().await {
            Ok(f) => f,
            Err(LinkError::Closed) => {
                tracing::info!("gateway closed the connection; exiting");
                return Ok(());
            }
            Err(e) => return Err(e).context("read from the gateway"),
        };
        let turn = match frame {
            GatewayToWorker::AttachmentChunk { turn_id, inbox_id, offset, data } => {
                inbound.chunk(turn_id, inbox_id, offset, &data);
                continue;
            }
            GatewayToWorker::Turn(turn) => turn,
            GatewayToWorker::Shutdown => {
                tracing::info!("shutdown requested; exiting");
                return Ok(());
            }
            other => bail!("unexpected frame from the gateway between turns: {}", link::name(&other)),
        };
        tracing::info!(
            turn_id = turn.turn_id,
            kind = ?turn.kind,
            messages = turn.messages.len(),
            "turn started"
        );
        let received = inbound.take(turn.turn_id);
        let outcome = match agent::run_turn(&mut link, &mut store, &turn, received).await {
            Ok(o) => o,
            Err(LinkError::Closed) => {
                // The gateway went away mid-turn; it will replay the turn to a new worker, which
                // finds the messages already stored and does not store them twice.
                tracing::info!(turn_id = turn.turn_id, "gateway closed the connection mid-turn; exiting");
                return Ok(());
            }
            Err(e) => return Err(e).with_context(|| format!("turn {}", turn.turn_id)),
        };
        match &outcome {
            hearth_proto::worker::TurnOutcome::Reply { text } => {
                tracing::info!(turn_id = turn.turn_id, reply_bytes = text.len(), "turn done")
            }
            hearth_proto::worker::TurnOutcome::Failed { detail, .. } => {
                tracing::warn!(turn_id = turn.turn_id, detail, "turn failed")
            }
            hearth_proto::worker::TurnOutcome::Nothing => {
                tracing::info!(turn_id = turn.turn_id, "turn done, nothing to send")
            }
        }
        let reminders = store.take_schedule();
        match link.send(&WorkerToGateway::TurnDone { turn_id: turn.turn_id, outcome, reminders }).await {
            Ok(()) => {}
            Err(LinkError::Closed) => return Ok(()),
            Err(e) => return Err(e).context("send the turn's outcome"),
        }
        if link.shutdown_requested {
            tracing::info!("shutdown requested during the turn; exiting");
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_errors_are_clear() {
        let dir = tempfile::tempdir().unwrap();
        let d = || Some(dir.path().as_os_str().to_owned());
        let err = |fd: Option<&str>, md| format!("{:#}", config_from(fd.map(Into::into), md).unwrap_err());

        assert!(err(None, d()).contains("HEARTH_WORKER_FD is not set"));
        assert!(err(Some("abc"), d()).contains("not an inherited socket fd"));
        assert!(err(Some("1"), d()).contains("not an inherited socket fd"));
        assert!(err(Some("5"), None).contains("HEARTH_MEMBER_DIR is not set"));
        assert!(err(Some("5"), Some("relative/dir".into())).contains("not an absolute path"));
        assert!(err(Some("5"), Some("/nonexistent/hearth".into())).contains("not accessible"));
        assert_eq!(config_from(Some(" 7 ".into()), d()).unwrap(), (7, dir.path().to_owned()));
    }

    #[test]
    fn fd_must_be_an_open_socket() {
        let file = tempfile::tempfile().unwrap();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&file);
        let e = format!("{:#}", socket_from_fd(fd).unwrap_err());
        assert!(e.contains("is not a socket"), "{e}");
        let e = format!("{:#}", socket_from_fd(1_000_000).unwrap_err());
        assert!(e.contains("not an open file descriptor"), "{e}");
    }
}
