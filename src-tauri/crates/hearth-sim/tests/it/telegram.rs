//! The fake Telegram against teloxide 0.17 itself — the client the gateway uses — and against
//! raw HTTP for what teloxide never sends (forms, bad paths, broken bodies).

use std::time::{Duration, Instant};

use hearth_sim::telegram::{FakeTelegram, Fault};
use serde_json::{Value, json};
use teloxide::prelude::*;
use teloxide::types::{
    BotCommand, BotCommandScope, ChatAction, InlineKeyboardButton, InlineKeyboardMarkup,
    MessageEntityKind, ParseMode, Recipient, UpdateKind,
};
use teloxide::{ApiError, RequestError};

fn client(fake: &FakeTelegram, token: &str) -> Bot {
    Bot::new(token).set_api_url(fake.api_url().parse().expect("api url parses"))
}

/// Waits (bounded) for a condition on the fake that the test cannot be notified of.
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(3);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn raw_post(fake: &FakeTelegram, path: &str, body: Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}{path}", fake.api_url()))
        .json(&body)
        .send()
        .await
        .expect("request reaches the fake");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test]
async fn get_me_round_trips_through_teloxide() {
    let fake = FakeTelegram::start().await;
    let alice_bot = fake.add_bot("alice_hearth_bot");
    let (id, secret) = alice_bot.token.split_once(':').expect("token has a colon");
    assert_eq!(id, alice_bot.id.to_string());
    assert_eq!(secret.len(), 35);
    assert!(
        secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    );

    let me = client(&fake, &alice_bot.token)
        .get_me()
        .await
        .expect("getMe");
    assert_eq!(me.id.0 as i64, alice_bot.id);
    assert!(me.is_bot);
    assert_eq!(me.username(), "alice_hearth_bot");
    assert_eq!(
        fake.requests().last().map(|r| (r.method.clone(), r.status)),
        Some(("getMe".to_owned(), 200))
    );
}

#[tokio::test]
async fn wait_for_requests_wakes_on_each_request_and_says_what_it_saw() {
    let fake = FakeTelegram::start().await;
    let bot = fake.add_bot("w_bot");
    let token = bot.token.clone();
    let waiter = {
        let fake = fake.clone();
        tokio::spawn(async move {
            fake.wait_for_requests(2, Duration::from_secs(10), |r| {
                r.token == token && r.method == "getMe" && r.status == 200
            })
            .await
        })
    };
    let tg = client(&fake, &bot.token);
    tg.get_me().await.expect("getMe");
    tg.get_me().await.expect("getMe");
    assert_eq!(waiter.await.expect("waiter"), Ok(2));
    let err = fake
        .wait_for_requests(3, Duration::from_millis(10), |r| r.method == "getMe")
        .await
        .unwrap_err();
    assert!(err.contains("2 of the 3"), "{err}");
}

#[tokio::test]
async fn long_poll_waits_then_wakes_on_a_message() {
    let fake = FakeTelegram::start().await;
    let bot = fake.add_bot("b_bot");
    let tg = client(&fake, &bot.token);
    let poll = tokio::spawn(async move { tg.get_updates().timeout(10).await });
    eventually("the poll to wait", || fake.pending_polls(&bot.token) == 1).await;
    // No sleep to show it keeps waiting: a poll answered early would have returned nothing,
    // and it returns the message sent below.
    assert!(
        !poll.is_finished(),
        "the poll must wait while there is nothing to deliver"
    );

    let grandma = fake.user(4242, "Grandma");
    let sent_at = Instant::now();
    let update_id = fake.send_text(&bot.token, &grandma, "/start 123abc");
    let updates = poll.await.expect("poll task").expect("getUpdates");
    let woke_after = sent_at.elapsed();
    assert!(
        woke_after < Duration::from_millis(200),
        "woke after {woke_after:?}"
    );
    assert_eq!(fake.pending_polls(&bot.token), 0);

    assert_eq!(updates.len(), 1);
    assert_eq!(updates[0].id.0 as i64, update_id);
    let UpdateKind::Message(message) = &updates[0].kind else {
        panic!("teloxide did not see a message: {:?}", updates[0].kind);
    };
    assert_eq!(message.chat.id, ChatId(4242));
    assert!(message.chat.is_private());
    let from = message.from.as_ref().expect("from");
    assert_eq!(
        (
            from.id.0,
            from.first_name.as_str(),
            from.username.as_deref()
        ),
        (4242, "Grandma", Some("grandma"))
    );
    assert_eq!(message.text(), Some("/start 123abc"));
    let entities = message.entities().expect("a command has an entity");
    assert_eq!(
        (
            entities[0].kind.clone(),
            entities[0].offset,
            entities[0].length
        ),
        (MessageEntityKind::BotCommand, 0, 6)
    );
}

#[tokio::test]
async fn a_long_poll_with_nothing_to_deliver_returns_empty_at_its_timeout() {
    let fake = FakeTelegram::start().await;
    let bot = fake.add_bot("b_bot");
    let started = Instant::now();
    let updates = client(&fake, &bot.token)
        .get_updates()
        .timeout(1)
        .await
        .expect("getUpdates");
    assert!(updates.is_empty());
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(950) && waited < Duration::from_secs(3),
        "waited {waited:?}"
    );
    assert_eq!(fake.poll_count(&bot.token), 1);
}

