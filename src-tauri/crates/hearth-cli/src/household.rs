//! `hearth household bot|groups|group`: the household bot (set with its token on stdin, shown,
//! removed) and the admin's decision on each group chat it is in.

use std::path::Path;

use hearth_proto::control::{ControlReply, ControlRequest, GroupState, GroupSummary, HouseholdBotSummary};
use serde_json::json;

use crate::admin::{ask, bot_state, ensure_running, print_json, unexpected_reply};
use crate::args::{GroupDecision, HouseholdBotArgs, HouseholdBotCommand, HouseholdGroupArgs};
use crate::failure::Failure;
use crate::{secret, table};

pub async fn bot(data_dir: &Path, args: HouseholdBotArgs) -> Result<(), Failure> {
    match args.command {
        None => {
            let bot = household_bot(ask(data_dir, ControlRequest::HouseholdBotGet).await?)?;
            if args.json {
                print_json(&bot.as_ref().map(bot_json));
            } else {
                match bot {
                    Some(b) => println!(
                        "The household bot is @{} ({}); {} admin(s) have started it.",
                        b.bot_username,
                        bot_state(&b.bot),
                        b.admin_chats
                    ),
                    None => println!("No household bot. Set one with `hearth household bot set` (the token on stdin)."),
                }
            }
            Ok(())
        }
        Some(HouseholdBotCommand::Set(j)) => {
            ensure_running(data_dir).await?;
            let bot_token = secret::from_stdin(
                "Paste the household bot's token from @BotFather and press Enter (it will not be shown):",
            )
            .await?;
            if bot_token.is_empty() {
                return Err(Failure::invalid_input(
                    "no bot token given. In Telegram, message @BotFather, send /newbot, then paste the token it gives you \
                     (or pipe it in: `hearth household bot set < token.txt`)",
                ));
            }
            let bot = household_bot(ask(data_dir, ControlRequest::HouseholdBotSet { bot_token }).await?)?
                .ok_or_else(|| Failure::unexpected("the gateway set the household bot but does not show it"))?;
            if j.json {
                print_json(&json!({ "bot_username": bot.bot_username }));
            } else {
                println!(
                    "The household bot is @{}. Next: add it to your family group, then allow the group with \
                     `hearth household groups` and `hearth household group allow ID`. Admins: send it /start to get \
                     alerts and approvals there.",
                    bot.bot_username
                );
            }
            Ok(())
        }
        Some(HouseholdBotCommand::Remove(j)) => {
            household_bot(ask(data_dir, ControlRequest::HouseholdBotRemove).await?)?;
            if j.json {
                print_json(&json!({ "removed": true }));
            } else {
                println!("The household bot is removed: it is no longer polled and its token is forgotten.");
            }
            Ok(())
        }
    }
}

pub async fn groups(data_dir: &Path, json: bool) -> Result<(), Failure> {
    let groups = match ask(data_dir, ControlRequest::HouseholdGroups).await? {
        ControlReply::Groups { groups } => groups,
        other => return Err(unexpected_reply(&other)),
    };
    if json {
        print_json(&groups.iter().map(group_json).collect::<Vec<_>>());
        return Ok(());
    }
    if groups.is_empty() {
        println!("The household bot is in no group yet. Add it to your family group in Telegram.");
        return Ok(());
    }
    let rows: Vec<Vec<String>> = groups
        .iter()
        .map(|g| {
            vec![
                g.chat_id.to_string(),
                g.title.clone(),
                g.state.as_str().to_owned(),
                if g.present { "yes".into() } else { "no".into() },
            ]
        })
        .collect();
    print!("{}", table::render(&["ID", "TITLE", "STATE", "BOT IN IT"], &rows));
    if groups.iter().any(|g| g.state == GroupState::Pending) {
        println!("\nA pending group hears nothing from the bot until you allow it: `hearth household group allow ID`.");
    }
    Ok(())
}

pub async fn group(data_dir: &Path, args: HouseholdGroupArgs) -> Result<(), Failure> {
    let allow = args.decision == GroupDecision::Allow;
    let g = match ask(data_dir, ControlRequest::HouseholdGroupDecide { chat_id: args.id, allow }).await? {
        ControlReply::Group(g) => g,
        other => return Err(unexpected_reply(&other)),
    };
    if args.json {
        print_json(&group_json(&g));
    } else if allow {
        println!(
            "The household bot now answers members who mention it or reply to it in {:?}. Everyone in the group sees \
             those answers; nothing from anyone's own bot comes into the group.",
            g.title
        );
    } else {
        println!("The household bot stays silent in {:?}.", g.title);
    }
    Ok(())
}

fn household_bot(reply: ControlReply) -> Result<Option<HouseholdBotSummary>, Failure> {
    match reply {
        ControlReply::HouseholdBot { bot } => Ok(bot),
        other => Err(unexpected_reply(&other)),
    }
}

fn bot_json(b: &HouseholdBotSummary) -> serde_json::Value {
    json!({ "bot_username": b.bot_username, "state": b.bot, "admin_chats": b.admin_chats })
}

fn group_json(g: &GroupSummary) -> serde_json::Value {
    json!({
        "id": g.chat_id,
        "title": g.title,
        "state": g.state,
        "present": g.present,
        "first_seen": g.first_seen,
        "decided_at": g.decided_at,
    })
}
