//! The path of a message, end to end: pairing, chatting, strangers, collect mode, fairness,
//! queue cap, and both provider formats.

use std::time::{Duration, Instant};

use hearth_proto::control::{BotState, LaneState, ProviderKind};
use hearth_testkit::llm::{Api, Rule};

use crate::support::{Household, add_member, eventually, set_provider};

const T: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pair_then_chat_then_fresh_start() {
    let h = Household::new(1).await;
    h.say(0, "hello there");
    let sent = h.replies(0, 2, T).await;
    assert_eq!(sent[1].text, "You said: hello there");

    // The prompt is built by the worker: persona for this member, the user's words.
    let calls = h.llm.calls();
    assert_eq!(calls.len(), 1);
    assert!(calls[0].system_text().contains("Rosa"), "{}", calls[0].system_text());
    assert_eq!(calls[0].api_key.as_deref(), Some("sk-test-key-never-logged"));

    // History is carried into the next turn…
    h.say(0, "and again");
    h.replies(0, 3, T).await;
    let second = h.llm.calls()[1].all_text();
    assert!(second.contains("hello there") && second.contains("You said: hello there"), "{second}");

    // …until /new.
    h.say(0, "/new");
    let sent = h.replies(0, 4, T).await;
    assert!(sent[3].text.to_lowercase().contains("fresh"), "{:?}", sent[3].text);
    h.say(0, "first words of a new chat");
    h.replies(0, 5, T).await;
    let third = h.llm.calls()[2].all_text();
    assert!(!third.contains("hello there"), "history survived /new: {third}");
    assert_eq!(h.llm.calls().len(), 3, "/new needs no model call");

    // Typing was shown while the turns ran, and the commands are registered.
    let m = &h.members[0];
    assert!(h.tg.chat_actions(&m.bot.token).iter().any(|(chat, a)| *chat == m.user.id && a == "typing"));
    let commands = h.tg.commands(&m.bot.token).expect("setMyCommands was called").to_string();
    assert!(commands.contains("\"new\"") && commands.contains("\"help\""), "{commands}");

    // The ledger has every call with exact usage, and the inbox keeps no text.
    let db = h.db();
    let (n, input, output): (i64, i64, i64) = db
        .query_row("SELECT COUNT(*), SUM(input_tokens), SUM(output_tokens) FROM ledger WHERE state = 'settled'", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    assert_eq!(n, 3);
    let expected_in: u64 = h.llm.calls().iter().map(|c| c.prompt_tokens()).sum();
    assert_eq!(input as u64, expected_in);
    assert!(output > 0);
    eventually(T, "inbox text cleared", async || {
        let left: i64 = h.db().query_row("SELECT COUNT(*) FROM inbox WHERE text IS NOT NULL", [], |r| r.get(0)).unwrap();
        (left == 0).then_some(())
    })
    .await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_get_one_short_reply_and_nothing_else() {
    let h = Household::new(1).await;
    let m = &h.members[0];
    let stranger = h.tg.user(666, "Mallory");
    for text in ["hi", "what's the wifi password?", "/start WRONGCODE", "/start ABCD2345", "/new"] {
        h.tg.send_text(&m.bot.token, &stranger, text);
    }
    let got = h.tg.wait_for_sent(&m.bot.token, stranger.id, 1, T).await.unwrap();
    assert_eq!(got[0].text, "Sorry, this is a private family assistant.");
    // Everything is processed (the inbox drains) and still only one reply went out.
    eventually(T, "stranger rows closed", async || {
        let open: i64 = h.db().query_row("SELECT COUNT(*) FROM inbox WHERE state = 'pending'", [], |r| r.get(0)).unwrap();
        (open == 0).then_some(())
    })
    .await;
    h.settled().await;
    assert_eq!(h.tg.sent_to(&m.bot.token, stranger.id).len(), 1);
    assert!(h.llm.calls().is_empty(), "a stranger's message reached the model");
    let status = h.status().await;
    assert_eq!(status.worker_processes, 0, "a stranger started a worker");
    let audited: i64 = h.db().query_row("SELECT COUNT(*) FROM audit WHERE action LIKE 'stranger%'", [], |r| r.get(0)).unwrap();
    assert_eq!(audited, 1);
    // The member is unaffected.
    h.say(0, "still me");
    assert_eq!(h.replies(0, 2, T).await[1].text, "You said: still me");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_used_code_does_not_pair_anyone_else() {
    let h = Household::new(0).await;
    let (added, bot) = add_member(&h.gateway, &h.tg, "Ana").await;
    let ana = h.tg.user(1, "Ana");
    let eve = h.tg.user(2, "Eve");
    h.tg.send_text(&bot.token, &ana, &format!("/start {}", added.pair_code.to_lowercase()));
    h.tg.wait_for_sent(&bot.token, ana.id, 1, T).await.unwrap();
    h.tg.send_text(&bot.token, &eve, &format!("/start {}", added.pair_code));
    let got = h.tg.wait_for_sent(&bot.token, eve.id, 1, T).await.unwrap();
    assert!(got[0].text.contains("isn't valid"), "{:?}", got[0].text);
    h.tg.send_text(&bot.token, &eve, "let me in");
    h.settled().await;
    assert!(h.llm.calls().is_empty());
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_during_a_turn_are_collected_into_one_next_turn() {
    let h = Household::new(1).await;
    h.llm.set_latency(Duration::from_millis(1500));
    h.say(0, "first");
    h.llm.wait_for_calls(1, T).await.unwrap();
    h.say(0, "second");
    h.say(0, "third");
    let sent = h.replies(0, 3, T).await;
    assert_eq!(sent[1].text, "You said: first");
    let calls = h.llm.wait_for_calls(2, T).await.unwrap();
    let last = calls[1].last_user_text();
    assert!(last.contains("second") && last.contains("third"), "{last}");
    h.settled().await;
    assert_eq!(h.llm.calls().len(), 2, "one turn for both collected messages");
    assert_eq!(h.tg.sent_to(&h.members[0].bot.token, h.members[0].user.id).len(), 3);
    h.stop().await;
}

/// One member's model stalls for 30 s; four others are answered within their own model time
/// plus a small overhead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_member_blocks_only_their_own_lane() {
    let h = Household::new(5).await;
    let model_time = Duration::from_millis(300);
    h.llm.set_latency(model_time);
    h.llm.add_rule(Rule::matching("stall-me").delay(Duration::from_secs(30)));
    h.say(0, "please stall-me");
    h.llm.wait_for_calls(1, T).await.unwrap();
    let start = Instant::now();
    for i in 1..5 {
        h.say(i, &format!("quick question {i}"));
    }
    for i in 1..5 {
        let sent = h.replies(i, 2, T).await;
        let took = sent[1].at.duration_since(start);
        // Cold worker start + model time + Telegram round trips; generous for a loaded 2-core CI box.
        assert!(took < model_time + Duration::from_millis(2500), "member {i} waited {took:?}");
        assert_eq!(sent[1].text, format!("You said: quick question {i}"));
    }
    let status = h.status().await;
    assert!(matches!(status.members[0].lane, LaneState::Running { .. }), "{:?}", status.members[0].lane);
    assert_eq!(h.tg.sent_to(&h.members[0].bot.token, h.members[0].user.id).len(), 1, "only the pairing welcome");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_gets_a_clear_reply() {
    let h = Household::with(1, |c| c.queue_cap = 3).await;
    h.llm.set_latency(Duration::from_secs(2));
    h.say(0, "one");
    h.llm.wait_for_calls(1, T).await.unwrap();
    for i in 0..5 {
        h.say(0, &format!("waiting {i}"));
    }
    // Two over the cap are told to wait, at once (the turn is still running).
    let sent = h.replies(0, 3, T).await;
    assert!(sent[1].text.contains("give me a moment"), "{:?}", sent[1].text);
    assert!(sent[2].text.contains("give me a moment"), "{:?}", sent[2].text);
    // The three that fit are answered together after the first turn.
    let sent = h.replies(0, 5, T).await;
    assert_eq!(sent[3].text, "You said: one");
    let last = h.llm.wait_for_calls(2, T).await.unwrap()[1].last_user_text();
    assert!(last.contains("waiting 0") && last.contains("waiting 2") && !last.contains("waiting 3"), "{last}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_provider_formats_streaming_and_not() {
    for (kind, stream) in [(ProviderKind::Openai, false), (ProviderKind::Openai, true), (ProviderKind::Anthropic, false), (ProviderKind::Anthropic, true)] {
        let h = Household::with(1, |c| c.llm_stream = stream).await;
        set_provider(&h.gateway, &h.llm, kind).await;
        h.llm.set_cached_input_tokens(3);
        h.say(0, "format check");
        let sent = h.replies(0, 2, T).await;
        assert_eq!(sent[1].text, "You said: format check", "{kind:?} stream={stream}");
        let call = &h.llm.calls()[0];
        let api = if kind == ProviderKind::Openai { Api::OpenAi } else { Api::Anthropic };
        assert_eq!((call.api, call.stream), (api, stream));
        // Usage is recorded exactly as the provider reported it, cached tokens apart.
        let (input, cached): (i64, i64) = eventually(T, "ledger settled", async || {
            h.db()
                .query_row("SELECT input_tokens, cached_input_tokens FROM ledger WHERE state = 'settled'", [], |r| Ok((r.get(0)?, r.get(1)?)))
                .ok()
        })
        .await;
        assert_eq!(cached, 3, "{kind:?} stream={stream}");
        assert_eq!((input + cached) as u64, call.prompt_tokens(), "{kind:?} stream={stream}");
        h.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stickers_and_help_get_friendly_answers_without_the_model() {
    let h = Household::new(1).await;
    let m = &h.members[0];
    h.tg.push_raw_update(
        &m.bot.token,
        serde_json::json!({"message": {
            "message_id": 77, "date": 1_700_000_000,
            "from": {"id": m.user.id, "is_bot": false, "first_name": "Rosa"},
            "chat": {"id": m.user.id, "type": "private", "first_name": "Rosa"},
            "sticker": {"file_id": "s", "file_unique_id": "su", "width": 512, "height": 512, "is_animated": false, "is_video": false, "type": "regular"}
        }}),
    );
    let sent = h.replies(0, 2, T).await;
    assert!(sent[1].text.contains("can't take that kind of message"), "{:?}", sent[1].text);
    h.say(0, "/help");
    let sent = h.replies(0, 3, T).await;
    assert!(sent[2].text.contains("/new"), "{:?}", sent[2].text);
    // Garbage updates are confirmed and dropped without harm.
    h.tg.push_raw_update(&m.bot.token, serde_json::json!({"message": {"weird": true}}));
    h.tg.push_raw_update(&m.bot.token, serde_json::json!({"poll": 5}));
    h.say(0, "after garbage");
    assert_eq!(h.replies(0, 4, T).await[3].text, "You said: after garbage");
    assert!(h.llm.calls().len() == 1);
    assert!(matches!(h.status().await.members[0].bot, BotState::Polling));
    h.stop().await;
}