#[tokio::test]
async fn offset_confirms_and_limit_caps() {
    let fake = FakeTelegram::start().await;
    let bot = fake.add_bot("b_bot");
    let tg = client(&fake, &bot.token);
    let kid = fake.user(7, "Kid");
    let ids: Vec<i64> = (0..3)
        .map(|i| fake.send_text(&bot.token, &kid, &format!("m{i}")))
        .collect();
    assert!(
        ids.windows(2).all(|w| w[1] == w[0] + 1),
        "update ids increase by one: {ids:?}"
    );

    let first_two = tg.get_updates().limit(2).await.expect("getUpdates");
    assert_eq!(
        first_two.iter().map(|u| u.id.0 as i64).collect::<Vec<_>>(),
        ids[..2]
    );
    // Without an offset nothing is confirmed.
    assert_eq!(fake.pending_updates(&bot.token), 3);

    let rest = tg
        .get_updates()
        .offset(ids[1] as i32)
        .await
        .expect("getUpdates");
    assert_eq!(
        rest.iter().map(|u| u.id.0 as i64).collect::<Vec<_>>(),
        ids[1..]
    );
    assert_eq!(fake.pending_updates(&bot.token), 2);

    let none = tg
        .get_updates()
        .offset((ids[2] + 1) as i32)
        .await
        .expect("getUpdates");
    assert!(none.is_empty());
    assert_eq!(fake.pending_updates(&bot.token), 0);

    // A negative offset returns the last N and forgets the rest.
    let later: Vec<i64> = (0..3)
        .map(|i| fake.send_text(&bot.token, &kid, &format!("n{i}")))
        .collect();
    let last = tg.get_updates().offset(-1).await.expect("getUpdates");
    assert_eq!(
        last.iter().map(|u| u.id.0 as i64).collect::<Vec<_>>(),
        [later[2]]
    );
    assert_eq!(fake.pending_updates(&bot.token), 1);
}

#[tokio::test]
async fn a_second_poller_ends_the_first_with_409() {
    let fake = FakeTelegram::start().await;
    let bot = fake.add_bot("b_bot");
    let first = tokio::spawn(
        client(&fake, &bot.token)
            .get_updates()
            .timeout(10)
            .into_future(),
    );
    eventually("the first poll to wait", || {
        fake.pending_polls(&bot.token) == 1
    })
    .await;
    let second = tokio::spawn(
        client(&fake, &bot.token)
            .get_updates()
            .timeout(10)
            .into_future(),
    );

    let first = tokio::time::timeout(Duration::from_secs(2), first)
        .await
        .expect("first poll answered")
        .expect("task");
    assert!(
        matches!(
            first,
            Err(RequestError::Api(ApiError::TerminatedByOtherGetUpdates))
        ),
        "{first:?}"
    );
    eventually("the second poll to wait", || {
        fake.pending_polls(&bot.token) == 1
    })
    .await;

    fake.send_text(&bot.token, &fake.user(1, "Dad"), "hi");
    let second = tokio::time::timeout(Duration::from_secs(2), second)
        .await
        .expect("second poll answered")
        .expect("task");
    assert_eq!(second.expect("second poll gets the update").len(), 1);
}

#[tokio::test]
async fn an_external_poller_makes_every_poll_conflict() {
    let fake = FakeTelegram::start().await;
    let bot = fake.add_bot("b_bot");
    let tg = client(&fake, &bot.token);
    let waiting = tokio::spawn(tg.get_updates().timeout(10).into_future());
    eventually("the poll to wait", || fake.pending_polls(&bot.token) == 1).await;

    fake.set_external_poller(&bot.token, true);
    let waiting = tokio::time::timeout(Duration::from_secs(2), waiting)
        .await
        .expect("answered")
        .expect("task");
    assert!(
        matches!(
            waiting,
            Err(RequestError::Api(ApiError::TerminatedByOtherGetUpdates))
        ),
        "{waiting:?}"
    );
    let started = Instant::now();
    let again = tg.get_updates().timeout(5).await;
    assert!(
        matches!(
            again,
            Err(RequestError::Api(ApiError::TerminatedByOtherGetUpdates))
        ),
        "{again:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "409 comes at once"
    );

    fake.set_external_poller(&bot.token, false);
    assert!(
        tg.get_updates()
            .await
            .expect("polling works again")
            .is_empty()
    );
}

#[tokio::test]
async fn revoked_and_unknown_tokens_are_unauthorized() {
    let fake = FakeTelegram::start().await;
    let bot = fake.add_bot("b_bot");
    let tg = client(&fake, &bot.token);
    tg.get_me().await.expect("valid token works");

    let waiting = tokio::spawn(tg.get_updates().timeout(10).into_future());
    eventually("the poll to wait", || fake.pending_polls(&bot.token) == 1).await;
    fake.revoke(&bot.token);
    let waiting = tokio::time::timeout(Duration::from_secs(2), waiting)
        .await
        .expect("answered")
        .expect("task");
    assert!(
        matches!(waiting, Err(RequestError::Api(ApiError::InvalidToken))),
        "{waiting:?}"
    );
    let me = tg.get_me().await;
    assert!(
        matches!(me, Err(RequestError::Api(ApiError::InvalidToken))),
        "{me:?}"
    );

    let stranger = client(&fake, "123456:AAnot-a-real-token-at-all-xxxxxxxxxx")
        .get_me()
        .await;
    assert!(
        matches!(stranger, Err(RequestError::Api(ApiError::InvalidToken))),
        "{stranger:?}"
    );
    let (status, body) = raw_post(&fake, "/bot1:nope/getMe", json!({})).await;
    assert_eq!(
        (status, body),
        (
            401,
            json!({"ok":false,"error_code":401,"description":"Unauthorized"})
        )
    );
}

