//! Reminders end to end, through the real gateway and real `hearth worker` processes on the
//! fakes. The gateway's clock is a manual one (`GatewayConfig::clock`) that the test moves; the
//! worker's "now" comes from the turn's context, so "08:00 tomorrow" is a call away. Telegram,
//! the model and the worker processes run in real time.
//!
//! "Remind me every day at 8…" → the fake model calls `set_reminder` → at 08:00 the next day the
//! member's chat gets the reminder, once, with no model call; the other member gets nothing of
//! it; a gateway restart around the due time (and one right after the occurrence was committed,
//! before it was sent) delivers it exactly once; a cancelled reminder never comes.

use std::time::Duration;

use chrono::{DateTime, Utc};
use hearth_gateway::clock::Clock;
use hearth_gateway::{Gateway, store};
use hearth_proto::control::{ControlReply, ControlRequest};
use hearth_testkit::llm::Reply;
use serde_json::json;

use crate::support::{Household, test_config};

const T: Duration = Duration::from_secs(20);

fn at(rfc3339: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(rfc3339).unwrap().to_utc()
}

fn texts(h: &Household, i: usize) -> Vec<String> {
    h.tg.sent_to(&h.members[i].bot.token, h.members[i].user.id).into_iter().map(|m| m.text).collect()
}

/// A household in Berlin on Saturday 21 November 2026 at 20:00 local time.
async fn household(n: usize) -> (Household, Clock) {
    let clock = Clock::manual(at("2026-11-21T20:00:00+01:00"));
    let c = clock.clone();
    let h = Household::with(n, move |config| config.clock = c).await;
    let reply =
        h.gateway.control(ControlRequest::HouseholdTimezone { timezone: "Europe/Berlin".into() }).await.unwrap();
    assert!(matches!(reply, ControlReply::Done), "{reply:?}");
    (h, clock)
}

/// Member `i` asks for a daily 08:00 reminder; the fake model sets it and confirms. Returns the
/// number of messages member `i` has had.
async fn ask_for_daily_reminder(h: &Household, i: usize, text: &str) -> usize {
    let before = texts(h, i).len();
    h.llm.push_reply(Reply::tool_call(
        "set_reminder",
        json!({ "text": text, "at": "2026-11-22T08:00", "repeat": "daily" }),
    ));
    h.llm.push_reply(Reply::text("Done — I'll remind you every day at 8."));
    h.say(i, "remind me every day at 8 to take my pills");
    let sent = h.replies(i, before + 1, T).await;
    assert_eq!(sent[before].text, "Done — I'll remind you every day at 8.");
    // The turn's note told the model the local time it worked `at` out from.
    let call = h.llm.calls().into_iter().rev().nth(1).unwrap();
    let note = call.last_user_note().unwrap_or_default();
    assert!(note.contains("It is now") && note.contains("2026"), "{note}");
    let result = &h.llm.calls().last().unwrap().tool_results()[0].1;
    assert!(result.contains("next Sunday 22 November 2026 at 08:00"), "{result}");
    before + 1
}

/// (member, reminder id, due_at) rows the gateway schedules.
fn schedule(h: &Household) -> Vec<(String, i64, i64)> {
    let db = h.db();
    let mut stmt =
        db.prepare("SELECT member_id, reminder_id, due_at FROM reminder_schedule ORDER BY member_id").unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).unwrap().map(Result::unwrap).collect()
}

/// What shows that nothing more comes, instead of waiting a while: the schedule has looked at the
/// clock's time (and committed whatever was due then), and the gateway has finished with all of
/// it — every occurrence delivered, every lane idle.
async fn settled(h: &Household, clock: &Clock) {
    tokio::time::timeout(T, clock.settled()).await.expect("the reminder schedule looks at the clock");
    h.settled().await;
}

