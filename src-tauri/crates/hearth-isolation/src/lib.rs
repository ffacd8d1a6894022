//! Separating members from each other at the OS level.
//!
//! - [`accounts`]: one OS account (and primary group of its own) per member — created, verified
//!   at every start, removed. Needs root.
//! - [`dirs`]: a member's private directory (0700, owned by the member's account, no ACLs),
//!   archiving it on removal, and whether members can reach their directories at all.
//! - [`fsat`]: file work relative to an open directory (`openat` with `O_NOFOLLOW`, `mkdirat`,
//!   `O_EXCL` files, rename without replacing), for root in folders other uids can write.
//! - [`owner`]: a short-lived reader process running as a folder's owner, so root copies a
//!   member's (or the gateway's) folder with that owner's rights, not its own.
//! - [`spawn`]: starting a member's worker: cleared environment, umask 077, own process group,
//!   no inherited descriptors but its socket, and — with an account — the member's uid/gid, no
//!   supplementary groups and resource limits.
//! - [`sandbox`]: the kernel sandbox applied on top (Linux: Landlock, no_new_privs, seccomp;
//!   macOS: Seatbelt), and what the kernel offers for `hearth doctor`.
//! - [`seatbelt`]: the macOS Seatbelt profile for a worker — a pure generator, tested on every
//!   platform — and running it through `/usr/bin/sandbox-exec`.
//! - [`supervisor`]: `hearth supervisor`, the root daemon that does all of the above for a
//!   gateway that does not run as root (admitting only the admin's uid), and its client.
//! - [`admin`]: whom the supervisor serves — a uid named at start, or the first member of the
//!   admin group to connect, remembered (the macOS LaunchDaemon, whose plist names no one).
//! - [`macos_daemon`]: registering that daemon as a LaunchDaemon with SMAppService (macOS).
//!
//! The level actually in force for a worker is reported as an [`IsolationLevel`]: "process"
//! (no account), "account", or "account + sandbox".

pub mod accounts;
pub mod admin;
pub mod dirs;
pub mod fsat;
pub mod macos_daemon;
pub mod owner;
pub mod sandbox;
pub mod seatbelt;
pub mod spawn;
pub mod supervisor;

pub use accounts::Account;
pub use hearth_proto::control::IsolationLevel;
pub use sandbox::{SandboxError, SandboxPlan};
pub use spawn::{SpawnedWorker, WorkerCommand, WorkerLink, spawn_worker};
pub use supervisor::SupervisorClient;

#[derive(Debug, thiserror::Error)]
pub enum IsolationError {
    #[error("could not prepare {path}: {source}")]
    Dir { path: std::path::PathBuf, source: std::io::Error },
    #[error("could not create the worker socket: {0}")]
    Socket(std::io::Error),
    #[error("could not start the worker {exe}: {source}")]
    Spawn { exe: std::path::PathBuf, source: std::io::Error },
    #[error("member id {0:?} is not a safe directory or account name")]
    BadMemberId(String),
    /// Creating, reading or removing an account failed (the tool's own message is kept).
    #[error("OS account {name}: {message}")]
    Account { name: String, message: String },
    /// An account exists under the member's name but is not one Hearth would have created;
    /// it is never used as it is.
    #[error(
        "OS account {name} exists but is not safe to use: {problem}. Remove it (`userdel {name}` on Linux) and start again"
    )]
    AccountMismatch { name: String, problem: String },
    #[error("{0} needs root: run the gateway as root, or use isolation level \"process\" for development")]
    NeedsRoot(&'static str),
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
}

#[cfg(test)]
mod shape {
    use std::path::{Path, PathBuf};

    /// The code of a file: its lines before `mod tests` (unit tests may sit beside the code).
    fn code_lines(text: &str) -> usize {
        text.lines().take_while(|l| l.trim_start() != "mod tests {").count()
    }

    fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                sources(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    /// No file's code is over 800 lines: past that a file mixes concerns, as `supervisor.rs`
    /// once did (daemon, client, checks and process killing in one); split it by concern.
    #[test]
    fn no_source_file_has_over_800_lines_of_code() {
        let mut files = Vec::new();
        sources(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut files);
        assert!(files.len() > 10, "found only {files:?}");
        let wrong: Vec<String> = files
            .iter()
            .map(|p| (p, code_lines(&std::fs::read_to_string(p).unwrap())))
            .filter(|(_, n)| *n > 800)
            .map(|(p, n)| format!("{}: {n} lines before its tests; split it", p.display()))
            .collect();
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    #[test]
    fn code_lines_stop_at_the_tests() {
        assert_eq!(code_lines("fn a() {}\n\n#[cfg(test)]\nmod tests {\n    fn b() {}\n}\n"), 3);
        assert_eq!(code_lines("fn a() {}\n"), 1);
    }
}
