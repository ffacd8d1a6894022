//! Replies shown as they are written (issue 16): drafts in the member's private chat while the
//! fake model streams, throttled, rendered so the fake Telegram's HTML parser accepts every one,
//! then the finished reply once; the fallbacks (a server without drafts gets one message edited
//! in place, which becomes the reply; a 429) and the member's switch; Stop, and what the worker
//! keeps of a stopped answer; and the dashboard's "writing" while it happens.
//!
//! (A group chat would get the edited message too, but no group chat reaches a turn: the router
//! ignores them, so the 400 path is what shows it here; `telegram/preview.rs` tests the choice.)

use std::time::Duration;

use hearth_proto::control::{ControlReply, ControlRequest, LaneState, TurnActivity};
use hearth_testkit::llm::{HEARTH_NOTE_END, HEARTH_NOTE_START, Reply};
use hearth_testkit::telegram::{Fault, SentDraft};

use crate::support::{Household, eventually};

const T: Duration = Duration::from_secs(20);

/// Thirty words, with Markdown that is cut in the middle by the stream's 12-character pieces.
const THIRTY_WORDS: &str = "Here is **a bold start** to the answer, then some `code` and a list \
    of things worth knowing about gardens: roses like sun, mint spreads fast, tomatoes want water \
    daily.";

/// The member's drafts that showed text (not the "Thinking…" placeholder).
fn written(drafts: &[SentDraft]) -> Vec<&SentDraft> {
    drafts.iter().filter(|d| !d.text.is_empty()).collect()
}

