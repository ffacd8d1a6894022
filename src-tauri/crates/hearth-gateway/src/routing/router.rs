//! Who is writing, and what happens to their message. A pure function of the member's binding
//! and the inbox row, so every rule is unit-tested.
//!
//! Only the member's paired Telegram user, in a private chat, ever reaches a lane. Everyone
//! else — strangers who found the bot's @username, group chats the bot was added to — stops here:
//! no worker, no model call, no spend.
//!
//! The household bot has rules of its own ([`route_household`]): members are known by the
//! Telegram user id they paired with on their own bot; in its private chat a member gets a short
//! help and an admin's `/start` makes it their channel; in a group only a member who mentions
//! it or answers one of its messages, in a group the admin allowed, gets a group turn.

use hearth_proto::control::GroupState;

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
        (_, MessageKind::Stop | MessageKind::Membership) => Route::Ignore,
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

/// Who wrote to the household bot, as the roster knows them (by their paired Telegram user).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Speaker {
    pub member_id: String,
    pub is_admin: bool,
}

/// What happens to a message to the household bot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HouseholdRoute {
    /// `/start` from an admin in the private chat: the chat becomes their channel for alerts and
    /// approvals, and they get the help.
    AdminStart,
    /// A member in the private chat, or `/help@bot` in an allowed group: the short help. No
    /// model: private conversations stay with the member's own bot.
    Help,
    /// Someone who is no member, in the private chat: the stranger policy.
    Stranger,
    /// The bot was added to a group (`present`) or left it.
    Membership { present: bool },
    /// A member mentioned the bot or replied to it, in an allowed group: a group turn, charged to
    /// that member, with their role's tools.
    GroupTurn { member_id: String },
    /// Nothing at all — no reply, no worker, no model; `outcome` says why.
    Ignore { outcome: &'static str },
}

/// The household bot as routing needs it.
#[derive(Debug, Clone, Copy)]
pub struct HouseholdBot<'a> {
    pub bot_id: i64,
    /// Its @username, without the `@`.
    pub username: &'a str,
}

/// Whether a group message is for the household bot: a `mention` of its username (or the
/// `@username` in the text, for clients that send no entity), a mention by id, a `/command@bot`,
/// or a reply to one of its messages. Mention mode: with Telegram's privacy mode off the bot
/// receives every message, and still answers only these.
pub fn addressed(bot: HouseholdBot<'_>, row: &InboxRow) -> bool {
    let name = bot.username.to_ascii_lowercase();
    let Some(info) = &row.msg.group else { return false };
    if info.mentions.contains(&name)
        || info.mentioned_ids.contains(&bot.bot_id)
        || info.reply_to_user == Some(bot.bot_id)
    {
        return true;
    }
    let text = row.msg.text.as_deref().unwrap_or("").to_lowercase();
    let at = format!("@{name}");
    text.match_indices(&at).any(|(i, _)| {
        // Not a longer name that starts with this one (`@home_bot2`).
        let next = text[i + at.len()..].chars().next();
        !next.is_some_and(|c| c.is_alphanumeric() || c == '_')
    })
}