#[tokio::test]
async fn rate_limit_becomes_retry_after_and_counts_down() {
    let fake = FakeTelegram::start().await;
    let bot = fake.add_bot("b_bot");
    let tg = client(&fake, &bot.token);
    fake.inject(
        &bot.token,
        Fault::RateLimit {
            retry_after_secs: 7,
            times: 2,
        },
    );
    for _ in 0..2 {
        match tg.get_me().await {
            Err(RequestError::RetryAfter(secs)) => assert_eq!(secs.seconds(), 7),
            other => panic!("expected RetryAfter, got {other:?}"),
        }
    }
    tg.get_me().await.expect("the fault is used up");
    let statuses: Vec<u16> = fake.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [429, 429, 200]);
    let (_, body) = {
        fake.inject(
            &bot.token,
            Fault::RateLimit {
                retry_after_secs: 3,
                times: 1,
            },
        );
        raw_post(&fake, &format!("/bot{}/sendMessage", bot.token), json!({})).await
    };
    assert_eq!(
        body,
        json!({"ok":false,"error_code":429,"description":"Too Many Requests: retry after 3","parameters":{"retry_after":3}})
    );
}

#[tokio::test]
async fn latency_delays_every_response_until_cleared() {
    let fake = FakeTelegram::start().await;
    let bot = fake.add_bot("b_bot");
    let tg = client(&fake, &bot.token);
    fake.inject(&bot.token, Fault::Latency(Duration::from_millis(300)));
    for _ in 0..2 {
        let started = Instant::now();
        tg.get_me().await.expect("getMe");
        assert!(
            started.elapsed() >= Duration::from_millis(300),
            "{:?}",
            started.elapsed()
        );
    }
    fake.clear_faults(&bot.token);
    let started = Instant::now();
    tg.get_me().await.expect("getMe");
    assert!(
        started.elapsed() < Duration::from_millis(250),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn server_errors_and_method_failures() {
    let fake = FakeTelegram::start().await;
    let bot = fake.add_bot("b_bot");
    let path = format!("/bot{}/getMe", bot.token);
    fake.inject(
        &bot.token,
        Fault::ServerError {
            status: 502,
            times: 1,
        },
    );
    fake.inject(
        &bot.token,
        Fault::ServerError {
            status: 500,
            times: 1,
        },
    );
    let (status, body) = raw_post(&fake, &path, json!({})).await;
    assert_eq!(status, 502);
    assert!(
        body.as_str().is_some_and(|b| b.contains("502 Bad Gateway")),
        "{body}"
    );
    let (status, body) = raw_post(&fake, &path, json!({})).await;
    assert_eq!(
        (status, body),
        (
            500,
            json!({"ok":false,"error_code":500,"description":"Internal Server Error"})
        )
    );

    fake.send_text(&bot.token, &fake.user(5, "Mum"), "hi");
    fake.inject(
        &bot.token,
        Fault::MethodFails {
            method: "sendmessage".into(),
            status: 400,
            description: "Bad Request: boom".into(),
            times: 1,
        },
    );
    let tg = client(&fake, &bot.token);
    tg.get_me().await.expect("other methods are unaffected");
    let failed = tg.send_message(ChatId(5), "one").await;
    assert!(
        matches!(&failed, Err(RequestError::Api(ApiError::Unknown(d))) if d == "Bad Request: boom"),
        "{failed:?}"
    );
    tg.send_message(ChatId(5), "two").await.expect("only once");
    assert_eq!(
        fake.sent(&bot.token)
            .iter()
            .map(|m| m.text.as_str())
            .collect::<Vec<_>>(),
        ["two"]
    );
}

#[tokio::test]
async fn send_message_is_validated_like_telegram() {
    let fake = FakeTelegram::start().await;
    let bot = fake.add_bot("b_bot");
    let tg = client(&fake, &bot.token);
    let teen = fake.user(99, "Teen");

    let not_yet = tg.send_message(ChatId(99), "hello?").await;
    assert!(
        matches!(not_yet, Err(RequestError::Api(ApiError::ChatNotFound))),
        "{not_yet:?}"
    );
    fake.send_text(&bot.token, &teen, "hi");

    let empty = tg.send_message(ChatId(99), "  \n").await;
    assert!(
        matches!(empty, Err(RequestError::Api(ApiError::MessageTextIsEmpty))),
        "{empty:?}"
    );
    tg.send_message(ChatId(99), "a".repeat(4096))
        .await
        .expect("4096 is allowed");
    let long = tg.send_message(ChatId(99), "a".repeat(4097)).await;
    assert!(
        matches!(long, Err(RequestError::Api(ApiError::MessageIsTooLong))),
        "{long:?}"
    );
    // 2049 emoji are 4098 UTF-16 code units.
    let emoji = tg.send_message(ChatId(99), "😀".repeat(2049)).await;
    assert!(
        matches!(emoji, Err(RequestError::Api(ApiError::MessageIsTooLong))),
        "{emoji:?}"
    );
    // Markup does not count: 4096 visible characters inside <b>.
    tg.send_message(ChatId(99), format!("<b>{}</b>", "b".repeat(4096)))
        .parse_mode(ParseMode::Html)
        .await
        .expect("markup is free");

    for bad in [
        "1 < 2",
        "fish & chips",
        "<b>bold</i>",
        "<b>open",
        "<script>x</script>",
        "<span>x</span>",
    ] {
        let r = tg
            .send_message(ChatId(99), bad)
            .parse_mode(ParseMode::Html)
            .await;
        assert!(
            matches!(&r, Err(RequestError::Api(ApiError::CantParseEntities(d))) if d.starts_with("Bad Request: can't parse entities: ")),
            "{bad}: {r:?}"
        );
    }
    let md = tg
        .send_message(ChatId(99), "Done. Cost: 1-2")
        .parse_mode(ParseMode::MarkdownV2)
        .await;
    assert!(
        matches!(md, Err(RequestError::Api(ApiError::CantParseEntities(_)))),
        "{md:?}"
    );
    tg.send_message(ChatId(99), "Done\\. *Cost*: 1\\-2")
        .parse_mode(ParseMode::MarkdownV2)
        .await
        .expect("escaped");

    let good = tg
        .send_message(
            ChatId(99),
            "<b>Hi</b> &lt;3 <a href=\"https://example.com\">there</a>",
        )
        .parse_mode(ParseMode::Html)
        .await
        .expect("valid HTML");
    assert_eq!(good.text(), Some("Hi <3 there"));
    let kinds: Vec<_> = good
        .entities()
        .expect("entities")
        .iter()
        .map(|e| e.kind.clone())
        .collect();
    assert!(
        matches!(
            kinds.as_slice(),
            [MessageEntityKind::Bold, MessageEntityKind::TextLink { .. }]
        ),
        "{kinds:?}"
    );
    assert_eq!(good.from.as_ref().map(|u| u.id.0 as i64), Some(bot.id));

    let sent = fake.sent_to(&bot.token, 99);
    let last = sent.last().expect("sent");
    assert_eq!(last.text, "Hi <3 there");
    assert_eq!(last.parse_mode.as_deref(), Some("HTML"));
    assert!(last.source.starts_with("<b>Hi</b>"));
    assert_eq!(last.message_id, good.id.0 as i64);
    // Ids are one sequence per chat: the user's "hi" was 1.
    assert_eq!(sent.first().map(|m| m.message_id), Some(2));
    assert_eq!(sent.len(), 4, "rejected messages are not recorded as sent");
}

#[tokio::test]
async fn replies_to_missing_messages_are_refused_unless_allowed() {
    let fake = FakeTelegram::start().await;
    let bot = fake.add_bot("b_bot");
    fake.send_text(&bot.token, &fake.user(3, "Ann"), "question");
    let path = format!("/bot{}/sendMessage", bot.token);
    let (status, body) = raw_post(
        &fake,
        &path,
        json!({"chat_id":3,"text":"a","reply_parameters":{"message_id":1}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["reply_to_message"]["text"], "question");
    let (status, body) = raw_post(
        &fake,
        &path,
        json!({"chat_id":3,"text":"a","reply_parameters":{"message_id":77}}),
    )
    .await;
    assert_eq!(
        (status, body["description"].as_str()),
        (400, Some("Bad Request: message to be replied not found"))
    );
    let allowed = json!({"chat_id":3,"text":"a","reply_parameters":{"message_id":77,"allow_sending_without_reply":true}});
    assert_eq!(raw_post(&fake, &path, allowed).await.0, 200);
}

#[tokio::test]
async fn blocked_users_cannot_be_written_to() {
    let fake = FakeTelegram::start().await;
    let bot = fake.add_bot("b_bot");
    let tg = client(&fake, &bot.token);
    fake.send_text(&bot.token, &fake.user(8, "Zoe"), "hi");
    fake.set_blocked(&bot.token, 8, true);
    let r = tg.send_message(ChatId(8), "hello").await;
    assert!(
        matches!(r, Err(RequestError::Api(ApiError::BotBlocked))),
        "{r:?}"
    );
    fake.set_blocked(&bot.token, 8, false);
    tg.send_message(ChatId(8), "hello")
        .await
        .expect("unblocked");
}

#[tokio::test]
async fn edit_message_text_records_edits() {
    let fake = FakeTelegram::start().await;
    let bot = fake.add_bot("b_bot");
    let tg = client(&fake, &bot.token);
    fake.send_text(&bot.token, &fake.user(11, "Max"), "hi");
    let msg = tg
        .send_message(ChatId(11), "Thinking…")
        .await
        .expect("send");

    let edited = tg
        .edit_message_text(ChatId(11), msg.id, "<i>Done</i>")
        .parse_mode(ParseMode::Html)
        .await
        .expect("edit");
    assert_eq!(edited.text(), Some("Done"));
    assert!(edited.edit_date().is_some());
    let same = tg
        .edit_message_text(ChatId(11), msg.id, "<i>Done</i>")
        .parse_mode(ParseMode::Html)
        .await;
    assert!(
        matches!(same, Err(RequestError::Api(ApiError::MessageNotModified))),
        "{same:?}"
    );
    let missing = tg
        .edit_message_text(ChatId(11), teloxide::types::MessageId(999), "x")
        .await;
    assert!(
        matches!(
            missing,
            Err(RequestError::Api(ApiError::MessageToEditNotFound))
        ),
        "{missing:?}"
    );
    let bad = tg
        .edit_message_text(ChatId(11), msg.id, "<b>x")
        .parse_mode(ParseMode::Html)
        .await;
    assert!(
        matches!(bad, Err(RequestError::Api(ApiError::CantParseEntities(_)))),
        "{bad:?}"
    );
    tg.edit_message_text(ChatId(11), msg.id, "Done!")
        .await
        .expect("second edit");

    let sent = fake.sent(&bot.token);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].text, "Thinking…");
    assert_eq!(sent[0].edits, ["Done", "Done!"]);
    assert_eq!(sent[0].current_text(), "Done!");
}

fn approve_keyboard(raise: &str) -> InlineKeyboardMarkup {
    InlineKeyboardMarkup::new([[
        InlineKeyboardButton::callback("Approve", format!("raise:{raise}:yes")),
        InlineKeyboardButton::callback("Deny", format!("raise:{raise}:no")),
    ]])
}

#[tokio::test]
async fn an_admin_taps_an_inline_button_and_the_bot_answers_once() {
    let fake = FakeTelegram::start().await;
    let bot = fake.add_bot("b_bot");
    let tg = client(&fake, &bot.token);
    let admin = fake.user(31, "Mum");
    fake.send_text(&bot.token, &admin, "hi");
    let offset = tg.get_updates().await.expect("getUpdates")[0].id.0 + 1;

    let ask = tg
        .send_message(ChatId(31), "Kid asks to raise the cap to $5")
        .reply_markup(approve_keyboard("7"))
        .await
        .expect("send with a keyboard");
    assert_eq!(ask.reply_markup(), Some(&approve_keyboard("7")));
    tg.edit_message_text(ChatId(31), ask.id, "Kid asks to raise the cap to $6")
        .reply_markup(approve_keyboard("8"))
        .await
        .expect("edit keeps a keyboard");

    let update_id = fake.press_button(&bot.token, &admin, ask.id.0.into(), "raise:8:yes");
    let updates = tg
        .get_updates()
        .offset(offset as i32)
        .await
        .expect("getUpdates");
    assert_eq!(updates.len(), 1);
    assert_eq!(updates[0].id.0 as i64, update_id);
    let UpdateKind::CallbackQuery(query) = &updates[0].kind else {
        panic!(
            "teloxide did not see a callback query: {:?}",
            updates[0].kind
        );
    };
    assert_eq!(query.data.as_deref(), Some("raise:8:yes"));
    assert_eq!(query.from.id, UserId(31));
    assert!(!query.chat_instance.is_empty());
    let shown = query.regular_message().expect("the bot's message");
    assert_eq!(shown.id, ask.id);
    assert_eq!(shown.chat.id, ChatId(31));
    assert_eq!(shown.text(), Some("Kid asks to raise the cap to $6"));
    assert_eq!(shown.reply_markup(), Some(&approve_keyboard("8")));

    tg.answer_callback_query(query.id.clone())
        .text("Raised")
        .await
        .expect("first answer");
    // Telegram spells it "query ID", which teloxide 0.17's `InvalidQueryId` ("query id") misses.
    let again = tg.answer_callback_query(query.id.clone()).await;
    assert!(
        matches!(&again, Err(RequestError::Api(ApiError::Unknown(d)))
            if d == "Bad Request: query is too old and response timeout expired or query ID is invalid"),
        "{again:?}"
    );
    let (status, _) = raw_post(
        &fake,
        &format!("/bot{}/answerCallbackQuery", bot.token),
        json!({"callback_query_id": "12345"}),
    )
    .await;
    assert_eq!(status, 400, "an id never issued");
    assert_eq!(fake.callback_answers(&bot.token).len(), 1);
    assert_eq!(
        fake.callback_answers(&bot.token)[0],
        hearth_sim::telegram::CallbackAnswer {
            callback_query_id: query.id.0.clone(),
            text: Some("Raised".to_owned()),
            show_alert: false,
        }
    );

    let sent = fake.sent_to(&bot.token, 31);
    let recorded = serde_json::to_value(approve_keyboard("8")).expect("keyboard as JSON");
    assert_eq!(sent[0].reply_markup, Some(recorded));
    assert_eq!(sent[0].reply_markup_history.len(), 2, "sent, then edited");
}

#[tokio::test]
async fn edit_message_reply_markup_replaces_and_removes_the_keyboard() {
    let fake = FakeTelegram::start().await;
    let bot = fake.add_bot("b_bot");
    let tg = client(&fake, &bot.token);
    let admin = fake.user(32, "Dad");
    fake.send_text(&bot.token, &admin, "hi");
    let ask = tg
        .send_message(ChatId(32), "Raise the cap?")
        .reply_markup(approve_keyboard("1"))
        .await
        .expect("send");

    let swapped = tg
        .edit_message_reply_markup(ChatId(32), ask.id)
        .reply_markup(approve_keyboard("2"))
        .await
        .expect("replace the keyboard");
    assert_eq!(swapped.reply_markup(), Some(&approve_keyboard("2")));
    assert!(
        swapped.edit_date().is_none(),
        "a keyboard change is not an edit"
    );
    fake.press_button(&bot.token, &admin, ask.id.0.into(), "raise:2:no");

    let bare = tg
        .edit_message_reply_markup(ChatId(32), ask.id)
        .await
        .expect("remove the keyboard");
    assert_eq!(bare.reply_markup(), None);
    assert_eq!(bare.text(), Some("Raise the cap?"));
    let again = tg.edit_message_reply_markup(ChatId(32), ask.id).await;
    assert!(
        matches!(again, Err(RequestError::Api(ApiError::MessageNotModified))),
        "{again:?}"
    );

    let sent = &fake.sent_to(&bot.token, 32)[0];
    assert_eq!(sent.reply_markup, None, "the current keyboard: none");
    assert_eq!(sent.reply_markup_history.len(), 3);
    assert!(sent.reply_markup_history[0].is_some(), "as sent");

    let press = |message_id: i64, data: &str| {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            fake.press_button(&bot.token, &admin, message_id, data)
        }))
    };
    let pressed_gone = press(ask.id.0.into(), "raise:2:no");
    let why = pressed_gone.expect_err("no button is left to tap");
    let why = why.downcast_ref::<String>().expect("panic message");
    assert!(why.contains("no button with callback_data"), "{why}");
    let missing = press(999, "x").expect_err("a message that does not exist");
    let missing = missing.downcast_ref::<String>().expect("panic message");
    assert!(missing.contains("has no message 999"), "{missing}");
}

