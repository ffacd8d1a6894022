//! Gateway ↔ `hearth supervisor`: what an unprivileged gateway asks the root daemon that creates
//! member accounts and starts workers as them.
//!
//! Frames are the usual length-prefixed JSON ([`crate::frame`]). The gateway speaks first with
//! [`SupervisorRequest::Hello`]; the supervisor answers with its own version and what the kernel
//! offers for the sandbox, and refuses anything but `Hello` before that. Every request is then
//! answered by `Result<SupervisorReply, SupervisorError>`.
//!
//! Nothing secret crosses this socket: a request names a member, directories, the worker binary
//! and its arguments. The worker itself connects to the gateway's worker socket (the supervisor
//! passes only that socket's path), so no descriptor crosses either.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::control::{BackupSummary, IsolationLevel};

/// Version of the supervisor protocol, sent in `Hello` both ways. A gateway and a supervisor of
/// different versions do not talk: the admin upgrades both together.
pub const SUPERVISOR_PROTOCOL_VERSION: u32 = 3;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum SupervisorRequest {
    /// First frame on every connection.
    Hello { version: u32 },
    /// Start a member's worker as the member's own OS account (created if missing).
    Spawn(SpawnRequest),
    /// Stop a member's worker: SIGTERM to its process group, SIGKILL after a grace period. The
    /// reply comes when the process is gone. With `pid`, only that worker is stopped — a newer
    /// one started meanwhile for the same member is left alone.
    Stop {
        member_id: String,
        #[serde(default)]
        pid: Option<u32>,
    },
    /// Remove a member: stop their worker and anything else running as their account, move
    /// `members/<id>` to `archive/<id>-<archive_stamp>` owned by the gateway's user, then delete
    /// the account.
    Remove { member_id: String, data_dir: PathBuf, archive_stamp: String },
    /// The accounts and workers this supervisor knows.
    Status,
    /// Back the household up into a new folder in `dest_dir` (which must be the admin's), as
    /// `sudo hearth backup create` would — each member's folder read with that member's own
    /// rights, which the gateway's user lacks — then keep only the newest `keep` backups there.
    /// Never with secrets: none cross this socket, and the supervisor does not read them.
    Backup { data_dir: PathBuf, dest_dir: PathBuf, keep: u32 },
    /// How much disk a member's folder (`members/<member_id>` in the admin's `data_dir`) takes,
    /// for the gateway's disk quota: root walks it through descriptors and reads no file.
    Usage { data_dir: PathBuf, member_id: String },
}

/// What to start, and where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpawnRequest {
    pub member_id: String,
    /// The gateway's data directory: it must belong to the gateway's user and not be writable by
    /// anyone else. The worker's directory is `members/<member_id>` inside it.
    pub data_dir: PathBuf,
    /// The worker binary (`hearth`): only a file that nobody but root can change is run.
    pub exe: PathBuf,
    /// Its arguments, typically `["worker"]`.
    pub args: Vec<String>,
    /// Confine the worker with the kernel sandbox (refused when the kernel cannot).
    pub sandbox: bool,
    /// The gateway's listening socket. The worker's process connects to it as the member before
    /// exec, and the worker finds the connection on fd 3 (`HEARTH_WORKER_FD`), never this path.
    pub gateway_socket: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum SupervisorReply {
    Hello {
        version: u32,
        /// Whether a worker can be started in the kernel sandbox here.
        sandbox: bool,
        /// What the kernel offers, in words (for `hearth doctor` and warnings).
        sandbox_detail: String,
    },
    Spawned(Spawned),
    /// `was_running`: a worker of that member (and pid, if given) was running and is now gone.
    Stopped {
        was_running: bool,
    },
    Removed {
        /// Where the member's directory went, if they had one.
        archived_to: Option<PathBuf>,
        /// Whether an account existed and was deleted.
        account_removed: bool,
    },
    Status(SupervisorStatus),
    BackedUp(BackupSummary),
    /// A member folder's size on disk (allocated blocks, each file counted once) and its
    /// number of entries.
    Usage {
        bytes: u64,
        files: u64,
    },
}

/// A worker just started. The gateway binds the connection whose kernel-reported uid and pid
/// are these, and no other, to the member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spawned {
    pub pid: u32,
    pub uid: u32,
    pub gid: u32,
    /// The isolation actually in force for this worker.
    pub level: IsolationLevel,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SupervisorStatus {
    pub version: u32,
    /// The one uid this supervisor admits.
    pub admin_uid: u32,
    pub sandbox: bool,
    /// Member accounts created or verified since the supervisor started.
    pub accounts: Vec<SupervisedAccount>,
    /// Workers it started that are still running.
    pub workers: Vec<SupervisedWorker>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SupervisedAccount {
    pub member_id: String,
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SupervisedWorker {
    pub member_id: String,
    pub pid: u32,
    pub uid: u32,
    pub level: IsolationLevel,
    pub running_secs: u64,
}

/// The one error shape: `message` is a sentence a person can act on; `code` is what a caller
/// branches on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct SupervisorError {
    pub code: SupervisorErrorCode,
    pub message: String,
}

impl SupervisorError {
    pub fn new(code: SupervisorErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SupervisorErrorCode {
    /// The two sides speak different protocol versions.
    VersionMismatch,
    /// The request is malformed (an unsafe member id, a relative path, no `Hello` first).
    InvalidInput,
    /// The request is well-formed but unsafe to carry out (a binary others can change, a data
    /// directory of another user, the sandbox where the kernel has none).
    Refused,
    /// Creating the account, preparing the directory or starting the process failed.
    Failed,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_replies_read_as_documented() {
        let spawn = SupervisorRequest::Spawn(SpawnRequest {
            member_id: "ana-7k2p".into(),
            data_dir: "/home/admin/.local/share/hearth".into(),
            exe: "/usr/bin/hearth".into(),
            args: vec!["worker".into()],
            sandbox: true,
            gateway_socket: "/home/admin/.local/share/hearth/workers/gateway.sock".into(),
        });
        let json = serde_json::to_value(&spawn).unwrap();
        assert_eq!(json["type"], "spawn");
        assert_eq!(json["member_id"], "ana-7k2p");
        assert_eq!(serde_json::from_value::<SupervisorRequest>(json).unwrap(), spawn);

        // `pid` may be left out of a stop.
        let stop: SupervisorRequest = serde_json::from_str(r#"{"type":"stop","member_id":"ana"}"#).unwrap();
        assert_eq!(stop, SupervisorRequest::Stop { member_id: "ana".into(), pid: None });

        let reply: Result<SupervisorReply, SupervisorError> =
            Ok(SupervisorReply::Spawned(Spawned { pid: 7, uid: 999, gid: 999, level: IsolationLevel::AccountSandbox }));
        let json = serde_json::to_string(&reply).unwrap();
        assert_eq!(json, r#"{"Ok":{"type":"spawned","pid":7,"uid":999,"gid":999,"level":"account_sandbox"}}"#);

        let err: Result<SupervisorReply, SupervisorError> =
            Err(SupervisorError::new(SupervisorErrorCode::Refused, "no"));
        assert_eq!(serde_json::to_string(&err).unwrap(), r#"{"Err":{"code":"refused","message":"no"}}"#);
    }

    proptest::proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            let _ = crate::frame::decode::<SupervisorRequest>(&bytes);
            let _ = crate::frame::decode::<Result<SupervisorReply, SupervisorError>>(&bytes);
        }
    }
}
