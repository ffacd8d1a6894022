//! The admin's changes, as the core loop applies them. The admin API (`control/`) checks a
//! request, stores it (with its audit row), and then sends the change here with
//! [`Engine::change`](super::Engine::change), which waits until it is applied: the roster, the
//! lanes and the bots change only in the loop, between two events, never behind its back.
//!
//! A member change carries the fields as stored, not a whole row read earlier, so a change never
//! undoes one the loop made meanwhile (a pairing, say).

use hearth_proto::control::{AlertLevel, GroupState, QuietHours, Role, VoiceReplies};

use super::{Core, LaneItem, inbox_ids};
use crate::store::{HOUSEHOLD_ID, HouseholdBotRow, MemberRow};

/// One admin change, already stored.
#[derive(Debug)]
pub(crate) enum Change {
    /// A member was added: into the roster, and their bot starts polling.
    Added(MemberRow),
    /// Fields of one member, as just stored.
    Member { member_id: String, update: MemberUpdate },
    /// Stop polling a member's bot (its token is about to be replaced).
    StopBot { member_id: String },
    /// Poll a member's bot (again), with the token and bot now stored.
    StartBot { member_id: String },
    /// A member was deleted: forgotten, and what waits in their lane dropped.
    Removed { member_id: String },
    /// How many turns may run at once, from now on.
    TurnCap(usize),
    /// `context.reset_after_idle_hours` (0: off).
    IdleReset { hours: u32 },
    /// The household bot was set (polled from now on, replacing any earlier one) or removed.
    HouseholdBot(Option<HouseholdBotRow>),
    /// The admin allowed or refused a group.
    Group { chat_id: i64, state: GroupState },
}

/// The fields of a member one admin request changes.
#[derive(Debug)]
pub(crate) enum MemberUpdate {
    Settings {
        role: Role,
        persona: String,
        model: Option<String>,
    },
    Caps {
        daily: Option<u64>,
        monthly: Option<u64>,
    },
    QuietHours(Option<QuietHours>),
    /// When the member is answered in voice; the next turn reads it from the roster.
    VoiceReplies(VoiceReplies),
    /// Replies shown as they are written, or only when finished.
    Streaming(bool),
    /// What the member is told about the household's health while an admin.
    Alerts(AlertLevel),
    /// What a role preset set: caps and quiet hours together.
    Preset {
        daily: Option<u64>,
        monthly: Option<u64>,
        quiet_hours: Option<QuietHours>,
    },
    Admin(bool),
    Fallback(Option<String>),
    /// Paused: what already waits in their lane is dropped, with one note; `until` (Unix
    /// seconds) is when the pause timer (`pauses.rs`) resumes them, `None`: when the admin does.
    /// Resumed: the next message goes to a worker again, and the note may come again after the
    /// next pause.
    Paused { paused: bool, until: Option<i64> },
    Bot {
        bot_id: i64,
        bot_username: String,
        next_offset: i64,
    },
}

impl MemberUpdate {
    fn apply_to(self, m: &mut MemberRow) {
        match self {
            MemberUpdate::Settings { role, persona, model } => {
                m.role = role;
                m.persona = persona;
                m.model = model;
            }
            MemberUpdate::Caps { daily, monthly } => {
                m.cap_daily_micros = daily;
                m.cap_monthly_micros = monthly;
            }
            MemberUpdate::QuietHours(q) => m.quiet_hours = q,
            MemberUpdate::VoiceReplies(v) => m.voice_replies = v,
            MemberUpdate::Streaming(s) => m.streaming = s,
            MemberUpdate::Alerts(a) => m.alerts = a,
            MemberUpdate::Preset { daily, monthly, quiet_hours } => {
                m.cap_daily_micros = daily;
                m.cap_monthly_micros = monthly;
                m.quiet_hours = quiet_hours;
            }
            MemberUpdate::Admin(a) => m.is_admin = a,
            MemberUpdate::Fallback(f) => m.fallback_model = f,
            MemberUpdate::Paused { paused, until } => {
                m.paused = paused;
                m.paused_until = until.filter(|_| paused);
            }
            MemberUpdate::Bot { bot_id, bot_username, next_offset } => {
                m.bot_id = bot_id;
                m.bot_username = bot_username;
                m.next_offset = next_offset;
            }
        }
    }
}

