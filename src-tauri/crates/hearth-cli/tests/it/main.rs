//! End-to-end tests: the real gateway, real worker processes (`hearth worker`), and the testkit
//! fakes of Telegram and the LLM on loopback. One test binary, modules by topic.

mod alerts;
mod backup;
mod bench;
mod cache;
mod cli;
mod context;
mod examples;
mod fanout;
mod faults;
mod flow;
// Linux only: POSIX ACL xattrs, setresuid, and root (CI runs as root).
#[cfg(target_os = "linux")]
mod hardening;
mod household;
mod isolation;
mod knowledge;
mod media;
mod members;
mod memory;
mod package;
mod panics;
mod phone;
mod quota;
mod reliability;
mod reminders;
mod roles;
// Acts as other users from threads with their own credentials, which only Linux has.
#[cfg(target_os = "linux")]
mod rootfiles;
mod speech;
mod spend;
mod streaming;
mod supervisor;
mod support;
// Pseudo-terminals, /proc and root: Linux only.
#[cfg(target_os = "linux")]
mod tty;
mod voice;
