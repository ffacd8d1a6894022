//! The simulated outside world Hearth talks to — a Telegram Bot API and an LLM provider on
//! 127.0.0.1 — and the demo household that lives in it. **Shipped on purpose**: `hearth demo` and
//! the app's "Try the demo household" run the real gateway and real worker processes against
//! these servers, so a newcomer sees Hearth work before pasting a token or a key. Nothing here
//! ever talks to a real service, and nothing of a real install runs on it.
//!
//! The same servers are what every test runs against (`hearth-testkit`, a dev-only crate,
//! re-exports them and adds what only tests need). That is deliberate: one simulation, checked
//! against teloxide and plain HTTP in `tests/it/`, rather than a demo copy and a test copy that
//! drift apart. It is also why the servers can misbehave (a 429 with `retry_after`, a 409 from a
//! second poller, 5xx, hangs, truncated streams, latency): that is how the real services behave on
//! a bad day, the demo's model uses latency to feel like one, and the gateway's reliability tests
//! use the rest.
//!
//! - [`telegram`]: a simulated Telegram Bot API serving many bot tokens at once, with real
//!   long-poll semantics, an API to act as a Telegram user, and the errors Telegram sends.
//! - [`llm`]: a simulated LLM provider speaking OpenAI chat completions and Anthropic Messages,
//!   streaming and not, with scripted replies, latency and failures.
//! - [`media`]: real (tiny) PNGs and Ogg Opus voice notes, made in memory, for users to send and
//!   the simulated speech service to answer with.
//! - [`demo`]: the demo household — who lives there, what they ask, a canned model that answers,
//!   and the simulation of people writing to their bots. Shared by `hearth demo` and the app.

pub mod demo;
pub mod llm;
pub mod media;
mod multipart;
pub mod telegram;
