//! Fakes of every external service Hearth talks to, for tests, benchmarks and the demo — never
//! for a real install. Each fake listens on 127.0.0.1 port 0 and returns a handle that records
//! what it saw and lets the caller act on it.
//!
//! - [`telegram`]: a fake Telegram Bot API serving many bot tokens at once, with real long-poll
//!   semantics, an API to act as a Telegram user, and fault injection.
//! - [`llm`]: a fake LLM speaking OpenAI chat completions and Anthropic Messages, streaming and
//!   not, with scripted replies, latency and faults.
//! - [`local`]: a fake model server on this machine (Ollama's and LM Studio's model lists), for
//!   finding local providers.
//! - [`demo`]: the demo household — who lives there, what they ask, a canned model that answers,
//!   and the simulation of people writing to their bots. Used by `hearth demo` and the app's
//!   "Try the demo household".

pub mod demo;
pub mod llm;
pub mod local;
pub mod telegram;
