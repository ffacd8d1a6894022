//! Voice replies through the broker, against the testkit's fake speech service: the text's
//! characters reserved at the model's price before the call and settled after as a
//! `speech_out` row, caps held with many replies in flight, failures told apart and costing
//! nothing, a refusal at a cap never reported as the member reaching it (they still get the
//! answer, in text), and the setting's default.

use std::sync::Arc;
use std::time::Duration;

use hearth_gateway::broker::SpendEvent;
use hearth_gateway::broker::voice::{SpeakError, VoiceEndpoint, VoiceSetting};
use hearth_gateway::spend::{self, Scope};
use hearth_llm::ApiKey;
use hearth_proto::control::{ProviderKind, SpeechSource};
use hearth_proto::llm::BrokerErrorKind;

use crate::speech::rig;

/// tts-1 at $15 per million characters, set by the admin (the fake is on loopback, where an
/// unpriced model would be free).
const PER_MCHAR: u64 = 15_000_000;

/// (state, characters, reserved, cost) of every `speech_out` row, oldest first.
fn spoken(store: &hearth_gateway::store::Store) -> Vec<(String, i64, i64, i64)> {
    store
        .call_sync(|c| {
            let mut stmt = c.prepare(
                "SELECT state, characters, reserved_micros, cost_micros FROM ledger WHERE kind = 'speech_out' ORDER BY id",
            )?;
            let rows = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_is_spoken_reserved_and_settled_per_character() {
    let r = rig(ProviderKind::Openai).await;
    let summary = r.broker.voice_summary();
    assert_eq!(
        (summary.source, summary.model.as_deref(), summary.voice.as_deref()),
        (SpeechSource::ChatProvider, Some("tts-1"), Some("alloy"))
    );
    r.broker.set_admin_voice_prices(&[("tts-1".into(), PER_MCHAR)]);
    let text = "Cats purr when they are happy — and to calm down.";
    let audio = r.broker.speak("ana", 7, text).await.unwrap();
    assert!(audio.starts_with(b"OggS"), "Ogg Opus");
    let heard = r.llm.speeches();
    assert_eq!((heard.len(), heard[0].input.as_str(), heard[0].api_key.as_deref()), (1, text, Some("k")));
    let chars = text.chars().count() as i64;
    assert_eq!(spoken(&r.store), vec![("settled".into(), chars, chars * 15, chars * 15)]);
    let spent =
        r.broker.spend(|s| s.budget.spent(&Scope::Member("ana".into()), spend::PeriodKind::Day, chrono::Utc::now()));
    assert_eq!(spent as i64, chars * 15);

    // A service of its own, with its voice and key; the chat provider of another kind lends none.
    r.broker.set_voice(VoiceSetting::Own(VoiceEndpoint {
        base_url: r.llm.base_url(),
        model: "tts-1-hd".into(),
        voice: "nova".into(),
        api_key: Some(ApiKey::new("sk-voice")),
    }));
    r.broker.speak("ana", 7, "ok").await.unwrap();
    let last = r.llm.speeches().pop().unwrap();
    assert_eq!(
        (last.model.as_str(), last.voice.as_str(), last.api_key.as_deref()),
        ("tts-1-hd", "nova", Some("sk-voice"))
    );
    r.broker.set_voice(VoiceSetting::Off);
    assert_eq!(r.broker.speak("ana", 7, "ok").await.unwrap_err(), SpeakError::NoService);
    let anthropic = rig(ProviderKind::Anthropic).await;
    assert_eq!(anthropic.broker.voice_summary().source, SpeechSource::None);

    // Nothing to say, or more than one call takes: not spoken, nothing reserved.
    r.broker.set_voice(VoiceSetting::Default);
    assert_eq!(r.broker.speak("ana", 7, "  ").await.unwrap_err(), SpeakError::Unfit(2));
    assert!(matches!(r.broker.speak("ana", 7, &"x".repeat(4097)).await, Err(SpeakError::Unfit(4097))));
    assert_eq!(spoken(&r.store).len(), 2);
}

/// A refusal is the admin's to fix, a 500 an outage (retried), a remote model without a price
/// refused while caps are in force; none costs anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_told_apart_and_cost_nothing() {
    let r = rig(ProviderKind::Openai).await;
    r.broker.set_admin_voice_prices(&[("tts-1".into(), PER_MCHAR)]);
    r.llm.fail_speech(Some(404));
    assert_eq!(r.broker.speak("ana", 7, "hello").await.unwrap_err(), SpeakError::Refused { status: 404 });
    r.llm.fail_speech(Some(500));
    assert_eq!(r.broker.speak("ana", 7, "hello").await.unwrap_err(), SpeakError::Unavailable);
    r.llm.fail_speech(None);
    assert!(spoken(&r.store).iter().all(|row| row.0 == "released" && row.3 == 0), "{:?}", spoken(&r.store));

    // An unpriced model away from this machine, with a cap in force: refused before any call.
    r.broker.set_voice(VoiceSetting::Own(VoiceEndpoint {
        base_url: "https://tts.example/v1".into(),
        model: "unpriced-tts".into(),
        voice: "alloy".into(),
        api_key: None,
    }));
    r.broker.set_member_caps("ana", Some(1_000_000), None);
    let calls = r.llm.speeches().len();
    let e = r.broker.speak("ana", 7, "hello").await.unwrap_err();
    let SpeakError::Capped(b) = &e else { panic!("{e:?}") };
    assert_eq!(b.kind, BrokerErrorKind::NoPrice { model: "unpriced-tts".into() });
    assert!(b.message.contains("--usd-per-million-chars"), "{}", b.message);
    assert_eq!(r.llm.speeches().len(), calls);
}

/// Fifty replies at once under a member cap: nothing charged past it, every reservation
/// settled or released, the budget agrees with the ledger, and no refusal reported as a cap
/// reached (the member got the answer in text).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_replies_never_overshoot_a_cap() {
    let mut r = rig(ProviderKind::Openai).await;
    r.llm.set_latency(Duration::from_millis(20));
    r.broker.set_admin_voice_prices(&[("tts-1".into(), PER_MCHAR)]);
    // 100 characters cost 1,500 micro-USD: ten of them fit 15,000.
    r.broker.set_member_caps("ana", Some(15_000), None);
    let broker = Arc::new(r.broker.clone());
    let text: Arc<str> = "a".repeat(100).into();
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let (b, text) = (broker.clone(), text.clone());
            tokio::spawn(async move { b.speak("ana", 1, &text).await.map(drop) })
        })
        .collect();
    let (mut ok, mut capped) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => ok += 1,
            Err(SpeakError::Capped(_)) => capped += 1,
            Err(e) => panic!("a failure other than a cap: {e:?}"),
        }
    }
    assert_eq!((ok, capped), (10, 40));
    let rows = spoken(&r.store);
    assert!(rows.iter().all(|row| row.0 == "settled"), "refused calls leave no row: {rows:?}");
    assert_eq!(rows.iter().map(|row| row.3).sum::<i64>(), 15_000);
    let spent =
        r.broker.spend(|s| s.budget.spent(&Scope::Member("ana".into()), spend::PeriodKind::Day, chrono::Utc::now()));
    assert_eq!(spent, 15_000, "the budget agrees with the ledger");
    while let Ok(e) = r.events.try_recv() {
        assert!(!matches!(e, SpendEvent::CapHit { .. }), "a voice refusal is not a cap reached: {e:?}");
    }
}
