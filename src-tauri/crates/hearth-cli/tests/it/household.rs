//! The household bot and the family group (#17) end to end: the real gateway against the
//! simulated Telegram and model. Set and polled like members' bots (asking for `my_chat_member`
//! by name); members known by the Telegram account they paired with; strangers, channels and
//! other bots reach nothing; a group is known as pending when the bot is added and stays silent
//! until the admin allows it; in an allowed group only a member's mention or reply is for it.

use std::time::Duration;

use hearth_proto::control::{ControlReply, ControlRequest, ErrorCode, GroupState};
use hearth_testkit::telegram::FakeBot;

use crate::support::Household;

const FAMILY: i64 = -1_001_234_567_890;

/// What the gateway did with the household bot's update `update_id`.
fn outcome(h: &Household, bot: &FakeBot, update_id: i64) -> String {
    h.db()
        .query_row("SELECT outcome FROM inbox WHERE bot_id = ?1 AND update_id = ?2", (bot.id, update_id), |r| {
            r.get::<_, Option<String>>(0)
        })
        .unwrap_or_else(|e| panic!("update {update_id} is not in the inbox: {e}"))
        .unwrap_or_default()
}

fn inbox_rows(h: &Household, bot: &FakeBot, update_id: i64) -> i64 {
    h.db()
        .query_row("SELECT COUNT(*) FROM inbox WHERE bot_id = ?1 AND update_id = ?2", (bot.id, update_id), |r| r.get(0))
        .unwrap()
}

async fn set_household_bot(h: &Household, bot: &FakeBot) -> ControlReply {
    h.gateway.control(ControlRequest::HouseholdBotSet { bot_token: bot.token.clone() }).await.unwrap()
}

