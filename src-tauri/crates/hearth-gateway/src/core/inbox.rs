//! One committed inbox row, in the core loop: who wrote (`routing::router`), and what happens —
//! into the member's lane, a pairing, a stranger's one short reply, a paused or resting member's
//! note, or a command the gateway answers itself (`/help`, `/usage`, `/family`, and the admin's
//! `/status`, `/pause`, `/resume`, `/allow` in `phone.rs`).

use std::time::{Duration, Instant};

use hearth_proto::worker::TurnKind;

use super::{Core, Engine, LaneItem, Roster, notices, phone};
use crate::broker::spend::text as spend_text;
use crate::config::FaultSite;
use crate::core::lanes::Push;
use crate::household::quota::QUOTA_NOTE;
use crate::routing::roles::{idle_reset_secs, resting_note};
use crate::routing::router::{Route, route};
use crate::store::{self, InboxRow, MemberRow};
use crate::telegram;

/// What a paused member is told, at most once per [`PAUSED_NOTE_EVERY`].
pub(crate) const PAUSED_NOTE: &str =
    "Your assistant is paused by your household's admin right now. I'll be back once they resume me.";
pub(crate) const PAUSED_NOTE_EVERY: Duration = Duration::from_secs(3600);

/// What a member reads after a sticker, video, location… : what Hearth does read.
pub(crate) const UNSUPPORTED: &str = "I can't take that kind of message. I can read text, listen to voice notes and \
     audio, look at photos, and read documents (PDF, plain text, Markdown, CSV) — could you send it as one of those?";