fn draft_requests(h: &Household, i: usize) -> Vec<hearth_testkit::telegram::RecordedRequest> {
    let token = &h.members[i].bot.token;
    h.tg.requests().into_iter().filter(|r| &r.token == token && r.method == "sendMessageDraft").collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drafts_show_the_reply_as_it_is_written_then_the_reply_comes_whole() {
    assert_eq!(THIRTY_WORDS.split_whitespace().count(), 30);
    let h = Household::new(1).await;
    // 30 words in 12-character pieces, about 3 s in all.
    let frames = THIRTY_WORDS.chars().count().div_ceil(12) + 3;
    let gap = Duration::from_millis(3000 / frames as u64);
    h.llm.set_stream_chunk_delay(gap);
    h.llm.push_reply(Reply::text(THIRTY_WORDS));
    h.say(0, "tell me about gardens");

    // The dashboard shows the lane writing while the drafts come.
    eventually(T, "the lane shows writing", async || {
        let lane = h.status().await.members[0].lane.clone();
        matches!(lane, LaneState::Running { doing: TurnActivity::Writing, .. }).then_some(())
    })
    .await;
    let sent = h.replies(0, 2, T).await;
    h.settled().await;
    let m = &h.members[0];
    assert_eq!(sent.len(), 2, "the reply came once");
    let reply = &sent[1];
    let plain: String = THIRTY_WORDS.replace("**", "").replace('`', "");
    assert_eq!(reply.text, plain, "the finished reply holds the whole text");

    let drafts = h.tg.drafts(&m.bot.token);
    let shown = written(&drafts);
    assert!(shown.len() >= 4, "drafts came while the model wrote: {}", shown.len());
    // Every draft was accepted (the fake parses HTML as Telegram does), to the member's chat,
    // as one draft id.
    for r in draft_requests(&h, 0) {
        assert_eq!(r.status, 200, "{:?}: {:?}", r.params, r.error);
    }
    assert!(drafts.iter().all(|d| d.chat_id == m.user.id && d.draft_id == drafts[0].draft_id && d.draft_id != 0));
    // The first draft with words came within 0.3 s of the model's first word: the call began,
    // the role frame went at once, the first piece of text one gap later.
    let call = &h.llm.calls()[0];
    let first_word = call.at + gap;
    let first_draft = shown[0].at;
    assert!(
        first_draft.saturating_duration_since(first_word) <= Duration::from_millis(300),
        "first draft {:?} after the first word",
        first_draft.saturating_duration_since(first_word)
    );
    // No faster than one every 250 ms, and none after the reply.
    for pair in drafts.windows(2) {
        let apart = pair[1].at.duration_since(pair[0].at);
        assert!(apart >= Duration::from_millis(249), "two drafts {apart:?} apart");
    }
    assert!(drafts.iter().all(|d| d.at <= reply.at), "a draft came after the reply");
    // Each draft is the answer so far: growing, and never tool JSON.
    for pair in shown.windows(2) {
        assert!(pair[1].text.len() >= pair[0].text.len(), "{:?} then {:?}", pair[0].text, pair[1].text);
    }
    // The first words, half-written Markdown shown as it stands ("**a" until the bold closes).
    let first = shown[0].text.trim_end();
    assert!(THIRTY_WORDS.starts_with(first) || plain.starts_with(first), "{first:?}");

    // The ledger is what a non-streamed turn writes: the fake's exact usage.
    let (input, output): (i64, i64) = h
        .db()
        .query_row("SELECT input_tokens, output_tokens FROM ledger WHERE state = 'settled'", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!(input as u64, call.prompt_tokens());
    assert_eq!(output as u64, hearth_testkit::llm::token_count(THIRTY_WORDS));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_who_turned_streaming_off_gets_no_drafts_and_the_same_ledger() {
    let h = Household::new(1).await;
    h.llm.set_stream_chunk_delay(Duration::from_millis(40));
    h.llm.set_responder(|_| Reply::text("A steady answer of a few words, streamed in small pieces."));
    h.say(0, "first");
    h.replies(0, 2, T).await;
    h.settled().await;
    let with_drafts = written(&h.tg.drafts(&h.members[0].bot.token)).len();
    assert!(with_drafts >= 1);

    let off = ControlRequest::MemberStreaming { member: "Rosa".into(), streaming: false };
    let ControlReply::Member(m) = h.gateway.control(off).await.unwrap() else { panic!("a member") };
    assert!(!m.streaming);
    let before = h.tg.drafts(&h.members[0].bot.token).len();
    h.say(0, "second");
    h.replies(0, 3, T).await;
    h.settled().await;
    assert_eq!(h.tg.drafts(&h.members[0].bot.token).len(), before, "no draft once streaming is off");

    // Both turns billed exactly what the fake reported.
    let calls = h.llm.calls();
    let rows: Vec<(i64, i64)> = {
        let db = h.db();
        let mut stmt = db.prepare("SELECT input_tokens, output_tokens FROM ledger ORDER BY id").unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(Result::unwrap).collect()
    };
    assert_eq!(rows.len(), 2);
    for (row, call) in rows.iter().zip(&calls) {
        assert_eq!(row.0 as u64, call.prompt_tokens());
    }
    assert_eq!(rows[0].1, rows[1].1, "the same answer costs the same, streamed or not");
    h.stop().await;
}

/// The requests about the member's chat that showed or changed a message (`sendMessage`,
/// `editMessageText`) since `since`, in arrival order: the preview's pace.
fn message_requests(h: &Household, i: usize, since: usize) -> Vec<hearth_testkit::telegram::RecordedRequest> {
    let token = &h.members[i].bot.token;
    h.tg.requests()
        .into_iter()
        .skip(since)
        .filter(|r| &r.token == token && (r.method == "sendMessage" || r.method == "editMessageText"))
        .collect()
}

/// Whether `shown` is how [`THIRTY_WORDS`] begins, as written so far (half-written Markdown shows
/// as it stands: "**a" until the bold closes).
fn begins(shown: &str) -> bool {
    let shown = shown.trim_end();
    let plain: String = THIRTY_WORDS.replace("**", "").replace('`', "");
    !shown.is_empty() && (THIRTY_WORDS.starts_with(shown) || plain.starts_with(shown))
}

/// A server that answers 400 "method not found" to drafts.
fn no_drafts(h: &Household, i: usize) {
    h.tg.inject(
        &h.members[i].bot.token,
        Fault::MethodFails {
            method: "sendmessagedraft".into(),
            status: 400,
            description: "Bad Request: method not found".into(),
            times: 1000,
        },
    );
}

/// Thirty words over about three seconds, as the Done-when figure asks.
fn three_second_stream(h: &Household) {
    let frames = THIRTY_WORDS.chars().count().div_ceil(12) + 3;
    h.llm.set_stream_chunk_delay(Duration::from_millis(3000 / frames as u64));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_drafts_gets_one_message_edited_in_place_and_is_remembered() {
    let h = Household::new(1).await;
    let token = h.members[0].bot.token.clone();
    no_drafts(&h, 0);
    three_second_stream(&h);
    h.llm.push_reply(Reply::text(THIRTY_WORDS));
    let plain: String = THIRTY_WORDS.replace("**", "").replace('`', "");
    let since = h.tg.requests().len();
    h.say(0, "tell me about gardens");
    h.replies(0, 2, T).await;
    h.settled().await;

    // One message: the preview, edited as the model wrote, became the reply.
    let sent = h.tg.sent(&token);
    assert_eq!(sent.len(), 2, "the answer is one message, never a preview plus the reply");
    let answer = &sent[1];
    assert_eq!(answer.current_text(), plain, "the finished reply holds the whole text");
    assert!(!answer.deleted);
    assert!(answer.edits.len() >= 2, "edited while written, then made the reply: {:?}", answer.edits);
    assert!(begins(&answer.text) && answer.text.len() < plain.len(), "{:?}", answer.text);
    for pair in answer.edits.windows(2) {
        assert!(pair[1].len() >= pair[0].len(), "{:?} then {:?}", pair[0], pair[1]);
    }
    // No faster than one request a second about the message, and every one accepted.
    let shown = message_requests(&h, 0, since);
    assert_eq!(shown[0].method, "sendMessage");
    assert_eq!(shown.iter().filter(|r| r.method == "sendMessage").count(), 1);
    for r in &shown {
        assert_eq!(r.status, 200, "{:?}: {:?}", r.params, r.error);
    }
    for pair in shown.windows(2) {
        let apart = pair[1].at.duration_since(pair[0].at);
        assert!(apart >= Duration::from_millis(999), "two requests {apart:?} apart");
    }
    // A message has no Stop button, and "typing…" showed meanwhile.
    assert!(shown.iter().all(|r| r.params.get("reply_markup").is_none()));
    assert!(h.tg.chat_actions(&token).iter().any(|(_, a)| a == "typing"));
    assert_eq!(draft_requests(&h, 0).len(), 1, "drafts tried once");

    // Remembered: the next turn goes straight to the edited message.
    h.llm.push_reply(Reply::text(THIRTY_WORDS));
    h.say(0, "and again");
    h.replies(0, 3, T).await;
    h.settled().await;
    assert_eq!(draft_requests(&h, 0).len(), 1, "no draft request in the second turn");
    let sent = h.tg.sent(&token);
    assert_eq!(sent.len(), 3);
    assert_eq!(sent[2].current_text(), plain);
    assert!(!sent[2].edits.is_empty());
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_preview_that_cannot_become_the_reply_is_replaced_by_it_once() {
    let h = Household::new(1).await;
    let token = h.members[0].bot.token.clone();
    no_drafts(&h, 0);
    // Every edit refused (the member deleted the preview, say): the preview stops, and the
    // finished reply comes as a message of its own.
    h.tg.inject(
        &token,
        Fault::MethodFails {
            method: "editMessageText".into(),
            status: 400,
            description: "Bad Request: message to edit not found".into(),
            times: 1000,
        },
    );
    three_second_stream(&h);
    h.llm.push_reply(Reply::text(THIRTY_WORDS));
    let plain: String = THIRTY_WORDS.replace("**", "").replace('`', "");
    h.say(0, "tell me about gardens");
    h.replies(0, 3, T).await;
    h.settled().await;
    let sent = h.tg.sent(&token);
    assert_eq!(sent.len(), 3, "the preview, then the reply");
    assert!(sent[1].deleted, "the preview was deleted");
    assert!(begins(&sent[1].text) && sent[1].text.len() < plain.len(), "{:?}", sent[1].text);
    assert!(!sent[2].deleted);
    assert_eq!(sent[2].current_text(), plain, "the whole reply, once");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limited_edits_are_waited_out_and_the_reply_comes_whole() {
    let h = Household::new(1).await;
    let token = h.members[0].bot.token.clone();
    no_drafts(&h, 0);
    // Every edit but the last gets "retry after 2" (the final one tries until it works).
    h.tg.inject(
        &token,
        Fault::MethodFails {
            method: "editMessageText".into(),
            status: 429,
            description: "Too Many Requests: retry after 2".into(),
            times: 3,
        },
    );
    three_second_stream(&h);
    h.llm.push_reply(Reply::text(THIRTY_WORDS));
    let plain: String = THIRTY_WORDS.replace("**", "").replace('`', "");
    let since = h.tg.requests().len();
    h.say(0, "tell me about gardens");
    h.replies(0, 2, T).await;
    h.settled().await;
    let sent = h.tg.sent(&token);
    assert_eq!(sent.len(), 2, "one message");
    assert_eq!(sent[1].current_text(), plain, "the whole reply");
    // After each 429 the next request waited the two seconds asked.
    let shown = message_requests(&h, 0, since);
    assert_eq!(shown.iter().filter(|r| r.status == 429).count(), 3);
    for pair in shown.windows(2) {
        let apart = pair[1].at.duration_since(pair[0].at);
        let asked = if pair[0].status == 429 { 1999 } else { 999 };
        assert!(apart >= Duration::from_millis(asked), "{apart:?} after a {}", pair[0].status);
    }
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limited_drafts_never_cost_the_reply() {
    let h = Household::new(1).await;
    let token = h.members[0].bot.token.clone();
    h.tg.inject(
        &token,
        Fault::MethodFails {
            method: "sendMessageDraft".into(),
            status: 429,
            description: "Too Many Requests: retry after 5".into(),
            times: 100,
        },
    );
    h.llm.set_stream_chunk_delay(Duration::from_millis(30));
    h.say(0, "hello");
    let sent = h.replies(0, 2, T).await;
    h.settled().await;
    assert_eq!(h.tg.sent(&token).len(), 2, "the reply came exactly once");
    assert_eq!(sent[1].text, "You said: hello");
    // Backed off rather than hammering: the first try, then nothing within its pause.
    assert_eq!(draft_requests(&h, 0).len(), 1);
    h.stop().await;
}

/// Sixty words: long enough that the member presses Stop well before the end.
const A_LONG_STORY: &str = "Once upon a time a small fox lived at the edge of a wide green wood, and every \
    morning she walked down to the river to watch the herons fish among the reeds while the sun came \
    up over the hills, and every evening she walked back again, counting the stars as they appeared \
    one by one above the tall dark pines, until one day something quite unexpected happened.";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_mid_stream_sends_the_words_so_far_once_and_frees_the_lane() {
    let h = Household::new(1).await;
    let m = &h.members[0];
    let token = m.bot.token.clone();
    h.llm.set_stream_chunk_delay(Duration::from_millis(100));
    h.llm.push_reply(Reply::text(A_LONG_STORY));
    h.say(0, "tell me a long story");

    // A few words in, the member presses the draft's Stop button.
    let draft = eventually(T, "a draft with words", async || {
        h.tg.drafts(&token).into_iter().find(|d| d.text.split_whitespace().count() >= 4)
    })
    .await;
    assert!(draft.can_stop, "every draft offers Stop");
    let pressed = std::time::Instant::now();
    h.tg.press_stop(&token, m.user.id, draft.draft_id);

    let sent = h.replies(0, 2, T).await;
    let reply = &sent[1];
    assert!(reply.at.saturating_duration_since(pressed) <= Duration::from_secs(1), "stopped within a second");
    let partial = reply.text.strip_suffix("— stopped").expect("the reply is marked stopped").trim_end();
    assert!(partial.split_whitespace().count() >= 4, "the words written so far: {partial:?}");
    assert!(A_LONG_STORY.starts_with(partial) && partial.len() < A_LONG_STORY.len(), "{partial:?}");
    // The provider's stream was dropped, not read to its end.
    eventually(T, "the model's stream dropped", async || (h.llm.streams_dropped() == 1).then_some(())).await;
    h.settled().await;
    assert_eq!(h.tg.sent(&token).len(), 2, "the stopped reply came once");

    // The ledger holds the stopped call, charged no less than the fake counts for what it sent.
    let call = &h.llm.calls()[0];
    let (outcome, input, output): (String, i64, i64) = h
        .db()
        .query_row("SELECT outcome, input_tokens, output_tokens FROM ledger WHERE state = 'settled'", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    assert_eq!(outcome, "stopped");
    assert!(input as u64 >= call.prompt_tokens(), "{input} < {}", call.prompt_tokens());
    assert!(output as u64 >= hearth_testkit::llm::token_count(partial), "{output}");
    assert!((output as u64) < hearth_testkit::llm::token_count(A_LONG_STORY) * 4, "only what came: {output}");
    let stop_row: String =
        h.db().query_row("SELECT outcome FROM inbox WHERE kind = 'stop'", [], |r| r.get(0)).unwrap();
    assert_eq!(stop_row, "stopped");

    // The lane takes the next message; a second press on the old draft stops nothing.
    h.tg.press_stop(&token, m.user.id, draft.draft_id);
    h.say(0, "and now?");
    let sent = h.replies(0, 3, T).await;
    assert_eq!(sent[2].text, "You said: and now?");
    h.settled().await;
    // The worker kept the stopped answer as the reply to the question: the model sees the
    // question once, answered with the words the member read, then the new message.
    let told = h.llm.calls()[1].conversation();
    // (The newest message opens with the worker's note — the time, remembered facts — which
    // the member did not write.)
    let without_note = |t: &str| match t.strip_prefix(HEARTH_NOTE_START).and_then(|r| r.split_once(HEARTH_NOTE_END)) {
        Some((_, member)) => member.to_owned(),
        None => t.to_owned(),
    };
    let after_system: Vec<(&str, String)> =
        told.iter().filter(|(role, _)| role != "system").map(|(r, t)| (r.as_str(), without_note(t))).collect();
    let stopped_answer = format!("{partial}\n\n— stopped");
    assert_eq!(
        after_system,
        [("user", "tell me a long story".to_owned()), ("assistant", stopped_answer), ("user", "and now?".to_owned())],
        "{told:?}"
    );
    let late: Vec<String> = {
        let db = h.db();
        let mut stmt = db.prepare("SELECT outcome FROM inbox WHERE kind = 'stop' ORDER BY id").unwrap();
        stmt.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
    };
    assert_eq!(late, ["stopped", "stop_too_late"]);
    assert_eq!(h.tg.sent(&token).len(), 3);
    h.stop().await;
}
