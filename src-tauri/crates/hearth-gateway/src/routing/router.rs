//! Who is writing, and what happens to their message. A pure function of the member's binding
//! and the inbox row, so every rule is unit-tested.
//!
//! Only the member's paired Telegram user, in a private chat, ever reaches a lane. Everyone
//! else — strangers who found the bot's @username, group chats the bot was added to — stops here:
//! no worker, no model call, no spend.

use crate::store::{InboxRow, MessageKind};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// A text, voice note, audio file, photo or document from the member: into their lane.
    Chat,
    /// `/new` from the member: a fresh conversation, in lane order.
    NewConversation,
    /// `/start <code>` from anyone: try to pair.
    Pair { code: String },
    /// `/start` (no code) from the member: a greeting.
    Greet,
    /// `/help` from the member.
    Help,
    /// `/usage` from the member: their spend and what is left.
    Usage,
    /// `/memory` from the member: what their assistant remembers (answered by their worker).
    Memory,
    /// `/forget [words]` from the member: forget matching memories, or all after confirming
    /// (answered by their worker).
    Forget { words: String },
    /// `/reminders [cancel <id>]` from the member: list or cancel reminders (answered by their
    /// worker).
    Reminders { words: String },
    /// `/family` from an admin: every member's spend at a glance.
    Family,
    /// `/status` from the member: for an admin, how every member's assistant is doing
    /// (`core/phone.rs`); anyone else is told it is the admin's.
    Status,
    /// `/pause NAME|all [1h|30m|tonight|until HH:MM]` from the member: the admin's, as `Status`.
    Pause { words: String },
    /// `/resume NAME|all` from the member: the admin's, as `Status`.
    Resume { words: String },
    /// `/allow NAME +$1` from the member: raise today's limit; the admin's, as `Status`.
    Allow { words: String },
    /// A button press by the member (the admin answering a cap question).
    Button { data: String },
    /// A sticker, video, location… from the member: nothing Hearth reads.
    Unsupported,
    /// Anyone who is not the member, in a private chat.
    Stranger,
    /// Not a private chat (the bot was added to a group): ignored entirely.
    Ignore,
}

/// Splits `/cmd@botname arg` into (`cmd`, `arg`). Returns `None` if the text is not a command.
fn command(text: &str) -> Option<(String, &str)> {
    let rest = text.trim_start().strip_prefix('/')?;
    let (head, arg) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    let name = head.split('@').next().unwrap_or("").to_ascii_lowercase();
    (!name.is_empty()).then_some((name, arg.trim()))
}