impl Core {
    /// Routes one committed row. Pairing is decided here, in order, so a message sent right
    /// after `/start <code>` is already the member's.
    pub(super) async fn on_inbox_row(&mut self, row: InboxRow) {
        let text = row.msg.text.as_deref().unwrap_or("");
        self.engine.config.faults.check(FaultSite::InboxRow { member_id: &row.member_id, text });
        let engine = self.engine.clone();
        if row.msg.kind == store::MessageKind::Stop {
            // Now, not behind the turn it stops in the member's lane (`stream.rs`).
            let stopped = engine.stops.stop(&row.member_id, row.msg.chat_id, text);
            engine.finish_rows(vec![row.id], "done", if stopped { "stopped" } else { "stop_too_late" });
            return;
        }
        if row.member_id == store::HOUSEHOLD_ID {
            self.on_household_row(row).await;
            return;
        }
        let Some(member) = self.members.read(|r| r.get(&row.member_id).cloned()) else {
            engine.finish_rows(vec![row.id], "done", "member_removed");
            return;
        };
        // The gateway's clock (manual in tests), so an idle reset can be tested without waiting.
        let now = engine.config.clock.now().timestamp();
        let mut idle_since = None;
        if member.telegram_user_id == Some(row.msg.from_id) {
            idle_since = self.activity.write(|a| a.insert(member.id.clone(), now));
        }
        let route = route(member.telegram_user_id, &row);
        // A paused member's messages go nowhere near a worker. Pairing still works (the admin may
        // pair a new phone first), and a button press is the admin answering a cap question.
        // An admin's own commands work paused or resting too (they may have paused everyone).
        let admins = member.is_admin
            && matches!(route, Route::Status | Route::Pause { .. } | Route::Resume { .. } | Route::Allow { .. });
        let held =
            admins || matches!(route, Route::Pair { .. } | Route::Stranger | Route::Ignore | Route::Button { .. });
        if member.paused && !held {
            self.paused_reply(&member.id, row.msg.chat_id, vec![row.id]);
            return;
        }
        // Resting time (a child's quiet hours): answered here, no worker, no model.
        if !held && let Some(quiet) = engine.quiet_now(&member) {
            match self.quiet_notes.first_note(&member.id, quiet.began_on) {
                true => {
                    engine.reply_and_finish(&member.id, row.msg.chat_id, resting_note(&quiet.until), row.id, "quiet")
                }
                false => engine.finish_rows(vec![row.id], "done", "quiet"),
            }
            return;
        }
        // A folder over the disk quota (`household/quota.rs`): a note instead of a turn;
        // reminders still come.
        if matches!(
            route,
            Route::Chat | Route::NewConversation | Route::Memory | Route::Forget { .. } | Route::Reminders { .. }
        ) && let Some(tell) = engine.quotas.over_quota(&member.id)
        {
            match tell {
                true => {
                    engine.reply_and_finish(&member.id, row.msg.chat_id, QUOTA_NOTE.to_owned(), row.id, "over_quota")
                }
                false => engine.finish_rows(vec![row.id], "done", "over_quota"),
            }
            return;
        }
        // Back after long enough away (`context.reset_after_idle_hours`): a fresh conversation
        // first, the way `/new` starts one, but without its confirmation.
        if route == Route::Chat
            && let (Some(limit), Some(since)) = (idle_reset_secs(self.idle_reset_hours), idle_since)
            && now - since > limit
        {
            tracing::info!(member = %member.id, idle_secs = now - since, "idle long enough: a fresh conversation");
            let fresh = LaneItem {
                row: None,
                chat_id: row.msg.chat_id,
                kind: TurnKind::NewConversation,
                words: String::new(),
                attempt: 0,
            };
            self.lanes.write(|l| l.push(&member.id, fresh));
        }
        match route {
            r @ (Route::Chat
            | Route::NewConversation
            | Route::Memory
            | Route::Forget { .. }
            | Route::Reminders { .. }) => {
                // Memory and reminders are the worker's: the gateway only queues the command in
                // lane order.
                let (kind, words) = match r {
                    Route::NewConversation => (TurnKind::NewConversation, String::new()),
                    Route::Memory => (TurnKind::ListMemory, String::new()),
                    Route::Forget { words } => (TurnKind::Forget, words),
                    Route::Reminders { words } => (TurnKind::Reminders, words),
                    _ => (TurnKind::Chat, String::new()),
                };
                let (id, chat) = (row.id, row.msg.chat_id);
                let album = row.msg.media.as_ref().and_then(|m| m.media_group_id.clone());
                let item = LaneItem { row: Some(row), chat_id: chat, kind, words, attempt: 0 };
                let pushed = self.lanes.write(|l| l.push(&member.id, item));
                if pushed == Push::Queued
                    && let Some(group) = album
                {
                    self.album_part(&member.id, &group);
                }
                if pushed == Push::Full {
                    let text = format!(
                        "I still have {} of your messages to get through — give me a moment, then send the rest.",
                        engine.config.queue_cap
                    );
                    engine.reply_and_finish(&member.id, chat, text, id, "queue_full");
                }
            }
            Route::Pair { code } => self.pair(&member, row, code).await,
            Route::Greet => {
                let text = format!(
                    "Hi {}! I'm your assistant. Just write to me — ask anything, or /new for a fresh start.",
                    member.name
                );
                engine.reply_and_finish(&member.id, row.msg.chat_id, text, row.id, "greeted");
            }
            Route::Help => {
                let mut text = "Write to me like you'd text a friend and I'll help: questions, ideas, plans, homework, recipes.\n\n/new — start a fresh conversation\n/memory — what I remember about you\n/forget — forget some or all of it\n/reminders — your reminders\n/usage — what you've spent and what's left\n/help — this message".to_owned();
                if member.is_admin {
                    text.push_str(phone::ADMIN_HELP);
                }
                engine.reply_and_finish(&member.id, row.msg.chat_id, text, row.id, "helped");
            }
            Route::Usage => {
                let text = engine.broker.spend(|s| {
                    let tz = s.budget.timezone();
                    spend_text::usage(&s.budget.standing(&member.id, chrono::Utc::now()), tz)
                });
                engine.reply_and_finish(&member.id, row.msg.chat_id, text, row.id, "usage");
            }
            Route::Family => {
                let text = if member.is_admin {
                    let members = self.members.read(Roster::list);
                    let now = chrono::Utc::now();
                    engine.broker.spend(|s| {
                        let rows: Vec<_> =
                            members.iter().map(|m| (m.name.clone(), s.budget.standing(&m.id, now))).collect();
                        spend_text::family(&rows, &s.budget.household_standing(now))
                    })
                } else {
                    "Only an admin can see the whole family's spending. /usage shows yours.".to_owned()
                };
                engine.reply_and_finish(&member.id, row.msg.chat_id, text, row.id, "family");
            }
            Route::Button { data } => notices::button(&engine, &member, row, data),
            r @ (Route::Status | Route::Pause { .. } | Route::Resume { .. } | Route::Allow { .. }) => {
                phone::command(&engine, &member, row, r)
            }
            Route::Unsupported => {
                engine.reply_and_finish(&member.id, row.msg.chat_id, UNSUPPORTED.to_owned(), row.id, "unsupported");
            }
            Route::Stranger => stranger(&engine, &member.id, row, false),
            Route::Ignore => engine.finish_rows(vec![row.id], "done", "ignored"),
        }
    }

