//! Context management end to end: a conversation longer than the prompt's token budget is
//! folded into a running summary by one extra model call, and the prompts after it carry the
//! summary instead of the turns it covers; after long enough away a member starts afresh.
//! Checked on the requests the fake LLM receives.

use std::time::Duration;

use chrono::{DateTime, Utc};
use hearth_gateway::clock::Clock;
use hearth_proto::control::ControlRequest;
use hearth_testkit::llm::{LlmCall, Reply};

use crate::support::Household;

const T: Duration = Duration::from_secs(20);
const SUMMARY: &str = "SUMMARY: Rosa planned the garden, topics 00 onwards.";

fn is_summary_call(c: &LlmCall) -> bool {
    c.system_text().contains("running summary")
}

/// Everything but the system prompt of a call: the conversation it carries.
fn conversation(c: &LlmCall) -> String {
    c.all_text().replace(&c.system_text(), "")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_conversation_is_summarised_once_and_the_next_prompts_carry_the_summary() {
    let h = Household::with(1, |config| config.context_tokens = 5000).await;
    h.llm.set_responder(|call| {
        if is_summary_call(call) { Reply::text(SUMMARY) } else { Reply::text("Noted, that sounds lovely.") }
    });
    let filler = "we talked about the roses and the beans and the tomatoes in the back garden. ".repeat(8);
    let mut first_summary_at = None;
    for i in 0..30 {
        h.say(0, &format!("topic {i:02}: {filler}"));
        h.replies(0, i + 2, T).await;
        if h.llm.calls().iter().any(is_summary_call) {
            first_summary_at = Some(i);
            break;
        }
    }
    let i = first_summary_at.expect("a long conversation is summarised");
    assert!(i >= 2, "not before the history outgrew the budget (turn {i})");
    let calls = h.llm.calls();
    let summaries: Vec<&LlmCall> = calls.iter().filter(|c| is_summary_call(c)).collect();
    assert_eq!(summaries.len(), 1, "one summarising call");
    // It saw the oldest turn, and offered no tools.
    assert!(summaries[0].last_user_text().contains("topic 00"), "{}", summaries[0].last_user_text());
    assert!(summaries[0].tool_names().is_empty());
    // The answer's prompt, right after it, carries the summary and not the turns it covers.
    let answer = calls.last().unwrap();
    assert!(!is_summary_call(answer));
    assert!(answer.system_text().contains("Earlier in this conversation (a summary"), "{}", answer.system_text());
    assert!(answer.system_text().contains(SUMMARY));
    assert!(!conversation(answer).contains("topic 00"), "a summarised turn is not sent again");
    assert!(conversation(answer).contains(&format!("topic {:02}", i - 1)), "the newest turns stay");
    assert!(conversation(answer).contains(&format!("topic {i:02}")));

    // The next turn: no new summary (half the room was freed), the summary still there.
    h.say(0, "and one more thing");
    h.replies(0, i + 3, T).await;
    let calls = h.llm.calls();
    assert_eq!(calls.iter().filter(|c| is_summary_call(c)).count(), 1);
    let next = calls.last().unwrap();
    assert!(next.system_text().contains(SUMMARY) && !conversation(next).contains("topic 00"));

    // /new starts without it.
    h.say(0, "/new");
    h.replies(0, i + 4, T).await;
    h.say(0, "hello again");
    h.replies(0, i + 5, T).await;
    let fresh = h.llm.calls().pop().unwrap();
    assert!(!fresh.system_text().contains(SUMMARY) && !conversation(&fresh).contains("topic"));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writing_after_the_idle_limit_starts_a_fresh_conversation_silently() {
    let start: DateTime<Utc> = "2026-11-21T10:00:00Z".parse().unwrap();
    let clock = Clock::manual(start);
    let c = clock.clone();
    let h = Household::with(1, move |config| config.clock = c).await;
    h.gateway.control(ControlRequest::HouseholdIdleReset { hours: 3 }).await.unwrap();

    h.say(0, "my favourite flower is the alpine aster");
    h.replies(0, 2, T).await;
    clock.advance(chrono::Duration::hours(2));
    h.say(0, "what should I plant?");
    h.replies(0, 3, T).await;
    assert!(conversation(&h.llm.calls().pop().unwrap()).contains("alpine aster"), "two hours away: same conversation");

    clock.advance(chrono::Duration::hours(3) + chrono::Duration::minutes(1));
    h.say(0, "good morning");
    let sent = h.replies(0, 4, T).await;
    assert_eq!(sent[3].text, "You said: good morning", "no fresh-start note, just the answer");
    let call = h.llm.calls().pop().unwrap();
    assert!(!conversation(&call).contains("alpine aster"), "over three hours away: a fresh conversation");
    assert_eq!(h.llm.calls().len(), 3);

    // Off again: the conversation goes on however long the break.
    h.gateway.control(ControlRequest::HouseholdIdleReset { hours: 0 }).await.unwrap();
    clock.advance(chrono::Duration::hours(30));
    h.say(0, "back");
    h.replies(0, 5, T).await;
    assert!(conversation(&h.llm.calls().pop().unwrap()).contains("good morning"));
    h.stop().await;
}
