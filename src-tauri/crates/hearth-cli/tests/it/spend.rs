//! Spend control end to end: caps that hold under load, the 80 % heads-up, the refusal, the
//! admin's +$1 over Telegram, route-down, refunds, and prices that must exist.

use std::time::Duration;

use hearth_proto::control::{CapChange, ControlReply, ControlRequest, ErrorCode, ProviderKind};
use hearth_testkit::llm::{Fault as LlmFault, Rule};

use crate::support::{Household, eventually, set_provider};

const T: Duration = Duration::from_secs(20);

/// $50 per million tokens in and out: one short test turn costs about a cent, and with
/// `max_output_tokens` at 100 its worst case is about two cents.
async fn price_test_model(h: &Household, model: &str, usd_per_mtok: u64) {
    let reply = h
        .gateway
        .control(ControlRequest::PriceSet {
            model: model.into(),
            input_micros_per_mtok: usd_per_mtok * 1_000_000,
            output_micros_per_mtok: usd_per_mtok * 1_000_000,
            cached_input_micros_per_mtok: None,
            cache_write_micros_per_mtok: None,
        })
        .await
        .unwrap();
    assert!(matches!(reply, ControlReply::Prices { .. }), "{reply:?}");
}

/// Input and output at different prices, in USD per million tokens (whole cents: `in_cents`,
/// `out_cents`). The reservation holds the prompt at one token per byte — several times what the
/// fake counts, with eleven tool definitions riding along — and `max_output_tokens` of output;
/// a cheap input keeps that worst case within a few turns' real cost.
async fn price_in_out(h: &Household, model: &str, in_cents: u64, out_cents: u64) {
    let reply = h
        .gateway
        .control(ControlRequest::PriceSet {
            model: model.into(),
            input_micros_per_mtok: in_cents * 10_000,
            output_micros_per_mtok: out_cents * 10_000,
            cached_input_micros_per_mtok: None,
            cache_write_micros_per_mtok: None,
        })
        .await
        .unwrap();
    assert!(matches!(reply, ControlReply::Prices { .. }), "{reply:?}");
}

async fn cap(h: &Household, i: usize, daily: CapChange) {
    h.gateway
        .control(ControlRequest::MemberCap { member: h.members[i].name.clone(), daily, monthly: CapChange::Keep })
        .await
        .unwrap();
}

fn settled_cost(h: &Household, member_id: &str) -> i64 {
    h.db()
        .query_row("SELECT COALESCE(SUM(cost_micros), 0) FROM ledger WHERE member_id = ?1 AND state = 'settled'", [member_id], |r| r.get(0))
        .unwrap()
}