#[tokio::test]
async fn inline_keyboards_are_validated_like_telegram() {
    let fake = FakeTelegram::start().await;
    let bot = fake.add_bot("b_bot");
    let tg = client(&fake, &bot.token);
    fake.send_text(&bot.token, &fake.user(33, "Gran"), "hi");

    let keyboard = |data: String| {
        InlineKeyboardMarkup::new([[InlineKeyboardButton::callback("Approve", data)]])
    };
    tg.send_message(ChatId(33), "ok")
        .reply_markup(keyboard("x".repeat(64)))
        .await
        .expect("64 bytes is allowed");
    let long = tg
        .send_message(ChatId(33), "too long")
        .reply_markup(keyboard("x".repeat(65)))
        .await;
    assert!(
        matches!(long, Err(RequestError::Api(ApiError::ButtonDataInvalid))),
        "{long:?}"
    );
    // 22 three-byte characters are 66 bytes.
    let wide = tg
        .send_message(ChatId(33), "too wide")
        .reply_markup(keyboard("€".repeat(22)))
        .await;
    assert!(
        matches!(wide, Err(RequestError::Api(ApiError::ButtonDataInvalid))),
        "{wide:?}"
    );

    let path = format!("/bot{}/sendMessage", bot.token);
    let send = |markup: Value| json!({"chat_id": 33, "text": "x", "reply_markup": markup});
    for (markup, description) in [
        (
            json!({"inline_keyboard": [[{"text": "A"}]]}),
            "Bad Request: can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard",
        ),
        (
            json!({"inline_keyboard": [[{"text": "A", "callback_data": ""}]]}),
            "Bad Request: can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard",
        ),
        (
            json!({"inline_keyboard": [[{"callback_data": "a"}]]}),
            "Bad Request: can't parse inline keyboard button: Can't find field \"text\"",
        ),
        (
            json!({"inline_keyboard": [[{"text": "A", "callback_data": "a", "url": "https://e.com"}]]}),
            "Bad Request: can't parse inline keyboard button: a button must have exactly one action field, found url, callback_data",
        ),
        (
            json!({"inline_keyboard": [{"text": "A", "callback_data": "a"}]}),
            "Bad Request: field \"inline_keyboard\" of the InlineKeyboardMarkup must be an Array of Arrays",
        ),
    ] {
        let (status, body) = raw_post(&fake, &path, send(markup.clone())).await;
        assert_eq!(
            (status, body["description"].as_str()),
            (400, Some(description)),
            "{markup}"
        );
    }
    assert_eq!(
        fake.sent_to(&bot.token, 33).len(),
        1,
        "only the 64-byte one"
    );
}

