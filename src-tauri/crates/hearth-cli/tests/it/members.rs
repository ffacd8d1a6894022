//! What the admin changes about a member, end to end through real workers: pausing and
//! resuming, role, persona and model reaching the prompt and the provider, a replaced bot
//! token, exports of real history, and the events the app hears when a cap is reached.

use std::time::Duration;

use hearth_proto::control::{CapChange, ControlReply, ControlRequest, GatewayEvent, LaneState, ModelChange, Role};
use tokio::sync::broadcast;

use crate::support::{Household, eventually};

const T: Duration = Duration::from_secs(20);
const PAUSED_NOTE: &str =
    "Your assistant is paused by your household's admin right now. I'll be back once they resume me.";

async fn ok(h: &Household, request: ControlRequest) -> ControlReply {
    h.gateway.control(request).await.unwrap_or_else(|e| panic!("{e:?}"))
}

fn texts(h: &Household, i: usize) -> Vec<String> {
    h.tg.sent_to(&h.members[i].bot.token, h.members[i].user.id).into_iter().map(|m| m.text).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pausing_drops_what_waits_and_resuming_answers_again() {
    let h = Household::new(2).await;
    h.llm.set_latency(Duration::from_millis(1500));
    h.say(0, "first");
    h.llm.wait_for_calls(1, T).await.unwrap();
    h.say(0, "second");
    h.say(0, "third");
    eventually(T, "two messages waiting behind the running turn", async || {
        matches!(h.status().await.members[0].lane, LaneState::Running { queued: 2, .. }).then_some(())
    })
    .await;

    ok(&h, ControlRequest::MemberPause { member: Some(h.members[0].name.clone()), paused: true, until: None }).await;
    // The running turn finishes; what waited is dropped with one note.
    let sent = h.replies(0, 3, T).await;
    let got: Vec<&str> = sent[1..].iter().map(|m| m.text.as_str()).collect();
    assert!(got.contains(&PAUSED_NOTE) && got.contains(&"You said: first"), "{got:?}");
    h.say(0, "fourth");
    h.settled().await;
    assert_eq!(texts(&h, 0).len(), 3, "one note an hour at most: {:?}", texts(&h, 0));
    assert_eq!(h.llm.calls().len(), 1, "nothing of a paused member reaches the model");
    let paused: i64 =
        h.db().query_row("SELECT COUNT(*) FROM inbox WHERE outcome = 'paused'", [], |r| r.get(0)).unwrap();
    assert_eq!(paused, 3);
    let status = h.status().await;
    assert!(status.members[0].paused && !status.members[1].paused);
    assert!(status.members[0].last_activity.is_some(), "{:?}", status.members[0]);
    // The other member is not affected.
    h.say(1, "still here?");
    assert_eq!(h.replies(1, 2, T).await[1].text, "You said: still here?");

    ok(&h, ControlRequest::MemberPause { member: None, paused: false, until: None }).await;
    h.llm.set_latency(Duration::ZERO);
    h.say(0, "fifth");
    let sent = h.replies(0, 4, T).await;
    assert_eq!(sent[3].text, "You said: fifth");
    let last = h.llm.calls().last().unwrap().last_user_text();
    assert!(!last.contains("second") && !last.contains("fourth"), "dropped messages stay dropped: {last}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn role_persona_and_model_reach_the_prompt_and_the_provider() {
    let h = Household::new(1).await;
    let change = ControlRequest::MemberUpdate {
        member: h.members[0].name.clone(),
        role: Some(Role::Child),
        persona: Some("Loves horses and drawing.".into()),
        model: Some(ModelChange::Set { model: "kid-model".into() }),
    };
    ok(&h, change).await;
    // Made a child, the member gets a child's quiet hours; this test is about the prompt, at
    // any hour of the day it runs.
    let awake = ControlRequest::MemberQuietHours { member: h.members[0].name.clone(), quiet_hours: None };
    ok(&h, awake).await;
    h.say(0, "hi");
    h.replies(0, 2, T).await;
    let call = h.llm.calls().pop().unwrap();
    let system = call.system_text();
    assert!(system.contains("is a child") && system.contains("trusted adult"), "{system}");
    assert!(system.contains("Loves horses and drawing."), "{system}");
    assert_eq!(call.model, "kid-model");
    let model: String =
        h.db().query_row("SELECT model FROM ledger ORDER BY id DESC LIMIT 1", [], |r| r.get(0)).unwrap();
    assert_eq!(model, "kid-model");

    let back = ControlRequest::MemberUpdate {
        member: h.members[0].id.clone(),
        role: Some(Role::Adult),
        persona: None,
        model: Some(ModelChange::Household),
    };
    ok(&h, back).await;
    h.say(0, "and now?");
    h.replies(0, 3, T).await;
    let call = h.llm.calls().pop().unwrap();
    assert_eq!(call.model, "test-model");
    assert!(!call.system_text().contains("is a child") && call.system_text().contains("Loves horses"));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_bot_token_keeps_the_conversation_and_an_export_has_it() {
    let mut h = Household::new(1).await;
    h.say(0, "remember the word lighthouse");
    h.replies(0, 2, T).await;
    let new_bot = h.tg.add_bot("rosa_second_bot");
    let replace = ControlRequest::MemberToken { member: "Rosa".into(), bot_token: new_bot.token.clone() };
    let ControlReply::Member(m) = ok(&h, replace).await else { panic!() };
    assert_eq!(m.bot_username, "rosa_second_bot");
    let old_bot = std::mem::replace(&mut h.members[0].bot, new_bot);
    h.say(0, "what was the word?");
    let sent = h.replies(0, 1, T).await;
    assert_eq!(sent[0].text, "You said: what was the word?");
    let calls = h.llm.calls();
    assert!(calls[1].all_text().contains("lighthouse"), "the same conversation: {}", calls[1].all_text());
    assert_eq!(h.tg.sent_to(&old_bot.token, h.members[0].user.id).len(), 2, "the old bot says nothing more");

    let out = tempfile::tempdir().unwrap();
    let export = ControlRequest::MemberExport { member: "rosa".into(), dest_dir: out.path().display().to_string() };
    let ControlReply::Exported { path } = ok(&h, export).await else { panic!() };
    let json = std::fs::read_to_string(std::path::Path::new(&path).join("conversations.json")).unwrap();
    for part in ["remember the word lighthouse", "You said: what was the word?"] {
        assert!(json.contains(part), "{part} in {json}");
    }
    assert!(std::path::Path::new(&path).join("history.sqlite").is_file());
    h.stop().await;
}

/// The next event `pick` accepts, or `None` after `timeout`.
async fn find_event<T>(
    rx: &mut broadcast::Receiver<GatewayEvent>,
    timeout: Duration,
    mut pick: impl FnMut(&GatewayEvent) -> Option<T>,
) -> Option<T> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Ok(e)) => {
                if let Some(v) = pick(&e) {
                    return Some(v);
                }
            }
            Ok(Err(broadcast::error::RecvError::Lagged(_))) => {}
            _ => return None,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_hears_once_when_a_cap_is_reached() {
    let h = Household::with(1, |c| c.max_output_tokens = 20).await;
    let price = ControlRequest::PriceSet {
        model: "test-model".into(),
        input_micros_per_mtok: 10_000_000,
        output_micros_per_mtok: 10_000_000,
        cached_input_micros_per_mtok: None,
        cache_write_micros_per_mtok: None,
    };
    ok(&h, price).await;
    let mut rx = h.gateway.subscribe();
    let rosa = h.members[0].id.clone();
    ok(
        &h,
        ControlRequest::MemberCap {
            member: rosa.clone(),
            daily: CapChange::Set { micros: 1 },
            monthly: CapChange::Keep,
        },
    )
    .await;
    let cap_reached = |e: &GatewayEvent| matches!(e, GatewayEvent::CapReached { .. }).then(|| e.clone());

    h.say(0, "hello");
    let sent = h.replies(0, 2, T).await;
    assert!(sent[1].text.contains("spending allowance"), "{:?}", sent[1].text);
    let reached = find_event(&mut rx, T, cap_reached).await.expect("CapReached");
    assert_eq!(
        reached,
        GatewayEvent::CapReached { member_id: Some(rosa.clone()), name: "Rosa".into(), period: "day".into() }
    );
    h.say(0, "hello again");
    h.replies(0, 3, T).await;
    assert_eq!(find_event(&mut rx, Duration::from_secs(1), cap_reached).await, None, "once per cap and period");

    // The household's cap: reported without a member.
    ok(&h, ControlRequest::MemberCap { member: rosa, daily: CapChange::Remove, monthly: CapChange::Keep }).await;
    ok(&h, ControlRequest::HouseholdCap { monthly: CapChange::Set { micros: 1 } }).await;
    h.say(0, "and the household?");
    h.replies(0, 4, T).await;
    let reached = find_event(&mut rx, T, cap_reached).await.expect("CapReached for the household");
    assert_eq!(
        reached,
        GatewayEvent::CapReached { member_id: None, name: "The household".into(), period: "month".into() }
    );
    assert_eq!(h.llm.calls().len(), 0, "every call was refused before it was made");
    h.stop().await;
}
