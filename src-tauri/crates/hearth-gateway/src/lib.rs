//! The Hearth gateway: the one process every household message passes through. It holds the
//! bot tokens and provider keys, and no member's conversation history.
//!
//! The modules follow a message's path, and each imports only those below it (the table in
//! `tests/it/layers.rs` holds the rule):
//!
//! - [`gateway`]: the handle the GUI, the CLI and tests use — start (wiring), shutdown, subscribe,
//!   control; [`config`]: what it is told at start; `isolation`: how strongly members are
//!   separated, decided at start; [`keeper`]: long-lived tasks restarted after a panic.
//! - [`control`]: the admin API, in-process and over the owner-only control socket — one file
//!   per area (members, their assistants, spend, providers, `hearth doctor`, status, socket).
//! - `core`: the core loop over a closed set of events and the state only it writes (roster,
//!   lanes, bots); one row, one turn, spend notices, reminder delivery.
//! - [`workers`]: member worker processes (spawned through `hearth-isolation`), their
//!   connections, and what a running turn may ask for.
//! - [`routing`]: pure decisions — who wrote and what happens to it, pairing codes, role presets
//!   and quiet hours.
//! - [`broker`]: LLM calls with keys; reserve → call → settle in the ledger, caps enforced there,
//!   atomically; [`broker::spend`]: the rate card, household-zone periods, the budget, and what
//!   people read about spend.
//! - [`household`]: household knowledge (`kb/`), the reminder timer, members' disk quota, and
//!   backups of the whole household (create, verify, restore, schedule), exports of one member,
//!   and the tree copy both use.
//! - [`telegram`]: one long-poll connector per member's bot; sending replies, rendered by
//!   [`telegram::reply`] from a model's Markdown into Telegram HTML that cannot fail to parse.
//! - [`store`]: `gateway.sqlite`, its migrations, one file per table group.
//! - Leaves, importing nothing above them: [`paths`] (the data directory layout), [`data_dir`]
//!   (the checks it passes before anything is kept in it, and atomic private writes),
//!   [`secrets`] (bot tokens and provider keys), [`logs`] (the daily log files `hearth logs`
//!   reads), [`clock`] (the "now" reminders and turns use), `lock` (one gateway per data
//!   directory).

pub mod broker;
pub mod clock;
pub mod config;
pub mod control;
mod core;
pub mod data_dir;
pub mod gateway;
pub mod household;
mod isolation;
pub mod keeper;
mod lock;
pub mod logs;
pub mod paths;
pub mod routing;
pub mod secrets;
pub mod store;
pub mod telegram;
pub mod workers;

pub use broker::spend;
pub use config::{GatewayConfig, IsolationChoice};
pub use gateway::Gateway;
pub use household::{backup, export, kb, quota, tree};
pub use lock::AlreadyServing;