/// Routes one row of the household bot. `speaker` is the member whose paired Telegram user
/// wrote; `group` the known state of the row's group chat (the core loop records a group it has
/// not seen as pending before routing).
pub fn route_household(
    bot: HouseholdBot<'_>,
    speaker: Option<&Speaker>,
    group: Option<GroupState>,
    row: &InboxRow,
) -> HouseholdRoute {
    let text = row.msg.text.as_deref().unwrap_or("");
    let cmd = if row.msg.kind == MessageKind::Text { command(text) } else { None };
    match row.msg.chat_type.as_str() {
        "private" => match (speaker, row.msg.kind) {
            (_, MessageKind::Stop | MessageKind::Membership) => HouseholdRoute::Ignore { outcome: "ignored" },
            // The household bot puts no buttons in private chats yet.
            (_, MessageKind::Callback) => HouseholdRoute::Ignore { outcome: "ignored" },
            (None, _) => HouseholdRoute::Stranger,
            (Some(s), _) if s.is_admin && cmd.as_ref().is_some_and(|(c, _)| c == "start") => HouseholdRoute::AdminStart,
            (Some(_), _) => HouseholdRoute::Help,
        },
        "group" | "supergroup" => {
            if row.msg.kind == MessageKind::Membership {
                let present = matches!(text, "member" | "administrator" | "creator" | "restricted");
                return HouseholdRoute::Membership { present };
            }
            match group {
                Some(GroupState::Allowed) => {}
                Some(GroupState::Refused) => return HouseholdRoute::Ignore { outcome: "group_refused" },
                _ => return HouseholdRoute::Ignore { outcome: "group_pending" },
            }
            let Some(speaker) = speaker else { return HouseholdRoute::Ignore { outcome: "not_a_member" } };
            // `/help@bot` is for this bot; a bare `/help` may be for any bot in the group.
            if let Some((c, _)) = &cmd
                && c == "help"
                && text.split_whitespace().next().is_some_and(|head| {
                    head.split_once('@').is_some_and(|(_, to)| to.eq_ignore_ascii_case(bot.username))
                })
            {
                return HouseholdRoute::Help;
            }
            if !addressed(bot, row) {
                return HouseholdRoute::Ignore { outcome: "not_addressed" };
            }
            if row.msg.kind != MessageKind::Text {
                // Voice, photos and files in the group come later; a caption mention is no turn.
                return HouseholdRoute::Ignore { outcome: "unsupported" };
            }
            HouseholdRoute::GroupTurn { member_id: speaker.member_id.clone() }
        }
        _ => HouseholdRoute::Ignore { outcome: "ignored" },
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
                group: None,
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

    const HOME: HouseholdBot<'static> = HouseholdBot { bot_id: 555, username: "Home_Bot" };

    fn group_row(from: i64, text: &str, info: crate::store::GroupInfo) -> InboxRow {
        let mut r = row(from, "supergroup", Some(text));
        r.member_id = crate::store::HOUSEHOLD_ID.into();
        r.msg.chat_id = -100;
        r.msg.group = Some(info);
        r
    }

    fn ana() -> Speaker {
        Speaker { member_id: "ana-abcd".into(), is_admin: false }
    }

    #[test]
    fn the_household_bot_in_private_helps_members_and_records_admins() {
        let admin = Speaker { member_id: "mum-abcd".into(), is_admin: true };
        let private = |text| row(7, "private", Some(text));
        assert_eq!(route_household(HOME, Some(&admin), None, &private("/start")), HouseholdRoute::AdminStart);
        assert_eq!(route_household(HOME, Some(&admin), None, &private("what's up")), HouseholdRoute::Help);
        assert_eq!(route_household(HOME, Some(&ana()), None, &private("/start")), HouseholdRoute::Help);
        assert_eq!(route_household(HOME, Some(&ana()), None, &private("tell me a joke")), HouseholdRoute::Help);
        assert_eq!(route_household(HOME, None, None, &private("/start ABCD2345")), HouseholdRoute::Stranger);
        assert_eq!(route_household(HOME, None, None, &private("hi")), HouseholdRoute::Stranger);
    }

    #[test]
    fn a_group_turn_needs_an_allowed_group_a_member_and_a_mention_or_reply() {
        let allowed = Some(GroupState::Allowed);
        let mention = crate::store::GroupInfo { mentions: vec!["home_bot".into()], ..Default::default() };
        let turn = HouseholdRoute::GroupTurn { member_id: "ana-abcd".into() };
        let r = group_row(7, "@Home_Bot who picks up Sam?", mention.clone());
        assert_eq!(route_household(HOME, Some(&ana()), allowed, &r), turn);
        assert_eq!(route_household(HOME, Some(&ana()), None, &r), HouseholdRoute::Ignore { outcome: "group_pending" });
        assert_eq!(
            route_household(HOME, Some(&ana()), Some(GroupState::Pending), &r),
            HouseholdRoute::Ignore { outcome: "group_pending" }
        );
        assert_eq!(
            route_household(HOME, Some(&ana()), Some(GroupState::Refused), &r),
            HouseholdRoute::Ignore { outcome: "group_refused" }
        );
        assert_eq!(route_household(HOME, None, allowed, &r), HouseholdRoute::Ignore { outcome: "not_a_member" });
        let plain = group_row(7, "we're out of milk", Default::default());
        assert_eq!(route_household(HOME, Some(&ana()), allowed, &plain), HouseholdRoute::Ignore { outcome: "not_addressed" });
        let reply = crate::store::GroupInfo { reply_to_user: Some(555), ..Default::default() };
        assert_eq!(route_household(HOME, Some(&ana()), allowed, &group_row(7, "and tomorrow?", reply)), turn);
        let to_someone_else = crate::store::GroupInfo { reply_to_user: Some(9), ..Default::default() };
        assert_eq!(
            route_household(HOME, Some(&ana()), allowed, &group_row(7, "ok", to_someone_else)),
            HouseholdRoute::Ignore { outcome: "not_addressed" }
        );
        let by_id = crate::store::GroupInfo { mentioned_ids: vec![555], ..Default::default() };
        assert_eq!(route_household(HOME, Some(&ana()), allowed, &group_row(7, "Home, hi", by_id)), turn);
        // The name in the text without an entity counts; a longer name does not.
        assert_eq!(route_household(HOME, Some(&ana()), allowed, &group_row(7, "hey @home_bot!", Default::default())), turn);
        assert_eq!(
            route_household(HOME, Some(&ana()), allowed, &group_row(7, "hey @home_bot2", Default::default())),
            HouseholdRoute::Ignore { outcome: "not_addressed" }
        );
        let mut photo = group_row(7, "@home_bot what is this", mention);
        photo.msg.kind = MessageKind::Photo;
        assert_eq!(route_household(HOME, Some(&ana()), allowed, &photo), HouseholdRoute::Ignore { outcome: "unsupported" });
    }

    #[test]
    fn group_help_only_when_named_and_membership_changes() {
        let allowed = Some(GroupState::Allowed);
        let help = group_row(7, "/help@home_bot", Default::default());
        assert_eq!(route_household(HOME, Some(&ana()), allowed, &help), HouseholdRoute::Help);
        let bare = group_row(7, "/help", Default::default());
        assert_eq!(route_household(HOME, Some(&ana()), allowed, &bare), HouseholdRoute::Ignore { outcome: "not_addressed" });
        let mut joined = group_row(7, "member", Default::default());
        joined.msg.kind = MessageKind::Membership;
        assert_eq!(route_household(HOME, None, None, &joined), HouseholdRoute::Membership { present: true });
        joined.msg.text = Some("left".into());
        assert_eq!(route_household(HOME, None, None, &joined), HouseholdRoute::Membership { present: false });
        // The member routing never takes a membership row for a message.
        assert_eq!(route(Some(7), &joined), Route::Ignore);
    }
}