/// The "done when": a member with a $0.05 cap is never charged past it, hears at 80 %
/// and at 100 %, and the admin's +$1 tap lets the next message through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capped_member_stops_at_the_cap_and_the_admin_raises_it() {
    let h = Household::with(3, |c| c.max_output_tokens = 20).await;
    let (admin, leo, other_admin) = (0, 1, 2);
    // $0.10 in, $200 out per million: about $0.0015 a turn (seven output tokens, a few hundred
    // input), worst case under $0.005 (the prompt at a token per byte, 20 output tokens): spend
    // climbs in steps small enough to cross 80 % before a turn's worst case no longer fits.
    price_in_out(&h, "test-model", 10, 20_000).await;
    for admin in ["Rosa", "Sam"] {
        h.gateway.control(ControlRequest::MemberAdmin { member: admin.into(), admin: true }).await.unwrap();
    }
    cap(&h, leo, CapChange::Set { micros: 50_000 }).await;

    // Leo chats until refused. Each question gets one answer (after the pairing welcome); the
    // 80 % heads-up is sent on its own when a settled call crosses 80 %, so it may come before
    // or after the answer it belongs with — it is told apart by its words, not by its timing.
    let leo_texts = || -> Vec<String> {
        h.tg.sent_to(&h.members[leo].bot.token, h.members[leo].user.id).into_iter().map(|m| m.text).collect()
    };
    let is_heads_up = |t: &str| t.starts_with("Heads-up: you've used 80% of today's allowance");
    let mut refused = None;
    for n in 0..40 {
        h.say(leo, &format!("question number {n}"));
        let answers = eventually(T, "Leo's answer", async || {
            let answers: Vec<String> = leo_texts().into_iter().filter(|t| !is_heads_up(t)).collect();
            (answers.len() >= n + 2).then_some(answers)
        })
        .await;
        if answers[n + 1].contains("spending allowance") {
            refused = Some(answers[n + 1].clone());
            break;
        }
    }
    let refused = refused.expect("Leo was never refused");
    assert!(refused.contains("until it resets on"), "{refused}");
    assert!(refused.contains("I've asked"), "the admin is asked: {refused}");
    // The heads-up came before the refusal's call was even tried, but its message may still be
    // on its way; the notices table says it was sent once.
    eventually(T, "the 80% heads-up", async || leo_texts().iter().any(|t| is_heads_up(t)).then_some(())).await;
    let eighty = "SELECT COUNT(*) FROM notices WHERE member_id = ?1 AND percent = 80";
    let notices: i64 = h.db().query_row(eighty, [&h.members[leo].id], |r| r.get(0)).unwrap();
    assert_eq!(notices, 1, "one 80% notice recorded");
    let all = leo_texts();
    let heads_up = all.iter().filter(|t| is_heads_up(t)).count();
    assert_eq!(heads_up, 1, "exactly one 80% heads-up: {all:#?}");
    assert!(settled_cost(&h, &h.members[leo].id) <= 50_000, "charged past the cap");

    // Rosa, the admin, is asked with buttons; she taps +$1.
    let rosa = &h.members[admin];
    let question = eventually(T, "the admin's question", async || {
        h.tg.sent_to(&rosa.bot.token, rosa.user.id).into_iter().find(|m| m.text.contains("Leo has reached their daily limit of $0.05"))
    })
    .await;
    let markup = question.reply_markup.clone().expect("buttons").to_string();
    assert!(markup.contains("+$1") && markup.contains("+$5") && markup.contains("Leave it"), "{markup}");
    let plus_one = markup.split("\"callback_data\":\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
    h.tg.press_button(&rosa.bot.token, &rosa.user, question.message_id, &plus_one);
    let good_news = eventually(T, "Leo hears the good news", async || {
        h.tg.sent_to(&h.members[leo].bot.token, h.members[leo].user.id).into_iter().find(|m| m.text.starts_with("Good news"))
    })
    .await;
    assert!(good_news.text.contains("raised by $1.00 for today"), "{}", good_news.text);
    let answers = h.tg.callback_answers(&rosa.bot.token);
    assert_eq!(answers.len(), 1);
    assert_eq!(answers[0].text.as_deref(), Some("Raised by $1.00"));
    let edited = eventually(T, "the question closed", async || {
        h.tg.sent_to(&rosa.bot.token, rosa.user.id)
            .into_iter()
            .find(|m| m.message_id == question.message_id && m.reply_markup.is_none())
    })
    .await;
    assert!(edited.current_text().contains("raised by $1.00"), "{}", edited.current_text());

    // The next message goes through.
    let before = h.tg.sent_to(&h.members[leo].bot.token, h.members[leo].user.id).len();
    h.say(leo, "one more please");
    let msgs = h.replies(leo, before + 1, T).await;
    assert!(msgs[before].text.starts_with("You said:"), "{:?}", msgs[before].text);

    // Sam, the other admin, got the same question; his later +$5 changes nothing.
    let sam = &h.members[other_admin];
    let his = h.tg.sent_to(&sam.bot.token, sam.user.id).into_iter().find(|m| m.text.contains("Leo has reached")).expect("both admins asked");
    h.tg.press_button(&sam.bot.token, &sam.user, his.message_id, &plus_one.replace(":1000000", ":5000000"));
    eventually(T, "second answer", async || (!h.tg.callback_answers(&sam.bot.token).is_empty()).then_some(())).await;
    assert_eq!(h.tg.callback_answers(&sam.bot.token)[0].text.as_deref(), Some("This was already answered."));
    let grants: i64 = h.db().query_row("SELECT COUNT(*) FROM cap_grants", [], |r| r.get(0)).unwrap();
    assert_eq!(grants, 1);
    let audited: i64 = h.db().query_row("SELECT COUNT(*) FROM audit WHERE action = 'cap_raised'", [], |r| r.get(0)).unwrap();
    assert_eq!(audited, 1);
    h.stop().await;
}

