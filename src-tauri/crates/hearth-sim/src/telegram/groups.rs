//! Group chats in the fake: the bot added to or removed from a group (`my_chat_member`), and
//! messages there — from users (with `mention` entities and `reply_to_message`), on behalf of a
//! channel (`sender_chat`) and from other bots — in the Bot API's shapes.

use serde_json::{Value, json};

use super::FakeUser;
use super::markup;
use super::world::{BotState, StoredMessage, chat_json, unix_now, user_json};

/// What makes a chat a group: its title, and whether Telegram calls it a supergroup.
#[derive(Debug, Clone)]
pub(crate) struct GroupChat {
    pub title: String,
    pub supergroup: bool,
}

impl GroupChat {
    /// The group as the Bot API renders a `Chat`.
    pub(crate) fn json(&self, id: i64) -> Value {
        let kind = if self.supergroup { "supergroup" } else { "group" };
        json!({ "id": id, "type": kind, "title": self.title })
    }
}

/// Who writes a group message.
pub(crate) enum Sender {
    /// A person (`from`, as `user_json` renders them).
    User(Value),
    /// On behalf of a channel: `sender_chat` is the channel, `from` Telegram's placeholder.
    Channel { id: i64, title: String },
    /// Another bot.
    Bot { id: i64, username: String },
}

/// The placeholder `from` of messages sent on behalf of a channel (Telegram's `@Channel_Bot`).
const CHANNEL_BOT_ID: i64 = 136_817_688;

impl BotState {
    /// The bot added to (`present`) or removed from a group by `by`: the group's chat state,
    /// and a `my_chat_member` update.
    pub(crate) fn membership(&mut self, by: &FakeUser, chat_id: i64, title: Option<&str>, present: bool) -> i64 {
        let me = self.user_json();
        let chat = self.chat_with(chat_id, "", None);
        let group = chat.group.get_or_insert_with(|| GroupChat {
            title: String::new(),
            // Telegram numbers supergroups -100…, thirteen digits and more.
            supergroup: chat_id <= -1_000_000_000_000,
        });
        if let Some(t) = title {
            group.title = t.to_owned();
        }
        chat.blocked = !present;
        let chat = chat_json(chat_id, chat);
        let (old, new) = if present { ("left", "member") } else { ("member", "left") };
        self.push_update(json!({ "my_chat_member": {
            "chat": chat,
            "from": user_json(by),
            "date": unix_now(),
            "old_chat_member": { "status": old, "user": me },
            "new_chat_member": { "status": new, "user": me },
        }}))
    }

    /// A message in a group the bot is in, queued as an update. `Err` says what is wrong with
    /// the test's request.
    pub(crate) fn group_message(
        &mut self,
        chat_id: i64,
        sender: Sender,
        text: &str,
        reply_to: Option<i64>,
    ) -> Result<i64, String> {
        let username = self.bot.username.clone();
        let chat = match self.chats.get_mut(&chat_id) {
            Some(c) if c.group.is_some() && !c.blocked => c,
            _ => return Err(format!("@{username} is not in a group {chat_id}; add it with add_to_group first")),
        };
        let replied = match reply_to {
            None => None,
            Some(id) => match chat.messages.get(&id) {
                Some(m) => Some(m.json.clone()),
                None => return Err(format!("group {chat_id} has no message {id} to reply to")),
            },
        };
        let message_id = chat.next_message_id;
        chat.next_message_id += 1;
        let mut message = json!({
            "message_id": message_id,
            "chat": chat_json(chat_id, chat),
            "date": unix_now(),
            "text": text,
        });
        match sender {
            Sender::User(from) => message["from"] = from,
            Sender::Channel { id, title } => {
                message["from"] = json!({ "id": CHANNEL_BOT_ID, "is_bot": true, "first_name": "Channel",
                                          "username": "Channel_Bot" });
                message["sender_chat"] = json!({ "id": id, "type": "channel", "title": title });
            }
            Sender::Bot { id, username } => {
                message["from"] = json!({ "id": id, "is_bot": true, "first_name": username, "username": username });
            }
        }
        let mut entities: Vec<Value> = markup::command_entity(text).map(|c| c.to_json()).into_iter().collect();
        entities.extend(mention_entities(text));
        if !entities.is_empty() {
            message["entities"] = json!(entities);
        }
        if let Some(r) = replied {
            message["reply_to_message"] = r;
        }
        chat.messages.insert(message_id, StoredMessage { from_bot: false, json: message.clone() });
        Ok(self.push_update(json!({ "message": message })))
    }
}

/// A `mention` entity for every `@username` in `text` (5–32 word characters after an `@` that
/// does not follow a word character), with offsets and lengths in UTF-16 code units.
pub(crate) fn mention_entities(text: &str) -> Vec<Value> {
    let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut out = Vec::new();
    let mut utf16 = 0;
    let mut previous: Option<char> = None;
    for (i, c) in text.char_indices() {
        if c == '@' && !previous.is_some_and(is_word) {
            let name_len = text[i + 1..].chars().take_while(|&c| is_word(c)).count();
            if (5..=32).contains(&name_len) {
                // Word characters are ASCII: one UTF-16 unit each.
                out.push(json!({ "type": "mention", "offset": utf16, "length": 1 + name_len }));
            }
        }
        utf16 += c.len_utf16();
        previous = Some(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mentions_are_found_with_utf16_offsets() {
        let found = mention_entities("🏠 @home_bot, ask @ana_b and me@mail.com or @abc");
        assert_eq!(
            found,
            vec![
                json!({"type": "mention", "offset": 3, "length": 9}),
                json!({"type": "mention", "offset": 18, "length": 6}),
            ]
        );
    }
}