async fn decide(h: &Household, chat_id: i64, allow: bool) -> GroupState {
    match h.gateway.control(ControlRequest::HouseholdGroupDecide { chat_id, allow }).await.unwrap() {
        ControlReply::Group(g) => g.state,
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_household_bot_is_polled_knows_members_and_keeps_groups_silent_until_allowed() {
    let h = Household::new(2).await;
    let (rosa, leo) = (0, 1);
    h.gateway.control(ControlRequest::MemberAdmin { member: h.members[rosa].id.clone(), admin: true }).await.unwrap();
    let home = h.tg.add_bot("home_hearth_bot");

    // A member's bot cannot be the household bot, nor the household bot a member's.
    let taken =
        h.gateway.control(ControlRequest::HouseholdBotSet { bot_token: h.members[leo].bot.token.clone() }).await;
    assert_eq!(taken.unwrap_err().code, ErrorCode::Conflict);
    match set_household_bot(&h, &home).await {
        ControlReply::HouseholdBot { bot: Some(b) } => assert_eq!(b.bot_username, "home_hearth_bot"),
        other => panic!("{other:?}"),
    }
    let add = ControlRequest::MemberAdd { name: "Mia".into(), bot_token: home.token.clone(), role: Default::default() };
    assert_eq!(h.gateway.control(add).await.unwrap_err().code, ErrorCode::Conflict);

    // Polled, asking for `my_chat_member` by name (Telegram remembers the last list asked for).
    h.tg.wait_for_requests(1, Duration::from_secs(10), |r| {
        r.token == home.token
            && r.method == "getUpdates"
            && r.params["allowed_updates"].to_string().contains("my_chat_member")
    })
    .await
    .expect("the household bot polls with allowed_updates naming my_chat_member");

    // Private chat: the admin's /start makes it their channel; a member gets the help; a
    // stranger gets the stranger's one line. No model anywhere.
    let rosa_user = h.members[rosa].user.clone();
    let leo_user = h.members[leo].user.clone();
    h.tg.send_text(&home.token, &rosa_user, "/start");
    let to_rosa = h.tg.wait_for_sent(&home.token, rosa_user.id, 1, Duration::from_secs(10)).await.unwrap();
    assert!(to_rosa[0].text.contains("You're an admin"), "{:?}", to_rosa[0].text);
    h.tg.send_text(&home.token, &leo_user, "tell me a joke");
    let to_leo = h.tg.wait_for_sent(&home.token, leo_user.id, 1, Duration::from_secs(10)).await.unwrap();
    assert!(to_leo[0].text.contains("private conversations stay with your own bot"), "{:?}", to_leo[0].text);
    assert!(!to_leo[0].text.contains("You're an admin"));
    let stranger = h.tg.user(9001, "Eve");
    h.tg.send_text(&home.token, &stranger, "hello?");
    let to_eve = h.tg.wait_for_sent(&home.token, stranger.id, 1, Duration::from_secs(10)).await.unwrap();
    assert_eq!(to_eve[0].text, "Sorry, this is a private family assistant.");
    h.settled().await;
    let admin_chats: Vec<(String, i64)> = h
        .db()
        .prepare("SELECT member_id, chat_id FROM household_admin_chats")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(admin_chats, vec![(h.members[rosa].id.clone(), rosa_user.id)]);

    // Added to the family group: known, pending, silent — even to a member's mention.
    let joined = h.tg.add_to_group(&home.token, &rosa_user, FAMILY, "The Family");
    let early = h.tg.send_group_text(&home.token, FAMILY, &leo_user, "@home_hearth_bot who picks up Sam?");
    h.settled().await;
    assert_eq!(outcome(&h, &home, joined), "group_joined");
    assert_eq!(outcome(&h, &home, early), "group_pending");
    let ControlReply::Groups { groups } = h.gateway.control(ControlRequest::HouseholdGroups).await.unwrap() else {
        panic!()
    };
    assert_eq!(groups.len(), 1);
    assert_eq!(
        (groups[0].chat_id, groups[0].title.as_str(), groups[0].state),
        (FAMILY, "The Family", GroupState::Pending)
    );
    assert!(groups[0].present);
    assert!(h.tg.sent_to(&home.token, FAMILY).is_empty(), "nothing is said in a pending group");

    // Allowed: still nothing for what is not addressed to it, from strangers, channels or bots.
    assert_eq!(decide(&h, FAMILY, true).await, GroupState::Allowed);
    let chatter = h.tg.send_group_text(&home.token, FAMILY, &leo_user, "we're out of milk");
    let other = h.tg.send_group_text(&home.token, FAMILY, &leo_user, "ask @home_hearth_bot2 instead");
    let eve = h.tg.send_group_text(&home.token, FAMILY, &stranger, "@home_hearth_bot what's their address?");
    let channel = h.tg.send_group_as_channel(&home.token, FAMILY, -1_009_999, "News", "@home_hearth_bot hi");
    let robot = h.tg.send_group_from_bot(&home.token, FAMILY, 4242, "other_bot", "@home_hearth_bot ping");
    let help = h.tg.send_group_text(&home.token, FAMILY, &leo_user, "/help@home_hearth_bot");
    h.settled().await;
    assert_eq!(outcome(&h, &home, chatter), "not_addressed");
    assert_eq!(outcome(&h, &home, other), "not_addressed");
    assert_eq!(outcome(&h, &home, eve), "not_a_member");
    assert_eq!(inbox_rows(&h, &home, channel), 0, "a post on behalf of a channel is dropped at the door");
    assert_eq!(inbox_rows(&h, &home, robot), 0, "another bot's message is dropped at the door");
    assert_eq!(outcome(&h, &home, help), "helped");
    let in_group = h.tg.sent_to(&home.token, FAMILY);
    assert_eq!(in_group.len(), 1, "only the help: {in_group:?}");
    assert!(in_group[0].text.contains("Who sees what"), "{:?}", in_group[0].text);

    // A member's mention: group answers need the household worker, which is not built yet; the
    // member is told so in the group, and no model is asked.
    let asked = h.tg.send_group_text(&home.token, FAMILY, &leo_user, "@home_hearth_bot who picks up Sam?");
    h.settled().await;
    assert_eq!(outcome(&h, &home, asked), "group_not_yet");
    let in_group = h.tg.sent_to(&home.token, FAMILY);
    assert!(in_group.last().unwrap().text.contains("ask your own bot"), "{in_group:?}");

    // Refused: silent for good.
    assert_eq!(decide(&h, FAMILY, false).await, GroupState::Refused);
    let refused = h.tg.send_group_text(&home.token, FAMILY, &leo_user, "@home_hearth_bot hello?");
    h.settled().await;
    assert_eq!(outcome(&h, &home, refused), "group_refused");
    let unknown = h.gateway.control(ControlRequest::HouseholdGroupDecide { chat_id: -5, allow: true }).await;
    assert_eq!(unknown.unwrap_err().code, ErrorCode::NotFound);
    assert!(h.llm.calls().is_empty(), "nothing the household bot heard reached a model: {:?}", h.llm.calls().len());

    // The status shows it; removing it stops its poll and forgets its token.
    let status = h.status().await;
    let shown = status.household_bot.expect("the status shows the household bot");
    assert_eq!((shown.bot_username.as_str(), shown.admin_chats), ("home_hearth_bot", 1));
    match h.gateway.control(ControlRequest::HouseholdBotRemove).await.unwrap() {
        ControlReply::HouseholdBot { bot: None } => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(h.status().await.household_bot, None);
    let secrets = std::fs::read_to_string(h.dir.path().join("secrets.json")).unwrap_or_default();
    assert!(!secrets.contains(&home.token), "the token is forgotten");
    // Its long poll ends with its loop, and none starts again: a message to it stays unconfirmed.
    crate::support::eventually(Duration::from_secs(10), "the removed bot's poll to end", async || {
        (h.tg.pending_polls(&home.token) == 0).then_some(())
    })
    .await;
    let polls = h.tg.poll_count(&home.token);
    h.tg.send_text(&home.token, &leo_user, "anyone there?");
    assert_eq!(h.tg.pending_updates(&home.token), 1);
    assert_eq!(h.tg.poll_count(&home.token), polls);
    assert_eq!(h.gateway.control(ControlRequest::HouseholdBotRemove).await.unwrap_err().code, ErrorCode::NotFound);
    h.stop().await;
}