impl Core {
    pub(super) fn apply(&mut self, change: Change) {
        match change {
            Change::Added(row) => {
                let id = row.id.clone();
                self.members.write(|r| r.insert(row));
                self.start_bot(&id);
                self.refresh_admin_available();
            }
            Change::Member { member_id, update } => {
                let paused = match &update {
                    MemberUpdate::Paused { paused, .. } => Some(*paused),
                    _ => None,
                };
                let admin_changed = matches!(update, MemberUpdate::Admin(_));
                if self.members.write(|r| r.update(&member_id, |m| update.apply_to(m))).is_none() {
                    return; // removed meanwhile
                }
                match paused {
                    Some(true) => self.drop_paused_lane(&member_id),
                    Some(false) => {
                        self.paused_notes.remove(&member_id);
                    }
                    None => {}
                }
                if paused.is_some() {
                    // A pause's end may have moved: the timer looks again.
                    self.engine.pauses_wake.changed();
                }
                // Made an admin (or no longer one): their own chat's command menu follows.
                if admin_changed
                    && let (Some(m), Some(bot)) =
                        (self.members.read(|r| r.get(&member_id).cloned()), self.engine.bot_for(&member_id))
                {
                    super::phone::set_admin_menu(&self.engine, &m, bot, true);
                }
                self.refresh_admin_available();
            }
            Change::StopBot { member_id } => self.bots.write(|b| b.stop(&member_id)),
            Change::StartBot { member_id } => self.start_bot(&member_id),
            Change::Removed { member_id } => {
                self.bots.write(|b| b.stop(&member_id));
                self.engine.alerts.forget(super::alerts::Condition::Bot(member_id.clone()));
                self.members.write(|r| r.remove(&member_id));
                self.activity.write(|a| a.remove(&member_id));
                self.paused_notes.remove(&member_id);
                // A removed member's firings went with them (ON DELETE CASCADE).
                let dropped = self.lanes.write(|l| l.drain(&member_id));
                self.engine.finish_rows(inbox_ids(&dropped), "done", "member_removed");
                self.refresh_admin_available();
            }
            Change::TurnCap(cap) => self.lanes.write(|l| l.set_turn_cap(cap)),
            Change::IdleReset { hours } => self.idle_reset_hours = hours,
            Change::HouseholdBot(bot) => {
                // The old bot's loop stops first: one poller per token.
                self.bots.write(|b| b.stop(HOUSEHOLD_ID));
                if let Some(h) = &bot {
                    self.bots.write(|b| b.start_household(&self.engine, h));
                }
                self.household.bot = bot;
            }
            Change::Group { chat_id, state } => {
                self.household.groups.insert(chat_id, state);
            }
        }
    }

    /// Starts the member's bot unless it runs already.
    fn start_bot(&mut self, member_id: &str) {
        let Some(row) = self.members.read(|r| r.get(member_id).cloned()) else { return };
        if !self.bots.read(|b| b.is_running(member_id)) {
            self.bots.write(|b| b.start(&self.engine, &row));
        }
    }

    /// A member was paused: reminders still come (they cost nothing and may be a pill); only
    /// the member's messages are dropped, with one note.
    fn drop_paused_lane(&mut self, member_id: &str) {
        let dropped = self.lanes.write(|l| l.drain(member_id));
        let (reminders, messages): (Vec<LaneItem>, Vec<LaneItem>) = dropped.into_iter().partition(|i| i.row.is_none());
        if let Some(first) = messages.first() {
            let chat = first.chat_id;
            self.paused_reply(member_id, chat, inbox_ids(&messages));
        }
        self.lanes.write(|l| {
            for item in reminders {
                l.push(member_id, item);
            }
        });
    }
}