    /// Tells a paused member so (at most once per [`PAUSED_NOTE_EVERY`]) and closes their rows
    /// with outcome "paused": nothing of theirs reaches a worker or a model.
    pub(super) fn paused_reply(&mut self, member_id: &str, chat_id: i64, ids: Vec<i64>) {
        let now = Instant::now();
        let tell = self.paused_notes.get(member_id).is_none_or(|t| now.duration_since(*t) >= PAUSED_NOTE_EVERY);
        if tell {
            self.paused_notes.insert(member_id.to_owned(), now);
        }
        match ids.split_first() {
            Some((first, rest)) if tell => {
                self.engine.finish_rows(rest.to_vec(), "done", "paused");
                self.engine.reply_and_finish(member_id, chat_id, PAUSED_NOTE.to_owned(), *first, "paused");
            }
            _ => self.engine.finish_rows(ids, "done", "paused"),
        }
    }

    /// `/start <code>`: redeems the code and binds the sender to the member, in the loop, so the
    /// next message is already theirs.
    async fn pair(&mut self, member: &MemberRow, row: InboxRow, code: String) {
        let engine = self.engine.clone();
        let (mid, user, chat) = (member.id.clone(), row.msg.from_id, row.msg.chat_id);
        let now = store::now_unix();
        let from_name = row.msg.from_name.clone();
        let accepted = engine
            .store
            .call(move |c| {
                let ok = store::redeem_pairing(c, &mid, &code, user, now)?;
                if ok {
                    store::bind_telegram_user(c, &mid, user, chat, now)?;
                    store::audit(
                        c,
                        &format!("telegram:{user}"),
                        "paired",
                        Some(&mid),
                        &format!("Telegram user {from_name} paired"),
                    )?;
                }
                Ok(ok)
            })
            .await;
        match accepted {
            Ok(true) => {
                self.members.write(|r| {
                    r.update(&member.id, |m| {
                        m.telegram_user_id = Some(user);
                        m.chat_id = Some(chat);
                    })
                });
                self.refresh_admin_available();
                if let (Some(paired), Some(bot)) = (engine.member(&member.id), engine.bot_for(&member.id)) {
                    phone::set_admin_menu(&engine, &paired, bot, false);
                }
                tracing::info!(member = %member.id, "paired");
                engine.emit(hearth_proto::control::GatewayEvent::Paired {
                    member_id: member.id.clone(),
                    name: member.name.clone(),
                    telegram_name: row.msg.from_name.clone(),
                });
                let text = format!(
                    "You're all set, {}! This is your own assistant — only you can talk to it here. Ask me anything.",
                    member.name
                );
                engine.reply_and_finish(&member.id, chat, text, row.id, "paired");
            }
            Ok(false) => stranger(&engine, &member.id, row, true),
            Err(e) => {
                tracing::error!(error = %e, "pairing failed");
                engine.finish_rows(vec![row.id], "failed", "pairing_error");
            }
        }
    }
}

/// The stranger policy: at most one short reply per hour per person, an audit row with it,
/// and nothing else — no worker, no model. `member_id` is the bot's owner (`store::HOUSEHOLD_ID`
/// for the household bot, audited without a member).
pub(super) fn stranger(engine: &Engine, member_id: &str, row: InboxRow, tried_code: bool) {
    let engine = engine.clone();
    let member_id = member_id.to_owned();
    let window = engine.config.stranger_reply_window.as_secs() as i64;
    engine.tracker.clone().spawn(async move {
        let (bot_id, user, name) = (row.bot_id, row.msg.from_id, row.msg.from_name.clone());
        let mid = (member_id != store::HOUSEHOLD_ID).then(|| member_id.clone());
        let may = engine
            .store
            .call(move |c| {
                let may = store::stranger_may_reply(c, bot_id, user, store::now_unix(), window)?;
                if may {
                    let what = if tried_code { "stranger_bad_code" } else { "stranger" };
                    let detail = format!("message from unpaired user {name}");
                    store::audit(c, &format!("telegram:{user}"), what, mid.as_deref(), &detail)?;
                }
                Ok(may)
            })
            .await
            .unwrap_or(false);
        if may {
            let text = if tried_code {
                "That pairing code isn't valid (codes work once and expire after an hour). Ask whoever runs Hearth at home for a new one."
            } else {
                "Sorry, this is a private family assistant."
            };
            if let Some(bot) = engine.bot_for(&member_id) {
                let _ = telegram::send_plain(&bot, row.msg.chat_id, text).await;
            }
        }
        engine.finish_rows(vec![row.id], "done", "stranger");
    });
}
