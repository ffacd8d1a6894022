//! The household's own things beside the message path: its knowledge folder, the reminder
//! timer, members' disk quota, backups and exports. Each piece is handed what it needs (the store, the clock, a channel into the core loop)
//! and knows nothing of the gateway above it.
//!
//! - [`kb`]: household knowledge — `kb/`, its FTS5 index (`kb.sqlite`), kept current with
//!   `notify`; searched by workers through the gateway.
//! - [`reminders`]: the one timer that fires members' reminders (committed first, delivered by
//!   the member's worker as a turn without a model call), and the check of the schedule a worker
//!   reports.
//! - [`quota`]: each member's disk quota, measured and enforced; [`disk`]: how full the data
//!   folder's disk is (the admins' alerts).
//! - [`heartbeat`]: the optional GET to a dead-man's switch while all is well.
//! - [`backup`]: backups of the whole household — create, verify, restore, and their schedule;
//!   [`export`]: a consistent copy of one member's folder; [`tree`]: the one way either copies a
//!   folder, read with its owner's rights and written through descriptors.

pub mod backup;
pub mod disk;
pub mod export;
pub(crate) mod heartbeat;
pub mod kb;
pub mod quota;
pub(crate) mod reminders;
pub mod tree;
