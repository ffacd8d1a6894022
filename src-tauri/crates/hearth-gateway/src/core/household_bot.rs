//! The household bot's rows, in the core loop: who wrote (`routing::router::route_household`,
//! members known by the Telegram user they paired with on their own bot), the group chats it
//! knows (pending until the admin allows them), its short help, an admin's `/start` making its
//! private chat their channel, and strangers' one short reply. Nothing here calls a model: a
//! group turn goes to the household worker (`group_turn`).

use std::collections::HashMap;

use hearth_proto::control::{GatewayEvent, GroupState};

use super::Core;
use super::inbox::stranger;
use crate::routing::router::{HouseholdBot, HouseholdRoute, Speaker, route_household};
use crate::store::{self, GroupRow, HOUSEHOLD_ID, HouseholdBotRow, InboxRow};

/// What a member reads from the household bot: what it does, and who sees what.
pub(crate) const HOUSEHOLD_HELP: &str = "I'm your household's bot. Add me to your family group and mention me \
(@ my name) or reply to one of my messages there, and I'll answer in the group. I don't chat here in private: \
private conversations stay with your own bot.\n\nWho sees what: everyone in the group sees the group's questions and \
my answers there. Your own bot is private — I never read your chats with it, and nothing you told it comes into the \
group. Your household's admin sees spending and activity, never what anyone wrote.\n\nIn groups I answer only when \
mentioned or replied to (Telegram's privacy mode for me should stay on; with it off I still answer only mentions).";

/// What an admin reads after `/start` in the household bot's private chat.
pub(crate) const ADMIN_NOTE: &str =
    "\n\nYou're an admin: this chat is now your line to Hearth — alerts and approvals can come here.";

/// The household bot and its groups as the core loop holds them: it alone changes them.
#[derive(Debug, Default)]
pub(crate) struct Household {
    pub(crate) bot: Option<HouseholdBotRow>,
    pub(crate) groups: HashMap<i64, GroupState>,
}

impl Household {
    /// From the store, at start.
    pub(crate) fn load(bot: Option<HouseholdBotRow>, groups: Vec<GroupRow>) -> Self {
        Self { bot, groups: groups.into_iter().map(|g| (g.chat_id, g.state)).collect() }
    }
}

impl Core {
    /// One row of the household bot.
    pub(super) async fn on_household_row(&mut self, row: InboxRow) {
        let engine = self.engine.clone();
        let Some(bot) = self.household.bot.clone() else {
            engine.finish_rows(vec![row.id], "done", "household_bot_removed");
            return;
        };
        if row.bot_id != bot.bot_id {
            // Committed by a bot the admin has since replaced.
            engine.finish_rows(vec![row.id], "done", "household_bot_replaced");
            return;
        }
        let speaker = self.members.read(|r| {
            r.by_telegram_user(row.msg.from_id).map(|m| Speaker { member_id: m.id.clone(), is_admin: m.is_admin })
        });
        let is_group = matches!(row.msg.chat_type.as_str(), "group" | "supergroup");
        if is_group && !self.household.groups.contains_key(&row.msg.chat_id) {
            self.see_group(&row, true).await;
        }
        let group = self.household.groups.get(&row.msg.chat_id).copied();
        let who = HouseholdBot { bot_id: bot.bot_id, username: &bot.username };
        match route_household(who, speaker.as_ref(), group, &row) {
            HouseholdRoute::AdminStart => {
                let (member, chat) = (speaker.map(|s| s.member_id).unwrap_or_default(), row.msg.chat_id);
                let recorded = engine
                    .store
                    .call(move |c| {
                        store::record_household_admin_chat(c, &member, chat, store::now_unix())?;
                        store::audit(c, "telegram", "household_admin_chat", Some(&member), "started the household bot")
                    })
                    .await;
                if let Err(e) = recorded {
                    tracing::error!(error = %e, "could not record an admin's chat with the household bot");
                }
                let text = format!("{HOUSEHOLD_HELP}{ADMIN_NOTE}");
                engine.reply_and_finish(HOUSEHOLD_ID, row.msg.chat_id, text, row.id, "admin_started");
            }
            HouseholdRoute::Help => {
                engine.reply_and_finish(HOUSEHOLD_ID, row.msg.chat_id, HOUSEHOLD_HELP.to_owned(), row.id, "helped");
            }
            HouseholdRoute::Stranger => stranger(&engine, HOUSEHOLD_ID, row, false),
            HouseholdRoute::Membership { present } => {
                self.see_group(&row, present).await;
                engine.finish_rows(vec![row.id], "done", if present { "group_joined" } else { "group_left" });
            }
            HouseholdRoute::GroupTurn { member_id } => self.group_turn(&member_id, row),
            HouseholdRoute::Ignore { outcome } => engine.finish_rows(vec![row.id], "done", outcome),
        }
    }

    /// Records a group as Telegram just showed it: known as pending the first time, its title
    /// and whether the bot is in it kept up to date. The admin is told through the app's event.
    async fn see_group(&mut self, row: &InboxRow, present: bool) {
        let (chat, title) = (row.msg.chat_id, row.msg.group.as_ref().map(|g| g.title.clone()).unwrap_or_default());
        let now = store::now_unix();
        let detail = format!("{title:?} ({chat})");
        let seen = self
            .engine
            .store
            .call(move |c| {
                let known = store::group(c, chat)?.is_some();
                let g = store::see_group(c, chat, &title, present, now)?;
                if !known {
                    store::audit(c, "telegram", "group_seen", None, &detail)?;
                }
                Ok(g)
            })
            .await;
        match seen {
            Ok(g) => {
                if self.household.groups.insert(chat, g.state).is_none() {
                    tracing::info!(
                        chat,
                        "the household bot is in a new group; it stays silent until the admin allows it"
                    );
                }
                self.engine.emit(GatewayEvent::Changed);
            }
            Err(e) => {
                // Not recorded: the group is treated as pending (silent), and seen again next time.
                tracing::error!(error = %e, "could not record a group");
            }
        }
    }

    /// A member addressed the household bot in an allowed group. Group answers need the
    /// household worker, which is not built yet: the member is told so in the group (no
    /// worker, no model, nothing charged) rather than left without a word.
    fn group_turn(&mut self, member_id: &str, row: InboxRow) {
        tracing::info!(member = %member_id, chat = row.msg.chat_id, "a question in a group; group answers are not built yet");
        self.engine.reply_and_finish(HOUSEHOLD_ID, row.msg.chat_id, GROUP_NOT_YET.to_owned(), row.id, "group_not_yet");
    }
}

/// What a member reads after asking in the group, until group answers are built.
pub(crate) const GROUP_NOT_YET: &str =
    "I can't answer in the group yet — that's coming. For now, ask your own bot in your private chat with it.";
