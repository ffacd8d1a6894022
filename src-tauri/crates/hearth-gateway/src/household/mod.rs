//! The household's own things beside the message path: its knowledge folder and the reminder
//! timer. Each piece is handed what it needs (the store, the clock, a channel into the core loop)
//! and knows nothing of the gateway above it.
//!
//! - [`kb`]: household knowledge — `kb/`, its FTS5 index (`kb.sqlite`), kept current with
//!   `notify`; searched by workers through the gateway.
//! - [`reminders`]: the one timer that fires members' reminders (committed first, delivered by
//!   the member's worker as a turn without a model call), and the check of the schedule a worker
//!   reports.
//! - [`quota`]: each member's disk quota, measured and enforced.

pub mod kb;
pub mod quota;
pub(crate) mod reminders;
