//! The admin away from the closet: `/status`, `/pause`, `/resume` and `/allow` from the admin's
//! own bot, end to end through the fakes; a timed pause that ends by itself on the gateway's
//! (manual) clock, also across a restart; the same commands from a member who is not an admin
//! changing and revealing nothing; and the admin's command menu in their chat only.

use std::time::Duration;

use hearth_gateway::Gateway;
use hearth_gateway::clock::Clock;
use hearth_proto::control::{CapChange, ControlReply, ControlRequest};

use crate::support::{Household, eventually, test_config};

const T: Duration = Duration::from_secs(20);
const PAUSED_NOTE: &str =
    "Your assistant is paused by your household's admin right now. I'll be back once they resume me.";
const ADMINS_ONLY: &str = "That's for the household's admin. /usage shows your own spending.";

async fn ok(h: &Household, request: ControlRequest) -> ControlReply {
    h.gateway.control(request).await.unwrap_or_else(|e| panic!("{e:?}"))
}

fn texts(h: &Household, i: usize) -> Vec<String> {
    h.tg.sent_to(&h.members[i].bot.token, h.members[i].user.id).into_iter().map(|m| m.text).collect()
}

/// Member `i` writes `text` and the answer is the next message they get.
async fn ask(h: &Household, i: usize, text: &str) -> String {
    let before = texts(h, i).len();
    h.say(i, text);
    h.replies(i, before + 1, T).await[before].text.clone()
}

/// Rosa (the admin), Leo and Sam on a manual clock; test-model priced, Leo capped at $0.50 a day.
async fn household() -> (Household, Clock) {
    let clock = Clock::manual(chrono::Utc::now());
    let c = clock.clone();
    let h = Household::with(3, move |config| config.clock = c).await;
    ok(&h, ControlRequest::MemberAdmin { member: "Rosa".into(), admin: true }).await;
    let price = ControlRequest::PriceSet {
        model: "test-model".into(),
        input_micros_per_mtok: 100_000,
        output_micros_per_mtok: 200_000,
        cached_input_micros_per_mtok: None,
        cache_write_micros_per_mtok: None,
    };
    ok(&h, price).await;
    let cap = ControlRequest::MemberCap {
        member: "Leo".into(),
        daily: CapChange::Set { micros: 500_000 },
        monthly: CapChange::Keep,
    };
    ok(&h, cap).await;
    (h, clock)
}