#[tokio::test]
async fn wait_for_sent_wakes_on_send_and_explains_a_timeout() {
    let fake = FakeTelegram::start().await;
    let bot = fake.add_bot("helper_bot");
    let tg = client(&fake, &bot.token);
    fake.send_text(&bot.token, &fake.user(21, "Ann"), "hi");
    fake.send_text(&bot.token, &fake.user(22, "Ben"), "hi");

    let waiter = {
        let (fake, token) = (fake.clone(), bot.token.clone());
        tokio::spawn(async move {
            fake.wait_for_sent(&token, 21, 1, Duration::from_secs(5))
                .await
        })
    };
    tg.send_message(ChatId(21), "first for Ann")
        .await
        .expect("send");
    let got = tokio::time::timeout(Duration::from_secs(1), waiter)
        .await
        .expect("woken")
        .expect("task")
        .expect("sent");
    assert_eq!(got[0].text, "first for Ann");

    tg.send_message(ChatId(22), "for Ben").await.expect("send");
    let _ = tg
        .send_message(ChatId(21), "<b>broken")
        .parse_mode(ParseMode::Html)
        .await;
    let started = Instant::now();
    let err = fake
        .wait_for_sent(&bot.token, 21, 2, Duration::from_millis(200))
        .await
        .expect_err("only one was sent");
    assert!(started.elapsed() >= Duration::from_millis(200));
    for needle in [
        "sent 1 of the 2",
        "chat 21",
        "first for Ann",
        "for Ben",
        "can't parse entities",
    ] {
        assert!(err.contains(needle), "{needle:?} missing from: {err}");
    }
    let err = fake
        .wait_for_sent(&bot.token, 555, 1, Duration::from_millis(10))
        .await
        .expect_err("nobody");
    assert!(err.contains("never wrote"), "{err}");
}

