//! Deciding what a message is, before anything is done about it — pure functions and tables,
//! unit-tested, with no I/O and nothing of the gateway above them. The core loop
//! (`core/inbox.rs`) acts on what they decide.
//!
//! - [`router`]: who wrote and what happens to it (member, pairing, stranger, a command).
//! - [`pairing`]: one-time pairing codes and deep links.
//! - [`roles`]: role presets (default caps, a child's quiet hours) and the quiet-hours check.
//! - [`pause`]: when a timed pause ends (`1h`, `tonight`, `until HH:MM`), for the bot and the CLI.

pub mod pairing;
pub mod pause;
pub mod roles;
pub mod router;