/// Many messages at once for one capped member and, in waves, for four members at the same time
/// against the household cap: whatever the interleaving, the settled spend never passes a cap,
/// and every message is answered one way or another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_messages_never_overshoots_any_cap() {
    let h = Household::with(4, |c| {
        c.max_output_tokens = 100;
        c.queue_cap = 250;
    })
    .await;
    // Every answer is 100 output tokens at $300 per million, the prompt $0.01 per million: a call
    // costs about $0.03, its worst case (the prompt with eleven tool definitions at a token per
    // byte, and 100 output tokens) about $0.034 — over the member's cap, under half the household
    // cap, so two calls at a time fit and the flood uses most of it.
    price_in_out(&h, "test-model", 1, 30_000).await;
    h.llm.set_responder(|_| hearth_testkit::llm::Reply::text("y".repeat(400)));
    h.llm.set_latency(Duration::from_millis(100));
    cap(&h, 0, CapChange::Set { micros: 30_000 }).await;
    h.gateway.control(ControlRequest::HouseholdCap { monthly: CapChange::Set { micros: 100_000 } }).await.unwrap();
    for n in 0..200 {
        h.say(0, &format!("m{n}"));
    }
    for wave in 0..8 {
        for i in 1..4 {
            h.say(i, &format!("wave {wave}"));
        }
        for i in 1..4 {
            h.replies(i, 2 + wave, T).await;
        }
    }
    eventually(Duration::from_secs(60), "all messages handled", async || {
        let open: i64 = h.db().query_row("SELECT COUNT(*) FROM inbox WHERE state = 'pending'", [], |r| r.get(0)).unwrap();
        (open == 0).then_some(())
    })
    .await;
    assert!(settled_cost(&h, &h.members[0].id) <= 30_000, "member cap overshot");
    let household: i64 =
        h.db().query_row("SELECT COALESCE(SUM(cost_micros), 0) FROM ledger WHERE state = 'settled'", [], |r| r.get(0)).unwrap();
    assert!(household <= 100_000, "household cap overshot: {household}");
    let refusals: usize = (1..4)
        .map(|i| {
            h.tg.sent_to(&h.members[i].bot.token, h.members[i].user.id).iter().filter(|m| m.text.contains("spending allowance")).count()
        })
        .sum();
    assert!(refusals > 0, "the household cap was never reached; the test proves nothing");
    assert!(household > 100_000 / 2, "most of the household cap was used: {household}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_call_is_refunded_and_routes_down_to_the_fallback() {
    let h = Household::with(1, |c| c.max_output_tokens = 100).await;
    price_test_model(&h, "test-model", 50).await;
    price_test_model(&h, "cheap-model", 1).await;
    cap(&h, 0, CapChange::Set { micros: 1_000_000 }).await;

    // A failing call is recorded, costs nothing, and leaves nothing reserved.
    h.llm.add_rule(Rule::matching("fails").fault(LlmFault::Status { code: 400, retry_after_secs: None }).times(1));
    h.say(0, "this fails");
    let got = h.replies(0, 2, T).await;
    assert!(got[1].text.contains("couldn't use"), "{:?}", got[1].text);
    let (outcome, state, cost): (String, String, i64) = eventually(T, "ledger row released", async || {
        h.db().query_row("SELECT outcome, state, cost_micros FROM ledger", [], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).ok()
    })
    .await;
    assert_eq!((outcome.as_str(), state.as_str(), cost), ("http_400", "released", 0));
    let ControlReply::Usage(report) = h.gateway.control(ControlRequest::Usage { month: None }).await.unwrap() else { panic!() };
    assert_eq!(report.members[0].today_usd, 0.0, "the reservation was refunded");

    // Now the cap is below the expensive model's worst case: with a fallback the member is
    // answered by the cheap model instead of being refused.
    cap(&h, 0, CapChange::Set { micros: 16_000 }).await;
    h.gateway.control(ControlRequest::MemberFallback { member: "Rosa".into(), model: Some("cheap-model".into()) }).await.unwrap();
    for n in 0..3 {
        h.say(0, &format!("go {n}"));
        let got = h.replies(0, 3 + n, T).await;
        assert!(got[2 + n].text.starts_with("You said:"), "{:?}", got[2 + n].text);
    }
    let models: Vec<String> = h.llm.calls().iter().map(|c| c.model.clone()).collect();
    assert_eq!(models[1..], ["cheap-model", "cheap-model", "cheap-model"], "{models:?}");
    assert!(settled_cost(&h, &h.members[0].id) <= 16_000);

    // Without the fallback the same message is refused kindly.
    h.gateway.control(ControlRequest::MemberFallback { member: "Rosa".into(), model: None }).await.unwrap();
    h.say(0, "and now?");
    let got = h.replies(0, 6, T).await;
    assert!(got[5].text.contains("spending allowance"), "{:?}", got[5].text);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unpriced_model_cannot_be_given_to_a_capped_member() {
    let h = Household::new(1).await;
    // On a paid provider (not a local server) test-model has no price: a cap is refused,
    // naming the model and the command.
    let remote = h.llm.base_url().replace("127.0.0.1", "api.example.invalid");
    h.gateway
        .control(ControlRequest::ProviderSet { kind: ProviderKind::Openai, base_url: remote.clone(), model: "test-model".into(), api_key: "k".into() })
        .await
        .unwrap();
    let err = h
        .gateway
        .control(ControlRequest::MemberCap { member: "Rosa".into(), daily: CapChange::Set { micros: 1 }, monthly: CapChange::Keep })
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidInput);
    assert!(err.message.contains("test-model") && err.message.contains("hearth price set"), "{}", err.message);

    // With a price the cap is accepted; then switching to an unpriced model is refused.
    price_test_model(&h, "test-model", 1).await;
    cap(&h, 0, CapChange::Set { micros: 1_000_000 }).await;
    let err = h
        .gateway
        .control(ControlRequest::ProviderSet {
            kind: ProviderKind::Openai,
            base_url: remote,
            model: "mystery-model".into(),
            api_key: "k".into(),
        })
        .await
        .unwrap_err();
    assert!(err.message.contains("mystery-model"), "{}", err.message);
    // Back on the (local) fake, with the admin's price.
    set_provider(&h.gateway, &h.llm, ProviderKind::Openai).await;
    h.say(0, "priced and capped");
    assert_eq!(h.replies(0, 2, T).await[1].text, "You said: priced and capped");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_and_family_answer_in_the_chat() {
    let h = Household::with(2, |c| c.max_output_tokens = 100).await;
    price_test_model(&h, "test-model", 50).await;
    cap(&h, 1, CapChange::Set { micros: 500_000 }).await;
    h.gateway.control(ControlRequest::MemberAdmin { member: "Rosa".into(), admin: true }).await.unwrap();
    h.say(1, "spend a little");
    h.replies(1, 2, T).await;
    h.say(1, "/usage");
    let usage = h.replies(1, 3, T).await[2].text.clone();
    assert!(usage.starts_with("Today: $0.0") && usage.contains("of $0.50") && usage.contains("resets at"), "{usage}");
    h.say(1, "/family");
    let no = h.replies(1, 4, T).await[3].text.clone();
    assert!(no.contains("Only an admin"), "{no}");
    h.say(0, "/family");
    let family = h.replies(0, 2, T).await[1].text.clone();
    assert!(family.contains("Rosa: today $0") && family.contains("Leo: today $0.0") && family.contains("of $0.50"), "{family}");
    assert!(family.contains("Household this month"), "{family}");
    assert_eq!(h.llm.calls().len(), 1, "/usage and /family need no model");

    let ControlReply::Usage(report) = h.gateway.control(ControlRequest::Usage { month: None }).await.unwrap() else { panic!() };
    assert_eq!(report.members.len(), 2);
    assert_eq!(report.total.calls, 1);
    let leo = &report.members[1];
    assert!(leo.totals.cost_usd > 0.0 && leo.daily_cap_usd == Some(0.5), "{leo:?}");
    assert_eq!(report.per_day.len(), 1);
    let ControlReply::Csv { text } = h.gateway.control(ControlRequest::UsageExport { month: report.month.clone() }).await.unwrap() else {
        panic!()
    };
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(text.lines().nth(1).unwrap().contains(",Leo,"), "{text}");
    h.stop().await;
}