#[tokio::test]
async fn chat_actions_and_commands_are_recorded() {
    let fake = FakeTelegram::start().await;
    let bot = fake.add_bot("b_bot");
    let tg = client(&fake, &bot.token);
    fake.send_text(&bot.token, &fake.user(31, "Eve"), "hi");
    tg.send_chat_action(ChatId(31), ChatAction::Typing)
        .await
        .expect("typing");
    assert_eq!(fake.chat_actions(&bot.token), [(31, "typing".to_owned())]);

    assert_eq!(fake.commands(&bot.token), None);
    tg.set_my_commands(vec![
        BotCommand::new("start", "Pair with Hearth"),
        BotCommand::new("help", "What I can do"),
    ])
    .await
    .expect("setMyCommands");
    assert_eq!(
        fake.commands(&bot.token).expect("stored")[1],
        json!({"command":"help","description":"What I can do"})
    );
    assert_eq!(tg.get_my_commands().await.expect("getMyCommands").len(), 2);
    let bad = tg
        .set_my_commands(vec![BotCommand::new("Start", "uppercase is refused")])
        .await;
    assert!(bad.is_err(), "{bad:?}");
    tg.delete_my_commands().await.expect("delete");
    assert_eq!(fake.commands(&bot.token), None);

    // A menu per scope: one chat's own beside everyone's, each read and deleted by its scope.
    let chat = || BotCommandScope::Chat {
        chat_id: Recipient::Id(ChatId(31)),
    };
    tg.set_my_commands(vec![BotCommand::new("help", "What I can do")])
        .await
        .expect("default");
    tg.set_my_commands(vec![BotCommand::new("status", "For the admin")])
        .scope(chat())
        .await
        .expect("scoped");
    assert_eq!(
        fake.commands_in(&bot.token, "chat:31").expect("stored")[0]["command"],
        "status"
    );
    assert_eq!(fake.commands(&bot.token).expect("stored")[0]["command"], "help");
    let scoped = tg.get_my_commands().scope(chat()).await.expect("get");
    assert_eq!(scoped[0].command, "status");
    let bad = tg
        .set_my_commands(vec![BotCommand::new("x", "y")])
        .scope(BotCommandScope::Chat {
            chat_id: Recipient::ChannelUsername(String::new()),
        })
        .await;
    assert!(bad.is_err(), "{bad:?}");
    tg.delete_my_commands().scope(chat()).await.expect("delete");
    assert_eq!(fake.commands_in(&bot.token, "chat:31"), None);
    assert!(fake.commands(&bot.token).is_some(), "another scope's menu stays");
    tg.delete_my_commands().await.expect("delete");

    let info = tg.get_webhook_info().await.expect("getWebhookInfo");
    assert!(info.url.is_none());
    tg.delete_webhook()
        .drop_pending_updates(true)
        .await
        .expect("deleteWebhook");
    assert_eq!(fake.pending_updates(&bot.token), 0);
}

