//! Voice replies end to end (issue #15, item 6): the real gateway and worker against the fakes,
//! and the `hearth` binary for the admin's side. A voice note is answered in voice with the
//! answer as caption (the speech service gets the answer, never the quote), each member chooses
//! when, and every way the voice can fail — the service refusing or down, a cap, Telegram
//! refusing the voice, an answer too long for a caption — leaves the member with the answer in
//! text, exactly once.

use std::time::Duration;

use hearth_sim::media::ogg_opus;
use hearth_testkit::llm::Reply;
use hearth_testkit::telegram::Fault;

use crate::speech::{hearth, household, json};
use crate::support::Household;

const T: Duration = Duration::from_secs(30);

/// (characters, cost) of every `speech_out` ledger row, and whether each was settled.
fn spoken_rows(h: &Household) -> Vec<(i64, i64, String)> {
    let db = h.db();
    let mut stmt =
        db.prepare("SELECT characters, cost_micros, state FROM ledger WHERE kind = 'speech_out' ORDER BY id").unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).unwrap().collect::<Result<_, _>>().unwrap()
}

/// Everything member 0 got once the gateway has nothing left to do.
async fn all_sent(h: &Household) -> Vec<hearth_testkit::telegram::SentMessage> {
    h.settled().await;
    let m = &h.members[0];
    h.tg.sent_to(&m.bot.token, m.user.id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_voice_note_is_answered_in_voice_with_the_answer_as_caption() {
    let h = household().await;
    let d = h.dir.path();
    let m = &h.members[0];
    // Priced by the admin: the fake listens on loopback, where speaking would otherwise be free.
    let row = json(d, &["price", "set", "tts-1", "--usd-per-million-chars", "15", "--json"], None).await;
    assert_eq!((row["model"].as_str(), row["usd_per_million_chars"].as_f64()), (Some("tts-1"), Some(15.0)));
    h.llm.set_transcript("Why do cats purr?");
    let answer = "Cats purr when they are **content** — see [why](https://example.com/purr).";
    h.llm.push_reply(Reply::text(answer));
    h.tg.send_voice(&m.bot.token, &m.user, ogg_opus(4), 4);
    let sent = h.replies(0, 2, T).await;

    let voice = sent[1].voice.as_ref().unwrap_or_else(|| panic!("a voice reply: {:?}", sent[1].text));
    assert!(!voice.bytes.is_empty() && voice.bytes.starts_with(b"OggS"), "Ogg Opus from the speech service");
    assert_eq!(voice.file_name.as_deref(), Some("reply.ogg"));
    assert_eq!(sent[1].text, "🎤 “Why do cats purr?”\n\nCats purr when they are content — see why.", "the caption");
    assert!(sent[1].entities.iter().any(|e| e["type"] == "bold"), "rendered: {:?}", sent[1].entities);
    let spoken = h.llm.speeches();
    assert_eq!(spoken.len(), 1);
    let said = "Cats purr when they are content — see why.";
    assert_eq!(spoken[0].input, said, "the answer's plain text: no quote, no marks, no link target");
    assert_eq!((spoken[0].model.as_str(), spoken[0].voice.as_str()), ("tts-1", "alloy"));
    assert_eq!(spoken[0].response_format.as_deref(), Some("opus"));
    for action in ["record_voice", "upload_voice"] {
        h.tg.wait_for_chat_action(&m.bot.token, m.user.id, action, T).await.unwrap();
    }
    // An answer that comes in voice is not shown being written: no draft of it in the chat.
    assert!(h.tg.drafts(&m.bot.token).is_empty(), "drafts before a voice answer: {:?}", h.tg.drafts(&m.bot.token));

    // One settled speech_out row: its characters at $15 per million.
    let chars = said.chars().count() as i64;
    assert_eq!(all_sent(&h).await.len(), 2, "answered once");
    assert_eq!(spoken_rows(&h), vec![(chars, (chars * 15).max(1), "settled".to_owned())]);
    let report = json(d, &["usage", "--json"], None).await;
    for totals in [&report["members"][0]["totals"], &report["total"], &report["today_total"]] {
        assert_eq!(totals["voice_calls"], 1, "{report}");
        assert_eq!(totals["voice_chars"], chars, "{report}");
        assert_eq!(totals["voice_cost_usd"], (chars * 15) as f64 / 1e6, "{report}");
    }
    let (_, text, _) = hearth(d, &["usage"], None).await;
    assert!(text.contains("VOICE (SPOKEN)") && text.contains(&format!("({chars} chars)")), "{text}");

    // A text message is answered in text: "when spoken" is the default.
    h.say(0, "and in writing?");
    let sent = h.replies(0, 3, T).await;
    assert!(sent[2].voice.is_none() && sent[2].text == "You said: and in writing?", "{:?}", sent[2].text);
    assert!(!h.tg.drafts(&m.bot.token).is_empty(), "a text answer is shown as it is written");
    assert_eq!(h.llm.speeches().len(), 1);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_member_chooses_when_to_be_answered_in_voice() {
    let h = household().await;
    let d = h.dir.path();
    let m = &h.members[0];

    // Never: a voice note gets text.
    let set = json(d, &["member", "set", "Rosa", "--voice-replies", "never", "--json"], None).await;
    assert_eq!(set["voice_replies"], "never", "{set}");
    h.tg.send_voice(&m.bot.token, &m.user, ogg_opus(3), 3);
    let sent = h.replies(0, 2, T).await;
    assert!(sent[1].voice.is_none() && sent[1].text.contains("You said:"), "{:?}", sent[1].text);
    assert!(h.llm.speeches().is_empty());

    // Always: a text message gets a voice note.
    let (code, out, err) = hearth(d, &["member", "set", "Rosa", "--voice-replies", "always"], None).await;
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("answers in voice"), "{out}");
    let listed = json(d, &["member", "list", "--json"], None).await;
    assert_eq!(listed["members"][0]["voice_replies"], "always", "{listed}");
    let (_, table, _) = hearth(d, &["member", "list"], None).await;
    assert!(table.contains("VOICE REPLIES") && table.contains("always"), "{table}");
    h.say(0, "read me a poem");
    let sent = h.replies(0, 3, T).await;
    assert!(sent[2].voice.is_some(), "{:?}", sent[2].text);
    assert_eq!(sent[2].text, "You said: read me a poem");

    // Longer than a caption may be: the voice note, then the answer as text.
    let long = format!("tell me {}", "more ".repeat(220));
    h.say(0, long.trim());
    let sent = h.replies(0, 5, T).await;
    assert!(sent[3].voice.is_some() && sent[3].text.is_empty(), "a voice note without caption");
    assert!(sent[4].voice.is_none() && sent[4].text.starts_with("You said: tell me more"), "{:?}", sent[4].text);
    assert_eq!(h.llm.speeches().last().map(|s| s.input.chars().count()), Some(sent[4].text.chars().count()));
    assert_eq!(all_sent(&h).await.len(), 5, "nothing more");

    // A bad setting is a usage error.
    let (code, _, err) = hearth(d, &["member", "set", "Rosa", "--voice-replies", "loud"], None).await;
    assert_eq!(code, Some(2), "{err}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_failure_of_the_voice_leaves_the_answer_in_text_once() {
    let h = household().await;
    let d = h.dir.path();
    let m = &h.members[0];
    json(d, &["member", "set", "Rosa", "--voice-replies", "always", "--json"], None).await;
    let mut expected = 1; // the pairing's welcome

    // The speech service fails (after retries), refuses the model, or Telegram refuses the voice.
    for (i, status) in [Some(500), Some(404), None].into_iter().enumerate() {
        h.llm.fail_speech(status);
        if status.is_none() {
            h.tg.inject(
                &m.bot.token,
                Fault::MethodFails {
                    method: "sendVoice".into(),
                    status: 400,
                    description: "Bad Request: VOICE_MESSAGES_FORBIDDEN".into(),
                    times: 1,
                },
            );
        }
        let text = format!("message {i}");
        h.say(0, &text);
        expected += 1;
        let sent = all_sent(&h).await;
        assert_eq!(sent.len(), expected, "exactly one answer: {sent:#?}");
        let last = sent.last().unwrap();
        assert!(last.voice.is_none() && last.text == format!("You said: {text}"), "{:?}", last.text);
    }
    assert!(h.llm.speeches().len() >= 3, "the service was asked each time");
    let rows = spoken_rows(&h);
    assert_eq!(rows.iter().filter(|r| r.2 == "released").count(), 2, "the failed calls cost nothing: {rows:?}");

    // The next message is normal: in voice.
    h.say(0, "all good now?");
    let sent = h.replies(0, expected + 1, T).await;
    assert!(sent[expected].voice.is_some(), "{:?}", sent[expected].text);
    h.settled().await;
    let outcomes: Vec<(String, Option<String>)> = {
        let db = h.db();
        let mut stmt = db.prepare("SELECT state, outcome FROM inbox WHERE kind = 'text' ORDER BY id").unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().collect::<Result<_, _>>().unwrap()
    };
    // The first is the pairing; each message after it was closed once, answered.
    let answered: Vec<_> = outcomes.iter().skip(1).collect();
    assert_eq!(answered.len(), 4, "{outcomes:?}");
    assert!(answered.iter().all(|(state, o)| state == "done" && o.as_deref() == Some("replied")), "{outcomes:?}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_whose_allowance_cannot_cover_the_voice_gets_text() {
    let h = household().await;
    let d = h.dir.path();
    // Chat on the fake costs nothing (a model on this machine); speaking costs $15 per million
    // characters, and 10 micro-USD a day covers none of an answer.
    json(d, &["price", "set", "tts-1", "--usd-per-million-chars", "15", "--json"], None).await;
    json(d, &["member", "cap", "Rosa", "--daily-usd", "0.00001", "--json"], None).await;
    json(d, &["member", "set", "Rosa", "--voice-replies", "always", "--json"], None).await;
    h.say(0, "hello there");
    let sent = all_sent(&h).await;
    assert_eq!(sent.len(), 2, "{sent:#?}");
    assert!(sent[1].voice.is_none() && sent[1].text == "You said: hello there", "{:?}", sent[1].text);
    assert!(h.llm.speeches().is_empty(), "refused before any call");
    assert!(spoken_rows(&h).is_empty(), "nothing reserved");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_voice_sets_shows_tests_and_turns_off_the_service() {
    let h = household().await;
    let d = h.dir.path();
    let base = h.llm.base_url();

    // The openai-kind provider lends its own service: tts-1, alloy.
    let shown = json(d, &["provider", "show", "--json"], None).await;
    assert_eq!(
        shown["voice"],
        serde_json::json!({"source": "chat_provider", "base_url": base, "model": "tts-1", "voice": "alloy"})
    );
    let (_, text, _) = hearth(d, &["provider", "show"], None).await;
    assert!(text.contains("Voice replies: tts-1 voice alloy at") && text.contains("own service"), "{text}");
    let (_, status, _) = hearth(d, &["status"], None).await;
    assert!(status.contains("Speech recognition: whisper-1") && status.contains("Voice replies: tts-1"), "{status}");

    // Both directions tested: nothing stored, nobody charged.
    let out = json(d, &["provider", "test-speech", "--out", "--json"], None).await;
    assert_eq!((out["direction"].as_str(), out["model"].as_str()), (Some("out"), Some("tts-1")), "{out}");
    assert!(out["audio_bytes"].as_u64().unwrap() > 0, "{out}");
    h.llm.set_transcript("Hello from Hearth");
    let heard = json(d, &["provider", "test-speech", "--in", "--json"], None).await;
    assert_eq!(heard["heard"], "Hello from Hearth", "{heard}");
    let spoken = h.llm.speeches();
    assert_eq!(spoken.last().map(|s| s.input.as_str()), Some("Hello from Hearth"), "the sample was spoken first");
    let sample = &h.llm.transcriptions()[0];
    assert!(sample.bytes.starts_with(b"OggS"), "the spoken sample was heard");
    let (code, text, _) = hearth(d, &["provider", "test-speech", "--out"], None).await;
    assert_eq!(code, Some(0));
    assert!(text.starts_with("It works: tts-1 spoke") && text.contains("Nothing was saved"), "{text}");
    let ledger: i64 = h.db().query_row("SELECT COUNT(*) FROM ledger", [], |r| r.get(0)).unwrap();
    assert_eq!(ledger, 0, "tests charge nobody");

    // A service of its own, the key on stdin, never printed.
    let set = ["provider", "voice", "--base-url", base.as_str(), "--model", "tts-1-hd", "--voice", "nova"];
    let (code, out, err) = hearth(d, &set, Some("sk-VOICE-SECRET\n")).await;
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("Voice replies: tts-1-hd voice nova at"), "{out}");
    assert!(!out.contains("SECRET") && !err.contains("SECRET"), "{out}{err}");
    json(d, &["member", "set", "Rosa", "--voice-replies", "always", "--json"], None).await;
    h.say(0, "speak up");
    h.replies(0, 2, T).await;
    let last = h.llm.speeches().pop().unwrap();
    assert_eq!((last.model.as_str(), last.voice.as_str()), ("tts-1-hd", "nova"));
    assert_eq!(last.api_key.as_deref(), Some("sk-VOICE-SECRET"));

    // A refusal names what to fix.
    h.llm.fail_speech(Some(404));
    let (code, _, err) = hearth(d, &["provider", "test-speech", "--out"], None).await;
    assert_eq!(code, Some(7), "{err}");
    assert!(err.contains("no model called \"tts-1-hd\""), "{err}");
    h.llm.fail_speech(None);

    // Off is off: answers are text, and there is nothing to test.
    let off = json(d, &["provider", "voice", "--off", "--json"], None).await;
    assert_eq!(off, serde_json::json!({"source": "off", "base_url": null, "model": null, "voice": null}));
    h.say(0, "still there?");
    let sent = h.replies(0, 3, T).await;
    assert!(sent[2].voice.is_none(), "{:?}", sent[2].text);
    let (code, _, err) = hearth(d, &["provider", "test-speech", "--out"], None).await;
    assert_eq!(code, Some(4), "{err}");
    assert!(err.contains("hearth provider voice"), "{err}");
    let (code, _, err) = hearth(d, &["provider", "test-speech"], None).await;
    assert_eq!(code, Some(2), "a direction is needed: {err}");
    h.stop().await;
}
