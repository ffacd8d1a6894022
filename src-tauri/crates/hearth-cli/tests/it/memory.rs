//! Memory end to end, through the real gateway and real worker processes: a fact the model saves
//! for one member (the fake LLM scripted to call `remember`) is in that member's later prompts and
//! in no one else's, checked on the requests the provider receives; `/memory` lists it and
//! `/forget` removes it. Both provider formats.

use std::time::Duration;

use hearth_proto::control::ProviderKind;
use hearth_testkit::llm::{LlmCall, Reply, token_count};
use serde_json::json;

use crate::support::{Household, eventually, set_provider};

const T: Duration = Duration::from_secs(20);
const FACT: &str = "Rosa's daughter Ana has her school play on Friday the 12th.";

fn texts(h: &Household, i: usize) -> Vec<String> {
    h.tg.sent_to(&h.members[i].bot.token, h.members[i].user.id).into_iter().map(|m| m.text).collect()
}

/// Everything the provider was sent for the turn, as one string: system, messages, tools.
fn sent(call: &LlmCall) -> String {
    call.body.to_string()
}

async fn told_on_monday_known_on_tuesday_for_that_member_only(kind: ProviderKind) {
    let h = Household::new(2).await;
    set_provider(&h.gateway, &h.llm, kind).await;

    // Monday: Rosa mentions the play; the model saves it, then answers.
    h.llm.push_reply(Reply::tool_call("remember", json!({ "fact": FACT })));
    h.llm.push_reply(Reply::text("How exciting — I'll remember the play!"));
    h.say(0, "Ana's school play is on Friday the 12th");
    assert_eq!(h.replies(0, 2, T).await[1].text, "How exciting — I'll remember the play!");
    let calls = h.llm.calls();
    assert_eq!(calls.len(), 2, "one completion per step");
    // Offered by need (`tool_offer.rs`): `remember` always, reminders for "Friday", the
    // household's notes for "school"; no memory search, no files.
    assert_eq!(calls[0].tool_names(), [
        "remember", "set_reminder", "list_reminders", "cancel_reminder", "search_household_knowledge",
    ]);
    let results = calls[1].tool_results();
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].1, "Saved (id 1).");
    assert!(!calls[0].system_text().contains(FACT));

    // Each step was reserved and settled on its own, at exactly the usage the provider reported.
    let settled: Vec<(i64, i64)> = eventually(T, "two settled ledger rows", async || {
        let db = h.db();
        let mut stmt = db
            .prepare("SELECT input_tokens + cached_input_tokens, output_tokens FROM ledger WHERE state = 'settled' ORDER BY id")
            .unwrap();
        let rows: Vec<(i64, i64)> = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(Result::unwrap).collect();
        (rows.len() == 2).then_some(rows)
    })
    .await;
    assert_eq!(settled[0], (calls[0].prompt_tokens() as i64, token_count(&format!("remember{}", json!({ "fact": FACT }))) as i64));
    assert_eq!(settled[1], (calls[1].prompt_tokens() as i64, token_count("How exciting — I'll remember the play!") as i64));

    // Tuesday: a new conversation, and the fact is still in Rosa's prompt.
    h.say(0, "/new");
    h.replies(0, 3, T).await;
    h.say(0, "What's on this week for Ana?");
    h.replies(0, 4, T).await;
    let tuesday = h.llm.calls().pop().unwrap();
    let note = tuesday.last_user_note().unwrap_or_default();
    assert!(note.contains(&format!("- {FACT}")), "{note}");
    assert!(!tuesday.system_text().contains(FACT), "facts stay out of the cacheable system prompt");
    assert_eq!(tuesday.last_user_text(), "What's on this week for Ana?", "the conversation itself started afresh");

    // Leo asks the very same; his prompt never carries Rosa's fact, nor does any request for him.
    let before = h.llm.calls().len();
    h.say(1, "What's on this week for Ana?");
    h.replies(1, 2, T).await;
    h.say(1, "/memory");
    let leo = h.replies(1, 3, T).await;
    assert!(leo[2].text.starts_with("I don't remember anything about you yet"), "{}", leo[2].text);
    let leos: Vec<LlmCall> = h.llm.calls().split_off(before);
    assert_eq!(leos.len(), 1, "/memory makes no model call");
    for call in &leos {
        assert!(!sent(call).contains("school play"), "Rosa's memory reached Leo's prompt: {}", sent(call));
    }

    // Rosa sees it with /memory and removes it with /forget.
    let calls_before = h.llm.calls().len();
    h.say(0, "/memory");
    let rosa = h.replies(0, 5, T).await;
    assert!(rosa[4].text.contains(FACT), "{}", rosa[4].text);
    h.say(0, "/forget");
    let rosa = h.replies(0, 6, T).await;
    assert!(rosa[5].text.contains("forget all 1 thing ") && rosa[5].text.contains("/forget everything"), "{}", rosa[5].text);
    h.say(0, "/forget school play");
    let rosa = h.replies(0, 7, T).await;
    assert!(rosa[6].text.starts_with("Done — I've forgotten:") && rosa[6].text.contains(FACT), "{}", rosa[6].text);
    assert_eq!(h.llm.calls().len(), calls_before, "memory commands make no model call");
    h.say(0, "And now?");
    h.replies(0, 8, T).await;
    let after = h.llm.calls().pop().unwrap();
    assert!(!sent(&after).contains("school play"), "{}", sent(&after));
    h.say(0, "/memory");
    assert!(h.replies(0, 9, T).await[8].text.starts_with("I don't remember anything"), "{:?}", texts(&h, 0));

    // The memory lives in Rosa's own directory, owner-only.
    let file = h.dir.path().join("members").join(&h.members[0].id).join("memory.sqlite");
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&file).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600, "{}", file.display());
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fact_told_on_monday_is_in_tuesdays_prompt_for_that_member_only_openai() {
    told_on_monday_known_on_tuesday_for_that_member_only(ProviderKind::Openai).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fact_told_on_monday_is_in_tuesdays_prompt_for_that_member_only_anthropic() {
    told_on_monday_known_on_tuesday_for_that_member_only(ProviderKind::Anthropic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_that_keeps_calling_tools_gets_a_kind_reply_at_the_step_limit() {
    let h = Household::new(1).await;
    h.llm.set_responder(|_| Reply::tool_call("recall", json!({ "query": "anything" })));
    h.say(0, "Loop forever please");
    let sent = h.replies(0, 2, T).await;
    assert_eq!(sent[1].text, hearth_worker::STEP_LIMIT_MESSAGE);
    assert_eq!(h.llm.calls().len(), hearth_worker::MAX_STEPS);
    h.stop().await;
}