pub fn route(paired_user: Option<i64>, row: &InboxRow) -> Route {
    if row.msg.chat_type != "private" {
        return Route::Ignore;
    }
    let is_member = paired_user == Some(row.msg.from_id);
    let text = row.msg.text.as_deref().unwrap_or("");
    if row.msg.kind == MessageKind::Text
        && let Some((cmd, arg)) = command(text)
    {
        match (cmd.as_str(), is_member) {
            ("start", _) if !arg.is_empty() => {
                return match super::pairing::normalize(arg) {
                    Some(code) => Route::Pair { code },
                    None if is_member => Route::Greet,
                    None => Route::Stranger,
                };
            }
            ("start", true) => return Route::Greet,
            ("help", true) => return Route::Help,
            ("new", true) => return Route::NewConversation,
            ("usage", true) => return Route::Usage,
            ("memory", true) => return Route::Memory,
            ("forget", true) => return Route::Forget { words: arg.to_owned() },
            ("reminders", true) => return Route::Reminders { words: arg.to_owned() },
            ("family", true) => return Route::Family,
            ("status", true) => return Route::Status,
            ("pause", true) => return Route::Pause { words: arg.to_owned() },
            ("resume", true) => return Route::Resume { words: arg.to_owned() },
            ("allow", true) => return Route::Allow { words: arg.to_owned() },
            _ => {}
        }
    }
    match (is_member, row.msg.kind) {
        // A Stop press is no message: the core loop stops the running turn before routing.
        (_, MessageKind::Stop) => Route::Ignore,
        // A stranger's button press gets nothing, not even the stranger reply.
        (false, MessageKind::Callback) => Route::Ignore,
        (false, _) => Route::Stranger,
        (true, MessageKind::Text | MessageKind::Voice | MessageKind::Audio | MessageKind::Photo | MessageKind::Document) => {
            Route::Chat
        }
        (true, MessageKind::Unsupported) => Route::Unsupported,
        (true, MessageKind::Callback) => Route::Button { data: text.to_owned() },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(from: i64, chat_type: &str, text: Option<&str>) -> InboxRow {
        InboxRow {
            id: 1,
            bot_id: 1,
            member_id: "ana".into(),
            msg: crate::store::NewMessage {
                update_id: 1,
                chat_id: from,
                chat_type: chat_type.into(),
                from_id: from,
                from_name: "x".into(),
                kind: if text.is_some() { MessageKind::Text } else { MessageKind::Unsupported },
                text: text.map(str::to_owned),
                sent_at: 0,
                callback_id: None,
                message_id: None,
                media: None,
            },
        }
    }

    #[test]
    fn member_messages_and_commands() {
        let p = Some(7);
        assert_eq!(route(p, &row(7, "private", Some("hi"))), Route::Chat);
        assert_eq!(route(p, &row(7, "private", Some("/new"))), Route::NewConversation);
        assert_eq!(route(p, &row(7, "private", Some("/help@ana_bot"))), Route::Help);
        assert_eq!(route(p, &row(7, "private", Some("/start"))), Route::Greet);
        assert_eq!(route(p, &row(7, "private", Some("/start hello"))), Route::Greet);
        assert_eq!(route(p, &row(7, "private", None)), Route::Unsupported);
        assert_eq!(route(p, &row(7, "private", Some("/usage"))), Route::Usage);
        assert_eq!(route(p, &row(7, "private", Some("/family"))), Route::Family);
        assert_eq!(route(p, &row(7, "private", Some("/memory"))), Route::Memory);
        assert_eq!(route(p, &row(7, "private", Some("/forget"))), Route::Forget { words: String::new() });
        assert_eq!(route(p, &row(7, "private", Some("/forget@ana_bot  the cat "))), Route::Forget { words: "the cat".into() });
        assert_eq!(route(p, &row(7, "private", Some("/reminders"))), Route::Reminders { words: String::new() });
        assert_eq!(route(p, &row(7, "private", Some("/reminders cancel 3"))), Route::Reminders { words: "cancel 3".into() });
        let mut press = row(7, "private", Some("cap:1:1000000"));
        press.msg.kind = MessageKind::Callback;
        assert_eq!(route(p, &press), Route::Button { data: "cap:1:1000000".into() });
        press.msg.from_id = 8;
        assert_eq!(route(p, &press), Route::Ignore, "a stranger's press");
        assert_eq!(route(p, &row(7, "private", Some("/status"))), Route::Status);
        assert_eq!(route(p, &row(7, "private", Some("/STATUS@ana_bot"))), Route::Status);
        assert_eq!(route(p, &row(7, "private", Some("/pause Ana 1h"))), Route::Pause { words: "Ana 1h".into() });
        assert_eq!(route(p, &row(7, "private", Some("/pause  all  until 15:30 "))), Route::Pause { words: "all  until 15:30".into() });
        assert_eq!(route(p, &row(7, "private", Some("/resume ana"))), Route::Resume { words: "ana".into() });
        assert_eq!(route(p, &row(7, "private", Some("/allow Ana +$1"))), Route::Allow { words: "Ana +$1".into() });
        // Unknown commands are just text for the assistant.
        assert_eq!(route(p, &row(7, "private", Some("/weather berlin"))), Route::Chat);
    }

    #[test]
    fn media_from_the_member_is_a_chat_turn_and_a_caption_is_no_command() {
        let p = Some(7);
        for kind in [MessageKind::Voice, MessageKind::Audio, MessageKind::Photo, MessageKind::Document] {
            let mut r = row(7, "private", Some("/new"));
            r.msg.kind = kind;
            assert_eq!(route(p, &r), Route::Chat, "{kind:?}");
            r.msg.from_id = 8;
            assert_eq!(route(p, &r), Route::Stranger, "{kind:?} from a stranger");
        }
    }

    #[test]
    fn strangers_stop_here() {
        let p = Some(7);
        for text in [Some("hi"), Some("/new"), Some("/help"), Some("/memory"), Some("/forget everything"), Some("/reminders"), Some("/start"), Some("/start nonsense"), Some("/status"), Some("/pause all"), Some("/resume all"), Some("/allow Ana +$5"), None] {
            assert_eq!(route(p, &row(8, "private", text)), Route::Stranger, "{text:?}");
            assert_eq!(route(None, &row(8, "private", text)), Route::Stranger, "{text:?}");
        }
    }

    #[test]
    fn anyone_may_try_a_code_and_groups_are_ignored() {
        assert_eq!(route(None, &row(8, "private", Some("/start abcd2345"))), Route::Pair { code: "ABCD2345".into() });
        assert_eq!(route(Some(7), &row(7, "private", Some("/start ABCD2345"))), Route::Pair { code: "ABCD2345".into() });
        assert_eq!(route(Some(7), &row(7, "group", Some("hi"))), Route::Ignore);
        assert_eq!(route(Some(7), &row(7, "supergroup", Some("/start ABCD2345"))), Route::Ignore);
        assert_eq!(route(Some(7), &row(7, "group", Some("/pause all"))), Route::Ignore, "admin commands only in private");
    }
}