const ROSA: usize = 0;
const LEO: usize = 1;
const SAM: usize = 2;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_runs_the_household_from_their_phone() {
    let (h, clock) = household().await;
    h.say(LEO, "my secret plan for the weekend");
    h.replies(LEO, 2, T).await;

    // /status: every member's state and spend, marked as estimates; nobody's words.
    let status = ask(&h, ROSA, "/status").await;
    for line in ["Rosa — working · today ≈ US$", "Leo — working · today ≈ US$", "Sam — working", "No problems."]
    {
        assert!(status.contains(line), "{line:?} in {status}");
    }
    assert!(status.contains("· month ≈ US$"), "{status}");
    assert!(!status.contains("secret") && !status.contains("weekend"), "no message content: {status}");

    // /pause Leo 1h: his messages get the paused note and reach no model.
    let calls = h.llm.calls().len();
    let paused = ask(&h, ROSA, "/pause leo 1h").await;
    assert!(paused.starts_with("Paused Leo until ") && paused.ends_with('.'), "{paused}");
    assert_eq!(ask(&h, LEO, "are you there?").await, PAUSED_NOTE);
    let leo = h.status().await.members.into_iter().find(|m| m.name == "Leo").unwrap();
    assert!(leo.paused && leo.paused_until.is_some(), "{leo:?}");
    assert!(ask(&h, ROSA, "/status").await.contains("Leo — paused until "));
    // 59 minutes on, still paused; at the hour, back by himself.
    clock.advance(chrono::Duration::minutes(59));
    clock.settled().await;
    assert!(h.status().await.members[LEO].paused, "not before the hour");
    clock.advance(chrono::Duration::minutes(1));
    clock.settled().await;
    let leo = &h.status().await.members[LEO];
    assert!(!leo.paused && leo.paused_until.is_none(), "{leo:?}");
    assert_eq!(ask(&h, LEO, "back?").await, "You said: back?");
    assert_eq!(h.llm.calls().len(), calls + 1, "the paused message never reached the model");
    let resumed: i64 = h
        .db()
        .query_row("SELECT COUNT(*) FROM audit WHERE action = 'member_resumed' AND actor = 'timer'", [], |r| r.get(0))
        .unwrap();
    assert_eq!(resumed, 1);

    // /pause all pauses the admin too, and their own /resume still works.
    let all = ask(&h, ROSA, "/pause all tonight").await;
    assert!(all.starts_with("Paused everyone until 07:00"), "{all}");
    assert!(h.status().await.members.iter().all(|m| m.paused));
    assert_eq!(ask(&h, SAM, "hi").await, PAUSED_NOTE);
    assert_eq!(ask(&h, ROSA, "/resume all").await, "Resumed everyone.");
    assert!(h.status().await.members.iter().all(|m| !m.paused && m.paused_until.is_none()));
    assert_eq!(ask(&h, ROSA, "/resume Leo").await, "Leo isn't paused.");
    assert_eq!(ask(&h, ROSA, "/pause Leo").await, "Paused Leo until you /resume Leo.");
    assert_eq!(ask(&h, ROSA, "/resume LEO").await, "Resumed Leo.");
    assert_eq!(
        ask(&h, ROSA, "/pause Bob 1h").await,
        "I don't know anyone called \"Bob\". The household: Rosa, Leo, Sam."
    );
    assert!(ask(&h, ROSA, "/pause Leo soon").await.starts_with("Not paused: I don't understand \"soon\""));
    assert!(!h.status().await.members[LEO].paused);

    // /allow Leo +$1: today's limit raised as the +$1 button raises it, and Leo hears so.
    let raised = ask(&h, ROSA, "/allow Leo +$1").await;
    assert!(raised.starts_with("Raised Leo's limit for today by $1.00: now $1.50"), "{raised}");
    let good_news = eventually(T, "Leo hears the good news", async || {
        texts(&h, LEO).into_iter().find(|t| t.starts_with("Good news"))
    })
    .await;
    assert!(good_news.contains("raised by $1.00 for today"), "{good_news}");
    let (kind, extra, by): (String, i64, String) = h
        .db()
        .query_row("SELECT kind, extra_micros, granted_by FROM cap_grants", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    assert_eq!((kind.as_str(), extra), ("member_daily", 1_000_000));
    assert_eq!(by, format!("telegram:{}", h.members[ROSA].user.id));
    let usage = ask(&h, LEO, "/usage").await;
    assert!(usage.contains("of $1.50"), "the raised limit is in force: {usage}");
    for (bad, says) in [
        ("/allow Leo +$0", "more than $0"),
        ("/allow Leo +$101", "more than $100.00"),
        ("/allow Leo lots", "not an amount"),
        ("/allow all +$1", "One member at a time"),
        ("/allow Sam +$1", "Sam has no daily limit"),
    ] {
        let answer = ask(&h, ROSA, bad).await;
        assert!(answer.contains(says), "{bad}: {answer}");
    }
    let grants: i64 = h.db().query_row("SELECT COUNT(*) FROM cap_grants", [], |r| r.get(0)).unwrap();
    assert_eq!(grants, 1, "refused amounts granted nothing");

    // /help lists the admin's commands for the admin.
    let help = ask(&h, ROSA, "/help").await;
    assert!(help.contains("/status") && help.contains("/pause NAME") && help.contains("/allow NAME +$1"), "{help}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_who_is_not_an_admin_learns_and_changes_nothing() {
    let (h, _clock) = household().await;
    let calls = h.llm.calls().len();
    let audit = || -> i64 { h.db().query_row("SELECT COUNT(*) FROM audit", [], |r| r.get(0)).unwrap() };
    let before = audit();
    for command in ["/status", "/pause Rosa 1h", "/pause all", "/resume all", "/allow Leo +$5", "/allow Sam +$1"] {
        let answer = ask(&h, LEO, command).await;
        assert_eq!(answer, ADMINS_ONLY, "{command}");
    }
    h.settled().await;
    assert_eq!(audit(), before, "nothing was changed");
    assert!(h.status().await.members.iter().all(|m| !m.paused));
    let grants: i64 = h.db().query_row("SELECT COUNT(*) FROM cap_grants", [], |r| r.get(0)).unwrap();
    assert_eq!(grants, 0);
    assert_eq!(h.llm.calls().len(), calls, "no model call either");
    // Nothing about anyone else reached Leo; his own /usage still works.
    for text in texts(&h, LEO) {
        assert!(!text.contains("Rosa") && !text.contains("Sam"), "{text}");
    }
    let usage = ask(&h, LEO, "/usage").await;
    assert!(usage.starts_with("Today: $") && usage.contains("of $0.50"), "{usage}");
    let help = ask(&h, LEO, "/help").await;
    assert!(!help.contains("/status") && !help.contains("/pause"), "{help}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admins_menu_is_in_the_admins_chat_only() {
    let (h, _clock) = household().await;
    let chat = |i: usize| format!("chat:{}", h.members[i].user.id);
    let rosa = &h.members[ROSA].bot.token;
    let menu = eventually(T, "the admin's menu", async || h.tg.commands_in(rosa, &chat(ROSA))).await.to_string();
    for command in ["\"status\"", "\"pause\"", "\"resume\"", "\"allow\"", "\"usage\"", "\"new\""] {
        assert!(menu.contains(command), "{command} in {menu}");
    }
    let scope = h
        .tg
        .requests()
        .into_iter()
        .find(|r| r.method == "setMyCommands" && r.params.get("scope").is_some_and(|s| s.to_string().contains("chat")))
        .expect("a scoped setMyCommands");
    let scope = scope.params["scope"].to_string();
    assert!(scope.contains("\"type\":\"chat\"") && scope.contains(&h.members[ROSA].user.id.to_string()), "{scope}");
    // Everyone's menu has the member's commands and none of the admin's.
    for i in [ROSA, LEO, SAM] {
        let token = &h.members[i].bot.token;
        let everyone = eventually(T, "everyone's menu", async || h.tg.commands(token)).await.to_string();
        assert!(everyone.contains("\"usage\"") && !everyone.contains("\"status\""), "{everyone}");
    }
    assert_eq!(h.tg.commands_in(&h.members[LEO].bot.token, &chat(LEO)), None);

    // Made an admin, Leo's chat gets the menu; no longer one, Rosa's loses it.
    ok(&h, ControlRequest::MemberAdmin { member: "Leo".into(), admin: true }).await;
    let leo = &h.members[LEO].bot.token;
    eventually(T, "Leo's admin menu", async || h.tg.commands_in(leo, &chat(LEO))).await;
    ok(&h, ControlRequest::MemberAdmin { member: "Rosa".into(), admin: false }).await;
    eventually(T, "Rosa's admin menu gone", async || h.tg.commands_in(rosa, &chat(ROSA)).is_none().then_some(())).await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_pause_ends_after_a_restart_too() {
    let (h, clock) = household().await;
    let until = (clock.now() + chrono::Duration::minutes(30)).to_rfc3339();
    ok(&h, ControlRequest::MemberPause { member: Some("Leo".into()), paused: true, until: Some(until) }).await;
    for (bad, says) in [
        (Some((clock.now() - chrono::Duration::minutes(1)).to_rfc3339()), "has passed"),
        (Some((clock.now() + chrono::Duration::days(8)).to_rfc3339()), "at most a week"),
        (Some("15:30".to_owned()), "RFC 3339"),
    ] {
        let refused =
            h.gateway.control(ControlRequest::MemberPause { member: Some("Sam".into()), paused: true, until: bad });
        let err = refused.await.unwrap_err();
        assert!(err.message.contains(says), "{}", err.message);
    }
    let Household { tg, llm, dir, gateway, members } = h;
    gateway.shutdown(Duration::from_secs(5)).await;
    drop(gateway);
    // Down past the end: the restarted gateway resumes him at once.
    clock.advance(chrono::Duration::minutes(31));
    let mut config = test_config(dir.path(), &tg);
    config.clock = clock.clone();
    let gateway = Gateway::start(config).await.expect("gateway restarts");
    let h = Household { tg, llm, dir, gateway, members };
    clock.settled().await;
    eventually(T, "Leo resumed", async || (!h.status().await.members[LEO].paused).then_some(())).await;
    let stored: (i64, Option<i64>) = h
        .db()
        .query_row("SELECT paused, paused_until FROM members WHERE name = 'Leo'", [], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap();
    assert_eq!(stored, (0, None));
    assert!(!h.status().await.members[SAM].paused, "refused pauses changed nothing");
    h.stop().await;
}
