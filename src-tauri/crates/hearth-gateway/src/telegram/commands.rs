//! The command menu Telegram shows beside a bot's text field (`setMyCommands`): the member's
//! commands for everyone who writes to the bot (the default scope), and in an admin's own
//! private chat the admin's commands as well (scope `chat` with that chat's id), so nobody else
//! ever sees them offered. A failure only costs the menu: the commands work typed in full.

use teloxide::payloads::{DeleteMyCommandsSetters, SetMyCommandsSetters};
use teloxide::requests::Requester;
use teloxide::types::{BotCommand, BotCommandScope, ChatId, Recipient};
use teloxide::{Bot, RequestError};

/// Every member's commands, as the menu lists them.
pub const MEMBER_COMMANDS: &[(&str, &str)] = &[
    ("new", "Start a fresh conversation"),
    ("memory", "What I remember about you"),
    ("forget", "Forget some or all of it"),
    ("reminders", "Your reminders"),
    ("usage", "What you've spent and what's left"),
    ("help", "What I can do"),
];

/// An admin's commands, after the member's, in their own chat only.
pub const ADMIN_COMMANDS: &[(&str, &str)] = &[
    ("status", "How everyone's assistant is doing"),
    ("pause", "Pause someone: /pause NAME 1h, tonight, until 15:30"),
    ("resume", "Resume someone: /resume NAME, or all"),
    ("allow", "Raise someone's limit for today: /allow NAME +$1"),
    ("family", "Everyone's spending at a glance"),
];

fn menu(lists: &[&[(&str, &str)]]) -> Vec<BotCommand> {
    lists.iter().flat_map(|l| l.iter()).map(|(c, d)| BotCommand::new(*c, *d)).collect()
}

fn chat(chat_id: i64) -> BotCommandScope {
    BotCommandScope::Chat { chat_id: Recipient::Id(ChatId(chat_id)) }
}

/// The member's commands for everyone who writes to this bot.
pub async fn set_member_commands(bot: &Bot) -> Result<(), RequestError> {
    bot.set_my_commands(menu(&[MEMBER_COMMANDS])).scope(BotCommandScope::Default).await.map(drop)
}

/// The member's and the admin's commands in one admin's private chat with their bot.
pub async fn set_admin_commands(bot: &Bot, chat_id: i64) -> Result<(), RequestError> {
    bot.set_my_commands(menu(&[MEMBER_COMMANDS, ADMIN_COMMANDS])).scope(chat(chat_id)).await.map(drop)
}

/// Takes the admin's menu away from a chat (its member is no longer an admin): the default
/// scope's shows there again.
pub async fn clear_admin_commands(bot: &Bot, chat_id: i64) -> Result<(), RequestError> {
    bot.delete_my_commands().scope(chat(chat_id)).await.map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn menus_keep_telegrams_rules() {
        // 1–32 characters of a-z, 0-9 and _; descriptions 1–256 characters; at most 100.
        let all = menu(&[MEMBER_COMMANDS, ADMIN_COMMANDS]);
        assert!(all.len() <= 100);
        for c in &all {
            assert!((1..=32).contains(&c.command.len()), "{}", c.command);
            assert!(c.command.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'));
            assert!((1..=256).contains(&c.description.chars().count()), "{}", c.description);
        }
        let names: std::collections::HashSet<_> = all.iter().map(|c| c.command.as_str()).collect();
        assert_eq!(names.len(), all.len(), "no command twice");
    }
}
