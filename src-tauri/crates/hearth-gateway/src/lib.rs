//! The Hearth gateway: the one process every household message passes through. It holds the
//! bot tokens and provider keys, and no member's conversation history.
//!
//! - [`gateway`]: start/stop, the core event loop, turns; [`Gateway`] is the handle the GUI,
//!   the CLI and tests all use.
//! - [`telegram`]: one long-poll connector per member's bot; sending replies, rendered by
//!   [`telegram::reply`] from a model's Markdown into Telegram HTML that cannot fail to parse.
//! - [`router`]: who wrote and what happens to it (member, pairing, stranger).
//! - [`pairing`]: one-time pairing codes and deep links.
//! - [`lanes`]: per-member FIFO queues and the fair, capped turn scheduler.
//! - [`workers`]: member worker processes (spawned through `hearth-isolation`) and their sockets.
//! - [`kb`]: household knowledge — `kb/`, its FTS5 index (`kb.sqlite`), kept current with
//!   `notify`; searched by workers through the gateway.
//! - [`broker`]: LLM calls with keys; reserve → call → settle in the ledger; caps enforced
//!   there, atomically.
//! - [`spend`]: the rate card, household-zone periods, and the budget that holds the caps.
//! - [`spend_text`]: what members and the admin read about spend.
//! - [`store`]: `gateway.sqlite` and its migrations.
//! - [`secrets`]: bot tokens and provider keys (0600 file).
//! - [`logs`]: the daily log files in `<data dir>/logs/` that `hearth logs` reads.
//! - [`control`]: the admin API, in-process and over the owner-only control socket
//!   (spend settings in `control_spend`, the `hearth doctor` audit in `control_doctor`, member
//!   settings, pause, token replacement and export in `control_member`, testing and finding
//!   providers in `control_provider`).
//! - [`export`]: a consistent copy of one member's directory, for `MemberExport`.
//! - [`reminders`]: the one timer that fires members' reminders (committed first, delivered by
//!   the member's worker as a turn without a model call); [`clock`]: the "now" it uses.
//! - [`roles`]: role presets (default caps, a child's quiet hours) and the quiet-hours check.
//! - [`backup`]: backups of the whole household (create, verify, restore) and their schedule.
//! - [`paths`]: the data directory layout; [`data_dir`]: the checks it passes before anything is
//!   kept in it (owner, who may write, ACLs, links — up to `/`), and atomic private writes.
//! - [`quota`]: each member's disk quota, measured and enforced.
//! - [`tree`]: copying a folder with its owner's rights, written through descriptors.
//! - [`turn_rules`]: what a running turn may ask of the gateway.

pub mod backup;
pub mod broker;
pub mod clock;
pub mod control;
mod control_doctor;
mod control_member;
mod control_provider;
mod control_spend;
pub mod data_dir;
pub mod export;
pub mod gateway;
pub mod kb;
pub mod lanes;
pub mod logs;
pub mod pairing;
pub mod paths;
pub mod quota;
pub mod reminders;
pub mod roles;
pub mod router;
pub mod secrets;
pub mod spend;
pub mod spend_text;
pub mod store;
pub mod telegram;
pub mod tree;
pub mod turn_rules;
pub mod workers;

pub use gateway::{AlreadyServing, Gateway, GatewayConfig, IsolationChoice};