async fn wait_for_schedule(h: &Household, want: usize) -> Vec<(String, i64, i64)> {
    crate::support::eventually(T, "the schedule", async || Some(schedule(h)).filter(|s| s.len() == want)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remind_me_every_day_at_8_fires_at_8_the_next_day_in_the_right_chat_once() {
    let (h, clock) = household(2).await;
    let rosa = ask_for_daily_reminder(&h, 0, "Take the blue pill").await;
    let leo = ask_for_daily_reminder(&h, 1, "Feed the cat").await;
    let calls = h.llm.calls().len();

    // The gateway knows when, never what: ids and instants only.
    let eight = at("2026-11-22T08:00:00+01:00").timestamp();
    let rows = wait_for_schedule(&h, 2).await;
    let mut want = vec![(h.members[0].id.clone(), 1, eight), (h.members[1].id.clone(), 1, eight)];
    want.sort();
    assert_eq!(rows, want);

    // A second before eight: nothing.
    clock.set(at("2026-11-22T07:59:59+01:00"));
    settled(&h, &clock).await;
    assert_eq!((texts(&h, 0).len(), texts(&h, 1).len()), (rosa, leo));
    assert_eq!(schedule(&h), want, "still scheduled");

    // Eight: each member gets their own reminder, in their own chat, once, with no model call.
    clock.set(at("2026-11-22T08:00:00+01:00"));
    assert_eq!(h.replies(0, rosa + 1, T).await[rosa].text, "⏰ Reminder: Take the blue pill");
    assert_eq!(h.replies(1, leo + 1, T).await[leo].text, "⏰ Reminder: Feed the cat");
    clock.set(at("2026-11-22T08:30:00+01:00"));
    settled(&h, &clock).await;
    assert_eq!(texts(&h, 0).len(), rosa + 1, "{:?}", texts(&h, 0));
    assert_eq!(texts(&h, 1).len(), leo + 1, "{:?}", texts(&h, 1));
    assert!(!texts(&h, 1).iter().any(|t| t.contains("blue pill")));
    assert!(!texts(&h, 0).iter().any(|t| t.contains("cat")));
    assert_eq!(h.llm.calls().len(), calls, "a reminder costs no model call");

    // Both move on to 08:00 on Monday.
    let monday = at("2026-11-23T08:00:00+01:00").timestamp();
    let rows = crate::support::eventually(T, "Monday's schedule", async || {
        Some(schedule(&h)).filter(|s| s.len() == 2 && s.iter().all(|r| r.2 == monday))
    })
    .await;
    assert_eq!(rows.len(), 2);

    // The reminder's text is in no byte of gateway.sqlite (nor its WAL).
    for suffix in ["", "-wal"] {
        let path = h.dir.path().join(format!("gateway.sqlite{suffix}"));
        let bytes = std::fs::read(&path).unwrap_or_default();
        let found = bytes.windows(b"blue pill".len()).any(|w| w == b"blue pill");
        assert!(!found, "reminder text in {}", path.display());
    }

    // /reminders lists it; the next day it comes again.
    h.say(0, "/reminders");
    let list = h.replies(0, rosa + 2, T).await;
    assert!(
        list[rosa + 1].text.contains("Take the blue pill — every day at 08:00, next Monday 23 November"),
        "{}",
        list[rosa + 1].text
    );
    clock.set(at("2026-11-23T08:00:00+01:00"));
    assert_eq!(h.replies(0, rosa + 3, T).await[rosa + 2].text, "⏰ Reminder: Take the blue pill");
    h.stop().await;
}

/// Stops the household's gateway (if it still runs) and starts a new one on the same data
/// directory and clock. The old handle must be gone first: it holds the directory's lock.
async fn restart(h: Household, clock: &Clock) -> Household {
    let Household { tg, llm, dir, gateway, members } = h;
    gateway.shutdown(Duration::from_secs(5)).await;
    drop(gateway);
    let mut config = test_config(dir.path(), &tg);
    config.clock = clock.clone();
    let gateway = Gateway::start(config).await.expect("gateway restarts");
    Household { tg, llm, dir, gateway, members }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_at_the_due_time_neither_skips_nor_doubles() {
    let (h, clock) = household(1).await;
    let n = ask_for_daily_reminder(&h, 0, "Take the blue pill").await;
    wait_for_schedule(&h, 1).await;

    // Down over eight o'clock: the overdue occurrence comes once at the start.
    h.gateway.shutdown(Duration::from_secs(5)).await;
    clock.set(at("2026-11-22T08:00:03+01:00"));
    let h = restart(h, &clock).await;
    assert_eq!(h.replies(0, n + 1, T).await[n].text, "⏰ Reminder: Take the blue pill");
    let h = restart(h, &clock).await;
    settled(&h, &clock).await;
    assert_eq!(texts(&h, 0).len(), n + 1, "{:?}", texts(&h, 0));

    // Down right after Monday's occurrence was committed and before it was sent: the gateway's
    // own commit step, run on the stopped household's database, leaves exactly what a crash
    // there would. The restarted gateway delivers the pending firing, once.
    h.gateway.shutdown(Duration::from_secs(5)).await;
    let monday = at("2026-11-23T08:00:00+01:00");
    clock.set(monday);
    let db = store::Store::open(&h.dir.path().join("gateway.sqlite")).unwrap();
    let (taken, next) = db.call_sync(|c| store::take_due_reminders(c, monday.timestamp())).unwrap();
    assert_eq!((taken.len(), next), (1, None));
    drop(db);
    let h = restart(h, &clock).await;
    assert_eq!(h.replies(0, n + 2, T).await[n + 1].text, "⏰ Reminder: Take the blue pill");
    let h = restart(h, &clock).await;
    settled(&h, &clock).await;
    assert_eq!(texts(&h, 0).len(), n + 2, "{:?}", texts(&h, 0));
    let states: Vec<(String, String)> = {
        let db = h.db();
        let mut stmt = db.prepare("SELECT state, outcome FROM reminder_firings ORDER BY due_at").unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(Result::unwrap).collect()
    };
    assert_eq!(states, [("done".to_owned(), "reminded".to_owned()), ("done".to_owned(), "reminded".to_owned())]);
    // And Tuesday's is scheduled.
    let tuesday = at("2026-11-24T08:00:00+01:00").timestamp();
    crate::support::eventually(T, "Tuesday", async || {
        Some(schedule(&h)).filter(|s| s.first().is_some_and(|r| r.2 == tuesday))
    })
    .await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_reminder_never_fires() {
    let (h, clock) = household(1).await;
    let n = ask_for_daily_reminder(&h, 0, "Take the blue pill").await;
    wait_for_schedule(&h, 1).await;
    // Cancelled by the model (a tool call) …
    h.llm.push_reply(Reply::tool_call("cancel_reminder", json!({ "id": 1 })));
    h.llm.push_reply(Reply::text("Cancelled."));
    h.say(0, "stop the pill reminder");
    h.replies(0, n + 1, T).await;
    assert_eq!(h.llm.calls().last().unwrap().tool_results()[0].1, "Cancelled reminder 1: Take the blue pill.");
    wait_for_schedule(&h, 0).await;
    // … and one more by chat.
    h.llm.push_reply(Reply::tool_call("set_reminder", json!({ "text": "Dentist", "at": "2026-11-22T09:00" })));
    h.llm.push_reply(Reply::text("Set."));
    h.say(0, "dentist tomorrow at 9");
    h.replies(0, n + 2, T).await;
    wait_for_schedule(&h, 1).await;
    h.say(0, "/reminders cancel 2");
    let sent = h.replies(0, n + 3, T).await;
    assert!(sent[n + 2].text.starts_with("Cancelled: Dentist"), "{}", sent[n + 2].text);
    wait_for_schedule(&h, 0).await;

    clock.set(at("2026-11-22T10:00:00+01:00"));
    settled(&h, &clock).await;
    clock.set(at("2026-11-25T10:00:00+01:00"));
    settled(&h, &clock).await;
    assert_eq!(texts(&h, 0).len(), n + 3, "{:?}", texts(&h, 0));
    assert!(!texts(&h, 0).iter().any(|t| t.starts_with("⏰")));
    h.stop().await;
}
