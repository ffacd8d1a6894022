//! Test support, never a dependency of anything that ships: every crate lists it under
//! `[dev-dependencies]` only (`tests/it/deps.rs` fails when one does otherwise). What ships on
//! purpose — the simulated Telegram and model the demo household runs on — is `hearth-sim`; this
//! crate re-exports it under the paths the tests have always used and adds what only a test
//! wants.
//!
//! - [`telegram`], [`llm`]: `hearth-sim`'s simulated Telegram Bot API and LLM provider, with their
//!   fault injection (429, 409, 5xx, hangs, truncated streams, latency) and request records —
//!   media included (voice notes, photos, albums, documents, `getFile` and downloads; speech
//!   endpoints and image parts).
//! - [`media`]: real (tiny) PNGs and Ogg Opus voice notes to send through them.
//! - [`local`]: a fake model server on this machine (Ollama's and LM Studio's model lists), for
//!   finding local providers.
//! - [`packages`]: the machine-wide state the package tests install into, claimed first.
//! - [`examples`]: the example commands a `--help` text shows, as argument lists.
//! - `bin/hearth-probe`: a stand-in worker that tries what a hostile one would — the sandbox
//!   suite (`tests/it/isolation.rs`, `supervisor.rs`) and, as `hearth-probe abuse`, a worker that
//!   asks a real gateway for more than a turn may have (`tests/it/abuse.rs`).

pub use hearth_sim::{llm, media, telegram};

pub mod examples;
pub mod local;
pub mod packages;
