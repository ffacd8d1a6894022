//! `hearth supervisor`: the root daemon an unprivileged gateway asks to create member accounts
//! and start workers as them — the only part of Hearth that needs root when the gateway does not
//! run as root (macOS, or a Linux install that keeps the gateway unprivileged).
//!
//! The daemon ([`serve`]) listens on a socket in a root-owned directory. Anyone may connect (the
//! socket is 0666) but a connection is served only if the kernel says its peer runs as the
//! admin's uid — the gateway's user, named at start or learnt once ([`crate::admin`]); every
//! other connection is closed unread. What it will do
//! for the admin is deliberately narrow, so a compromised gateway gains no more than it already
//! has (the members' accounts), never root:
//!
//! - it runs workers only as `hearth-*` accounts it creates or verifies itself (never root,
//!   never a uid it is given);
//! - only inside `<data_dir>/members/<id>`, where `data_dir` belongs to the admin and nobody
//!   else can write to it; everything below `data_dir` is reached through descriptors
//!   ([`crate::dirs::prepare_member_dir_at`]), so swapping a directory for a link redirects
//!   nothing;
//! - only a binary that nobody but root and the admin can change (the file and every directory
//!   above it; with `--admin-group`, members of that group too, so a drag-installed
//!   `/Applications/Hearth.app` qualifies) — never one a member's account could replace;
//! - it signals only the workers it started (tracked and reaped here), and on removal whatever
//!   still runs as the removed member's account;
//! - it backs the household up only from the admin's data directory into a folder of the
//!   admin's, both opened and checked once and used only through those descriptors, with the
//!   code the binary serving it supplies ([`BackupFn`]: each folder read with its owner's
//!   rights, never root's), and never reads or writes a secret doing so;
//! - it measures a member's folder for the gateway's disk quota ([`crate::dirs::usage_at`]: a walk
//!   through descriptors that reads no file).
//!
//! The binary's arguments are the admin's to choose, so the admin can run anything root has
//! installed as a member's account: the gateway is trusted with members' accounts (it already
//! holds their conversations' keys). What the supervisor guards is root.
//!
//! A worker is connected to the gateway's worker socket by its own process, as the member,
//! between fork and exec ([`crate::spawn::WorkerLink::Connect`]), so no descriptor crosses the supervisor
//! socket, and nothing secret does either. Like the gateway's own, the workers it starts lead
//! sessions of their own with no controlling terminal — not the terminal `hearth supervisor`
//! may have been started from — and their stderr comes back through a pipe into this daemon's
//! log, tagged and cleaned ([`crate::spawn`]).
//!
//! [`SupervisorClient`] is the gateway's side: one connection, one request at a time.
//!
//! Shaped by who runs what: `server.rs` is the daemon (accept, admit, serve; the workers it
//! started, tracked and reaped), `checks.rs` the refusals it makes before touching anything (a
//! member id, the worker binary, the data directory, a backup folder), `removal.rs` the end of a
//! member's account (every process of it killed, the account deleted), and `client.rs` the
//! gateway's side. This file holds what both sides share: where the socket is, the backup hook,
//! and the error constructors.

mod checks;
mod client;
mod removal;
mod server;

use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hearth_proto::control::BackupSummary;
use hearth_proto::supervisor::{SupervisorError, SupervisorErrorCode};

pub use client::{ClientError, Removal, SupervisorClient};
pub use server::{serve, serve_with};

/// Where `hearth supervisor` listens on Linux unless told otherwise (`/run/hearth` is made 0755).
pub const DEFAULT_SOCKET_LINUX: &str = "/run/hearth/supervisor.sock";
/// Where it listens on macOS (`/var/run` is root's, 0755); the LaunchDaemon plist says the same.
pub const DEFAULT_SOCKET_MACOS: &str = "/var/run/hearth-supervisor.sock";
/// Where `hearth supervisor` listens, and an unprivileged gateway looks, unless told otherwise.
pub const DEFAULT_SOCKET: &str = if cfg!(target_os = "macos") { DEFAULT_SOCKET_MACOS } else { DEFAULT_SOCKET_LINUX };

/// How long a worker has to exit after SIGTERM before it is killed.
pub const STOP_GRACE: Duration = Duration::from_secs(3);

/// Makes a backup as root into folders the supervisor opened and checked: a new backup folder
/// in the destination, with only the newest `keep` kept there. The binary that serves the
/// supervisor supplies it (`hearth` runs the code of `hearth backup create`, reading each folder
/// with its owner's rights): the household's files are not this crate's business. Blocking;
/// called off the runtime.
pub type BackupFn = Arc<dyn Fn(&BackupJob<'_>) -> Result<BackupSummary, String> + Send + Sync>;

/// One backup for the admin: both folders opened by the supervisor — the data directory (the
/// admin's, nobody else can write to it) and the destination (likewise) — with their paths
/// only for naming things. All work happens relative to these descriptors.
pub struct BackupJob<'a> {
    pub data: &'a OwnedFd,
    pub data_path: &'a Path,
    pub dest: &'a OwnedFd,
    pub dest_path: &'a Path,
    pub keep: usize,
}

fn err(code: SupervisorErrorCode, message: impl Into<String>) -> SupervisorError {
    SupervisorError::new(code, message)
}

fn refused(message: impl Into<String>) -> SupervisorError {
    err(SupervisorErrorCode::Refused, message)
}

fn invalid(message: impl Into<String>) -> SupervisorError {
    err(SupervisorErrorCode::InvalidInput, message)
}

fn failed(e: impl std::fmt::Display) -> SupervisorError {
    err(SupervisorErrorCode::Failed, e.to_string())
}

/// The uid of a user name from the account database, for `--admin-user`.
pub fn user_uid(name: &str) -> Option<u32> {
    nix::unistd::User::from_name(name).ok().flatten().map(|u| u.uid.as_raw())
}

/// The gid of a group name, or a number taken as a gid, for `--admin-group`.
pub fn group_gid(name: &str) -> Option<u32> {
    match name.trim().parse::<u32>() {
        Ok(gid) => Some(gid),
        Err(_) => nix::unistd::Group::from_name(name).ok().flatten().map(|g| g.gid.as_raw()),
    }
}
