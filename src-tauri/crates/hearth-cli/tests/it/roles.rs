//! Role presets end to end: a child's quiet hours (the gateway's resting note, once a night, no
//! worker and no model; across midnight and DST; editable and off), and the default caps each
//! role brings, which never override the admin's own.

use std::time::Duration;

use chrono::{DateTime, Utc};
use hearth_gateway::clock::Clock;
use hearth_proto::control::{CapChange, ControlReply, ControlRequest, MemberSummary, QuietHours, Role};

use crate::support::Household;

const T: Duration = Duration::from_secs(20);

fn at(rfc3339: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(rfc3339).unwrap().to_utc()
}

fn texts(h: &Household, i: usize) -> Vec<String> {
    h.tg.sent_to(&h.members[i].bot.token, h.members[i].user.id).into_iter().map(|m| m.text).collect()
}

async fn control(h: &Household, request: ControlRequest) -> ControlReply {
    h.gateway.control(request).await.unwrap_or_else(|e| panic!("{e:?}"))
}

async fn member(h: &Household, name: &str) -> MemberSummary {
    let ControlReply::Members { members } = control(h, ControlRequest::MemberList).await else { panic!() };
    members.into_iter().find(|m| m.name == name).unwrap()
}

/// Member `i` writes `text` and the test waits for their `n`th message.
async fn say_and_wait(h: &Household, i: usize, text: &str, n: usize) -> String {
    h.say(i, text);
    h.replies(i, n, T).await[n - 1].text.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_at_21h_gets_one_resting_note_and_no_model_call_and_at_7h01_an_answer() {
    // Saturday 21 November 2026, 21:00 in Berlin.
    let clock = Clock::manual(at("2026-11-21T21:00:00+01:00"));
    let c = clock.clone();
    let h = Household::with(2, move |config| config.clock = c).await;
    control(&h, ControlRequest::HouseholdTimezone { timezone: "Europe/Berlin".into() }).await;
    let update =
        ControlRequest::MemberUpdate { member: "Leo".into(), role: Some(Role::Child), persona: None, model: None };
    let ControlReply::Member(leo) = control(&h, update).await else { panic!() };
    assert_eq!(leo.quiet_hours.map(|q| q.to_string()).as_deref(), Some("20:00-07:00"), "the child preset");
    // The fake is a local server, so its model is priced (free) and the child's caps apply.
    assert_eq!((leo.daily_cap_usd, leo.monthly_cap_usd), (Some(0.25), Some(3.0)));
    let status = h.status().await;
    assert_eq!(status.members[1].quiet_hours, leo.quiet_hours);
    assert_eq!(status.members[0].quiet_hours, None);

    let calls = h.llm.calls().len();
    let note = say_and_wait(&h, 1, "are you there?", 2).await;
    assert_eq!(note, "It's resting time now — I'll be here again at 07:00. Sleep well! 🌙");
    // Later the same night: nothing more is said, and nothing reaches a model.
    clock.set(at("2026-11-22T02:00:00+01:00"));
    h.say(1, "please!");
    h.say(1, "/memory");
    // Every message handled: a second note (or an answer) would have been sent by now.
    h.settled().await;
    assert_eq!(texts(&h, 1).len(), 2, "one note per night: {:?}", texts(&h, 1));
    assert_eq!(h.llm.calls().len(), calls, "no model call during quiet hours");
    let quiet: i64 = h
        .db()
        .query_row("SELECT COUNT(*) FROM inbox WHERE outcome = 'quiet' AND state = 'done'", [], |r| r.get(0))
        .unwrap();
    assert_eq!(quiet, 3, "every quiet message is finished");

    // An adult is not affected.
    assert_eq!(say_and_wait(&h, 0, "still up", 2).await, "You said: still up");

    // 07:01: awake again.
    clock.set(at("2026-11-22T07:01:00+01:00"));
    assert_eq!(say_and_wait(&h, 1, "good morning", 3).await, "You said: good morning");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiet_hours_follow_dst_and_are_editable_and_can_be_turned_off() {
    // Saturday 27 March 2027, 06:30 in Berlin (05:30 UTC, winter time): quiet.
    let clock = Clock::manual(at("2027-03-27T05:30:00Z"));
    let c = clock.clone();
    let h = Household::with(1, move |config| config.clock = c).await;
    control(&h, ControlRequest::HouseholdTimezone { timezone: "Europe/Berlin".into() }).await;
    let q: QuietHours = "20:00-07:00".parse().unwrap();
    let set = |q: Option<QuietHours>| ControlRequest::MemberQuietHours { member: "Rosa".into(), quiet_hours: q };
    let ControlReply::Member(rosa) = control(&h, set(Some(q))).await else { panic!() };
    assert_eq!(rosa.quiet_hours, Some(q));
    assert!(say_and_wait(&h, 0, "one", 2).await.starts_with("It's resting time"));
    // Sunday 28 March, clocks went forward: 05:30 UTC is 07:30 local — awake.
    clock.set(at("2027-03-28T05:30:00Z"));
    assert_eq!(say_and_wait(&h, 0, "two", 3).await, "You said: two");

    // Edited to a daytime rest: 14:00 is quiet now, with its own end time.
    clock.set(at("2027-03-28T14:00:00+02:00"));
    control(&h, set(Some("13:00-15:00".parse().unwrap()))).await;
    assert_eq!(
        say_and_wait(&h, 0, "three", 4).await,
        "It's resting time now — I'll be here again at 15:00. Sleep well! 🌙"
    );
    // Off: answered again.
    let ControlReply::Member(rosa) = control(&h, set(None)).await else { panic!() };
    assert_eq!(rosa.quiet_hours, None);
    assert_eq!(say_and_wait(&h, 0, "four", 5).await, "You said: four");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_role_brings_its_default_caps_and_the_admins_own_caps_win() {
    let h = Household::new(0).await;
    let price = ControlRequest::PriceSet {
        model: "test-model".into(),
        input_micros_per_mtok: 150_000,
        output_micros_per_mtok: 600_000,
        cached_input_micros_per_mtok: None,
        cache_write_micros_per_mtok: None,
    };
    control(&h, price).await;
    for (name, role) in [("Mia", Role::Child), ("Leo", Role::Teen), ("Rosa", Role::Adult)] {
        let bot = h.tg.add_bot(&format!("{}_hearth_bot", name.to_lowercase()));
        control(&h, ControlRequest::MemberAdd { name: name.into(), bot_token: bot.token, role }).await;
    }
    let caps = |m: &MemberSummary| (m.daily_cap_usd, m.monthly_cap_usd, m.quiet_hours.map(|q| q.to_string()));
    assert_eq!(caps(&member(&h, "Mia").await), (Some(0.25), Some(3.0), Some("20:00-07:00".into())));
    assert_eq!(caps(&member(&h, "Leo").await), (Some(0.5), Some(8.0), None));
    assert_eq!(caps(&member(&h, "Rosa").await), (None, None, None));

    // Defaults follow the role while they are untouched: Mia grows up to a teen, Rosa stays free.
    let set_role = |name: &str, role| ControlRequest::MemberUpdate {
        member: name.into(),
        role: Some(role),
        persona: None,
        model: None,
    };
    control(&h, set_role("Mia", Role::Teen)).await;
    assert_eq!(caps(&member(&h, "Mia").await), (Some(0.5), Some(8.0), None));

    // The admin's own cap (and quiet hours) survive any role change.
    let own = ControlRequest::MemberCap {
        member: "Leo".into(),
        daily: CapChange::Set { micros: 2_000_000 },
        monthly: CapChange::Keep,
    };
    control(&h, own).await;
    let quiet =
        ControlRequest::MemberQuietHours { member: "Leo".into(), quiet_hours: Some("21:30-06:30".parse().unwrap()) };
    control(&h, quiet).await;
    control(&h, set_role("Leo", Role::Child)).await;
    assert_eq!(caps(&member(&h, "Leo").await), (Some(2.0), Some(8.0), Some("21:30-06:30".into())));
    control(&h, set_role("Leo", Role::Adult)).await;
    assert_eq!(caps(&member(&h, "Leo").await), (Some(2.0), Some(8.0), Some("21:30-06:30".into())));

    // An adult made a child while on a model without a price (on a paid provider, not a local
    // server): quiet hours yes, caps left off (a capped member needs a priced model), and the
    // audit says why.
    let remote = h.llm.base_url().replace("127.0.0.1", "api.example.invalid");
    let provider = ControlRequest::ProviderSet {
        kind: hearth_proto::control::ProviderKind::Openai,
        base_url: remote,
        model: "test-model".into(),
        api_key: "k".into(),
    };
    control(&h, provider).await;
    let model = hearth_proto::control::ModelChange::Set { model: "mystery-model".into() };
    control(&h, ControlRequest::MemberUpdate { member: "Rosa".into(), role: None, persona: None, model: Some(model) })
        .await;
    control(&h, set_role("Rosa", Role::Child)).await;
    assert_eq!(caps(&member(&h, "Rosa").await), (None, None, Some("20:00-07:00".into())));
    let skipped: i64 = h
        .db()
        .query_row(
            "SELECT COUNT(*) FROM audit WHERE action = 'member_cap_skipped' AND detail LIKE '%mystery-model%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(skipped, 1);
    // Back to adult: the child's quiet hours go with the role.
    control(&h, set_role("Rosa", Role::Adult)).await;
    assert_eq!(caps(&member(&h, "Rosa").await), (None, None, None));
    h.stop().await;
}
