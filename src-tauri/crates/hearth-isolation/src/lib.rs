//! Separating members from each other at the OS level.
//!
//! - [`dirs`]: creating a member's private directory (0700) and archiving it on removal.
//! - [`spawn`]: starting a member's worker process with a connected socket, a cleared
//!   environment, umask 077, its own process group and no inherited descriptors but the socket.
//!
//! Today workers run as the gateway's own OS user ([`IsolationLevel::Process`]); per-member OS
//! accounts and the kernel sandbox plug in behind the same [`spawn::spawn_worker`] call.

pub mod dirs;
pub mod spawn;

pub use hearth_proto::control::IsolationLevel;
pub use spawn::{SpawnedWorker, WorkerCommand, spawn_worker};

#[derive(Debug, thiserror::Error)]
pub enum IsolationError {
    #[error("could not prepare {path}: {source}")]
    Dir { path: std::path::PathBuf, source: std::io::Error },
    #[error("could not create the worker socket: {0}")]
    Socket(std::io::Error),
    #[error("could not start the worker {exe}: {source}")]
    Spawn { exe: std::path::PathBuf, source: std::io::Error },
    #[error("member id {0:?} is not a safe directory name")]
    BadMemberId(String),
}