#[tokio::test]
async fn raw_http_is_decoded_like_the_bot_api() {
    let fake = FakeTelegram::start().await;
    let bot = fake.add_bot("b_bot");
    fake.send_text(&bot.token, &fake.user(41, "Gus"), "hi");
    let http = reqwest::Client::new();
    let base = format!("{}/bot{}", fake.api_url(), bot.token);

    // Form body with numbers as strings, method name in another case.
    let r = http
        .post(format!("{base}/SENDMESSAGE"))
        .form(&[("chat_id", "41"), ("text", "form works")])
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    // Query string on a GET.
    let r = http
        .get(format!("{base}/sendMessage?chat_id=41&text=query%20works"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    assert_eq!(
        fake.sent(&bot.token)
            .iter()
            .map(|m| m.text.as_str())
            .collect::<Vec<_>>(),
        ["form works", "query works"]
    );

    let (status, body) =
        raw_post(&fake, &format!("/bot{}/noSuchMethod", bot.token), json!({})).await;
    assert_eq!(
        (status, body),
        (
            404,
            json!({"ok":false,"error_code":404,"description":"Not Found"})
        )
    );
    let (status, _) = raw_post(&fake, "/nothing/here", json!({})).await;
    assert_eq!(status, 404);
    let r = http
        .post(format!("{base}/sendMessage"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.expect("a JSON error even for a broken body");
    assert_eq!(
        (body["ok"].clone(), body["error_code"].clone()),
        (json!(false), json!(400))
    );
    let (status, body) = raw_post(
        &fake,
        &format!("/bot{}/sendMessage", bot.token),
        json!({"chat_id":"@someone","text":"x"}),
    )
    .await;
    assert_eq!(
        (status, body["description"].as_str()),
        (400, Some("Bad Request: chat not found"))
    );
    let (status, body) = raw_post(
        &fake,
        &format!("/bot{}/sendMessage", bot.token),
        json!({"chat_id":41,"text":"x","parse_mode":"Klingon"}),
    )
    .await;
    assert_eq!(
        (status, body["description"].as_str()),
        (400, Some("Bad Request: unsupported parse_mode"))
    );

    let methods: Vec<(String, u16)> = fake
        .requests()
        .iter()
        .map(|r| (r.method.clone(), r.status))
        .collect();
    assert_eq!(methods[0], ("sendMessage".to_owned(), 200));
    assert_eq!(methods[2], ("noSuchMethod".to_owned(), 404));
    assert_eq!(
        fake.requests()[0].params,
        json!({"chat_id":"41","text":"form works"})
    );
}

#[tokio::test]
async fn raw_updates_reach_the_poller_with_an_id() {
    let fake = FakeTelegram::start().await;
    let bot = fake.add_bot("b_bot");
    let a = fake.push_raw_update(&bot.token, json!({"message":{"weird":true}}));
    let b = fake.push_raw_update(&bot.token, json!("not even an object"));
    let c = fake.push_raw_update(
        &bot.token,
        json!({"message":{"message_id":50,"date":0,"chat":{"id":-5,"type":"private","first_name":"X"},"text":"t"}}),
    );
    let (_, body) = raw_post(&fake, &format!("/bot{}/getUpdates", bot.token), json!({})).await;
    let ids: Vec<i64> = body["result"]
        .as_array()
        .expect("updates")
        .iter()
        .filter_map(|u| u["update_id"].as_i64())
        .collect();
    assert_eq!(ids, [a, b, c]);
    assert_eq!(body["result"][0]["message"]["weird"], true);
    // teloxide survives a malformed update: it becomes UpdateKind::Error, not a failed poll.
    let updates = client(&fake, &bot.token)
        .get_updates()
        .await
        .expect("getUpdates");
    assert_eq!(updates.len(), 3);
    // The raw update's chat became writable, and its ids continue after 50.
    let reply = client(&fake, &bot.token)
        .send_message(ChatId(-5), "ok")
        .await
        .expect("send");
    assert_eq!(reply.id.0, 51);
}

#[tokio::test]
async fn an_abandoned_poll_frees_its_slot() {
    let fake = FakeTelegram::start().await;
    let bot = fake.add_bot("b_bot");
    let poll = tokio::spawn(
        client(&fake, &bot.token)
            .get_updates()
            .timeout(10)
            .into_future(),
    );
    eventually("the poll to wait", || fake.pending_polls(&bot.token) == 1).await;
    poll.abort();
    eventually("the slot to be freed", || {
        fake.pending_polls(&bot.token) == 0
    })
    .await;
    eventually("the request to be logged as abandoned", || {
        fake.requests().last().is_some_and(|r| r.status == 499)
    })
    .await;
}

#[tokio::test]
async fn shutdown_answers_waiting_polls_and_refuses_new_connections() {
    let fake = FakeTelegram::start().await;
    let bot = fake.add_bot("b_bot");
    let poll = tokio::spawn(
        client(&fake, &bot.token)
            .get_updates()
            .timeout(10)
            .into_future(),
    );
    eventually("the poll to wait", || fake.pending_polls(&bot.token) == 1).await;
    fake.shutdown();
    let answered = tokio::time::timeout(Duration::from_secs(2), poll)
        .await
        .expect("answered")
        .expect("task");
    assert!(answered.expect("an empty answer").is_empty());
    let after = tokio::time::timeout(
        Duration::from_secs(5),
        client(&fake, &bot.token).get_me().into_future(),
    )
    .await
    .expect("fails fast");
    assert!(matches!(after, Err(RequestError::Network(_))), "{after:?}");
}

#[tokio::test]
async fn many_bots_are_independent() {
    let fake = FakeTelegram::start().await;
    let bots: Vec<_> = (0..5)
        .map(|i| fake.add_bot(&format!("member{i}_bot")))
        .collect();
    let mut polls = Vec::new();
    for b in &bots {
        polls.push(tokio::spawn(
            client(&fake, &b.token)
                .get_updates()
                .timeout(10)
                .into_future(),
        ));
    }
    eventually("all polls to wait", || {
        bots.iter().all(|b| fake.pending_polls(&b.token) == 1)
    })
    .await;
    fake.send_text(&bots[3].token, &fake.user(1, "Dad"), "only bot 3");
    let third = polls.remove(3);
    let got = tokio::time::timeout(Duration::from_secs(1), third)
        .await
        .expect("answered")
        .expect("task")
        .expect("ok");
    assert_eq!(got.len(), 1);
    assert!(
        polls.iter().all(|p| !p.is_finished()),
        "other bots' polls keep waiting"
    );
    for p in &polls {
        p.abort();
    }
}
