//! The household bot and its groups: setting the bot (its token checked with `getMe`, held like
//! members' tokens), removing it, showing it, and the admin's decision on each group chat it
//! knows. Stored and audited here, then applied in the core loop (`Change::HouseholdBot`,
//! `Change::Group`).

use hearth_proto::control::{
    ControlError, ControlReply, ErrorCode, GatewayEvent, GroupState, GroupSummary, HouseholdBotSummary,
};

use super::{internal, rfc3339, stopping, token_error};
use crate::core::{Change, Engine};
use crate::secrets;
use crate::store::{self, GroupRow, HOUSEHOLD_ID};
use crate::telegram;

/// `HouseholdBotSet`: checks the token, refuses a member's bot, stores the token and the bot,
/// and has the core loop poll it (instead of any earlier household bot).
pub(super) async fn set(e: &Engine, bot_token: &str) -> Result<ControlReply, ControlError> {
    let token = bot_token.trim().to_owned();
    let me = telegram::validate_token(&e.http, &e.api_url, &token).await.map_err(token_error)?;
    let (bot_id, username) = (me.user.id.0 as i64, me.username().to_owned());
    if let Some(owner) = e.store.call(move |c| store::member_id_for_bot(c, bot_id)).await.map_err(internal)? {
        return Err(ControlError::new(
            ErrorCode::Conflict,
            format!(
                "this bot already belongs to member {owner}; the household bot needs a bot of its own (BotFather: /newbot)"
            ),
        ));
    }
    // A running loop holds its own client: replacing the stored token does not touch it.
    let previous = e.secrets.get(secrets::HOUSEHOLD_BOT_KEY);
    e.secrets.set(secrets::HOUSEHOLD_BOT_KEY, &token).map_err(internal)?;
    let name = username.clone();
    let stored = e
        .store
        .call(move |c| {
            let row = store::set_household_bot(c, bot_id, &name, store::now_unix())?;
            store::audit(c, "admin", "household_bot_set", None, &format!("@{name}"))?;
            Ok(row)
        })
        .await;
    let row = match stored {
        Ok(row) => row,
        Err(err) => {
            // Put back what was there; the earlier bot (if any) still polls.
            let _ = match &previous {
                Some(old) => e.secrets.set(secrets::HOUSEHOLD_BOT_KEY, old),
                None => e.secrets.remove(secrets::HOUSEHOLD_BOT_KEY),
            };
            return Err(internal(err));
        }
    };
    e.change(Change::HouseholdBot(Some(row))).await.map_err(stopping)?;
    e.emit(GatewayEvent::Changed);
    tracing::info!(bot = %username, "household bot set");
    Ok(ControlReply::HouseholdBot { bot: summary(e).await? })
}

/// `HouseholdBotRemove`: stops polling it and forgets its token and its admins' chats.
pub(super) async fn remove(e: &Engine) -> Result<ControlReply, ControlError> {
    let removed = e
        .store
        .call(|c| {
            let removed = store::remove_household_bot(c)?;
            if removed {
                store::audit(c, "admin", "household_bot_removed", None, "")?;
            }
            Ok(removed)
        })
        .await
        .map_err(internal)?;
    if !removed {
        return Err(ControlError::new(ErrorCode::NotFound, "there is no household bot to remove"));
    }
    e.change(Change::HouseholdBot(None)).await.map_err(stopping)?;
    e.secrets.remove(secrets::HOUSEHOLD_BOT_KEY).map_err(internal)?;
    e.emit(GatewayEvent::Changed);
    Ok(ControlReply::HouseholdBot { bot: None })
}

/// The household bot as the admin sees it: its name, its poll state and how many admins have
/// started it. `None` without one.
pub(crate) async fn summary(e: &Engine) -> Result<Option<HouseholdBotSummary>, ControlError> {
    let (bot, chats) = e
        .store
        .call(|c| Ok((store::household_bot(c)?, store::household_admin_chats(c)?.len())))
        .await
        .map_err(internal)?;
    Ok(bot.map(|b| HouseholdBotSummary {
        bot_username: b.username,
        bot: e.bots.read(|bots| bots.state(HOUSEHOLD_ID)),
        admin_chats: chats as u32,
    }))
}

pub(super) async fn groups(e: &Engine) -> Result<ControlReply, ControlError> {
    let rows = e.store.call(|c| store::list_groups(c)).await.map_err(internal)?;
    Ok(ControlReply::Groups { groups: rows.into_iter().map(group_summary).collect() })
}

/// `HouseholdGroupDecide`: the household bot answers in the group from now on, or stays silent
/// there for good.
pub(super) async fn decide(e: &Engine, chat_id: i64, allow: bool) -> Result<ControlReply, ControlError> {
    let state = if allow { GroupState::Allowed } else { GroupState::Refused };
    let decided = e
        .store
        .call(move |c| {
            let g = store::decide_group(c, chat_id, state, "admin", store::now_unix())?;
            if let Some(g) = &g {
                let action = if allow { "group_allowed" } else { "group_refused" };
                store::audit(c, "admin", action, None, &format!("{:?} ({chat_id})", g.title))?;
            }
            Ok(g)
        })
        .await
        .map_err(internal)?;
    let Some(group) = decided else {
        return Err(ControlError::new(
            ErrorCode::NotFound,
            format!(
                "no group with id {chat_id} is known; `hearth household groups` lists the groups the household bot is in"
            ),
        ));
    };
    e.change(Change::Group { chat_id, state }).await.map_err(stopping)?;
    e.emit(GatewayEvent::Changed);
    Ok(ControlReply::Group(group_summary(group)))
}

fn group_summary(g: GroupRow) -> GroupSummary {
    GroupSummary {
        chat_id: g.chat_id,
        title: g.title,
        state: g.state,
        present: g.present,
        first_seen: rfc3339(g.first_seen),
        decided_at: g.decided_at.map(rfc3339),
    }
}
